# Sourced by the benchmark scripts: the checkout, scripts/stack.sh (throwaway stacks) and
# the load settings every part shares (BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_THREADS,
# API_PROCESSES; see bench/run.sh for what each means).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/stack.sh
. "$ROOT/scripts/stack.sh"
secs=${BENCH_SECONDS:-8}
conns=${BENCH_CONNECTIONS:-32}
threads=${BENCH_THREADS:-1}
export API_PROCESSES=${API_PROCESSES:-4}

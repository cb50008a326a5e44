# Sourced by the benchmark scripts: the checkout, scripts/stack.sh (throwaway stacks) and
# the machine's load (machine), and the load settings every part shares (BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_THREADS,
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
# The fan-out parts open thousands of streams as one reader account (bench/fanout_api.mjs,
# bench/compare.mjs, bench/cluster_fanout.mjs): past the broker's default of 64 streams a user
# (BROKER_MAX_STREAMS_PER_USER) they would be refused with 429. The stacks and the cluster
# layout started from here inherit this; the bound is then BROKER_MAX_STREAMS alone.
export BROKER_MAX_STREAMS_PER_USER=${BROKER_MAX_STREAMS_PER_USER:-10000000}
# The benchmarks run C and Python programs only: their stacks offer no optional runtime
# unless RUNTIMES_EXTRA says so (scripts/stack.sh would offer all of them, and a worker told
# to offer a runtime that is not installed stops; `make bench` installs none of them).
export RUNTIMES_EXTRA=${RUNTIMES_EXTRA-}

# The machine's cores and load average, and what else ran meanwhile: the busiest processes
# over one second (other sessions may share the machine).
machine() {
  echo "machine: $(nproc) cores, shared by the load generator and the stack;$(uptime | sed 's/.*load average/ load average/')"
  top -b -n 2 -d 1 -w 160 2>/dev/null | awk '/^top -/ {n++} n == 2 && /^ *[0-9]/ && $9 + 0 >= 10 {
    printf "  busy: pid %s %s%% cpu %s\n", $1, $9, $12 }' | head -n 5 || true
}

#!/usr/bin/env bash
# make bench: starts a throwaway stack from the release build and measures the API through
# lighttpd with wrk. Prints requests per second and latency percentiles.
#   BENCH_SECONDS (default 8), BENCH_CONNECTIONS (default 32), BENCH_THREADS (default 1)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. "$ROOT/scripts/stack.sh"

secs=${BENCH_SECONDS:-8}
conns=${BENCH_CONNECTIONS:-32}
threads=${BENCH_THREADS:-1}
export API_PROCESSES=${API_PROCESSES:-4}

stack_up release
trap 'stack_down; rm -rf "$STACK_VAR"' EXIT

user=bench$RANDOM$RANDOM
token=$(curl -fsS "$BASE_URL/api/auth/register" -H 'content-type: application/json' \
  -d "{\"username\":\"$user\",\"password\":\"bench-password\"}" | sed -E 's/.*"token":"([^"]+)".*/\1/')

summary() { # label, wrk output
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$2")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$2")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$2")
  local non2xx
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$2")
  printf '%-28s %10s req/s   p50 %-9s p99 %-9s %s\n' "$1" "$rps" "$p50" "$p99" \
    "${non2xx:+(non-2xx: $non2xx)}"
}

echo "wrk -t$threads -c$conns -d${secs}s, API_PROCESSES=$API_PROCESSES, through lighttpd on $BASE_URL"
out=$(wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -H "Authorization: Bearer $token" \
  "$BASE_URL/api/auth/me")
summary "GET /api/auth/me" "$out"

lua=$(mktemp /tmp/codecollab-bench.XXXXXX.lua)
cat >"$lua" <<LUA
wrk.method = "POST"
wrk.body = '{"name":"bench room","language":"python"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
out=$(wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$lua" "$BASE_URL/api/rooms")
rm -f "$lua"
summary "POST /api/rooms" "$out"

BASE_URL=$BASE_URL node "$ROOT/bench/ops.mjs"

#!/usr/bin/env bash
# make bench: starts a throwaway stack from the release build and measures the API through
# lighttpd with wrk (requests per second and latency percentiles), time per commit against
# the document's size (bench/commit_size.mjs), committed operations (bench/ops.mjs), fan-out
# from one writer to N SSE subscribers (bench/fanout_api.mjs), code execution end to end
# (bench/exec.mjs), a quiet room's wait under a noisy one (bench/fairness.mjs) and the bytes
# history stores (bench/history_bytes.mjs), what idle rooms hold in Redis and what their
# unloading frees and costs (bench/idle_rooms.mjs, a stack of its own), and what the metrics cost (bench/metrics_cost.sh,
# two stacks of its own), and last the `make cluster` layout's figures (bench/cluster.sh, about
# 1.5 minutes: `make bench-cluster` runs that part alone). The load generators run on the same cores as
# the stack; the machine's load is printed before and after. docs/BENCHMARKS.md has figures.
#   BENCH_SECONDS (default 8), BENCH_CONNECTIONS (default 32), BENCH_THREADS (default 1)
#   BENCH_FANOUT_MAX (default 10000): largest fan-out size of 100, 1,000, 5,000, 10,000
#   BENCH_ONLY: run only these parts, of "api size ops fanout exec fairness history idle
#   metrics cluster" (default all)
#   BENCH_HISTORY_SAVES (default 300): saves of the history part (bench/history_bytes.mjs),
#   which runs last on a stack of its own with SNAPSHOT_INTERVAL_MS=50
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
export WORKERS=${WORKERS:-2}
# exec.mjs runs about 150 jobs within a minute as one user; fairness.mjs queues 100 runs
# in one room at once
export EXECUTION_RATE_LIMIT=${EXECUTION_RATE_LIMIT:-100000}
export JOB_ROOM_BACKLOG_MAX=${JOB_ROOM_BACKLOG_MAX:-1000} JOB_USER_BACKLOG_MAX=${JOB_USER_BACKLOG_MAX:-1000}
# the benchmarks register a few dozen users from one address
export REGISTER_RATE_LIMIT=${REGISTER_RATE_LIMIT:-100000}
only=${BENCH_ONLY:-api size ops fanout exec fairness history idle metrics cluster}
want() { [[ " $only " == *" $1 "* ]]; }

machine

stack_up release
trap 'stack_down; rm -rf "$STACK_VAR"' EXIT
status=0

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

if want api; then
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
fi

if want size; then
  echo
  BASE_URL=$BASE_URL node "$ROOT/bench/commit_size.mjs" || status=1
  echo
fi

want ops && { BASE_URL=$BASE_URL node "$ROOT/bench/ops.mjs" || status=1; }

if want fanout; then
  # N subscribers need N descriptors in node (the stack's own limits are its own)
  max=${BENCH_FANOUT_MAX:-10000}
  fds=$(ulimit -Hn)
  if [ "$fds" != unlimited ] && [ "$fds" -lt $((max + 500)) ]; then
    max=$((fds - 500))
    echo "fan-out: at most $max subscribers (ulimit -Hn is $fds)"
  fi
  echo
  ( [ "$fds" = unlimited ] || ulimit -n "$fds"
    BENCH_FANOUT_MAX=$max exec node "$ROOT/bench/fanout_api.mjs") || status=1
fi

if want exec; then
  echo
  node "$ROOT/bench/exec.mjs" || status=1
fi

if want fairness; then
  echo
  node "$ROOT/bench/fairness.mjs" || status=1
fi

if want history; then
  # its own stack: saves every 50 ms instead of 2 s, so an hour of typing takes minutes
  stack_down; rm -rf "$STACK_VAR"
  unset JWT_SECRET_FILE # the first stack's, removed with it
  SNAPSHOT_INTERVAL_MS=50 stack_up release
  echo
  BASE_URL=$BASE_URL DATABASE_URL=$DATABASE_URL node "$ROOT/bench/history_bytes.mjs" || status=1
fi

if want idle; then
  # its own stack: rooms idle for 5 s are taken out of Redis, walks every second
  stack_down; rm -rf "$STACK_VAR"
  unset JWT_SECRET_FILE
  ROOM_UNLOAD_IDLE_S=5 SNAPSHOT_SWEEP_MS=1000 SNAPSHOT_INTERVAL_MS=200 stack_up release
  echo
  node "$ROOT/bench/idle_rooms.mjs" || status=1
fi

if want metrics; then
  echo
  "$ROOT/bench/metrics_cost.sh" || status=1
fi

if want cluster; then
  # the layout of several machines, on free ports of its own; this stack is not needed by then
  stack_down || status=1
  echo
  "$ROOT/bench/cluster.sh" || status=1
fi

echo
machine
exit $status

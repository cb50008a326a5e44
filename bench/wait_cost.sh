#!/usr/bin/env bash
# What durability costs the commit path end to end (REDIS_WAIT_REPLICAS, lib/rds.h): two
# throwaway stacks from the release build, each with a Redis replica attached to its Redis
# (redis-server --replicaof, on a free port), one whose API answers a commit only after
# WAIT 1 REDIS_WAIT_MS and one that does not wait; bench/ops.mjs runs against each (closed
# loop and fixed rates, 32 writers). The replication itself runs in both, so the difference
# is the wait. Figures in docs/BENCHMARKS.md ("Durability: WAIT").
#   BENCH_SECONDS (default 5 here), BENCH_OPS_RATES (as bench/ops.mjs)
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
export BENCH_SECONDS=${BENCH_SECONDS:-5}
export REGISTER_RATE_LIMIT=${REGISTER_RATE_LIMIT:-100000}
rpid=
cleanup() {
  [ -n "$rpid" ] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
  rpid=
  stack_down || true
  rm -rf "$STACK_VAR"
}
status=0
for w in 0 1; do
  export REDIS_WAIT_REPLICAS=$w
  stack_up release
  trap cleanup EXIT
  rport=$(stack_free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --replicaof 127.0.0.1 "$REDIS_PORT" \
    --save '' --appendonly no --dir "$STACK_VAR" >"$STACK_VAR/log/replica.log" 2>&1 &
  rpid=$!
  n=0
  until redis-cli -p "$rport" info replication 2>/dev/null | grep -q 'master_link_status:up'; do
    n=$((n + 1))
    [ "$n" -lt 300 ] || { echo "the replica did not come up"; cat "$STACK_VAR/log/replica.log"; exit 1; }
    sleep 0.1
  done
  echo "== REDIS_WAIT_REPLICAS=$w (a replica attached in both runs)"
  BASE_URL=$BASE_URL node "$ROOT/bench/ops.mjs" || status=1
  cleanup
  trap - EXIT
done
exit $status

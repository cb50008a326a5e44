#!/usr/bin/env bash
# make bench-cluster: the cluster figures (bench/cluster.mjs) from the release build, with
# the machine's load before and after (other work on the machine shows there).
#   BENCH_SECONDS (default 5 here), BENCH_CLUSTER_* (bench/cluster.mjs, bench/cluster_fanout.mjs)
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
export BENCH_SECONDS=${BENCH_SECONDS:-5}
# the layout's API processes per web node, not common.sh's for one stack
export API_PROCESSES=${BENCH_CLUSTER_API_PROCESSES:-2}
machine
# the subscribers need descriptors (each child process BENCH_CLUSTER_PER_PROCESS)
fds=$(ulimit -Hn)
[ "$fds" = unlimited ] || ulimit -n "$fds"
status=0
node "$ROOT/bench/cluster.mjs" || status=1
echo
machine
exit $status

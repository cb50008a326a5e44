#!/usr/bin/env bash
# Where our fan-out's time goes: runs bench/compare.sh for ours alone at one N (default 1,000)
# with more messages (default 300, 15 s of sends), and once all N streams are open on the
# broker, records lighttpd and the broker with `perf record -g` and counts their system calls
# and CPU time (`perf stat -e raw_syscalls:sys_enter,task-clock`) for PERF_SECONDS
# (default 6), then which calls for 3 s more (`perf trace -s`, which slows them down). Prints
# CPU and calls per delivered message, the split between the kernel and user space, and
# the hottest symbols. Root (perf), Debian's linux-perf.
#   bench/compare-perf.sh [N]       PERF_EVENTS (M), PERF_SECONDS, PERF_OUT (directory kept)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000}
M=${PERF_EVENTS:-300}
secs=${PERF_SECONDS:-6}
out=${PERF_OUT:-$(mktemp -d /tmp/codecollab-compare-perf.XXXXXX)}
mkdir -p "$out"
command -v perf >/dev/null || { echo "compare-perf: perf is missing (apt-get install linux-perf)" >&2; exit 1; }

BENCH_COMPARE_SYSTEMS=ours BENCH_COMPARE_N=$n BENCH_COMPARE_EVENTS=$M \
  BENCH_COMPARE_OUT=$out/results.json "$ROOT/bench/compare.sh" >"$out/compare.log" 2>&1 &
bench=$!
trap 'kill -INT $bench 2>/dev/null || true; wait $bench 2>/dev/null || true' EXIT

# the stack's broker and lighttpd: processes whose environment has the CC_VAR of a stack
# started after this script (bench/compare.sh prints its broker port)
port=
for _ in $(seq 600); do
  port=$(sed -n 's/^ours: .*broker on \([0-9]*\)$/\1/p' "$out/compare.log")
  [ -n "$port" ] && break
  kill -0 $bench 2>/dev/null || { cat "$out/compare.log"; exit 1; }
  sleep 0.2
done
[ -n "$port" ] || { echo "compare-perf: the stack did not start" >&2; exit 1; }
bpid=$(ss -Htlnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)
var=$(tr '\0' '\n' <"/proc/$bpid/environ" | sed -n 's/^CC_VAR=//p')
# every process of each (the broker's BROKER_PROCESSES, lighttpd's workers), as perf's
# comma-separated pid lists
bpid= lpid=
for p in /proc/[0-9]*; do
  exe=$(basename "$(readlink "$p/exe" 2>/dev/null || true)")
  case "$exe" in lighttpd | codecollab-broker) ;; *) continue ;; esac
  grep -qzx "CC_VAR=$var" "$p/environ" 2>/dev/null || continue
  if [ "$exe" = lighttpd ]; then lpid=${lpid:+$lpid,}${p#/proc/}; else bpid=${bpid:+$bpid,}${p#/proc/}; fi
done
if [ -z "$bpid" ] || [ -z "$lpid" ]; then echo "compare-perf: broker or lighttpd not found" >&2; exit 1; fi

# all N streams open on the broker (lighttpd's upstream connections), then 1 s of quiet
for _ in $(seq 600); do
  [ "$(ss -Htn state established "( sport = :$port )" | wc -l)" -ge "$n" ] && break
  sleep 0.2
done
sleep 1.5
echo "compare-perf: N=$n, recording broker $bpid and lighttpd $lpid for $secs s (output in $out)"
perf record -q -g -p "$bpid,$lpid" -o "$out/perf.data" -- sleep "$secs" 2>/dev/null &
rec=$!
perf stat -x, -e raw_syscalls:sys_enter,task-clock -p "$bpid" -o "$out/stat-broker.csv" -- sleep "$secs" &
s1=$!
perf stat -x, -e raw_syscalls:sys_enter,task-clock -p "$lpid" -o "$out/stat-lighttpd.csv" -- sleep "$secs" &
s2=$!
wait $rec $s1 $s2
# which calls: a second, shorter look (perf trace costs more)
timeout 5 perf trace -s -p "$bpid" -o "$out/trace-broker.txt" -- sleep 3 2>/dev/null &
t1=$!
timeout 5 perf trace -s -p "$lpid" -o "$out/trace-lighttpd.txt" -- sleep 3 2>/dev/null &
t2=$!
wait $t1 $t2 || true
wait $bench || true
trap - EXIT
grep -E 'N=|^\|' "$out/compare.log" || true
set +o pipefail # head ends the pipes below early

# messages delivered per second during the sends: N every 50 ms
per_s=$((n * 20))
for w in broker lighttpd; do
  calls=$(awk -F, '/raw_syscalls/ {print $1}' "$out/stat-$w.csv")
  cpu_ms=$(awk -F, '/task-clock/ {print $1}' "$out/stat-$w.csv")
  echo "$w: $calls system calls and $cpu_ms ms CPU in $secs s = $(awk -v c="$calls" -v t="$cpu_ms" -v s="$secs" -v r="$per_s" \
    'BEGIN {printf "%.2f calls and %.2f µs CPU", c / s / r, t * 1000 / s / r}') per delivered message (at $per_s messages/s)"
done
for w in broker lighttpd; do
  echo "== $w: system calls (perf trace -s, 3 s)"
  grep -E '^\s+[a-z_0-9]+\s+[0-9]+' "$out/trace-$w.txt" | sort -k2 -nr | head -n 8 || true
done
echo "== samples by process and object"
perf report -i "$out/perf.data" --no-children --sort comm,dso --stdio 2>/dev/null \
  | grep -E '^\s+[0-9.]+%' | head -n 10
echo "== hottest symbols"
perf report -i "$out/perf.data" --no-children --sort comm,dso,symbol --stdio 2>/dev/null \
  | grep -E '^\s+[0-9.]+%' | cut -c1-110 | head -n 40
echo "== user-space symbols"
perf report -i "$out/perf.data" --no-children --sort comm,dso,symbol --stdio 2>/dev/null \
  | grep -E '^\s+[0-9.]+%' | grep -v kernel.kallsyms | cut -c1-110 | head -n 20

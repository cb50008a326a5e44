#!/usr/bin/env bash
# What the metrics cost (docs/BENCHMARKS.md, "Metrics"): GET /api/auth/me through lighttpd
# on two stacks of the release build started side by side, one with every metric on (the
# API's counters in the shared file, and every metrics listener) and one with METRICS=off
# (nothing counted, no listener). wrk runs against them in turns, ROUNDS times each, so a
# change in the machine's load over the minute touches both alike; the figures of every run,
# their spread and the difference of the means are printed. Then, since a 2-core machine
# shared with the load generator swings by more than the cost sought, the recording itself:
# tests/unit/test_metrics.c --bench times what fcgi/main.c adds to one request.
#   BENCH_SECONDS (default 8), BENCH_CONNECTIONS (default 32), BENCH_THREADS (default 1),
#   BENCH_METRICS_ROUNDS (default 3)
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
rounds=${BENCH_METRICS_ROUNDS:-3}
export REGISTER_RATE_LIMIT=${REGISTER_RATE_LIMIT:-100000}

declare -A url var pid
down() {
  local k
  for k in "${!pid[@]}"; do
    STACK_PID=${pid[$k]} STACK_VAR=${var[$k]}
    stack_down || true
    rm -rf "${var[$k]}"
  done
}
trap down EXIT

for k in off on; do
  if [ "$k" = off ]; then export METRICS=off; else unset METRICS; fi
  unset JWT_SECRET_FILE # each stack makes its own key
  stack_up release
  url[$k]=$BASE_URL var[$k]=$STACK_VAR pid[$k]=$STACK_PID
done
unset METRICS

declare -A token
for k in off on; do
  token[$k]=$(curl -fsS "${url[$k]}/api/auth/register" -H 'content-type: application/json' \
    -d "{\"username\":\"bench$RANDOM$RANDOM\",\"password\":\"bench-password\"}" |
    sed -E 's/.*"token":"([^"]+)".*/\1/')
done
# the stack with metrics on really counts: its API answers /metrics with the requests
on_metrics=$(grep -E '^API_METRICS_URL=' "${var[on]}/run/env" | cut -d= -f2-)

echo "machine: $(nproc) cores;$(uptime | sed 's/.*load average/ load average/')"
echo "wrk -t$threads -c$conns -d${secs}s GET /api/auth/me, API_PROCESSES=$API_PROCESSES, $rounds rounds"
declare -A runs
for ((i = 1; i <= rounds; i++)); do
  for k in off on; do
    out=$(wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -H "Authorization: Bearer ${token[$k]}" \
      "${url[$k]}/api/auth/me")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    printf 'round %d  metrics %-3s %10s req/s   p50 %-9s p99 %-9s %s\n' "$i" "$k" "$rps" "$p50" \
      "$p99" "${non2xx:+(non-2xx: $non2xx)}"
    runs[$k]="${runs[$k]:-} $rps"
  done
done
counted=$(curl -fsS "$on_metrics" | awk '/^codecollab_api_requests_total\{route="GET \/api\/auth\/me",status="200"\}/ {print $NF}')
echo "the stack with metrics counted $counted GET /api/auth/me answers"
awk -v off="${runs[off]}" -v on="${runs[on]}" 'BEGIN {
  n = split(off, a, " "); split(on, b, " ")
  for (i = 1; i <= n; i++) { so += a[i]; son += b[i]
    if (i == 1 || a[i] < minoff) minoff = a[i]; if (i == 1 || a[i] > maxoff) maxoff = a[i]
    if (i == 1 || b[i] < minon) minon = b[i]; if (i == 1 || b[i] > maxon) maxon = b[i] }
  mo = so / n; mon = son / n
  printf "metrics off: mean %.0f req/s (%.0f to %.0f)\n", mo, minoff, maxoff
  printf "metrics on:  mean %.0f req/s (%.0f to %.0f)\n", mon, minon, maxon
  printf "difference of the means: %+.1f %% (the spread of one side: %.1f %%)\n",
    (mon - mo) / mo * 100, (maxoff - minoff) / mo * 100
}'
echo "machine:$(uptime | sed 's/.*load average/ load average/')"
echo
echo "the recording alone (build/release/tests/unit/test_metrics --bench 5000000):"
make --no-print-directory BUILD=release build/release/tests/unit/test_metrics >/dev/null
build/release/tests/unit/test_metrics --bench 5000000

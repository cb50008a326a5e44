#!/usr/bin/env bash
# make bench-compare: our fan-out against nginx + Nchan and Socket.IO 4 in one run
# (bench/compare.mjs measures; this starts and stops everything). Each system gets its own
# throwaway redis-server; nginx runs on a config of its own under a temporary directory (not
# the system service), the Socket.IO server is bench/compare-socketio.mjs, ours is a release
# stack of scripts/stack.sh (the URL `make run` prints: lighttpd in front). All on free
# ports on 127.0.0.1; every process started here is stopped on exit or Ctrl-C.
#   BENCH_COMPARE_N (default "1000 5000 10000"), BENCH_COMPARE_EVENTS, BENCH_COMPARE_SYSTEMS,
#   BENCH_COMPARE_CONCURRENCY, BENCH_COMPARE_OUT, BENCH_COMPARE_HARNESS (c: the SSE systems
#   through build/release/bin/bench-ssesub; node), BENCH_COMPARE_SUB_PROCESSES,
#   BENCH_COMPARE_WARMUP (1: one untimed message through each system first): see
#   bench/compare.mjs
#   NGINX_WORKERS (default: one per core)
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"
sizes=${BENCH_COMPARE_N:-1000 5000 10000}
export BENCH_COMPARE_N=$sizes
max=0
for n in $sizes; do [ "$n" -gt "$max" ] && max=$n; done

# N subscribers are N descriptors in node and in the server under test (nginx also holds
# one to Redis per channel and worker, lighttpd two per stream)
want_fds=$((2 * max + 2000))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$want_fds" ]; then
  ulimit -Hn "$want_fds" 2>/dev/null || true # root may raise it
fi
ulimit -n "$(ulimit -Hn)"
fds=$(ulimit -n)
# the subscribers of one process: with the C harness N over BENCH_COMPARE_SUB_PROCESSES; with
# node's, ours above BENCH_COMPARE_PER_PROCESS is split over processes (bench/compare.mjs)
if [ "${BENCH_COMPARE_HARNESS:-c}" = c ]; then
  subp=${BENCH_COMPARE_SUB_PROCESSES:-1}
  per=$(((max + subp - 1) / subp))
else
  per=${BENCH_COMPARE_PER_PROCESS:-15000}
fi
need=$((max < per ? max : per))
if [ "$fds" != unlimited ] && [ "$fds" -lt $((need + 500)) ]; then
  echo "bench-compare: ulimit -n is $fds, too few for N = $max (raise the hard limit)" >&2
  exit 2
fi

# the Socket.IO side's npm packages (package.json devDependencies)
if ! node -e 'Promise.all(["socket.io","@socket.io/redis-adapter","redis"].map((m)=>import(m))).catch(()=>process.exit(1))' 2>/dev/null; then
  echo "bench-compare: installing the npm devDependencies (socket.io, @socket.io/redis-adapter, redis)"
  npm view socket.io version >/dev/null || { echo "bench-compare: the npm registry is not reachable" >&2; exit 1; }
  npm install --no-audit --no-fund
fi
nchan_mod=/usr/lib/nginx/modules/ngx_nchan_module.so
if ! command -v nginx >/dev/null || [ ! -e "$nchan_mod" ]; then
  echo "bench-compare: nginx with Nchan is missing: run scripts/deps.sh compare (as root)" >&2
  exit 1
fi

CMP_TMP=$(mktemp -d /tmp/codecollab-compare.XXXXXX)
pids=()
STACK_PID=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  local p left=()
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  [ -n "$STACK_PID" ] && { stack_down || true; rm -rf "$STACK_VAR"; }
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; left+=("$p"); fi
  done
  # nginx's workers leave with their master; anything still running in our directory goes too
  for p in $(stack_procs "$CMP_TMP"); do kill -KILL "$p" 2>/dev/null || true; left+=("$p"); done
  [ ${#left[@]} -eq 0 ] || echo "bench-compare: had to kill ${left[*]}" >&2
  rm -rf "$CMP_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # port what
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench-compare: $2 did not start on port $1:" >&2
  tail -n 20 "$CMP_TMP"/*.log >&2 || true
  return 1
}

redis() { # name: starts a throwaway redis-server on port $redis_port
  redis_port=$(stack_free_port)
  mkdir -p "$CMP_TMP/$1"
  (cd "$CMP_TMP/$1" && exec redis-server --bind 127.0.0.1 --port "$redis_port" --save '' \
    --appendonly no --dir "$CMP_TMP/$1" --maxclients 20000 >"$CMP_TMP/$1.log" 2>&1) &
  pids+=($!)
  wait_port "$redis_port" "redis-server ($1)"
}
want_sys() { [[ " ${BENCH_COMPARE_SYSTEMS:-ours nchan socketio front} " == *" $1 "* ]]; }

echo "machine: $(nproc) cores;$(uptime | sed 's/.*load average/ load average/')"

# ---- Nchan -----------------------------------------------------------------------------
if want_sys nchan; then
  redis redis-nchan
  nredis=$redis_port
  nport=$(stack_free_port)
  mkdir -p "$CMP_TMP/nginx"
  cat >"$CMP_TMP/nginx/nginx.conf" <<EOF
load_module $nchan_mod;
daemon off;
worker_processes ${NGINX_WORKERS:-auto};
worker_rlimit_nofile $((want_fds + 1000));
pid $CMP_TMP/nginx/nginx.pid;
error_log $CMP_TMP/nginx.log warn;
events { worker_connections $((want_fds)); }
http {
  access_log off;
  client_body_temp_path $CMP_TMP/nginx/body;
  proxy_temp_path $CMP_TMP/nginx/proxy;
  fastcgi_temp_path $CMP_TMP/nginx/fastcgi;
  uwsgi_temp_path $CMP_TMP/nginx/uwsgi;
  scgi_temp_path $CMP_TMP/nginx/scgi;
  upstream bench_redis { nchan_redis_server redis://127.0.0.1:$nredis; }
  server {
    listen 127.0.0.1:$nport;
    location = /pub { nchan_publisher; nchan_channel_id \$arg_c; nchan_redis_pass bench_redis; }
    location = /sub {
      nchan_subscriber eventsource;
      nchan_channel_id \$arg_c;
      nchan_subscriber_first_message newest;
      nchan_redis_pass bench_redis;
    }
  }
}
EOF
  nginx -e "$CMP_TMP/nginx.log" -p "$CMP_TMP/nginx" -c "$CMP_TMP/nginx/nginx.conf" -t -q
  (cd "$CMP_TMP/nginx" && exec nginx -e "$CMP_TMP/nginx.log" -p "$CMP_TMP/nginx" -c "$CMP_TMP/nginx/nginx.conf") &
  pids+=($!)
  export NGINX_PID=$! NCHAN_URL=http://127.0.0.1:$nport
  wait_port "$nport" nginx
  echo "Nchan: nginx $(nginx -v 2>&1 | sed 's/.*\///'), libnginx-mod-nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null), on $NCHAN_URL, Redis on $nredis"
fi

# ---- Socket.IO -------------------------------------------------------------------------
if want_sys socketio; then
  redis redis-socketio
  sredis=$redis_port
  sport=$(stack_free_port)
  mkdir -p "$CMP_TMP/socketio"
  (cd "$CMP_TMP/socketio" && PORT=$sport REDIS_URL=redis://127.0.0.1:$sredis exec node --expose-gc "$ROOT/bench/compare-socketio.mjs" \
    >"$CMP_TMP/socketio.log" 2>&1) &
  pids+=($!)
  export SIO_PID=$! SIO_URL=http://127.0.0.1:$sport
  wait_port "$sport" "the Socket.IO server"
  echo "Socket.IO: socket.io $(node -p 'require("socket.io/package.json").version'), @socket.io/redis-adapter $(node -p 'require("@socket.io/redis-adapter/package.json").version') on $SIO_URL, Redis on $sredis"
fi

# ---- ours ------------------------------------------------------------------------------
if want_sys ours || want_sys front; then
  export REGISTER_RATE_LIMIT=${REGISTER_RATE_LIMIT:-100000}
  stack_up release
  echo "ours: release stack on $BASE_URL (lighttpd), broker on $BROKER_PORT"
else
  export BASE_URL=${BASE_URL:-http://127.0.0.1:9} # bench/lib.mjs wants one; nothing uses it
fi

# in the background, so that a signal to this script is handled at once (bash runs a trap
# only after a foreground command ends) and the harness is stopped with the rest
status=0
node "$ROOT/bench/compare.mjs" &
harness=$!
pids+=("$harness")
wait "$harness" || status=$?
echo "machine after:$(uptime | sed 's/.*load average/ load average/')"
exit "$status"

#!/usr/bin/env bash
# Starts the whole stack in the foreground: PostgreSQL and Redis under var/ (unless
# DATABASE_URL / REDIS_URL are given), the schema, the broker, the workers and lighttpd
# with the API. Ctrl-C, SIGTERM or SIGHUP — however many times they arrive — and the death
# of the parent (make) stop every child; so does scripts/watchdog.sh when this script is
# killed outright (SIGKILL), within WATCHDOG_GRACE_S (5) seconds. The stop gives each tier a
# bound, STOP_*_S (scripts/services.sh), then SIGKILL. See README.md for the variables.
# Once ready it supervises: a service that dies (PostgreSQL, Redis, the broker, the worker,
# the snapshotter, the web server) is started again after the restart back-off of
# scripts/supervise.sh, with one line in the output and in var/log/supervisor.log; the API
# processes are kept by scripts/keep-fcgi.sh on their sockets (docs/OPERATIONS.md,
# "Supervision"). One stack at a time on a CC_VAR: a start on one that a running stack
# (make run or make cluster) holds stops at once and changes nothing (svc_lock).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CC_ROOT=$ROOT
export CC_VAR=${CC_VAR:-$ROOT/var}
# a relative CC_VAR from where make was started (the data directory's place and name
# under /var/tmp depend on it: scripts/services.sh, pg_data_dir)
case "$CC_VAR" in /*) ;; *) CC_VAR=$PWD/$CC_VAR ;; esac
BUILD=${BUILD:-release}
export CC_BIN=${CC_BIN:-$ROOT/build/$BUILD/bin}
export PORT=${PORT:-8080}
export CC_BIND=${CC_BIND:-0.0.0.0}
export BROKER_PORT=${BROKER_PORT:-8081}
export PG_PORT=${PG_PORT:-5433}
export REDIS_PORT=${REDIS_PORT:-6380}
export API_PROCESSES=${API_PROCESSES:-4}
export WORKERS=${WORKERS:-2}
export WEB=${WEB:-lighttpd}
# Prometheus metrics (docs/OPERATIONS.md "Metrics"): each program on a port of its own on
# METRICS_HOST (loopback unless you say otherwise), never on PORT; 0 (the default): none.
# The API's come from the web server's own listener on METRICS_PORT.
export METRICS_HOST=${METRICS_HOST:-127.0.0.1}
export METRICS_PORT=${METRICS_PORT:-0}
export BROKER_METRICS_PORT=${BROKER_METRICS_PORT:-0}
export WORKER_METRICS_PORT=${WORKER_METRICS_PORT:-0}
export SNAPSHOTTER_METRICS_PORT=${SNAPSHOTTER_METRICS_PORT:-0}
METRICS_VARS="METRICS_PORT BROKER_METRICS_PORT WORKER_METRICS_PORT SNAPSHOTTER_METRICS_PORT"
LOG_MAX_MB=${LOG_MAX_MB:-100}
LOG_CHECK_S=${LOG_CHECK_S:-60}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
STOP_FRONT_S=${STOP_FRONT_S:-20} # lighttpd (or Apache) in the stop; the other bounds: services.sh

# shellcheck source=services.sh
. "$ROOT/scripts/services.sh"
# shellcheck source=stream-idle.sh
. "$ROOT/scripts/stream-idle.sh"
# shellcheck source=csp-conf.sh
. "$ROOT/scripts/csp-conf.sh"

say() { printf 'codecollab: %s\n' "$*"; }
die() { printf 'codecollab: error: %s\n' "$*" >&2; exit 1; }
check_bind
# where clients on this machine (the start's own checks, tests, tools) reach the front door
local_host=$(local_host "$CC_BIND") shown_host=$(shown_host "$CC_BIND")

# The supervised services (scripts/services.sh: spid, st0, sdue, snrest, sexit). progs: the
# programs in start order (stopped in reverse, the front door first); postgres and redis are
# stopped last.
pids=() # every pid of the stack, for the stop (the API processes under Apache too)
pnames=() # their names in the supervisor's table, for the stop's lines
pg_pid=""
redis_pid=""
stopping=0

stop_all() {
  # From here on every further stop signal is ignored, not reset to its default: a
  # supervisor signals make's whole process group, so the script gets SIGTERM from it and
  # again from make (which forwards it to its recipe), and a default action would kill the
  # script half-way through, leaving the services running. SIGPIPE too: the terminal or
  # make reading our output may be gone already. The services are in sessions of their own
  # and get only the signals sent below. First of all, so no signal finds a window.
  trap '' INT TERM HUP QUIT PIPE
  [ "$stopping" = 1 ] && return
  stopping=1
  # said first, so a stop that takes long shows it has begun (and when)
  notice "stopping everything (the front door first, the data stores last)" || true
  # a one-time command of the start under way (initdb, schema.sql: oneshot) ends first
  svc_stop_oneshot || true
  # A signal can arrive between `setsid … &` and the line recording its pid: the last
  # background process is stopped too when no list holds it (or it is our own `sleep`).
  # Only while it is still our child: a finished `sleep` was reaped, and its pid may belong
  # to an unrelated process by now.
  local last=${!:-} last_parent=""
  sync_pids
  [ -z "$last" ] || ppid_of last_parent "$last"
  if [ -n "$last" ] && [ "$last_parent" = "$$" ] &&
    ! in_list "$last" "${pids[@]}" "$redis_pid" "$pg_pid" "$watchdog_pid"; then
    svc_note "$last"
    svc_kill TERM "$last"
    gone_or_kill "$last" "$STOP_STARTING_S" "the service started last"
  fi
  # The front door first (lighttpd finishes the requests in flight), then the programs
  # behind it — the worker may take SHUTDOWN_GRACE_MS (30 s) to finish running jobs, which
  # stays below STOP_PROGRAMS_S —, and the data stores last, so everything before them can
  # still write. The programs get their signal together and have STOP_PROGRAMS_S together
  # (gone_or_kill_all), not each in turn. With every service refusing to end the stop takes
  # about STOP_FRONT_S + STOP_PROGRAMS_S + STOP_LEFTOVERS_S (left-over API processes) +
  # STOP_REDIS_S + STOP_POSTGRES_S, by default 20 + 40 + 10 + 20 + 30 = 120 s, STOP_STARTING_S
  # (20 s) more when the stop comes while a service is being started or a one-time command of
  # the start runs (oneshot), and a moment for each SIGKILL to take.
  # The front door by its name: while it waits to be started again, the others are all
  # programs, and none of them is stopped ahead of the rest.
  local i n=${#pids[@]} gone=() front=-1
  for ((i = 0; i < n; i++)); do
    case "${pnames[$i]}" in lighttpd | apache) front=$i ;; esac
  done
  if [ "$front" -ge 0 ]; then
    svc_kill TERM "${pids[$front]}"
    gone_or_kill "${pids[$front]}" "$STOP_FRONT_S" "${pnames[$front]}"
  fi
  for ((i = n - 1; i >= 0; i--)); do
    [ "$i" -eq "$front" ] && continue
    svc_kill TERM "${pids[$i]}"
    gone+=("${pnames[$i]}" "${pids[$i]}")
  done
  gone_or_kill_all "$STOP_PROGRAMS_S" "${gone[@]}"
  # what a web server that died left (it may have died just before this stop)
  stop_leftovers apache2 KILL
  [ "$WEB" = apache ] || stop_leftovers keep-fcgi.sh
  # an API process its keeper could not stop (one that does not act on SIGTERM outlives the
  # keeper's SIGKILL above)
  [ "$WEB" = apache ] || stop_leftovers codecollab-api KILL
  # lighttpd's worker processes (server.max-worker) outlive a master killed outright
  [ "$WEB" = apache ] || stop_leftovers lighttpd KILL
  if [ -n "$redis_pid" ]; then
    svc_kill TERM "$redis_pid"
    gone_or_kill "$redis_pid" "$STOP_REDIS_S" redis
  fi
  if [ -n "$pg_pid" ]; then
    svc_kill INT "$pg_pid" # PostgreSQL's "fast" shutdown
    gone_or_kill "$pg_pid" "$STOP_POSTGRES_S" postgres
  fi
  svc_watchdog_stop
}

sync_pids() { # pids (pnames), pg_pid, redis_pid from the supervisor's table (the running ones)
  local n
  pids=() pnames=()
  for n in "${progs[@]}"; do
    [ -n "${spid[$n]:-}" ] || continue
    pids+=("${spid[$n]}")
    pnames+=("$n")
  done
  pg_pid=${spid[postgres]:-}
  redis_pid=${spid[redis]:-}
  return 0
}

# Starts one service by name, in a session of its own (setsid): Ctrl-C in the terminal
# reaches only this script, which then stops the services in order, instead of all of them
# at once. The same command starts it again after a crash. None gets the lock's descriptor
# (9>&- on the case: svc_lock, scripts/services.sh).
start_service() { # name
  local af
  case "$1" in
    postgres)
      setsid "${as_pg[@]}" "$PG_BIN/postgres" -D "$(pg_real "$pgdata")" -p "$PG_PORT" -k "$(pg_real "$CC_VAR/run/pg")" \
        -c listen_addresses='' -c fsync=on -c max_connections=200 \
        >>"$CC_VAR/log/postgres.log" 2>&1 & ;;
    redis)
      setsid redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$CC_VAR/redis" \
        --unixsocket "$CC_VAR/run/redis.sock" --unixsocketperm 700 \
        --appendonly yes --appendfsync everysec --save '' --daemonize no \
        --logfile "$CC_VAR/log/redis.log" --protected-mode yes & ;;
    # signs of life in a file each (scripts/services.sh: svc_hang_check)
    broker) svc_alive_file af broker
      ALIVE_FILE=$af setsid "$CC_BIN/codecollab-broker" >>"$CC_VAR/log/broker.log" 2>&1 & ;;
    worker) svc_alive_file af worker
      ALIVE_FILE=$af setsid "$CC_BIN/codecollab-worker" >>"$CC_VAR/log/worker.log" 2>&1 & ;;
    snapshotter) svc_alive_file af snapshotter
      ALIVE_FILE=$af setsid "$CC_BIN/codecollab-snapshotter" </dev/null >>"$CC_VAR/log/snapshotter.log" 2>&1 & ;;
    apache)
      stop_leftovers apache2 KILL
      setsid apache2 -f "$ROOT/deploy/apache/codecollab.conf" "${apache_defs[@]}" >>"$CC_VAR/log/apache.log" 2>&1 & ;;
    lighttpd)
      # the API processes are lighttpd's children (bin-path), each kept by keep-fcgi.sh;
      # those of a lighttpd that died must be gone first: a new lighttpd finding a socket
      # still answered takes it for someone else's and never starts a process on it
      stop_leftovers keep-fcgi.sh
      # the worker processes (server.max-worker) of a lighttpd killed outright keep serving
      # on its port, with API processes that are gone: they go before a new one starts
      stop_leftovers lighttpd KILL
      setsid lighttpd -D -f "$ROOT/lighttpd.conf" >>"$CC_VAR/log/lighttpd.log" 2>&1 & ;;
    *) die "no such service: $1" ;;
  esac 9>&-
  svc_started "$1" "$!"
  case "$1" in postgres | redis) ;; *) in_list "$1" "${progs[@]}" || progs+=("$1") ;; esac
  sync_pids
}

# Adds a process the supervisor only watches (the API processes under Apache: spawn-fcgi
# started them, keep-fcgi.sh in each restarts the program itself).
watch_service() { # name pid
  # spawn-fcgi puts each of its children in a session of its own (setsid), though maybe only
  # after it wrote the pid file: the pid is the session's id, whatever /proc says yet
  svc_started "$1" "$2"
  snrest[$1]=keep
  progs+=("$1")
  sync_pids
}

# One stack per CC_VAR (scripts/services.sh): before anything in it is written, and before
# the traps, whose stop would act on the stack that holds it
svc_lock "make run"
# before the traps: the stop uses them
svc_check_stop_bounds

trap 'stop_all; exit 130' INT
trap 'stop_all; exit 0' TERM
trap 'stop_all; exit 129' HUP # the terminal closed
trap 'stop_all' EXIT

for b in codecollab-api codecollab-broker codecollab-worker codecollab-snapshotter; do
  [ -x "$CC_BIN/$b" ] || die "$CC_BIN/$b is missing: run 'make build' first"
done

case "$WEB" in
  lighttpd) ;;
  apache)
    for b in apache2 spawn-fcgi; do
      command -v "$b" >/dev/null || die "WEB=apache needs $b (apt-get install apache2 spawn-fcgi; make run installs them)"
    done ;;
  *) die "WEB must be lighttpd (the default) or apache (got '$WEB')" ;;
esac
msg=$(sup_check_settings) || die "$msg"
# the front door's hold on a stream whose client takes no bytes (scripts/stream-idle.sh)
msg=$(stream_idle_s 2>&1) || die "$msg"
for v in LOG_MAX_MB LOG_CHECK_S $METRICS_VARS; do
  case "${!v}" in '' | *[!0-9]*) die "$v must be a whole number (got '${!v}')" ;; esac
done
[ "$LOG_CHECK_S" -ge 1 ] || die "LOG_CHECK_S must be at least 1"

mkdir -p "$CC_VAR"/{log,run,redis}
svc_check_hang_setting
chmod 755 "$CC_VAR"
# from here on a SIGKILL of this script (no trap runs) still stops the stack: scripts/watchdog.sh
svc_watchdog_start

# --- capacity (docs/OPERATIONS.md, "Capacity") ------------------------------------------
# How many streams the front door and the broker hold is set here, on both sides together,
# from the descriptors a process may have: a stream is one in the broker and two in
# lighttpd (the client's and the proxy's), and the broker must refuse a stream with a 503
# (BROKER_MAX_STREAMS) before lighttpd runs out and stops accepting without an answer.
# Root raises the hard limit when the system lets it; otherwise lighttpd and the broker
# run as many processes as that limit needs.
export BROKER_MAX_STREAMS=${BROKER_MAX_STREAMS:-25000}
case "$BROKER_MAX_STREAMS" in '' | *[!0-9]* | 0) die "BROKER_MAX_STREAMS must be a positive whole number (got '$BROKER_MAX_STREAMS')" ;; esac
fd_hard=$(ulimit -Hn)
[ "$fd_hard" = unlimited ] && fd_hard=1048576
if [ "$fd_hard" -lt 65536 ] && ulimit -Hn 65536 2>/dev/null; then fd_hard=65536; fi
ulimit -n "$fd_hard"
# lighttpd: every worker process (server.max-worker) takes max-fds, and stops accepting at
# 90 % of them; 2048 descriptors are kept for the API's requests and the static files
export LIGHTTPD_MAX_FDS=${LIGHTTPD_MAX_FDS:-$((fd_hard < 65536 ? fd_hard : 65536))}
[ "$LIGHTTPD_MAX_FDS" -le "$fd_hard" ] || die "LIGHTTPD_MAX_FDS ($LIGHTTPD_MAX_FDS) is above the open-files limit ($fd_hard)"
lt_usable=$((LIGHTTPD_MAX_FDS * 9 / 10 - 256))
export LIGHTTPD_WORKERS=${LIGHTTPD_WORKERS:-$(((2 * BROKER_MAX_STREAMS + 2048 + lt_usable - 1) / lt_usable))}
export LIGHTTPD_MAX_CONNECTIONS=$((LIGHTTPD_MAX_FDS / 2))
# the broker: a process holds as many clients as its descriptors, less 256 of its own
br_fit=$((fd_hard - 256))
br_want=$((BROKER_MAX_STREAMS + 1000))
export BROKER_MAX_CLIENTS=${BROKER_MAX_CLIENTS:-$((br_want < br_fit ? br_want : br_fit))}
# and one process per core (at most 8), each fanning out to its share of the streams: the
# kernel spreads new connections over the processes (SO_REUSEPORT), so a room's event is
# written to its subscribers by all cores at once
br_fd_procs=$(((br_want + BROKER_MAX_CLIENTS - 1) / BROKER_MAX_CLIENTS))
br_cores=$(nproc 2>/dev/null || echo 1)
[ "$br_cores" -le 8 ] || br_cores=8
export BROKER_PROCESSES=${BROKER_PROCESSES:-$((br_fd_procs > br_cores ? br_fd_procs : br_cores))}

check_port "$PORT" "HTTP" PORT "$CC_BIND"
# (the broker's port is checked on its address, once that is known: below)
for v in $METRICS_VARS; do
  [ "${!v}" -le 65535 ] || die "$v must be a port number (got '${!v}')"
  [ "${!v}" -eq 0 ] || check_port "${!v}" "metrics" "$v" "$METRICS_HOST"
done
case "$METRICS_HOST" in *:*) metrics_addr="[$METRICS_HOST]" ;; *) metrics_addr=$METRICS_HOST ;; esac
# The API processes add up their counters in one shared file (fcgi/api_metrics.h), new at
# every start.
if [ "$METRICS_PORT" -gt 0 ]; then
  export API_METRICS_FILE=$CC_VAR/run/api-metrics
  rm -f "$API_METRICS_FILE"
else
  unset API_METRICS_FILE
fi

# lighttpd's address (run/bind.conf, which lighttpd.conf reads after its server.bind): lighttpd
# takes an IPv6 address only in brackets, and `::` is then for IPv4 clients too, as the
# broker's is (server.v4mapped). Without this a CC_BIND such as :: or ::1 stopped lighttpd
# at start ("Address family for hostname not supported").
: >"$CC_VAR/run/bind.conf"
case "$CC_BIND" in
  *:*)
    printf 'server.bind := "[%s]"\nserver.v4mapped = "enable"\n' "$CC_BIND" >"$CC_VAR/run/bind.conf" ;;
esac

# --- HTTPS (and with it HTTP/2): TLS_CERT + TLS_KEY, or TLS=self-signed ------------------
# lighttpd reads $CC_VAR/run/tls.conf (lighttpd.conf includes it; empty = plain HTTP). With
# TLS_PORT, PORT stays plain HTTP and HTTPS is served on TLS_PORT as well; without it, PORT
# itself serves HTTPS.
scheme=http
: >"$CC_VAR/run/tls.conf"
if [ "${TLS:-}" = self-signed ] && [ -z "${TLS_CERT:-}${TLS_KEY:-}" ]; then
  mkdir -p "$CC_VAR/tls"
  TLS_CERT=$CC_VAR/tls/self-signed.crt TLS_KEY=$CC_VAR/tls/self-signed.key
  if [ ! -s "$TLS_CERT" ] || [ ! -s "$TLS_KEY" ]; then
    say "creating a self-signed certificate for localhost in $CC_VAR/tls/ (for trying HTTPS out)"
    (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -days 365 -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
      -keyout "$TLS_KEY" -out "$TLS_CERT" >"$CC_VAR/log/tls.log" 2>&1) ||
      die "openssl could not create a certificate (see $CC_VAR/log/tls.log)"
  fi
elif [ -n "${TLS:-}" ] && [ "${TLS:-}" != self-signed ]; then
  die "TLS may only be 'self-signed' (for a real certificate set TLS_CERT and TLS_KEY)"
fi
if [ -n "${TLS_CERT:-}${TLS_KEY:-}" ]; then
  [ -n "${TLS_CERT:-}" ] && [ -n "${TLS_KEY:-}" ] || die "TLS_CERT and TLS_KEY go together: set both"
  for f in "$TLS_CERT" "$TLS_KEY"; do
    [ -r "$f" ] || die "cannot read $f (TLS_CERT / TLS_KEY)"
    case "$f" in *'"'*) die "TLS_CERT / TLS_KEY may not contain a double quote: $f" ;; esac
  done
  [ -f /usr/lib/lighttpd/mod_openssl.so ] ||
    die "lighttpd's TLS module is missing: apt-get install lighttpd-mod-openssl (make run does this)"
  tls_block="ssl.engine = \"enable\"
  ssl.pemfile = \"$TLS_CERT\"
  ssl.privkey = \"$TLS_KEY\""
  # Each file below is built in a variable first and written with one printf: a stop
  # signal's trap runs between two commands, and inside a block redirected to the file it
  # would print the stop's lines into it.
  tls_conf='server.modules += ( "mod_openssl" )'
  if [ -n "${TLS_PORT:-}" ]; then
    check_port "$TLS_PORT" "HTTPS" TLS_PORT "$CC_BIND"
    case "$CC_BIND" in *:*) tls_sock="[$CC_BIND]:$TLS_PORT" ;; *) tls_sock="$CC_BIND:$TLS_PORT" ;; esac
    printf -v tls_block '$SERVER["socket"] == "%s" {\n  %s\n}' "$tls_sock" "$tls_block"
  else
    scheme=https
  fi
  printf '%s\n%s\n' "$tls_conf" "$tls_block" >"$CC_VAR/run/tls.conf"
fi
# --- Direct streams (docs/OPERATIONS.md, "Direct streams") -------------------------------
# STREAM_ORIGIN=auto (the default with lighttpd): the API tells clients that came over plain
# HTTP to open their streams at http://<the host they used>:BROKER_PORT, so the broker listens
# on CC_BIND, and the page's Content-Security-Policy lets it connect there (run/csp.conf,
# which lighttpd.conf includes). An origin: that one (a TLS terminator in front of the broker,
# say). off (the default with Apache, whose site has its own policy): streams stay on the
# front door's /events/.
export STREAM_ORIGIN=${STREAM_ORIGIN:-$([ "$WEB" = apache ] && echo off || echo auto)}
# auto: the broker is reached where the page was, so it listens where lighttpd does (an
# origin of your own is served by whatever you put there; it keeps to 127.0.0.1 unless told)
[ "$STREAM_ORIGIN" = auto ] && export BROKER_HOST=${BROKER_HOST:-$CC_BIND}
export BROKER_HOST=${BROKER_HOST:-127.0.0.1}
# lighttpd's proxy reaches the broker at its address, or at loopback when it listens on all
# (lighttpd.conf includes run/broker-proxy.conf; without it: 127.0.0.1)
: >"$CC_VAR/run/broker-proxy.conf"
case "$BROKER_HOST" in
  0.0.0.0 | :: | 127.0.0.1) ;;
  *'"'* | *' '*) die "BROKER_HOST must be an IP address (got '$BROKER_HOST')" ;;
  *) printf 'proxy.server := ( "" => (( "host" => "%s", "port" => env.BROKER_PORT )) )\n' "$BROKER_HOST" \
    >"$CC_VAR/run/broker-proxy.conf" ;;
esac
check_port "$BROKER_PORT" "broker" BROKER_PORT "$BROKER_HOST"
# how long lighttpd keeps a stream whose client takes no bytes (run/stream-idle.conf)
stream_idle_conf "$CC_VAR/run/stream-idle.conf"
# the page's policy lets it connect to the broker (run/csp.conf: scripts/csp-conf.sh)
csp_err=$(csp_conf "$CC_VAR/run/csp.conf" 2>&1) || die "$csp_err"

# lighttpd's metrics listener (lighttpd.conf includes run/metrics.conf): plain HTTP on
# METRICS_HOST:METRICS_PORT, where /metrics reaches the API and nothing else is served.
: >"$CC_VAR/run/metrics.conf"
if [ "$METRICS_PORT" -gt 0 ]; then
  metrics_off=""
  [ "$scheme" = https ] && metrics_off=$'  ssl.engine = "disable"\n'
  printf '$SERVER["socket"] == "%s:%s" {\n%s%s\n%s\n}\n' "$metrics_addr" "$METRICS_PORT" "$metrics_off" \
    '  url.rewrite-once = ( "^/metrics$" => "/api/metrics" )' \
    '  $HTTP["url"] != "/api/metrics" { url.access-deny = ( "" ) }' >"$CC_VAR/run/metrics.conf"
fi

# --- JWT key: JWT_SECRET, else JWT_SECRET_FILE, else one generated once into var/ -----
jwt_setup

# --- PostgreSQL ------------------------------------------------------------------------
if [ -z "${DATABASE_URL:-}" ]; then
  [ -x "$PG_BIN/postgres" ] || die "PostgreSQL binaries not found (PG_BIN=$PG_BIN)"
  pgdata=$CC_VAR/pg
  pg_data_dir "$pgdata"
  pg_initdb "$pgdata" initdb
  # Unix socket only, in var/run/pg: nothing listens on TCP, so trust auth reaches no one
  # who cannot already read var/.
  start_service postgres
  wait_for "PostgreSQL" 30 "$PG_BIN/pg_isready" -t 5 -q -h "$CC_VAR/run/pg" -p "$PG_PORT"
  pg_create_db "$PG_PORT"
  DATABASE_URL=$(pg_app_url "$PG_PORT")
  export DATABASE_URL
fi
pg_schema "$DATABASE_URL"

# --- Redis -----------------------------------------------------------------------------
if [ -z "${REDIS_URL:-}" ]; then
  check_port "$REDIS_PORT" "Redis" REDIS_PORT
  # the programs on this machine talk to it over a Unix socket (cheaper per round trip
  # than loopback TCP: docs/BENCHMARKS.md, "Write path"); the TCP port is for tools
  start_service redis
  redis_wait redis "$REDIS_PORT"
  export REDIS_URL="unix://$CC_VAR/run/redis.sock"
  # data kept in var/redis by an older version: its keys to the current layout (lib/rkeys.def);
  # a one-time command, as it may scan many keys (once it succeeded it leaves a mark, and
  # later starts skip the scan and only fill in missing visibility keys:
  # UPGRADE_KEYS_FORCE=1 for the whole of it again)
  oneshot "renaming the Redis keys" "" "$ROOT/scripts/redis-upgrade-keys.sh" ||
    die "renaming the Redis keys of an older version failed"
fi

# --- the broker, the workers, lighttpd with the API ------------------------------------
start_service broker
start_service worker
start_service snapshotter
if [ "$WEB" = apache ]; then
  # The API under spawn-fcgi (API_PROCESSES processes on one Unix socket, each kept running
  # by keep-fcgi.sh), Apache in front (deploy/apache/codecollab.conf). Apache's children
  # run as www-data when we are root; they only need the socket and htdocs/.
  [ -z "${TLS_CERT:-}" ] || die "make run sets up HTTPS with lighttpd only; with Apache, terminate TLS in your own site (docs/DEPLOY.md)"
  rm -f "$CC_VAR/run/api.sock" "$CC_VAR/run/api.pids"
  KEEP_FCGI_LOG=$CC_VAR/log/api.log setsid spawn-fcgi -s "$CC_VAR/run/api.sock" -M 0666 -F "$API_PROCESSES" -P "$CC_VAR/run/api.pids" \
    -- "$ROOT/scripts/keep-fcgi.sh" "$CC_BIN/codecollab-api" >>"$CC_VAR/log/api.log" 2>&1 </dev/null 9>&- ||
    die "spawn-fcgi could not start the API (see $CC_VAR/log/api.log)"
  i=0
  while read -r p || [ -n "$p" ]; do # spawn-fcgi ends the last pid without a newline
    [ -n "$p" ] && i=$((i + 1)) && watch_service "api-$i" "$p"
  done <"$CC_VAR/run/api.pids"
  case "$CC_BIND" in *:*) CC_LISTEN="[$CC_BIND]:$PORT" ;; *) CC_LISTEN="$CC_BIND:$PORT" ;; esac
  if [ "$(id -u)" = 0 ]; then CC_APACHE_USER=www-data CC_APACHE_GROUP=www-data
  else CC_APACHE_USER=$(id -un) CC_APACHE_GROUP=$(id -gn); fi
  export CC_LISTEN CC_APACHE_USER CC_APACHE_GROUP
  # Apache's Timeout: how long a write to a client that takes no bytes may wait (as lighttpd's
  # server.max-write-idle); -c applies it after the configuration file
  apache_defs=(-DFOREGROUND -c "Timeout $(stream_idle_s)")
  if [ "$METRICS_PORT" -gt 0 ]; then
    export CC_METRICS_LISTEN=$metrics_addr:$METRICS_PORT
    apache_defs+=(-DCC_METRICS)
  fi
  start_service apache
else
  start_service lighttpd
fi

wait_for "the API" 30 curl -kfsS --max-time 5 "$scheme://$local_host:$PORT/api/health"
wait_for "the broker" 20 curl -kfsS --max-time 5 "$scheme://$local_host:$PORT/events/health"
# the workers announce their runtimes once the sandbox works (a start error, such as a
# runtime RUNTIMES_EXTRA names but that is not installed, ends them: check_children says so)
if [ -z "${PISTON_URL:-}" ]; then
  wait_for "the workers" 60 curl -kfsS --max-time 5 "$scheme://$local_host:$PORT/api/runtimes"
fi
# What clients on this machine (tests, tools) need to reach the same servers: built first,
# written after (as tls.conf above).
printf -v env_file 'DATABASE_URL=%q\nREDIS_URL=%q\nJWT_SECRET_FILE=%q\nBASE_URL=%q\n' \
  "$DATABASE_URL" "$REDIS_URL" "${JWT_SECRET_FILE:-}" "$scheme://$local_host:$PORT"
if [ -n "${TLS_PORT:-}" ] && [ -n "${TLS_CERT:-}" ]; then
  printf -v env_file '%sTLS_URL=%q\n' "$env_file" "https://$local_host:$TLS_PORT"
fi
# the certificate, for clients that must trust a self-signed one (not TLS_CERT: whoever
# reads this file may start another stack)
[ -z "${TLS_CERT:-}" ] || printf -v env_file '%sCC_TLS_CA=%q\n' "$env_file" "$TLS_CERT"
metrics_url() { # name port: its line, added to env_file
  [ "$2" -eq 0 ] || printf -v env_file '%s%s=%q\n' "$env_file" "$1" "http://$metrics_addr:$2/metrics"
}
metrics_url API_METRICS_URL "$METRICS_PORT"
metrics_url BROKER_METRICS_URL "$BROKER_METRICS_PORT"
metrics_url WORKER_METRICS_URL "$WORKER_METRICS_PORT"
metrics_url SNAPSHOTTER_METRICS_URL "$SNAPSHOTTER_METRICS_PORT"
printf '%s' "$env_file" >"$CC_VAR/run/env"
say "capacity: $BROKER_MAX_STREAMS streams (the broker: $BROKER_PROCESSES process(es) of $BROKER_MAX_CLIENTS clients; lighttpd: $LIGHTTPD_WORKERS process(es) of $LIGHTTPD_MAX_FDS descriptors)"
say "ready: $scheme://$shown_host:$PORT/  (Ctrl-C stops everything; logs in $CC_VAR/log/)"
if [ -n "${TLS_PORT:-}" ] && [ -n "${TLS_CERT:-}" ]; then
  say "HTTPS (HTTP/2) also on https://$shown_host:$TLS_PORT/"
fi
[ -n "${CC_READY_FILE:-}" ] && : >"$CC_READY_FILE"

svc_supervise

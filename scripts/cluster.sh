#!/usr/bin/env bash
# `make cluster`: the layout of several machines, on one machine (docs/SCALING.md), in the
# foreground like `make run`, with its data under var/cluster/:
#   haproxy        on PORT, the only public port: /events/ to the brokers, the rest to the web
#                  nodes; health-checked, no stickiness
#   web-N          lighttpd with its FastCGI API processes (API_PROCESSES each)
#   broker-N, worker-N, snapshotter-N
#   redis-1..6     a Redis Cluster of three masters and three replicas (CLUSTER_REDIS=single:
#                  one plain redis-server instead, for small setups)
#   pg-primary, pg-replica   PostgreSQL with a streaming hot standby (pg_basebackup -R); the
#                  API sends the reads that may lag to the replica (DATABASE_READ_URL)
# Every process is supervised as under `make run` (scripts/services.sh): one that dies is
# started again after the restart back-off. Ctrl-C, SIGTERM, SIGHUP or the death of the parent
# stop everything, the front door first and the data stores last. Should this script itself be
# killed outright (SIGKILL: no trap runs), scripts/watchdog.sh stops every service it started
# within a few seconds (SIGTERM, SIGKILL after WATCHDOG_GRACE_S, 5). $CC_VAR/topology.json
# describes the layout: every process with its name, role, pid and ports, which PostgreSQL
# server is the primary and which Redis node a master or a replica (and of which master);
# written with "state": "starting" once the data stores are up, with "ready" once everything
# answers (then it prints "ready: http://localhost:PORT/"), and again whenever a restarted
# process changes a pid. $CC_VAR/run/env holds the URLs for tools and tests. A CC_VAR that
# a running make cluster or make run holds is refused at once (svc_lock, scripts/services.sh).
#
# Settings (environment): PORT (8080) and CC_BIND (0.0.0.0): where HAProxy listens, the one
# address of the layout open to clients; CLUSTER_PORT_BASE (PORT+1): the other ports are taken
# from it upwards, one each for the web nodes, the brokers, the PostgreSQL servers and the
# Redis nodes (whose cluster bus is on port + 10000); CLUSTER_WEB_NODES, CLUSTER_BROKERS,
# CLUSTER_WORKERS, CLUSTER_SNAPSHOTTERS (2 each); CLUSTER_REDIS (cluster | single);
# REDIS_NODE_TIMEOUT_MS (2000: how long a master may be silent before its replica takes
# over); API_PROCESSES (2 per web node); BROKER_MAX_STREAMS (each broker's; by default the
# brokers together stay 1,000 below HAProxy's maxconn, half the hard open-files limit); CC_VAR ($ROOT/var/cluster); CC_READY_FILE (touched
# when ready, for tests); WATCHDOG_GRACE_S (5: after a SIGKILL of this script, how long the
# services have between SIGTERM and SIGKILL); the stop's bounds in seconds, STOP_FRONT_S
# (HAProxy, 10), STOP_PROGRAMS_S (40), STOP_LEFTOVERS_S (10), STOP_REDIS_S (20),
# STOP_POSTGRES_S (30), STOP_STARTING_S (20), as under `make run` (scripts/services.sh);
# STREAM_IDLE_S (120: how long HAProxy keeps a stream whose client takes no bytes, raised to
# twice the brokers' heartbeat or long-poll wait and 2 s: scripts/stream-idle.sh); the
# programs' own settings pass through.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CC_ROOT=$ROOT
export CC_VAR=${CC_VAR:-$ROOT/var/cluster}
# a relative CC_VAR from where make was started (the data directory's place and name
# under /var/tmp depend on it: scripts/services.sh, pg_data_dir)
case "$CC_VAR" in /*) ;; *) CC_VAR=$PWD/$CC_VAR ;; esac
BUILD=${BUILD:-release}
export CC_BIN=${CC_BIN:-$ROOT/build/$BUILD/bin}
export PORT=${PORT:-8080}
export CC_BIND=${CC_BIND:-0.0.0.0}
# streams reach the brokers through HAProxy (its /events/ route): no direct origin for clients
export STREAM_ORIGIN=off
CLUSTER_PORT_BASE=${CLUSTER_PORT_BASE:-$((PORT + 1))}
CLUSTER_WEB_NODES=${CLUSTER_WEB_NODES:-2}
CLUSTER_BROKERS=${CLUSTER_BROKERS:-2}
CLUSTER_WORKERS=${CLUSTER_WORKERS:-2}
CLUSTER_SNAPSHOTTERS=${CLUSTER_SNAPSHOTTERS:-2}
CLUSTER_REDIS=${CLUSTER_REDIS:-cluster}
REDIS_NODE_TIMEOUT_MS=${REDIS_NODE_TIMEOUT_MS:-2000}
export API_PROCESSES=${API_PROCESSES:-2}
LOG_MAX_MB=${LOG_MAX_MB:-100}
LOG_CHECK_S=${LOG_CHECK_S:-60}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
STOP_FRONT_S=${STOP_FRONT_S:-10} # HAProxy in the stop; the other bounds: services.sh
# what `make run` offers and this layout does not (yet): HTTPS at the web nodes (terminate
# TLS at HAProxy on real hosts, docs/SCALING.md), metrics listeners, Apache
unset TLS TLS_PORT TLS_CERT TLS_KEY METRICS_PORT BROKER_METRICS_PORT WORKER_METRICS_PORT \
  SNAPSHOTTER_METRICS_PORT API_METRICS_FILE DATABASE_URL DATABASE_READ_URL REDIS_URL REDIS_CLUSTER

# shellcheck source=services.sh
. "$ROOT/scripts/services.sh"
# shellcheck source=stream-idle.sh
. "$ROOT/scripts/stream-idle.sh"
# shellcheck source=csp-conf.sh
. "$ROOT/scripts/csp-conf.sh"

say() { printf 'codecollab-cluster: %s\n' "$*"; }
die() { printf 'codecollab-cluster: error: %s\n' "$*" >&2; exit 1; }
check_bind
# where clients on this machine (the start's own checks, tests, tools) reach HAProxy
local_host=$(local_host "$CC_BIND") shown_host=$(shown_host "$CC_BIND")

stopping=0
# services by tier, in start order; each tier is stopped in the reverse order of `order`
redis_nodes=() order=()
declare -A port=() role=()

sync_pids() { :; } # the table of scripts/services.sh is all this script keeps

# Stops services together: each gets signal once (a second SIGTERM is not the same as the
# first: the worker then cancels its running jobs at once), then they have secs together, each
# waited for with what is left of them and killed when it has not gone (scripts/services.sh:
# gone_or_kill_all); returns once every one has gone either way.
stop_together() { # signal secs name...
  local sig=$1 secs=$2 n gone=()
  shift 2
  for n in "$@"; do
    [ -n "${spid[$n]:-}" ] || continue
    svc_kill "$sig" "${spid[$n]}"
    gone+=("$n" "${spid[$n]}")
  done
  gone_or_kill_all "$secs" "${gone[@]}"
  for n in "$@"; do spid[$n]=""; done
}
stop_one() { stop_together "$2" "$3" "$1"; } # name signal secs

# Each tier's bound (STOP_*_S, scripts/services.sh) is shared by its services, so the worst
# case does not grow with their number: with every service refusing to end, the stop takes
# about STOP_FRONT_S (HAProxy) + STOP_PROGRAMS_S + STOP_LEFTOVERS_S for each web node's
# leftover API processes + STOP_REDIS_S (the Redis nodes) + STOP_POSTGRES_S twice (the
# replica, the primary): by default 10 + 40 + 2 × 10 + 20 + 2 × 30 = 150 s with the default
# layout (10 s more for each further web node), STOP_STARTING_S (20 s) more when the stop
# comes while a service is being started (the service started last) or a one-time command of
# the start runs (oneshot), and a moment for each SIGKILL to take.
stop_all() {
  # as scripts/run.sh: every further stop signal ignored from here on, first of all
  trap '' INT TERM HUP QUIT PIPE
  [ "$stopping" = 1 ] && return
  stopping=1
  # said first, so a stop that takes long shows it has begun (and when)
  notice "stopping everything (the front door first, the data stores last)" || true
  # a one-time command of the start under way (oneshot) ends first; what it left half made
  # (a replica's copy, the Redis Cluster's node files) stays marked: the next start stops
  # and says what to remove (unfinished_check)
  svc_stop_oneshot || true
  # a signal between `setsid … &` and svc_started: the service not in the table yet (nor in
  # the watchdog's sessions) is stopped here, and waited for like the others
  local last=${!:-} n i last_parent="" programs=()
  [ -z "$last" ] || ppid_of last_parent "$last"
  if [ -n "$last" ] && [ "$last_parent" = "$$" ] && ! in_list "$last" "${spid[@]}" "$watchdog_pid"; then
    svc_note "$last"
    svc_kill TERM "$last"
    gone_or_kill "$last" "$STOP_STARTING_S" "the service started last"
  fi
  # the front door, then the programs (all at once, STOP_PROGRAMS_S for them together), then
  # the web nodes' API processes, Redis (its nodes together), the replica, the primary
  stop_one haproxy TERM "$STOP_FRONT_S"
  for ((i = ${#order[@]} - 1; i >= 0; i--)); do
    n=${order[$i]}
    case "$n" in haproxy | redis* | pg-*) ;; *) programs+=("$n") ;; esac
  done
  stop_together TERM "$STOP_PROGRAMS_S" "${programs[@]}"
  for n in "${order[@]}"; do
    case "$n" in
      web-*)
        stop_leftovers keep-fcgi.sh TERM "$CC_VAR/$n"
        # an API process its keeper could not stop outlives the keeper's SIGKILL
        stop_leftovers codecollab-api KILL "$CC_VAR/$n"
        ;;
    esac
  done
  stop_together TERM "$STOP_REDIS_S" "${redis_nodes[@]}"
  stop_one pg-replica INT "$STOP_POSTGRES_S" # PostgreSQL's "fast" shutdown
  stop_one pg-primary INT "$STOP_POSTGRES_S"
  rm -f "$CC_VAR/run/env"
  svc_watchdog_stop
}

# One stack per CC_VAR, as scripts/run.sh: a directory that make run or make cluster holds
# is refused before anything in it is written, and before the traps
svc_lock "make cluster"
# before the traps: the stop uses them
svc_check_stop_bounds

trap 'stop_all; exit 130' INT
trap 'stop_all; exit 0' TERM
trap 'stop_all; exit 129' HUP
trap 'stop_all' EXIT

# --- checks ------------------------------------------------------------------------------
for b in codecollab-api codecollab-broker codecollab-worker codecollab-snapshotter; do
  [ -x "$CC_BIN/$b" ] || die "$CC_BIN/$b is missing: run 'make build' first"
done
for b in haproxy lighttpd redis-server redis-cli psql; do
  command -v "$b" >/dev/null || die "$b is missing (make cluster installs it: scripts/deps.sh)"
done
[ -x "$PG_BIN/postgres" ] || die "PostgreSQL binaries not found (PG_BIN=$PG_BIN)"
msg=$(sup_check_settings) || die "$msg"
for v in PORT CLUSTER_PORT_BASE CLUSTER_WEB_NODES CLUSTER_BROKERS CLUSTER_WORKERS \
  CLUSTER_SNAPSHOTTERS REDIS_NODE_TIMEOUT_MS API_PROCESSES LOG_MAX_MB LOG_CHECK_S; do
  case "${!v}" in '' | *[!0-9]*) die "$v must be a whole number (got '${!v}')" ;; esac
done
for v in CLUSTER_WEB_NODES CLUSTER_BROKERS CLUSTER_WORKERS CLUSTER_SNAPSHOTTERS API_PROCESSES LOG_CHECK_S; do
  [ "${!v}" -ge 1 ] && [ "${!v}" -le 64 ] || die "$v must be between 1 and 64 (got ${!v})"
done
case "$CLUSTER_REDIS" in cluster | single) ;; *) die "CLUSTER_REDIS must be cluster or single (got '$CLUSTER_REDIS')" ;; esac
# HAProxy's hold on a stream whose client takes no bytes (timeout tunnel, below), and the web
# nodes' lighttpd's (scripts/stream-idle.sh)
stream_idle=$(stream_idle_s 2>&1) || die "$stream_idle"

# --- the ports: PORT for HAProxy, the rest from CLUSTER_PORT_BASE up -----------------------
next_port=$CLUSTER_PORT_BASE
take_port() { # name role
  port[$1]=$next_port
  role[$1]=$2
  order+=("$1")
  next_port=$((next_port + 1))
}
for ((i = 1; i <= CLUSTER_WEB_NODES; i++)); do take_port "web-$i" web; done
for ((i = 1; i <= CLUSTER_BROKERS; i++)); do take_port "broker-$i" broker; done
take_port pg-primary postgres
take_port pg-replica postgres
if [ "$CLUSTER_REDIS" = cluster ]; then
  # A dead Redis node comes back only once the cluster has failed it over (svc_tick), or
  # after 5 node timeouts at the latest: a master restarted sooner is still the master when
  # it returns, with only what its append-only file had (up to a second behind), and its
  # replica, which holds every write acknowledged after WAIT, would then copy that shorter
  # history. Promoted instead, the replica keeps those writes, and the old master rejoins as
  # its replica.
  for i in 1 2 3 4 5 6; do
    take_port "redis-$i" redis
    redis_nodes+=("redis-$i")
    smin[redis-$i]=$((REDIS_NODE_TIMEOUT_MS * 5))
  done
else
  take_port redis redis
  redis_nodes=(redis)
fi
[ $((next_port - 1)) -le 55535 ] || die "CLUSTER_PORT_BASE $CLUSTER_PORT_BASE leaves no room for the Redis cluster bus (port + 10000)"
check_port "$PORT" "HAProxy" PORT "$CC_BIND"
for n in "${!port[@]}"; do
  check_port "${port[$n]}" "$n" CLUSTER_PORT_BASE
  case "$n" in redis-*) check_port $((port[$n] + 10000)) "$n's cluster bus" CLUSTER_PORT_BASE ;; esac
done
# the programs without a port of their own, in start order after the brokers
for ((i = 1; i <= CLUSTER_WORKERS; i++)); do order+=("worker-$i"); role[worker-$i]=worker; done
for ((i = 1; i <= CLUSTER_SNAPSHOTTERS; i++)); do order+=("snapshotter-$i"); role[snapshotter-$i]=snapshotter; done
order+=(haproxy)
role[haproxy]=haproxy
port[haproxy]=$PORT

mkdir -p "$CC_VAR"/{log,run}
svc_check_hang_setting
chmod 755 "$CC_VAR"
# from here on a SIGKILL of this script (no trap runs) still stops the layout: scripts/watchdog.sh
svc_watchdog_start
rm -f "$CC_VAR/topology.json" "$CC_VAR/run/env" # a layout of an earlier start is no more
SVC_LOG_DIRS=("$CC_VAR/log")
for ((i = 1; i <= CLUSTER_WEB_NODES; i++)); do
  mkdir -p "$CC_VAR/web-$i"/{log,run}
  # lighttpd.conf includes these; plain HTTP and no metrics listener at the web nodes. The
  # client's address comes from HAProxy's X-Forwarded-For (mod_extforward), so the API's
  # per-address limits see the client and not the load balancer.
  : >"$CC_VAR/web-$i/run/tls.conf"
  : >"$CC_VAR/web-$i/run/metrics.conf"
  stream_idle_conf "$CC_VAR/web-$i/run/stream-idle.conf"
  printf '%s\n' 'server.modules += ( "mod_extforward" )' \
    'extforward.forwarder = ( "127.0.0.1" => "trust" )' \
    'extforward.headers = ( "X-Forwarded-For" )' >"$CC_VAR/web-$i/run/proxy.conf"
  SVC_LOG_DIRS+=("$CC_VAR/web-$i/log")
done

# --- how each service starts (also again, after a crash) -----------------------------------
# repl-diskless-sync-delay 0: a node that rejoins as a replica after a failover gets its new
# master's data at once (the default waits 5 s for more replicas to share the transfer); until
# then a master without a replica in sync refuses to acknowledge writes (WAIT, lib/rds.h).
redis_args() { # name
  local n=$1 p=${port[$1]}
  local a=(--bind 127.0.0.1 --port "$p" --dir "$CC_VAR/$n" --daemonize no --protected-mode yes
    --appendonly yes --appendfsync everysec --save '' --repl-diskless-sync-delay 0 --logfile "$CC_VAR/log/$n.log")
  [ "$n" = redis ] || a+=(--cluster-enabled yes --cluster-config-file nodes.conf
    --cluster-node-timeout "$REDIS_NODE_TIMEOUT_MS" --cluster-require-full-coverage no)
  printf '%s\0' "${a[@]}"
}

start_service() { # name
  local n=$1 i=${1##*-} args=() af
  case "$n" in
    pg-primary | pg-replica)
      setsid "${as_pg[@]}" "$PG_BIN/postgres" -D "$(pg_real "$CC_VAR/$n")" -p "${port[$n]}" -k "$(pg_real "$CC_VAR/run/pg")" \
        -c listen_addresses='' -c fsync=on -c max_connections=300 -c wal_keep_size=512MB \
        -c hot_standby=on -c hot_standby_feedback=on \
        >>"$CC_VAR/log/$n.log" 2>&1 & ;;
    redis*)
      mapfile -d '' args < <(redis_args "$n")
      setsid redis-server "${args[@]}" >>"$CC_VAR/log/$n.log" 2>&1 & ;;
    # signs of life in a file each (scripts/services.sh: svc_hang_check)
    broker-*) svc_alive_file af "$n"
      ALIVE_FILE=$af BROKER_HOST=127.0.0.1 BROKER_PORT=${port[$n]} \
        setsid "$CC_BIN/codecollab-broker" >>"$CC_VAR/log/$n.log" 2>&1 & ;;
    worker-*) svc_alive_file af "$n"
      ALIVE_FILE=$af setsid "$CC_BIN/codecollab-worker" >>"$CC_VAR/log/$n.log" 2>&1 & ;;
    snapshotter-*) svc_alive_file af "$n"
      ALIVE_FILE=$af setsid "$CC_BIN/codecollab-snapshotter" </dev/null >>"$CC_VAR/log/$n.log" 2>&1 & ;;
    web-*)
      # the API processes of a lighttpd that died first (as scripts/run.sh does); its streams
      # go to its own broker when asked directly (HAProxy sends /events/ to the brokers)
      stop_leftovers keep-fcgi.sh TERM "$CC_VAR/$n"
      CC_VAR=$CC_VAR/$n PORT=${port[$n]} CC_BIND=127.0.0.1 \
        BROKER_PORT=${port[broker-$(((i - 1) % CLUSTER_BROKERS + 1))]} \
        DATABASE_READ_URL=$DATABASE_READ_URL \
        setsid lighttpd -D -f "$ROOT/lighttpd.conf" >>"$CC_VAR/$n/log/lighttpd.log" 2>&1 & ;;
    haproxy) setsid haproxy -db -f "$CC_VAR/run/haproxy.cfg" >>"$CC_VAR/log/haproxy.log" 2>&1 & ;;
    *) die "no such service: $n" ;;
  esac 9>&- # not the lock's descriptor (svc_lock, scripts/services.sh)
  svc_started "$n" "$!"
  # a restart after start-up: the topology changes with the pid (and, a moment later, a web
  # node's API processes: written again for a few seconds, svc_tick)
  if [ "${ready:-0}" = 1 ]; then
    write_topology
    sup_now_ms topo_until
    topo_until=$((topo_until + 5000))
  fi
  return 0
}
topo_until=0
svc_tick() {
  local n now
  sup_now_ms now
  if [ "$topo_until" -gt 0 ]; then
    write_topology
    [ "$now" -lt "$topo_until" ] || topo_until=0
  fi
  # a dead Redis Cluster node waits for its restart (smin) until the cluster has failed it
  # over; then it is started at once, to rejoin as a replica (redis_taken_over)
  for n in "${redis_nodes[@]}"; do
    [ -n "${sdue[$n]:-}" ] && [ "$CLUSTER_REDIS" = cluster ] && redis_taken_over "$n" &&
      sdue[$n]=$now
  done
  return 0
}

# 0 when the other nodes mark node n failed (FAIL, not the first suspicion PFAIL) and it
# serves no slot any more: its replica was promoted, or it was a replica itself.
redis_taken_over() { # name
  local o line
  for o in "${redis_nodes[@]}"; do
    [ "$o" != "$1" ] && [ -n "${spid[$o]:-}" ] || continue
    line=$(rcli -p "${port[$o]}" cluster nodes 2>/dev/null | grep " 127.0.0.1:${port[$1]}@") || continue
    set -- "$1" $line
    # id addr flags master ping pong epoch link [slots...]
    [ $# -le 9 ] && [[ ",$4," == *,fail,* ]] && return 0
    return 1
  done
  return 1
}

pg_sock=$CC_VAR/run/pg
# The superuser's URL of a PostgreSQL node, for the script and operators: the database
# postgres, never codecollab, which the programs' role owns and could lay traps in
# (scripts/services.sh, pg_create_db).
pg_url() { # name
  printf 'postgresql:///postgres?host=%s&port=%s&user=postgres' "$pg_sock" "${port[$1]}"
}

json_str() { # a JSON string of $1
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

# The pids of the processes under pid (the web nodes' keep-fcgi.sh and API processes).
descendants() { # pid
  local c
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    printf '%s ' "$c"
    descendants "$c"
  done
}

# A Redis node's replication as INFO replication gives it, in repl_role (master | slave),
# repl_master_port and repl_link (master_link_status, a replica's); 1, all three empty, when
# the node did not answer.
repl_of() { # name
  local info line
  repl_role="" repl_master_port="" repl_link=""
  info=$(rcli -p "${port[$1]}" info replication 2>/dev/null | tr -d '\r') || return 1
  while IFS= read -r line; do
    case "$line" in
      role:*) repl_role=${line#role:} ;;
      master_port:*) repl_master_port=${line#master_port:} ;;
      master_link_status:*) repl_link=${line#master_link_status:} ;;
    esac
  done <<<"$info"
}

# Each Redis node's role for topology.json, by name: master | replica, and for a replica
# " <master port>" (empty when the node did not answer).
declare -A rrole=()
redis_role_of() { # name: sets rrole[name]
  rrole[$1]=""
  repl_of "$1" || return 0
  if [ "$repl_role" = slave ]; then rrole[$1]="replica $repl_master_port"; else rrole[$1]=${repl_role:-unknown}; fi
}

# The layout as JSON (topology.json), on stdout.
topology_json() {
  local n first=1 p ports rr master m kids k
  {
    printf '{\n  "var": %s,\n  "url": %s,\n  "port": %s,\n  "redis": %s,\n' \
      "$(json_str "$CC_VAR")" "$(json_str "http://$shown_host:$PORT/")" "$PORT" "$(json_str "$CLUSTER_REDIS")"
    printf '  "state": %s,\n' "$(json_str "$([ "${ready:-0}" = 1 ] && echo ready || echo starting)")"
    printf '  "written_at": %s,\n  "processes": [\n' "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)")"
    for n in "${order[@]}"; do
      p=${spid[$n]:-}
      ports=""
      [ -n "${port[$n]:-}" ] && ports=${port[$n]}
      case "$n" in redis-*) ports="$ports, $((port[$n] + 10000))" ;; esac
      [ "$first" = 1 ] || printf ',\n'
      first=0
      printf '    {"name": %s, "role": %s, "pid": %s, "ports": [%s]' "$(json_str "$n")" \
        "$(json_str "${role[$n]}")" "${p:-null}" "$ports"
      case "$n" in
        pg-primary) printf ', "postgres_role": "primary", "socket_dir": %s, "url": %s' \
          "$(json_str "$pg_sock")" "$(json_str "$(pg_url "$n")")" ;;
        pg-replica) printf ', "postgres_role": "replica", "socket_dir": %s, "url": %s' \
          "$(json_str "$pg_sock")" "$(json_str "$(pg_url "$n")")" ;;
        redis*)
          rr=${rrole[$n]:-}
          printf ', "redis_role": %s' "$(json_str "${rr%% *}")"
          if [ "${rr%% *}" = replica ]; then
            master=null
            for m in "${redis_nodes[@]}"; do
              [ "${port[$m]}" = "${rr#* }" ] && master=$(json_str "$m")
            done
            printf ', "master": %s' "$master"
          fi ;;
        web-*)
          kids=""
          if [ -n "$p" ]; then
            for k in $(descendants "$p"); do
              grep -qz 'codecollab-api$' "/proc/$k/cmdline" 2>/dev/null && kids="$kids${kids:+, }$k"
            done
          fi
          printf ', "api_pids": [%s]' "$kids" ;;
      esac
      printf '}'
    done
    printf '\n  ]\n}\n'
  }
}
# Built first, written after: a stop signal's trap runs between two commands, and would
# print the stop's lines into the file were the signal to come (as it may while a Redis node
# is slow to answer, rcli) inside a block redirected to it. The Redis nodes are asked their
# roles before, one call for each in this shell: the trap then waits for one call's bound at
# most (a node that does not answer), where calls made inside topology_json's command
# substitution would hold it for the bound of every such node in turn.
write_topology() {
  local json n
  for n in "${redis_nodes[@]}"; do redis_role_of "$n"; done
  json=$(topology_json) && printf '%s\n' "$json" >"$CC_VAR/topology.json.tmp" &&
    mv "$CC_VAR/topology.json.tmp" "$CC_VAR/topology.json"
}

# --- secrets, PostgreSQL primary and replica ------------------------------------------------
jwt_setup
pg_data_dir "$CC_VAR/pg-primary"
pg_initdb "$CC_VAR/pg-primary" initdb-primary
start_service pg-primary
wait_for "the PostgreSQL primary" 30 "$PG_BIN/pg_isready" -t 5 -q -h "$pg_sock" -p "${port[pg-primary]}"
pg_create_db "${port[pg-primary]}"
export DATABASE_URL
DATABASE_URL=$(pg_app_url "${port[pg-primary]}")
pg_schema "$DATABASE_URL"

pg_data_dir "$CC_VAR/pg-replica"
pg_make_data pg_basebackup "$CC_VAR/pg-replica" "making the PostgreSQL replica (pg_basebackup -R)" pg_basebackup \
  -h "$(pg_real "$pg_sock")" -p "${port[pg-primary]}" -U postgres -D "$(pg_real "$CC_VAR/pg-replica")" -R -X stream -c fast
# the replica's primary_conninfo names the primary's socket and port of when it was made
sed -i "s/port=[0-9]*/port=${port[pg-primary]}/" "$CC_VAR/pg-replica/postgresql.auto.conf"
start_service pg-replica
wait_for "the PostgreSQL replica" 30 "$PG_BIN/pg_isready" -t 5 -q -h "$pg_sock" -p "${port[pg-replica]}"
DATABASE_READ_URL=$(pg_app_url "${port[pg-replica]}")
streaming() { # (the receiver's status is shown to superusers and pg_read_all_stats only)
  [ "$(bounded 5 psql "$(pg_url pg-replica)" -XAtqc "SELECT status FROM pg_stat_wal_receiver")" = streaming ]
}
wait_for "the replica to stream from the primary" 30 streaming
# a replica kept from an older start replays the role pg_create_db has just made
wait_for "the programs' role on the replica" 30 bounded 5 psql "$DATABASE_READ_URL" -XAtqc "SELECT 1"

# --- Redis ----------------------------------------------------------------------------------
for n in "${redis_nodes[@]}"; do mkdir -p "$CC_VAR/$n"; done
# a cluster create that did not finish, before any node reads its node file
unfinished_check redis-create
for n in "${redis_nodes[@]}"; do start_service "$n"; done
for n in "${redis_nodes[@]}"; do
  redis_wait "$n" "${port[$n]}"
done
if [ "$CLUSTER_REDIS" = cluster ]; then
  seeds=()
  for n in "${redis_nodes[@]}"; do seeds+=("127.0.0.1:${port[$n]}"); done
  # how many nodes each knows (itself included): every one 1 on the first start. A node
  # still loading its data answers CLUSTER INFO with an error, not a number: asked again.
  declare -A known=()
  known_of() { # name: known[name] once the node answers with a number
    known[$1]=$(rcli -p "${port[$1]}" cluster info | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')
    [[ ${known[$1]} =~ ^[0-9]+$ ]]
  }
  fresh=()
  for n in "${redis_nodes[@]}"; do
    wait_for "$n to answer CLUSTER INFO" 60 known_of "$n"
    [ "${known[$n]}" != 1 ] || fresh+=("$n")
  done
  if [ "${#fresh[@]}" = "${#redis_nodes[@]}" ]; then
    say "creating the Redis Cluster (3 masters, 3 replicas)"
    # cut short or failed, the create leaves nodes that know each other with slots and no
    # replicas (or with slots and no peers), which the next start would take for a made
    # cluster: marked unfinished until it has succeeded (a failure keeps the mark)
    unfinished_begin redis-create "rm ${CC_VAR@Q}/redis-*/nodes.conf"
    # timeout itself rather than the function bounded (oneshot runs a program): the stop's
    # SIGTERM reaches timeout, which passes it on to redis-cli
    oneshot "redis-cli --cluster create" ">$CC_VAR/log/redis-create.log" \
      timeout -k 2 120 redis-cli --cluster create "${seeds[@]}" --cluster-replicas 1 --cluster-yes || die "redis-cli --cluster create failed, see $CC_VAR/log/redis-create.log"
    unfinished_end redis-create
  elif [ "${#fresh[@]}" -gt 0 ]; then
    die "${fresh[*]} know(s) no other node while the rest form a cluster: its node file (nodes.conf in $CC_VAR/<node>/) is gone; add it back with redis-cli --cluster add-node, or remove every node's directory to start afresh"
  fi
  cluster_ok() {
    local n info
    for n in "${redis_nodes[@]}"; do
      info=$(rcli -p "${port[$n]}" cluster info | tr -d '\r')
      grep -qx 'cluster_state:ok' <<<"$info" || return 1
      # every node has met every other: gossip can leave one a node short for a moment after
      # the create, while every slot is already covered (at least as many: a node replaced in
      # an earlier start stays in the others' tables)
      [ "$(sed -n 's/^cluster_known_nodes://p' <<<"$info")" -ge "${#redis_nodes[@]}" ] 2>/dev/null || return 1
    done
    bounded 10 redis-cli --cluster check "127.0.0.1:${port[redis-1]}" | grep -q 'All 16384 slots covered' || return 1
    # every replica has its master's data: only then can it take over (a replica that never
    # synchronised does not stand for election) and WAIT count it; and every master (half
    # the nodes) has one (a create cut short before its replicas were set leaves none, and
    # every write that waits for a replica would fail)
    local -A served=()
    for n in "${redis_nodes[@]}"; do
      repl_of "$n" || return 1
      [ "$repl_role" = slave ] || continue
      [ "$repl_link" = up ] && [ -n "$repl_master_port" ] || return 1
      served[$repl_master_port]=1
    done
    [ "${#served[@]}" -ge $((${#redis_nodes[@]} / 2)) ]
  }
  wait_for "the Redis Cluster (cluster_state:ok, every node known to all, every slot covered, a replica in sync for every master)" 30 cluster_ok
  REDIS_CLUSTER=$(IFS=,; printf '%s' "${seeds[*]}")
  export REDIS_CLUSTER
  # for a program (or tool) that knows only one server: a node it is sent MOVED from
  export REDIS_URL=redis://127.0.0.1:${port[redis-1]}
else
  export REDIS_URL=redis://127.0.0.1:${port[redis]}
fi
# The access state Redis caches (rooms' visibility and member caches, users' token
# generations) written from PostgreSQL before any program runs: a Redis put back from an
# older backup, or a replica behind its master that took over, must not give back rights
# taken away since (docs/OPERATIONS.md, "Redis put back from an older backup")
oneshot "writing the access state from PostgreSQL" "" "$ROOT/scripts/redis-resync-access.sh" ||
  die "writing the access state from PostgreSQL to Redis failed"

# the data stores are up: a first topology (state "starting"; the programs' pids follow)
write_topology

# --- HAProxy's configuration ------------------------------------------------------------------
# Streams (SSE, WebSocket, long-poll: /events/) go straight to the brokers, the rest to the web
# nodes, each round-robin / least-connections with no stickiness: a stream resumes on any
# broker from its last event id. A server is checked every 500 ms and taken out after two
# failed checks: a refused connection (a server that died) fails a check at once, so within
# about 1 s; a server that hangs fails a check after its timeout, 1 s for a broker and 5 s for
# a web node (backend web below), so within about 2.5 s or 10.5 s. A request that could not
# connect is sent to another server (redispatch).
# HAProxy needs two descriptors a connection (client and server), within the hard limit
fd_max=$(ulimit -Hn)
[ "$fd_max" = unlimited ] && fd_max=1048576
maxconn=$(((fd_max - 200) / 2))
[ "$maxconn" -gt 50000 ] && maxconn=50000
# HAProxy at maxconn stops accepting: every new connection, the API's requests too, then
# waits unanswered. A broker past BROKER_MAX_STREAMS answers a new stream 503 at once
# instead (the client retries). So, unless BROKER_MAX_STREAMS is set, the brokers together
# take at most maxconn less 1,000 streams (left for the API's requests and those 503s),
# shared evenly as leastconn spreads them. More streams need more HAProxy processes or hosts
# (docs/SCALING.md), and BROKER_MAX_STREAMS set to match.
if [ -z "${BROKER_MAX_STREAMS:-}" ]; then
  export BROKER_MAX_STREAMS=$(((maxconn - 1000) / CLUSTER_BROKERS))
  [ "$BROKER_MAX_STREAMS" -ge 1 ] || die "HAProxy's maxconn $maxconn (from the open-files limit $fd_max) leaves no room for streams"
fi
# (:: takes IPv4 clients too, whatever net.ipv6.bindv6only says, as lighttpd does under make run)
case "$CC_BIND" in ::) front="[::]:$PORT v4v6" ;; *:*) front="[$CC_BIND]:$PORT" ;; *) front="$CC_BIND:$PORT" ;; esac
# the one Content-Security-Policy, as lighttpd.conf sets it
csp=$(lighttpd_csp)
[ -n "$csp" ] || die "no Content-Security-Policy found in lighttpd.conf"
# built first, written after (as topology.json: write_topology)
web_servers="" broker_servers=""
for ((i = 1; i <= CLUSTER_WEB_NODES; i++)); do
  printf -v web_servers '%s  server web-%s 127.0.0.1:%s check\n' "$web_servers" "$i" "${port[web-$i]}"
done
for ((i = 1; i <= CLUSTER_BROKERS; i++)); do
  printf -v broker_servers '%s  server broker-%s 127.0.0.1:%s check\n' "$broker_servers" "$i" "${port[broker-$i]}"
done
haproxy_cfg=$(cat <<EOF
# written by scripts/cluster.sh at every start
global
  maxconn $maxconn
  log stdout format raw local0 notice

defaults
  mode http
  log global
  option dontlognull
  timeout connect 1s
  timeout check 1s
  timeout client 60s
  timeout server 60s
  timeout http-request 10s
  timeout http-keep-alive 30s
  # A stream is a tunnel to HAProxy: an upgraded WebSocket, and an SSE answer too (its body
  # ends with the connection). The tunnel's timeout counts from the last byte either way,
  # so a client that stops reading is let go this long after HAProxy's last write to it,
  # with the connection to the broker and what the buffers on the way hold; a quiet stream
  # still gets the broker's heartbeat well within it (scripts/stream-idle.sh: 120 s, or
  # twice the broker's longest silence and 2 s; docs/SECURITY.md, "A stream reader that
  # never reads").
  timeout tunnel ${stream_idle}s
  timeout client-fin 5s
  retries 2
  option redispatch 1
  option forwardfor
  default-server inter 500ms fastinter 250ms downinter 1s rise 2 fall 2
  # HAProxy's own answers (no node to take a request, a node that died or did not answer in
  # time) in the API's error shape (docs/API.md, "Errors") instead of its HTML pages, with
  # Retry-After. (A head HAProxy 2.6 cannot parse, or one that never completes, still gets its
  # built-in HTML 400 or 408: its HTTP/1 layer answers those before any of this applies.)
  http-error status 500 content-type application/json string '{"error":"internal","message":"the front door failed on this request"}'
  http-error status 502 content-type application/json string '{"error":"bad_gateway","message":"the server handling the request stopped before it answered; try again (after a change, check whether it was made)"}' hdr Retry-After 1
  http-error status 503 content-type application/json string '{"error":"api_unavailable","message":"no web node can take the request now; try again"}' hdr Retry-After 1
  http-error status 504 content-type application/json string '{"error":"gateway_timeout","message":"the server did not answer in time; try again (after a change, check whether it was made)"}' hdr Retry-After 1

frontend www
  bind $front
  # only HAProxy's own X-Forwarded-For reaches the web nodes, which trust it (mod_extforward)
  http-request del-header X-Forwarded-For
  # which server answered (web-N, broker-N): for operators and the layout's tests
  http-response set-header X-Served-By %[srv_name]
  use_backend brokers if { path_beg /events/ }
  default_backend web

# The web nodes: lighttpd with the API. A node is healthy when the API itself answers
# /api/health, 200 or 503 (its own "degraded" body names postgres): a data store that is down
# is every node's problem, and the API's own JSON answer is better than none. A node whose
# lighttpd or API processes do not answer is taken out. A check waits in line behind the
# requests a node is working on (lighttpd hands it to the same API processes), so it is
# given 5 s: a node busy with a burst of sign-ups (argon2id, tens of ms each, far more on a
# loaded machine) answers its check late, not never. With 1 s, 40 registrations at once
# took both nodes out and the next request got 503 (2026-12-06). A refused connection, a
# node that died, still fails its check at once.
backend web
  balance roundrobin
  timeout check 5s
  # a web node that dies with a request in flight: a GET or HEAD, which changes nothing, is
  # sent again to another node; any other request is answered 502 (the client decides)
  retry-on conn-failure empty-response
  http-request disable-l7-retry unless METH_GET
  option httpchk GET /api/health
  http-check expect rstring "postgres"
${web_servers}
# The brokers: SSE, WebSocket and long-poll. A stream's bound is the tunnel's (above); the
# server's hour is for a long-poll, waiting for its answer. A broker marked down has its
# streams cut so their clients reconnect (to another broker) at once.
backend brokers
  balance leastconn
  timeout server 1h
  # the security headers lighttpd puts on every answer of a web node (lighttpd.conf), on
  # the brokers' answers too
  http-response set-header Content-Security-Policy "$csp"
  http-response set-header X-Content-Type-Options nosniff
  http-response set-header Referrer-Policy no-referrer
  http-response set-header X-Frame-Options DENY
  http-error status 503 content-type application/json string '{"error":"broker_unavailable","message":"no broker can take the stream now; reconnect after a while"}' hdr Retry-After 1
  option httpchk GET /events/health
  http-check expect status 200
  default-server inter 500ms fastinter 250ms downinter 1s rise 2 fall 2 on-marked-down shutdown-sessions
${broker_servers}
EOF
)
printf '%s\n' "$haproxy_cfg" >"$CC_VAR/run/haproxy.cfg"
haproxy -c -q -f "$CC_VAR/run/haproxy.cfg" >"$CC_VAR/log/haproxy-check.log" 2>&1 ||
  die "HAProxy refuses its configuration, see $CC_VAR/log/haproxy-check.log"

# --- the programs, the web nodes, HAProxy ---------------------------------------------------
for n in "${order[@]}"; do
  case "$n" in broker-* | worker-* | snapshotter-*) start_service "$n" ;; esac
done
for ((i = 1; i <= CLUSTER_WEB_NODES; i++)); do start_service "web-$i"; done
for ((i = 1; i <= CLUSTER_BROKERS; i++)); do
  wait_for "broker-$i" 30 curl -fsS --max-time 5 "http://127.0.0.1:${port[broker-$i]}/events/health"
done
for ((i = 1; i <= CLUSTER_WEB_NODES; i++)); do
  wait_for "web-$i" 30 curl -fsS --max-time 5 "http://127.0.0.1:${port[web-$i]}/api/health"
done
start_service haproxy
wait_for "HAProxy" 20 curl -fsS --max-time 5 "http://$local_host:$PORT/api/health"
wait_for "the brokers through HAProxy" 20 curl -fsS --max-time 5 "http://$local_host:$PORT/events/health"
if [ -z "${PISTON_URL:-}" ]; then
  wait_for "the workers" 30 curl -fsS --max-time 5 "http://$local_host:$PORT/api/runtimes"
fi

ready=1
write_topology
# built first, written after (as topology.json)
printf -v env_file 'DATABASE_URL=%q\nDATABASE_READ_URL=%q\nREDIS_URL=%q\nREDIS_CLUSTER=%q\nJWT_SECRET_FILE=%q\nBASE_URL=%q\nTOPOLOGY=%q\n' \
  "$DATABASE_URL" "$DATABASE_READ_URL" "$REDIS_URL" "${REDIS_CLUSTER:-}" "${JWT_SECRET_FILE:-}" \
  "http://$local_host:$PORT" "$CC_VAR/topology.json"
printf '%s' "$env_file" >"$CC_VAR/run/env"
say "capacity: HAProxy maxconn $maxconn (half the open-files limit $fd_max, less a margin); BROKER_MAX_STREAMS $BROKER_MAX_STREAMS per broker, $CLUSTER_BROKERS broker(s)"
say "ready: http://$shown_host:$PORT/  (Ctrl-C stops everything; logs in $CC_VAR/log/, layout in $CC_VAR/topology.json)"
[ -n "${CC_READY_FILE:-}" ] && : >"$CC_READY_FILE"

svc_supervise

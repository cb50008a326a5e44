# Sourced by scripts/run.sh (`make run`) and scripts/cluster.sh (`make cluster`): the
# supervisor they share. The script that sources it defines
#   say, die          its lines for the terminal
#   start_service N   starts service N in a session of its own (setsid … &), records it
#                     with svc_started N $!, then calls sync_pids
#   sync_pids         called whenever the table below changes (the script's own pid lists)
#   svc_tick          (optional) called about once a second while supervising
# and sets ROOT, CC_VAR (logs in $CC_VAR/log/, or SVC_LOG_DIRS: the directories whose logs are
# kept under LOG_MAX_MB), LOG_MAX_MB, LOG_CHECK_S and PG_BIN, then calls
# svc_watchdog_start before its first service and svc_watchdog_stop at the end of its stop, and
# svc_supervise once everything has started: it stays in the foreground and starts a dead
# service again after the restart back-off of scripts/supervise.sh, until a signal's trap
# or the death of the parent ends the script.
# shellcheck source=supervise.sh
. "$(dirname "${BASH_SOURCE[0]}")/supervise.sh"

# The supervised services by name: their pid while they run (empty while one waits to be
# started again), when they started, when a dead one is due again, its restarts so far
# ("keep": watched only, never restarted here), and the exit statuses `wait -n` collected.
# smin: a service's shortest restart delay in ms, when it has one (scripts/cluster.sh: a Redis
# Cluster node)
declare -A spid=() st0=() sdue=() snrest=() sexit=() smin=()
progs=()
parent=$PPID # make (or whoever started us); when it dies we stop (svc_supervise)

# shellcheck source=proc.sh
. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

# The start time (/proc/PID/stat, clock ticks since boot) of each process this script may
# signal, by pid. Once a process has ended and been reaped, the kernel may give its pid to an
# unrelated process, and a stop waits up to 40 s on a service before its SIGKILL: every check
# and signal below first makes sure the pid still names the process that was noted.
declare -A sborn=()
svc_note() { # pid: its start time, noted ("gone" when it has gone already: whatever has
  # the pid later is another process)
  if proc_stat "$1"; then sborn[$1]=${pstat[19]}; else sborn[$1]=gone; fi
  return 0
}
svc_same() { # pid: 0 while pid is the process noted (or one never noted) and has not gone
  proc_stat "$1" || return 1
  [ -z "${sborn[$1]:-}" ] || [ "${pstat[19]}" = "${sborn[$1]}" ]
}
svc_kill() { # signal pid: sent only to the process noted
  if svc_same "$2"; then kill "-$1" "$2" 2>/dev/null || true; fi
  return 0
}

# ppid_of sets a variable instead of printing (no fork: the supervisor asks every tick).
ppid_of() { # var pid: var = pid's parent's pid, or nothing when pid is gone
  if proc_stat "$2"; then printf -v "$1" '%s' "${pstat[1]}"; else printf -v "$1" '%s' ""; fi
}

in_list() { # pid list...
  local x=$1 y
  shift
  for y in "$@"; do [ "$x" = "$y" ] && return 0; done
  return 1
}

parent_gone() { # our parent exited: we were handed to init (or a subreaper)
  local now
  ppid_of now $$
  [ -n "$now" ] && [ "$now" != "$parent" ]
}

is_zombie() { # pid: dead, waiting only for its parent to reap it
  proc_stat "$1" && [ "${pstat[0]}" = Z ]
}

# 0 once pid has gone, 1 when it is still there after seconds. A zombie is gone: the API
# processes under spawn-fcgi (WEB=apache) are not our children once spawn-fcgi has exited,
# and only their new parent can reap them. The `wait` builtin is used only on a zombie, to
# reap it at once: on a live child of ours it returns only when that child has ended, however
# long that takes, so the bound (and the SIGKILL that follows it, gone_or_kill) would never
# come for a service that does not end on its signal, and the whole stop would hang on it.
# The bound is kept on the clock (a count of naps would stretch it by what each nap's
# `sleep` costs on a loaded machine). wait_gone_until takes the deadline in milliseconds.
wait_gone() { # pid seconds
  local now
  sup_now_ms now
  wait_gone_until "$1" $((now + $2 * 1000))
}

wait_gone_until() { # pid deadline_ms
  local now
  while svc_same "$1"; do
    if is_zombie "$1"; then
      wait "$1" 2>/dev/null || true
      return 0
    fi
    sup_now_ms now
    [ "$now" -ge "$2" ] && return 1
    sleep 0.05
  done
  return 0
}

# After its stop signal, pid has seconds to end; then it gets SIGKILL, and this returns once
# it has gone (a SIGKILL is not refused, even by a stopped process), so nothing is left.
# gone_or_kill_until: the same up to a deadline in milliseconds (one shared with others).
gone_or_kill() { # pid seconds [name: for the line saying it was killed]
  local now
  sup_now_ms now
  gone_or_kill_until "$1" $((now + $2 * 1000)) "${3:-}" "$2"
}

gone_or_kill_until() { # pid deadline_ms name bound_s (the bound the line names)
  wait_gone_until "$1" "$2" && return 0
  svc_kill KILL "$1"
  [ -z "$3" ] || say "$3 (pid $1) had not ended $4 s after its stop signal: killed" || true
  wait_gone "$1" 10 || say "pid $1 is still there 10 s after SIGKILL" || true
}

# Services that were all sent their stop signal just before, with seconds for all of them
# together: each is waited for until the one deadline, then killed (gone_or_kill). The wait
# is seconds in all (plus the SIGKILLs' own), not seconds for each in turn.
gone_or_kill_all() { # seconds [name pid]...
  local bound=$1 end
  sup_now_ms end
  end=$((end + $1 * 1000))
  shift
  while [ $# -ge 2 ]; do
    gone_or_kill_until "$2" "$end" "$1" "$bound"
    shift 2
  done
}

# A call to a data store's client (redis-cli, psql) that cannot hang the script: killed
# after seconds, its status then 124 (or 137), a failure like any other. bash runs a signal's
# trap only once the foreground command has ended, so one unbounded call on a Redis node that
# is stopped or paused (SIGSTOP: the kernel still accepts the connection, no answer ever
# comes) would hold the supervision loop and every stop signal behind it; redis-cli 7.0's -t
# bounds only the connect. --foreground: the client stays in the terminal's process group, so
# Ctrl-C reaches it as before.
bounded() { # seconds command...
  local s=$1
  shift
  timeout --foreground -k 2 "$s" "$@"
}
# A long one-time command of the start (initdb, the database's creation, schema.sql,
# pg_basebackup, the Redis Cluster's creation), run so that a stop need not wait for it: in
# the background, with the `wait` builtin waiting for it. A trapped signal ends a `wait` at
# once and its trap runs, where a foreground command would hold the trap until it ended
# (which may be never, on a server that does not answer); the stop then ends the command
# first (svc_stop_oneshot). Its exit status and error messages are the command's own, as
# in the foreground; its standard input is /dev/null, and SIGINT is ignored for it (bash does
# both for a script's background commands; a program that sets its own handler, as psql and
# initdb do, still hears a Ctrl-C): Ctrl-C reaches the script, whose stop ends it. Its
# output goes where log says, given here rather than as a redirection of the call: one of
# the call would hold while the stop's trap runs inside it, and put the stop's lines into
# the log.
# The command is a program, not a shell function: the stop signals the process started here,
# which for a function would be a subshell that leaves the function's own commands running.
oneshot_pid="" oneshot_name=""
oneshot() { # name log command...: log ">file" (output and errors, the file anew),
  # ">>file" (added to it) or "" (the script's own); the command's exit status
  local rc log=$2
  oneshot_name=$1
  shift 2
  # A stop's trap can run between the launch and the line that notes its pid: it then
  # finds the command by $! (svc_stop_oneshot), which bash sets at the launch itself.
  oneshot_prev=${!:-}
  oneshot_starting=1
  # 9>&-: not the lock's descriptor (svc_lock)
  case "$log" in
    '>>'*) "$@" >>"${log#>>}" 2>&1 9>&- & ;;
    '>'*) "$@" >"${log#>}" 2>&1 9>&- & ;;
    *) "$@" 9>&- & ;;
  esac
  oneshot_pid=$!
  oneshot_starting=""
  svc_note "$oneshot_pid"
  # A `wait` that a trapped signal ended leaves the command there (running or a zombie):
  # wait again (a stop's trap never comes back here; this is for any other trapped signal).
  # A status above 128 may be such a cut-short wait's own, the command having ended while
  # the trap ran: bash keeps the command's status for one more `wait` (in POSIX mode it does
  # not, and that wait says 127: the status seen stands then).
  local again
  while true; do
    wait "$oneshot_pid" && rc=0 || rc=$?
    svc_same "$oneshot_pid" || break
  done
  if [ "$rc" -gt 128 ]; then
    wait "$oneshot_pid" 2>/dev/null && again=0 || again=$?
    [ "$again" = 127 ] || rc=$again
  fi
  oneshot_pid=""
  return "$rc"
}
# The stop's first step: the one-time command under way, if any, gets SIGTERM, then SIGKILL
# after STOP_STARTING_S. 0 when there was one (oneshot_name says which, oneshot_stopped its
# pid), 1 otherwise.
svc_stop_oneshot() {
  local p=$oneshot_pid
  # launched, its pid not noted yet: the newest background process is the command
  if [ -z "$p" ] && [ -n "${oneshot_starting:-}" ] && [ "${!:-}" != "${oneshot_prev:-}" ]; then
    p=$!
  fi
  oneshot_starting=""
  [ -n "$p" ] || return 1
  oneshot_pid=""
  oneshot_stopped=$p
  svc_kill TERM "$p"
  gone_or_kill "$p" "$STOP_STARTING_S" "$oneshot_name"
  return 0
}

# A one-time command that makes something (initdb's data directory, pg_basebackup's copy, the
# Redis Cluster's node files) may not finish: a stop cuts it short, the script is killed, the
# machine goes down. The next start would take what it left half made for done (PG_VERSION
# is among the first files of a copy; a cut cluster create leaves masters without
# replicas). So before it runs, the script leaves a mark in $CC_VAR (unfinished_begin), gone
# once the command has ended, by succeeding or by failing by itself (unfinished_end: initdb
# and pg_basebackup remove what they made when they fail; a create's failure is marked by
# its caller). A start that finds a mark stops and says what to remove (unfinished_check):
# nothing is removed for the operator, since what is at that path by then may be anything
# (a backup put back, another checkout's data).
unfinished_begin() { # name what-to-remove (as a command for the operator)
  printf '%s\n' "$2" >"$CC_VAR/.unfinished-$1"
}
unfinished_end() { rm -f "$CC_VAR/.unfinished-$1"; }
unfinished_check() { # name
  local mark=$CC_VAR/.unfinished-$1 what
  [ -e "$mark" ] || return 0
  what=$(cat "$mark")
  die "an earlier start's $1 did not finish, and what it left is not to be taken for done: remove it ($what), then $mark, and start again"
}

# redis-cli with a bound of a few seconds: a single command answers in milliseconds, even on
# a loaded machine
rcli() { bounded 5 redis-cli "$@"; }
# The stop's bounds, in seconds (docs/OPERATIONS.md, "Stopping"): how long each tier of
# services has between its stop signal and SIGKILL. The script sets STOP_FRONT_S's default
# (its front door: lighttpd or Apache 20, HAProxy 10) before it sources this file, and calls
# svc_check_stop_bounds before it sets its traps (the stop does arithmetic with them).
STOP_PROGRAMS_S=${STOP_PROGRAMS_S:-40}   # the programs behind the front door, together
STOP_LEFTOVERS_S=${STOP_LEFTOVERS_S:-10} # left-over processes of a web server (stop_leftovers)
STOP_REDIS_S=${STOP_REDIS_S:-20}         # Redis (every node together)
STOP_POSTGRES_S=${STOP_POSTGRES_S:-30}   # each PostgreSQL server
STOP_STARTING_S=${STOP_STARTING_S:-20}   # a service being started when the stop came
STOP_VARS="STOP_FRONT_S STOP_PROGRAMS_S STOP_LEFTOVERS_S STOP_REDIS_S STOP_POSTGRES_S STOP_STARTING_S"
# Each a whole number of seconds from 1 to 86400 (die otherwise, naming it). A worker given
# SHUTDOWN_GRACE_MS (30 s) as long as the programs' bound or longer may be killed while its
# jobs still finish: a warning says so, and the start goes on.
svc_check_stop_bounds() {
  local v val grace=${SHUTDOWN_GRACE_MS:-30000}
  for v in $STOP_VARS; do
    val=${!v:-}
    # digits only, no leading 0 (bash would read 010 as octal), at most 86400
    case "$val" in '' | *[!0-9]* | 0*) val=x ;; esac
    [ "$val" != x ] && [ "${#val}" -le 5 ] && [ "$val" -le 86400 ] ||
      die "$v must be a whole number of seconds from 1 to 86400 (got '${!v:-}')"
  done
  case "$grace" in '' | *[!0-9]*) return 0 ;; esac # the worker refuses it itself
  if [ "${#grace}" -gt 9 ] || [ "$grace" -ge $((STOP_PROGRAMS_S * 1000)) ]; then
    say "warning: SHUTDOWN_GRACE_MS ($grace) is not below STOP_PROGRAMS_S ($STOP_PROGRAMS_S s): a worker still finishing its jobs at that bound is killed" || true
  fi
  return 0
}

# One stack per CC_VAR. A start takes an exclusive lock (flock) on $CC_VAR/stack.lock before
# it writes anything else in $CC_VAR, and holds it on descriptor 9 for as long as the script
# runs; the file says whose it is. A second start on the same directory (`make run` or `make
# cluster`, either way round) stops at once with a line naming the directory and the pid
# holding it, and exits 1 without touching anything there. The scripts call this before they
# set their traps: the stop of a start that never began would otherwise act on the running
# stack (stop_leftovers finds its processes by CC_VAR; supervisor.log, run/env).
# The services do not get the descriptor (start_service, oneshot and the supervisor's tick
# close it: `9>&-`), so none that outlives the script can keep the lock. The watchdog does
# get it, on purpose: after a SIGKILL of the script the directory stays taken until the
# watchdog has stopped the services (a few seconds past WATCHDOG_GRACE_S), so a new start
# neither finds them on its ports nor has its own services stopped by that watchdog (it
# reads run/sessions, which a new start writes anew). The lock goes with the last of the
# two, whatever ends them.
svc_lock() { # who: the script's name in the file and in a refusal ("make run")
  local lock=$CC_VAR/stack.lock hpid="" hwho="" rc=0 old_umask
  command -v flock >/dev/null || die "flock is missing (Debian package util-linux)"
  mkdir -p "$CC_VAR" || die "cannot make $CC_VAR"
  # <>: opened without truncating, so a refused start changes nothing in the file. Made
  # readable by its owner alone, and refused if another user's: flock needs only a read
  # descriptor, so a file others can open is one anybody could hold to block every start.
  old_umask=$(umask)
  umask 077
  exec 9<>"$lock" || die "cannot open $lock"
  umask "$old_umask"
  [ -O "$lock" ] || die "$lock belongs to another user: remove it (any user who can open it can hold the lock)"
  chmod 600 "$lock" || die "cannot set the mode of $lock"
  # 1 only when another holds the lock; any other failure (a file system without locks) is
  # told apart rather than taken for a running stack
  flock -n -E 200 9 || rc=$?
  if [ "$rc" = 200 ]; then
    read -r hpid hwho <"$lock" 2>/dev/null || true
    if [ -n "$hpid" ] && ! kill -0 "$hpid" 2>/dev/null; then
      # the script was killed outright: its watchdog holds the lock while it stops the
      # services (WATCHDOG_GRACE_S), or the winner of a start has not written its pid yet
      die "$CC_VAR is still held: the stack of ${hwho:-a start} (pid $hpid) is gone but its processes are being stopped; try again in a few seconds"
    fi
    die "$CC_VAR is in use by another stack${hpid:+ (${hwho:+$hwho, }pid $hpid)}: stop it first, or set CC_VAR to another directory"
  elif [ "$rc" != 0 ]; then
    die "cannot lock $lock (flock exit status $rc)"
  fi
  printf '%s %s\n' "$$" "$1" >"$lock"
}

# check_bind: CC_BIND is an IPv4 address or a host name, or an IPv6 address without
# brackets (it goes into the front door's configuration as it is; dies otherwise)
check_bind() {
  [[ "$CC_BIND" =~ ^[A-Za-z0-9][A-Za-z0-9.-]*$ || ("$CC_BIND" =~ ^[0-9A-Fa-f:.]+$ && "$CC_BIND" == *:*:*) ]] ||
    die "CC_BIND must be an IP address or a host name, an IPv6 address without brackets (got '$CC_BIND')"
}

# local_host ADDR: the host part of a URL that reaches, from this machine, a front door
# listening on ADDR (CC_BIND): loopback when it listens on every address, an IPv6 address in
# brackets. shown_host ADDR: the same for the "ready:" line, localhost for loopback.
local_host() {
  case "$1" in
    0.0.0.0) printf '127.0.0.1' ;;
    ::) printf '[::1]' ;;
    *:*) printf '[%s]' "$1" ;;
    *) printf '%s' "$1" ;;
  esac
}
shown_host() {
  case "$1" in
    0.0.0.0 | :: | 127.0.0.1 | ::1) printf 'localhost' ;;
    *) local_host "$1" ;;
  esac
}

port_free() { # port [address, 127.0.0.1 by default]
  local host=${2:-127.0.0.1}
  host=${host#[} host=${host%]}
  ! (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null
}

check_port() { # port name variable [address the port is to be taken on: CC_BIND]
  # `::` takes IPv4 clients too, so a port held on 127.0.0.1 alone keeps it as well
  port_free "$1" "$(local_host "${4:-127.0.0.1}")" &&
    { [ "${4:-}" != :: ] || port_free "$1" 127.0.0.1; } ||
    die "port $1 ($2) is already in use; stop what holds it or set $3 to another port"
}

# The bound is on the clock, not a count of tries: one try may itself take seconds (rcli,
# pg_isready -t 5), and `secs` of them would add up to far more than `secs`.
wait_for() { # description seconds command...
  local what=$1 secs=$2 now deadline
  shift 2
  sup_now_ms now
  deadline=$((now + secs * 1000))
  until "$@" >/dev/null 2>&1; do
    sup_now_ms now
    [ "$now" -ge "$deadline" ] && die "$what did not become ready within ${secs}s (logs in $CC_VAR/log/)"
    check_children
    sleep 0.05
  done
}

# A Redis server of the stack just started (start_service name), on port: ready once it
# answers PING with PONG. Redis listens before it has read its data (the AOF in var/redis)
# and answers every command with an error meanwhile (-LOADING …), after which redis-cli
# still exits 0: a wait on its exit status would call it ready while it loads, and the
# commands after it would fail. Up to 20 s for it to answer at all; while it answers that it
# is loading, up to REDIS_LOAD_S (600 s) from the start, with a line every 10 s saying how
# long it has been loading and how far it has got. A Redis that exits meanwhile (an AOF it
# refuses: redis-check-aof, docs/OPERATIONS.md) ends the start with a line saying so.
REDIS_LOAD_S=${REDIS_LOAD_S:-600}
redis_wait() { # name port
  local name=$1 port=$2 t0 now deadline next_say reply loading=0 perc
  case "$REDIS_LOAD_S" in '' | *[!0-9]* | 0*) die "REDIS_LOAD_S must be a whole number of seconds (got '$REDIS_LOAD_S')" ;; esac
  sup_now_ms t0
  deadline=$((t0 + 20000)) next_say=$((t0 + 10000))
  while true; do
    reply=$(rcli -p "$port" ping 2>/dev/null) || reply=""
    [ "$reply" = PONG ] && return 0
    sup_now_ms now
    if [[ $reply == LOADING* ]]; then
      [ "$loading" = 1 ] || say "$name is loading its data set (var/ holds data from an earlier run); waiting for it" || true
      loading=1
      deadline=$((t0 + REDIS_LOAD_S * 1000))
    fi
    if [ "$now" -ge "$deadline" ]; then
      if [ "$loading" = 1 ]; then
        die "$name was still loading its data set after ${REDIS_LOAD_S}s; set REDIS_LOAD_S higher (logs in $CC_VAR/log/)"
      fi
      die "$name did not become ready within 20s (logs in $CC_VAR/log/)"
    fi
    if [ "$loading" = 1 ] && [ "$now" -ge "$next_say" ]; then
      perc=$(rcli -p "$port" info persistence 2>/dev/null | tr -d '\r' | sed -n 's/^loading_loaded_perc://p') || perc=""
      say "$name is still loading its data set: $(((now - t0) / 1000)) s so far${perc:+, $perc% read} (at most ${REDIS_LOAD_S}s: REDIS_LOAD_S)" || true
      next_say=$((now + 10000))
    fi
    if [ -n "${spid[$name]:-}" ] && ! svc_same "${spid[$name]}"; then
      die "$name exited while starting: see $CC_VAR/log/ (an append-only file it cannot load is repaired with redis-check-aof --fix: docs/OPERATIONS.md, \"Redis data at start\")"
    fi
    check_children
    sleep 0.05
  done
}

check_children() {
  local n
  for n in "${!spid[@]}"; do
    svc_same "${spid[$n]}" || die "$n exited during start-up (logs in $CC_VAR/log/)"
  done
}


# Processes of this stack whose command line holds word, left behind by a web server that
# died: lighttpd's keep-fcgi.sh processes (the kernel's SIGTERM at its death stops them) or
# Apache's children (they would keep the port). Stopped before the web server is started
# again, and at the end: with signal (TERM: a keeper lets its API process finish the
# request), then KILL after STOP_LEFTOVERS_S (10 s), one bound for all of them. Apache's orphans get KILL at
# once: a graceful stop would wait for their open streams, which reconnect to the new one
# anyway.
# The scan of /proc uses builtins only (mapfile, not grep): a stop looks four times, and two
# greps for each of the machine's processes took about 0.3 s a look.
stop_leftovers() { # word [signal] [var: whose CC_VAR; the script's own by default]
  local p left=() gone=() var=${3:-$CC_VAR} recs r found
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] && continue
    # its command line holds word (the arguments, NUL-separated, joined with spaces)
    mapfile -d '' recs 2>/dev/null <"$p/cmdline" || continue
    [[ "${recs[*]}" == *"$1"* ]] || continue
    # and its environment has CC_VAR=var, exactly
    mapfile -d '' recs 2>/dev/null <"$p/environ" || continue
    found=0
    for r in "${recs[@]}"; do
      if [ "$r" = "CC_VAR=$var" ]; then found=1 && break; fi
    done
    [ "$found" = 1 ] || continue
    is_zombie "${p#/proc/}" && continue
    left+=("${p#/proc/}")
    svc_note "${p#/proc/}"
  done
  [ ${#left[@]} -gt 0 ] || return 0
  for p in "${left[@]}"; do svc_kill "${2:-TERM}" "$p"; done
  for p in "${left[@]}"; do gone+=("a left-over $1 process" "$p"); done
  gone_or_kill_all "$STOP_LEFTOVERS_S" "${gone[@]}"
}

# The watchdog (scripts/watchdog.sh): a process outside every session of ours that stops the
# services should the script die without its traps running (SIGKILL). svc_started records
# each new service's pid (a session id: it was started with setsid) in $CC_VAR/run/sessions,
# so a restarted service is covered as well; the watchdog itself looks only at the script's
# pid, never at a service's death. Started before the first service; svc_watchdog_stop is the
# last step of the script's own stop.
watchdog_pid=""
export WATCHDOG_GRACE_S=${WATCHDOG_GRACE_S:-5} # SIGTERM, then SIGKILL this many seconds later
svc_watchdog_start() {
  case "$WATCHDOG_GRACE_S" in '' | *[!0-9]*) die "WATCHDOG_GRACE_S must be a whole number (got '$WATCHDOG_GRACE_S')" ;; esac
  : >"$CC_VAR/run/sessions" || die "cannot write $CC_VAR/run/sessions"
  # with the lock's descriptor, 9 (svc_lock): the directory stays taken until it is done
  setsid "$ROOT/scripts/watchdog.sh" $$ "$CC_VAR/run/sessions" "$CC_VAR/log/watchdog.log" &
  watchdog_pid=$!
  svc_note "$watchdog_pid"
}
# A service now running as pid, started in a session of its own (or watched: its session):
# into the service table, up since now and not due, and the session recorded for the watchdog.
svc_started() { # name pid
  spid[$1]=$2
  svc_note "$2"
  printf '%s\n' "$2" >>"$CC_VAR/run/sessions" ||
    say "could not record pid $2 for the watchdog: a SIGKILL of this script would leave it running"
  local now
  sup_now_ms now
  st0[$1]=$now
  sdue[$1]=""
  # its sign of life starts anew (svc_hang_check): the file may still hold the last one's
  salive_v[$1]=""
  salive_t[$1]=$now
}

# --- signs of life (lib/alive.h) -------------------------------------------------------------
# Our C programs that run a loop (the broker, the workers, the snapshotters) are started with
# ALIVE_FILE=$(svc_alive_file name) and write a count there that goes up while their loop
# turns. Every tick the supervisor reads it (a builtin read: no process started); one whose
# count has not moved for HANG_TIMEOUT_S seconds is alive but hung (stopped, deadlocked, stuck
# in a call) and is killed with its process group (SIGKILL), after which it is restarted as
# any service that died. 0 turns this off.
HANG_TIMEOUT_S=${HANG_TIMEOUT_S:-30}
export HANG_TIMEOUT_S
declare -A salive=() salive_v=() salive_t=()
svc_alive_file() { # var name: var = the file of the service's signs of life; it is watched
  printf -v "$1" '%s' "$CC_VAR/run/alive/$2"
  salive[$2]=${!1}
}
svc_check_hang_setting() {
  # no leading zero: the shell would read 010 as octal (and 08 not at all), the programs as 10
  case "$HANG_TIMEOUT_S" in '' | *[!0-9]* | 0?*) die "HANG_TIMEOUT_S must be a whole number of seconds, without leading zeros (got $HANG_TIMEOUT_S)" ;; esac
  [ "$HANG_TIMEOUT_S" -le 86400 ] || die "HANG_TIMEOUT_S must be at most 86400 (got $HANG_TIMEOUT_S)"
  mkdir -p "$CC_VAR/run/alive"
}
svc_hang_check() { # name pid now: kills the service when its sign of life is overdue
  local n=$1 p=$2 now=$3 v="" f=${salive[$1]:-} why=""
  [ -n "$f" ] && [ "$HANG_TIMEOUT_S" -gt 0 ] || return 0
  read -r v 2>/dev/null <"$f" || [ -e "$f" ] || why=" (and its file $f is gone)"
  if [ "$v" != "${salive_v[$n]:-}" ]; then
    salive_v[$n]=$v
    salive_t[$n]=$now
  elif [ $((now - ${salive_t[$n]:-$now})) -ge $((HANG_TIMEOUT_S * 1000)) ]; then
    notice "$n (pid $p) showed no sign of life for $(((now - salive_t[$n]) / 1000)) s (HANG_TIMEOUT_S)$why: killing it"
    # its own processes too (the broker's stream processes: the same process group)
    if svc_same "$p"; then kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; fi
    salive_t[$n]=$now # once: its death comes at the next look
  fi
  return 0
}
svc_watchdog_stop() {
  [ -n "$watchdog_pid" ] || return 0
  svc_kill TERM "$watchdog_pid"
  gone_or_kill "$watchdog_pid" 5 watchdog
  watchdog_pid=""
}

notice() { # a line for the terminal and for var/log/supervisor.log
  local line
  line=$(sup_log "$*")
  printf '%s\n' "$line" >>"$CC_VAR/log/supervisor.log" 2>/dev/null || true
  printf '%s\n' "$line" || true
}

# A service that died: one line saying which, how and when it comes back; its restart is
# due after the back-off (from the first delay again when it had run RESTART_RESET_S).
service_died() { # name
  local n=$1 p=${spid[$1]} rc=127 up d now pp up_s d_s
  ppid_of pp "$p"
  if [ -n "${sexit[$p]:-}" ]; then
    rc=${sexit[$p]}
    unset "sexit[$p]"
  elif [ "$pp" = "$$" ] || ! svc_same "$p"; then
    # our child, or gone (its pid may be another process's by now): the shell keeps the
    # status of a child it has reaped
    wait "$p" 2>/dev/null && rc=0 || rc=$?
  fi
  spid[$n]=""
  sync_pids
  sup_now_ms now
  up=$((now - st0[$n]))
  sup_secs up_s "$up"
  if [ "${snrest[$n]:-}" = keep ]; then
    notice "$n (pid $p) ended after $up_s s; the other API processes serve its socket"
    return 0
  fi
  [ "$up" -ge $((RESTART_RESET_S * 1000)) ] && snrest[$n]=0
  d=$(sup_delay_ms "${snrest[$n]:-0}")
  [ -n "${smin[$n]:-}" ] && [ "$d" -lt "${smin[$n]}" ] && d=${smin[$n]}
  snrest[$n]=$((${snrest[$n]:-0} + 1))
  sdue[$n]=$((now + d))
  local how="exited"
  [ "$rc" = 127 ] || how=$(sup_how "$rc")
  sup_secs d_s "$d"
  notice "$n (pid $p) $how after $up_s s; restarting it in $d_s s (restart ${snrest[$n]})"
}

# Stay in the foreground, supervising, until we are told to stop or our parent dies (make
# killed outright: nobody would ever tell us, and the stack would hold its ports). A service
# that dies is started again after its back-off (service_died). `wait -n` returns as soon as
# one of our children ends, so a death is seen at once; the API processes under Apache are
# not our children and are looked at every second. Every LOG_CHECK_S seconds, logs over
# LOG_MAX_MB are cut (scripts/cap-logs.sh; 0: never). An idle tick starts one process, the
# `sleep` that `wait -n` waits for besides the services (a builtin such as `read -t` would not
# wake when a child dies): everything else in it, svc_tick's idle path included, is builtins
# and functions that set variables (sup_now_ms, sup_secs, ppid_of), never `$(…)`.
svc_supervise() {
  local next_cap now n p d wait_ms wait_s left tick children who rc pp
  local -A pp_of
  sup_now_ms now
  next_cap=$((now + LOG_CHECK_S * 1000))
  while true; do
    sup_now_ms now
    if [ "$LOG_MAX_MB" -gt 0 ] && [ "$now" -ge "$next_cap" ]; then
      for d in "${SVC_LOG_DIRS[@]:-$CC_VAR/log}"; do
        "$ROOT/scripts/cap-logs.sh" "$d" $((LOG_MAX_MB * 1024 * 1024)) 9>&- ||
          say "could not cap the logs in $d" || true
      done
      next_cap=$((now + LOG_CHECK_S * 1000))
    fi
    if declare -F svc_tick >/dev/null; then svc_tick; fi
    if parent_gone; then
      trap '' PIPE # whoever read our output may have gone with it
      say "the parent process (pid $parent) is gone; stopping everything" || true
      exit 0
    fi
    # one look at each service's /proc/PID/stat a tick: svc_same leaves its fields in pstat
    # (the state: a zombie has died; the parent, kept for the wait below)
    pp_of=()
    for n in "${!spid[@]}"; do
      p=${spid[$n]}
      [ -n "$p" ] || continue
      if [ -n "${sexit[$p]:-}" ] || ! svc_same "$p" || [ "${pstat[0]}" = Z ]; then
        service_died "$n"
      else
        pp_of[$p]=${pstat[1]}
        svc_hang_check "$n" "$p" "$now"
      fi
    done
    wait_ms=1000
    for n in "${!sdue[@]}"; do
      [ -n "${sdue[$n]}" ] || continue
      sup_now_ms now
      left=$((sdue[$n] - now))
      if [ "$left" -le 0 ]; then
        start_service "$n"
        notice "$n restarted (pid ${spid[$n]})"
      elif [ "$left" -lt "$wait_ms" ]; then
        wait_ms=$left
      fi
    done
    sup_secs wait_s "$wait_ms"
    sleep "$wait_s" 9>&- &
    tick=$!
    children=()
    for n in "${!spid[@]}"; do
      p=${spid[$n]}
      [ -n "$p" ] || continue
      # a child of ours stays one until we reap it: the parent seen above holds (a service
      # started again in this tick is looked at now)
      pp=${pp_of[$p]:-}
      [ -n "$pp" ] || ppid_of pp "$p"
      [ "$pp" = "$$" ] && children+=("$p")
    done
    who=""
    wait -n -p who "$tick" "${children[@]}" && rc=0 || rc=$?
    if [ -n "$who" ] && [ "$who" != "$tick" ]; then
      sexit[$who]=$rc
      kill "$tick" 2>/dev/null || true
      wait "$tick" 2>/dev/null || true
    fi
  done
}

# --- what both scripts set up the same way -------------------------------------------------

# The JWT key: JWT_SECRET, else JWT_SECRET_FILE, else one generated once into $CC_VAR
# (exported as JWT_SECRET_FILE for every program).
jwt_setup() {
  if [ -n "${JWT_SECRET_FILE:-}" ] && [ -z "${JWT_SECRET:-}" ]; then
    [ -r "$JWT_SECRET_FILE" ] || die "JWT_SECRET_FILE $JWT_SECRET_FILE cannot be read"
  elif [ -z "${JWT_SECRET:-}" ]; then
    if [ ! -s "$CC_VAR/jwt_secret" ]; then
      (umask 077 && head -c 48 /dev/urandom | base64 -w0 >"$CC_VAR/jwt_secret")
    fi
    export JWT_SECRET_FILE=$CC_VAR/jwt_secret
  fi
}

# PostgreSQL runs as the postgres user (initdb and postgres refuse root), in / (a checkout's
# directory may be closed to it).
as_pg=(setpriv --reuid=postgres --regid=postgres --clear-groups --reset-env /usr/bin/env -C /)

# A data directory for PostgreSQL at dir, owned by postgres (mode 700), and the socket
# directory $CC_VAR/run/pg. Where the postgres user cannot reach them (a checkout under
# /root, say: /root is closed to other users), each is a private directory under /var/tmp
# with a link at its place in var/ (pg_place). A program run as postgres is given the path
# that the links lead to (pg_real): postgres cannot follow a path through var/.
pg_data_dir() { # dir (absolute, in $CC_VAR)
  local dir=$1 alt
  mkdir -p "$CC_VAR/run"
  alt=/var/tmp/codecollab-pg-$(printf '%s' "$(dirname "$dir")" | sha1sum | cut -c1-12)
  pg_place "$dir" "$alt$([ "$(basename "$dir")" = pg ] || printf -- '-%s' "$(basename "$dir")")" "data" 700
  pg_place "$CC_VAR/run/pg" "$alt-socket" "socket directory" ""
}

# path as the postgres user reaches it: with every link resolved.
pg_real() { readlink -f "$1"; }

# A directory postgres works in at path, postgres's. Where postgres cannot enter path's
# parent, the directory is alt under /var/tmp and path a link to it: made so when path is not
# there yet (or is an empty directory, as an earlier start that failed here left it). A
# directory in var/ itself is made, given to postgres and set to mode (unless "") here; one
# under /var/tmp only by pg_alt_dir, which follows no link.
pg_place() { # path alt what mode
  local path=$1 alt=$2 parent target
  parent=$(dirname "$path")
  if [ -L "$path" ]; then
    # a link: made by an earlier start (to alt, or to another such name when var/ was moved
    # or named otherwise since), or the operator's own. One to /var/tmp/codecollab-pg-*
    # leads where anyone may have put something since (after a cleaner removed the
    # directory): what it names is checked again, at every start. The operator's own,
    # elsewhere, is followed as before
    target=$(readlink "$path")
    if [ "$(dirname "$target")" = /var/tmp ] && [[ $(basename "$target") == codecollab-pg-* ]]; then
      pg_alt_dir "$target"
      return 0
    fi
  elif ! "${as_pg[@]}" test -x "$parent" &&
    { [ ! -e "$path" ] || rmdir "$path" 2>/dev/null; }; then
    pg_alt_dir "$alt"
    ln -sfn "$alt" "$path" # -n: over a link whose directory is gone, not into it
    say "PostgreSQL's $3 is in $alt (linked from $path): postgres cannot enter $parent"
    return 0
  fi
  mkdir -p "$path"
  chown postgres:postgres "$path"
  [ -z "$4" ] || chmod "$4" "$path"
}

# The private directory alt under /var/tmp, postgres's and mode 700, made if it is not there.
# Its name is predictable and /var/tmp open to all: one that someone else put there (a
# link, anything but a directory, or one of another user than root and postgres) is
# refused. Nothing here follows a link out of /var/tmp: a new one is made by root with
# mkdir (which fails on anything put there meanwhile) at mode 700, then given to postgres
# with chown -h; one of root's is given with chown -h (/var/tmp is sticky: no other user can
# rename or replace it); one of postgres's, which postgres itself could swap for a link at any
# moment, is left as it is, but for a mode other than 700, set by postgres itself.
pg_alt_dir() { # alt
  local alt=$1 owner
  if [ ! -e "$alt" ] && [ ! -L "$alt" ]; then
    mkdir -m 700 "$alt" || die "could not make $alt: remove what is there, or give CC_VAR a place postgres can enter"
    chown -h postgres:postgres "$alt"
    return 0
  fi
  owner=$(stat -c %U "$alt")
  if [ -L "$alt" ] || [ ! -d "$alt" ] || ! [[ $owner =~ ^(root|postgres)$ ]]; then
    die "$alt is a symbolic link, not a directory, or belongs to another user: remove it, or give CC_VAR a place postgres can enter"
  fi
  if [ "$owner" = root ]; then
    chmod 700 "$alt" && chown -h postgres:postgres "$alt"
  elif [ "$(stat -c %a "$alt")" != 700 ]; then
    "${as_pg[@]}" chmod 700 "$alt"
  fi
}

# A PostgreSQL data directory made from nothing by a PostgreSQL program run as the postgres
# user (initdb, pg_basebackup), unless dir holds one already; marked unfinished while the
# program runs. Both remove what they made when they fail by themselves, so the mark goes
# whichever way the program ends, unless a stop cut it short. Then: refuses a dir a running
# server holds.
pg_make_data() { # name dir doing program args...: name is the mark's and the log's (log/<name>.log)
  local name=$1 dir=$2 doing=$3 prog=$4 rc
  shift 4
  unfinished_check "$name"
  if [ ! -s "$dir/PG_VERSION" ]; then
    say "$doing in $dir"
    unfinished_begin "$name" "rm -rf ${dir@Q}/*"
    oneshot "$prog" ">$CC_VAR/log/$name.log" "${as_pg[@]}" "$PG_BIN/$prog" "$@" && rc=0 || rc=$?
    unfinished_end "$name"
    [ "$rc" = 0 ] || die "$prog failed, see $CC_VAR/log/$name.log"
  fi
  pg_not_running "$dir"
}

# A new PostgreSQL cluster in dir unless it has one.
pg_initdb() { # dir log-name
  pg_make_data "$2" "$1" "creating the PostgreSQL cluster" initdb \
    -D "$(pg_real "$1")" -U postgres -A trust -E UTF8 --locale=C.UTF-8
}

# Stops the start when a PostgreSQL server still runs on dir: the pid its postmaster.pid
# names is alive, is a postgres (/proc/PID/comm), and works in dir (a postmaster's working
# directory is its data directory; unreadable as another user: taken as dir). After a crash
# the file stays, and its pid may since have gone to any process (kill -0 alone, as root, is
# true for all of them): a file whose pid is some other process is stale, and is removed
# with a line saying so (postgres itself would refuse it when that process is the postgres
# user's, and it cannot tell a reused pid from its server either).
pg_not_running() { # dir
  local oldpid comm cwd
  [ -f "$1/postmaster.pid" ] || return 0
  oldpid=$(head -n 1 "$1/postmaster.pid")
  case "$oldpid" in '' | *[!0-9]*) return 0 ;; esac # malformed: postgres judges it itself
  kill -0 "$oldpid" 2>/dev/null || return 0
  comm=$(cat "/proc/$oldpid/comm" 2>/dev/null) || comm=""
  if [ "$comm" = postgres ]; then
    cwd=$(readlink "/proc/$oldpid/cwd" 2>/dev/null) || cwd=""
    if [ -z "$cwd" ] || [ "$cwd" = "$(pg_real "$1")" ]; then
      die "a PostgreSQL server (pid $oldpid) already runs on $1"
    fi
  elif [ -z "$comm" ]; then
    return 0 # gone meanwhile
  fi
  say "$1/postmaster.pid names pid $oldpid, which is not a PostgreSQL server of $1 (it is ${comm:-gone}): the file is left from a server that is gone, removing it"
  rm -f "$1/postmaster.pid" || die "cannot remove the stale $1/postmaster.pid"
  return 0
}

# The role and database codecollab on the server at $CC_VAR/run/pg, port: one psql as the
# superuser postgres (oneshot). The programs connect as codecollab, an ordinary role that owns
# the database and its tables and nothing else: an SQL injection, were one ever found, could
# not reach what only a superuser can (COPY ... TO PROGRAM, reading the server's files, other
# databases). Every start makes sure of it: the role is created when missing, stripped of any
# attribute beyond LOGIN, of any membership in another role and of its session settings; a
# database or tables of an older installation, made by postgres, are handed to codecollab.
# The database is codecollab's, so whatever runs there as postgres must not let codecollab's
# objects in: its settings (ALTER DATABASE ... SET search_path, say) are reset before
# postgres connects to it, and there postgres looks up names in pg_catalog alone, every
# function and operator named with its schema (a public.format or public.<> that matched
# better would otherwise run as the superuser). (\gexec runs the statements a query returns.)
pg_create_db() { # port
  local admin="postgresql:///postgres?host=$CC_VAR/run/pg&port=$1&user=postgres"
  oneshot "psql creating the database" "" psql "$admin" -X -q -o /dev/null -v ON_ERROR_STOP=1 -f <(printf '%s\n' \
    "SET search_path = pg_catalog, pg_temp;" \
    "SELECT 'CREATE ROLE codecollab LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'codecollab')\gexec" \
    "ALTER ROLE codecollab LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;" \
    "ALTER ROLE codecollab RESET ALL;" \
    "SELECT pg_catalog.format('REVOKE %I FROM codecollab', r.rolname) FROM pg_auth_members m JOIN pg_roles r ON r.oid OPERATOR(pg_catalog.=) m.roleid WHERE m.member OPERATOR(pg_catalog.=) 'codecollab'::pg_catalog.regrole\gexec" \
    "SELECT 'CREATE DATABASE codecollab OWNER codecollab' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname OPERATOR(pg_catalog.=) 'codecollab')\gexec" \
    "ALTER DATABASE codecollab OWNER TO codecollab;" \
    "ALTER DATABASE codecollab RESET ALL;" \
    "\\connect codecollab" \
    "SET search_path = pg_catalog, pg_temp;" \
    "GRANT USAGE, CREATE ON SCHEMA public TO codecollab;" \
    "SELECT pg_catalog.format('ALTER TABLE public.%I OWNER TO codecollab', tablename) FROM pg_tables WHERE schemaname OPERATOR(pg_catalog.=) 'public' AND tableowner OPERATOR(pg_catalog.<>) 'codecollab'\gexec") ||
    die "cannot create the database"
}

# The URL the programs use for the database codecollab at $CC_VAR/run/pg, port (the role
# pg_create_db keeps; the superuser postgres is for the start scripts alone).
pg_app_url() { # port
  printf 'postgresql:///codecollab?host=%s&port=%s&user=codecollab' "$CC_VAR/run/pg" "$1"
}

# schema.sql (idempotent) on the database at url.
pg_schema() { # url
  oneshot "psql loading schema.sql" ">>$CC_VAR/log/schema.log" \
    psql "$1" -X -q -v ON_ERROR_STOP=1 -1 -f "$ROOT/schema.sql" || die "applying schema.sql failed, see $CC_VAR/log/schema.log"
}

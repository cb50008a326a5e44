#!/usr/bin/env bash
# Keeps one FastCGI program running on the listening socket its spawner handed it as fd 0
# (lighttpd's bin-path, spawn-fcgi): scripts/keep-fcgi.sh [program] (default
# $CC_BIN/codecollab-api). When the program dies it is started again on the same socket after
# the restart back-off of scripts/supervise.sh, with one line in the log (stderr, the API's
# log) saying what died, how, and when it comes back. The socket stays open here meanwhile,
# so requests that reach this process while the program is down wait in the socket's queue
# and are served by the next start instead of failing.
# SIGTERM, SIGINT, SIGHUP: passed on to the program; this script exits when it has ended.
# With KEEP_FCGI_WATCH_PARENT=1 (lighttpd) it also stops the program and exits when its
# parent goes away, so a killed lighttpd leaves nothing behind. KEEP_FCGI_LOG: a file that
# its lines and the program's standard error are appended to (spawn-fcgi leaves the
# program no standard error of its own).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=supervise.sh
. "$here/supervise.sh"
prog=${1:-${CC_BIN:-}/codecollab-api}
name=${prog##*/}
if [ -n "${KEEP_FCGI_LOG:-}" ]; then
  exec 2>>"$KEEP_FCGI_LOG" || exit 2
fi
msg=$(sup_check_settings) || { echo "keep-fcgi: $msg" >&2; exit 2; }
[ -x "$prog" ] || { echo "keep-fcgi: $prog is not an executable" >&2; exit 2; }
parent=$PPID
watch=${KEEP_FCGI_WATCH_PARENT:-0}
child=""
stopping=0
stop() {
  stopping=1
  [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
  return 0
}
ppid_now() { # our parent's pid now (init's or a subreaper's once the spawner is gone)
  local st
  read -r st 2>/dev/null </proc/$$/stat || return 0
  st=${st##*) }
  set -- $st
  printf '%s' "${2:-}"
}
trap stop TERM INT HUP
# the listening socket, for every start: a background command's standard input would be
# /dev/null otherwise (no job control), and the program would take itself for a CGI
exec 3<&0
restarts=0
while :; do
  t0=$(sup_now_ms)
  "$prog" <&3 3<&- &
  child=$!
  while :; do
    if [ "$watch" = 1 ]; then
      sleep 1 &
      tick=$!
      wait -n "$child" "$tick" 2>/dev/null
      kill "$tick" 2>/dev/null
      wait "$tick" 2>/dev/null
    else
      wait "$child" 2>/dev/null
    fi
    if ! kill -0 "$child" 2>/dev/null; then
      wait "$child" 2>/dev/null
      rc=$?
      break
    fi
    if [ "$watch" = 1 ] && [ "$stopping" = 0 ] && [ "$(ppid_now)" != "$parent" ]; then
      stop
    fi
  done
  [ "$stopping" = 1 ] && exit 0
  up=$(($(sup_now_ms) - t0))
  [ "$up" -ge $((RESTART_RESET_S * 1000)) ] && restarts=0
  d=$(sup_delay_ms "$restarts")
  restarts=$((restarts + 1))
  sup_log "$name (pid $child) $(sup_how "$rc") after $(sup_secs "$up") s; starting it again in $(sup_secs "$d") s (restart $restarts)" >&2
  child=""
  sleep "$(sup_secs "$d")" &
  child=$!
  wait "$child" 2>/dev/null
  while kill -0 "$child" 2>/dev/null; do wait "$child" 2>/dev/null; done
  child=""
  [ "$stopping" = 1 ] && exit 0
done

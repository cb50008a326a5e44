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
# parent goes away, so a killed lighttpd leaves nothing behind: the kernel sends this script
# SIGTERM then (PR_SET_PDEATHSIG, armed by running itself again once under
# `setpriv --pdeathsig TERM`, same process), so it waits for the program without polling and
# starts no process while all is well. KEEP_FCGI_LOG: a file that
# its lines and the program's standard error are appended to (spawn-fcgi leaves the
# program no standard error of its own).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
watch=${KEEP_FCGI_WATCH_PARENT:-0}
# The first run arms the parent-death signal and runs the script again in this same process;
# KEEP_FCGI_REEXEC ("our pid:the parent we were started by") marks the second run (a value
# inherited from elsewhere names another pid) and carries the parent to check below.
if [ "$watch" = 1 ]; then
  reexec=${KEEP_FCGI_REEXEC:-}
  if [ "${reexec%%:*}" != "$$" ]; then
    export KEEP_FCGI_REEXEC=$$:$PPID
    exec setpriv --pdeathsig TERM -- "$here/${0##*/}" "$@"
  fi
  parent=${reexec#*:}
  unset KEEP_FCGI_REEXEC # not for the program
fi
# shellcheck source=supervise.sh
. "$here/supervise.sh"
# shellcheck source=proc.sh
. "$here/proc.sh"
prog=${1:-${CC_BIN:-}/codecollab-api}
name=${prog##*/}
if [ -n "${KEEP_FCGI_LOG:-}" ]; then
  exec 2>>"$KEEP_FCGI_LOG" || exit 2
fi
msg=$(sup_check_settings) || { echo "keep-fcgi: $msg" >&2; exit 2; }
[ -x "$prog" ] || { echo "keep-fcgi: $prog is not an executable" >&2; exit 2; }
child=""
stopping=0
stop() {
  stopping=1
  [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
  return 0
}
trap stop TERM INT HUP
# the parent may have gone before the death signal was armed: then none will come
if [ "$watch" = 1 ] && ! { proc_stat $$ && [ "${pstat[1]}" = "$parent" ]; }; then
  echo "keep-fcgi: the parent (pid $parent) is gone; not starting $name" >&2
  exit 0
fi
# the listening socket, for every start: a background command's standard input would be
# /dev/null otherwise (no job control), and the program would take itself for a CGI
exec 3<&0
restarts=0 t0=0 now=0 up_s="" d_s=""
while :; do
  sup_now_ms t0
  "$prog" <&3 3<&- &
  child=$!
  # a stop signal between the start and the line above found no program to pass it on to
  [ "$stopping" = 0 ] || stop
  # a trapped signal ends `wait` early (its trap has run): wait again until the program ends
  while :; do
    wait "$child" 2>/dev/null
    if ! kill -0 "$child" 2>/dev/null; then
      wait "$child" 2>/dev/null
      rc=$?
      break
    fi
  done
  [ "$stopping" = 1 ] && exit 0
  sup_now_ms now
  up=$((now - t0))
  [ "$up" -ge $((RESTART_RESET_S * 1000)) ] && restarts=0
  d=$(sup_delay_ms "$restarts")
  restarts=$((restarts + 1))
  sup_secs up_s "$up"
  sup_secs d_s "$d"
  sup_log "$name (pid $child) $(sup_how "$rc") after $up_s s; starting it again in $d_s s (restart $restarts)" >&2
  child=""
  sleep "$d_s" &
  child=$!
  wait "$child" 2>/dev/null
  while kill -0 "$child" 2>/dev/null; do wait "$child" 2>/dev/null; done
  child=""
  [ "$stopping" = 1 ] && exit 0
done

#!/usr/bin/env bash
# scripts/watchdog.sh PID SESSIONS LOG: stops what the script PID started once PID is gone
# without having stopped it itself (SIGKILL: no trap runs). Started by scripts/services.sh
# (svc_watchdog_start) in a session of its own, so the signals of a terminal or of a
# supervisor meant for the script's process group do not reach it; the script ends it with
# SIGTERM after its own stop.
#
# SESSIONS holds one pid a line: every service the script started with `setsid`, so each is
# the leader of a session whose id is that pid (for run.sh's API processes under spawn-fcgi:
# their session). Every process still in one of those sessions (a service's children too:
# PostgreSQL's backends, lighttpd's API processes) gets SIGTERM
# (the postmaster SIGINT, PostgreSQL's fast shutdown), and SIGKILL after WATCHDOG_GRACE_S.
#
# It inherits the script's lock on CC_VAR (descriptor 9: svc_lock, scripts/services.sh) and
# keeps it until it exits: a new start on the directory is refused until the services are
# stopped. Otherwise they would still hold its ports, and this watchdog, which reads
# SESSIONS anew at every look, would stop the new start's services that it records there.
#
# Why polling /proc and not a pipe whose write end only the script holds: the services
# inherit the script's descriptors (setsid closes none), so the pipe would reach EOF
# only once the last service had gone too. A zombie counts as gone (its parent may not reap
# it at once), and the start time read at the start guards against a reused pid. The poll
# starts no process: proc_stat reads /proc with builtins, and the pause between two looks is
# a `read -t` on a pipe nobody writes to (nap), not a `sleep` (five processes a second for as
# long as the stack runs); a SIGTERM still ends it at once, its trap running.
set -u

pid=$1 sessions=$2 log=$3
grace=${WATCHDOG_GRACE_S:-5}
exec </dev/null >>"$log" 2>&1
trap 'exit 0' TERM INT HUP

# shellcheck source=proc.sh
. "$(dirname "${BASH_SOURCE[0]}")/proc.sh"

# this process holds both ends of the pipe, so a read on it only ever times out
exec {nap_fd}<> <(:)
nap() { # seconds
  read -r -t "$1" -u "$nap_fd" _ || true
}

proc_stat "$pid" || exit 0
born=${pstat[19]}
while proc_stat "$pid" && [ "${pstat[0]}" != Z ] && [ "${pstat[19]}" = "$born" ]; do
  nap 0.2
done

# The live processes of the recorded sessions: "pid session" a line.
members() {
  local p s
  declare -A want=()
  while read -r s; do [ -n "$s" ] && want[$s]=1; done <"$sessions" 2>/dev/null
  for p in /proc/[0-9]*; do
    proc_stat "${p#/proc/}" && [ "${pstat[0]}" != Z ] && [ -n "${want[${pstat[3]}]:-}" ] &&
      printf '%s %s\n' "${p#/proc/}" "${pstat[3]}"
  done
}

left=$(members)
[ -n "$left" ] || exit 0
printf '%s codecollab-watchdog: the script (pid %s) is gone without stopping its services; stopping them\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$pid"
while read -r p sid; do
  if [ "$p" = "$sid" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = postgres ]; then
    kill -INT "$p" 2>/dev/null
  elif [ "$p" != "$sid" ] && [ "$(cat "/proc/$sid/comm" 2>/dev/null)" = postgres ]; then
    : # a backend: its postmaster stops it
  else
    kill -TERM "$p" 2>/dev/null
  fi
done <<<"$left"
for ((i = 0; i < grace * 10; i++)); do
  left=$(members)
  [ -n "$left" ] || exit 0
  nap 0.1
done
while read -r p sid; do kill -KILL "$p" 2>/dev/null; done <<<"$left"
printf '%s codecollab-watchdog: killed what was left after %s s: %s\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$grace" "$(printf '%s' "$left" | cut -d' ' -f1 | tr '\n' ' ')"
exit 0

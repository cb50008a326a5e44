# Sourced by scripts/services.sh and scripts/watchdog.sh: what /proc/PID/stat says of a process.
# pstat: its fields from the state on (0 state, 1 ppid, 2 process group, 3 session, 19 start
# time in clock ticks since boot); 1 when the process is gone. Read without a fork: the
# supervisor and the watchdog ask many times a second.
proc_stat() { # pid
  local s
  pstat=()
  read -r s 2>/dev/null <"/proc/$1/stat" || return 1
  # after "pid (comm) ": comm may hold spaces and parentheses
  read -ra pstat <<<"${s##*) }"
  [ ${#pstat[@]} -gt 19 ]
}

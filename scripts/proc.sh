# Sourced by scripts/services.sh and scripts/watchdog.sh: what /proc/PID/stat says of a process.
# pstat: these of its fields, counted from the state on: 0 state, 1 ppid, 2 process group,
# 3 session, 19 start time in clock ticks since boot; 1 when the process is gone. Read
# without a fork: the supervisor and the watchdog ask many times a second.
#
# The file is split by `read -a` straight from /proc, in one read of it: no here-string,
# which bash feeds through a pipe that `read` then takes one byte per system call (some 300
# calls a look; the supervisor looked about twenty times a tick). The command name after the
# pid may hold spaces and parentheses: it is at most 15 bytes, so with its parentheses at most
# nine words (f[1] to f[9]), and the last of them ends in ")"; no field after it does (a state
# letter, then numbers).
proc_stat() { # pid
  local -a f=()
  local i k=1
  pstat=()
  read -ra f -d '' 2>/dev/null <"/proc/$1/stat" # status 1 at the end of the file: not an error
  for ((i = 2; i < 10 && i < ${#f[@]}; i++)); do
    [[ ${f[i]} == *')' ]] && k=$i
  done
  [ ${#f[@]} -gt $((k + 20)) ] || return 1
  pstat=([0]="${f[k + 1]}" [1]="${f[k + 2]}" [2]="${f[k + 3]}" [3]="${f[k + 4]}" [19]="${f[k + 20]}")
}

# Sourced by scripts/services.sh and scripts/watchdog.sh: what /proc/PID/stat says of a process.
# pstat: these of its fields, counted from the state on: 0 state, 1 ppid, 2 process group,
# 3 session, 19 start time in clock ticks since boot; 1 when the process is gone. Read
# without a fork: the supervisor and the watchdog ask many times a second.
#
# The file is taken whole by one `read` (one read(2) of it and one at its end) and split by
# word splitting, not through a here-string: bash feeds a here-string through a pipe, and
# `read` takes a pipe one byte per system call (some 300 calls a look). The command name
# after the pid may hold spaces, parentheses, tabs and newlines, and a kernel thread's may be
# long: the fields are what follows the last ") ". After it come only a state letter and
# numbers (no glob characters). `read -d ''` ends at the end of the file with status 1:
# not an error, hence `|| :` (a bare call under `set -e` must not end the script).
proc_stat() { # pid
  local s
  local -a a
  pstat=()
  read -r -d '' s 2>/dev/null <"/proc/$1/stat" || :
  [[ ${s:-} == *') '* ]] || return 1
  # shellcheck disable=SC2206 # split on purpose; the fields hold no glob characters
  a=(${s##*) })
  [ ${#a[@]} -gt 19 ] || return 1
  pstat=([0]="${a[0]}" [1]="${a[1]}" [2]="${a[2]}" [3]="${a[3]}" [19]="${a[19]}")
}

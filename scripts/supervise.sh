# Sourced by scripts/run.sh and scripts/keep-fcgi.sh: the restart policy of a supervised
# process, the shell twin of lib/backoff.h (the one capped exponential back-off with
# jitter): restart n (0 for the first) waits a random time in [d/2, d] where
# d = min(RESTART_BACKOFF_FIRST_MS * 2^n, RESTART_BACKOFF_MAX_MS). A process that stayed up
# RESTART_RESET_S seconds starts again from the first delay; one that keeps dying at once
# waits longer each time, up to the cap, instead of spinning.
RESTART_BACKOFF_FIRST_MS=${RESTART_BACKOFF_FIRST_MS:-200}
RESTART_BACKOFF_MAX_MS=${RESTART_BACKOFF_MAX_MS:-30000}
RESTART_RESET_S=${RESTART_RESET_S:-30}

sup_check_settings() { # prints what is wrong, returns 1; nothing and 0 when all is well
  local v
  for v in RESTART_BACKOFF_FIRST_MS RESTART_BACKOFF_MAX_MS RESTART_RESET_S; do
    case "${!v}" in '' | *[!0-9]*) printf '%s must be a whole number (got %s)\n' "$v" "${!v}"; return 1 ;; esac
  done
  if [ "$RESTART_BACKOFF_FIRST_MS" -lt 1 ] || [ "$RESTART_BACKOFF_MAX_MS" -lt "$RESTART_BACKOFF_FIRST_MS" ]; then
    printf 'RESTART_BACKOFF_FIRST_MS must be at least 1 and at most RESTART_BACKOFF_MAX_MS\n'
    return 1
  fi
  return 0
}

# sup_now_ms and sup_secs set the variable named first instead of printing: the supervisors
# call them every tick, and a command substitution would fork a process each time. They keep
# no locals, so the variable may have any name.
sup_now_ms() { # var: the wall clock in milliseconds
  printf -v "$1" '%s' $((${EPOCHREALTIME/[.,]/} / 1000))
}

sup_delay_ms() { # restart: the wait before restart n (0 first), drawn in [d/2, d]
  local d=$RESTART_BACKOFF_FIRST_MS i
  for ((i = 0; i < $1 && d < RESTART_BACKOFF_MAX_MS; i++)); do d=$((d * 2)); done
  [ "$d" -gt "$RESTART_BACKOFF_MAX_MS" ] && d=$RESTART_BACKOFF_MAX_MS
  printf '%s' $((d - (RANDOM * 32768 + RANDOM) % (d / 2 + 1)))
}

sup_how() { # exit status as the shell reports it ($? of wait): how the process ended
  if [ "$1" -gt 128 ] && [ "$1" -lt 160 ]; then
    printf 'was killed by signal %s' "$(kill -l $(($1 - 128)) 2>/dev/null || echo $(($1 - 128)))"
  else
    printf 'exited with code %s' "$1"
  fi
}

sup_secs() { # var milliseconds: the milliseconds as seconds with two decimals
  printf -v "$1" '%d.%02d' $(($2 / 1000)) $((($2 % 1000) / 10))
}

sup_log() { # one line for the log: time, who, what
  printf '%s codecollab-supervisor: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$*"
}

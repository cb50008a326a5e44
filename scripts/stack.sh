# Sourced by scripts/test.sh and bench/: starts a throwaway stack (scripts/run.sh) on random
# free ports with its data in a temporary directory, and stops it again.
#   stack_up <build>   sets STACK_VAR, STACK_PID, exports the stack's BASE_URL,
#                      DATABASE_URL, REDIS_URL, JWT_SECRET_FILE and the programs'
#                      *_METRICS_URL (from var/run/env)
#   stack_down         stops it; returns 1 when a process of it survived

stack_free_port() { # [n [taken...]]: n free ports on one line, below the ephemeral range and
  # claimed for a while against every other test process (tests/lib/ports.mjs)
  node "$ROOT/tests/lib/ports.mjs" "${1:-1}" "${@:2}"
}

stack_procs() { # var: pids of live processes whose environment has CC_VAR=var, or that
  # work in var/ (redis-server and postgres overwrite their environment with their process
  # titles; they work in var/redis and var/pg)
  local p cwd
  local stat
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] && continue
    # a zombie is dead already (an orphan waits for the init process to reap it)
    read -r stat 2>/dev/null <"$p/stat" || continue
    stat=${stat##*) }
    [ "${stat%% *}" = Z ] && continue
    if grep -qzx -- "CC_VAR=$1" "$p/environ" 2>/dev/null; then
      echo "${p#/proc/}"
      continue
    fi
    cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
    case "$cwd" in "$1"/*) echo "${p#/proc/}" ;; esac
  done
  return 0
}

stack_up() { # build
  STACK_VAR=$(mktemp -d /tmp/codecollab-test.XXXXXX)
  chmod 755 "$STACK_VAR"
  mkdir -p "$STACK_VAR/log"
  export CC_VAR=$STACK_VAR BUILD=$1 CC_BIND=127.0.0.1
  local ports tls_port
  ports=$(stack_free_port 9 "${AI_DOUBLE_PORT:-}") || return 1
  read -r PORT BROKER_PORT PG_PORT REDIS_PORT METRICS_PORT BROKER_METRICS_PORT \
    WORKER_METRICS_PORT SNAPSHOTTER_METRICS_PORT tls_port <<<"$ports"
  export PORT BROKER_PORT PG_PORT REDIS_PORT
  export METRICS_HOST=127.0.0.1
  # every optional runtime (scripts/deps.sh test installs them), unless told otherwise
  export RUNTIMES_EXTRA=${RUNTIMES_EXTRA-all}
  export METRICS_PORT BROKER_METRICS_PORT WORKER_METRICS_PORT SNAPSHOTTER_METRICS_PORT
  export CC_READY_FILE=$STACK_VAR/ready
  # HTTPS (HTTP/2) beside plain HTTP, with a throwaway self-signed certificate: TLS_URL
  # (lighttpd only: under WEB=apache, make run leaves TLS to the site's own Apache)
  unset TLS TLS_PORT TLS_CERT TLS_KEY
  if [ "${WEB:-lighttpd}" != apache ]; then
    export TLS=self-signed TLS_PORT=$tls_port
  fi
  unset DATABASE_URL REDIS_URL JWT_SECRET JWT_SECRET_FILE # every throwaway stack makes its own key
  "$ROOT/scripts/run.sh" >"$STACK_VAR/log/run.out" 2>&1 &
  STACK_PID=$!
  local n=0
  until [ -e "$CC_READY_FILE" ]; do
    if ! kill -0 "$STACK_PID" 2>/dev/null || [ "$n" -ge 1200 ]; then
      echo "the stack did not start:"
      cat "$STACK_VAR/log/run.out"
      tail -n 20 "$STACK_VAR"/log/*.log 2>/dev/null || true
      stack_down || true
      return 1
    fi
    n=$((n + 1))
    sleep 0.1
  done
  # what started this stack is not for stacks the tests start themselves (run.test.mjs)
  unset TLS TLS_PORT METRICS_HOST METRICS_PORT BROKER_METRICS_PORT WORKER_METRICS_PORT \
    SNAPSHOTTER_METRICS_PORT
  set -a
  # shellcheck disable=SC1091
  . "$STACK_VAR/run/env"
  set +a
}

stack_down() {
  kill -TERM "$STACK_PID" 2>/dev/null || true
  wait "$STACK_PID" 2>/dev/null || true
  local left
  left=$(stack_procs "$STACK_VAR")
  [ -n "$left" ] && sleep 2 && left=$(stack_procs "$STACK_VAR")
  if [ -n "$left" ]; then
    echo "FAILED: processes of the stack survived its shutdown:"
    local p
    for p in $left; do echo "  $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"; done
    kill -KILL $left 2>/dev/null || true
    return 1
  fi
  return 0
}

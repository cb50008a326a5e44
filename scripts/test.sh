#!/usr/bin/env bash
# make test: the C unit tests (ASan + UBSan), then the integration suites against a real
# stack (PostgreSQL, Redis, lighttpd, API, broker, worker) started by scripts/run.sh on
# random free ports with throwaway data. Exits non-zero on any failure.
#   scripts/test.sh [all|unit|integration] [integration test files...]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
what=${1:-all}
shift || true
failed=0

run_unit() {
  local t out rc total_pass=0 total_fail=0
  echo "== C unit tests (AddressSanitizer + UndefinedBehaviorSanitizer)"
  for t in build/asan/tests/test_*; do
    [ -x "$t" ] || continue
    rc=0
    out=$(ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
          timeout 300 "$t" 2>&1) || rc=$?
    local line
    line=$(printf '%s\n' "$out" | grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 1 || true)
    if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
      printf '%s\n' "$out" | tail -n 40
      echo "FAILED: $t (exit $rc)"
      total_fail=$((total_fail + 1))
    else
      echo "$line"
    fi
    local p f
    p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"${line:-x: 0 passed, 0 failed}")
    f=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"${line:-x: 0 passed, 0 failed}")
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
  done
  echo "C unit tests: $total_pass passed, $total_fail failed"
  [ "$total_fail" -eq 0 ]
}

stack_procs() { # var: pids of live processes whose environment has CC_VAR=var
  local p
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] && continue
    grep -qzx -- "CC_VAR=$1" "$p/environ" 2>/dev/null && echo "${p#/proc/}"
  done
  return 0
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

run_integration() {
  echo "== integration tests (real PostgreSQL, Redis, lighttpd, API, broker, worker)"
  if [ -f package-lock.json ] && { [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
  fi
  local var
  var=$(mktemp -d /tmp/codecollab-test.XXXXXX)
  chmod 755 "$var"
  export CC_VAR=$var BUILD=asan CC_BIND=127.0.0.1
  export PORT=$(free_port) BROKER_PORT=$(free_port) PG_PORT=$(free_port) REDIS_PORT=$(free_port)
  export CC_READY_FILE=$var/ready
  export API_PROCESSES=${API_PROCESSES:-4} WORKERS=${WORKERS:-2}
  export LOGIN_RATE_LIMIT=${LOGIN_RATE_LIMIT:-10} LOGIN_ADDRESS_RATE_LIMIT=${LOGIN_ADDRESS_RATE_LIMIT:-40}
  # Sanitizer reports of the servers go to files, checked after the run.
  export ASAN_OPTIONS=detect_leaks=1:log_path=$var/log/asan
  export UBSAN_OPTIONS=print_stacktrace=1:log_path=$var/log/ubsan
  unset DATABASE_URL REDIS_URL JWT_SECRET
  mkdir -p "$var/log"
  ./scripts/run.sh >"$var/log/run.out" 2>&1 &
  local stack=$!
  local n=0
  until [ -e "$CC_READY_FILE" ]; do
    if ! kill -0 "$stack" 2>/dev/null || [ "$n" -ge 1200 ]; then
      echo "the stack did not start:"; cat "$var/log/run.out"
      tail -n 20 "$var"/log/*.log 2>/dev/null || true
      kill -TERM "$stack" 2>/dev/null || true
      wait "$stack" 2>/dev/null || true
      return 1
    fi
    n=$((n + 1))
    sleep 0.1
  done
  set -a
  # shellcheck disable=SC1091
  . "$var/run/env"
  set +a
  export CC_BASE_URL=$BASE_URL CC_API_BIN=$ROOT/build/asan/bin/codecollab-api
  local files=("$@")
  [ ${#files[@]} -gt 0 ] || files=(tests/integration/*.test.mjs)
  local rc=0
  # ASan options of the servers must not leak into node's child processes' expectations
  node --test --test-concurrency=1 "${files[@]}" || rc=$?
  kill -TERM "$stack" 2>/dev/null || true
  wait "$stack" 2>/dev/null || true
  # Nothing of the stack may survive it: every process it started carries CC_VAR=$var.
  local left
  left=$(stack_procs "$var")
  if [ -n "$left" ]; then
    sleep 2
    left=$(stack_procs "$var")
  fi
  if [ -n "$left" ]; then
    echo "FAILED: processes of the test stack survived its shutdown:"
    for p in $left; do echo "  $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"; done
    kill -KILL $left 2>/dev/null || true
    rc=1
  fi
  if compgen -G "$var/log/asan*" >/dev/null || compgen -G "$var/log/ubsan*" >/dev/null; then
    echo "FAILED: sanitizer reports from the servers:"
    cat "$var"/log/asan* "$var"/log/ubsan* 2>/dev/null | head -n 200
    rc=1
  fi
  if [ "$rc" -eq 0 ] && [ -z "${KEEP_TEST_VAR:-}" ]; then
    rm -rf "$var"
  else
    echo "test data and logs kept in $var"
  fi
  return "$rc"
}

case "$what" in
  unit) run_unit || failed=1 ;;
  integration) run_integration "$@" || failed=1 ;;
  all)
    run_unit || failed=1
    run_integration "$@" || failed=1
    ;;
  *) echo "usage: $0 [all|unit|integration] [files...]" >&2; exit 2 ;;
esac
exit "$failed"

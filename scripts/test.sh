#!/usr/bin/env bash
# make test: the C unit tests (ASan + UBSan), then the integration suites against a real
# stack (PostgreSQL, Redis, lighttpd, API, broker, worker) started by scripts/run.sh on
# random free ports with throwaway data. Exits non-zero on any failure.
#   scripts/test.sh [all|unit|integration] [integration test files...]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/stack.sh
. "$ROOT/scripts/stack.sh"
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

run_integration() {
  echo "== integration tests (real PostgreSQL, Redis, lighttpd, API, broker, worker)"
  if [ -f package-lock.json ] && { [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
  fi
  export API_PROCESSES=${API_PROCESSES:-4} WORKERS=${WORKERS:-2}
  export LOGIN_RATE_LIMIT=${LOGIN_RATE_LIMIT:-10} LOGIN_ADDRESS_RATE_LIMIT=${LOGIN_ADDRESS_RATE_LIMIT:-40}
  # the suites register hundreds of users from 127.0.0.1; the limit itself is tested through
  # CGI runs with their own REGISTER_RATE_LIMIT and addresses (sessions.test.mjs)
  export REGISTER_RATE_LIMIT=${REGISTER_RATE_LIMIT:-100000}
  # AI: the whole test stack (API and worker) talks to an OpenAI-compatible double that
  # tests/integration/ai.test.mjs starts on AI_DOUBLE_PORT (lib/openai-double.mjs); never to
  # a real provider, whatever the caller's environment says. While no test runs the double,
  # AI jobs fail fast ("could not reach the AI provider"). The local provider is tested by
  # running the API as CGI with AI_PROVIDER=local: the worker answers with what a job asks.
  AI_DOUBLE_PORT=$(stack_free_port)
  export AI_DOUBLE_PORT AI_PROVIDER=openai AI_BASE_URL=http://127.0.0.1:$AI_DOUBLE_PORT/v1
  export AI_API_KEY=test-key-$$ AI_MODEL=double-model AI_TIMEOUT_MS=2000 AI_RATE_LIMIT=10
  # Sanitizer reports of the servers go to files, checked after the run.
  local var=/tmp/codecollab-asan.$$
  export ASAN_OPTIONS=detect_leaks=1:log_path=$var/asan
  export UBSAN_OPTIONS=print_stacktrace=1:log_path=$var/ubsan
  mkdir -p "$var"
  stack_up asan || return 1
  export CC_BASE_URL=$BASE_URL CC_API_BIN=$ROOT/build/asan/bin/codecollab-api
  local files=("$@")
  [ ${#files[@]} -gt 0 ] || files=(tests/integration/*.test.mjs)
  local rc=0
  # a bound per test: a hang fails that test (and says which) instead of stalling the run
  node --test --test-concurrency=1 --test-timeout=240000 "${files[@]}" || rc=$?
  stack_down || rc=1
  if compgen -G "$var/asan*" >/dev/null || compgen -G "$var/ubsan*" >/dev/null; then
    echo "FAILED: sanitizer reports from the servers:"
    cat "$var"/asan* "$var"/ubsan* 2>/dev/null | head -n 200
    rc=1
  fi
  rm -rf "$var"
  if [ "$rc" -eq 0 ] && [ -z "${KEEP_TEST_VAR:-}" ]; then
    rm -rf "$STACK_VAR"
  else
    echo "test data and logs kept in $STACK_VAR"
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

#!/usr/bin/env bash
# make test and its groups (docs/INTERNALS.md, "Tests"). The tests are grouped by what they
# need, and a group starts only what it needs:
#   unit      tests/unit/      C unit tests and node suites of pure code: no server, no tool
#   programs  tests/programs/  one real program or tool per test, started by the test itself
#                              (redis-server, the broker, the worker, the snapshotter,
#                              bubblewrap and the compilers): no stack
#   stack     tests/stack/     node suites against the whole stack (PostgreSQL, Redis,
#                              lighttpd, API, broker, worker) that scripts/stack.sh starts on
#                              random free ports with throwaway data
#   browser   tests/browser/   the browser client in headless Chromium against that stack
#   fuzz      tests/fuzz/      every libFuzzer target (build/fuzz/, clang) on its seeds and a
#                              fixed number of mutations from a fixed seed: the smoke run of
#                              tests/fuzz/run.sh (no time limit); no server
#   cluster   tests/cluster/   the make cluster layout (scripts/cluster.sh: HAProxy, two web
#                              nodes, brokers, workers, Redis, a PostgreSQL primary and
#                              replica), which each suite starts on free ports through
#                              tests/lib/cluster.mjs
# C tests run under AddressSanitizer + UndefinedBehaviorSanitizer and end with
# "C unit tests: N passed, N failed" (programs: "C program tests: …"; the fuzz targets, one
# test each: "fuzz smoke: …"); node suites end with node's test runner summary. Exits
# non-zero on any failure.
#   scripts/test.sh [all|unit|programs|fuzz|stack|browser|integration|cluster] [node test files...]
# all (the default) runs every group, with one stack for stack and browser; integration is
# stack and browser. Given files, a group runs only those (and no C tests); stack, browser
# and integration run any files given against the stack, in the order of their paths (node's
# runner sorts them), or batch after batch where "--" separates them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/stack.sh
. "$ROOT/scripts/stack.sh"
what=${1:-all}
shift || true
failed=0

# Runs the ASan build of every tests/<group>/test_*.c (a source without its binary fails).
run_c() { # group label
  local group=$1 label=$2 src t out rc line p f total_pass=0 total_fail=0
  echo "== $label (AddressSanitizer + UndefinedBehaviorSanitizer)"
  for src in tests/"$group"/test_*.c; do
    [ -e "$src" ] || continue
    t=build/asan/tests/$group/$(basename "$src" .c)
    rc=0
    if [ -x "$t" ]; then
      out=$(ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
            timeout 300 "$t" 2>&1) || rc=$?
    else
      out="$t is not built: run make build-asan"
      rc=127
    fi
    line=$(printf '%s\n' "$out" | grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 1 || true)
    if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
      printf '%s\n' "$out" | tail -n 40
      echo "FAILED: $t (exit $rc)"
      total_fail=$((total_fail + 1))
    else
      echo "$line"
    fi
    p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"${line:-x: 0 passed, 0 failed}")
    f=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"${line:-x: 0 passed, 0 failed}")
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
  done
  echo "$label: $total_pass passed, $total_fail failed"
  [ "$total_fail" -eq 0 ]
}

node_modules_ready() {
  if [ -f package-lock.json ] && { [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
  fi
}

# node's test runner, one file at a time; a bound per test (and per file: node counts a
# file as a test): a hang fails that test (and says which) instead of stalling the run.
NODE_TEST_TIMEOUT_MS=240000
run_node() { # files...: one file at a time, or NODE_TEST_CONCURRENCY at once
  [ $# -gt 0 ] || return 0
  node --test --test-concurrency="${NODE_TEST_CONCURRENCY:-1}" --test-timeout="$NODE_TEST_TIMEOUT_MS" "$@"
}

# Sanitizer reports of the programs a group starts go to files, checked after the group.
SAN_DIR=
sanitizers_to_files() {
  SAN_DIR=$(mktemp -d /tmp/codecollab-asan.XXXXXX)
  export ASAN_OPTIONS=detect_leaks=1:log_path=$SAN_DIR/asan
  export UBSAN_OPTIONS=print_stacktrace=1:log_path=$SAN_DIR/ubsan
}
# LeakSanitizer's "Unable to get registers from thread N." is no finding: at a program's exit
# one of its threads was ending as the leak check stopped them all, and the check went on,
# taking that thread's stack as reachable (a report of its own would follow in the same file).
# A file that holds nothing else is set aside, said, and not counted.
LSAN_NOTICE='^==[0-9]+==Unable to get registers from thread [0-9]+\.$'
sanitizer_reports() { # returns 1 when a program wrote one
  local rc=0 f
  for f in "$SAN_DIR"/asan*; do
    [ -e "$f" ] || continue
    if ! grep -qvE "$LSAN_NOTICE" "$f"; then
      echo "(a LeakSanitizer notice, not a finding: $(head -n 1 "$f"))"
      rm -f "$f"
    fi
  done
  if compgen -G "$SAN_DIR/asan*" >/dev/null || compgen -G "$SAN_DIR/ubsan*" >/dev/null; then
    echo "FAILED: sanitizer reports from the programs:"
    cat "$SAN_DIR"/asan* "$SAN_DIR"/ubsan* 2>/dev/null | head -n 200
    rc=1
  fi
  rm -rf "$SAN_DIR"
  unset ASAN_OPTIONS UBSAN_OPTIONS
  return "$rc"
}

# "== <what> took N s" from a start time in $SECONDS: which group holds the run's time
took() { # what start
  echo "== $1 took $((SECONDS - $2)) s"
}

suites() { # group: its node suites
  compgen -G "tests/$1/*.test.mjs" || true
}

run_unit() { # [files...]
  local rc=0 files=("$@")
  if [ ${#files[@]} -eq 0 ]; then
    run_c unit "C unit tests" || rc=1
    mapfile -t files < <(suites unit)
  fi
  if [ ${#files[@]} -gt 0 ]; then
    echo "== node unit suites (no servers)"
    node_modules_ready
    run_node "${files[@]}" || rc=1
  fi
  return "$rc"
}

run_programs() { # [files...]
  local rc=0 files=("$@")
  if [ ${#files[@]} -eq 0 ]; then
    run_c programs "C program tests" || rc=1
    mapfile -t files < <(suites programs)
  fi
  echo "== program suites (each test starts its own redis-server, broker, worker or snapshotter)"
  node_modules_ready
  sanitizers_to_files
  # Two files at once: each starts its own servers on ports of its own (tests/lib/ports.mjs),
  # and one file at a time kept the two cores a fifth busy.
  NODE_TEST_CONCURRENCY=${NODE_TEST_CONCURRENCY:-2} run_node "${files[@]}" || rc=1
  sanitizer_reports || rc=1
  return "$rc"
}

# The fuzz targets' smoke run (tests/fuzz/run.sh smoke; make builds build/fuzz/ first).
run_fuzz() {
  [ $# -eq 0 ] || { echo "usage: $0 fuzz takes no files" >&2; return 2; }
  echo "== fuzz smoke (each libFuzzer target: its seeds, then a fixed number of mutations)"
  ./tests/fuzz/run.sh smoke
}

# The stack and browser groups against one stack. groups: "stack", "browser" or both; files,
# when given, replace the groups' own suites.
# What the stack suites expect of the stack they run against (one stack, or the cluster
# layout): exported for the programs the stack starts.
stack_test_env() {
  export API_PROCESSES=${API_PROCESSES:-4} WORKERS=${WORKERS:-2}
  export LOGIN_RATE_LIMIT=${LOGIN_RATE_LIMIT:-10} LOGIN_ADDRESS_RATE_LIMIT=${LOGIN_ADDRESS_RATE_LIMIT:-40}
  # the suites register hundreds of users from 127.0.0.1; the limit itself is tested through
  # CGI runs with their own REGISTER_RATE_LIMIT and addresses (sessions.test.mjs)
  export REGISTER_RATE_LIMIT=${REGISTER_RATE_LIMIT:-100000}
  # a document's operations left unfolded: just above the fold interval (500), so that
  # tests/stack/writepath.test.mjs reaches the bound behind a damaged operation in about 520
  # commits rather than the default's 5,000 (a healthy room never gets near it)
  export DOCUMENT_PENDING_OPS_MAX=${DOCUMENT_PENDING_OPS_MAX:-520}
  # a run's wall-clock bound: twice the default (5 s), for the suites that hold the workers
  # with long runs while they queue others through CGI runs of the ASan build, which took
  # over 5 s together on a loaded machine (tests/stack/fairness.test.mjs,
  # rooms-delete-jobs.test.mjs); the suites that reach the bound wait 5 s longer for it
  export RUN_TIMEOUT_MS=${RUN_TIMEOUT_MS:-10000}
  # AI: the whole test stack (API and worker) talks to an OpenAI-compatible double that
  # tests/stack/ai.test.mjs and tests/browser/client.test.mjs start on AI_DOUBLE_PORT
  # (tests/lib/openai-double.mjs); never to a real provider, whatever the caller's
  # environment says. While no test runs the double, AI jobs fail fast ("could not reach the
  # AI provider"). The local provider is tested by running the API as CGI with
  # AI_PROVIDER=local: the worker answers with what a job asks. AI_TIMEOUT_MS leaves the
  # suites that hold an answer at the double for 1.5-1.8 s a margin of over 2 s on a busy
  # machine (with 2 s, one such job timed out while two test runs shared the machine).
  AI_DOUBLE_PORT=$(stack_free_port)
  export AI_DOUBLE_PORT AI_PROVIDER=openai AI_BASE_URL=http://127.0.0.1:$AI_DOUBLE_PORT/v1
  export AI_API_KEY=test-key-$$ AI_MODEL=double-model AI_TIMEOUT_MS=4000 AI_RATE_LIMIT=10
}

run_with_stack() { # groups [files...]
  local groups=$1 g rc=0
  shift
  node_modules_ready
  stack_test_env
  sanitizers_to_files
  echo "== starting a throwaway stack (PostgreSQL, Redis, lighttpd, API, broker, worker)"
  if ! stack_up asan; then
    sanitizer_reports || true
    return 1
  fi
  export CC_BASE_URL=$BASE_URL CC_API_BIN=$ROOT/build/asan/bin/codecollab-api
  if [ $# -gt 0 ]; then
    echo "== suites against the stack: $*"
    # node's runner takes the files of one call in the order of their paths; a "--" among
    # them ends a batch, run before the files after it (run_apache)
    local batch=() f
    for f in "$@" --; do
      if [ "$f" != -- ]; then
        batch+=("$f")
      elif [ ${#batch[@]} -gt 0 ]; then
        run_node "${batch[@]}" || rc=1
        batch=()
      fi
    done
  else
    for g in $groups; do
      case "$g" in
        stack) echo "== stack suites (the whole stack)" ;;
        browser) echo "== browser suites (headless Chromium against the stack)" ;;
      esac
      local files=() t0=$SECONDS f
      while IFS= read -r f; do
        # stack_skip (set for this one call): suites left out, run in another lane of make test
        [[ " ${stack_skip:-} " == *" $f "* ]] || files+=("$f")
      done < <(suites "$g")
      run_node "${files[@]}" || rc=1
      took "the $g group" "$t0"
    done
  fi
  stack_down || rc=1
  sanitizer_reports || rc=1
  if [ "$rc" -eq 0 ] && [ -z "${KEEP_TEST_VAR:-}" ]; then
    rm -rf "$STACK_VAR"
  else
    echo "test data and logs kept in $STACK_VAR"
  fi
  return "$rc"
}

# The make cluster layout: each suite starts its own (tests/lib/cluster.mjs) with the ASan
# build, on free ports and with throwaway data, and checks that nothing is left after it.
run_cluster() { # [files...]
  local rc=0 files=("$@")
  [ ${#files[@]} -gt 0 ] || mapfile -t files < <(suites cluster)
  echo "== cluster suites (each starts the make cluster layout)"
  node_modules_ready
  sanitizers_to_files
  # a fault suite runs several faults, each under a load of its own, in one layout
  NODE_TEST_TIMEOUT_MS=600000 run_node "${files[@]}" || rc=1
  if [ $# -eq 0 ]; then
    echo "== stack suites against the make cluster layout (tests/cluster/stack-suites.mjs)"
    ( stack_test_env && node tests/cluster/stack-suites.mjs "${CLUSTER_STACK_SUITES[@]}" ) || rc=1
  fi
  sanitizer_reports || rc=1
  return "$rc"
}

# The stack suites that make sense on the cluster layout: those that speak HTTP to the front
# door and read Redis and PostgreSQL like any client (the helpers follow the cluster when
# REDIS_CLUSTER is set, and a test bound to one stack skips itself there, saying why). Left
# out: the suites of one stack's own processes and files (run, supervise, metrics, cgi, tls,
# durability, upgrade-keys), those that stop its Redis, and those bound to lighttpd's own
# answers. The last eight add about two and a half minutes to the group; presence-limit
# checks the one presence budget across the layout's two brokers and two web nodes;
# account-delete (about 10 s) that a deletion ends streams on every broker, and the
# operator's command against the Redis Cluster.
CLUSTER_STACK_SUITES=(tests/stack/smoke.test.mjs tests/stack/collab.test.mjs tests/stack/dedupe.test.mjs
  tests/stack/client-ot.test.mjs tests/stack/history.test.mjs tests/stack/history-authors.test.mjs
  tests/stack/invites.test.mjs tests/stack/interleave.test.mjs tests/stack/runs.test.mjs
  tests/stack/multi-stream.test.mjs tests/stack/exec.test.mjs tests/stack/input.test.mjs
  tests/stack/rooms.test.mjs tests/stack/auth.test.mjs tests/stack/sessions.test.mjs
  tests/stack/walkthrough.test.mjs tests/stack/scripting.test.mjs tests/stack/revoke-streams.test.mjs
  tests/stack/ai.test.mjs tests/stack/ai-join.test.mjs tests/stack/fairness.test.mjs tests/stack/request-id.test.mjs
  tests/stack/db-role.test.mjs tests/stack/presence-limit.test.mjs tests/stack/rooms-delete-jobs.test.mjs
  tests/stack/account-delete.test.mjs)

# The stack suites that start make run themselves (a stack of their own per test, reusing
# only the data services of the stack they are given): make test runs them in its second
# lane, after the cluster group, against a stack of their own (about three and a half
# minutes alone), so that the stack group's lane is not the longer one by that much.
LANE_SUITES=(tests/stack/run.test.mjs tests/stack/run-stop.test.mjs tests/stack/supervise.test.mjs)

# The suites that depend on the web server in front — HTTP, the three stream transports, the
# browser client and its Trusted Types — again, through Apache httpd (WEB=apache:
# deploy/apache/codecollab.conf).
# metrics.test.mjs first, on its own ("--": run_with_stack): its count of open SSE streams
# waits until none is left at the broker, and a stream a client closed at Apache stays open
# there until the broker's next heartbeat to it fails (BROKER_HEARTBEAT_MS, 15 s). After the
# others (node runs tests/browser/ first), that wait took 24 s; first, none is left.
APACHE_SUITES=(tests/stack/metrics.test.mjs --
  tests/stack/http.test.mjs tests/stack/revoke-streams.test.mjs
  tests/stack/multi-stream.test.mjs tests/stack/supervise.test.mjs tests/stack/walkthrough.test.mjs
  tests/stack/scripting.test.mjs tests/browser/client.test.mjs tests/browser/trusted-types.test.mjs)
run_apache() { # [files...]
  [ $# -gt 0 ] || set -- "${APACHE_SUITES[@]}"
  echo "== through Apache httpd (WEB=apache): $*"
  (export WEB=apache && run_with_stack apache "$@")
}

# make test's lanes 2 and 3 (below, "all"); lane 1 runs in the foreground.
start_lane() { # name function: the function in the background, its output to a file
  local log
  log=$(mktemp /tmp/codecollab-lane.XXXXXX)
  echo "== lane $((${#lane_pids[@]} + 2)): $1 (live: tail -f $log)"
  ( "$2" ) >"$log" 2>&1 </dev/null &
  lane_pids+=("$!") lane_logs+=("$log") lane_names+=("$1")
}
# lane 1, in the foreground
lane_stack() {
  local rc=0 t0
  stack_skip="${LANE_SUITES[*]}" run_with_stack stack || rc=1
  t0=$SECONDS; run_apache || rc=1; took "the Apache group" "$t0"
  return "$rc"
}
# shellcheck disable=SC2317 # (called through start_lane)
lane_cluster() {
  local rc=0 t0=$SECONDS
  run_cluster || rc=1; took "the cluster group" "$t0"
  t0=$SECONDS; run_with_stack stack "${LANE_SUITES[@]}" || rc=1; took "make run's own suites" "$t0"
  return "$rc"
}
# shellcheck disable=SC2317 # (called through start_lane)
lane_programs() {
  local rc=0 t0=$SECONDS
  run_fuzz || rc=1; took "the fuzz group" "$t0"
  t0=$SECONDS; run_programs || rc=1; took "the programs group" "$t0"
  run_with_stack browser || rc=1
  return "$rc"
}

case "$what" in
  unit) run_unit "$@" || failed=1 ;;
  programs) run_programs "$@" || failed=1 ;;
  fuzz) run_fuzz "$@" || failed=1 ;;
  stack) run_with_stack stack "$@" || failed=1 ;;
  browser) run_with_stack browser "$@" || failed=1 ;;
  integration) run_with_stack "stack browser" "$@" || failed=1 ;;
  apache) run_apache "$@" || failed=1 ;;
  cluster) run_cluster "$@" || failed=1 ;;
  all)
    [ $# -eq 0 ] || { echo "usage: $0 all takes no files; name a group" >&2; exit 2; }
    t0=$SECONDS
    # the unit group's and lane 1's output also goes to a file, for the digest at the end
    # (scripts/test-digest.sh); lanes 2 and 3 have theirs
    all_log=$(mktemp /tmp/codecollab-all.XXXXXX)
    run_unit > >(tee -a "$all_log") 2>&1 || failed=1
    tee_pids=("$!")
    took "the unit group" "$t0"
    # Three lanes from here, side by side. Each suite of every lane starts its servers on
    # free ports (tests/lib/ports.mjs claims them against every test process), with its own
    # data and sanitizer reports, so the lanes share nothing but the machine:
    #   1. the stack group (its own stack), then the Apache group;
    #   2. the cluster group, then the suites that start make run themselves (LANE_SUITES,
    #      on a stack of their own);
    #   3. the fuzz smoke run, the programs group, then the browser group (its own stack).
    # Why: in a run of 2026-12-05 with the programs group first and then two lanes (sampled
    # from /proc/stat and process accounting), the programs group kept the two cores half
    # idle for six minutes (its suites mostly wait on timeouts and servers), and the last
    # three minutes ran one lane alone at a third of the cores; the two lanes together kept
    # them about 90 % busy. The third lane fills those gaps (docs/INTERNALS.md, "Tests").
    # The output of lanes 2 and 3 waits in files, printed whole after lane 1's; their names
    # are printed here to follow them live.
    lane_pids=() lane_logs=() lane_names=()
    start_lane "the cluster group, then make run's own suites" lane_cluster
    start_lane "the fuzz smoke run, the programs group, then the browser group" lane_programs
    # a Ctrl-C at a terminal reaches every lane (one process group); a TERM to this script
    # alone sends one to the lanes' shells too
    trap 'kill -TERM "${lane_pids[@]}" 2>/dev/null; rm -f "${lane_logs[@]}" "$all_log"; exit 130' INT TERM
    echo "== lane 1: the stack group, then the Apache group"
    lane_stack > >(tee -a "$all_log") 2>&1 || failed=1
    tee_pids+=("$!")
    t0=$SECONDS
    for i in "${!lane_pids[@]}"; do
      lane_rc=0
      wait "${lane_pids[$i]}" || lane_rc=$?
      echo "== lane $((i + 2)), ${lane_names[$i]}: exit status $lane_rc, waited for $((SECONDS - t0)) s after lane 1"
      cat "${lane_logs[$i]}"
      [ "$lane_rc" -eq 0 ] || failed=1
    done
    # every tee has written all it was given (a tee still held open by a process that
    # outlived its lane is not waited for: at most 5 s)
    for p in "${tee_pids[@]}"; do
      for _ in {1..50}; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    done
    if [ "$failed" -ne 0 ]; then
      echo "== what failed, in short (each test's whole output is above)"
      ./scripts/test-digest.sh "$all_log" "${lane_logs[@]}" || true
    fi
    rm -f "${lane_logs[@]}" "$all_log"
    trap - INT TERM
    echo "== make test took $SECONDS s"
    ;;
  *) echo "usage: $0 [all|unit|programs|fuzz|stack|browser|integration|apache|cluster] [node test files...]" >&2; exit 2 ;;
esac
exit "$failed"

#!/usr/bin/env bash
# Runs every built fuzz target (build/fuzz/fuzz_*) on its seeds in tests/fuzz/seeds/<target>/,
# one at a time (this machine has two cores), and fails when one crashes, breaks a law
# (abort), leaks, or hangs. Two ways:
#   tests/fuzz/run.sh          make fuzz: each target for FUZZ_SECONDS (default 20). Inputs the
#                              fuzzer finds go to build/fuzz/corpus/<target>/, kept between
#                              runs, so each run starts where the last one stopped.
#   tests/fuzz/run.sh smoke    make test (scripts/test.sh fuzz): each target runs its seeds
#                              and then a fixed number of mutations (tests/fuzz/smoke-runs)
#                              from a fixed seed, starting from the seeds alone, so a run does
#                              the same every time. Ends with "fuzz smoke: N passed, N failed".
# The seeds in the tree are only read. A crash leaves its input in build/fuzz/crashes/;
# `build/fuzz/<target> <file>` replays it. tests/fuzz/<target>.options, when present, holds
# more libFuzzer flags for that target (e.g. -max_len), for both ways.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
mode=${1:-timed}
case "$mode" in
  timed)
    seconds=${FUZZ_SECONDS:-20}
    case "$seconds" in
      '' | *[!0-9]*) echo "fuzz: FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2; exit 2 ;;
    esac
    label=fuzz
    ;;
  smoke) label="fuzz smoke" ;;
  *) echo "usage: $0 [smoke]" >&2; exit 2 ;;
esac

# smoke: mutations per target, from tests/fuzz/smoke-runs ("target runs" lines; # comments).
# A target not in the table gets SMOKE_RUNS_DEFAULT, and says so.
SMOKE_RUNS_DEFAULT=20000
smoke_runs() { # target
  local n
  n=$(awk -v t="$1" '$1 == t {print $2; exit}' tests/fuzz/smoke-runs)
  case "$n" in
    '') echo "fuzz: $1 is not in tests/fuzz/smoke-runs: $SMOKE_RUNS_DEFAULT runs" >&2; echo "$SMOKE_RUNS_DEFAULT" ;;
    *[!0-9]*) echo "fuzz: tests/fuzz/smoke-runs: '$n' for $1 is not a number of runs" >&2; return 1 ;;
    *) echo "$n" ;;
  esac
}

# What a failed run's log says about the failure: from the sanitizer's or libFuzzer's first
# report line on (the stack, SUMMARY, the input written), else the log's end.
crash_lines() { # log
  local first
  first=$(grep -nE '==[0-9]+== ?ERROR|runtime error:|deadly signal|ALARM: working on the last Unit|out-of-memory|LeakSanitizer' "$1" \
    | head -n 1 | cut -d: -f1 || true)
  if [ -n "$first" ]; then
    tail -n "+$first" "$1" | head -n 80
  else
    tail -n 40 "$1"
  fi
}

ran=0 crashed=0
mkdir -p build/fuzz/crashes
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  bin=build/fuzz/$name
  ran=$((ran + 1))
  if [ ! -x "$bin" ]; then
    echo "FAILED: $bin is not built (make BUILD=fuzz fuzz-bins builds it)"
    crashed=$((crashed + 1))
    continue
  fi
  seeds=tests/fuzz/seeds/$name
  extra=()
  if [ -f "tests/fuzz/$name.options" ]; then
    read -r -a extra < "tests/fuzz/$name.options"
  fi
  log=build/fuzz/$name.log
  if [ "$mode" = smoke ]; then
    # libFuzzer writes what it finds to its first directory: a fresh one, not the seeds, and
    # not the corpus of make fuzz (which grows from run to run)
    corpus=build/fuzz/smoke/$name
    runs=$(smoke_runs "$name") || { crashed=$((crashed + 1)); continue; }
    # -use_cmp=0: libFuzzer's table of the values the code compared feeds mutations, and
    # those values differ from run to run (addresses among them), so with it on the same
    # seed takes another path each time; -reload=0: no rereading of the corpus on a timer.
    # make fuzz keeps both.
    limit=(-seed=1 -runs="$runs" -use_cmp=0 -reload=0)
    what="seeds + $runs runs, -seed=1"
  else
    corpus=build/fuzz/corpus/$name
    limit=(-max_total_time="$seconds")
    what="${seconds} s"
  fi
  [ "$mode" = timed ] || rm -rf "$corpus"
  mkdir -p "$corpus"
  dirs=("$corpus")
  if [ -d "$seeds" ]; then
    dirs+=("$seeds")
  else
    echo "fuzz: $name has no seeds in $seeds/: it starts from nothing"
  fi
  echo "== $name: $what"
  rc=0 start=$SECONDS
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$bin" "${limit[@]}" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="build/fuzz/crashes/$name-" "${extra[@]}" "${dirs[@]}" >"$log" 2>&1 || rc=$?
  executed=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
  if [ "$rc" -ne 0 ]; then
    crashed=$((crashed + 1))
    crash_lines "$log"
    echo "FAILED: $name (exit $rc); the input is in build/fuzz/crashes/, the log in $log"
  elif [ "$mode" = smoke ]; then
    echo "$name: ${executed:-?} inputs in $((SECONDS - start)) s, no crash"
    rm -rf "$corpus"
  else
    echo "$name: ${executed:-?} inputs, $(find "$corpus" -type f | wc -l) in its corpus, no crash"
  fi
done
echo "$label: $((ran - crashed)) passed, $crashed failed"
[ "$crashed" -eq 0 ]

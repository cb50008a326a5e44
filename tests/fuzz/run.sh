#!/usr/bin/env bash
# make fuzz, after the targets are built: runs every build/fuzz/fuzz_* for FUZZ_SECONDS
# (default 20) on its seeds in tests/fuzz/seeds/<target>/ and fails when one crashes, breaks
# a law (abort), leaks, or hangs. Inputs the fuzzer finds go to build/fuzz/corpus/<target>/
# (kept between runs, so each run starts where the last one stopped; the seeds in the tree
# are only read). A crash leaves its input in build/fuzz/crashes/; `build/fuzz/<target>
# <file>` replays it. tests/fuzz/<target>.options, when present, holds more libFuzzer flags
# for that target (e.g. -max_len). One target at a time: this machine has two cores.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
seconds=${FUZZ_SECONDS:-20}
case "$seconds" in
  '' | *[!0-9]*) echo "fuzz: FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2; exit 2 ;;
esac

ran=0 crashed=0
mkdir -p build/fuzz/crashes
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  bin=build/fuzz/$name
  if [ ! -x "$bin" ]; then
    echo "FAILED: $bin is not built (make fuzz builds it)"
    ran=$((ran + 1)) crashed=$((crashed + 1))
    continue
  fi
  corpus=build/fuzz/corpus/$name
  seeds=tests/fuzz/seeds/$name
  mkdir -p "$corpus"
  dirs=("$corpus")
  if [ -d "$seeds" ]; then
    dirs+=("$seeds")
  else
    echo "fuzz: $name has no seeds in $seeds/: it starts from nothing"
  fi
  extra=()
  if [ -f "tests/fuzz/$name.options" ]; then
    read -r -a extra < "tests/fuzz/$name.options"
  fi
  log=build/fuzz/$name.log
  echo "== $name: ${seconds} s"
  rc=0
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$bin" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="build/fuzz/crashes/$name-" "${extra[@]}" "${dirs[@]}" >"$log" 2>&1 || rc=$?
  ran=$((ran + 1))
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
  if [ "$rc" -ne 0 ]; then
    crashed=$((crashed + 1))
    tail -n 60 "$log"
    echo "FAILED: $name (exit $rc); the input is in build/fuzz/crashes/, the log in $log"
  else
    echo "$name: ${runs:-?} inputs, $(find "$corpus" -type f | wc -l) in its corpus, no crash"
  fi
done
echo "fuzz: $((ran - crashed)) passed, $crashed failed"
[ "$crashed" -eq 0 ]

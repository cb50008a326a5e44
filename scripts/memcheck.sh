#!/usr/bin/env bash
# Programs under valgrind's memcheck, for a look by hand at reads of memory no code wrote,
# which AddressSanitizer does not see (docs/SECURITY.md, "Stack memory never reaches a
# client"). Not part of make test: memcheck runs a program 20 to 50 times slower.
#
#   scripts/memcheck.sh DIR
#
# builds build/memcheck/ (make BUILD=memcheck bins: -O1, and no automatic variable
# initialised by the compiler, which the release build zeroes and memcheck would then not
# see), and writes DIR/bin/codecollab-{api,broker,worker,snapshotter}: each runs that
# build's program under memcheck, with its reports in DIR/log/<program>.<pid>.log (an
# empty file: nothing found). Give them to the tests as they name their programs:
#   BROKER_BIN=DIR/bin/codecollab-broker node --test tests/programs/broker-multi.test.mjs
#   (WORKER_BIN, CC_SNAP_BIN likewise), or the whole directory to a stack:
#   CC_BIN=DIR/bin ./scripts/test.sh stack tests/stack/input.test.mjs
#   (the suites that start a front door of their own, tests/lib/door.mjs, read CC_BIN_DIR).
# Then: find DIR/log -type f -size +0 (the reports). Debian 12's valgrind (3.19) does not know
# pidfd_open, which the worker needs: most worker suites fail under it, so its wrapper is
# written only with MEMCHECK_WORKER=1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "memcheck: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
dir=$(mkdir -p "$1" && cd "$1" && pwd)
mkdir -p "$dir/bin" "$dir/log"
make -C "$ROOT" --no-print-directory -j2 BUILD=memcheck bins
for p in api broker worker snapshotter; do
  bin=$ROOT/build/memcheck/bin/codecollab-$p
  if [ "$p" = worker ] && [ "${MEMCHECK_WORKER:-0}" != 1 ]; then
    printf '#!/bin/sh\nexec %q "$@"\n' "$bin" >"$dir/bin/codecollab-$p"
  else
    printf '#!/bin/sh\nexec valgrind -q --track-origins=yes --log-file=%q %q "$@"\n' \
      "$dir/log/$p.%p.log" "$bin" >"$dir/bin/codecollab-$p"
  fi
  chmod +x "$dir/bin/codecollab-$p"
done
echo "memcheck: wrappers in $dir/bin, reports in $dir/log"

#!/usr/bin/env bash
# Keeps the logs of `make run` bounded: every DIR/*.log larger than MAX_BYTES is copied to
# FILE.1 (replacing the older copy) and then emptied in place. The programs keep writing to
# the descriptors they have (all of them append: the shell's >> and the servers' own log
# files), so nothing needs restarting or signalling, and at most 2 × MAX_BYTES stays on
# disk per log. Lines written between the copy and the emptying are lost: a few at most.
# scripts/run.sh runs it every LOG_CHECK_S seconds with LOG_MAX_MB; hosts use logrotate
# instead (deploy/logrotate/codecollab, docs/OPERATIONS.md).
#   scripts/cap-logs.sh DIR MAX_BYTES
set -euo pipefail
dir=$1 max=$2
case "$max" in '' | *[!0-9]*) echo "cap-logs: MAX_BYTES must be a number" >&2; exit 2 ;; esac
for f in "$dir"/*.log; do
  [ -f "$f" ] || continue
  size=$(stat -c %s "$f" 2>/dev/null) || continue
  if [ "$size" -gt "$max" ]; then
    cp -f -- "$f" "$f.1"
    : >"$f"
  fi
done

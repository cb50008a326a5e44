#!/usr/bin/env bash
# Keeps the logs of `make run` bounded: every DIR/*.log larger than MAX_BYTES is copied to
# FILE.1 (replacing the older copy) and then emptied in place. The programs keep writing to
# the descriptors they have (all of them append: the shell's >> and the servers' own log
# files), so nothing needs restarting or signalling, and at most 2 × MAX_BYTES stays on
# disk per log. Lines written between the copy and the emptying are lost: a few at most.
# When the copy fails (the disk is full, most likely), the partial FILE.1 is removed and the
# log is emptied all the same, with a line on standard error saying so: the old lines are
# lost, but the disk gets its space back rather than being filled by the cap itself. One
# log's failure does not stop the others from being capped; the exit status is then 1.
# scripts/run.sh runs it every LOG_CHECK_S seconds with LOG_MAX_MB; hosts use logrotate
# instead (deploy/logrotate/codecollab, docs/OPERATIONS.md).
#   scripts/cap-logs.sh DIR MAX_BYTES
set -uo pipefail
dir=$1 max=$2
case "$max" in '' | *[!0-9]*) echo "cap-logs: MAX_BYTES must be a number" >&2; exit 2 ;; esac
rc=0
for f in "$dir"/*.log; do
  [ -f "$f" ] || continue
  size=$(stat -c %s "$f" 2>/dev/null) || continue
  [ "$size" -gt "$max" ] || continue
  if ! cp -f -- "$f" "$f.1"; then
    rm -f -- "$f.1"
    echo "cap-logs: $f could not be copied to $f.1 (disk full?): emptied without a copy" >&2
    rc=1
  fi
  if ! : >"$f"; then
    echo "cap-logs: $f could not be emptied" >&2
    rc=1
  fi
done
exit "$rc"

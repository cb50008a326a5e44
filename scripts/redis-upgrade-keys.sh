#!/usr/bin/env bash
# Renames the Redis keys written by versions before the key layout of lib/rkeys.def, so an
# upgrade keeps live documents, their operations and event history, member caches and
# presence: cc:room:ID:SUFFIX becomes cc:room:{ID}:SUFFIX (the room as a Redis Cluster hash
# tag), and the per-room AI marks cc:ai:asked|pending:ROOM:KEY become
# cc:room:{ROOM}:ai:asked|pending:KEY. Keys already in the new layout are left alone, and a
# new key that exists already wins (RENAMENX), so running it twice, or while the programs
# run, is harmless. The job queue (cc:jobs, cc:job:*, cc:fair:*) moves under the hash tag
# {jobs} in one step (scripts/redis-upgrade-jobs.lua), merged with whatever the current
# programs queued meanwhile: queued and running jobs are kept and run. scripts/run.sh runs it on its own Redis at every start; for a Redis of
# your own, run it once when upgrading:
#   REDIS_URL=redis://host:6379/0 DATABASE_URL=postgresql://… scripts/redis-upgrade-keys.sh
#   (REDIS_URL may be unix:///path/redis.sock). With DATABASE_URL it also fills in the
#   rooms' visibility keys that are missing (below).
set -euo pipefail
url=${REDIS_URL:-redis://127.0.0.1:6379}
case $url in
  unix://*) cli=(redis-cli -s "${url#unix://}") ;;
  *) cli=(redis-cli -u "$url" --no-auth-warning) ;;
esac
renamed=0
while IFS= read -r key; do
  [ -n "$key" ] || continue
  new=
  case "$key" in
    cc:room:\{*) ;;
    cc:room:*:*)
      rest=${key#cc:room:}
      new="cc:room:{${rest%%:*}}:${rest#*:}" ;;
    cc:ai:asked:*:* | cc:ai:pending:*:*)
      rest=${key#cc:ai:}
      kind=${rest%%:*} rest=${rest#*:}
      new="cc:room:{${rest%%:*}}:ai:$kind:${rest#*:}" ;;
  esac
  [ -n "$new" ] || continue
  if [ "$("${cli[@]}" RENAMENX "$key" "$new")" = 1 ]; then
    renamed=$((renamed + 1))
  fi
done < <("${cli[@]}" --scan --pattern 'cc:room:*'; "${cli[@]}" --scan --pattern 'cc:ai:asked:*'; "${cli[@]}" --scan --pattern 'cc:ai:pending:*')
jobs=$("${cli[@]}" EVAL "$(cat "$(dirname "$0")/redis-upgrade-jobs.lua")" 0)
case $jobs in
  ''|*[!0-9]*) echo "redis: the job queue could not be moved: $jobs" >&2; exit 1 ;;
esac
renamed=$((renamed + jobs))
if [ "$renamed" -gt 0 ]; then
  echo "redis: $renamed keys renamed to the current layout"
fi
# Rooms whose visibility key is missing (kept by a version before the key existed, or lost):
# the broker judges bearer-token streams by that key alone (lib/access.h), so fill it from
# PostgreSQL when DATABASE_URL is given. SET … NX: a key the API wrote since is newer.
if [ -n "${DATABASE_URL:-}" ]; then
  # one redis-cli for all rooms (ids are [A-Za-z0-9_-], visibility public|private)
  filled=$(psql "$DATABASE_URL" -X -A -t -v ON_ERROR_STOP=1 \
             -c "SELECT 'SET cc:room:{' || id || '}:visibility ' || visibility || ' NX' FROM rooms" |
           "${cli[@]}" | grep -c '^OK$' || true)
  if [ "${filled:-0}" -gt 0 ]; then
    echo "redis: the visibility of $filled rooms filled in"
  fi
fi

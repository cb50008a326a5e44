#!/usr/bin/env bash
# Renames the Redis keys written by versions before the key layout of lib/rkeys.def, so an
# upgrade keeps live documents, their operations and event history, member caches and
# presence: cc:room:ID:SUFFIX becomes cc:room:{ID}:SUFFIX (the room as a Redis Cluster hash
# tag), and the per-room AI marks cc:ai:asked|pending:ROOM:KEY become
# cc:room:{ROOM}:ai:asked|pending:KEY. Keys already in the new layout are left alone, and a
# new key that exists already wins (RENAMENX), so running it twice, or while the programs
# run, is harmless. scripts/run.sh runs it on its own Redis at every start; for a Redis of
# your own, run it once when upgrading:
#   REDIS_URL=redis://host:6379/0 scripts/redis-upgrade-keys.sh   (or unix:///path/redis.sock)
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
if [ "$renamed" -gt 0 ]; then
  echo "redis: $renamed keys renamed to the current layout"
fi

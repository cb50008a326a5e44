#!/usr/bin/env bash
# Renames the Redis keys written by versions before the key layout of lib/rkeys.def, so an
# upgrade keeps live documents, their operations and event history, member caches and
# presence: cc:room:ID:SUFFIX becomes cc:room:{ID}:SUFFIX (the room as a Redis Cluster hash
# tag), and the per-room AI marks cc:ai:asked|pending:ROOM:KEY become
# cc:room:{ROOM}:ai:asked|pending:KEY. Keys already in the new layout are left alone, and a
# new key that exists already wins (RENAMENX), so running it twice, or while the programs
# run, is harmless. The job queue (cc:jobs, cc:job:*, cc:fair:*) moves under the hash tag
# {jobs} in one step (scripts/redis-upgrade-jobs.lua), merged with whatever the current
# programs queued meanwhile: queued and running jobs are kept and run. scripts/run.sh runs
# it on its own Redis at every start (once the layout mark below is set, such a run only
# reads the mark); for a Redis of your own, run it once when upgrading:
#   REDIS_URL=redis://host:6379/0 DATABASE_URL=postgresql://… scripts/redis-upgrade-keys.sh
#   (REDIS_URL may be unix:///path/redis.sock). With DATABASE_URL it also writes the access
#   state Redis caches from PostgreSQL (scripts/redis-resync-access.sh, below).
# The layout mark: once every step succeeded, with DATABASE_URL given (so the access state
# was written too), it writes the layout's version (RKEYS_LAYOUT) into the key RK(LAYOUT, …)
# of lib/rkeys.def, cc:layout, without an expiry. A run that finds that version there skips
# the scan, the renames and the job queue's move, and says so: after one full run there is
# nothing left to convert, and the scan takes seconds to minutes on a Redis of millions of
# keys. The access state is still written at every start (a few SELECTs, one call per room
# and per user whose token generation was raised): the broker judges a bearer-token stream
# by a room's visibility key and member cache alone, so what a Redis put back from a backup
# older than the database (or writes lost in a crash) holds is set right here. A full run deletes the mark before its first step, so one
# that fails midway leaves none and the next run does all of it again. UPGRADE_KEYS_FORCE=1
# runs it in full whatever the mark says: for a data set an older version wrote to after
# the mark was set (an old binary run against it), which the mark cannot tell.
# Every error ends it with exit status 1 and a line on standard error: redis-cli runs with -e
# (an error reply, such as -LOADING from a Redis still reading its data, is a failure, not
# text to go on with), and each call has a bound in time (UPGRADE_KEYS_CMD_S, 10 s, for one
# command; UPGRADE_KEYS_SCAN_S, 300 s, for one scan or the job queue's move; psql the same),
# so a server that does not answer cannot hold it, nor scripts/run.sh's start, for ever.
set -euo pipefail
url=${REDIS_URL:-redis://127.0.0.1:6379}
cmd_s=${UPGRADE_KEYS_CMD_S:-10} scan_s=${UPGRADE_KEYS_SCAN_S:-300}
case $url in
  unix://*) cli=(redis-cli -e -s "${url#unix://}") ;;
  *) cli=(redis-cli -e -u "$url" --no-auth-warning) ;;
esac
fail() { echo "redis: $*" >&2; exit 1; }
# --foreground: a Ctrl-C at the terminal still reaches the client
within() { local s=$1; shift; timeout --foreground -k 2 "$s" "$@"; }
# shellcheck source=scripts/rkeys.sh
. "$(dirname "$0")/rkeys.sh"
mark=$(rkey LAYOUT) || fail "$rkeys_def cannot be read"
layout=$(rkeys_layout)
case $mark in *[\<\>]*) mark= ;; esac # the mark is one fixed key, no placeholder
if [ -z "$mark" ] || [ -z "$layout" ]; then
  fail "$rkeys_def names no layout mark (RK(LAYOUT, …) and #define RKEYS_LAYOUT)"
fi
case ${UPGRADE_KEYS_FORCE:-0} in
  0 | 1) ;;
  *) fail "UPGRADE_KEYS_FORCE must be 0 or 1, not ${UPGRADE_KEYS_FORCE}" ;;
esac
keys=$(mktemp) errs=$(mktemp)
trap 'rm -f "$keys" "$errs"' EXIT
current=0
if [ "${UPGRADE_KEYS_FORCE:-0}" != 1 ]; then
  # a missing key reads as an empty line; a key of another type is an error reply
  have=$(within "$cmd_s" "${cli[@]}" GET "$mark" 2>"$errs") ||
    fail "reading the layout mark $mark failed: $(cat "$errs") (UPGRADE_KEYS_FORCE=1 runs the upgrade without reading it)"
  if [ "$have" = "$layout" ]; then
    echo "redis: the key layout is current ($mark is $layout): no upgrade (UPGRADE_KEYS_FORCE=1 runs it anyway)"
    current=1
  fi
fi
# The conversion to the current layout: every step of it, the mark deleted first (a run
# that stops before its end leaves no mark).
convert() {
  within "$cmd_s" "${cli[@]}" DEL "$mark" >"$errs" 2>&1 || fail "deleting the layout mark $mark failed: $(cat "$errs")"
  # The keys of the older layout (cc:room:ID:… without the hash tag's brace, cc:ai:asked:…,
  # cc:ai:pending:…), found by a SCAN inside Redis: each call walks 20 × 1000 keys and returns
  # the cursor, then only the keys to rename. (redis-cli --scan asks for 10 keys a round trip:
  # tens of seconds for a few million keys, at every start of scripts/run.sh.) Each call holds
  # the server for a few milliseconds.
  scan_lua='local cursor, out = ARGV[1], {}
  for _ = 1, 20 do
    local r = redis.call("SCAN", cursor, "COUNT", 1000)
    cursor = r[1]
    for _, k in ipairs(r[2]) do
      if (k:sub(1, 8) == "cc:room:" and k:sub(9, 9) ~= "{") or k:sub(1, 12) == "cc:ai:asked:"
          or k:sub(1, 14) == "cc:ai:pending:" then
        out[#out + 1] = k
      end
    end
    if cursor == "0" then break end
  end
  table.insert(out, 1, cursor)
  return out'
  cursor=0
  while true; do
    within "$cmd_s" "${cli[@]}" EVAL "$scan_lua" 0 "$cursor" >"$errs" 2>&1 ||
      fail "scanning for keys of the older layout failed: $(cat "$errs")"
    { read -r cursor && cat >>"$keys"; } <"$errs" || cursor=""
    case "$cursor" in
      0) break ;;
      '' | *[!0-9]*) fail "scanning for keys of the older layout failed: $(cat "$errs")" ;;
    esac
  done
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
    # 1 renamed, 0 the new key exists already (it wins); "no such key": it has gone since the
    # scan (expired, or renamed by a run at the same time); any other error reply: a failure
    # (redis-cli -e writes it to standard error)
    if ! r=$(within "$cmd_s" "${cli[@]}" RENAMENX "$key" "$new" 2>"$errs"); then
      [ "$(cat "$errs")" = "ERR no such key" ] && continue
      fail "renaming $key failed: $(cat "$errs")"
    fi
    if [ "$r" = 1 ]; then
      renamed=$((renamed + 1))
    fi
  done <"$keys"
  jobs=$(within "$scan_s" "${cli[@]}" EVAL "$(cat "$(dirname "$0")/redis-upgrade-jobs.lua")" 0) ||
    fail "the job queue could not be moved: $jobs"
  case $jobs in
    ''|*[!0-9]*) fail "the job queue could not be moved: $jobs" ;;
  esac
  renamed=$((renamed + jobs))
  if [ "$renamed" -gt 0 ]; then
    echo "redis: $renamed keys renamed to the current layout"
  fi
}
[ "$current" = 1 ] || convert
# The access state Redis caches (the rooms' visibility and member caches, the users' token
# generations) written from PostgreSQL when DATABASE_URL is given, at every run, the marked
# ones too (scripts/redis-resync-access.sh): the broker judges a bearer-token stream by the
# visibility key and the member cache alone, and the API trusts the member cache, so a Redis
# put back from a backup older than the database (or one that lost writes in a crash) must
# not keep a room public, a member removed or a role lowered since. This also fills in keys
# that are missing (kept by a version before the key existed, or lost).
if [ -n "${DATABASE_URL:-}" ]; then
  REDIS_URL=$url REDIS_CLUSTER='' RESYNC_ACCESS_S=$scan_s "$(dirname "$0")/redis-resync-access.sh" || fail "writing the access state from PostgreSQL failed"
  # every step succeeded: the next run may skip the scan and the move (SET without an
  # expiry, kept like any other data)
  [ "$current" = 1 ] && exit 0
  r=$(within "$cmd_s" "${cli[@]}" SET "$mark" "$layout" 2>&1) || fail "writing the layout mark $mark failed: $r"
  [ "$r" = OK ] || fail "writing the layout mark $mark failed: $r"
  echo "redis: the key layout is current: $mark set to $layout"
elif [ "$current" = 0 ]; then
  echo "redis: without DATABASE_URL the access state was not written from PostgreSQL, so $mark is not set"
fi

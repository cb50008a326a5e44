#!/usr/bin/env bash
# Writes the access state Redis caches from PostgreSQL, which owns it, so that a Redis put
# back from a backup older than the database (or one that lost its last writes in a crash,
# or a replica behind its master that took over) grants nothing that was taken away since:
#   - every room's visibility key is overwritten (a room made private after the backup
#     would otherwise still admit strangers' streams, which the broker judges by that key);
#   - every room's member cache becomes exactly its room_members rows (a removed member,
#     or an editor since made viewer, would otherwise still read, stream or edit);
#   - every user's token generation is raised to users.token_gen (tokens of before a
#     password change would otherwise pass again).
# What it cannot put back, because PostgreSQL keeps no record of it, is in docs/OPERATIONS.md
# ("Redis put back from an older backup").
# scripts/run.sh runs it at every start (through scripts/redis-upgrade-keys.sh), before the
# programs; scripts/cluster.sh the same on its Redis Cluster. On a running stack (a Redis
# restored under it) run it by hand with the programs' environment:
#   DATABASE_URL=postgresql://… REDIS_URL=redis://host:6379 scripts/redis-resync-access.sh
#   DATABASE_URL=postgresql://… REDIS_CLUSTER=host:port[,…] scripts/redis-resync-access.sh
# (REDIS_PASSWORD as the programs take it). While the API runs it may change a room between
# this script's read and its write: so the script reads PostgreSQL again after its writes
# and corrects what changed meanwhile, each entry only while it still holds what the script
# wrote (the API's own writes come after its commits, so they are newer and stay), and reads
# again after each correction until a read finds nothing left to correct (at most 10 reads).
# Users whose rights went down, and rooms it turned from public back to private, are
# announced on the access channel (cc:access: {"user":<id>}, {"room":"<id>"}), so running
# brokers look at their open streams again (a stranger's stream of such a room ends).
# Every error ends it with exit status 1 and a line on standard error. RESYNC_ACCESS_S
# (300 s) bounds each psql and redis-cli call.
set -euo pipefail
fail() { echo "redis: $*" >&2; exit 1; }
[ -n "${DATABASE_URL:-}" ] || fail "DATABASE_URL is not set: the access state is read from PostgreSQL"
bound_s=${RESYNC_ACCESS_S:-300}
within() { local s=$1; shift; timeout --foreground -k 2 "$s" "$@"; }
if [ -n "${REDIS_CLUSTER:-}" ]; then
  # any seed: redis-cli follows MOVED and ASK from it (-c), each call's keys are one slot's
  seed=${REDIS_CLUSTER%%,*}
  cli=(redis-cli -c -h "${seed%:*}" -p "${seed##*:}")
else
  url=${REDIS_URL:-redis://127.0.0.1:6379}
  case $url in
    unix://*) cli=(redis-cli -s "${url#unix://}") ;;
    *) cli=(redis-cli -u "$url" --no-auth-warning) ;;
  esac
fi
# a password in REDIS_URL wins, as for the programs
if [ -n "${REDIS_PASSWORD:-}" ]; then export REDISCLI_AUTH=$REDIS_PASSWORD; fi
here=$(dirname "$0")
# shellcheck source=scripts/rkeys.sh
. "$here/rkeys.sh"
members=$(rkey ROOM_MEMBERS) vis=$(rkey ROOM_VISIBILITY) gen=$(rkey USER_TOKGEN)
channel=$(rkey ACCESS_CHANNEL)
if [ -z "$members" ] || [ -z "$vis" ] || [ -z "$gen" ] || [ -z "$channel" ]; then
  fail "$rkeys_def does not name ROOM_MEMBERS, ROOM_VISIBILITY, USER_TOKGEN and ACCESS_CHANNEL"
fi
# The script, whole-line comments left out, loaded once into every server (on a cluster into
# every node: each call runs where its keys live), then called by its SHA-1: 10,000 rooms
# are 10,000 short lines, not 10,000 copies of the script.
lua=$(grep -v -E '^[[:space:]]*--' "$here/redis-resync-access.lua")
sha=$(printf '%s' "$lua" | sha1sum | cut -d' ' -f1)
if [ -n "${REDIS_CLUSTER:-}" ]; then
  loaded=$(within 30 redis-cli --cluster call "$seed" SCRIPT LOAD "$lua" 2>&1) || fail "loading the resync script failed: $loaded"
  grep -q ": $sha\$" <<<"$loaded" || fail "loading the resync script failed: $loaded"
  ! grep -q -i -E ': (ERR|NOAUTH|WRONGPASS)' <<<"$loaded" || fail "loading the resync script failed: $loaded"
else
  loaded=$(within 30 "${cli[@]}" SCRIPT LOAD "$lua" 2>&1) || fail "loading the resync script failed: $loaded"
  [ "$loaded" = "$sha" ] || fail "loading the resync script failed: $loaded"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One consistent read: "V room visibility" and "M room user role" lines, sorted.
read_pg() {
  PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5} within "$bound_s" psql "$DATABASE_URL" -X -A -t -q -v ON_ERROR_STOP=1 \
    -c "SELECT 'V ' || id || ' ' || visibility FROM rooms
        UNION ALL SELECT 'M ' || room_id || ' ' || user_id || ' ' || role FROM room_members" >"$1" ||
    fail "reading the rooms' access from PostgreSQL failed"
}
# Sends the redis-cli lines in $1 and leaves their replies in $tmp/replies, one a line; any
# reply that does not match the extended regular expression $2, or a count of replies other
# than the count of lines, fails the script with "$3 failed".
call() {
  within "$bound_s" "${cli[@]}" <"$1" >"$tmp/out" 2>&1 || fail "$3 failed: $(head -c 500 "$tmp/out")"
  # (redis-cli -c may say where it was redirected)
  grep -v -E '^-> Redirected' "$tmp/out" >"$tmp/replies" || true
  local bad
  bad=$(grep -v -m 1 -E "$2" "$tmp/replies" || true)
  [ -z "$bad" ] || fail "$3 failed: $bad"
  [ "$(wc -l <"$tmp/replies")" = "$(wc -l <"$1")" ] || fail "$3 failed: $(wc -l <"$1") calls, $(wc -l <"$tmp/replies") replies"
}
# Sends the redis-cli lines in $1; every reply must be "ok …" or "changed …": the ids after
# it are added to $tmp/users. $2, when given, names the room of each line of $1 (one a line,
# in the same order): the rooms whose reply says "closed" (made private) are added to
# $tmp/closed. Echoes how many calls changed something.
send() {
  local n
  n=$(wc -l <"$1")
  [ "$n" -gt 0 ] || { echo 0; return; }
  call "$1" '^(ok|changed)( closed)?( [0-9]+)*$' "writing the access state to Redis"
  { tr ' ' '\n' <"$tmp/replies" | grep -E '^[0-9]+$' || true; } >>"$tmp/users"
  if [ -n "${2:-}" ]; then
    [ "$(wc -l <"$2")" = "$n" ] || fail "writing the access state to Redis: $n calls, $(wc -l <"$2") rooms"
    paste -d ' ' "$2" "$tmp/replies" | awk '$3 == "closed" { print $1 }' >>"$tmp/closed"
  fi
  grep -c '^changed' "$tmp/replies" || true
}
: >"$tmp/users"
: >"$tmp/closed"

# 1. Every room's visibility and member cache, as PostgreSQL has them.
read_pg "$tmp/first"
awk -v mk="$members" -v vk="$vis" -v sha="$sha" -v names="$tmp/put.rooms" '
  function key(p, room) { sub(/<room>/, room, p); return p }
  $1 == "V" { vis[$2] = $3; order[++n] = $2 }
  $1 == "M" { m[$2] = m[$2] " " $3 " " $4 }
  END { printf "" >names
    for (i = 1; i <= n; i++) { r = order[i]
    printf "EVALSHA %s 2 %s %s put %s%s\n", sha, key(mk, r), key(vk, r), vis[r], m[r]
    print r >names } }
' "$tmp/first" >"$tmp/put"
rooms=$(send "$tmp/put" "$tmp/put.rooms")

# 2. Read again, after those writes, and correct what the API changed meanwhile, each key
# and entry only while it still holds what the script wrote (a value the API wrote since is
# newer). Every entry the script writes is checked against a read made after the write, and
# corrected again when that read differs: an entry the API set back to what the script had
# written (made public and private again, say) looks untouched, and the correction from the
# read before would otherwise leave Redis granting what PostgreSQL took back. When step 1
# wrote nothing (every start of a stack whose Redis is whole), no entry holds a value of the
# script's, so there is nothing to check and no second read. "asked" lists
# what the last pass wrote or meant to write: "V room vis", "M room user role" ("-": none),
# and "R room" for a room written whole (any other member of it: none).
[ "$rooms" -eq 0 ] || awk '$1 == "V" { print "R", $2 } { print }' "$tmp/first" >"$tmp/asked"
fixed=0 pass=1
while [ "$rooms" -gt 0 ]; do
  read_pg "$tmp/now"
  awk -v mk="$members" -v vk="$vis" -v sha="$sha" -v next_asked="$tmp/asked.next" -v names="$tmp/fix.rooms" '
    function key(p, room) { sub(/<room>/, room, p); return p }
    FILENAME == ARGV[1] {
      if ($1 == "R") whole[$2] = 1
      else if ($1 == "V") { av[$2] = $3; rooms[$2] = 1 }
      else if ($1 == "M") { am[$2, $3] = $4; rooms[$2] = 1 }
      next
    }
    $1 == "V" { nv[$2] = $3 }
    $1 == "M" { nm[$2, $3] = $4; if (($2 in whole) && !(($2, $3) in am)) am[$2, $3] = "-" }
    END {
      printf "" >next_asked
      printf "" >names
      for (k in am) { split(k, p, SUBSEP); r = p[1]; u = p[2]
        b = (k in nm) ? nm[k] : "-"
        if (am[k] != b) { diff[r] = diff[r] " " u " " am[k] " " b; print "M", r, u, b >next_asked } }
      for (r in rooms) {
        a = (r in av) ? av[r] : "-"
        b = (r in av) ? ((r in nv) ? nv[r] : "-") : "-"
        if (a != b) print "V", r, b >next_asked
        if (a != b || (r in diff)) {
          printf "EVALSHA %s 2 %s %s fix %s %s%s\n", sha, key(mk, r), key(vk, r), a, b, diff[r]
          print r >names } } }
  ' "$tmp/asked" "$tmp/now" >"$tmp/fix"
  [ -s "$tmp/fix" ] || break
  pass=$((pass + 1))
  [ "$pass" -le 10 ] || fail "the access of some rooms changed between every two of 10 reads of PostgreSQL; run it again"
  n=$(send "$tmp/fix" "$tmp/fix.rooms")
  fixed=$((fixed + n))
  mv "$tmp/asked.next" "$tmp/asked"
done

# 3. Token generations: only users whose generation was ever raised (a missing key counts as
# 0, the generation every account starts with).
PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5} within "$bound_s" psql "$DATABASE_URL" -X -A -t -q -v ON_ERROR_STOP=1 -F ' ' \
  -c "SELECT id, token_gen FROM users WHERE token_gen > 0" >"$tmp/gens" ||
  fail "reading the users' token generations from PostgreSQL failed"
awk -v gk="$gen" -v sha="$sha" '
  NF == 2 { k = gk; sub(/<uid>/, $1, k); printf "EVALSHA %s 1 %s gen %s %s\n", sha, k, $2, $1 }
' "$tmp/gens" >"$tmp/gen"
users=$(send "$tmp/gen")

# 4. The brokers look again at the streams of every user whose rights went down, and at all
# the streams of every room made private again (strangers' streams opened on the restored
# "public"; no room event tells the brokers of it).
sort -u -n "$tmp/users" | awk -v ch="$channel" 'NF { printf "SPUBLISH %s '"'"'{\"user\":%s}'"'"'\n", ch, $1 }' >"$tmp/pub"
told=$(wc -l <"$tmp/pub")
sort -u "$tmp/closed" | awk -v ch="$channel" 'NF { printf "SPUBLISH %s '"'"'{\"room\":\"%s\"}'"'"'\n", ch, $1 }' >>"$tmp/pub"
closed=$(sort -u "$tmp/closed" | grep -c . || true)
if [ -s "$tmp/pub" ]; then call "$tmp/pub" '^[0-9]+$' "announcing the changes on $channel"; fi
# quiet when Redis held it all already (every start of make run runs this)
if [ "$rooms" -gt 0 ] || [ "$fixed" -gt 0 ] || [ "$users" -gt 0 ]; then
  echo "redis: the access state written from PostgreSQL: $rooms rooms' visibility or members and $users users' token generations differed ($fixed corrections for changes meanwhile; the streams of $told users and of $closed rooms made private looked at again)"
fi

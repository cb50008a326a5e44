--! use emit opslog
--! keys ROOM_DOC ROOM_OPS ROOM_EVENTS ROOM_MEMBERS ROOM_COMMITS ROOM_FOLD_FAILED
-- Commits one operation to a room's document in one round trip (lib/store_doc.c,
-- docs/INTERNALS.md "Operations and snapshots"). The operation comes without its final
-- retain: only here is the document's length known, so this script writes that retain
-- (the length less the op's span) into the log entry and the event where the caller cut
-- them.
-- KEYS doc, ops, events, members, commits, fold-failed mark (all the room's: one slot; the
-- event's channel is named by _emit.lua, in the same slot; the snapshot schedule is another
-- slot, so the API marks the room due once this script answered 1: lib/store_doc.c,
-- mark_due).
-- ARGV 1 expected revision, 2 user id ("": the right to edit was checked already), 3 span
-- (code points the op covers without its final retain), 4 that final retain, 5 length
-- change, 6 inserted bytes, 7 deleted code points, 8 size limit in bytes, 9 exact new size
-- ("": use the bound), 10/11 log entry before/after the retain, 12/13 event data
-- before/after it, 14 separator before it ("," or ""), 15 ops to keep, 16 history length,
-- 17 the request's dedupe member ("<user id>|<revision>|<ops digest>|<client_id>"; "" without
-- a client_id), 18 the most ops left unfolded (DOCUMENT_PENDING_OPS_MAX), 19 the bytes the
-- ops list may hold (OPS_LOG_MAX_BYTES; _opslog.lua), 20 the op's components before its
-- final retain, 21 the most components an entry may have (OT_MAX_COMPONENTS, what every
-- reader of the log takes), 22 the revisions whose commit requests the commits set keeps
-- (DOCUMENT_COMMITS_KEEP, at least ARGV 15).
-- Answers:
--   {1, new revision, event id, ops not yet folded, length before, fold}  committed; fold
--        1: the ops not yet folded alone hold more than ARGV 19 bytes (nothing older was
--        left to drop), so the committer folds them and the next trim can go on
--   {2, rev, length, bytes, {ops after the expected revision}}  others came first:
--        transform over these and try again at rev
--   {-3, role}  not an editor or owner by the member cache (role "" when not cached)
--   {-1} no document   {3, rev} old shape (fold first)   {0, rev} revision in the future
--   {4, rev} older than the kept log
--   {4, rev, done} a repeat of a request committed as revision `done`, whose entry the log
--        no longer keeps: too old to answer with the op, but the edit is in the document
--   {5, rev, length} the op reaches past the end
--   {6, rev, length, bytes} the size bound passes the limit (measure it exactly)
--   {10, rev, components} the entry, with the final retain written here, would have more
--        components than ARGV 21: nothing is stored (a reader could not take it back)
--   {7, rev, entry} this very request was committed already, as revision rev (its answer
--        was lost and the client sent it again): entry is its log entry, the op as applied
--   {8, rev, pending} the ops after crev number ARGV 18 or more: nothing is committed
--        until they are folded (a fold that keeps failing: a damaged stored op)
--   {9, rev, pending, at} as 8, but a fold failed at revision `at` moments ago (the mark
--        "<at>:<SHA-1 of its entry>", set for a few seconds) and that entry is unchanged:
--        refuse without folding again
-- The commits set remembers which revision each request became, for the last ARGV 22
-- revisions only (trimmed by score), so a repeat is found without a scan. It outlives the
-- log on purpose: a repeat whose entry is gone still learns that it was committed.
if ARGV[2] ~= '' then
  local role = redis.call('HGET', KEYS[4], ARGV[2])
  if role ~= 'owner' and role ~= 'editor' then return {-3, role or ''} end
end
local h = redis.call('HMGET', KEYS[1], 'revision', 'length', 'bytes', 'crev')
local rev = tonumber(h[1])
if not rev then return {-1} end
if ARGV[17] ~= '' then
  local done = tonumber(redis.call('ZSCORE', KEYS[5], ARGV[17]))
  if done and done <= rev then
    local first = rev - redis.call('LLEN', KEYS[2]) + 1
    if done >= first then return {7, done, redis.call('LINDEX', KEYS[2], done - first)} end
    -- committed, but its entry was trimmed (by count, ARGV 15, or by bytes, ARGV 19: the
    -- set outlives it): the answer is the one for an op that old, at every attempt, with
    -- the revision it became. Going on would commit it a second time once an attempt
    -- expects a revision the log still holds
    return {4, rev, done}
  end
end
if not h[2] or not h[3] then return {3, rev} end
local unfolded = rev - (tonumber(h[4]) or rev)
if unfolded >= tonumber(ARGV[18]) then
  local mark = redis.call('GET', KEYS[6])
  local at, digest
  if mark then at, digest = string.match(mark, '^(%d+):(%x+)$') end
  at = tonumber(at)
  if at then
    local first = rev - redis.call('LLEN', KEYS[2]) + 1
    local e = at >= first and at <= rev and redis.call('LINDEX', KEYS[2], at - first)
    if e and redis.sha1hex(e) == digest then return {9, rev, unfolded, at} end
  end
  return {8, rev, unfolded}
end
local len, bytes = tonumber(h[2]), tonumber(h[3])
local want = tonumber(ARGV[1])
if want > rev then return {0, rev} end
if want < rev then
  local n = redis.call('LLEN', KEYS[2])
  local first = rev - n + 1
  if want + 1 < first then return {4, rev} end
  return {2, rev, len, bytes, redis.call('LRANGE', KEYS[2], want + 1 - first, -1)}
end
local span = tonumber(ARGV[3])
if span + tonumber(ARGV[4]) > len then return {5, rev, len} end
local comps = tonumber(ARGV[20])
if len > span then comps = comps + 1 end
if comps > tonumber(ARGV[21]) then return {10, rev, comps} end
local nbytes = tonumber(ARGV[9])
if not nbytes then
  nbytes = math.max(bytes - tonumber(ARGV[7]), 0) + tonumber(ARGV[6])
  if nbytes > tonumber(ARGV[8]) then return {6, rev, len, bytes} end
end
local tail = ''
if len > span then tail = ARGV[14] .. string.format('%d', len - span) end
redis.call('HSET', KEYS[1], 'revision', rev + 1, 'length', len + tonumber(ARGV[5]),
  'bytes', nbytes)
local entry = ARGV[10] .. tail .. ARGV[11]
local n, ob = redis.call('LLEN', KEYS[2]), ops_bytes(KEYS[1], KEYS[2], rev)
redis.call('RPUSH', KEYS[2], entry)
local pending = unfolded + 1
local budget = tonumber(ARGV[19])
n, ob = ops_trim(KEYS[1], KEYS[2], rev + 1, n + 1, ob + #entry, pending, tonumber(ARGV[15]),
  budget)
-- only ops not yet folded are left and they pass the budget: a fold lets the next trim go
-- on (not while a fold failed moments ago: a damaged op, DOC_FOLD_FAILED_MS)
local fold = 0
if ob > budget and n > 1 and redis.call('EXISTS', KEYS[6]) == 0 then fold = 1 end
if ARGV[17] ~= '' then redis.call('ZADD', KEYS[5], rev + 1, ARGV[17]) end
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', rev + 1 - tonumber(ARGV[22]))
local id = emit(KEYS[3], 'operation', ARGV[12] .. tail .. ARGV[13], ARGV[16])
return {1, rev + 1, id, pending, len, fold}

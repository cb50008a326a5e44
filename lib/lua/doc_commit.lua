--! use emit
-- Commits one operation to a room's document in one round trip (lib/store_doc.c,
-- docs/INTERNALS.md "Operations and snapshots"). The operation comes without its final
-- retain: only here is the document's length known, so this script writes that retain
-- (the length less the op's span) into the log entry and the event where the caller cut
-- them.
-- KEYS doc, ops, events, channel, snapshot-due, members.
-- ARGV 1 expected revision, 2 user id ("": the right to edit was checked already), 3 span
-- (code points the op covers without its final retain), 4 that final retain, 5 length
-- change, 6 inserted bytes, 7 deleted code points, 8 size limit in bytes, 9 exact new size
-- ("": use the bound), 10/11 log entry before/after the retain, 12/13 event data
-- before/after it, 14 separator before it ("," or ""), 15 ops to keep, 16 due time ms,
-- 17 room id, 18 history length.
-- Answers:
--   {1, new revision, event id, ops not yet folded, length before}  committed
--   {2, rev, length, bytes, {ops after the expected revision}}  others came first:
--        transform over these and try again at rev
--   {-3, role}  not an editor or owner by the member cache (role "" when not cached)
--   {-1} no document   {3, rev} old shape (fold first)   {0, rev} revision in the future
--   {4, rev} older than the kept log   {5, rev, length} the op reaches past the end
--   {6, rev, length, bytes} the size bound passes the limit (measure it exactly)
if ARGV[2] ~= '' then
  local role = redis.call('HGET', KEYS[6], ARGV[2])
  if role ~= 'owner' and role ~= 'editor' then return {-3, role or ''} end
end
local h = redis.call('HMGET', KEYS[1], 'revision', 'length', 'bytes')
local rev = tonumber(h[1])
if not rev then return {-1} end
if not h[2] or not h[3] then return {3, rev} end
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
local nbytes = tonumber(ARGV[9])
if not nbytes then
  nbytes = math.max(bytes - tonumber(ARGV[7]), 0) + tonumber(ARGV[6])
  if nbytes > tonumber(ARGV[8]) then return {6, rev, len, bytes} end
end
local tail = ''
if len > span then tail = ARGV[14] .. string.format('%d', len - span) end
redis.call('HSET', KEYS[1], 'revision', rev + 1, 'length', len + tonumber(ARGV[5]),
  'bytes', nbytes)
redis.call('RPUSH', KEYS[2], ARGV[10] .. tail .. ARGV[11])
local pending = rev + 1 - (tonumber(redis.call('HGET', KEYS[1], 'crev')) or rev)
redis.call('LTRIM', KEYS[2], -math.max(tonumber(ARGV[15]), pending), -1)
local id = emit(KEYS[3], KEYS[4], 'operation', ARGV[12] .. tail .. ARGV[13], ARGV[18])
redis.call('ZADD', KEYS[5], 'NX', ARGV[16], ARGV[17])
return {1, rev + 1, id, pending, len}

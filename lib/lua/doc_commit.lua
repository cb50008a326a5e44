--! use emit
-- Commits one operation to a room's document (lib/store_doc.c, docs/INTERNALS.md "Operations
-- and snapshots"). KEYS doc, ops, events, channel, snapshot-due, commits; ARGV expected
-- revision, new length, new bytes bound, op JSON, ops to keep, event data JSON, due time
-- ms, room id, history length, dedupe member ("<user id>|<client_id>", "" without a
-- client_id).
-- {0, rev} someone committed first; {1, new revision, event id, ops not yet folded}. The
-- list keeps at least the ops not folded into `content`. The `operation` event goes out
-- through the one envelope (_emit.lua) in the same step. The commits set remembers which
-- revision each client_id became, for the last `ops to keep` revisions only (it is
-- trimmed by score), so a repeated commit is answered from doc_read without a scan.
local rev = tonumber(redis.call('HGET', KEYS[1], 'revision'))
if rev ~= tonumber(ARGV[1]) then return {0, rev or -1} end
redis.call('HSET', KEYS[1], 'revision', rev + 1, 'length', ARGV[2], 'bytes', ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[4])
local pending = rev + 1 - (tonumber(redis.call('HGET', KEYS[1], 'crev')) or rev)
redis.call('LTRIM', KEYS[2], -math.max(tonumber(ARGV[5]), pending), -1)
if ARGV[10] ~= '' then
  redis.call('ZADD', KEYS[6], rev + 1, ARGV[10])
end
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', rev + 1 - tonumber(ARGV[5]))
local id = emit(KEYS[3], KEYS[4], 'operation', ARGV[6], ARGV[9])
redis.call('ZADD', KEYS[5], 'NX', ARGV[7], ARGV[8])
return {1, rev + 1, id, pending}

--! use opslog
--! keys ROOM_DOC ROOM_OPS
-- KEYS doc, ops; ARGV crev read, folded revision, content, length, bytes, old shape (1/0),
-- ops to keep (DOC_OPS_KEEP), the bytes the ops list may hold (OPS_LOG_MAX_BYTES).
-- Stores the folded text iff nobody folded meanwhile (compare-and-set on crev; for the
-- old shape: on the revision, which no commit moves before the fold). The exact byte size
-- replaces the bound only while no commit came after the fold's revision. 1 stored.
-- Then the ops list is trimmed as a commit trims it (_opslog.lua), now that what was
-- folded may go, so a committer's fold for the byte bound (doc_commit.lua's answer) brings
-- the list back within it at once; also when another fold came first (it stored a crev at
-- least as far on: the trim goes by the crev stored now).
local h = redis.call('HMGET', KEYS[1], 'revision', 'crev')
local rev = tonumber(h[1])
if not rev then return 0 end
local crev = tonumber(h[2])
local stored = 0
if ARGV[6] == '1' then
  if not crev and rev == tonumber(ARGV[2]) then stored = 1 end
elseif crev == tonumber(ARGV[1]) then stored = 1 end
if stored == 1 then
  redis.call('HSET', KEYS[1], 'content', ARGV[3], 'crev', ARGV[2])
  if rev == tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[1], 'length', ARGV[4], 'bytes', ARGV[5]) end
  crev = tonumber(ARGV[2])
end
-- an old-shape hash another process did not fold yet has no crev: nothing is trimmed
if crev then
  ops_trim(KEYS[1], KEYS[2], rev, redis.call('LLEN', KEYS[2]), ops_bytes(KEYS[1], KEYS[2], rev),
    rev - crev, tonumber(ARGV[7]), tonumber(ARGV[8]))
end
return stored

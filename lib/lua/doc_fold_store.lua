--! keys ROOM_DOC
-- KEYS doc; ARGV crev read, folded revision, content, length, bytes, old shape (1/0).
-- Stores the folded text iff nobody folded meanwhile (compare-and-set on crev; for the
-- old shape: on the revision, which no commit moves before the fold). The exact byte size
-- replaces the bound only while no commit came after the fold's revision. 1 stored.
local h = redis.call('HMGET', KEYS[1], 'revision', 'crev')
local rev = tonumber(h[1])
if not rev then return 0 end
local crev = tonumber(h[2])
if ARGV[6] == '1' then
if crev or rev ~= tonumber(ARGV[2]) then return 0 end
elseif crev ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'content', ARGV[3], 'crev', ARGV[2])
if rev == tonumber(ARGV[2]) then
redis.call('HSET', KEYS[1], 'length', ARGV[4], 'bytes', ARGV[5]) end
return 1

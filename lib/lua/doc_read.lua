-- KEYS doc, ops, members; ARGV client revision, user id ("" = the caller's right to edit
-- was checked already). The member cache is asked first, in the same round trip, so a
-- commit by an editor needs no separate role lookup.
-- {-3, role} not an editor or owner by the cache (role "" when not cached); {-1} no
-- document; {3, rev} old shape (fold first); {0, rev} revision in the future; {1, rev}
-- older than the kept log; {2, rev, length, bytes, {ops since the client's revision}}
if ARGV[2] ~= '' then
local role = redis.call('HGET', KEYS[3], ARGV[2])
if role ~= 'owner' and role ~= 'editor' then return {-3, role or ''} end end
local h = redis.call('HMGET', KEYS[1], 'revision', 'length', 'bytes')
local rev = tonumber(h[1])
if not rev then return {-1} end
if not h[2] or not h[3] then return {3, rev} end
local want = tonumber(ARGV[1])
if want > rev then return {0, rev} end
local len = redis.call('LLEN', KEYS[2])
local first = rev - len + 1
if want + 1 < first then return {1, rev} end
local ops = {}
if want < rev then ops = redis.call('LRANGE', KEYS[2], want + 1 - first, -1) end
return {2, rev, tonumber(h[2]), tonumber(h[3]), ops}

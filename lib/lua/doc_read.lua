-- KEYS doc, ops, members, commits; ARGV client revision, user id ("" = the caller's right
-- to edit was checked already), the commit's dedupe member ("<user id>|<client_id>"; ""
-- without a client_id). The member cache is asked first, in the same round trip, so a
-- commit by an editor needs no separate role lookup.
-- {-3, role} not an editor or owner by the cache (role "" when not cached); {-1} no
-- document; {4, rev, entry} this user's client_id was committed already as revision rev
-- (entry: its op log entry, the op as applied); {3, rev} old shape (fold first); {0, rev}
-- revision in the future; {1, rev} older than the kept log; {2, rev, length, bytes, {ops
-- since the client's revision}}
if ARGV[2] ~= '' then
local role = redis.call('HGET', KEYS[3], ARGV[2])
if role ~= 'owner' and role ~= 'editor' then return {-3, role or ''} end end
local h = redis.call('HMGET', KEYS[1], 'revision', 'length', 'bytes')
local rev = tonumber(h[1])
if not rev then return {-1} end
local len = redis.call('LLEN', KEYS[2])
local first = rev - len + 1
-- a repeated commit (its answer was lost): the first one's revision and op, if the log
-- still holds it (the commits set is trimmed with the log, so it does)
if ARGV[3] ~= '' then
  local done = tonumber(redis.call('ZSCORE', KEYS[4], ARGV[3]))
  if done and done >= first and done <= rev then
    return {4, done, redis.call('LINDEX', KEYS[2], done - first)}
  end
end
if not h[2] or not h[3] then return {3, rev} end
local want = tonumber(ARGV[1])
if want > rev then return {0, rev} end
if want + 1 < first then return {1, rev} end
local ops = {}
if want < rev then ops = redis.call('LRANGE', KEYS[2], want + 1 - first, -1) end
return {2, rev, tonumber(h[2]), tonumber(h[3]), ops}

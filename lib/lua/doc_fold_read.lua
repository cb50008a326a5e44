--! keys ROOM_DOC ROOM_OPS
-- KEYS doc, ops. {-1} no document; {-2, rev, crev} the ops after crev are gone (damage);
-- {kind, rev, crev, content, {ops crev+1..rev}}, kind 0 = old shape (content at rev).
local h = redis.call('HMGET', KEYS[1], 'revision', 'crev', 'content')
local rev = tonumber(h[1])
if not rev then return {-1} end
local crev = tonumber(h[2])
if not crev then return {0, rev, rev, h[3] or '', {}} end
local ops = {}
if crev < rev then
local first = rev - redis.call('LLEN', KEYS[2]) + 1
if crev + 1 < first then return {-2, rev, crev} end
ops = redis.call('LRANGE', KEYS[2], crev + 1 - first, -1) end
return {1, rev, crev, h[3] or '', ops}

--! keys ROOM_DOC ROOM_OPS ROOM_COMMITS
-- KEYS doc, ops, commits; ARGV revision, content, length, bytes. Creates the document
-- unless it exists. The ops list is emptied with it, and the commits set (the request ids
-- of committed operations, by revision) keeps only what names a revision up to this one:
-- a later revision is of the document that was lost, and a resent request must not be
-- answered from it with whatever operation holds that revision now. Up to this revision the
-- set tells of the history the document is restored from (a room the snapshotter took out
-- while idle left it there with an expiry, doc_unload.lua, which goes now). `obytes` (the
-- list's bytes, _opslog.lua) starts at 0 with the empty list, at this revision (`orev`).
-- `loaded` is when (ms, Redis's clock): doc_unload.lua leaves a document loaded this
-- recently where it is, so a room someone just opened is not taken out again at once.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'revision', ARGV[1], 'content', ARGV[2], 'crev', ARGV[1],
'length', ARGV[3], 'bytes', ARGV[4], 'obytes', 0, 'orev', ARGV[1],
'loaded', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('DEL', KEYS[2])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '(' .. ARGV[1], '+inf')
redis.call('PERSIST', KEYS[3])
return 1

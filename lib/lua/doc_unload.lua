--! keys ROOM_DOC ROOM_OPS ROOM_COMMITS ROOM_CONNS ROOM_FOLD_FAILED ROOM_EVENTS
-- KEYS doc, ops, commits, conns, foldfail, events; ARGV revision, now (ms).
-- Takes an idle room's document out of Redis (the snapshotter's walk, store_doc_sweep): the
-- hash, the ops list, the commits set and the fold-failure mark go, and the history of events
-- is cut to its newest entry; the next read or commit restores the document from PostgreSQL
-- (lib/store_doc.c restore). A client that resumes from an event before that entry is told
-- to resync, as when the history's own bounds trimmed it (the newest entry's p still tells a
-- client that stood right before it that it lost nothing), and the next emit counts the
-- history's bytes afresh from it (_emit.lua). Only while the revision is still the one the
-- caller compared with the saved history (a commit since then answers 0, nothing is
-- touched), and only while no stream of the room is open: a member of conns whose expiry is
-- still ahead answers 2. 1 unloaded.
if redis.call('HGET', KEYS[1], 'revision') ~= ARGV[1] then return 0 end
if redis.call('ZCOUNT', KEYS[4], '(' .. ARGV[2], '+inf') > 0 then return 2 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5])
redis.call('XTRIM', KEYS[6], 'MAXLEN', 1)
return 1

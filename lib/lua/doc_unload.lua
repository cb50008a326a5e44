--! keys ROOM_DOC ROOM_OPS ROOM_COMMITS ROOM_CONNS ROOM_FOLD_FAILED ROOM_EVENTS
-- KEYS doc, ops, commits, conns, foldfail, events; ARGV revision, keep (ms: ROOM_UNLOAD_IDLE_S).
-- Takes an idle room's document out of Redis (the snapshotter's walk, store_doc_sweep): the
-- hash, the ops list and the fold-failure mark go, and the history of events is cut to its
-- newest entry; the next read or commit restores the document from PostgreSQL
-- (lib/store_doc.c restore, doc_init.lua). The commits set stays for `keep` more ms (its
-- expiry; the restore takes the expiry off), so that a request sent again meanwhile is still
-- told that it was committed (doc_commit.lua's {4, ...}) instead of being taken for a new
-- edit. A client that resumes from an event before the kept entry is told to resync, as when
-- the history's own bounds trimmed it (the newest entry's p still tells a client that stood
-- right before it that it lost nothing), and the next emit counts the history's bytes afresh
-- from it (_emit.lua). Only while the revision is still the one the caller compared with the
-- saved history (a commit since then answers 0, nothing is touched); only while no stream of
-- the room is open: a member of conns whose expiry is still ahead of Redis's clock (the
-- clock the brokers' expiries are written with, broker_presence.lua) answers 2; and only
-- when the document was not loaded (restored: doc_init.lua's `loaded`) less than `keep` ms
-- ago: a room just opened again answers 3. 1 unloaded.
local h = redis.call('HMGET', KEYS[1], 'revision', 'loaded')
if h[1] ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZCOUNT', KEYS[4], '(' .. now, '+inf') > 0 then return 2 end
if h[2] and now - tonumber(h[2]) < tonumber(ARGV[2]) then return 3 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[5])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('XTRIM', KEYS[6], 'MAXLEN', 1)
return 1

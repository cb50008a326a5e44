--! use emit
--! keys ROOM_DOC ROOM_OPS ROOM_COMMITS ROOM_EVENTS
-- Replaces a room's document after Redis lost writes that its saved history holds
-- (lib/store_doc.c, store_doc_snapshot; docs/INTERNALS.md "When Redis loses its last
-- writes"): the text at a new revision with nothing after it, and a `resync` event that
-- makes every client fetch it again, in one step. Only while the document's revision is
-- still the one the snapshotter checked (compare-and-set): a commit since then is kept, and
-- the snapshotter looks again at its next pass.
-- KEYS doc, ops, commits, events; ARGV expected revision, new revision, content, length
-- (code points), bytes, the resync event's data, history bounds (EVENTS_HISTORY_BOUNDS).
-- The ops list and the commits set go, as in doc_init: the revisions they name are not the
-- new document's. A client still at an older revision is answered 409 revision_too_old.
-- `obytes` (the list's bytes, _opslog.lua) starts again at 0, at the new revision.
-- Answers 1 replaced, 0 the document moved on (or is gone).
local rev = tonumber(redis.call('HGET', KEYS[1], 'revision'))
if rev ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'revision', ARGV[2], 'content', ARGV[3], 'crev', ARGV[2],
  'length', ARGV[4], 'bytes', ARGV[5], 'obytes', 0, 'orev', ARGV[2])
redis.call('DEL', KEYS[2], KEYS[3])
emit(KEYS[4], 'resync', ARGV[6], ARGV[7])
return 1

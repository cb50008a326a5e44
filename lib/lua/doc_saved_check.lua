--! keys ROOM_DOC ROOM_OPS
-- What Redis holds against the room's newest saved revision (lib/store_doc.c,
-- check_saved; docs/INTERNALS.md "When Redis loses its last writes"), read by the
-- snapshotter under its lock on the room's saves.
-- KEYS doc, ops; ARGV the newest saved revision.
-- Answers {-1} no document, or {revision, at, entry}: at = the lower of the document's
-- revision and the saved one, entry = the op log entry of revision `at` (false when the list
-- no longer holds it, or at is 0).
local rev = tonumber(redis.call('HGET', KEYS[1], 'revision'))
if not rev then return {-1} end
local at = math.min(rev, tonumber(ARGV[1]))
local entry = false
if at > 0 then
  local first = rev - redis.call('LLEN', KEYS[2]) + 1
  if at >= first then entry = redis.call('LINDEX', KEYS[2], at - first) end
end
return {rev, at, entry}

--! keys ROOM_EVENTS
-- Catch-up: the oldest entry (for the resync decision) and either the entries after
-- ARGV[1] (a page) or, with ARGV[1] empty, the newest entry (the starting point of a client
-- that wants only new events). One round trip, one consistent view. A page also carries how
-- many entries the history has dropped (trimmed) so far, so a client starting from the very
-- beginning (last_event_id=0) learns that the beginning is gone. An empty page carries the
-- newest entry as well, so that a client whose position lies past everything the history
-- holds (an id this room never gave, or entries lost with a Redis node while nothing newer came) is told to start over.
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if ARGV[1] == '' then
  return {first, redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1), 1}
end
local dropped = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info, added, len = redis.call('XINFO', 'STREAM', KEYS[1]), 0, 0
  for i = 1, #info - 1, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] end
    if info[i] == 'length' then len = info[i + 1] end
  end
  dropped = added - len
end
local page = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
if #page == 0 then
  return {first, page, 0, dropped, redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)}
end
return {first, page, 0, dropped}

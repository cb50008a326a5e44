-- Catch-up: the oldest entry (for the resync decision) and either the entries after
-- ARGV[1] (a page) or, with ARGV[1] empty, the newest entry (the starting point of a client
-- that wants only new events). One round trip, one consistent view. A page also carries the
-- newest id the history has dropped (trimmed; "0-0" when none), so a client starting from
-- the very beginning (last_event_id=0) learns that the beginning is gone.
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if ARGV[1] == '' then
  return {first, redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1), 1}
end
local dropped = '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info - 1, 2 do
    if info[i] == 'max-deleted-entry-id' then dropped = info[i + 1] end
  end
end
return {first, redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2]), 0, dropped}

-- Catch-up: the oldest entry (for the resync decision) and either the entries after
-- ARGV[1] (a page) or, with ARGV[1] empty, the newest entry (the starting point of a client
-- that wants only new events). One round trip, one consistent view.
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if ARGV[1] == '' then
  return {first, redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1), 1}
end
return {first, redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2]), 0}

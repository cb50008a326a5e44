--! keys ROOM_VISIBILITY
-- Writes the visibility only when it differs, and says whether it wrote: 1 written, 0 equal.
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1

--! keys PRESENCE_ROOMS
-- Rooms whose presence members may have expired, by Redis' clock: KEYS[1] the index (room
-- id -> latest expiry), ARGV[1] how many at most. The broker then runs broker_presence.lua
-- (op sweep) in each room's own slot.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[1]))

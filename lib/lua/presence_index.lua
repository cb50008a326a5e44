--! keys PRESENCE_ROOMS
-- The index of rooms with presence members (room id -> their latest expiry), which every
-- broker's sweep reads (presence_due.lua), written after each presence change of a room
-- (broker_presence.lua answers the expiry). KEYS[1] the index; ARGV[1] room id, ARGV[2] the
-- latest expiry (0: the room had no member left). A room is taken out only while its
-- recorded expiry is past: another broker may have added a member (and a later expiry)
-- since that answer; a room left in by mistake costs one sweep that finds nothing, then goes.
local exp = tonumber(ARGV[2]) or 0
if exp > 0 then redis.call('ZADD', KEYS[1], exp, ARGV[1]) return 1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sc = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if sc and sc < now then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0

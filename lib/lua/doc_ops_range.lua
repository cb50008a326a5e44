--! keys ROOM_DOC ROOM_OPS
-- KEYS doc, ops; ARGV first, last revision. {1, {ops first..last}}, or {0} when the list
-- no longer (or not yet) holds them all.
local rev = tonumber(redis.call('HGET', KEYS[1], 'revision'))
if not rev then return {0} end
local a, b = tonumber(ARGV[1]), tonumber(ARGV[2])
local first = rev - redis.call('LLEN', KEYS[2]) + 1
if a < first or b > rev or a > b then return {0} end
return {1, redis.call('LRANGE', KEYS[2], a - first, b - first)}

--! keys ROOM_CONNS
-- Who is in a room now (GET /api/rooms/{id}/presence), as the broker's presence script
-- keeps it (broker_presence.lua): KEYS[1] the room's conns set, members "broker|uid|username"
-- scored by expiry, by Redis' clock. ARGV[1] the most members to look at. Returns uid,
-- username pairs, one per user, in the order of their entries' expiry.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seen, out = {}, {}
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf', 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(live) do
  local _, u, n = string.match(m, '^([^|]*)|([^|]*)|(.*)$')
  if u and not seen[u] then
    seen[u] = true
    out[#out + 1] = u
    out[#out + 1] = n
  end
end
return out

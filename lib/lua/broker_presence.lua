--! use emit
--! keys ROOM_CONNS ROOM_EVENTS ROOM_DELETED
-- Presence across brokers (docs/INTERNALS.md, "Broker"), one room: its keys only, one slot.
-- Redis' clock is the one clock. KEYS: the room's conns set, history (the channel: _emit.lua),
-- deleted mark (DELETE /api/rooms/{id}: the room keeps no presence and takes no join or leave,
-- which would write its history back after it expired; returns 0). ARGV[1] op: open | close |
-- refresh | sweep; ARGV[2] ttl ms; ARGV[3] history bounds (EVENTS_HISTORY_BOUNDS); ARGV[4]
-- broker id; then user id / username pairs. The conns set holds members "broker|uid|username"
-- scored by expiry. join is emitted when a user gets their first live member, leave when the
-- last one goes (closed or expired); expired members are swept first, whatever the op. Returns
-- the latest expiry left in the set (0: none), which the broker then writes to the index of
-- rooms to sweep (presence_index.lua, a key of another slot).
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('DEL', KEYS[1])
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local conns = KEYS[1]
local function tell(kind, uid, name)
  local data = cjson.encode({user = {id = tonumber(uid), username = name}})
  emit(KEYS[2], kind, data, ARGV[3])
end
local function live(uid)
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', conns, now, '+inf')) do
    local _, u = string.match(m, '^([^|]*)|([^|]*)|')
    if u == uid then return true end
  end
  return false
end
local gone = redis.call('ZRANGEBYSCORE', conns, '-inf', '(' .. now)
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', conns, '-inf', '(' .. now)
  local told = {}
  for _, m in ipairs(gone) do
    local _, u, n = string.match(m, '^([^|]*)|([^|]*)|(.*)$')
    if u and not told[u] and not live(u) then
      told[u] = true tell('leave', u, n)
    end
  end
end
local op = ARGV[1]
for i = 5, #ARGV - 1, 2 do
  local uid, name = ARGV[i], ARGV[i + 1]
  local member = ARGV[4] .. '|' .. uid .. '|' .. name
  if op == 'close' then
    redis.call('ZREM', conns, member)
    if not live(uid) then tell('leave', uid, name) end
  elseif op ~= 'sweep' then
    local was = live(uid)
    redis.call('ZADD', conns, now + ttl, member)
    if not was then tell('join', uid, name) end
  end
end
local top = redis.call('ZRANGE', conns, -1, -1, 'WITHSCORES')
if #top == 0 then return 0 end
redis.call('PEXPIRE', conns, ttl * 4)
return tonumber(top[2])

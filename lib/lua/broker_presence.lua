--! use emit
-- Presence across brokers (docs/INTERNALS.md, "Broker"). Redis' clock is the one clock.
-- KEYS[1] the presence index (room id -> latest expiry). ARGV[1] op: open | close |
-- refresh | sweep; ARGV[2] ttl ms; ARGV[3] history bound; ARGV[4] room id (sweep: how
-- many due rooms to look at); ARGV[5] broker id; then user id / username pairs. A room's
-- conns set holds members "broker|uid|username" scored by expiry. join is emitted when a
-- user gets their first live member, leave when the last one goes (closed or expired).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local function tell(room, kind, uid, name)
  local data = cjson.encode({user = {id = tonumber(uid), username = name}})
  emit(K_ROOM_EVENTS(room), K_ROOM_CHANNEL(room), kind, data, ARGV[3])
end
local function live(conns, uid)
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', conns, now, '+inf')) do
    local _, u = string.match(m, '^([^|]*)|([^|]*)|')
    if u == uid then return true end
  end
  return false
end
local function sweep(room)
  local conns = K_ROOM_CONNS(room)
  local gone = redis.call('ZRANGEBYSCORE', conns, '-inf', '(' .. now)
  if #gone == 0 then return end
  redis.call('ZREMRANGEBYSCORE', conns, '-inf', '(' .. now)
  local told = {}
  for _, m in ipairs(gone) do
    local _, u, n = string.match(m, '^([^|]*)|([^|]*)|(.*)$')
    if u and not told[u] and not live(conns, u) then
      told[u] = true tell(room, 'leave', u, n)
    end
  end
end
local function index(room)
  local conns = K_ROOM_CONNS(room)
  local top = redis.call('ZRANGE', conns, -1, -1, 'WITHSCORES')
  if #top == 0 then redis.call('ZREM', KEYS[1], room)
  else redis.call('ZADD', KEYS[1], top[2], room) redis.call('PEXPIRE', conns, ttl * 4) end
end
local op = ARGV[1]
if op == 'sweep' then
  local rooms = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[4]))
  for _, room in ipairs(rooms) do sweep(room) index(room) end
  return #rooms
end
local room = ARGV[4]
local conns = K_ROOM_CONNS(room)
sweep(room)
for i = 6, #ARGV, 2 do
  local uid, name = ARGV[i], ARGV[i + 1]
  local member = ARGV[5] .. '|' .. uid .. '|' .. name
  if op == 'close' then
    redis.call('ZREM', conns, member)
    if not live(conns, uid) then tell(room, 'leave', uid, name) end
  else
    local was = live(conns, uid)
    redis.call('ZADD', conns, now + ttl, member)
    if not was then tell(room, 'join', uid, name) end
  end
end
index(room)
return 0

-- Run by scripts/redis-resync-access.sh, one call per room or per user, each on the keys of
-- one slot. The answer is always one string: "ok" when Redis held that already, "changed"
-- when this call changed it, then "closed" when it turned the room's visibility from
-- "public" to anything else (strangers may stream it no more), then the ids of users whose
-- rights in Redis went down or changed (the script asks the brokers to look at the streams
-- of those rooms and users again); anything else in the output is an error reply.
--
-- "put": KEYS[1] a room's members hash, KEYS[2] its visibility key; ARGV[2] the visibility
--   PostgreSQL holds, ARGV[3..] user id, role pairs (every member). The two keys become
--   exactly that, whatever Redis held (an older backup may hold removed members, old roles,
--   a room that was public then).
-- "fix": the same keys; ARGV[2] the visibility the call before wrote ("put" or a "fix"),
--   ARGV[3] the one PostgreSQL holds now, then user id, role written before, role now, for
--   each member that differs ("-": none; a visibility "-": the room is gone, or not asked
--   about, when both are "-"). A key or entry is changed only while it still holds what was
--   written before: one the API wrote since was written after its own change committed, so
--   it is newer than either read.
-- "gen": KEYS[1] a user's token generation, ARGV[2] users.token_gen: raised, never lowered
--   (as lib/lua/access_gen_store.lua); the user is named when it was raised.
local mode, out, changed, closed = ARGV[1], {}, false, false
if mode == 'put' then
  local want = {}
  for i = 3, #ARGV - 1, 2 do want[ARGV[i]] = ARGV[i + 1] end
  local old = redis.call('HGETALL', KEYS[1])
  local n = 0
  for i = 1, #old, 2 do
    n = n + 1
    if want[old[i]] ~= old[i + 1] then out[#out + 1] = old[i] end
  end
  local was = redis.call('GET', KEYS[2])
  changed = #out > 0 or n ~= (#ARGV - 2) / 2 or was ~= ARGV[2]
  closed = was == 'public' and ARGV[2] ~= 'public'
  -- nothing is written when Redis holds it already (no growth of the AOF at each start)
  if changed then
    redis.call('DEL', KEYS[1])
    -- in slices: unpack of thousands of arguments may pass Lua's stack
    local i = 3
    while i < #ARGV do
      local last = math.min(i + 399, #ARGV)
      redis.call('HSET', KEYS[1], unpack(ARGV, i, last))
      i = last + 1
    end
    redis.call('SET', KEYS[2], ARGV[2])
  end
elseif mode == 'fix' then
  if ARGV[2] ~= ARGV[3] and redis.call('GET', KEYS[2]) == ARGV[2] then
    if ARGV[3] == '-' then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], ARGV[3]) end
    changed = true
    closed = ARGV[2] == 'public'
  end
  for i = 4, #ARGV - 2, 3 do
    local uid, wrote, now = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    if (redis.call('HGET', KEYS[1], uid) or '-') == wrote then
      if now == '-' then redis.call('HDEL', KEYS[1], uid) else redis.call('HSET', KEYS[1], uid, now) end
      out[#out + 1] = uid
      changed = true
    end
  end
elseif mode == 'gen' then
  local cur = tonumber(redis.call('GET', KEYS[1]) or '-1') or -1
  if tonumber(ARGV[2]) > cur then
    redis.call('SET', KEYS[1], ARGV[2])
    out[#out + 1] = ARGV[3]
    changed = true
  end
else
  return redis.error_reply('ERR unknown mode ' .. tostring(mode))
end
if closed then table.insert(out, 1, 'closed') end
table.insert(out, 1, changed and 'changed' or 'ok')
return table.concat(out, ' ')

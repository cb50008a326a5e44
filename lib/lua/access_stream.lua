-- The broker's question about streams of one room, for any number of subjects at once
-- (lib/access.h). KEYS[1] members hash, KEYS[2] visibility key, then two keys per subject:
-- its session key and its user's generation key. ARGV: two per subject, user id and the
-- token's gen. One answer per subject: the role, "public", "", "revoked", or "gone" when
-- Redis knows nothing of the room (neither its visibility nor any member: the API writes
-- both when a room is created and deletes both with it).
local out = {}
local vis = redis.call('GET', KEYS[2])
local known = vis or redis.call('EXISTS', KEYS[1]) == 1
for i = 1, #ARGV / 2 do
  local uid, gen = ARGV[2 * i - 1], tonumber(ARGV[2 * i])
  local cur = tonumber(redis.call('GET', KEYS[2 * i + 2]) or '0') or 0
  if redis.call('EXISTS', KEYS[2 * i + 1]) == 1 or gen == nil or gen < cur then
    out[i] = 'revoked'
  elseif not known then
    out[i] = 'gone'
  else
    local role = redis.call('HGET', KEYS[1], uid)
    if role then out[i] = role
    elseif vis == 'public' then out[i] = 'public'
    else out[i] = '' end
  end
end
return out

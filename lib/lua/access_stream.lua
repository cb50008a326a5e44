--! keys ROOM_MEMBERS ROOM_VISIBILITY
-- The broker's question about streams of one room, the room's half (lib/access.h), for any
-- number of subjects at once. KEYS[1] members hash, KEYS[2] visibility key. ARGV: the
-- subjects' user ids. One answer per subject: the role, "public", "", or "gone" when Redis
-- knows nothing of the room (neither its visibility nor any member: the API writes both when
-- a room is created and deletes both with it). Whether a subject's session was signed out or
-- is too old lives in keys of other slots (the session's, the user's): the broker asks those
-- with commands of their own and answers "revoked" first (sse-broker/rights.h).
local out = {}
local vis = redis.call('GET', KEYS[2])
local known = vis or redis.call('EXISTS', KEYS[1]) == 1
for i = 1, #ARGV do
  if not known then
    out[i] = 'gone'
  else
    local role = redis.call('HGET', KEYS[1], ARGV[i])
    if role then out[i] = role
    elseif vis == 'public' then out[i] = 'public'
    else out[i] = '' end
  end
end
return out

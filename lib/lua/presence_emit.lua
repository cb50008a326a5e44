--! use emit
--! keys ROOM_EVENTS ROOM_PRESENCE_RL ROOM_DELETED
-- A `presence` event within its user's budget in the room (lib/events.h, events_presence_emit;
-- the broker's WebSocket presence, hub_presence). KEYS[1] the room's history, KEYS[2] the
-- user's counter in the room, KEYS[3] the room's deleted mark (all in the same slot). ARGV[1]
-- the event's data (JSON), ARGV[2] the history bounds (EVENTS_HISTORY_BOUNDS), ARGV[3] the
-- budget (events per window), ARGV[4] the window in ms. A fixed window: the first event of a
-- window starts the counter and its expiry; an event past the budget is counted and not
-- emitted. Returns {1, event id}, or {0, ms until the window ends} over the budget, {2, 0}
-- when the room was deleted (nothing written: the deletion has cleared or is clearing the
-- room's keys, and an event written now would leave a history behind that nothing removes).
if redis.call('EXISTS', KEYS[3]) == 1 then return {2, 0} end
local n = redis.call('INCR', KEYS[2])
if n == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
if n > tonumber(ARGV[3]) then
  local left = redis.call('PTTL', KEYS[2])
  -- a counter without an expiry (none is written without one) would refuse for ever
  if left < 0 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) left = tonumber(ARGV[4]) end
  return {0, left}
end
return {1, emit(KEYS[1], 'presence', ARGV[1], ARGV[2])}

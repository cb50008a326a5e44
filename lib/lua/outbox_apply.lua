--! use emit
--! keys ROOM_EVENTS ROOM_OUTBOX ROOM_RUNS ROOM_DELETED
-- The second step of a job's room event (lib/jobstate.c, jobstate_drain): one entry of the
-- jobs' outbox (_outbox.lua) carried out in its room's slot. KEYS: the room's history, outbox
-- mark (the id of the last entry applied here), recent runs and deleted mark. ARGV: 1 the
-- entry's id, 2 event type ("" none), 3 event data, 4 history bounds (EVENTS_HISTORY_BOUNDS),
-- 5 a job id for the recent runs ("" none), 6 runs kept, 7 their lifetime s, 8 the mark's
-- lifetime s. Entries are drained oldest first, so an entry not after the mark was applied
-- already (by this drainer before it crashed, or by another one): it is skipped, and every
-- entry reaches its room exactly once, in order. A deleted room (its deleted mark, written by
-- DELETE /api/rooms/{id}) takes nothing any more: the entry is dropped, so a job of the room
-- that was running or queued when it went writes back neither an event nobody can read nor a
-- key of a room that is gone. Returns 1 applied, 0 applied before, 2 dropped (the room was
-- deleted).
local function after(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not am then return false end
  if not bm then return true end
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
if not after(ARGV[1], '') then return redis.error_reply('ERR outbox entry id ' .. ARGV[1]) end
if redis.call('EXISTS', KEYS[4]) == 1 then return 2 end
local last = redis.call('GET', KEYS[2])
if last and not after(ARGV[1], last) then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[8])
if ARGV[5] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[5])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
  redis.call('EXPIRE', KEYS[3], ARGV[7])
end
if ARGV[2] ~= '' then emit(KEYS[1], ARGV[2], ARGV[3], ARGV[4]) end
return 1

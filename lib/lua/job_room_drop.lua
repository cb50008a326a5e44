--! use outbox jobev fair
--! keys FAIR_ROOM
-- A room was deleted (lib/jobstate.h, jobstate_room_drop): its jobs end. KEYS: the room's
-- line. ARGV: 1 the room, 2 error, 3 now, 4 jobs stream bound, 5 queued jobs told their
-- place per move.
-- Every job waiting in the room's line leaves it (it never runs) and every job of the room
-- in flight (dispatched, or running: its worker sees the status and stops it) frees its
-- slot; each one still queued or running becomes `cancelled` with the error. No event: the
-- room is gone (its `deleted` event ended its streams). The room leaves the scheduler (its
-- place in the ring, its turn, its count in flight), then a dispatch gives the freed slots
-- to other rooms. A job of the room created after this (a request that raced the delete)
-- is stopped by the worker, which finds the room's deleted mark before it runs it.
-- Returns the number of jobs cancelled.
local room = ARGV[1]
local n = 0
local function over(job)
  local st = redis.call('HGET', K_JOB(job), 'status')
  if st ~= 'queued' and st ~= 'running' then return end
  redis.call('HSET', K_JOB(job), 'status', 'cancelled', 'error', ARGV[2], 'finished_at', ARGV[3])
  n = n + 1
end
for _, job in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if redis.call('EXISTS', K_JOB(job)) == 1 then fair_unqueue(job) end
  over(job)
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', K_FAIR_ROOMS(), room)
local inf = redis.call('HGETALL', K_FAIR_INFLIGHT())
for i = 1, #inf, 2 do
  if inf[i + 1] == room then
    over(inf[i])
    fair_release(inf[i])
  end
end
redis.call('HDEL', K_FAIR_RUNNING(), room)
fair_forget(room)
fair_dispatch(ARGV[4], ARGV[5])
return n

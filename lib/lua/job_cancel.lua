--! use outbox jobev fair
--! keys JOB
-- Cancels a job (lib/jobstate.h, jobstate_cancel). KEYS: job hash. ARGV: 1 event type,
-- 2 event data, 3 the job's room (for the event), 4 job id, 5 error, 6 now, 7 jobs stream
-- bound, 8 queued jobs told their place per move.
-- A queued job leaves its room's line (it never runs), a dispatched or running one its slot
-- (the worker notices the status and kills its sandbox). Returns {1, status it left} or
-- {0, current status or ""}.
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {0, ''} end
if st ~= 'queued' and st ~= 'running' then return {0, st} end
local room = redis.call('HGET', KEYS[1], 'room') or ''
local line = K_FAIR_ROOM(room)
local left = st == 'queued' and redis.call('LREM', line, 1, ARGV[4]) == 1
if left then
  fair_unqueue(ARGV[4])
  fair_left_line(room, ARGV[4], false)
end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'error', ARGV[5], 'finished_at', ARGV[6])
outbox(ARGV[3], ARGV[1], job_event(ARGV[2], redis.call('HGET', KEYS[1], 'event_extra')))
if left then
  if redis.call('LLEN', line) == 0 then
    redis.call('ZREM', K_FAIR_ROOMS(), room)
    if not redis.call('HGET', K_FAIR_RUNNING(), room) then fair_forget(room) end
  else
    fair_announce(room, ARGV[8])
  end
end
fair_release(ARGV[4])
fair_dispatch(ARGV[7], ARGV[8])
return {1, st}

--! use outbox jobev fair
--! keys JOB JOBS
-- One status change of a job (lib/jobstate.h, jobstate_change).
-- KEYS: job hash, jobs stream.
-- ARGV: 1 attempt ("" any), 2 statuses it may leave (" a b "), 3 new status, 4 event type
-- ("" none), 5 event data, 6 the job's room ("" none), 7 requeue entry ("" none), 8 group,
-- 9 job id, 10 jobs stream bound, 11 queued jobs told their place per move, 12 event data
-- bound, 13… field/value pairs. The event carries who started the job (job_event,
-- _jobev.lua) and goes into the outbox, in this same step.
-- Returns {1, new status} or {0, current status or ""}.
local cur = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'event_extra')
if not cur[1] then return {0, ''} end
if not string.find(ARGV[2], ' ' .. cur[1] .. ' ', 1, true)
  or (ARGV[1] ~= '' and (cur[2] or '0') ~= ARGV[1]) then return {0, cur[1]} end
local f = {'status', ARGV[3]}
for i = 13, #ARGV do f[#f + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(f))
if ARGV[7] ~= '' then
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  redis.call('XADD', KEYS[2], '*', 'job', ARGV[9])
  redis.call('XACK', KEYS[2], ARGV[8], ARGV[7])
end
if ARGV[4] ~= '' then
  outbox(ARGV[6], ARGV[4], job_event(ARGV[5], cur[3], tonumber(ARGV[12])))
end
-- an outcome frees the job's slot in the fair scheduler: the next job goes in
if ARGV[3] == 'finished' or ARGV[3] == 'failed' then
  fair_release(ARGV[9])
  fair_dispatch(ARGV[10], ARGV[11])
end
return {1, ARGV[3]}

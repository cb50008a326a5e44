--! use outbox jobev fair jobreq
--! keys JOB
-- A new job (lib/jobstate.h, jobstate_create). KEYS: job hash. ARGV: 1 ttl, 2 event type,
-- 3 event data, 4 runs kept per room, 5 jobs stream bound, 6 job id, 7 room, 8 user, 9 room
-- backlog bound, 10 user backlog bound, 11 queue bound, 12 queued jobs told their place per
-- move, 13 the client's request id ("": none), 14 a digest of its request, 15 how long the
-- id is remembered (seconds), 16 the user's run-right mark as the API read it before it read
-- the user's right to run code in the room ('=' then the mark, '=' alone when there was none;
-- '': not checked, an AI job), 17… field/value pairs. A request id the same user gave in the
-- same room within that time names the job it created then: that job is answered (a
-- repeat, nothing new is written but a count of repeats on it; the WAIT after this script
-- covers the first job), or, for a different request, nothing is
-- done (_jobreq.lua; job_repeat.lua asks the same before the API does any work, this is
-- for copies that raced past it). Then the run-right mark: a change that took the user's
-- right to run code away (a removal, a leave, a demotion) writes a new one before it looks
-- for their runs, so a mark that is not what the API read means the right it read may be
-- gone and this run not found by that look: refused, nothing written ({0, 'right', 0}; the
-- API reads the right again). Then admission (nothing is written for a job refused),
-- then the hash, the job in its room's line at its user's next round (_fair.lua), the
-- queued event with its place in line
-- (into the outbox: the drain brings it to the room), and a dispatch (the job goes straight
-- into the jobs stream when a worker is free). An execution also goes to the front of its
-- room's recent runs (GET /api/rooms/{id}/executions), a list of at most ARGV[4] ids that
-- lives as long as a job: the outbox entry of its queued event carries it.
-- Returns {1, position}, {2, first job, its status, language, version} (a repeat), or {0,
-- what is full or wrong ("room", "user", "queue"; "right"; "exists"; "reused" with the first
-- job), backlog}.
local claim = nil
if ARGV[13] ~= '' then
  claim = K_JOB_REQUEST(ARGV[7], ARGV[8], ARGV[13])
  local prior = request_prior(claim, ARGV[14])
  if prior then return prior end
end
if ARGV[16] ~= '' and '=' .. (redis.call('GET', K_RUN_RIGHT(ARGV[7], ARGV[8])) or '') ~= ARGV[16] then
  return {0, 'right', 0}
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 'exists', 0} end
local line = K_FAIR_ROOM(ARGV[7])
local n = redis.call('LLEN', line)
if n >= tonumber(ARGV[9]) then return {0, 'room', n} end
n = tonumber(redis.call('HGET', K_FAIR_USERS(), ARGV[8]) or '0')
if n >= tonumber(ARGV[10]) then return {0, 'user', n} end
n = tonumber(redis.call('GET', K_FAIR_DEPTH()) or '0')
if n >= tonumber(ARGV[11]) then return {0, 'queue', n} end
local f = {'status', 'queued'}
for i = 17, #ARGV do f[#f + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(f))
redis.call('EXPIRE', KEYS[1], ARGV[1])
local ahead = fair_enqueue(ARGV[7], ARGV[6], ARGV[8])
redis.call('INCR', K_FAIR_DEPTH())
redis.call('HINCRBY', K_FAIR_USERS(), ARGV[8], 1)
-- a room joining the ring keeps its last turn: one served long ago (or never: 0) goes
-- before the rooms served since; its line's new length is its last tie-break
local running = tonumber(redis.call('HGET', K_FAIR_RUNNING(), ARGV[7]) or '0')
local turn = tonumber(redis.call('HGET', K_FAIR_TURN(), ARGV[7]) or '0')
redis.call('ZADD', K_FAIR_ROOMS(), running * FS + fair_tail(turn, ahead + 1), ARGV[7])
local pos = ahead + redis.call('ZRANK', K_FAIR_ROOMS(), ARGV[7])
local behind = redis.call('LLEN', line) - ahead - 1
local d = cjson.decode(ARGV[3])
d.position = pos
local run = nil
if ARGV[2] == 'execution' then run = ARGV[6] end
outbox(ARGV[7], ARGV[2], job_event(cjson.encode(d), redis.call('HGET', KEYS[1], 'event_extra')),
  run, ARGV[4], ARGV[1])
if claim then
  redis.call('SET', claim, ARGV[14] .. ':' .. ARGV[6], 'EX', ARGV[15])
end
-- put before others (an earlier round): those of the first few that are now one place
-- further back are told
if behind > 0 and ahead + 1 < tonumber(ARGV[12]) then fair_announce(ARGV[7], ARGV[12], ahead + 1) end
fair_dispatch(ARGV[5], ARGV[12])
return {1, pos}

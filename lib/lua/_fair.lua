-- The fair scheduler (docs/INTERNALS.md, "Fair scheduling"): functions every job script
-- uses, after outbox (_outbox.lua) and job_event (_jobev.lua). A job is first queued in its
-- room's line;
-- fair_dispatch() moves jobs
-- into the jobs stream, where workers read them, while fewer are in flight than the live
-- workers have threads, always from the room with the fewest jobs in flight (ties: the
-- room served longest ago). Keys are named here through K_…(), not passed in KEYS: which
-- rooms a dispatch touches is only known inside the script. All of them carry the hash tag
-- {jobs}, one slot; the rooms' events go through the outbox.
--
-- A room's score: jobs in flight, then its last turn, then the length of its line (capped
-- at LW - 1), as one number: running * FS + turn * LW + waiting. Rooms that never had a
-- turn (turn 0) tie on the first two, and the shorter line goes first: a room with one run
-- is not put behind every other room that has not been served yet. Exact in a double while
-- turn < FS / LW (10^9 dispatches) and running < 9,000.
local FS, LW = 1e12, 1e3
local function fair_tail(turn, waiting)
  return turn * LW + math.min(waiting, LW - 1)
end
-- a room's turn: it was served now (the sequence number is kept while the room has jobs
-- waiting or running, so a room coming back soon is not new)
local function fair_score(room, running, waiting)
  local seq = redis.call('INCR', K_FAIR_SEQ())
  redis.call('HSET', K_FAIR_TURN(), room, seq)
  return running * FS + fair_tail(seq, waiting)
end
-- the job left the line (dispatched or cancelled): the backlog counters
local function fair_unqueue(job)
  redis.call('DECR', K_FAIR_DEPTH())
  local uid = redis.call('HGET', K_JOB(job), 'user')
  if uid and redis.call('HINCRBY', K_FAIR_USERS(), uid, -1) <= 0 then
    redis.call('HDEL', K_FAIR_USERS(), uid)
  end
end
-- places in line of the first few queued jobs of a room, as queued events
local function fair_announce(room, limit)
  local rank = redis.call('ZRANK', K_FAIR_ROOMS(), room) or 0
  local ids = redis.call('LRANGE', K_FAIR_ROOM(room), 0, limit - 1)
  for i, job in ipairs(ids) do
    local h = redis.call('HMGET', K_JOB(job), 'kind', 'event_kind', 'event_extra')
    local d = {job_id = job, status = 'queued', position = i - 1 + rank}
    if h[2] and h[2] ~= '' then d.kind = h[2] end
    outbox(room, h[1] or 'execution', job_event(cjson.encode(d), h[3]))
  end
end
-- the job is over (or cancelled): its slot is free
local function fair_release(job)
  local room = redis.call('HGET', K_FAIR_INFLIGHT(), job)
  if not room then return end
  redis.call('HDEL', K_FAIR_INFLIGHT(), job)
  local n = redis.call('HINCRBY', K_FAIR_RUNNING(), room, -1)
  if n <= 0 then redis.call('HDEL', K_FAIR_RUNNING(), room) n = 0 end
  local sc = redis.call('ZSCORE', K_FAIR_ROOMS(), room)
  if sc then redis.call('ZADD', K_FAIR_ROOMS(), n * FS + math.fmod(tonumber(sc), FS), room)
  elseif n == 0 then redis.call('HDEL', K_FAIR_TURN(), room) end
end
local function fair_dispatch(stream_max, limit)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local cap = 0
  local w = redis.call('HGETALL', K_FAIR_WORKERS())
  for i = 1, #w, 2 do
    local exp, n = string.match(w[i + 1], '^(%d+) (%d+)$')
    if exp and tonumber(exp) > now then cap = cap + tonumber(n)
    else redis.call('HDEL', K_FAIR_WORKERS(), w[i]) end
  end
  local roomcap = tonumber(redis.call('GET', K_FAIR_ROOM_CAP()) or '0') or 0
  -- jobs in flight; a job that ended without telling (its hash expired) frees its slot
  local inf = redis.call('HGETALL', K_FAIR_INFLIGHT())
  local busy = 0
  for i = 1, #inf, 2 do
    local st = redis.call('HGET', K_JOB(inf[i]), 'status')
    if st == 'queued' or st == 'running' then busy = busy + 1 else fair_release(inf[i]) end
  end
  while busy < cap do
    local top = redis.call('ZRANGE', K_FAIR_ROOMS(), 0, 0)
    if #top == 0 then break end
    local room = top[1]
    local running = tonumber(redis.call('HGET', K_FAIR_RUNNING(), room) or '0')
    -- the fewest in flight first: when this room is at the cap, every room is
    if roomcap > 0 and running >= roomcap then break end
    local line = K_FAIR_ROOM(room)
    local job = redis.call('LPOP', line)
    if job then
      local st = redis.call('HGET', K_JOB(job), 'status')
      if st then fair_unqueue(job) end
      if st == 'queued' then
        redis.call('HSET', K_FAIR_INFLIGHT(), job, room)
        running = redis.call('HINCRBY', K_FAIR_RUNNING(), room, 1)
        redis.call('XADD', K_JOBS(), 'MAXLEN', '~', stream_max, '*', 'job', job)
        busy = busy + 1
      end
    end
    local left = redis.call('LLEN', line)
    local score = fair_score(room, running, left)
    if left == 0 then
      redis.call('ZREM', K_FAIR_ROOMS(), room)
      if running == 0 then redis.call('HDEL', K_FAIR_TURN(), room) end
    else
      redis.call('ZADD', K_FAIR_ROOMS(), score, room)
      fair_announce(room, limit)
    end
  end
end

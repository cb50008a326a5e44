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
-- Within a room, users take turns: each queued job has a round (its job hash's `fair_round`),
-- and a room's line is kept in round order, first come first served within a round. A
-- user's job gets the round after that user's last one in the room, and never one before the
-- round the room has reached (the round of the last job it dispatched): so a user who queues
-- twenty runs has one of them in each of twenty rounds, and someone who queues one run
-- after them gets the next round, not the twenty-first place. A job with no round (queued
-- by an older version) counts as round -1.
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
-- a room with nothing waiting and nothing in flight: its turn and its rounds are forgotten
local function fair_forget(room)
  redis.call('HDEL', K_FAIR_TURN(), room)
  redis.call('HDEL', K_FAIR_ROUND(), room)
  redis.call('DEL', K_FAIR_UROUND(room))
end
local function fair_round_of(job)
  if not job then return -1 end
  return tonumber(redis.call('HGET', K_JOB(job), 'fair_round') or '-1') or -1
end
-- A new job of user uid into room's line at its round (see above); its hash must exist.
-- Returns how many jobs wait before it. The line is in round order, so its place is found
-- by halving (LINDEX), not by reading a line that may be long.
local function fair_enqueue(room, job, uid)
  local line = K_FAIR_ROOM(room)
  local round = tonumber(redis.call('HGET', K_FAIR_ROUND(), room) or '0')
  local last = redis.call('HGET', K_FAIR_UROUND(room), uid)
  if last then round = math.max(round, tonumber(last) + 1) end
  redis.call('HSET', K_FAIR_UROUND(room), uid, round)
  redis.call('HINCRBY', K_FAIR_UROUND(room), 'n:' .. uid, 1)
  redis.call('HSET', K_JOB(job), 'fair_round', round)
  local lo, hi = 0, redis.call('LLEN', line)
  local n = hi
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if fair_round_of(redis.call('LINDEX', line, mid)) > round then hi = mid else lo = mid + 1 end
  end
  if lo < n then
    redis.call('LINSERT', line, 'BEFORE', redis.call('LINDEX', line, lo), job)
  else
    redis.call('RPUSH', line, job)
  end
  return lo
end
-- A job of room left its line, dispatched or not (cancelled): its user's rounds. The round of
-- the last one dispatched is kept (`d:<uid>`) and the jobs still waiting are counted
-- (`n:<uid>`), so that a user whose waiting jobs were all cancelled is back at their last
-- turn, and one whose latest was cancelled one round earlier: cancelled runs cost no turns.
local function fair_left_line(room, job, dispatched)
  local h = redis.call('HMGET', K_JOB(job), 'user', 'fair_round')
  local uid, r = h[1], tonumber(h[2] or '')
  if not uid or not r then return end
  local k = K_FAIR_UROUND(room)
  local n = redis.call('HINCRBY', k, 'n:' .. uid, -1)
  if dispatched then redis.call('HSET', k, 'd:' .. uid, r) end
  if n <= 0 then
    redis.call('HDEL', k, 'n:' .. uid)
    local d = redis.call('HGET', k, 'd:' .. uid)
    if d then redis.call('HSET', k, uid, d) else redis.call('HDEL', k, uid) end
  elseif not dispatched and tonumber(redis.call('HGET', k, uid) or '-1') == r then
    redis.call('HSET', k, uid, r - 1)
  end
end
-- the job left the line (dispatched or cancelled): the backlog counters
local function fair_unqueue(job)
  redis.call('DECR', K_FAIR_DEPTH())
  local uid = redis.call('HGET', K_JOB(job), 'user')
  if uid and redis.call('HINCRBY', K_FAIR_USERS(), uid, -1) <= 0 then
    redis.call('HDEL', K_FAIR_USERS(), uid)
  end
end
-- places in line of the first few queued jobs of a room, as queued events (from the
-- 0-based place `from` on, when given)
local function fair_announce(room, limit, from)
  local rank = redis.call('ZRANK', K_FAIR_ROOMS(), room) or 0
  local ids = redis.call('LRANGE', K_FAIR_ROOM(room), from or 0, limit - 1)
  for i, job in ipairs(ids) do
    i = i + (from or 0)
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
  elseif n == 0 then fair_forget(room) end
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
      fair_left_line(room, job, st == 'queued')
      if st == 'queued' then
        -- the room has reached this job's round
        local r = fair_round_of(job)
        if r > tonumber(redis.call('HGET', K_FAIR_ROUND(), room) or '0') then
          redis.call('HSET', K_FAIR_ROUND(), room, r)
        end
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
      if running == 0 then fair_forget(room) end
    else
      redis.call('ZADD', K_FAIR_ROOMS(), score, room)
      fair_announce(room, limit)
    end
  end
end

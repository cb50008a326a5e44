-- Moves the job queue of a Redis written before the queue's keys carried the hash tag {jobs}
-- (cc:jobs, cc:job:*, cc:fair:*) to the current names (lib/rkeys.def), merging with any
-- state the current programs wrote meanwhile, so no queued or running job is lost. Run by
-- scripts/redis-upgrade-keys.sh with EVAL on the one server an older version used (it
-- knew no cluster); all of it in one step, so no program sees half of it. Returns how many
-- old keys it moved or merged. Idempotent: a second run finds no old key.
local moved = 0
local function scan(pattern)
  local out, cursor = {}, '0'
  repeat
    local r = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = r[1]
    for _, k in ipairs(r[2]) do out[#out + 1] = k end
  until cursor == '0'
  return out
end
-- the whole key under its new name when that is free
local function move(old, new)
  if redis.call('RENAMENX', old, new) == 1 then moved = moved + 1 return true end
  return false
end
local function done(old) redis.call('DEL', old) moved = moved + 1 end
local N = 'cc:{jobs}:'
-- job hashes: a job id is never reused, so a hash already under the new name is the newer
for _, k in ipairs(scan('cc:job:*')) do
  if not move(k, N .. 'job:' .. string.sub(k, 8)) then done(k) end
end
-- the rooms' lines: the old jobs go before any queued since
for _, k in ipairs(scan('cc:fair:room:*')) do
  local new = N .. 'fair:room:' .. string.sub(k, 14)
  if not move(k, new) then
    local ids = redis.call('LRANGE', k, 0, -1)
    for i = #ids, 1, -1 do redis.call('LPUSH', new, ids[i]) end
    done(k)
  end
end
-- hashes: counts add up, the rest keeps what the new programs wrote
local function hmerge(name, add)
  local old, new = 'cc:fair:' .. name, N .. 'fair:' .. name
  if redis.call('EXISTS', old) == 0 or move(old, new) then return end
  local f = redis.call('HGETALL', old)
  for i = 1, #f, 2 do
    if add then redis.call('HINCRBY', new, f[i], f[i + 1])
    else redis.call('HSETNX', new, f[i], f[i + 1]) end
  end
  done(old)
end
hmerge('users', true)
hmerge('running', true)
hmerge('inflight', false)
hmerge('turn', false)
hmerge('workers', false)
-- strings: the backlog adds up, the turn counter keeps the larger; the room cap is written
-- again by every worker each second
local function smerge(name, how)
  local old, new = 'cc:fair:' .. name, N .. 'fair:' .. name
  if redis.call('EXISTS', old) == 0 or move(old, new) then return end
  local o = tonumber(redis.call('GET', old)) or 0
  if how == 'add' then redis.call('INCRBY', new, o)
  elseif how == 'max' and o > (tonumber(redis.call('GET', new)) or 0) then redis.call('SET', new, o) end
  done(old)
end
smerge('depth', 'add')
smerge('seq', 'max')
smerge('room_cap', 'drop')
-- the ring of rooms: a room already in the new one keeps its place
if redis.call('EXISTS', 'cc:fair:rooms') == 1 and not move('cc:fair:rooms', N .. 'fair:rooms') then
  local z = redis.call('ZRANGE', 'cc:fair:rooms', 0, -1, 'WITHSCORES')
  for i = 1, #z, 2 do redis.call('ZADD', N .. 'fair:rooms', 'NX', z[i + 1], z[i]) end
  done('cc:fair:rooms')
end
-- the jobs stream, with its consumer group and pending entries when the new name is free
-- (the new workers take over the entries of consumers that are gone); otherwise each job
-- still queued or running gets an entry in the new stream (its old delivery went to a
-- worker of the old version)
if redis.call('EXISTS', 'cc:jobs') == 1 and not move('cc:jobs', N .. 'stream') then
  for _, e in ipairs(redis.call('XRANGE', 'cc:jobs', '-', '+')) do
    local f, job = e[2], nil
    for i = 1, #f - 1, 2 do if f[i] == 'job' then job = f[i + 1] end end
    local st = job and redis.call('HGET', N .. 'job:' .. job, 'status')
    if st == 'queued' or st == 'running' then redis.call('XADD', N .. 'stream', '*', 'job', job) end
  end
  done('cc:jobs')
end
return moved

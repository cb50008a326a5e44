--! use outbox jobev fair
--! keys FAIR_WORKERS
-- A worker's registration (lib/jobstate.h, jobstate_worker). KEYS: the workers hash. ARGV:
-- 1 consumer, 2 threads ("0": it stops), 3 registration lifetime ms, 4 room cap, 5 jobs
-- stream bound, 6 queued jobs told their place per move. Its capacity, renewed while it
-- lives, then a dispatch. Returns 1.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[2] == '0' then redis.call('HDEL', KEYS[1], ARGV[1])
else redis.call('HSET', KEYS[1], ARGV[1],
  string.format('%d %s', now + tonumber(ARGV[3]), ARGV[2])) end
redis.call('SET', K_FAIR_ROOM_CAP(), ARGV[4])
fair_dispatch(ARGV[5], ARGV[6])
return 1

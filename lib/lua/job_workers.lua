--! use emit jobev fair
-- A worker's registration (lib/jobstate.h, jobstate_worker). ARGV: 1 consumer, 2 threads
-- ("0": it stops), 3 registration lifetime ms, 4 room cap, 5 history bound, 6 jobs stream
-- bound, 7 queued jobs told their place per move. Its capacity, renewed while it lives,
-- then a dispatch. Returns 1.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[2] == '0' then redis.call('HDEL', K_FAIR_WORKERS(), ARGV[1])
else redis.call('HSET', K_FAIR_WORKERS(), ARGV[1],
  string.format('%d %s', now + tonumber(ARGV[3]), ARGV[2])) end
redis.call('SET', K_FAIR_ROOM_CAP(), ARGV[4])
fair_dispatch(ARGV[5], ARGV[6], ARGV[7])
return 1

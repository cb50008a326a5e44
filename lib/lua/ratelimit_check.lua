--! keys RL_USER|RL_LOGIN_USER|RL_LOGIN_ADDR|RL_LOGIN_CHECK|RL_REGISTER_ADDR
-- A sliding-window limit (lib/ratelimit.h). KEYS[1] the sorted set; ARGV now_ms,
-- window_ms, limit, member, record (0 or 1). Returns {allowed, retry_ms}. The caller's clock
-- is used, not the server's, so one request reads one clock; members are unique, so two
-- events in one millisecond both count.
local now = tonumber(ARGV[1]) local win = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - win)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[3]) then
  local old = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(old[2]) + win - now}
end
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[4]) redis.call('PEXPIRE', KEYS[1], win)
end
return {1, 0}

--! keys RL_USER|RL_LOGIN_USER|RL_LOGIN_ADDR|RL_LOGIN_CHECK|RL_REGISTER_ADDR
-- Counts one event without checking. KEYS[1] the sorted set; ARGV now_ms, window_ms, member.
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1

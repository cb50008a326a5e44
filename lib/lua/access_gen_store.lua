--! keys USER_TOKGEN
-- KEYS[1] a user's token generation; ARGV[1] the generation read from PostgreSQL.
-- Raises, never lowers: two API processes storing what they read at different moments
-- cannot put an older generation back.
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1') or -1
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 1

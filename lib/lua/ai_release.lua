--! keys ROOM_AI_PENDING|AI_PENDING_UNSCOPED
-- Deletes an AI request's pending mark only while it still names this job (or "-", the
-- API's placeholder), so a later request's mark is never removed by an older job.
-- KEYS[1] the pending mark; ARGV[1] the value it must hold. 1 deleted, 0 not.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0

-- An AI job is over (queue-worker/ai.c). KEYS[1] the shared answer, KEYS[2] the room's
-- "asked" mark, KEYS[3] the pending mark. ARGV[1] the answer to store ("" none), ARGV[2]
-- ttl s, ARGV[3] 1 when the room got an answer (mark it asked), ARGV[4] the job id: the
-- pending mark is deleted only while it still names this job (a later request's mark is
-- never removed by an older job). One step: nobody sees the answer without the mark gone.
if ARGV[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
if ARGV[3] == '1' and KEYS[2] ~= '' then redis.call('SET', KEYS[2], '1', 'EX', ARGV[2]) end
if redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
return 1

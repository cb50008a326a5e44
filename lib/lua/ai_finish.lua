--! keys ROOM_AI_ASKED ROOM_AI_PENDING ROOM_DELETED
-- An AI job of a room is over (queue-worker/ai.c), after the shared answer was stored (a key
-- of another slot, so a command of its own, sent first). KEYS[1] the room's "asked" mark,
-- KEYS[2] its pending mark, KEYS[3] its deleted mark. ARGV[1] ttl s, ARGV[2] 1 when the room
-- got an answer (mark it asked), ARGV[3] the job id: the pending mark is deleted only while
-- it still names this job (a later request's mark is never removed by an older job). The
-- answer is stored before the pending mark goes: an identical request meanwhile joins the
-- job, never misses. A deleted room is not marked: nothing of it is written back.
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
end
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1

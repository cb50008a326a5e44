--! keys JOBS
-- Names taken out of the jobs' consumer group (queue-worker/queue.c, queue_forget and
-- queue_sweep): a stopping worker's own, or those of workers that are gone. Only a name
-- with no entry pending: XGROUP DELCONSUMER drops a name's pending entries, and such an
-- entry must stay for a live worker to take over. The look and the removal are one step
-- here, so an entry a worker that was only stalled reads in between cannot be lost.
-- KEYS[1] the jobs stream; ARGV: 1 the group, 2… names. Returns how many had nothing
-- pending (each is now out of the group, or was not in it).
local n = 0
for i = 2, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[i])
  if #p == 0 then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[i])
    n = n + 1
  end
end
return n

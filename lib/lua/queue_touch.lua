--! keys JOBS
-- A worker's heartbeat (queue-worker/queue.c, queue_touch): resets the idle time of the
-- entries its job threads still hold, but only of those still pending with it. An entry
-- another worker took over while this one stalled stays that worker's: touching it would
-- hand it back to a worker that no longer runs the job, and hide it from the take-over of a
-- dead owner. KEYS[1] the jobs stream; ARGV: 1 the group, 2 this consumer, 3… entry ids.
-- Returns how many were touched.
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n

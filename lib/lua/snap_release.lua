--! keys SNAP_DUE
-- Ends a snapshotter's lease on a room after its save: the room leaves the schedule only
-- while its due time is still the lease the claim set. A commit during the save moved it
-- down (ZADD LT, lib/store_doc.c mark_due), and then the room stays due.
-- KEYS[1] the schedule (cc:snap:due); ARGV[1] the room; ARGV[2] the lease's end the claim
-- returned. 1 removed, 0 left.
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0

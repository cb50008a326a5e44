--! keys SNAP_DUE
-- The snapshotter's claim of a due room: a lease, not a removal (docs/INTERNALS.md,
-- "Operations and snapshots"). A room on the schedule whose due time is at most the bound
-- gets the lease's end as its new due time, so a snapshotter that dies (or loses Redis)
-- before its save ends leaves the room due again when the lease ends.
-- KEYS[1] the schedule (cc:snap:due); ARGV[1] the room; ARGV[2] the bound (ms, or "+inf":
-- a stopping snapshotter's final flush); ARGV[3] the lease's end (ms, the caller's wall
-- clock, as the API's marks are). The lease's end when claimed; -1 the room is not on the
-- schedule or not due yet (someone else claimed it).
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due then return -1 end
if ARGV[2] ~= '+inf' and tonumber(due) > tonumber(ARGV[2]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return tonumber(ARGV[3])

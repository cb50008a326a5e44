-- outbox(room, type, data, run, keep, ttl): a room event a job script wants sent, kept in the
-- jobs' own slot (K_JOBS_OUTBOX, a stream) in the same atomic step as the change it tells
-- of. lib/jobstate.c's drain then emits it in the room's slot (outbox_apply.lua) and deletes
-- it, so no job script touches a key of a room (docs/INTERNALS.md, "Redis Cluster: one slot
-- per script"). run (a job id, or nil) also goes to the front of the room's recent runs,
-- of at most keep ids living ttl s. A job without a room has nobody to tell.
local function outbox(room, etype, data, run, keep, ttl)
  if not room or room == '' then return end
  local f = {'room', room, 'type', etype, 'data', data}
  if run then
    f[#f + 1] = 'run' f[#f + 1] = run
    f[#f + 1] = 'keep' f[#f + 1] = keep
    f[#f + 1] = 'ttl' f[#f + 1] = ttl
  end
  redis.call('XADD', K_JOBS_OUTBOX(), '*', unpack(f))
end

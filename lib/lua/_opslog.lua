-- The bound of a room's ops list (docs/INTERNALS.md, "Operations and snapshots"): at most
-- `keep` entries (DOC_OPS_KEEP) and, as long as older ones are left to drop, at most
-- `budget` bytes (OPS_LOG_MAX_BYTES), yet never fewer than the operations after `crev`
-- (a fold needs them) nor than the newest one. The doc hash's `obytes` holds the list's
-- total bytes, so a trim costs the entries it drops, not a scan of the list; `orev` the
-- revision it was written at, so that a list a script of an older version changed (during
-- an upgrade, API processes of both versions commit) is not taken at an outdated total.

-- ops_bytes(doc, ops, rev): the bytes the list holds, the document being at revision rev.
-- A document written before `obytes` was kept has none, and one an older version committed
-- to since has it at another revision: summed from the list once, in slices (a list of
-- large entries is never copied whole); the caller stores it back through ops_trim.
local function ops_bytes(doc, ops, rev)
  local f = redis.call('HMGET', doc, 'obytes', 'orev')
  local b = tonumber(f[1])
  if b and tonumber(f[2]) == rev then return b end
  b = 0
  local n = redis.call('LLEN', ops)
  for i = 0, n - 1, 16 do
    for _, e in ipairs(redis.call('LRANGE', ops, i, i + 15)) do b = b + #e end
  end
  return b
end

-- ops_trim(doc, ops, rev, n, b, need, keep, budget): the list of the document at revision
-- rev holds n entries of b bytes in all; drops the oldest while more than `keep` are left
-- or more than `budget` bytes, but never below max(need, 1) entries (need: the operations
-- after crev). Stores `obytes` and `orev` and returns the entries and bytes left.
local function ops_trim(doc, ops, rev, n, b, need, keep, budget)
  local floor = math.max(need, 1)
  while n > floor and (n > keep or b > budget) do
    local e = redis.call('LPOP', ops)
    if not e then n = 0 break end
    n = n - 1
    b = b - #e
  end
  -- an empty list holds nothing; a total gone below 0 was wrong (the list edited by hand)
  if n == 0 or b < 0 then b = 0 end
  redis.call('HSET', doc, 'obytes', b, 'orev', rev)
  return n, b
end

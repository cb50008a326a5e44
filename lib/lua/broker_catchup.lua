--! keys ROOM_EVENTS
-- Catch-up: the oldest entry's id (for the resync decision) and either the entries from
-- ARGV[1] on (a page) or, with ARGV[1] empty, the newest entry's id (the starting point of a
-- client that wants only new events). One round trip, one consistent view. ARGV[2] is the
-- most entries a page holds, ARGV[3] the most bytes of entries it holds (at least one entry
-- whatever its size; absent or 0: no byte bound). An event can be about a megabyte, so the
-- history is read a few entries at a time and the reading stops at the budget: this script
-- never makes Redis build (nor the broker receive) more than about one budget per call.
--
-- A page's reply: {first id, entries, 0, dropped, newest id, more, after id, before id}. An id
-- comes as a list of one string, or an empty list when the history is empty (never an
-- entry's data).
-- dropped is how many entries the history has dropped (trimmed) so far, so a client starting
-- from the very beginning (last_event_id=0) learns that the beginning is gone. newest is given
-- only with an empty page, so that a client whose position lies past everything the history
-- holds (an id this room never gave, or entries lost with a Redis node while nothing newer
-- came) is told to start over. more is 1 when the page stopped at a bound with entries left
-- after it, and after is then the id of the first of them: the next page must start there,
-- and if the history's oldest entry has by then moved past it, the entries between were
-- trimmed while the broker delivered this page (the broker cannot tell that from the first id
-- alone: ids leave gaps, so an oldest entry later than the last one delivered may as well be
-- the very next one). before is the id of the entry that came right before the oldest one
-- (its field p, _emit.lua; an empty list when it has none: written when the history was
-- empty, or by a version before p): a client whose last event is that one, or later, lost
-- nothing to the trim, only its own last event is gone.
local function id_of(entries)
  if #entries == 0 then return {} end
  return {entries[1][1]}
end
if ARGV[1] == '' then
  return {id_of(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)),
          id_of(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)), 1}
end
local first, dropped, before = {}, 0, {}
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info, added, len = redis.call('XINFO', 'STREAM', KEYS[1]), 0, 0
  for i = 1, #info - 1, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] end
    if info[i] == 'length' then len = info[i + 1] end
    if info[i] == 'first-entry' and type(info[i + 1]) == 'table' then
      first = {info[i + 1][1]}
      local f = info[i + 1][2]
      for j = 1, #f - 1, 2 do
        if f[j] == 'p' then before = {f[j + 1]} end
      end
    end
  end
  dropped = added - len
end
local limit = tonumber(ARGV[2])
local budget = tonumber(ARGV[3] or '') or 0
local page, bytes, from, more, after = {}, 0, ARGV[1], 0, {}
while true do
  -- a few entries first, then as many as the budget left seems to hold at the average size
  -- so far; one more than the bounds take, so that reaching a bound is seen and the entry
  -- after the page is named (that one entry is the most read beyond the budget)
  local want = math.min(limit - #page + 1, 8)
  if budget > 0 and #page > 0 then
    want = math.min(limit - #page + 1, math.max(1, math.floor((budget - bytes) * #page / bytes) + 1))
  end
  local got = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', want)
  for _, e in ipairs(got) do
    local size = #e[1]
    for _, v in ipairs(e[2]) do size = size + #v end
    if #page == limit or (#page > 0 and budget > 0 and bytes + size > budget) then
      more, after = 1, {e[1]}
      break
    end
    page[#page + 1] = e
    bytes = bytes + size
  end
  if more == 1 or #got < want then break end
  from = '(' .. got[#got][1]
end
local newest = {}
if #page == 0 then newest = id_of(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)) end
return {first, page, 0, dropped, newest, more, after, before}

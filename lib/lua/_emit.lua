-- emit(history, type, data, bounds): the one event envelope. Appends the event to the room's
-- history stream and publishes it on the room's channel as
-- {"type":…,"id":…,"prev":…,"data":…}, the shape history readers rebuild from the entry, so a
-- subscriber and a reader of the history see the same event. type is one of our own
-- identifiers; data is JSON text. Returns the new event id.
-- The channel is not among the script's KEYS: it is named here from the history key's hash
-- tag (the room), so it is always in the room's slot. A declared channel is a key Redis
-- never finds, and a multi-key call with a missing key is refused while the slot migrates
-- (docs/INTERNALS.md, "A slot migrated live"); SPUBLISH inside a script is not.
-- The message also names the entry before this one in the history ("prev", absent when the
-- history was empty): a broker whose stream stands below it has missed a message on the
-- way (pub/sub keeps none: a subscription at a node that was not yet told the slot's new
-- owner, say) and catches its streams up from the history instead of leaving a gap
-- (docs/INTERNALS.md, "A gap on the channel").
-- The entry keeps that id too, in its field p (absent likewise): once the entries before it
-- are trimmed, it tells the catch-up that a client whose last event is p lost nothing.
--
-- bounds is "<entries> <bytes>" (lib/events.h EVENTS_HISTORY_BOUNDS). The history keeps about
-- <entries> entries (XADD MAXLEN ~) and at most <bytes> bytes of entries, an entry's bytes
-- being #type + #data, but always its newest entry, whatever its size. An event can be about a
-- megabyte, so the count alone would let one room hold a gigabyte. The bytes are counted
-- without a scan and without another key, in two more fields of each entry:
--   n  the running total of the bytes appended to the history up to and including the entry,
--      so the history holds newest.n - (oldest.n - size(oldest)) bytes;
--   b  a lower bound of that oldest.n - size(oldest) (the bytes appended before the oldest
--      entry), as known when the entry was written; it only grows as the oldest entries go.
-- The newest entry, which the emit reads anyway (for "prev"), gives both: while newest.n plus
-- the new entry less its b fits, nothing else is read. Otherwise the oldest entries are read
-- a few at a time up to the first one to keep and the rest is trimmed (XTRIM MINID): the work
-- is the entries removed and at most as many kept ones (the pages double from two). That walk
-- also runs, trimming nothing, when the count bound has removed old entries since b was
-- written (b is then below the truth); the new entry's b is exact again.
-- Entries written without n (before this version, or by a program still running one) are
-- counted where they are met: the first emit after them reads back from the newest to the
-- newest entry with n, so its own n counts them too (at most about <bytes> bytes read: past
-- that the older entries are trimmed); a history without any n starts its count at its oldest
-- entry. While the oldest entries have no n, their place in the count is not known, only that
-- it is not below 0: the bytes of the history are then over-estimated by what the count bound
-- dropped of them, and a trim removes those old entries until the estimate fits or it reaches
-- an entry with n (exact from there).
local EMIT_PAGE = 8
local function emit_fields(e)
  local t, d, n, b
  for i = 1, #e[2] - 1, 2 do
    local k = e[2][i]
    if k == 'type' then t = e[2][i + 1] elseif k == 'data' then d = e[2][i + 1]
    elseif k == 'n' then n = tonumber(e[2][i + 1]) elseif k == 'b' then b = tonumber(e[2][i + 1]) end
  end
  return #(t or '') + #(d or ''), n, b
end
-- The running total before the new entry of `size` bytes (last: the newest entry); and, when
-- entries without n were found past the byte bound, the id of the oldest entry to keep ('':
-- none of the entries there are).
local function emit_total(history, last, size, maxbytes)
  if not last then return 0, nil end
  local s, n = emit_fields(last)
  if n then return n, nil end
  local acc, newer, from = 0, nil, last[1]
  while true do
    local page = redis.call('XREVRANGE', history, from, '-', 'COUNT', EMIT_PAGE)
    for _, e in ipairs(page) do
      s, n = emit_fields(e)
      if n then return n + acc, nil end
      if size + acc + s > maxbytes then return acc, newer or '' end
      acc, newer = acc + s, e[1]
    end
    if #page < EMIT_PAGE then return acc, nil end
    from = '(' .. page[#page][1]
  end
end
-- Where the history's entries are cut for the new entry, whose running total is `total`: the
-- id of the oldest entry to keep (nil: the oldest entry itself, '': none, only the new entry
-- stays), and the bytes appended before what is kept (exact when that entry has n, else a
-- lower bound).
-- The oldest entries are read two, then four, … at a time (an entry can be a megabyte, and a
-- trim for a large event mostly removes one or two).
local function emit_cut(history, total, maxbytes)
  local from, oldest, held, want = '-', nil, nil, 2
  while true do
    local page = redis.call('XRANGE', history, from, '+', 'COUNT', want)
    for _, e in ipairs(page) do
      local s, n = emit_fields(e)
      -- held: the bytes from e on, new entry included (without n, at most all since the start
      -- of the count)
      if n then held = total - n + s elseif not held then held = total end
      if held <= maxbytes then
        if oldest then return e[1], total - held end
        return nil, total - held
      end
      oldest = oldest or e[1]
      held = held - s
    end
    if #page < want then return '', total - (held or total) end
    from, want = '(' .. page[#page][1], math.min(want * 2, 32)
  end
end
local function emit(history, etype, data, bounds)
  local room = string.match(history, '^[^{]*{([^}]*)}')
  if not room or room == '' then error('emit: no room in the history key ' .. history) end
  local count, maxbytes = string.match(bounds, '^(%d+) (%d+)$')
  if not count then error('emit: history bounds are not "<entries> <bytes>": ' .. bounds) end
  maxbytes = tonumber(maxbytes)
  local last = redis.call('XREVRANGE', history, '+', '-', 'COUNT', 1)
  local size = #etype + #data
  local before, keep = emit_total(history, last[1], size, maxbytes)
  local total = before + size
  -- lower: the b of the new entry (0 after a cut by emit_total: the count starts again at the
  -- oldest entry kept)
  local lower = 0
  if not keep and last[1] then
    local _, n, b = emit_fields(last[1])
    if n and b and total - b <= maxbytes then
      lower = b
    else
      keep, lower = emit_cut(history, total, maxbytes)
    end
  end
  -- p: the entry before this one, kept in the entry itself (the message's "prev" is gone
  -- once published): when this entry is the oldest one left, a client whose last event is p
  -- or later has lost nothing to the trim (broker_catchup.lua)
  local fields = {'type', etype, 'data', data, 'n', string.format('%.0f', total),
    'b', string.format('%.0f', lower)}
  if last[1] then
    fields[#fields + 1] = 'p'
    fields[#fields + 1] = last[1][1]
  end
  local id = redis.call('XADD', history, 'MAXLEN', '~', count, '*', unpack(fields))
  if keep then redis.call('XTRIM', history, 'MINID', keep == '' and id or keep) end
  local prev = ''
  if last[1] then prev = '"prev":"' .. last[1][1] .. '",' end
  redis.call('SPUBLISH', K_ROOM_CHANNEL(room),
    '{"type":"' .. etype .. '","id":"' .. id .. '",' .. prev .. '"data":' .. data .. '}')
  return id
end

-- emit(history, type, data, bound): the one event envelope. Appends the event to the room's
-- history stream (XADD, MAXLEN ~ bound) and publishes it on the room's channel as
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
local function emit(history, etype, data, bound)
  local room = string.match(history, '^[^{]*{([^}]*)}')
  if not room or room == '' then error('emit: no room in the history key ' .. history) end
  local last = redis.call('XREVRANGE', history, '+', '-', 'COUNT', 1)
  local id = redis.call('XADD', history, 'MAXLEN', '~', bound, '*', 'type', etype, 'data', data)
  local prev = ''
  if last[1] then prev = '"prev":"' .. last[1][1] .. '",' end
  redis.call('SPUBLISH', K_ROOM_CHANNEL(room),
    '{"type":"' .. etype .. '","id":"' .. id .. '",' .. prev .. '"data":' .. data .. '}')
  return id
end

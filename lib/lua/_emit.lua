-- emit(history, type, data, bound): the one event envelope. Appends the event to the room's
-- history stream (XADD, MAXLEN ~ bound) and publishes it on the room's channel as
-- {"type":…,"id":…,"data":…}, the shape history readers rebuild from the entry, so a
-- subscriber and a reader of the history see the same event. type is one of our own
-- identifiers; data is JSON text. Returns the new event id.
-- The channel is not among the script's KEYS: it is named here from the history key's hash
-- tag (the room), so it is always in the room's slot. A declared channel is a key Redis
-- never finds, and a multi-key call with a missing key is refused while the slot migrates
-- (docs/INTERNALS.md, "A slot migrated live"); SPUBLISH inside a script is not.
local function emit(history, etype, data, bound)
  local room = string.match(history, '^[^{]*{([^}]*)}')
  if not room or room == '' then error('emit: no room in the history key ' .. history) end
  local id = redis.call('XADD', history, 'MAXLEN', '~', bound, '*', 'type', etype, 'data', data)
  redis.call('SPUBLISH', K_ROOM_CHANNEL(room),
    '{"type":"' .. etype .. '","id":"' .. id .. '","data":' .. data .. '}')
  return id
end

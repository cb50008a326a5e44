-- emit(history, channel, type, data, bound): the one event envelope. Appends the event to
-- the room's history stream (XADD, MAXLEN ~ bound) and publishes it on the room's channel
-- as {"type":…,"id":…,"data":…}, the shape history readers rebuild from the entry, so a
-- subscriber and a reader of the history see the same event. type is one of our own
-- identifiers; data is JSON text. Returns the new event id.
local function emit(history, channel, etype, data, bound)
  local id = redis.call('XADD', history, 'MAXLEN', '~', bound, '*', 'type', etype, 'data', data)
  redis.call('SPUBLISH', channel,
    '{"type":"' .. etype .. '","id":"' .. id .. '","data":' .. data .. '}')
  return id
end

--! use emit
--! keys ROOM_EVENTS ROOM_CHANNEL
-- One room event (lib/events.h). KEYS history stream, channel; ARGV type, data JSON,
-- history bound. Returns the event id.
return emit(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])

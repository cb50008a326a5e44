--! use emit
--! keys ROOM_EVENTS
-- One room event (lib/events.h). KEYS history stream; ARGV type, data JSON, history bounds
-- (EVENTS_HISTORY_BOUNDS).
-- Published on the room's channel too (_emit.lua). Returns the event id.
return emit(KEYS[1], ARGV[1], ARGV[2], ARGV[3])

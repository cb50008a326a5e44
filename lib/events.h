/* events: appending a room event to its history and publishing it, in one atomic step.
 *
 * Redis layout (see docs/INTERNALS.md):
 *   cc:room:{id}:events  a Stream, the room's bounded event history; entry fields
 *                        "type" and "data" (JSON text); the entry id is the event id.
 *   cc:room:{id}         the pub/sub channel; each message is the event as clients get it:
 *                        {"type":"<type>","id":"<stream id>","data":<data>}
 * A Lua script does XADD (MAXLEN ~ EVENTS_HISTORY_MAX) and PUBLISH together, so every
 * published event is in the history and ids are monotonic per room. */
#ifndef CC_EVENTS_H
#define CC_EVENTS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#define EVENTS_HISTORY_MAX 1000
/* The largest event data (the JSON text of "data") any program may emit. Emitters refuse
 * larger data (the API answers 413); the broker delivers every event up to this size, or a
 * `resync` to a client that cannot take it, never silence. */
#define EVENTS_DATA_MAX ((size_t)2 * 1024 * 1024)

/* data_json must be valid JSON (an object). On success, when id_out is not NULL, the new
 * event id is copied into it (NUL-terminated, at most idcap bytes). 0 or -1. */
int events_emit(redisContext *r, const char *room_id, const char *type, const char *data_json,
		char *id_out, size_t idcap);

/* The Lua script events_emit() runs, for callers that must send it themselves (the broker,
 * asynchronously): KEYS[1] history stream, KEYS[2] channel; ARGV type, data JSON, history
 * bound. Returns the new event id. */
extern const char events_emit_script[];

/* Key names; write into out (cap bytes). */
void events_history_key(char *out, size_t cap, const char *room_id);
void events_channel(char *out, size_t cap, const char *room_id);

#endif

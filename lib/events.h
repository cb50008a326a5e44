/* events: appending a room event to its history and publishing it, in one atomic step.
 *
 * Redis (lib/rkeys.def, docs/INTERNALS.md): RK_ROOM_EVENTS, a Stream, is the room's
 * bounded event history (entry fields "type" and "data", JSON text; the entry id is the
 * event id); RK_ROOM_CHANNEL is its pub/sub channel, where each message is the event as
 * clients get it: {"type":"<type>","id":"<stream id>","data":<data>}. The one envelope is
 * lib/lua/_emit.lua: XADD (MAXLEN ~ EVENTS_HISTORY_MAX) and PUBLISH together, so every
 * published event is in the history and ids are monotonic per room; every script that
 * emits (events_emit.lua, the job scripts, the API's commit) uses it. */
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

#endif

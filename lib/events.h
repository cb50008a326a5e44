/* events: appending a room event to its history and publishing it, in one atomic step.
 *
 * Redis (lib/rkeys.def, docs/INTERNALS.md): RK_ROOM_EVENTS, a Stream, is the room's
 * bounded event history (entry fields "type" and "data", JSON text, then "n" and "b", by
 * which _emit.lua bounds its bytes; the entry id is the event id); RK_ROOM_CHANNEL is its
 * pub/sub channel, where each message is the event as clients get it:
 * {"type":"<type>","id":"<stream id>","data":<data>}. The channel is not passed in KEYS: the
 * script names it from the history key (a slot being migrated would refuse a declared
 * channel, docs/INTERNALS.md "A slot migrated live"). The one envelope is lib/lua/_emit.lua:
 * XADD (within EVENTS_HISTORY_BOUNDS) and SPUBLISH together, so every published event is in
 * the history and ids are monotonic per room; every script that emits (events_emit.lua, the
 * job scripts, the API's commit) uses it. */
#ifndef CC_EVENTS_H
#define CC_EVENTS_H

#include <hiredis/hiredis.h>

#include "rds.h"
#include "rkeys.h"
#include <stddef.h>

/* A room's history keeps about EVENTS_HISTORY_MAX entries (XADD MAXLEN ~) and at most
 * EVENTS_HISTORY_MAX_BYTES bytes of entries (an entry's type and data), though always its
 * newest entry whatever its size: an event can be about a megabyte (EVENTS_DATA_MAX), and the
 * count alone would let one room's history hold a gigabyte of Redis. lib/lua/_emit.lua keeps
 * both; the scripts that emit take them as one argument, EVENTS_HISTORY_BOUNDS. A client whose
 * position was trimmed away is told to resync (the broker's catch-up). */
#define EVENTS_HISTORY_MAX 1000
#define EVENTS_HISTORY_MAX_BYTES 16777216 /* 16 MiB */
#define EVENTS_STR_(x) #x
#define EVENTS_STR(x) EVENTS_STR_(x)
/* "<entries> <bytes>": the bounds argument of the scripts that emit (lib/lua/_emit.lua). */
#define EVENTS_HISTORY_BOUNDS                                                                    \
	EVENTS_STR(EVENTS_HISTORY_MAX) " " EVENTS_STR(EVENTS_HISTORY_MAX_BYTES)
/* The largest event data (the JSON text of "data") any program may emit. Emitters refuse
 * larger data (the API answers 413); the broker delivers every event up to this size, or a
 * `resync` to a client that cannot take it, never silence. */
#define EVENTS_DATA_MAX ((size_t)2 * 1024 * 1024)

/* The room event types, as clients see them in `type` (docs/API.md lists each one's data). */
enum event_type {
	EV_OPERATION, /* an operation was committed (the write path's script emits it) */
	EV_PRESENCE,  /* a cursor or selection moved */
	EV_JOIN,      /* a user's first stream in the room opened (the broker's script) */
	EV_LEAVE,     /* a user's last stream closed or expired (the broker's script) */
	EV_ROOM,      /* the room itself changed: settings, members, invite, deletion */
	EV_SNAPSHOT,  /* a revision was saved to the history */
	EV_EXECUTION, /* a run's status changed */
	EV_AI,	      /* an AI request's status changed */
	EV__COUNT
};
/* "operation", "presence", …; "" out of range. */
const char *event_type_name(enum event_type t);
/* 0 with *out, -1 for a name that is no event type. */
int event_type_parse(const char *name, enum event_type *out);

/* data_json must be valid JSON (an object). On success, when id_out is not NULL, the new
 * event id is copied into it (NUL-terminated, at most idcap bytes). 0 or -1. */
int events_emit(struct rds *r, const char *room_id, enum event_type type, const char *data_json,
		char *id_out, size_t idcap);

/* Presence has a budget per user per room, whichever way it comes (PUT, WebSocket): at most
 * `limit` events per window of PRESENCE_RATE_WINDOW_MS (lib/presence.h), counted under
 * RK_ROOM_PRESENCE_RL in the room's slot by the script that emits the event
 * (lib/lua/presence_emit.lua), one round trip. */
enum events_presence {
	EVENTS_PRESENCE_SENT,	 /* emitted */
	EVENTS_PRESENCE_LIMITED, /* over the budget: not emitted; *retry_ms until the window ends */
	EVENTS_PRESENCE_ERROR,	 /* Redis failed or answered something else */
	EVENTS_PRESENCE_GONE,	 /* the room carries the deleted mark: nothing written */
};
/* The script's arguments for room_id and user_id (keys first, as rds_script takes them).
 * The strings are owned by *a; argv points into it (and at EVENTS_HISTORY_BOUNDS). -1 when a
 * key would not fit. */
struct events_presence_args {
	struct rkey history, counter, deleted;
	char limit[24], window[24];
	const char *argv[7]; /* history, counter, deleted mark, data, bounds, limit, window */
};
int events_presence_args(struct events_presence_args *a, const char *room_id, long long user_id,
			 const char *data_json, long limit);
/* Reads the script's answer (borrowed). */
enum events_presence events_presence_reply(const redisReply *rep, long *retry_ms);
/* Runs it on r (synchronous). data_json is a `presence` event's data (presence_data_json). */
enum events_presence events_presence_emit(struct rds *r, const char *room_id, long long user_id,
					  const char *data_json, long limit, long *retry_ms);

#endif

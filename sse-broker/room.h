/* room: the broker's socket-free model of a room's event flow.
 *
 * - Event ids are Redis Stream ids "ms-seq"; they only grow within a room, so "deliver an
 *   event iff its id is above the last one delivered" both orders and de-duplicates.
 * - A room_event is one event rendered once for every transport (SSE text, JSON) and shared
 *   by reference count between every client that has it queued.
 * - A room_cursor is one client's position. While the client's history is being fetched
 *   (XRANGE) live events are held in the cursor (bounded) and merged afterwards, so a client
 *   that subscribes and then replays loses nothing and gets nothing twice.
 * The Redis and socket sides live in hub.c and server.c. */
#ifndef CC_BROKER_ROOM_H
#define CC_BROKER_ROOM_H

#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "id.h"

struct redisReply;

/* a room id is an id (lib/id.h): [A-Za-z0-9_-]{1,64} */
#define ROOM_ID_MAX ID_MAX
#define ROOM_EVID_MAX 48  /* "18446744073709551615-18446744073709551615" */
#define ROOM_TYPE_MAX 32

struct room_evid {
	uint64_t ms;
	uint64_t seq;
};

/* "ms-seq" or "ms" (seq 0). 0 or -1. */
int room_evid_parse(const char *s, struct room_evid *out);
int room_evid_cmp(struct room_evid a, struct room_evid b);
void room_evid_format(struct room_evid id, char out[ROOM_EVID_MAX]);
/* The smallest id after id: XRANGE's start for "strictly after id". */
struct room_evid room_evid_next(struct room_evid id);
int room_evid_is_zero(struct room_evid id);

/* What a `room` event asks of the broker (the API emits them, fcgi/h_rooms.c): re-check the
 * rights of its open streams, or close them all. */
enum room_ctl {
	ROOM_CTL_NONE,
	ROOM_CTL_RIGHTS,  /* {"reason":"members"|"updated"|"invite"}: someone joined, left or
			   * changed role, the visibility may have changed, the invite changed */
	ROOM_CTL_DELETED, /* {"reason":"deleted"}: the room is gone */
};

/* The largest event data the broker takes: what any emitter may send (lib/events.h). The
 * rendered forms are bounded from it: JSON adds the envelope, SSE at worst 7 bytes per data
 * byte ("data: " and a newline for every line of a data made of line breaks). */
#define ROOM_DATA_MAX EVENTS_DATA_MAX
#define ROOM_JSON_MAX (ROOM_DATA_MAX + 128)
#define ROOM_SSE_MAX (7 * ROOM_DATA_MAX + 128)

struct room_event {
	int refs;
	enum room_ctl ctl; /* read once from data when type is "room" */
	struct room_evid id;
	struct room_evid prev; /* the history entry before it, from a live message (has_prev) */
	int has_prev;
	char idstr[ROOM_EVID_MAX];
	char type[ROOM_TYPE_MAX];
	char *data; /* the event's data, JSON text */
	size_t data_len;
	char *sse; /* "id: …\nevent: …\ndata: …\n\n" */
	size_t sse_len;
	char *json; /* {"type":…,"id":…,"data":…} */
	size_t json_len;
};

/* Builds an event from its parts (an XRANGE entry). type must be [a-z_]{1,31}; data is
 * copied. Refcount 1: the caller releases with room_event_release(). NULL when invalid. */
struct room_event *room_event_new(const char *idstr, const char *type, const char *data,
				  size_t data_len);
/* Builds an event from a pub/sub message {"type","id","data"} or {"type","id","prev","data"}
 * (prev: the entry before it in the room's history). NULL when invalid. */
struct room_event *room_event_from_message(const char *msg, size_t len);
/* The id of a message room_event_from_message() refused, when it still has a readable one
 * (to put a resync in its place). 0 or -1. */
int room_message_id(const char *msg, size_t len, char idstr[ROOM_EVID_MAX]);
/* A `resync` event {"reason":<reason>} with id idstr: what a client gets in place of events
 * it cannot have (trimmed history, an event over its bounds, a malformed message); it then
 * refetches the document. reason is one of our identifiers. NULL on failure. */
struct room_event *room_event_resync(const char *idstr, const char *reason);
/* An entry of the room's history as XRANGE hands it to the catch-up (broker_catchup.lua):
 * [id, [field, value, ...]] with the fields `type` and `data` (the last of each counts). Its
 * event; else, when the entry has an id of its own, a `malformed_event` resync in its place,
 * so a client never skips it unknowingly; NULL when it has no readable id. Names and values
 * are read whole: a NUL inside one makes it another name or an unfit value, never a shorter
 * one. Refcount 1. */
struct room_event *room_event_from_entry(const struct redisReply *e);
/* An id as the catch-up script gives it: a list of one id string, empty when there is none.
 * 0 with *out set, or -1 (*out then 0-0). */
int room_entry_id(const struct redisReply *list, struct room_evid *out);
struct room_event *room_event_reserve(struct room_event *ev);
void room_event_release(struct room_event *ev);

enum room_offer {
	ROOM_DELIVER,  /* send it now (the cursor moved to it) */
	ROOM_DUPLICATE, /* at or below the cursor: already sent */
	ROOM_HELD,     /* replay in progress: kept for room_cursor_finish() */
	ROOM_OVERFLOW, /* replay in progress and the hold is full: drop the client */
};

struct room_cursor {
	struct room_evid last; /* last delivered (or the starting point) */
	int replaying;
	struct room_event **held; /* live events that came during the replay, in order */
	size_t nheld, capheld, maxheld;
};

/* maxheld bounds the events kept during a replay (the bound: ROOM_OVERFLOW). */
void room_cursor_init(struct room_cursor *c, struct room_evid start, size_t maxheld);
/* Drops held events. */
void room_cursor_clear(struct room_cursor *c);
/* Starts holding live events until room_cursor_finish(). */
void room_cursor_begin(struct room_cursor *c);
/* A live event. ROOM_HELD takes a reference. */
enum room_offer room_cursor_offer(struct room_cursor *c, struct room_event *ev);
/* Whether a live event shows that events before it never arrived at a cursor that is not
 * replaying: it names a predecessor in the history above the cursor's last event (and is
 * itself above it). */
int room_cursor_gap(const struct room_cursor *c, const struct room_event *ev);
/* An event from history: ROOM_DELIVER or ROOM_DUPLICATE, never held. */
enum room_offer room_cursor_replayed(struct room_cursor *c, struct room_event *ev);
/* Ends the replay: calls deliver for each held event above the cursor, in order, moving the
 * cursor, and releases them all. If deliver returns -1 the rest are dropped and -1 is
 * returned (the client is gone). */
int room_cursor_finish(struct room_cursor *c, int (*deliver)(void *arg, struct room_event *ev),
		       void *arg);

/* The history answer for a client resuming after `last`: first is the oldest id still in
 * the stream (zero when the stream is empty or gone), before the id of the entry that came
 * right before it (its field p; NULL or zero when not known). The client must refetch the
 * document when entries after `last` were trimmed away: the oldest kept entry is newer than
 * `last`'s successor and the entry before it is newer than `last`. Without `before` the
 * answer is conservative: it fires when only `last` itself was trimmed too (ids leave gaps,
 * the entry after `last` cannot be named from `last` alone). */
int room_needs_resync(struct room_evid last, struct room_evid first, const struct room_evid *before);
/* 1 when a client starting from the very beginning (`last` zero: last_event_id=0) cannot get
 * it: the history has dropped `dropped` (> 0) entries. room_needs_resync cannot tell, since
 * a zero position names no event to look for. */
int room_start_trimmed(struct room_evid last, long long dropped);

#endif

/* longpoll: one long-poll answer, built up while events come in.
 *
 * A poll collects the events after `since` (history first, then live ones) and is answered
 * as soon as it holds any, or empty at its deadline. It holds at most LONGPOLL_MAX_EVENTS
 * events and LONGPOLL_MAX_BYTES of them: at the bound it is answered with what it has, and last_event_id tells the client where
 * the next poll resumes, so nothing is lost. */
#ifndef CC_BROKER_LONGPOLL_H
#define CC_BROKER_LONGPOLL_H

#include <stddef.h>

#include "buf.h"
#include "room.h"

#define LONGPOLL_MAX_EVENTS 500
#define LONGPOLL_MAX_BYTES ((size_t)512 * 1024) /* full past this much JSON (at least one event) */
/* The largest event a poll answer carries (every event the broker takes, room.h); one over
 * it is replaced by a `resync` with its id, never left out silently. */
#define LONGPOLL_EVENT_MAX ROOM_JSON_MAX
/* The most an answer can be: under LONGPOLL_MAX_BYTES, then one more event, and framing. */
#define LONGPOLL_ANSWER_MAX (LONGPOLL_MAX_BYTES + LONGPOLL_EVENT_MAX + 4096)

struct longpoll {
	struct room_event *events[LONGPOLL_MAX_EVENTS]; /* references held */
	size_t n;
	size_t bytes;
};

void longpoll_init(struct longpoll *lp);
/* Takes a reference (or adds a resync in place of an event over LONGPOLL_EVENT_MAX). -1 when
 * full (answer now) or out of memory. */
int longpoll_add(struct longpoll *lp, struct room_event *ev);
int longpoll_full(const struct longpoll *lp);
/* The full HTTP response: 200 {"events":[…],"last_event_id":…}. last_event_id is the last
 * collected event's id, else `since` (NULL → null). extra: more header lines (each ending in
 * CRLF) or NULL. */
int longpoll_response(struct buf *out, const struct longpoll *lp, const char *since,
		      const char *extra);
void longpoll_clear(struct longpoll *lp);

#endif

/* roomset: the room list of a multi-room stream (docs/API.md, "Several rooms on one stream"),
 * read from the query string without sockets (docs/CONVENTIONS.md §5).
 *
 * The list is the one `rooms` parameter: ROOM[:LAST_EVENT_ID] entries separated by commas,
 * e.g. "rooms=k3v9x0q2ab:1732950000000-0,zz81mm0000". A room id is what id_valid()
 * takes (lib/id.h); the event id after the colon is where that room resumes (events strictly after it),
 * without one the room starts with what happens from now on. The list is bounded (ROOMSET_MAX
 * rooms, ROOMSET_VALUE_MAX bytes decoded); a room named twice, a repeated `rooms` parameter,
 * an empty entry or any malformed part refuses the whole request, with a message for people
 * naming the problem, so a client never gets a stream of another set than it asked for. */
#ifndef CC_BROKER_ROOMSET_H
#define CC_BROKER_ROOMSET_H

#include <stddef.h>

#include "room.h"

/* Rooms one stream may carry: each is one subscription in the broker (its catch-up, its rights
 * check), so one request cannot make it hold many. The browser client's pages rarely have more
 * than a handful open. */
#define ROOMSET_MAX 16
/* The decoded parameter's bound: ROOMSET_MAX of the longest entries fit. */
#define ROOMSET_VALUE_MAX (ROOMSET_MAX * (ROOM_ID_MAX + 1 + ROOM_EVID_MAX))

struct roomset_entry {
	char id[ROOM_ID_MAX + 1];
	int has_start;
	struct room_evid start; /* when has_start: resume strictly after it; else 0-0 */
};

struct roomset {
	struct roomset_entry v[ROOMSET_MAX];
	size_t n;
};

enum roomset_status {
	ROOMSET_OK = 0,
	ROOMSET_MISSING,   /* no `rooms` parameter, or an empty one */
	ROOMSET_REPEATED,  /* `rooms` given more than once */
	ROOMSET_TOO_MANY,  /* more than ROOMSET_MAX entries, or longer than any such list */
	ROOMSET_MALFORMED, /* a bad escape, an empty entry, a bad room id or event id */
	ROOMSET_DUPLICATE, /* one room twice */
};

/* Reads the `rooms` parameter of query (the part after '?', not decoded). On ROOMSET_OK, out
 * holds the rooms in the order given. Otherwise err gets a message for people. */
enum roomset_status roomset_parse(const char *query, struct roomset *out, char *err, size_t errlen);

/* The index of room id in s, or -1. */
int roomset_find(const struct roomset *s, const char *id);

#endif

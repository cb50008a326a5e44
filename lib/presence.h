/* presence: what a collaborator's cursor looks like to the others, the same for the API's
 * PUT /presence and the broker's WebSocket presence frames. */
#ifndef CC_PRESENCE_H
#define CC_PRESENCE_H

#include <stddef.h>

#define PRESENCE_PALETTE_SIZE 12
/* The largest cursor, anchor or head (code points) either door accepts: far past any
 * document (DOC_MAX_BYTES), and exact in a double, as JSON numbers are read. */
#define PRESENCE_CURSOR_MAX (1LL << 40)

/* The budget of presence events per user per room (docs/API.md): PRESENCE_RATE_LIMIT (the
 * API's and the broker's setting, the same on both, default PRESENCE_RATE_LIMIT_DEFAULT)
 * events per fixed window of PRESENCE_RATE_WINDOW_MS, counted in Redis (lib/events.h,
 * events_presence_emit). The browser client sends at most one presence per 100 ms of quiet
 * per tab (htdocs/src/view-room.js), under half of the default. */
#define PRESENCE_RATE_WINDOW_MS 1000
#define PRESENCE_RATE_LIMIT_DEFAULT 20

/* The user's colour, "#rrggbb", stable for a user id everywhere (static string). */
const char *presence_color(long long user_id);

/* The data of a `presence` event:
 * {"user":{"id":…,"username":…},"cursor":…,"selection":{"anchor":…,"head":…}|null,"color":…}
 * has_selection 0 writes null. Caller frees with free(). NULL on OOM. */
char *presence_data_json(long long user_id, const char *username, long long cursor,
			 int has_selection, long long anchor, long long head);

/* A presence message a client sends up its WebSocket, as the broker reads it:
 * {"type":"presence","cursor":n,"selection":{"anchor":a,"head":h},"room":"…"}, strict JSON
 * (lib/jsoncheck.h); selection is optional, room is read on a stream of several rooms. */
#define PRESENCE_ROOM_MAX 64
struct presence_msg {
	long long cursor;
	int has_selection;
	long long anchor, head;
	char room[PRESENCE_ROOM_MAX + 1]; /* "" when absent, not a string, or longer */
};

/* 1 and *out filled when msg[0..len) is a well-formed presence message (cursor, anchor and
 * head numbers from 0 to PRESENCE_CURSOR_MAX, truncated to whole numbers); 0 for anything
 * else, which the broker ignores. */
int presence_msg_parse(const char *msg, size_t len, struct presence_msg *out);

/* The data of `join`/`leave` ({"user":{"id":…,"username":…}}) is built in one place, the
 * broker's presence script (lib/lua/broker_presence.lua), which decides when they happen. */

#endif

/* presence: what a collaborator's cursor looks like to the others, the same for the API's
 * PUT /presence and the broker's WebSocket presence frames. */
#ifndef CC_PRESENCE_H
#define CC_PRESENCE_H

#define PRESENCE_PALETTE_SIZE 12
/* The largest cursor, anchor or head (code points) either door accepts: far past any
 * document (DOC_MAX_BYTES), and exact in a double, as JSON numbers are read. */
#define PRESENCE_CURSOR_MAX (1LL << 40)

/* The user's colour, "#rrggbb", stable for a user id everywhere (static string). */
const char *presence_color(long long user_id);

/* The data of a `presence` event:
 * {"user":{"id":…,"username":…},"cursor":…,"selection":{"anchor":…,"head":…}|null,"color":…}
 * has_selection 0 writes null. Caller frees with free(). NULL on OOM. */
char *presence_data_json(long long user_id, const char *username, long long cursor,
			 int has_selection, long long anchor, long long head);

/* The data of `join`/`leave` ({"user":{"id":…,"username":…}}) is built in one place, the
 * broker's presence script (lib/lua/broker_presence.lua), which decides when they happen. */

#endif

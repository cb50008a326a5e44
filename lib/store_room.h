/* store_room: who may read or edit a room, asked of the member cache (Redis) first and of
 * PostgreSQL when the cache does not say. No HTTP here: the API turns the status and the
 * refusal into its answer (fcgi/h_docs.c, room_access). */
#ifndef CC_STORE_ROOM_H
#define CC_STORE_ROOM_H

#include "store.h"

#define STORE_ROLE_MAX 16
#define STORE_LANGUAGE_MAX 33

/* Why STORE_FORBIDDEN. */
enum store_refusal {
	STORE_REFUSE_NONE,
	STORE_REFUSE_VIEWER,   /* a viewer asked to edit */
	STORE_REFUSE_STRANGER, /* not a member of a private room */
	STORE_REFUSE_NOT_JOINED, /* a stranger to a public room asked to edit */
};

/* The caller's role in the room: "owner", "editor", "viewer", or "" for a stranger to a
 * public room (who may read). `edit`: editors and owners only. language (may be NULL)
 * receives the room's language, which only PostgreSQL has: asking for it skips the cache.
 * STORE_OK; STORE_NOT_FOUND (no such room); STORE_FORBIDDEN with *why; or the store's
 * failure. */
enum store_status store_room_access(struct store *s, const char *room, long long user_id,
				    int edit, char role[STORE_ROLE_MAX],
				    char language[STORE_LANGUAGE_MAX], enum store_refusal *why);

/* The room's language: STORE_OK, STORE_NOT_FOUND or the store's failure. */
enum store_status store_room_language(struct store *s, const char *room,
				      char out[STORE_LANGUAGE_MAX]);

#endif

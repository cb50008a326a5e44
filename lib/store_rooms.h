/* store_rooms: rooms, their members, invites and removals in PostgreSQL, and the room
 * state the API keeps in Redis for the broker and the document endpoints (the member cache
 * RK_ROOM_MEMBERS, the visibility key RK_ROOM_VISIBILITY), as store functions
 * (lib/store.h). The rules (who may do what, which answer) are the API's (fcgi/h_rooms.c);
 * docs/INTERNALS.md, "Invites and removals", says why the statements look as they do. */
#ifndef CC_STORE_ROOMS_H
#define CC_STORE_ROOMS_H

#include "store.h"
#include "store_room.h"

#define STORE_ROOM_ID_LEN 10
#define STORE_INVITE_LEN 16

/* A room as every room query reads it, with the asking user's role. */
struct store_room {
	char id[65];
	char name[512];
	char language[STORE_LANGUAGE_MAX];
	char visibility[16];
	long long owner_id;
	char owner_name[65];
	char invite[129]; /* the stored code, also while switched off */
	char created_at[40];
	int invite_enabled;
	long long invite_gen;
	char role[STORE_ROLE_MAX]; /* the user's: "owner", "editor", "viewer"; "" none */
	long long created_us; /* store_room_list only: created_at in µs since 1970 (paging) */
	/* store_room_list only (saved_known 1): the newest saved revision, -1 none, for
	 * store_room_revision when Redis holds no document */
	long long saved_revision;
	int saved_known;
};

struct store_member {
	long long id;
	char username[65];
	char role[STORE_ROLE_MAX];
};

/* The room with the user's role: STORE_OK, STORE_NOT_FOUND, or a failure. */
enum store_status store_room_get(struct store *s, const char *room, long long user,
				 struct store_room *out);
/* The rooms the user is a member of, newest first (created_at, then id, descending), at
 * most max (caller free()s *out). With before_id, only those after the room (before_us,
 * before_id) in that order: the page after a previous one ended there. */
enum store_status store_room_list(struct store *s, long long user, int max, long long before_us,
				  const char *before_id, struct store_room **out, int *n);
/* A new room owned by the user (a fresh id and invite code): STORE_OK with *out;
 * STORE_NOT_FOUND when the user's row is gone; STORE_TOO_LARGE when the user owns
 * max_rooms rooms already (ROOMS_PER_USER_MAX; creates at the same moment never pass it);
 * STORE_ERROR when no free id was found. */
enum store_status store_room_create(struct store *s, long long user, long max_rooms,
				    const char *name, const char *language,
				    const char *visibility, struct store_room *out);
/* Changes the fields that are not NULL: STORE_OK with the room as it is now, or
 * STORE_NOT_FOUND. */
enum store_status store_room_update(struct store *s, const char *room, long long user,
				    const char *name, const char *language,
				    const char *visibility, struct store_room *out);
/* code not NULL: a new invite code (one more generation) and the link on; NULL: the link
 * off. STORE_OK with the room, or STORE_NOT_FOUND. */
enum store_status store_room_set_invite(struct store *s, const char *room, long long user,
					const char *code, struct store_room *out);
/* The room's live state in Redis (member cache, document, operations, commits,
 * visibility, runs, fold mark), once the row is gone (store_room_bury). */
enum store_status store_room_drop_live(struct store *s, const char *room);
/* The keys by which the broker and the document endpoints admit people to the room
 * without asking PostgreSQL (the member cache and the visibility key), and nothing else:
 * both can be written again from the row, while the document and its operations may hold
 * edits no save has reached yet. */
enum store_status store_room_drop_access(struct store *s, const char *room);
/* Called by a deletion inside its transaction, once PostgreSQL has deleted the row(s) and
 * holds their locks, before the COMMIT: anything but STORE_OK rolls the deletion back and
 * is returned. */
typedef enum store_status (*store_before_commit)(void *arg);
/* Deletes the room's row (and by cascade its members, saves, history, removals) in one
 * transaction; before_commit (may be NULL) runs between the DELETE and the COMMIT. STORE_OK
 * also when there was no such row. before_commit's failure and the COMMIT's are returned
 * alike: the caller tells them apart (whether before_commit returned STORE_OK). A failure of
 * the COMMIT itself leaves it unknown whether the row went: the caller reads it again
 * (store_room_visibility). After a failed before_commit nothing was deleted: a row found
 * gone then was deleted by another transaction. */
enum store_status store_room_delete(struct store *s, const char *room,
				    store_before_commit before_commit, void *arg);
/* After the row is gone: the room's deleted mark (RK_ROOM_DELETED, for
 * JOBSTATE_ROOM_DELETED_TTL_S), which the writers that may come later (a job's events and
 * recent runs through the outbox, an AI job's marks, the worker about to run a job of the
 * room) respect; then every other key of the room but its event history, by name
 * (store_room_drop_live) and by a SCAN of its prefix (the AI marks, the presence set, the
 * outbox mark). The mark first, so nothing it stops is written back after the sweep. */
enum store_status store_room_bury(struct store *s, const char *room);
/* How long a deleted room's event history is kept after its `deleted` event (seconds):
 * enough for a stream catching up from it to read that event. */
#define ROOM_EVENTS_AFTER_DELETE_S 60
/* Gives the room's event history (RK_ROOM_EVENTS) an expiry of `seconds`. */
enum store_status store_room_events_expire(struct store *s, const char *room, int seconds);
/* The room's visibility in PostgreSQL; "" when the room is gone. */
enum store_status store_room_visibility(struct store *s, const char *room, char out[16]);

/* Members, the owner first, then by joining time (caller free()s *out). */
enum store_status store_room_members(struct store *s, const char *room,
				     struct store_member **out, int *n);
/* One page of them in the same order: at most limit (> 0), after the member `after` (0: from
 * the start). *more: members follow this page. STORE_INVALID when after is not a member
 * (any more). Caller free()s *out. */
enum store_status store_room_members_page(struct store *s, const char *room, long long after,
					  int limit, struct store_member **out, int *n, int *more);
/* A member's role: STORE_OK with role ("" when not a member). member: the id as text. */
enum store_status store_member_role(struct store *s, const char *room, const char *member,
				    char role[STORE_ROLE_MAX]);
/* Changes a member's role (never the owner's): STORE_OK or STORE_NOT_FOUND. */
enum store_status store_member_set_role(struct store *s, const char *room, const char *member,
					const char *role);
/* Takes the membership away (never the owner's); *removed 1 when there was one. `record`:
 * the owner's removal, which also records it under the room's invite generation; else a
 * member leaving, which records a viewer's role (joining again gives it back) and clears
 * that record for an editor. In one transaction with the room row locked. */
enum store_status store_member_remove(struct store *s, const char *room, const char *member,
				      int record, int *removed);
/* The invite generation of the user's removal record, -1 when there is none. */
enum store_status store_room_removal_gen(struct store *s, const char *room, long long user,
					 long long *gen);
/* Makes the user a member if the room still admits them: by_code = the invite generation
 * the code was checked against, or -1 for the public path. The role is the one a viewer's
 * own leave recorded (that record is then cleared), else editor. STORE_OK with *joined (0:
 * the room changed meanwhile, or they are a member already) and, when joined, the role
 * given in `role` (else ""); STORE_NOT_FOUND; STORE_TOO_LARGE when the room has
 * max_members members already and the user is not one of them (ROOM_MEMBERS_MAX, the owner
 * counted); STORE_FORBIDDEN when the user's account is gone (deleted meanwhile). */
enum store_status store_room_join(struct store *s, const char *room, long long user,
				  long long by_code, long max_members, int *joined,
				  char role[STORE_ROLE_MAX]);

/* The member cache entry of the user (role NULL: none). STORE_OK or
 * STORE_REDIS_UNAVAILABLE (logged). */
enum store_status store_member_cache(struct store *s, const char *room, long long user,
				     const char *role);
/* The member cache entries of the n members m (as store_room_members read them), in one
 * HSET; entries of others are left as they are. STORE_OK or a failure (logged). */
enum store_status store_member_cache_fill(struct store *s, const char *room,
					const struct store_member *m, int n);
/* Writes the visibility key when it differs (vis NULL deletes it): 1 written, 0 already
 * so, -1 Redis failed (logged). */
int store_room_visibility_put(struct store *s, const char *room, const char *vis);
/* The document's revision, from the Redis connection as it is (none is opened: a list of
 * rooms costs at most the one attempt its caller made); when Redis holds no document (an
 * idle room unloaded, store_doc_sweep), the newest saved revision: r's when its list read
 * it (saved_known), else asked of PostgreSQL; 0 when unknown. */
long long store_room_revision(struct store *s, const struct store_room *r);

#endif

/* store_user: accounts in PostgreSQL (users: id, username, username_key, password_hash,
 * token_gen), as store functions (lib/store.h) for sign-up, sign-in, password changes and
 * the session check (which also asks Redis whether a session was signed out). No HTTP here: fcgi/h_auth.c and fcgi/api.c answer. */
#ifndef CC_STORE_USER_H
#define CC_STORE_USER_H

#include "store.h"

#define STORE_USERNAME_MAX 64

struct store_user {
	long long id;
	char username[STORE_USERNAME_MAX + 1];
	char *password_hash; /* owned: store_user_free() */
	long long token_gen;
};

void store_user_free(struct store_user *u);

/* A new account: STORE_OK with its id and token generation; STORE_CONFLICT when the name's
 * canonical form (users.username_key) is taken; or the store's failure. */
enum store_status store_user_create(struct store *s, const char *username,
				    const char *password_hash, long long *id, long long *gen);
/* The account whose username_key is key: STORE_OK with *out, STORE_NOT_FOUND, or a
 * failure. */
enum store_status store_user_by_key(struct store *s, const char *key, struct store_user *out);
/* The account with this id (its password_hash and token_gen; username left empty). */
enum store_status store_user_by_id(struct store *s, long long id, struct store_user *out);
/* Only the token generation (users.token_gen) of the account with this id. */
enum store_status store_user_gen(struct store *s, long long id, long long *gen);
/* The new password hash and token_gen + 1 in one statement: STORE_OK with the new
 * generation, STORE_NOT_FOUND (the account is gone), or a failure. */
enum store_status store_user_set_password(struct store *s, long long id,
					  const char *password_hash, long long *gen);

/* A room of an account that is being deleted: the account owns it (it goes with the
 * account) or is a member of it (the account leaves it). */
struct store_user_room {
	char id[65];
	int owned;
};

/* Deletes the account, and with it (ON DELETE CASCADE) the rooms it owns and its
 * memberships, in one transaction that locks the row first: a room creation or a join of
 * the account that is under way either commits before (and its room or membership is in
 * *out) or waits for the lock and then finds no account (store_room_create,
 * store_room_join). before_commit (may be NULL) is called with those rooms after the
 * DELETE, before the COMMIT (*out and *n are filled by then); anything but STORE_OK from it
 * rolls the deletion back. STORE_OK with the rooms it owned and those it left (caller
 * free()s *out); STORE_NOT_FOUND when there is no such account (any more); or a failure
 * (nothing in *out; when the COMMIT itself failed, whether the account went is unknown). */
enum store_status store_user_delete(struct store *s, long long id, struct store_user_room **out,
				    int *n,
				    enum store_status (*before_commit)(void *arg,
								       const struct store_user_room *rooms,
								       int n),
				    void *arg);

/* Whether the session sid was signed out (its mark in Redis, lib/access.h): STORE_OK with
 * *yes, or STORE_REDIS_UNAVAILABLE. */
enum store_status store_session_signed_out(struct store *s, const char *sid, int *yes);

#endif

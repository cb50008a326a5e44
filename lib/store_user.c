#include "store_user.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rkeys.h"

void store_user_free(struct store_user *u)
{
	free(u->password_hash);
	u->password_hash = NULL;
}

/* Runs sql, which gives the account's row or none, and reads the row into *u from columns
 * id, username, password_hash, token_gen (a column index < 0: not selected). */
static enum store_status one_user(struct store *s, const char *sql, int n,
				  const char *const *params, int cid, int cname, int chash,
				  int cgen, struct store_user *u)
{
	memset(u, 0, sizeof *u);
	PGresult *r;
	enum store_status st = store_row(s, &r, sql, n, params, "the account does not exist");
	if (st != STORE_OK)
		return st;
	if (cid >= 0)
		u->id = strtoll(PQgetvalue(r, 0, cid), NULL, 10);
	if (cname >= 0)
		snprintf(u->username, sizeof u->username, "%s", PQgetvalue(r, 0, cname));
	if (cgen >= 0)
		u->token_gen = strtoll(PQgetvalue(r, 0, cgen), NULL, 10);
	if (chash >= 0 && !(u->password_hash = strdup(PQgetvalue(r, 0, chash)))) {
		PQclear(r);
		return store_fail(s, STORE_ERROR, "out of memory");
	}
	PQclear(r);
	return STORE_OK;
}

/* The token generation of account `id` after sql (its one parameter: the id; its one
 * column: token_gen). */
static enum store_status user_gen(struct store *s, const char *sql, long long id,
				  const char *password_hash, long long *gen)
{
	char uid[24];
	snprintf(uid, sizeof uid, "%lld", id);
	const char *params[] = {uid, password_hash};
	struct store_user u;
	enum store_status st = one_user(s, sql, password_hash ? 2 : 1, params, -1, -1, -1, 0, &u);
	*gen = u.token_gen;
	return st;
}

enum store_status store_user_create(struct store *s, const char *username,
				    const char *password_hash, long long *id, long long *gen)
{
	const char *params[] = {username, password_hash};
	struct store_user u;
	/* users.username_key (the canonical form, unique) decides whether the name is taken: a
	 * conflict on it inserts nothing; any other unique violation is an error */
	enum store_status st = one_user(s,
					"INSERT INTO users (username, password_hash) VALUES ($1, $2) "
					"ON CONFLICT (username_key) DO NOTHING RETURNING id, token_gen",
					2, params, 0, -1, -1, 1, &u);
	if (st == STORE_NOT_FOUND)
		return store_fail(s, STORE_CONFLICT, "the username is taken");
	if (st != STORE_OK)
		return st;
	*id = u.id;
	*gen = u.token_gen;
	return st;
}

enum store_status store_user_by_key(struct store *s, const char *key, struct store_user *out)
{
	const char *params[] = {key};
	return one_user(s, "SELECT id, username, password_hash, token_gen FROM users "
			   "WHERE username_key = $1",
			1, params, 0, 1, 2, 3, out);
}

enum store_status store_user_by_id(struct store *s, long long id, struct store_user *out)
{
	char uid[24];
	snprintf(uid, sizeof uid, "%lld", id);
	const char *params[] = {uid};
	enum store_status st = one_user(s, "SELECT password_hash, token_gen FROM users WHERE id = $1",
					1, params, -1, -1, 0, 1, out);
	out->id = id;
	return st;
}

enum store_status store_user_gen(struct store *s, long long id, long long *gen)
{
	return user_gen(s, "SELECT token_gen FROM users WHERE id = $1", id, NULL, gen);
}

enum store_status store_user_set_password(struct store *s, long long id,
					  const char *password_hash, long long *gen)
{
	/* one statement: the new hash and the new generation commit together */
	return user_gen(s,
			"UPDATE users SET password_hash = $2, token_gen = token_gen + 1 "
			"WHERE id = $1 RETURNING token_gen",
			id, password_hash, gen);
}

/* The rows of r (room id, owned as "t"/"f") into *out (caller frees). Clears r. */
static enum store_status rooms_taken(struct store *s, PGresult *r, struct store_user_room **out,
				     int *n)
{
	int rows = PQntuples(r);
	struct store_user_room *v = rows ? calloc((size_t)rows, sizeof *v) : NULL;
	if (rows && !v) {
		PQclear(r);
		return store_fail(s, STORE_ERROR, "out of memory");
	}
	for (int i = 0; i < rows; i++) {
		snprintf(v[i].id, sizeof v[i].id, "%s", PQgetvalue(r, i, 0));
		v[i].owned = strcmp(PQgetvalue(r, i, 1), "t") == 0;
	}
	PQclear(r);
	*out = v;
	*n = rows;
	return STORE_OK;
}

enum store_status store_user_delete(struct store *s, long long id, struct store_user_room **out,
				    int *n,
				    enum store_status (*before_commit)(void *arg,
								       const struct store_user_room *rooms,
								       int n),
				    void *arg)
{
	*out = NULL;
	*n = 0;
	char uid[24];
	snprintf(uid, sizeof uid, "%lld", id);
	const char *params[] = {uid};
	enum store_status st = store_begin(s);
	if (st != STORE_OK)
		return st;
	/* The lock first: a room's insert and a member's insert take a KEY SHARE lock on the
	 * row they refer to, which FOR UPDATE excludes. Once it is held no room or membership
	 * of the account can appear, so the list read next (a statement of its own, which sees
	 * whatever committed while we waited) is the whole of what the delete below takes. */
	PGresult *r;
	st = store_sql(s, &r, NULL, "SELECT 1 FROM users WHERE id = $1 FOR UPDATE", 1, params);
	if (st != STORE_OK) {
		store_rollback(s);
		return st;
	}
	int found = PQntuples(r) == 1;
	PQclear(r);
	if (!found) {
		store_rollback(s);
		return store_fail(s, STORE_NOT_FOUND, "the account does not exist");
	}
	st = store_sql(s, &r, NULL,
		       "SELECT id, true FROM rooms WHERE owner_id = $1 "
		       "UNION ALL SELECT room_id, false FROM room_members "
		       "WHERE user_id = $1 AND role <> 'owner' ORDER BY 2 DESC, 1",
		       1, params);
	if (st == STORE_OK)
		st = rooms_taken(s, r, out, n);
	if (st == STORE_OK) {
		/* rooms (and their members, history, snapshots), memberships, removals and
		 * departures go with the row (schema.sql: ON DELETE CASCADE) */
		st = store_sql(s, &r, NULL, "DELETE FROM users WHERE id = $1", 1, params);
		if (st == STORE_OK)
			PQclear(r);
	}
	/* PostgreSQL has answered and holds the rows: the caller's Redis step comes now, and a
	 * failure of it still undoes everything */
	if (st == STORE_OK && before_commit)
		st = before_commit(arg, *out, *n);
	if (st != STORE_OK) {
		store_rollback(s);
		free(*out);
		*out = NULL;
		*n = 0;
		return st;
	}
	st = store_commit(s);
	if (st != STORE_OK) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return st;
}

enum store_status store_session_signed_out(struct store *s, const char *sid, int *yes)
{
	*yes = 0;
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey key = rkey1(RK_SESSION_REVOKED, sid);
	redisReply *rep = rds_cmd(rd, key.s, "EXISTS %s", key.s);
	if (!rep)
		return store_redis_failed(s);
	*yes = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
	freeReplyObject(rep);
	return STORE_OK;
}

#include "store_rooms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobstate.h"
#include "log.h"
#include "rkeys.h"
#include "rnd.h"
#include "rscript.h"

/* Every room query selects these columns, in this order, for room_from_row(). $2 is the
 * caller's user id (for the role column). */
#define ROOM_BASE_COLS                                                                    \
	"r.id, r.name, r.language, r.visibility, r.owner_id, u.username, r.invite_code, "  \
	"to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "      \
	"r.invite_enabled, r.invite_gen"
#define ROOM_COLS                                                                         \
	ROOM_BASE_COLS ", (SELECT role FROM room_members m WHERE m.room_id = r.id AND m.user_id = $2)"
#define ROOM_FROM " FROM rooms r JOIN users u ON u.id = r.owner_id "

/* An UPDATE of the room $1 that answers the room as store_room_get() reads it: `set` is
 * the SET list; updated_at is set too. */
#define ROOM_UPDATE(set)                                                                   \
	"WITH upd AS (UPDATE rooms SET " set ", updated_at = now() WHERE id = $1 RETURNING *) " \
	"SELECT " ROOM_COLS " FROM upd r JOIN users u ON u.id = r.owner_id"

enum { C_ID, C_NAME, C_LANG, C_VIS, C_OWNER_ID, C_OWNER_NAME, C_INVITE, C_CREATED,
       C_INVITE_ON, C_INVITE_GEN, C_ROLE };

static void room_from_row(PGresult *r, int row, struct store_room *o)
{
	memset(o, 0, sizeof *o);
	snprintf(o->id, sizeof o->id, "%s", PQgetvalue(r, row, C_ID));
	snprintf(o->name, sizeof o->name, "%s", PQgetvalue(r, row, C_NAME));
	snprintf(o->language, sizeof o->language, "%s", PQgetvalue(r, row, C_LANG));
	snprintf(o->visibility, sizeof o->visibility, "%s", PQgetvalue(r, row, C_VIS));
	o->owner_id = strtoll(PQgetvalue(r, row, C_OWNER_ID), NULL, 10);
	snprintf(o->owner_name, sizeof o->owner_name, "%s", PQgetvalue(r, row, C_OWNER_NAME));
	snprintf(o->invite, sizeof o->invite, "%s", PQgetvalue(r, row, C_INVITE));
	snprintf(o->created_at, sizeof o->created_at, "%s", PQgetvalue(r, row, C_CREATED));
	o->invite_enabled = strcmp(PQgetvalue(r, row, C_INVITE_ON), "t") == 0;
	o->invite_gen = strtoll(PQgetvalue(r, row, C_INVITE_GEN), NULL, 10);
	if (!PQgetisnull(r, row, C_ROLE))
		snprintf(o->role, sizeof o->role, "%s", PQgetvalue(r, row, C_ROLE));
}

/* The one row of a room query into *out; STORE_NOT_FOUND when there is none. Takes r. */
static enum store_status one_room(struct store *s, PGresult *r, const char *room,
				  struct store_room *out)
{
	enum store_status st = STORE_OK;
	if (PQntuples(r) == 1)
		room_from_row(r, 0, out);
	else
		st = store_fail(s, STORE_NOT_FOUND, "no room with id %s", room);
	PQclear(r);
	return st;
}

enum store_status store_room_get(struct store *s, const char *room, long long user,
				 struct store_room *out)
{
	char uid[32];
	snprintf(uid, sizeof uid, "%lld", user);
	const char *params[] = {room, uid};
	PGresult *r;
	enum store_status st =
		store_sql(s, &r, NULL, "SELECT " ROOM_COLS ROOM_FROM "WHERE r.id = $1", 2, params);
	return st != STORE_OK ? st : one_room(s, r, room, out);
}

enum store_status store_room_list(struct store *s, long long user, int max, long long before_us,
				  const char *before_id, struct store_room **out, int *n)
{
	char uid[32], lim[16], bus[32];
	*out = NULL;
	*n = 0;
	snprintf(uid, sizeof uid, "%lld", user);
	snprintf(lim, sizeof lim, "%d", max);
	snprintf(bus, sizeof bus, "%lld", before_us);
	/* $1 and $2 are the same value: ROOM_COLS names the caller $2 */
	const char *params[] = {uid, uid, lim, before_id ? bus : NULL, before_id};
	PGresult *r;
#define ROOM_US "(extract(epoch FROM r.created_at) * 1000000)::bigint"
	/* the newest saved revision (two index-only lookups a room), for the rooms whose
	 * document is out of Redis (store_room_revision) */
#define ROOM_SAVED                                                                                \
	"greatest((SELECT max(revision) FROM snapshots WHERE room_id = r.id), "                   \
	"(SELECT max(revision) FROM history_ops WHERE room_id = r.id)) "
	enum store_status st = store_sql(s, &r, NULL,
					 "SELECT " ROOM_COLS ", " ROOM_US ", " ROOM_SAVED ROOM_FROM
					 "JOIN room_members me ON me.room_id = r.id AND me.user_id = $1 "
					 "WHERE $5::text IS NULL OR (" ROOM_US ", r.id) < ($4::bigint, $5) "
					 "ORDER BY r.created_at DESC, r.id DESC LIMIT $3",
					 5, params);
#undef ROOM_US
#undef ROOM_SAVED
	if (st != STORE_OK)
		return st;
	int rows = PQntuples(r);
	struct store_room *v = rows ? calloc((size_t)rows, sizeof *v) : NULL;
	if (rows && !v) {
		PQclear(r);
		return store_fail(s, STORE_ERROR, "out of memory");
	}
	for (int i = 0; i < rows; i++) {
		room_from_row(r, i, &v[i]);
		v[i].created_us = strtoll(PQgetvalue(r, i, C_ROLE + 1), NULL, 10);
		v[i].saved_revision = PQgetisnull(r, i, C_ROLE + 2)
					      ? -1
					      : strtoll(PQgetvalue(r, i, C_ROLE + 2), NULL, 10);
		v[i].saved_known = 1;
	}
	PQclear(r);
	*out = v;
	*n = rows;
	return STORE_OK;
}

/* Inside a transaction begun by the caller: the row of `table` whose id is id, locked FOR NO
 * KEY UPDATE (it may not be deleted or have its key changed until the transaction ends; other
 * updates of it wait their turn). STORE_OK with *exists 1, or 0 when there is no such row (the
 * transaction still open); on an error the transaction is rolled back. table is one of ours,
 * never outside input. */
static enum store_status lock_row(struct store *s, const char *table, const char *id, int *exists)
{
	char sql[96];
	snprintf(sql, sizeof sql, "SELECT 1 FROM %s WHERE id = $1 FOR NO KEY UPDATE", table);
	const char *params[] = {id};
	PGresult *r;
	enum store_status st = store_sql(s, &r, NULL, sql, 1, params);
	if (st != STORE_OK) {
		store_rollback(s);
		return st;
	}
	*exists = PQntuples(r) == 1;
	PQclear(r);
	return STORE_OK;
}

/* The owner's row is locked FOR NO KEY UPDATE in a statement of its own first: two creates
 * by one user then take turns, and the insert's statement (its snapshot taken after the lock)
 * counts the room the other one made, so max_rooms is never passed, not even by creates at
 * the same moment. The lock leaves the foreign key checks of other inserts (FOR KEY SHARE)
 * alone; while the account is being deleted (store_user_delete holds it FOR UPDATE) this
 * waits, then finds no row and inserts nothing, instead of failing the foreign key. */
enum store_status store_room_create(struct store *s, long long user, long max_rooms,
				    const char *name, const char *language,
				    const char *visibility, struct store_room *out)
{
	char id[STORE_ROOM_ID_LEN + 1], invite[STORE_INVITE_LEN + 1], uid[32], max[24];
	snprintf(uid, sizeof uid, "%lld", user);
	snprintf(max, sizeof max, "%ld", max_rooms);
	for (int attempt = 0; attempt < 3; attempt++) {
		if (rnd_id(id, STORE_ROOM_ID_LEN) < 0 || rnd_id(invite, STORE_INVITE_LEN) < 0)
			return store_fail(s, STORE_ERROR, "no randomness");
		enum store_status st = store_begin(s);
		if (st != STORE_OK)
			return st;
		int exists;
		st = lock_row(s, "users", uid, &exists);
		if (st != STORE_OK)
			return st;
		PGresult *r;
		if (!exists) { /* the token outlived its account */
			store_rollback(s);
			return store_fail(s, STORE_NOT_FOUND, "the account no longer exists");
		}
		const char *params[] = {id, uid, name, language, visibility, invite, max};
		/* 23505: the id is taken (a clash of random ids): another one, in a new
		 * transaction (this one is aborted). No row: the user owns max_rooms already */
		st = store_sql(
			s, &r, "23505",
			"WITH cur AS (SELECT count(*) AS n FROM rooms WHERE owner_id = $2), "
			"r AS (INSERT INTO rooms (id, owner_id, name, language, visibility, "
			"invite_code) SELECT $1, $2, $3, $4, $5, $6 FROM cur WHERE cur.n < $7::bigint "
			"RETURNING *), "
			"m AS (INSERT INTO room_members (room_id, user_id, role) "
			"SELECT id, owner_id, 'owner' FROM r) "
			"SELECT " ROOM_BASE_COLS ", 'owner' FROM r JOIN users u ON u.id = r.owner_id",
			7, params);
		if (st == STORE_CONFLICT) {
			store_rollback(s);
			continue;
		}
		if (st != STORE_OK) {
			store_rollback(s);
			return st;
		}
		if (PQntuples(r) != 1) {
			PQclear(r);
			store_rollback(s);
			return store_fail(s, STORE_TOO_LARGE, "you own %ld rooms, as many as one user may",
					  max_rooms);
		}
		room_from_row(r, 0, out);
		PQclear(r);
		return store_commit(s);
	}
	return store_fail(s, STORE_ERROR, "could not allocate a room id");
}

enum store_status store_room_update(struct store *s, const char *room, long long user,
				    const char *name, const char *language,
				    const char *visibility, struct store_room *out)
{
	char uid[32];
	snprintf(uid, sizeof uid, "%lld", user);
	const char *params[] = {room, uid, name, language, visibility};
	PGresult *r;
	enum store_status st =
		store_sql(s, &r, NULL,
			  ROOM_UPDATE("name = coalesce($3, name), language = coalesce($4, language), "
				      "visibility = coalesce($5, visibility)"),
			  5, params);
	return st != STORE_OK ? st : one_room(s, r, room, out);
}

enum store_status store_room_set_invite(struct store *s, const char *room, long long user,
					const char *code, struct store_room *out)
{
	char uid[32];
	snprintf(uid, sizeof uid, "%lld", user);
	const char *params[] = {room, uid, code};
	PGresult *r;
	/* invite_gen counts the codes issued: a removal recorded under an older generation no
	 * longer holds against this code */
	enum store_status st = store_sql(
		s, &r, NULL,
		ROOM_UPDATE("invite_code = coalesce($3, invite_code), "
			    "invite_gen = invite_gen + CASE WHEN $3::text IS NULL THEN 0 ELSE 1 END, "
			    "invite_enabled = $3::text IS NOT NULL"),
		3, params);
	return st != STORE_OK ? st : one_room(s, r, room, out);
}

/* A command's reply, freed, as the store's status: STORE_OK unless it failed (no answer,
 * or an error answer). */
static enum store_status reply_done(struct store *s, redisReply *rep)
{
	if (!rep)
		return store_redis_failed(s);
	int failed = rep->type == REDIS_REPLY_ERROR;
	freeReplyObject(rep);
	return failed ? store_fail(s, STORE_REDIS_UNAVAILABLE, "the event store is unavailable")
		      : STORE_OK;
}

enum store_status store_room_drop_live(struct store *s, const char *room)
{
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey mk = rkey1(RK_ROOM_MEMBERS, room), dk = rkey1(RK_ROOM_DOC, room),
		    ok = rkey1(RK_ROOM_OPS, room), vk = rkey1(RK_ROOM_VISIBILITY, room),
		    ck = rkey1(RK_ROOM_COMMITS, room), rk = rkey1(RK_ROOM_RUNS, room),
		    fk = rkey1(RK_ROOM_FOLD_FAILED, room);
	return reply_done(s, rds_cmd(rd, mk.s, "DEL %s %s %s %s %s %s %s", mk.s, dk.s, ok.s, vk.s,
				     ck.s, rk.s, fk.s));
}

enum store_status store_room_drop_access(struct store *s, const char *room)
{
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey mk = rkey1(RK_ROOM_MEMBERS, room), vk = rkey1(RK_ROOM_VISIBILITY, room);
	return reply_done(s, rds_cmd(rd, mk.s, "DEL %s %s", mk.s, vk.s));
}

/* Deletes every key of the room the node of its slot holds, but its history and its
 * deleted mark: one SCAN of that node for the room's prefix (every key of the room begins
 * with its channel's name and a ':', lib/rkeys.def), deleting each batch as it comes, so
 * nothing grows with the number of keys; the keys whose names carry more than the room
 * (the AI marks of each request) are found this way, and so is any key a later version
 * adds. A key written during the SCAN may be missed: the deleted mark stops the writers
 * that could come after the delete (jobs, AI answers), and what else could is deleted by
 * name as well (store_room_drop_live). */
static enum store_status sweep_room(struct store *s, struct rds *rd, const char *room)
{
	struct rkey ch = rkey1(RK_ROOM_CHANNEL, room), ek = rkey1(RK_ROOM_EVENTS, room),
		    dk = rkey1(RK_ROOM_DELETED, room);
	char pattern[sizeof ch.s + 2], cursor[32] = "0";
	snprintf(pattern, sizeof pattern, "%s:*", ch.s);
	do {
		redisReply *rep = rds_cmd(rd, ek.s, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
		if (!rep)
			return store_redis_failed(s);
		if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
		    rep->element[0]->type != REDIS_REPLY_STRING ||
		    rep->element[0]->len >= sizeof cursor ||
		    rep->element[1]->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(rep);
			return store_fail(s, STORE_REDIS_UNAVAILABLE, "unexpected reply to SCAN");
		}
		snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
		const redisReply *keys = rep->element[1];
		/* DEL and the batch's keys: a batch is what one SCAN answered */
		const char **argv = calloc(keys->elements + 1, sizeof *argv);
		if (!argv) {
			freeReplyObject(rep);
			return store_fail(s, STORE_ERROR, "out of memory");
		}
		int argc = 0;
		argv[argc++] = "DEL";
		for (size_t i = 0; i < keys->elements; i++) {
			const redisReply *k = keys->element[i];
			if (k->type == REDIS_REPLY_STRING && strcmp(k->str, ek.s) != 0 &&
			    strcmp(k->str, dk.s) != 0)
				argv[argc++] = k->str;
		}
		enum store_status st = STORE_OK;
		if (argc > 1)
			st = reply_done(s, rds_cmdv(rd, ek.s, argc, argv, NULL));
		free(argv);
		freeReplyObject(rep);
		if (st != STORE_OK)
			return st;
	} while (strcmp(cursor, "0") != 0);
	return STORE_OK;
}

enum store_status store_room_bury(struct store *s, const char *room)
{
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey dk = rkey1(RK_ROOM_DELETED, room);
	st = reply_done(s, rds_cmd(rd, dk.s, "SET %s 1 EX %d", dk.s, JOBSTATE_ROOM_DELETED_TTL_S));
	if (st != STORE_OK)
		return st;
	st = store_room_drop_live(s, room);
	if (st != STORE_OK)
		return st;
	return sweep_room(s, rd, room);
}

enum store_status store_room_events_expire(struct store *s, const char *room, int seconds)
{
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey ek = rkey1(RK_ROOM_EVENTS, room);
	redisReply *rep = rds_cmd(rd, ek.s, "EXPIRE %s %d", ek.s, seconds);
	if (!rep)
		return store_redis_failed(s);
	st = rep->type == REDIS_REPLY_ERROR ? STORE_REDIS_UNAVAILABLE : STORE_OK;
	freeReplyObject(rep);
	if (st != STORE_OK)
		store_fail(s, st, "the event store is unavailable");
	return st;
}

enum store_status store_room_delete(struct store *s, const char *room,
				    store_before_commit before_commit, void *arg)
{
	const char *params[] = {room};
	PGresult *r;
	enum store_status st = store_begin(s);
	if (st != STORE_OK)
		return st;
	/* The DELETE first: its row lock, its cascades and whatever else PostgreSQL checks
	 * have answered before the caller touches Redis, so a database that refuses or is
	 * gone costs the room nothing live. */
	st = store_sql(s, &r, NULL, "DELETE FROM rooms WHERE id = $1", 1, params);
	if (st != STORE_OK) {
		store_rollback(s);
		return st;
	}
	PQclear(r);
	if (before_commit && (st = before_commit(arg)) != STORE_OK) {
		store_rollback(s);
		return st;
	}
	return store_commit(s);
}

enum store_status store_room_visibility(struct store *s, const char *room, char out[16])
{
	const char *params[] = {room};
	PGresult *r;
	enum store_status st =
		store_sql(s, &r, NULL, "SELECT visibility FROM rooms WHERE id = $1", 1, params);
	if (st != STORE_OK)
		return st;
	snprintf(out, 16, "%s", PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return STORE_OK;
}

/* The first `rows` rows of r (id, username, role) as members: *out (caller frees) and *n.
 * Clears r, whatever happens. */
static enum store_status members_taken(struct store *s, PGresult *r, int rows,
				       struct store_member **out, int *n)
{
	struct store_member *v = rows ? calloc((size_t)rows, sizeof *v) : NULL;
	if (rows && !v) {
		PQclear(r);
		return store_fail(s, STORE_ERROR, "out of memory");
	}
	for (int i = 0; i < rows; i++) {
		v[i].id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		snprintf(v[i].username, sizeof v[i].username, "%s", PQgetvalue(r, i, 1));
		snprintf(v[i].role, sizeof v[i].role, "%s", PQgetvalue(r, i, 2));
	}
	PQclear(r);
	*out = v;
	*n = rows;
	return STORE_OK;
}

enum store_status store_room_members(struct store *s, const char *room,
				     struct store_member **out, int *n)
{
	*out = NULL;
	*n = 0;
	const char *params[] = {room};
	PGresult *r;
	enum store_status st = store_sql(s, &r, NULL,
					 "SELECT u.id, u.username, m.role FROM room_members m "
					 "JOIN users u ON u.id = m.user_id WHERE m.room_id = $1 "
					 "ORDER BY (m.role = 'owner') DESC, m.joined_at, u.id",
					 1, params);
	if (st != STORE_OK)
		return st;
	return members_taken(s, r, PQntuples(r), out, n);
}

/* The page's rows are the members whose place in the order (owner first, then by joining
 * time and id) comes after that of `after`; one row more than the page tells whether more
 * follow. A member that left between two pages has no place: the client starts over. */
enum store_status store_room_members_page(struct store *s, const char *room, long long after,
					  int limit, struct store_member **out, int *n, int *more)
{
	*out = NULL;
	*n = 0;
	*more = 0;
	char aid[32], lim[16];
	snprintf(aid, sizeof aid, "%lld", after);
	snprintf(lim, sizeof lim, "%d", limit + 1);
	const char *params[] = {room, after > 0 ? aid : NULL, lim};
	PGresult *r;
	enum store_status st = store_sql(
		s, &r, NULL,
		"WITH a AS (SELECT role <> 'owner' AS o, joined_at, user_id FROM room_members "
		"WHERE room_id = $1 AND user_id = $2::bigint) "
		"SELECT u.id, u.username, m.role, (SELECT count(*) FROM a) FROM room_members m "
		"JOIN users u ON u.id = m.user_id WHERE m.room_id = $1 AND ($2::bigint IS NULL OR "
		"(m.role <> 'owner', m.joined_at, m.user_id) > (SELECT o, joined_at, user_id FROM a)) "
		"ORDER BY (m.role = 'owner') DESC, m.joined_at, u.id LIMIT $3::int",
		3, params);
	if (st != STORE_OK)
		return st;
	int rows = PQntuples(r);
	if (after > 0 && rows == 0) {
		/* no row to say whether `after` was found: ask */
		PQclear(r);
		char role[STORE_ROLE_MAX];
		st = store_member_role(s, room, aid, role);
		if (st != STORE_OK)
			return st;
		return role[0] ? STORE_OK
			       : store_fail(s, STORE_INVALID, "after names no member of this room");
	}
	if (after > 0 && strcmp(PQgetvalue(r, 0, 3), "1") != 0) {
		PQclear(r);
		return store_fail(s, STORE_INVALID, "after names no member of this room");
	}
	if (rows > limit) {
		rows = limit;
		*more = 1;
	}
	return members_taken(s, r, rows, out, n);
}

enum store_status store_member_role(struct store *s, const char *room, const char *member,
				    char role[STORE_ROLE_MAX])
{
	const char *params[] = {room, member};
	PGresult *r;
	enum store_status st = store_sql(
		s, &r, NULL, "SELECT role FROM room_members WHERE room_id = $1 AND user_id = $2", 2,
		params);
	if (st != STORE_OK)
		return st;
	snprintf(role, STORE_ROLE_MAX, "%s", PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return STORE_OK;
}

enum store_status store_member_set_role(struct store *s, const char *room, const char *member,
					const char *role)
{
	const char *params[] = {room, member, role};
	PGresult *r;
	enum store_status st = store_sql(s, &r, NULL,
					 "UPDATE room_members SET role = $3 WHERE room_id = $1 AND "
					 "user_id = $2 AND role <> 'owner' RETURNING user_id",
					 3, params);
	if (st != STORE_OK)
		return st;
	int n = PQntuples(r);
	PQclear(r);
	return n == 1 ? STORE_OK : store_fail(s, STORE_NOT_FOUND, "not a member");
}

/* The owner's removal: the membership goes and the removal is recorded under the room's
 * invite generation. A member leaving: the membership goes, and a viewer's role is recorded
 * (room_departures) so that joining again does not make them editor; an editor's leave
 * clears any such record (store_room_join gives the recorded role back). Either way in one
 * transaction with the room row locked for update first: a join of the same user waits for
 * this to commit and then sees the record (store_room_join). The removal's record and the
 * departure's are never both written for one user: a departure exists only while the user is
 * no member, and a removal only takes a membership. */
enum store_status store_member_remove(struct store *s, const char *room, const char *member,
				      int record, int *removed)
{
	*removed = 0;
	enum store_status st = store_begin(s);
	if (st != STORE_OK)
		return st;
	int exists; /* none: the statements below find no member either */
	st = lock_row(s, "rooms", room, &exists);
	if (st != STORE_OK)
		return st;
	PGresult *r;
	const char *params[] = {room, member};
	/* the departure's insert and delete take disjoint rows (role 'viewer' or not), so the
	 * statement never touches one row twice */
	const char *sql =
		record ? "WITH d AS (DELETE FROM room_members WHERE room_id = $1 AND user_id = $2 "
			 "AND role <> 'owner' RETURNING room_id, user_id) "
			 "INSERT INTO room_removals (room_id, user_id, invite_gen) "
			 "SELECT d.room_id, d.user_id, r.invite_gen FROM d JOIN rooms r ON r.id = d.room_id "
			 "ON CONFLICT (room_id, user_id) DO UPDATE SET invite_gen = EXCLUDED.invite_gen, "
			 "removed_at = now() RETURNING user_id"
		       : "WITH d AS (DELETE FROM room_members WHERE room_id = $1 AND user_id = $2 "
			 "AND role <> 'owner' RETURNING room_id, user_id, role), "
			 "kept AS (INSERT INTO room_departures (room_id, user_id, role) "
			 "SELECT room_id, user_id, role FROM d WHERE role = 'viewer' "
			 "ON CONFLICT (room_id, user_id) DO UPDATE SET role = EXCLUDED.role, "
			 "left_at = now()), "
			 "cleared AS (DELETE FROM room_departures x USING d WHERE x.room_id = d.room_id "
			 "AND x.user_id = d.user_id AND d.role <> 'viewer') "
			 "SELECT user_id FROM d";
	st = store_sql(s, &r, NULL, sql, 2, params);
	if (st != STORE_OK) {
		store_rollback(s);
		return st;
	}
	*removed = PQntuples(r) == 1;
	PQclear(r);
	return store_commit(s);
}

enum store_status store_room_removal_gen(struct store *s, const char *room, long long user,
					 long long *gen)
{
	char uid[32];
	snprintf(uid, sizeof uid, "%lld", user);
	const char *params[] = {room, uid};
	PGresult *r;
	enum store_status st = store_sql(
		s, &r, NULL,
		"SELECT invite_gen FROM room_removals WHERE room_id = $1 AND user_id = $2", 2, params);
	if (st != STORE_OK)
		return st;
	*gen = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
	PQclear(r);
	return STORE_OK;
}

/* The room row is locked first (FOR NO KEY UPDATE) so that the owner's removal, a rotation
 * and the switch (which lock it for update) and other joins are wholly before or wholly
 * after this: the insert's snapshot, taken after the lock, sees a removal or a member that
 * committed while we waited, so a join can never put back a membership a removal just took,
 * and two joins can never both take the room's last place (docs/CONVENTIONS.md §3: the
 * member list is bounded by max_members). The conditions of the API's decision are repeated
 * in SQL. */
enum store_status store_room_join(struct store *s, const char *room, long long user,
				  long long by_code, long max_members, int *joined,
				  char role[STORE_ROLE_MAX])
{
	char uid[32], gen[24], max[24];
	*joined = 0;
	role[0] = '\0';
	snprintf(uid, sizeof uid, "%lld", user);
	snprintf(gen, sizeof gen, "%lld", by_code);
	snprintf(max, sizeof max, "%ld", max_members);
	enum store_status st = store_begin(s);
	if (st != STORE_OK)
		return st;
	int exists;
	st = lock_row(s, "rooms", room, &exists);
	if (st != STORE_OK)
		return st;
	PGresult *r;
	if (!exists) {
		store_rollback(s);
		return store_fail(s, STORE_NOT_FOUND, "no room with id %s", room);
	}
	const char *params[] = {room, uid, by_code >= 0 ? gen : NULL, max};
	/* full: the members as the statement's snapshot has them (without its own insert) are
	 * at the bound, and the user is not among them. acct: the user's row, locked FOR KEY
	 * SHARE (what the foreign key's check takes anyway): while the account is being deleted
	 * (store_user_delete holds it FOR UPDATE) this waits, then finds no row and inserts
	 * nothing, instead of failing the foreign key */
	st = store_sql(s, &r, NULL,
		       "WITH acct AS (SELECT id FROM users WHERE id = $2 FOR KEY SHARE), "
		       "cur AS (SELECT count(*) AS n, count(*) FILTER (WHERE user_id = $2) AS me "
		       "FROM room_members WHERE room_id = $1), "
		       "ins AS (INSERT INTO room_members (room_id, user_id, role) "
		       "SELECT r.id, acct.id, COALESCE((SELECT d.role FROM room_departures d "
		       "WHERE d.room_id = r.id AND d.user_id = $2), 'editor') "
		       "FROM rooms r, cur, acct WHERE r.id = $1 "
		       "AND cur.n < $4::bigint AND CASE "
		       "WHEN $3::bigint IS NULL THEN r.visibility = 'public' AND NOT EXISTS "
		       "(SELECT 1 FROM room_removals x WHERE x.room_id = r.id AND x.user_id = $2) "
		       "ELSE r.invite_enabled AND r.invite_gen = $3 AND NOT EXISTS "
		       "(SELECT 1 FROM room_removals x WHERE x.room_id = r.id AND x.user_id = $2 "
		       "AND x.invite_gen >= r.invite_gen) END "
		       "ON CONFLICT DO NOTHING RETURNING room_id, role), "
		       "del AS (DELETE FROM room_removals WHERE room_id = $1 AND user_id = $2 "
		       "AND EXISTS (SELECT 1 FROM ins)), "
		       "gone AS (DELETE FROM room_departures WHERE room_id = $1 AND user_id = $2 "
		       "AND EXISTS (SELECT 1 FROM ins)) "
		       "SELECT (SELECT count(*) FROM ins), cur.n >= $4::bigint AND cur.me = 0, "
		       "(SELECT role FROM ins), (SELECT count(*) FROM acct) FROM cur",
		       4, params);
	if (st != STORE_OK) {
		store_rollback(s);
		return st;
	}
	if (strcmp(PQgetvalue(r, 0, 3), "0") == 0) {
		PQclear(r);
		store_rollback(s);
		return store_fail(s, STORE_FORBIDDEN, "the account no longer exists");
	}
	int n = strcmp(PQgetvalue(r, 0, 0), "1") == 0;
	int full = !n && strcmp(PQgetvalue(r, 0, 1), "t") == 0;
	if (n)
		snprintf(role, STORE_ROLE_MAX, "%s", PQgetvalue(r, 0, 2));
	PQclear(r);
	if (full) {
		store_rollback(s);
		return store_fail(s, STORE_TOO_LARGE, "this room has reached its limit of %ld members",
				  max_members);
	}
	st = store_commit(s);
	if (st == STORE_OK)
		*joined = n;
	else
		role[0] = '\0';
	return st;
}

enum store_status store_member_cache(struct store *s, const char *room, long long user,
				     const char *role)
{
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK) {
		log_warn("room %s: %s", room, s->msg);
		return st;
	}
	struct rkey mk = rkey1(RK_ROOM_MEMBERS, room);
	redisReply *rep = role ? rds_cmd(rd, mk.s, "HSET %s %lld %s", mk.s, user, role)
			       : rds_cmd(rd, mk.s, "HDEL %s %lld", mk.s, user);
	st = rep && rep->type != REDIS_REPLY_ERROR ? STORE_OK : STORE_REDIS_UNAVAILABLE;
	if (st != STORE_OK)
		log_warn("could not update the member cache of room %s", room);
	if (!rep)
		store_redis_failed(s);
	else
		freeReplyObject(rep);
	if (st != STORE_OK)
		store_fail(s, st, "the event store is unavailable");
	return st;
}

enum store_status store_member_cache_fill(struct store *s, const char *room,
					const struct store_member *m, int n)
{
	if (n <= 0)
		return STORE_OK;
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK) {
		log_warn("room %s: %s", room, s->msg);
		return st;
	}
	struct rkey mk = rkey1(RK_ROOM_MEMBERS, room);
	/* HSET key, then an id and a role per member: one command, whatever the count */
	int argc = 2 + 2 * n;
	const char **argv = calloc((size_t)argc, sizeof *argv);
	char(*ids)[24] = calloc((size_t)n, sizeof *ids);
	if (!argv || !ids) {
		free(argv);
		free(ids);
		return store_fail(s, STORE_ERROR, "out of memory");
	}
	argv[0] = "HSET";
	argv[1] = mk.s;
	for (int i = 0; i < n; i++) {
		snprintf(ids[i], sizeof ids[i], "%lld", m[i].id);
		argv[2 + 2 * i] = ids[i];
		argv[3 + 2 * i] = m[i].role;
	}
	st = reply_done(s, rds_cmdv(rd, mk.s, argc, argv, NULL));
	free(argv);
	free(ids);
	if (st != STORE_OK)
		log_warn("could not write the member cache of room %s", room);
	return st;
}

int store_room_visibility_put(struct store *s, const char *room, const char *vis)
{
	struct rds *rd;
	if (store_redis(s, &rd) != STORE_OK) {
		log_warn("room %s: %s", room, s->msg);
		return -1;
	}
	struct rkey key = rkey1(RK_ROOM_VISIBILITY, room);
	redisReply *rep;
	if (vis) {
		const char *args[] = {key.s, vis};
		rep = rds_script(rd, &rs_room_visibility, 1, 2, args, NULL);
	} else {
		rep = rds_cmd(rd, key.s, "DEL %s", key.s);
	}
	int rc = rep && rep->type == REDIS_REPLY_INTEGER ? (rep->integer > 0) : -1;
	if (rc < 0)
		log_warn("could not update the visibility key of room %s", room);
	if (!rep)
		store_redis_failed(s);
	else
		freeReplyObject(rep);
	return rc;
}

long long store_room_revision(struct store *s, const struct store_room *sr)
{
	const char *room = sr->id;
	struct rds *rd = s->redis; /* looked at, not opened */
	if (!rd)
		return 0;
	struct rkey key = rkey1(RK_ROOM_DOC, room);
	redisReply *rep = rds_cmd(rd, key.s, "HGET %s revision", key.s);
	long long rev = 0;
	int absent = rep && rep->type == REDIS_REPLY_NIL;
	if (rep && rep->type == REDIS_REPLY_STRING)
		rev = strtoll(rep->str, NULL, 10);
	if (!rep)
		store_redis_failed(s);
	else
		freeReplyObject(rep);
	if (!absent)
		return rev;
	if (sr->saved_known)
		return sr->saved_revision > 0 ? sr->saved_revision : 0;
	/* no document in Redis: a room nobody typed in yet (nothing saved: 0), or one the
	 * snapshotter unloaded while idle, whose revision is its newest saved one (two
	 * primary-key lookups) */
	const char *params[] = {room};
	PGresult *r;
	if (store_sql(s, &r, NULL,
		      "SELECT greatest((SELECT max(revision) FROM snapshots WHERE room_id = $1), "
		      "(SELECT max(revision) FROM history_ops WHERE room_id = $1))",
		      1, params) != STORE_OK)
		return 0;
	if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		rev = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return rev;
}

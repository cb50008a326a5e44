/* Rooms: create, list, get, patch, delete, join, and members with their roles. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "rkeys.h"
#include "rscript.h"
#include "events.h"
#include "handlers.h"
#include "lang.h"
#include "log.h"
#include "rds.h"
#include "rnd.h"
#include "valid.h"

#define ROOM_ID_LEN 10
#define INVITE_LEN 16

/* Every room query selects these columns, in this order, for room_to_json(). $2 is the
 * caller's user id (for the role column). */
#define ROOM_BASE_COLS                                                                    \
	"r.id, r.name, r.language, r.visibility, r.owner_id, u.username, r.invite_code, "  \
	"to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "      \
	"r.invite_enabled, r.invite_gen"
#define ROOM_COLS                                                                         \
	ROOM_BASE_COLS ", (SELECT role FROM room_members m WHERE m.room_id = r.id AND m.user_id = $2)"
#define ROOM_FROM " FROM rooms r JOIN users u ON u.id = r.owner_id "

enum {
	C_ID,
	C_NAME,
	C_LANG,
	C_VIS,
	C_OWNER_ID,
	C_OWNER_NAME,
	C_INVITE,
	C_CREATED,
	C_INVITE_ON,
	C_INVITE_GEN,
	C_ROLE
};

static const char *const visibilities[] = {"private", "public", NULL};
static const char *const member_roles[] = {"editor", "viewer", NULL};

static int check_language(const char *s, const char **why)
{
	if (!lang_canonical(s)) {
		*why = "is not a known language (c, c++, python, javascript, typescript, bash, "
		       "java, go, rust, plaintext, or an alias such as cpp, py, js, sh)";
		return -1;
	}
	return 0;
}

static const struct valid_field create_fields[] = {
	{"name", VALID_STRING, VALID_REQUIRED | VALID_SINGLE_LINE, 1, 100, NULL, NULL},
	{"language", VALID_STRING, VALID_SINGLE_LINE, 1, 32, NULL, check_language},
	{"visibility", VALID_ENUM, 0, 0, 0, visibilities, NULL},
};

static const struct valid_field patch_fields[] = {
	{"name", VALID_STRING, VALID_SINGLE_LINE, 1, 100, NULL, NULL},
	{"language", VALID_STRING, VALID_SINGLE_LINE, 1, 32, NULL, check_language},
	{"visibility", VALID_ENUM, 0, 0, 0, visibilities, NULL},
};

static const struct valid_field join_fields[] = {
	{"invite", VALID_STRING, VALID_SINGLE_LINE, 0, 128, NULL, NULL},
};

static const struct valid_field role_fields[] = {
	{"role", VALID_ENUM, VALID_REQUIRED, 0, 0, member_roles, NULL},
};

/* The store's Redis connection, opened when there is none yet (a fresh FastCGI process,
 * every CGI run). NULL, logged, when Redis is unreachable: the room itself lives in
 * PostgreSQL, so callers carry on without the cache, events and revisions. */
static redisContext *room_redis(struct api_ctx *c)
{
	redisContext *rd;
	if (store_redis(c->store, &rd) != STORE_OK) {
		log_warn("room: %s", c->store->msg);
		return NULL;
	}
	return rd;
}

/* A statement through the store; NULL with its failure answered (api_fail's table). */
static PGresult *room_sql(struct api_ctx *c, const char *sql, int n, const char *const *params)
{
	PGresult *r;
	enum store_status st = store_sql(c->store, &r, NULL, sql, n, params);
	if (st == STORE_OK)
		return r;
	api_fail(c, st, NULL, NULL);
	return NULL;
}

/* Uses the connection as it is, never opens one: a handler calls room_redis() once before
 * answering rooms, so a list of rooms costs at most one connection attempt. */
static long long room_revision(struct api_ctx *c, const char *room_id)
{
	redisContext *rd = c->store->redis; /* looked at, not opened */
	if (!rd || rd->err)
		return 0;
	struct rkey key = rkey1(RK_ROOM_DOC, room_id);
	redisReply *rep = redisCommand(rd, "HGET %s revision", key.s);
	long long rev = 0;
	if (rep && rep->type == REDIS_REPLY_STRING)
		rev = strtoll(rep->str, NULL, 10);
	if (!rep)
		store_redis_failed(c->store);
	if (rep)
		freeReplyObject(rep);
	return rev;
}

/* Caller owns the result (cJSON_Delete). The owner also gets the invite: the code, or null
 * while the invite is switched off (the stored code then admits no one), and
 * invite_enabled. */
static cJSON *room_to_json(struct api_ctx *c, PGresult *r, int row)
{
	cJSON *o = cJSON_CreateObject();
	const char *id = PQgetvalue(r, row, C_ID);
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "name", PQgetvalue(r, row, C_NAME));
	cJSON_AddStringToObject(o, "language", PQgetvalue(r, row, C_LANG));
	cJSON_AddStringToObject(o, "visibility", PQgetvalue(r, row, C_VIS));
	cJSON *own = cJSON_AddObjectToObject(o, "owner");
	cJSON_AddNumberToObject(own, "id", strtod(PQgetvalue(r, row, C_OWNER_ID), NULL));
	cJSON_AddStringToObject(own, "username", PQgetvalue(r, row, C_OWNER_NAME));
	cJSON_AddNumberToObject(o, "revision", (double)room_revision(c, id));
	cJSON_AddStringToObject(o, "created_at", PQgetvalue(r, row, C_CREATED));
	const char *role = PQgetisnull(r, row, C_ROLE) ? NULL : PQgetvalue(r, row, C_ROLE);
	if (role && strcmp(role, "owner") == 0) {
		int on = strcmp(PQgetvalue(r, row, C_INVITE_ON), "t") == 0;
		if (on)
			cJSON_AddStringToObject(o, "invite", PQgetvalue(r, row, C_INVITE));
		else
			cJSON_AddNullToObject(o, "invite");
		cJSON_AddBoolToObject(o, "invite_enabled", on);
	}
	return o;
}

/* A copy of the owner's {room} for a room event, which every member sees: without the
 * invite. Caller owns the result. */
static cJSON *public_room_json(const cJSON *room)
{
	cJSON *pub = cJSON_Duplicate(room, 1);
	cJSON_DeleteItemFromObject(pub, "invite");
	cJSON_DeleteItemFromObject(pub, "invite_enabled");
	return pub;
}

static void add_role(cJSON *o, PGresult *r, int row)
{
	if (PQgetisnull(r, row, C_ROLE))
		cJSON_AddNullToObject(o, "role");
	else
		cJSON_AddStringToObject(o, "role", PQgetvalue(r, row, C_ROLE));
}

/* Loads the room named by c->params[0] with the caller's role. NULL with the answer given
 * when it does not exist or the database failed. Caller PQclear()s. */
static PGresult *load_room(struct api_ctx *c)
{
	char uid[32];
	snprintf(uid, sizeof uid, "%lld", c->user.user_id);
	const char *params[] = {c->params[0], uid};
	PGresult *r = room_sql(c, "SELECT " ROOM_COLS ROOM_FROM "WHERE r.id = $1", 2, params);
	if (!r)
		return NULL;
	if (PQntuples(r) != 1) {
		PQclear(r);
		api_error(c, 404, "room_not_found", "no room with id %s", c->params[0]);
		return NULL;
	}
	return r;
}

/* An UPDATE of the room c->params[0] ($1) that answers the room as load_room() reads it
 * (ROOM_COLS): `set` is the SET list; updated_at is set too. */
#define ROOM_UPDATE(set)                                                                   \
	"WITH upd AS (UPDATE rooms SET " set ", updated_at = now() WHERE id = $1 RETURNING *) " \
	"SELECT " ROOM_COLS " FROM upd r JOIN users u ON u.id = r.owner_id"

/* Runs a ROOM_UPDATE statement: the room's row (caller PQclear()s), with the Redis
 * connection up for the revision and the event that follow; NULL answered (404 when the
 * room is gone, or the database's error). */
static PGresult *updated_room(struct api_ctx *c, const char *sql, int n, const char *const *params)
{
	PGresult *r = room_sql(c, sql, n, params);
	if (!r)
		return NULL;
	if (PQntuples(r) != 1) {
		PQclear(r);
		api_error(c, 404, "room_not_found", "no room with id %s", c->params[0]);
		return NULL;
	}
	room_redis(c); /* for the revision and the event */
	return r;
}

static const char *role_of(PGresult *r)
{
	return PQgetisnull(r, 0, C_ROLE) ? NULL : PQgetvalue(r, 0, C_ROLE);
}

/* The members hash lets the broker authorise bearer tokens without PostgreSQL; a failure
 * here is logged, not fatal: the room itself is in PostgreSQL. */
static int cache_member(struct api_ctx *c, const char *room, long long uid, const char *role)
{
	redisContext *rd = room_redis(c);
	if (!rd)
		return -1;
	struct rkey mk = rkey1(RK_ROOM_MEMBERS, room);
	redisReply *rep = role ? redisCommand(rd, "HSET %s %lld %s", mk.s, uid, role)
			       : redisCommand(rd, "HDEL %s %lld", mk.s, uid);
	int rc = rep && rep->type != REDIS_REPLY_ERROR ? 0 : -1;
	if (rc < 0)
		log_warn("could not update the member cache of room %s", room);
	if (!rep)
		store_redis_failed(c->store);
	if (rep)
		freeReplyObject(rep);
	return rc;
}

/* A change that takes rights away is only done once the cache the document endpoints and
 * the broker trust agrees: otherwise 503, and the client's retry (which repeats the
 * database change harmlessly) updates the cache. */
static int revoke_failed(struct api_ctx *c)
{
	api_error(c, 503, "redis_unavailable",
		  "the change is saved but not yet in force everywhere; send it again");
	return -1;
}

/* Takes data. 0, or -1 when the event could not be sent (logged). */
static int emit_room_event(struct api_ctx *c, const char *room, cJSON *data)
{
	char *s = cJSON_PrintUnformatted(data);
	cJSON_Delete(data);
	redisContext *rd = s ? room_redis(c) : NULL;
	int rc = rd ? 0 : -1;
	if (rd && events_emit(rd, room, "room", s, NULL, 0) < 0) {
		log_warn("could not emit a room event for %s", room);
		store_redis_failed(c->store);
		rc = -1;
	}
	free(s);
	return rc;
}

/* The `room` event that makes every broker re-check the rights of the room's open streams
 * (reason "members", or "access" for a correction nobody else needs to hear of). Open
 * streams keep their rights until it is heard, so a change that takes rights away and
 * cannot send it answers 503 (revoke_failed): the retry sends it. 0 or -1. */
static int emit_rights_event(struct api_ctx *c, const char *room, const char *reason)
{
	cJSON *ev = cJSON_CreateObject();
	if (!ev || !cJSON_AddStringToObject(ev, "reason", reason)) {
		cJSON_Delete(ev);
		return -1;
	}
	return emit_room_event(c, room, ev);
}


/* 1 written, 0 already so, -1 Redis failed (logged). vis NULL deletes the key. */
static int visibility_put(struct api_ctx *c, const char *room, const char *vis)
{
	redisContext *rd = room_redis(c);
	if (!rd)
		return -1;
	struct rkey key = rkey1(RK_ROOM_VISIBILITY, room);
	redisReply *rep;
	if (vis) {
		const char *args[] = {key.s, vis};
		rep = rds_script(rd, &rs_room_visibility, 1, 2, args, NULL);
	} else {
		rep = redisCommand(rd, "DEL %s", key.s);
	}
	int rc = rep && rep->type == REDIS_REPLY_INTEGER ? (rep->integer > 0) : -1;
	if (rc < 0)
		log_warn("could not update the visibility key of room %s", room);
	if (!rep)
		store_redis_failed(c->store);
	if (rep)
		freeReplyObject(rep);
	return rc;
}

int room_visibility_sync(struct api_ctx *c, const char *room, const char *vis)
{
	/* Two writers that read PostgreSQL at different moments (a ticket and a PATCH) could
	 * otherwise leave the older value in Redis. Whoever writes reads PostgreSQL again
	 * after its write and corrects the key: the last write is then followed by a read that
	 * saw the last change. Bounded: a room whose visibility flips on every read stays as
	 * the last read left it, and the next ticket or PATCH repairs it. */
	char now[16];
	int given = vis != NULL, closed = 0;
	for (int attempt = 0; attempt < 4; attempt++) {
		if (!vis) {
			const char *params[] = {room};
			PGresult *r = room_sql(c, "SELECT visibility FROM rooms WHERE id = $1", 1,
					      params);
			if (!r)
				return -1;
			if (PQntuples(r) == 1)
				snprintf(now, sizeof now, "%s", PQgetvalue(r, 0, 0));
			else
				now[0] = '\0'; /* deleted: the key goes with the room */
			PQclear(r);
			vis = now;
		}
		int rc = visibility_put(c, room, vis[0] ? vis : NULL);
		/* A write of "private" that no PATCH announces (a correction of what an older
		 * reader wrote, or the first write for a room older than the key): the broker may
		 * have judged open streams by the value this replaces, so it must look again. */
		if (rc == 1 && strcmp(vis, "private") == 0 && (attempt > 0 || !given))
			closed = 1;
		if (rc <= 0 || !vis[0]) {
			if (rc < 0)
				return -1;
			break;
		}
		vis = NULL; /* written: read again */
	}
	if (closed && emit_rights_event(c, room, "access") < 0)
		return -1;
	return 0;
}

void h_room_create(struct api_ctx *c)
{
	struct valid_value v[3];
	if (api_require_user(c) < 0 || api_body_fields(c, 0, create_fields, 3, v) < 0)
		return;
	const char *lang = v[1].present ? lang_canonical(v[1].s) : "python";
	const char *vis = v[2].present ? v[2].s : "private";
	char id[ROOM_ID_LEN + 1], invite[INVITE_LEN + 1], uid[32];
	snprintf(uid, sizeof uid, "%lld", c->user.user_id);
	PGresult *r = NULL;
	for (int attempt = 0; attempt < 3 && !r; attempt++) {
		if (rnd_id(id, ROOM_ID_LEN) < 0 || rnd_id(invite, INVITE_LEN) < 0) {
			api_error(c, 500, "internal", "no randomness");
			return;
		}
		const char *params[] = {id, uid, v[0].s, lang, vis, invite};
		enum store_status st = store_sql(c->store, &r, "23505",
			    "WITH r AS (INSERT INTO rooms (id, owner_id, name, language, visibility, "
			    "invite_code) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *), "
			    "m AS (INSERT INTO room_members (room_id, user_id, role) "
			    "SELECT id, owner_id, 'owner' FROM r) "
			    "SELECT " ROOM_BASE_COLS ", 'owner' FROM r JOIN users u ON u.id = r.owner_id",
			    6, params);
		if (st != STORE_OK && st != STORE_CONFLICT) { /* 23505: the id is taken */
			api_fail(c, st, NULL, NULL);
			return;
		}
	}
	if (!r) {
		api_error(c, 500, "internal", "could not allocate a room id");
		return;
	}
	if (PQntuples(r) != 1) { /* the user row is gone: the token outlived its account */
		PQclear(r);
		api_error(c, 401, "invalid_token", "this account no longer exists");
		return;
	}
	cache_member(c, id, c->user.user_id, "owner");
	/* missing means private, so a failure only keeps strangers of a public room out until
	 * the first stream ticket writes it (room_visibility_sync) */
	visibility_put(c, id, vis);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "room", room_to_json(c, r, 0));
	cJSON_AddStringToObject(o, "role", "owner");
	PQclear(r);
	char loc[96];
	snprintf(loc, sizeof loc, "/api/rooms/%s", id);
	http_resp_header(c->resp, "Location", loc);
	api_json(c, 201, o);
}

void h_room_list(struct api_ctx *c)
{
	if (api_require_user(c) < 0)
		return;
	char uid[32];
	snprintf(uid, sizeof uid, "%lld", c->user.user_id);
	const char *params[] = {uid, uid};
	/* $1 and $2 are the same value: ROOM_COLS names the caller $2 */
	PGresult *r = room_sql(c,
			      "SELECT " ROOM_COLS ROOM_FROM
			      "JOIN room_members me ON me.room_id = r.id AND me.user_id = $1 "
			      "ORDER BY r.created_at DESC, r.id LIMIT 500",
			      2, params);
	if (!r)
		return;
	room_redis(c); /* for the revisions */
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(o, "rooms");
	for (int i = 0; i < PQntuples(r); i++) {
		cJSON *room = room_to_json(c, r, i);
		add_role(room, r, i);
		cJSON_AddItemToArray(arr, room);
	}
	PQclear(r);
	api_json(c, 200, o);
}

static cJSON *members_json(struct api_ctx *c, const char *room)
{
	const char *params[] = {room};
	PGresult *r = room_sql(c,
			      "SELECT u.id, u.username, m.role FROM room_members m "
			      "JOIN users u ON u.id = m.user_id WHERE m.room_id = $1 "
			      "ORDER BY (m.role = 'owner') DESC, m.joined_at, u.id",
			      1, params);
	if (!r)
		return NULL;
	cJSON *arr = cJSON_CreateArray();
	for (int i = 0; i < PQntuples(r); i++) {
		cJSON *m = cJSON_CreateObject();
		cJSON *u = cJSON_AddObjectToObject(m, "user");
		cJSON_AddNumberToObject(u, "id", strtod(PQgetvalue(r, i, 0), NULL));
		cJSON_AddStringToObject(u, "username", PQgetvalue(r, i, 1));
		cJSON_AddStringToObject(m, "role", PQgetvalue(r, i, 2));
		cJSON_AddItemToArray(arr, m);
	}
	PQclear(r);
	return arr;
}

/* GET refreshes the caller's entry in the member cache, which the broker and the document
 * endpoints trust. When the owner removed the caller or changed their role between our read
 * and that write, the write put back what was just taken away. members was read after the
 * write, so it has the truth: correct the entry when it differs from what was written. */
static void recheck_member(struct api_ctx *c, const cJSON *members, const char *written)
{
	const char *now = NULL;
	const cJSON *m;
	cJSON_ArrayForEach(m, members)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(m, "user"), "id");
		if (cJSON_IsNumber(id) && (long long)id->valuedouble == c->user.user_id)
			now = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
	}
	/* the broker may have re-checked streams by the entry this corrects */
	if ((!now || strcmp(now, written) != 0) &&
	    cache_member(c, c->params[0], c->user.user_id, now) == 0)
		emit_rights_event(c, c->params[0], "access");
}

static void refuse_stranger(struct api_ctx *c)
{
	api_error(c, 403, "not_a_member",
		  "you are not a member of this room; join it (private rooms need the invite link)");
}

void h_room_get(struct api_ctx *c)
{
	if (api_require_user(c) < 0)
		return;
	PGresult *r = load_room(c);
	if (!r)
		return;
	const char *role = role_of(r);
	if (!role && strcmp(PQgetvalue(r, 0, C_VIS), "public") != 0) {
		PQclear(r);
		refuse_stranger(c);
		return;
	}
	char cached[16] = "";
	if (role) {
		snprintf(cached, sizeof cached, "%s", role);
		cache_member(c, c->params[0], c->user.user_id, cached);
	} else {
		room_redis(c); /* for the revision */
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "room", room_to_json(c, r, 0));
	add_role(o, r, 0);
	PQclear(r);
	cJSON *members = members_json(c, c->params[0]);
	if (!members) {
		cJSON_Delete(o);
		return;
	}
	if (cached[0])
		recheck_member(c, members, cached);
	cJSON_AddItemToObject(o, "members", members);
	api_json(c, 200, o);
}

static int require_owner(struct api_ctx *c, PGresult *r)
{
	const char *role = role_of(r);
	if (role && strcmp(role, "owner") == 0)
		return 0;
	if (!role && strcmp(PQgetvalue(r, 0, C_VIS), "public") != 0)
		refuse_stranger(c);
	else
		api_error(c, 403, "forbidden", "only the room's owner may do this");
	return -1;
}

void h_room_patch(struct api_ctx *c)
{
	struct valid_value v[3];
	if (api_require_user(c) < 0 || api_body_fields(c, 0, patch_fields, 3, v) < 0)
		return;
	PGresult *r = load_room(c);
	if (!r)
		return;
	if (require_owner(c, r) < 0) {
		PQclear(r);
		return;
	}
	PQclear(r);
	char uid[32];
	snprintf(uid, sizeof uid, "%lld", c->user.user_id);
	const char *params[] = {c->params[0], uid, v[0].present ? v[0].s : NULL,
				v[1].present ? lang_canonical(v[1].s) : NULL,
				v[2].present ? v[2].s : NULL};
	r = updated_room(c,
			 ROOM_UPDATE("name = coalesce($3, name), language = coalesce($4, language), "
				     "visibility = coalesce($5, visibility)"),
			 5, params);
	if (!r)
		return;
	char vis[16];
	snprintf(vis, sizeof vis, "%s", PQgetvalue(r, 0, C_VIS));
	cJSON *room = room_to_json(c, r, 0);
	PQclear(r);
	/* The broker lets strangers stream a room the key calls public, and re-checks on the
	 * event below: the key changes first. Closing a room that Redis does not hear of would
	 * leave strangers reading, so that is 503 (the retry writes the key); opening one is
	 * not urgent (the next stream ticket writes the key), and the answer stays 200. */
	if (room_visibility_sync(c, c->params[0], vis) < 0 && strcmp(vis, "private") == 0) {
		cJSON_Delete(room);
		revoke_failed(c);
		return;
	}
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "reason", "updated");
	cJSON_AddItemToObject(ev, "room", public_room_json(room));
	/* strangers' open streams end when the brokers hear it: a room made private whose
	 * event did not go out answers 503, and the retry sends it */
	if (emit_room_event(c, c->params[0], ev) < 0 && strcmp(vis, "private") == 0) {
		cJSON_Delete(room);
		revoke_failed(c);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "room", room);
	api_json(c, 200, o);
}

void h_room_delete(struct api_ctx *c)
{
	if (api_require_user(c) < 0)
		return;
	PGresult *r = load_room(c);
	if (!r)
		return;
	if (require_owner(c, r) < 0) {
		PQclear(r);
		return;
	}
	PQclear(r);
	/* The live state goes first: while the members cache exists, the broker and the
	 * document endpoints still admit members; if Redis cannot be reached, nothing is
	 * deleted and the owner can send the request again. */
	redisContext *rd = room_redis(c);
	struct rkey mk = rkey1(RK_ROOM_MEMBERS, c->params[0]), dk = rkey1(RK_ROOM_DOC, c->params[0]),
		    ok = rkey1(RK_ROOM_OPS, c->params[0]),
		    vk = rkey1(RK_ROOM_VISIBILITY, c->params[0]);
	redisReply *rep = rd ? redisCommand(rd, "DEL %s %s %s %s", mk.s, dk.s, ok.s, vk.s) : NULL;
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		if (rep)
			freeReplyObject(rep);
		else if (rd)
			store_redis_failed(c->store);
		api_error(c, 503, "redis_unavailable", "the room cannot be deleted right now; try again");
		return;
	}
	freeReplyObject(rep);
	const char *params[] = {c->params[0]};
	r = room_sql(c, "DELETE FROM rooms WHERE id = $1", 1, params);
	if (!r)
		return;
	PQclear(r);
	/* a stream ticket between the DEL above and the row's deletion may have written the
	 * visibility again; a room id is never reused, so this is tidiness, not safety */
	visibility_put(c, c->params[0], NULL);
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "reason", "deleted");
	cJSON_AddStringToObject(ev, "id", c->params[0]);
	emit_room_event(c, c->params[0], ev);
	api_no_content(c);
}

/* Transactions on the store's connection (store_begin). A failed statement inside one
 * leaves it aborted: tx_abort() ends it so the next request starts clean. */
static int tx_begin(struct api_ctx *c)
{
	enum store_status st = store_begin(c->store);
	if (st == STORE_OK)
		return 0;
	api_fail(c, st, NULL, NULL);
	return -1;
}

static void tx_abort(struct api_ctx *c)
{
	store_rollback(c->store);
}

static int tx_commit(struct api_ctx *c)
{
	enum store_status st = store_commit(c->store);
	if (st == STORE_OK)
		return 0;
	api_fail(c, st, NULL, NULL);
	return -1;
}

/* The removal record of the caller in the room: the invite generation it was made under,
 * -1 when there is none, -2 answered (database error). */
static long long removal_gen(struct api_ctx *c)
{
	char uid[32];
	snprintf(uid, sizeof uid, "%lld", c->user.user_id);
	const char *params[] = {c->params[0], uid};
	PGresult *r = room_sql(c,
			      "SELECT invite_gen FROM room_removals WHERE room_id = $1 AND user_id = $2",
			      2, params);
	if (!r)
		return -2;
	long long gen = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
	PQclear(r);
	return gen;
}

/* Why a stranger may not join, answered; 0 when they may. by_code receives the invite
 * generation the code was checked against, or -1 when the public room admits them without
 * one. The decision is made again in SQL (join_insert); this one picks the answer. */
static int join_decide(struct api_ctx *c, PGresult *r, const struct valid_value *invite,
		       long long removed, long long *by_code)
{
	int public_room = strcmp(PQgetvalue(r, 0, C_VIS), "public") == 0;
	int enabled = strcmp(PQgetvalue(r, 0, C_INVITE_ON), "t") == 0;
	long long gen = strtoll(PQgetvalue(r, 0, C_INVITE_GEN), NULL, 10);
	const char *code = PQgetvalue(r, 0, C_INVITE);
	int code_ok = invite->present && enabled && invite->len == strlen(code) &&
		      CRYPTO_memcmp(invite->s, code, invite->len) == 0;
	/* a removal holds until the owner issues a code after it, and then only that code
	 * lets the person back, public room or not */
	int blocked = removed >= 0 && removed >= gen;
	if (public_room && removed < 0) {
		*by_code = -1;
		return 0;
	}
	if (code_ok && !blocked) {
		*by_code = gen;
		return 0;
	}
	if (blocked || (removed >= 0 && !invite->present))
		api_error(c, 403, "removed",
			  "the owner removed you from this room; ask for a new invite link");
	else if (invite->present && !enabled)
		api_error(c, 403, "invite_disabled",
			  "the owner has switched this room's invite link off; ask for a new one");
	else if (invite->present)
		api_error(c, 403, "invalid_invite", "the invite code is not valid");
	else
		api_error(c, 403, "invite_required", "this room is private: join with its invite link");
	return -1;
}

/* Makes the caller an editor if the room still admits them: 1 joined, 0 not (the room
 * changed since join_decide, or they became a member meanwhile), -1 answered.
 * The room row is locked first (FOR SHARE) so that the owner's removal, a rotation and the
 * switch (which lock it for update) are wholly before or wholly after this: the insert's
 * snapshot, taken after the lock, sees a removal that committed while we waited, and a
 * join can never put back a membership a removal just took. */
static int join_insert(struct api_ctx *c, long long by_code)
{
	char uid[32], gen[24];
	snprintf(uid, sizeof uid, "%lld", c->user.user_id);
	snprintf(gen, sizeof gen, "%lld", by_code);
	if (tx_begin(c) < 0)
		return -1;
	const char *lock_params[] = {c->params[0]};
	PGresult *r = room_sql(c, "SELECT 1 FROM rooms WHERE id = $1 FOR SHARE", 1, lock_params);
	if (!r) {
		tx_abort(c);
		return -1;
	}
	int exists = PQntuples(r) == 1;
	PQclear(r);
	if (!exists) {
		tx_abort(c);
		api_error(c, 404, "room_not_found", "no room with id %s", c->params[0]);
		return -1;
	}
	const char *params[] = {c->params[0], uid, by_code >= 0 ? gen : NULL};
	r = room_sql(c,
		    "WITH ins AS (INSERT INTO room_members (room_id, user_id, role) "
		    "SELECT r.id, $2, 'editor' FROM rooms r WHERE r.id = $1 AND CASE "
		    "WHEN $3::bigint IS NULL THEN r.visibility = 'public' AND NOT EXISTS "
		    "(SELECT 1 FROM room_removals x WHERE x.room_id = r.id AND x.user_id = $2) "
		    "ELSE r.invite_enabled AND r.invite_gen = $3 AND NOT EXISTS "
		    "(SELECT 1 FROM room_removals x WHERE x.room_id = r.id AND x.user_id = $2 "
		    "AND x.invite_gen >= r.invite_gen) END "
		    "ON CONFLICT DO NOTHING RETURNING room_id), "
		    "del AS (DELETE FROM room_removals WHERE room_id = $1 AND user_id = $2 "
		    "AND EXISTS (SELECT 1 FROM ins)) "
		    "SELECT count(*) FROM ins",
		    3, params);
	if (!r) {
		tx_abort(c);
		return -1;
	}
	int joined = strcmp(PQgetvalue(r, 0, 0), "1") == 0;
	PQclear(r);
	if (tx_commit(c) < 0)
		return -1;
	return joined;
}

void h_room_join(struct api_ctx *c)
{
	struct valid_value v[1];
	if (api_require_user(c) < 0 || api_body_fields(c, 1, join_fields, 1, v) < 0)
		return;
	/* a second round only when the room changed between the decision and the insert
	 * (the owner rotated or switched the invite, or removed the caller): the fresh row
	 * then gives the right answer */
	for (int attempt = 0; attempt < 3; attempt++) {
		PGresult *r = load_room(c);
		if (!r)
			return;
		if (role_of(r)) { /* a member already: joining again changes nothing */
			room_redis(c); /* for the revision */
			cJSON *o = cJSON_CreateObject();
			cJSON_AddItemToObject(o, "room", room_to_json(c, r, 0));
			add_role(o, r, 0);
			PQclear(r);
			api_json(c, 200, o);
			return;
		}
		long long removed = removal_gen(c), by_code = -1;
		if (removed < -1 || join_decide(c, r, &v[0], removed, &by_code) < 0) {
			PQclear(r);
			return;
		}
		PQclear(r);
		int joined = join_insert(c, by_code);
		if (joined < 0)
			return;
		if (!joined)
			continue;
		/* The owner may remove (or demote) the new member between the insert and this
		 * cache write, which would then put the old role back: the room is read after
		 * the write, and the entry corrected when the role differs (as GET does). */
		cache_member(c, c->params[0], c->user.user_id, "editor");
		r = load_room(c);
		if (!r)
			return;
		const char *role = role_of(r);
		if (!role || strcmp(role, "editor") != 0)
			cache_member(c, c->params[0], c->user.user_id, role);
		cJSON *ev = cJSON_CreateObject();
		cJSON_AddStringToObject(ev, "reason", "members");
		emit_room_event(c, c->params[0], ev);
		if (!role) { /* removed again before we could answer */
			PQclear(r);
			api_error(c, 403, "removed",
				  "the owner removed you from this room; ask for a new invite link");
			return;
		}
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "room", room_to_json(c, r, 0));
		add_role(o, r, 0);
		PQclear(r);
		api_json(c, 200, o);
		return;
	}
	api_error(c, 409, "room_changed", "the room's invite changed while you joined; try again");
}

void h_room_members(struct api_ctx *c)
{
	if (api_require_user(c) < 0)
		return;
	PGresult *r = load_room(c);
	if (!r)
		return;
	int allowed = role_of(r) || strcmp(PQgetvalue(r, 0, C_VIS), "public") == 0;
	PQclear(r);
	if (!allowed) {
		refuse_stranger(c);
		return;
	}
	cJSON *members = members_json(c, c->params[0]);
	if (!members)
		return;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "members", members);
	api_json(c, 200, o);
}

/* Target user id from the second path segment; -1 answered 404 when not a number or out of
 * the range of a bigint (the segment goes to PostgreSQL as it is). */
static long long target_user(struct api_ctx *c)
{
	char *end;
	errno = 0;
	long long id = strtoll(c->params[1], &end, 10);
	if (errno || *end || id <= 0) {
		api_error(c, 404, "member_not_found", "no member %s in this room", c->params[1]);
		return -1;
	}
	return id;
}

void h_member_put(struct api_ctx *c)
{
	struct valid_value v[1];
	if (api_require_user(c) < 0 || api_body_fields(c, 0, role_fields, 1, v) < 0)
		return;
	long long target = target_user(c);
	if (target < 0)
		return;
	PGresult *r = load_room(c);
	if (!r)
		return;
	if (require_owner(c, r) < 0) {
		PQclear(r);
		return;
	}
	PQclear(r);
	if (target == c->user.user_id) {
		api_error(c, 400, "invalid_request", "the owner's own role cannot be changed");
		return;
	}
	const char *params[] = {c->params[0], c->params[1], v[0].s};
	r = room_sql(c,
		    "UPDATE room_members SET role = $3 WHERE room_id = $1 AND user_id = $2 "
		    "AND role <> 'owner' RETURNING user_id",
		    3, params);
	if (!r)
		return;
	int n = PQntuples(r);
	PQclear(r);
	if (n != 1) {
		api_error(c, 404, "member_not_found", "user %s is not a member of this room",
			  c->params[1]);
		return;
	}
	if (cache_member(c, c->params[0], target, v[0].s) < 0) {
		revoke_failed(c);
		return;
	}
	/* A removal committed after our UPDATE may have cleared the entry before the write
	 * above put the role back: read the row again and correct (before the event, which
	 * makes the brokers look). */
	const char *again[] = {c->params[0], c->params[1]};
	r = room_sql(c, "SELECT role FROM room_members WHERE room_id = $1 AND user_id = $2", 2,
		    again);
	if (!r)
		return;
	const char *now = PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : NULL;
	int fixed = (now && strcmp(now, v[0].s) == 0) || cache_member(c, c->params[0], target, now) == 0;
	PQclear(r);
	if (!fixed || emit_rights_event(c, c->params[0], "members") < 0) {
		revoke_failed(c);
		return;
	}
	cJSON *members = members_json(c, c->params[0]);
	if (!members)
		return;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "members", members);
	api_json(c, 200, o);
}

/* A member leaving: nothing is recorded, they may join again. Rows deleted (0 or 1), or
 * -1 answered. */
static int leave_room(struct api_ctx *c)
{
	const char *params[] = {c->params[0], c->params[1]};
	PGresult *r = room_sql(c,
			      "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2 "
			      "AND role <> 'owner' RETURNING user_id",
			      2, params);
	if (!r)
		return -1;
	int n = PQntuples(r);
	PQclear(r);
	return n;
}

/* The owner removing a member: the membership goes and a removal record (under the
 * room's current invite generation) comes in one transaction, so that no old code lets
 * them back (join_decide). The room row is locked for update first: a join of the same
 * user waits for this to commit and then sees the record (join_insert). Rows deleted (0
 * or 1), or -1 answered. */
static int remove_member(struct api_ctx *c)
{
	if (tx_begin(c) < 0)
		return -1;
	const char *lock_params[] = {c->params[0]};
	PGresult *r = room_sql(c, "SELECT 1 FROM rooms WHERE id = $1 FOR NO KEY UPDATE", 1,
			      lock_params);
	if (!r) {
		tx_abort(c);
		return -1;
	}
	PQclear(r);
	const char *params[] = {c->params[0], c->params[1]};
	r = room_sql(c,
		    "WITH d AS (DELETE FROM room_members WHERE room_id = $1 AND user_id = $2 "
		    "AND role <> 'owner' RETURNING room_id, user_id) "
		    "INSERT INTO room_removals (room_id, user_id, invite_gen) "
		    "SELECT d.room_id, d.user_id, r.invite_gen FROM d JOIN rooms r ON r.id = d.room_id "
		    "ON CONFLICT (room_id, user_id) DO UPDATE SET invite_gen = EXCLUDED.invite_gen, "
		    "removed_at = now() RETURNING user_id",
		    2, params);
	if (!r) {
		tx_abort(c);
		return -1;
	}
	int n = PQntuples(r);
	PQclear(r);
	if (tx_commit(c) < 0)
		return -1;
	return n;
}

void h_member_delete(struct api_ctx *c)
{
	if (api_require_user(c) < 0)
		return;
	long long target = target_user(c);
	if (target < 0)
		return;
	PGresult *r = load_room(c);
	if (!r)
		return;
	const char *role = role_of(r);
	int owner = role && strcmp(role, "owner") == 0;
	int self = target == c->user.user_id;
	if (!role || (!owner && !self)) {
		if (role)
			api_error(c, 403, "forbidden", "only the owner may remove other members");
		else
			refuse_stranger(c);
		PQclear(r);
		return;
	}
	PQclear(r);
	if (owner && self) {
		api_error(c, 400, "invalid_request",
			  "the owner cannot leave the room; delete it instead");
		return;
	}
	int n = owner ? remove_member(c) : leave_room(c);
	if (n < 0)
		return;
	/* Whatever the answer, the target is no member now (never the owner: refused above).
	 * Clearing the cache on 404 too lets a retry heal an entry a removal could not clear
	 * (Redis down at the time), which would otherwise keep the room open to them. */
	if (cache_member(c, c->params[0], target, NULL) < 0) {
		revoke_failed(c);
		return;
	}
	/* On the 404 of a retry too: the first attempt may have failed before its event, and
	 * the target's open streams end only when the brokers hear one. */
	if (emit_rights_event(c, c->params[0], "members") < 0) {
		revoke_failed(c);
		return;
	}
	if (n != 1) {
		api_error(c, 404, "member_not_found", "user %s is not a member of this room",
			  c->params[1]);
		return;
	}
	api_no_content(c);
}

/* The owner's invite link: POST issues a new code (the old one stops working at once) and
 * switches the link on; DELETE switches it off. Each raises nothing else: members stay. */
static void invite_change(struct api_ctx *c, int rotate)
{
	if (api_require_user(c) < 0 || api_parse_body(c, 1) < 0)
		return;
	PGresult *r = load_room(c);
	if (!r)
		return;
	if (require_owner(c, r) < 0) {
		PQclear(r);
		return;
	}
	PQclear(r);
	char uid[32], invite[INVITE_LEN + 1];
	snprintf(uid, sizeof uid, "%lld", c->user.user_id);
	if (rotate && rnd_id(invite, INVITE_LEN) < 0) {
		api_error(c, 500, "internal", "no randomness");
		return;
	}
	const char *params[] = {c->params[0], uid, rotate ? invite : NULL};
	/* invite_gen counts the codes issued: a removal recorded under an older generation no
	 * longer holds against this code (join_decide) */
	r = updated_room(c,
			 ROOM_UPDATE("invite_code = coalesce($3, invite_code), "
				     "invite_gen = invite_gen + CASE WHEN $3::text IS NULL THEN 0 ELSE 1 END, "
				     "invite_enabled = $3::text IS NOT NULL"),
			 3, params);
	if (!r)
		return;
	cJSON *room = room_to_json(c, r, 0);
	PQclear(r);
	/* the owner's other tabs fetch the room again; the code itself is not in the event:
	 * every member receives it */
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "reason", "invite");
	emit_room_event(c, c->params[0], ev);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "room", room);
	api_json(c, 200, o);
}

void h_invite_rotate(struct api_ctx *c)
{
	invite_change(c, 1);
}

void h_invite_disable(struct api_ctx *c)
{
	invite_change(c, 0);
}

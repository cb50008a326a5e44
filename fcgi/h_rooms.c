/* Rooms: create, list, get, patch, delete, join, and members with their roles. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "events.h"
#include "handlers.h"
#include "lang.h"
#include "log.h"
#include "rnd.h"
#include "valid.h"

#define ROOM_ID_LEN 10
#define INVITE_LEN 16

/* Every room query selects these columns, in this order, for room_to_json(). $2 is the
 * caller's user id (for the role column). */
#define ROOM_COLS                                                                         \
	"r.id, r.name, r.language, r.visibility, r.owner_id, u.username, r.invite_code, "  \
	"to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "      \
	"(SELECT role FROM room_members m WHERE m.room_id = r.id AND m.user_id = $2)"
#define ROOM_FROM " FROM rooms r JOIN users u ON u.id = r.owner_id "

enum { C_ID, C_NAME, C_LANG, C_VIS, C_OWNER_ID, C_OWNER_NAME, C_INVITE, C_CREATED, C_ROLE };

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

/* The process's Redis connection, opened when there is none yet (a fresh FastCGI process,
 * every CGI run). NULL, logged, when Redis is unreachable: the room itself lives in
 * PostgreSQL, so callers carry on without the cache, events and revisions. Borrowed: owned
 * by c->conns. */
static redisContext *room_redis(struct api_ctx *c)
{
	redisContext *rd = c->conns->redis;
	if (rd && !rd->err)
		return rd;
	char err[256];
	if (rd)
		redisFree(rd);
	rd = c->conns->redis = rds_connect(&c->cfg->redis, 2000, err, sizeof err);
	if (!rd)
		log_warn("%s", err);
	return rd;
}

/* Uses the connection as it is, never opens one: a handler calls room_redis() once before
 * answering rooms, so a list of rooms costs at most one connection attempt. */
static long long room_revision(struct api_ctx *c, const char *room_id)
{
	redisContext *rd = c->conns->redis;
	if (!rd || rd->err)
		return 0;
	char key[128];
	snprintf(key, sizeof key, "cc:room:%s:doc", room_id);
	redisReply *rep = redisCommand(rd, "HGET %s revision", key);
	long long rev = 0;
	if (rep && rep->type == REDIS_REPLY_STRING)
		rev = strtoll(rep->str, NULL, 10);
	if (!rep)
		api_redis_failed(c);
	if (rep)
		freeReplyObject(rep);
	return rev;
}

/* Caller owns the result (cJSON_Delete). with_invite: the caller is the owner. */
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
	if (role && strcmp(role, "owner") == 0)
		cJSON_AddStringToObject(o, "invite", PQgetvalue(r, row, C_INVITE));
	return o;
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
	PGresult *r = api_sql(c, "SELECT " ROOM_COLS ROOM_FROM "WHERE r.id = $1", 2, params, NULL,
			      NULL);
	if (!r)
		return NULL;
	if (PQntuples(r) != 1) {
		PQclear(r);
		api_error(c, 404, "room_not_found", "no room with id %s", c->params[0]);
		return NULL;
	}
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
	redisReply *rep = role ? redisCommand(rd, "HSET cc:room:%s:members %lld %s", room, uid, role)
			       : redisCommand(rd, "HDEL cc:room:%s:members %lld", room, uid);
	int rc = rep && rep->type != REDIS_REPLY_ERROR ? 0 : -1;
	if (rc < 0)
		log_warn("could not update the member cache of room %s", room);
	if (!rep)
		api_redis_failed(c);
	if (rep)
		freeReplyObject(rep);
	return rc;
}

/* cc:room:{id}:visibility (lib/access.h): the broker admits strangers to a public room by it
 * and cuts them when the room goes private (the `updated` event comes after this). */
static int cache_visibility(struct api_ctx *c, const char *room, const char *vis)
{
	char key[ACCESS_KEY_MAX];
	redisContext *rd = room_redis(c);
	if (!rd)
		return -1;
	access_visibility_key(key, sizeof key, room);
	redisReply *rep = redisCommand(rd, "SET %s %s", key, vis);
	int rc = rep && rep->type != REDIS_REPLY_ERROR ? 0 : -1;
	if (rc < 0)
		log_warn("could not update the visibility cache of room %s", room);
	if (!rep)
		api_redis_failed(c);
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

static void emit_room_event(struct api_ctx *c, const char *room, cJSON *data)
{
	char *s = cJSON_PrintUnformatted(data);
	cJSON_Delete(data);
	redisContext *rd = s ? room_redis(c) : NULL;
	if (rd && events_emit(rd, room, "room", s, NULL, 0) < 0) {
		log_warn("could not emit a room event for %s", room);
		api_redis_failed(c);
	}
	free(s);
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
		int clash = 0;
		r = api_sql(c,
			    "WITH r AS (INSERT INTO rooms (id, owner_id, name, language, visibility, "
			    "invite_code) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *), "
			    "m AS (INSERT INTO room_members (room_id, user_id, role) "
			    "SELECT id, owner_id, 'owner' FROM r) "
			    "SELECT r.id, r.name, r.language, r.visibility, r.owner_id, u.username, "
			    "r.invite_code, to_char(r.created_at AT TIME ZONE 'UTC', "
			    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'owner' "
			    "FROM r JOIN users u ON u.id = r.owner_id",
			    6, params, "23505", &clash);
		if (!r && !clash)
			return; /* answered */
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
	cache_visibility(c, id, PQgetvalue(r, 0, C_VIS));
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
	PGresult *r = api_sql(c,
			      "SELECT " ROOM_COLS ROOM_FROM
			      "JOIN room_members me ON me.room_id = r.id AND me.user_id = $1 "
			      "ORDER BY r.created_at DESC, r.id LIMIT 500",
			      2, params, NULL, NULL);
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
	PGresult *r = api_sql(c,
			      "SELECT u.id, u.username, m.role FROM room_members m "
			      "JOIN users u ON u.id = m.user_id WHERE m.room_id = $1 "
			      "ORDER BY (m.role = 'owner') DESC, m.joined_at, u.id",
			      1, params, NULL, NULL);
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
	if (!now || strcmp(now, written) != 0)
		cache_member(c, c->params[0], c->user.user_id, now);
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
	r = api_sql(c,
		    "WITH upd AS (UPDATE rooms SET name = coalesce($3, name), "
		    "language = coalesce($4, language), visibility = coalesce($5, visibility), "
		    "updated_at = now() WHERE id = $1 RETURNING *) "
		    "SELECT r.id, r.name, r.language, r.visibility, r.owner_id, u.username, "
		    "r.invite_code, to_char(r.created_at AT TIME ZONE 'UTC', "
		    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
		    "(SELECT role FROM room_members m WHERE m.room_id = r.id AND m.user_id = $2) "
		    "FROM upd r JOIN users u ON u.id = r.owner_id",
		    5, params, NULL, NULL);
	if (!r)
		return;
	if (PQntuples(r) != 1) {
		PQclear(r);
		api_error(c, 404, "room_not_found", "no room with id %s", c->params[0]);
		return;
	}
	room_redis(c); /* for the revision and the event */
	cache_visibility(c, c->params[0], PQgetvalue(r, 0, C_VIS));
	cJSON *room = room_to_json(c, r, 0);
	PQclear(r);
	/* the room's event carries no invite code: every member sees it */
	cJSON *pub = cJSON_Duplicate(room, 1);
	cJSON_DeleteItemFromObject(pub, "invite");
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "reason", "updated");
	cJSON_AddItemToObject(ev, "room", pub);
	emit_room_event(c, c->params[0], ev);
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
	redisReply *rep = rd ? redisCommand(rd, "DEL cc:room:%s:members cc:room:%s:visibility "
					    "cc:room:%s:doc cc:room:%s:ops", c->params[0], c->params[0],
					    c->params[0], c->params[0])
			     : NULL;
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		if (rep)
			freeReplyObject(rep);
		else if (rd)
			api_redis_failed(c);
		api_error(c, 503, "redis_unavailable", "the room cannot be deleted right now; try again");
		return;
	}
	freeReplyObject(rep);
	const char *params[] = {c->params[0]};
	r = api_sql(c, "DELETE FROM rooms WHERE id = $1", 1, params, NULL, NULL);
	if (!r)
		return;
	PQclear(r);
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "reason", "deleted");
	cJSON_AddStringToObject(ev, "id", c->params[0]);
	emit_room_event(c, c->params[0], ev);
	api_no_content(c);
}

void h_room_join(struct api_ctx *c)
{
	struct valid_value v[1];
	if (api_require_user(c) < 0 || api_body_fields(c, 1, join_fields, 1, v) < 0)
		return;
	PGresult *r = load_room(c);
	if (!r)
		return;
	const char *role = role_of(r);
	if (!role) {
		int public_room = strcmp(PQgetvalue(r, 0, C_VIS), "public") == 0;
		const char *code = PQgetvalue(r, 0, C_INVITE);
		int invited = v[0].present && v[0].len == strlen(code) &&
			      CRYPTO_memcmp(v[0].s, code, v[0].len) == 0;
		if (!public_room && !invited) {
			PQclear(r);
			if (v[0].present)
				api_error(c, 403, "invalid_invite", "the invite code is not valid");
			else
				api_error(c, 403, "invite_required",
					  "this room is private: join with its invite link");
			return;
		}
		PQclear(r);
		char uid[32];
		snprintf(uid, sizeof uid, "%lld", c->user.user_id);
		const char *params[] = {c->params[0], uid};
		int gone = 0; /* the room was deleted since load_room: a foreign key violation */
		PGresult *ins = api_sql(c,
					"INSERT INTO room_members (room_id, user_id, role) "
					"VALUES ($1, $2, 'editor') ON CONFLICT DO NOTHING",
					2, params, "23503", &gone);
		if (!ins) {
			if (gone)
				api_error(c, 404, "room_not_found", "no room with id %s",
					  c->params[0]);
			return;
		}
		PQclear(ins);
		r = load_room(c);
		if (!r)
			return;
		role = role_of(r);
		if (role)
			cache_member(c, c->params[0], c->user.user_id, role);
		cJSON *ev = cJSON_CreateObject();
		cJSON_AddStringToObject(ev, "reason", "members");
		emit_room_event(c, c->params[0], ev);
	} else {
		room_redis(c); /* for the revision */
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "room", room_to_json(c, r, 0));
	add_role(o, r, 0);
	PQclear(r);
	api_json(c, 200, o);
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
	r = api_sql(c,
		    "UPDATE room_members SET role = $3 WHERE room_id = $1 AND user_id = $2 "
		    "AND role <> 'owner' RETURNING user_id",
		    3, params, NULL, NULL);
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
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "reason", "members");
	emit_room_event(c, c->params[0], ev);
	cJSON *members = members_json(c, c->params[0]);
	if (!members)
		return;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "members", members);
	api_json(c, 200, o);
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
	const char *params[] = {c->params[0], c->params[1]};
	r = api_sql(c,
		    "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2 "
		    "AND role <> 'owner' RETURNING user_id",
		    2, params, NULL, NULL);
	if (!r)
		return;
	int n = PQntuples(r);
	PQclear(r);
	/* Whatever the answer, the target is no member now (never the owner: refused above).
	 * Clearing the cache on 404 too lets a retry heal an entry a removal could not clear
	 * (Redis down at the time), which would otherwise keep the room open to them. */
	if (cache_member(c, c->params[0], target, NULL) < 0) {
		revoke_failed(c);
		return;
	}
	if (n != 1) {
		api_error(c, 404, "member_not_found", "user %s is not a member of this room",
			  c->params[1]);
		return;
	}
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "reason", "members");
	emit_room_event(c, c->params[0], ev);
	api_no_content(c);
}

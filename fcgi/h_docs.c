/* The live room: document, operations, presence, stream tickets and snapshot history. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "doc.h"
#include "rkeys.h"
#include "events.h"
#include "handlers.h"
#include "log.h"
#include "presence.h"
#include "utf8.h"
#include "valid.h"

enum access_need { NEED_READ, NEED_EDIT };

/* The caller's role in the room: "owner", "editor", "viewer", or ""
 * for a stranger to a public room (who may read). Answers 404/403 and returns -1 when the
 * room is missing or the caller may not do what `need` says. */
static int room_access(struct api_ctx *c, const char *room, enum access_need need,
		       char role[16], char language[33])
{
	char uid[32];
	snprintf(uid, sizeof uid, "%lld", c->user.user_id);
	/* Hot path (operations, presence): members are cached in Redis by every membership
	 * change (h_rooms.c), so a member's role needs no PostgreSQL round trip. Strangers,
	 * a cold cache and callers that need the language fall through to PostgreSQL. */
	redisContext *rd = language ? NULL : api_redis(c);
	if (rd) {
		struct rkey mk = rkey1(RK_ROOM_MEMBERS, room);
		redisReply *rep = redisCommand(rd, "HGET %s %s", mk.s, uid);
		int hit = rep && rep->type == REDIS_REPLY_STRING && rep->len > 0 && rep->len < 16;
		if (hit)
			snprintf(role, 16, "%s", rep->str);
		if (!rep)
			api_redis_failed(c);
		if (rep)
			freeReplyObject(rep);
		if (hit) {
			if (need == NEED_EDIT && strcmp(role, "viewer") == 0) {
				api_error(c, 403, "forbidden", "viewers can only watch this room");
				return -1;
			}
			return 0;
		}
	}
	const char *params[] = {room, uid};
	PGresult *r = api_sql(c,
			      "SELECT r.visibility, m.role, r.language FROM rooms r "
			      "LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = $2 "
			      "WHERE r.id = $1",
			      2, params, NULL, NULL);
	if (!r)
		return -1;
	if (PQntuples(r) != 1) {
		PQclear(r);
		api_error(c, 404, "room_not_found", "no room with id %s", room);
		return -1;
	}
	int public_room = strcmp(PQgetvalue(r, 0, 0), "public") == 0;
	snprintf(role, 16, "%s", PQgetisnull(r, 0, 1) ? "" : PQgetvalue(r, 0, 1));
	if (language)
		snprintf(language, 33, "%s", PQgetvalue(r, 0, 2));
	PQclear(r);
	if (!role[0] && !public_room) {
		api_error(c, 403, "not_a_member",
			  "you are not a member of this room; join it (private rooms need the invite link)");
		return -1;
	}
	if (need == NEED_EDIT && (!role[0] || strcmp(role, "viewer") == 0)) {
		api_error(c, 403, "forbidden",
			  role[0] ? "viewers can only watch this room" : "join the room first");
		return -1;
	}
	return 0;
}

int room_access_read(struct api_ctx *c, const char *room, char role[16])
{
	return room_access(c, room, NEED_READ, role, NULL);
}

int room_access_edit(struct api_ctx *c, const char *room, char role[16], char language[33])
{
	return room_access(c, room, NEED_EDIT, role, language);
}

void h_document(struct api_ctx *c)
{
	char role[16], lang[33];
	if (api_require_user(c) < 0 || room_access(c, c->params[0], NEED_READ, role, lang) < 0)
		return;
	struct doc_state d;
	if (doc_read(c, c->params[0], &d) < 0)
		return;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "revision", (double)d.revision);
	cJSON_AddStringToObject(o, "content", d.content);
	cJSON_AddStringToObject(o, "language", lang);
	doc_state_free(&d);
	api_json(c, 200, o);
}

static const struct valid_field op_fields[] = {
	{"revision", VALID_INT, VALID_REQUIRED, 0, 1LL << 50, NULL, NULL},
	{"ops", VALID_ANY, VALID_REQUIRED, 0, 0, NULL, NULL},
	{"client_id", VALID_STRING, VALID_SINGLE_LINE, 1, 64, NULL, NULL},
};

void h_operations(struct api_ctx *c)
{
	struct valid_value v[3];
	char err[256];
	if (api_require_user(c) < 0 || api_body_fields(c, 0, op_fields, 3, v) < 0)
		return;
	if (!cJSON_IsArray(v[1].item)) {
		api_error(c, 400, "invalid_operation", "ops must be a JSON array");
		return;
	}
	struct ot_op *op = NULL, *applied = NULL;
	if (ot_from_cjson(v[1].item, (size_t)c->cfg->doc_max_bytes, &op, err, sizeof err) < 0) {
		api_error(c, 400, "invalid_operation", "%s", err);
		return;
	}
	/* the right to edit is checked by doc_commit(), in its first Redis round trip */
	long long rev = 0;
	if (doc_commit(c, c->params[0], v[0].n, op, v[2].present ? v[2].s : NULL, &applied,
		       &rev) == 0) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "revision", (double)rev);
		cJSON_AddItemToObject(o, "ops", ot_to_cjson(applied));
		api_json(c, 200, o);
	}
	ot_free(op);
	ot_free(applied);
}

static const struct valid_field presence_fields[] = {
	{"cursor", VALID_INT, VALID_REQUIRED, 0, PRESENCE_CURSOR_MAX, NULL, NULL},
	{"selection", VALID_ANY, 0, 0, 0, NULL, NULL},
};

static const struct valid_field selection_fields[] = {
	{"anchor", VALID_INT, VALID_REQUIRED, 0, PRESENCE_CURSOR_MAX, NULL, NULL},
	{"head", VALID_INT, VALID_REQUIRED, 0, PRESENCE_CURSOR_MAX, NULL, NULL},
};

void h_presence(struct api_ctx *c)
{
	struct valid_value v[2], s[2];
	char err[256], role[16];
	if (api_require_user(c) < 0 || api_body_fields(c, 0, presence_fields, 2, v) < 0)
		return;
	int has_sel = v[1].present;
	if (has_sel) {
		if (!cJSON_IsObject(v[1].item)) {
			api_error(c, 400, "invalid_request", "selection must be an object {anchor, head}");
			return;
		}
		if (valid_object(v[1].item, selection_fields, 2, s, err, sizeof err) < 0) {
			api_error(c, 400, "invalid_request", "selection.%s", err);
			return;
		}
	}
	if (room_access(c, c->params[0], NEED_READ, role, NULL) < 0)
		return;
	char *data = presence_data_json(c->user.user_id, c->user.username, v[0].n, has_sel,
					has_sel ? s[0].n : 0, has_sel ? s[1].n : 0);
	redisContext *rd = api_redis(c);
	if (!data || !rd) {
		free(data);
		if (!data)
			api_error(c, 500, "internal", "out of memory");
		return;
	}
	if (events_emit(rd, c->params[0], "presence", data, NULL, 0) < 0) {
		free(data);
		api_redis_failed(c);
		api_error(c, 503, "redis_unavailable", "the event store is unavailable");
		return;
	}
	free(data);
	api_no_content(c);
}

void h_stream_ticket(struct api_ctx *c)
{
	char role[16];
	if (api_require_user(c) < 0 || room_access(c, c->params[0], NEED_READ, role, NULL) < 0)
		return;
	/* The broker admits strangers to a room whose visibility key says public, and treats a
	 * missing key as private: every ticket writes it from PostgreSQL, which fills it in for
	 * rooms created before the key existed and repairs it after a lost write. Without it
	 * the stream could not be judged: no ticket. */
	if (room_visibility_sync(c, c->params[0], NULL) < 0) {
		api_error(c, 503, "redis_unavailable", "the event store is unavailable; try again");
		return;
	}
	struct token_claims t = c->user;
	long long now = (long long)time(NULL);
	t.kind = TOKEN_TICKET;
	t.iat = now;
	t.exp = now + c->cfg->ticket_ttl_s;
	if (t.exp > c->user.exp)
		t.exp = c->user.exp; /* never outlives the session it was taken with */
	snprintf(t.room, sizeof t.room, "%s", c->params[0]);
	char *tok = token_sign(&c->cfg->key, &t);
	if (!tok) {
		api_error(c, 500, "internal", "could not sign a ticket");
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "ticket", tok);
	cJSON_AddNumberToObject(o, "expires_in", (double)c->cfg->ticket_ttl_s);
	free(tok);
	api_json(c, 200, o);
}

void h_history(struct api_ctx *c)
{
	char role[16];
	if (api_require_user(c) < 0 || room_access(c, c->params[0], NEED_READ, role, NULL) < 0)
		return;
	/* every save: the checkpoints (full text) and the batches of typed operations, whose
	 * row holds the document's length at its end */
	const char *params[] = {c->params[0]};
	PGresult *r = api_sql(c,
			      "SELECT revision, to_char(saved_at AT TIME ZONE 'UTC', "
			      "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), len FROM ("
			      "SELECT revision, saved_at, length(content) AS len FROM snapshots "
			      "WHERE room_id = $1 UNION ALL "
			      "SELECT revision, saved_at, length AS len FROM history_ops "
			      "WHERE room_id = $1) h ORDER BY revision DESC LIMIT 200",
			      1, params, NULL, NULL);
	if (!r)
		return;
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(o, "snapshots");
	for (int i = 0; i < PQntuples(r); i++) {
		cJSON *s = cJSON_CreateObject();
		cJSON_AddNumberToObject(s, "revision", strtod(PQgetvalue(r, i, 0), NULL));
		cJSON_AddStringToObject(s, "saved_at", PQgetvalue(r, i, 1));
		cJSON_AddNumberToObject(s, "length", strtod(PQgetvalue(r, i, 2), NULL));
		cJSON_AddItemToArray(arr, s);
	}
	PQclear(r);
	api_json(c, 200, o);
}

void h_history_one(struct api_ctx *c)
{
	char role[16];
	if (api_require_user(c) < 0 || room_access(c, c->params[0], NEED_READ, role, NULL) < 0)
		return;
	/* a segment out of the range of a bigint is a missing snapshot, not a database error */
	char *end;
	errno = 0;
	long long rev = strtoll(c->params[1], &end, 10);
	if (errno || *end || rev < 0) {
		api_error(c, 404, "snapshot_not_found", "no snapshot at revision %s", c->params[1]);
		return;
	}
	/* any revision from the oldest kept checkpoint on: rebuilt from the checkpoint at or
	 * before it and the typed operations after */
	struct doc_state d;
	char saved_at[40];
	int hr = doc_history_text(c, c->params[0], rev, &d, saved_at);
	if (hr < 0)
		return;
	if (hr > 0) {
		api_error(c, 404, "snapshot_not_found", "no snapshot at revision %lld", rev);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "revision", (double)d.revision);
	cJSON_AddStringToObject(o, "content", d.content);
	cJSON_AddStringToObject(o, "saved_at", saved_at);
	doc_state_free(&d);
	api_json(c, 200, o);
}

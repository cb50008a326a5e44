/* The live room: document, operations, presence, stream tickets and snapshot history. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "rkeys.h"
#include "rscript.h"
#include "store_doc.h"
#include "store_room.h"
#include "handlers.h"
#include "log.h"
#include "presence.h"
#include "utf8.h"
#include "valid.h"
#include "api_metrics.h"

void room_access_failed(struct api_ctx *c, const char *room, enum store_status st,
			enum store_refusal why)
{
	if (st == STORE_NOT_FOUND)
		api_error(c, 404, "room_not_found", "no room with id %s", room);
	else if (st == STORE_FORBIDDEN)
		api_fail(c, st,
			 why == STORE_REFUSE_STRANGER || why == STORE_REFUSE_NOT_JOINED
				 ? "not_a_member"
				 : "forbidden",
			 "%s", c->store->msg);
	else
		api_fail_why(c, st);
}

/* The caller's role in the room (lib/store_room.h): 0, or -1 with 404/403 answered. */
static int room_access(struct api_ctx *c, const char *room, int edit, char role[16],
		       char language[33])
{
	enum store_refusal why;
	enum store_status st =
		store_room_access(c->store, room, c->user.user_id, edit, role, language, &why);
	if (st == STORE_OK)
		return 0;
	room_access_failed(c, room, st, why);
	return -1;
}

/* A signed-in caller who may read the path's room: 0, or -1 with the refusal answered. */
static int require_reader(struct api_ctx *c)
{
	char role[16];
	if (api_require_user(c) < 0)
		return -1;
	return room_access(c, c->params[0], 0, role, NULL);
}

int room_access_read(struct api_ctx *c, const char *room, char role[16])
{
	return room_access(c, room, 0, role, NULL);
}

int room_access_edit(struct api_ctx *c, const char *room, char role[16], char language[33])
{
	return room_access(c, room, 1, role, language);
}

/* 500 document_damaged: the text could not be made from what is stored, and the stored op
 * of revision `damaged` (text: or the stored text before it) is to blame. The server's
 * stored state, not the request: 500, but saying what is wrong (docs/OPERATIONS.md, "A
 * document that cannot be folded"). */
static void answer_damaged(struct api_ctx *c, long long damaged, int text)
{
	api_metrics_document_damaged(0);
	if (text)
		api_error(c, 500, "document_damaged",
			  "the document cannot be read: its stored text at revision %lld and its "
			  "stored operation of revision %lld do not fit together, one of them is "
			  "damaged; an operator must repair it",
			  damaged - 1, damaged);
	else
		api_error(c, 500, "document_damaged",
			  "the document cannot be read: its stored operation of revision %lld is "
			  "damaged; an operator must repair it",
			  damaged);
}

int doc_read(struct api_ctx *c, const char *room, struct doc_state *out)
{
	enum store_status st = store_doc_read(c->store, &c->cfg->doc, room, out);
	if (st == STORE_OK)
		return 0;
	if (st == STORE_ERROR && out->damaged > 0)
		answer_damaged(c, out->damaged, out->damaged_text);
	else if (st == STORE_NOT_FOUND) /* deleted since the access check (restore) */
		api_error(c, 404, "room_not_found", "no room with id %s", room);
	else
		api_fail_why(c, st);
	return -1;
}

/* Answers 200 with the text d (its revision and content) and one more string field; frees
 * d. */
static void answer_text(struct api_ctx *c, struct doc_state *d, const char *name,
			const char *value)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "revision", (double)d->revision);
	cJSON_AddStringToObject(o, "content", d->content);
	cJSON_AddStringToObject(o, name, value);
	doc_state_free(d);
	api_json(c, 200, o);
}

void h_document(struct api_ctx *c)
{
	char role[16], lang[33];
	if (api_require_user(c) < 0 || room_access(c, c->params[0], 0, role, lang) < 0)
		return;
	struct doc_state d;
	if (doc_read(c, c->params[0], &d) < 0)
		return;
	answer_text(c, &d, "language", lang);
}

/* 409 for an operation made against a revision the document does not have: the current
 * revision in X-Revision and in the body (for clients that ignore headers); for a repeat of
 * a request committed already whose entry the log no longer keeps, also the revision that
 * request became (applied_revision): the edit is in the document, not to be sent again. */
static void answer_stale(struct api_ctx *c, const struct doc_commit *dc)
{
	char h[32];
	cJSON *o = dc->ahead ? api_error_body("revision_in_future",
					      "revision %lld is ahead of the document (now at %lld)",
					      dc->revision, dc->current)
			     : api_error_body("revision_too_old",
					      "revision %lld is older than the kept history (now at "
					      "%lld): fetch the document again",
					      dc->revision, dc->current);
	if (o && (!cJSON_AddNumberToObject(o, "revision", (double)dc->current) ||
		  (!dc->ahead && dc->applied_rev > 0 &&
		   !cJSON_AddNumberToObject(o, "applied_revision", (double)dc->applied_rev)))) {
		cJSON_Delete(o);
		o = NULL;
	}
	if (!o) {
		api_error(c, 500, "internal", "out of memory");
		return;
	}
	api_json(c, 409, o);
	snprintf(h, sizeof h, "%lld", dc->current);
	http_resp_header(c->resp, "X-Revision", h);
}

static void commit_answer(struct api_ctx *c, long long revision, const struct ot_op *op,
			  const char *client_id);

/* the largest revision a request may name: below 2^52 a JSON number (a double, in cJSON as
 * in Redis's Lua) holds every integer exactly and still tells a fraction from a whole
 * number; one ahead of the document is answered 409 like any other */
#define REVISION_MAX ((1LL << 52) - 1)

static const struct valid_field op_fields[] = {
	{"revision", VALID_INT, VALID_REQUIRED, 0, REVISION_MAX, NULL, NULL},
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
	struct ot_op *op = NULL;
	int rc = ot_from_cjson(v[1].item, (size_t)c->cfg->doc.max_bytes, &op, err, sizeof err);
	if (rc == OT_NOMEM) {
		api_error(c, 500, "internal", "out of memory");
		return;
	}
	if (rc < 0) {
		api_error(c, 400, "invalid_operation", "%s", err);
		return;
	}
	/* the right to edit is checked by the commit, in its first Redis round trip */
	commit_answer(c, v[0].n, op, v[2].present ? v[2].s : NULL);
	ot_free(op);
}

/* Commits op (borrowed) made against `revision` and answers it: 200 {revision, ops} or the
 * commit's refusal (docs/API.md, "Live documents"). */
static void commit_answer(struct api_ctx *c, long long revision, const struct ot_op *op,
			  const char *client_id)
{
	struct doc_commit dc = {
		.room = c->params[0],
		.revision = revision,
		.op = op,
		.client_id = client_id,
		.user_id = c->user.user_id,
		.username = c->user.username,
	};
	enum store_status st = store_doc_commit(c->store, &c->cfg->doc, &dc);
	api_metrics_commit(st == STORE_OK, dc.races);
	switch (st) {
	case STORE_OK: {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "revision", (double)dc.new_rev);
		cJSON_AddItemToObject(o, "ops", ot_to_cjson(dc.applied));
		api_json(c, 200, o);
		break;
	}
	case STORE_NOT_FOUND:
	case STORE_FORBIDDEN:
		room_access_failed(c, c->params[0], st, dc.refusal);
		break;
	case STORE_CONFLICT:
		answer_stale(c, &dc);
		break;
	case STORE_INVALID:
		api_fail(c, st, "invalid_operation", "%s", c->store->msg);
		break;
	case STORE_TOO_LARGE:
		if (dc.components)
			api_fail(c, st, "operation_too_large",
				 "the operation would be stored with %zu components (with the final "
				 "retain the server writes, and as transformed over the operations "
				 "committed since its revision); at most %d are kept: send it in parts",
				 dc.components, OT_MAX_COMPONENTS);
		else if (dc.event_too_large)
			api_fail(c, st, "operation_too_large",
				 "the operation's event would be %zu bytes; events are at most %zu "
				 "(control characters count six bytes each, as \\u00XX)",
				 dc.size, EVENTS_DATA_MAX);
		else
			api_fail(c, st, "document_too_large",
				 "the document would be %zu bytes; the limit is %ld", dc.size,
				 c->cfg->doc.max_bytes);
		break;
	default:
		if (st == STORE_ERROR && dc.unfolded > 0) {
			/* a damaged stored op stops folds: nothing more is taken until an operator
			 * repairs it (docs/OPERATIONS.md); what was committed stays */
			api_metrics_document_damaged(1);
			api_error(c, 503, "document_unfoldable",
				  "the document's history cannot be folded: %lld operations wait to be "
				  "folded into its text and one of them is damaged; an operator must "
				  "repair it before more changes are accepted",
				  dc.unfolded);
			break;
		}
		if (st == STORE_ERROR && dc.damaged > 0) {
			/* the commit folded the text to measure the document (near its limit) */
			answer_damaged(c, dc.damaged, dc.damaged_text);
			break;
		}
		api_fail_why(c, st);
		break;
	}
	ot_free(dc.applied);
}

static const struct valid_field replace_fields[] = {
	{"content", VALID_ANY, VALID_REQUIRED, 0, 0, NULL, NULL},
	{"base_revision", VALID_INT, VALID_REQUIRED, 0, REVISION_MAX, NULL, NULL},
	{"client_id", VALID_STRING, VALID_SINGLE_LINE, 1, 64, NULL, NULL},
};

/* Bytes at the start of a and b that are equal and end on a character boundary. */
static size_t common_prefix(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = 0, max = alen < blen ? alen : blen;
	while (n < max && a[n] == b[n])
		n++;
	/* never split a UTF-8 sequence: back up to the start of the character. Both texts are
	 * valid UTF-8 and equal up to n, so a continuation byte at a[n] means one at b[n] too */
	while (n > 0 && n < alen && ((unsigned char)a[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/* Bytes at the end of a and b (after their first `skip` bytes) that are equal and begin on
 * a character boundary. */
static size_t common_suffix(const char *a, size_t alen, const char *b, size_t blen, size_t skip)
{
	size_t n = 0, max = (alen < blen ? alen : blen) - skip;
	while (n < max && a[alen - 1 - n] == b[blen - 1 - n])
		n++;
	/* the suffix starts on a lead byte in both (equal bytes: checking a is enough) */
	while (n > 0 && ((unsigned char)a[alen - n] & 0xC0) == 0x80)
		n--;
	return n;
}

/* The operation that turns text a into text b: retain the common start, delete what
 * differs, insert b's middle, retain the common end. NULL out of memory. */
static struct ot_op *replace_op(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t pre = common_prefix(a, alen, b, blen);
	size_t suf = common_suffix(a, alen, b, blen, pre);
	struct ot_op *op = ot_new();
	size_t keep = utf8_count(a, pre), gone = utf8_count(a + pre, alen - pre - suf),
	       tail = utf8_count(a + alen - suf, suf);
	if (!op || (keep && ot_retain(op, keep) < 0) ||
	    (blen - pre - suf && ot_insert(op, b + pre, blen - pre - suf) < 0) ||
	    (gone && ot_delete(op, gone) < 0) || (tail && ot_retain(op, tail) < 0)) {
		ot_free(op);
		return NULL;
	}
	return op;
}

void h_document_replace(struct api_ctx *c)
{
	struct valid_value v[3];
	char role[16];
	if (api_require_user(c) < 0 || api_body_fields(c, 0, replace_fields, 3, v) < 0)
		return;
	if (!cJSON_IsString(v[0].item)) {
		api_error(c, 400, "invalid_request", "content must be a string (the whole document)");
		return;
	}
	const char *content = v[0].item->valuestring;
	size_t clen = strlen(content); /* the body's check refused \u0000: no NUL inside */
	if (clen > (size_t)c->cfg->doc.max_bytes) {
		api_error(c, 413, "document_too_large",
			  "the document would be %zu bytes; the limit is %ld", clen,
			  c->cfg->doc.max_bytes);
		return;
	}
	if (room_access(c, c->params[0], 1, role, NULL) < 0)
		return;
	struct doc_state d;
	if (doc_read(c, c->params[0], &d) < 0)
		return;
	if (v[1].n != d.revision) {
		cJSON *o = api_error_body("document_changed",
					  "the document is at revision %lld, not %lld: fetch it again "
					  "and decide",
					  d.revision, v[1].n);
		doc_state_free(&d);
		if (!o || !cJSON_AddNumberToObject(o, "revision", (double)d.revision)) {
			cJSON_Delete(o);
			api_error(c, 500, "internal", "out of memory");
			return;
		}
		api_json(c, 409, o);
		return;
	}
	if (d.content_len == clen && memcmp(d.content, content, clen) == 0) {
		/* nothing to change: no operation, no event */
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "revision", (double)d.revision);
		cJSON_AddItemToObject(o, "ops", cJSON_CreateArray());
		doc_state_free(&d);
		api_json(c, 200, o);
		return;
	}
	struct ot_op *op = replace_op(d.content, d.content_len, content, clen);
	long long rev = d.revision;
	doc_state_free(&d);
	if (!op) {
		api_error(c, 500, "internal", "out of memory");
		return;
	}
	commit_answer(c, rev, op, v[2].present ? v[2].s : NULL);
	ot_free(op);
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
	if (room_access(c, c->params[0], 0, role, NULL) < 0)
		return;
	char *data = presence_data_json(c->user.user_id, c->user.username, v[0].n, has_sel,
					has_sel ? s[0].n : 0, has_sel ? s[1].n : 0);
	if (!data) {
		api_error(c, 500, "internal", "out of memory");
		return;
	}
	/* the user's budget in the room, shared with their WebSocket presence (lib/events.h):
	 * counted and emitted by one script */
	struct rds *rd;
	long retry_ms = 0;
	enum events_presence res = EVENTS_PRESENCE_ERROR;
	enum store_status st = store_redis(c->store, &rd);
	if (st == STORE_OK) {
		res = events_presence_emit(rd, c->params[0], c->user.user_id, data,
					   c->cfg->presence_limit, &retry_ms);
		if (res == EVENTS_PRESENCE_ERROR)
			st = store_redis_failed(c->store);
	}
	free(data);
	if (st != STORE_OK) {
		api_fail(c, st, NULL, NULL);
		return;
	}
	if (res == EVENTS_PRESENCE_GONE) {
		/* deleted after room_access read its row: as any request to a deleted room */
		api_error(c, 404, "room_not_found", "no room with id %s", c->params[0]);
		return;
	}
	if (res == EVENTS_PRESENCE_LIMITED) {
		/* Retry-After is in whole seconds: the window (1 s) ends within one */
		api_too_many(c, (retry_ms + 999) / 1000, "rate_limited",
			     "at most %ld presence updates per second in a room",
			     c->cfg->presence_limit);
		return;
	}
	api_no_content(c);
}

/* Entries of the conns set looked at: a bound on one answer's work (one user has one entry
 * per broker, so far more users than any room has). */
#define PRESENCE_LIST_MAX 10000

void h_presence_list(struct api_ctx *c)
{
	if (require_reader(c) < 0)
		return;
	struct rds *rd;
	enum store_status st = store_redis(c->store, &rd);
	if (st != STORE_OK) {
		api_fail(c, st, NULL, NULL);
		return;
	}
	struct rkey key = rkey1(RK_ROOM_CONNS, c->params[0]);
	char max[16];
	snprintf(max, sizeof max, "%d", PRESENCE_LIST_MAX);
	const char *args[] = {key.s, max};
	redisReply *rep = rds_script(rd, &rs_presence_list, 1, 2, args, NULL);
	if (!rep || rep->type != REDIS_REPLY_ARRAY) {
		if (rep)
			freeReplyObject(rep);
		else
			store_redis_failed(c->store);
		api_error(c, 503, "redis_unavailable", "the event store is unavailable");
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(o, "users");
	for (size_t i = 0; i + 1 < rep->elements; i += 2) {
		const redisReply *u = rep->element[i], *n = rep->element[i + 1];
		if (u->type != REDIS_REPLY_STRING || n->type != REDIS_REPLY_STRING)
			continue;
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "id", strtod(u->str, NULL));
		cJSON_AddStringToObject(e, "username", n->str);
		cJSON_AddItemToArray(arr, e);
	}
	freeReplyObject(rep);
	api_json(c, 200, o);
}

void h_stream_ticket(struct api_ctx *c)
{
	if (api_require_user(c) < 0 || api_body_none(c) < 0 || require_reader(c) < 0)
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
	t.sexp = c->user.exp; /* nor does a stream it opens (the broker ends it then) */
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
	char origin[HTTP_ORIGIN_MAX];
	if (http_stream_origin(c->cfg->stream_origin, c->cfg->broker_port, c->req->host,
			       c->req->https, origin, sizeof origin))
		cJSON_AddStringToObject(o, "stream_origin", origin);
	api_json(c, 200, o);
}

void h_history(struct api_ctx *c)
{
	if (require_reader(c) < 0)
		return;
	/* paging (docs/API.md): ?limit=1..200 (200), ?before=<revision> (1 or more: no page
	 * names 0 as its next, a page ending at revision 0 says null; at most the largest
	 * revision there can be) */
	long long limit, before;
	if (api_query_int(c, "limit", 1, 200, 200, &limit) < 0 ||
	    api_query_int(c, "before", 1, REVISION_MAX, 0, &before) < 0)
		return;
	struct doc_save *saves = NULL;
	int n = 0;
	/* the saves may lag behind by a moment: a replica may answer (docs/SCALING.md) */
	enum store_status st = STORE_MAY_LAG(
		c->store, store_doc_history_list(c->store, c->params[0], (int)limit + 1, before, &saves, &n));
	if (st != STORE_OK) {
		api_fail_why(c, st);
		return;
	}
	/* one save more than the page, read only to know that another page follows */
	int more = n > limit;
	if (more)
		n = (int)limit;
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(o, "snapshots");
	for (int i = 0; i < n; i++) {
		cJSON *s = cJSON_CreateObject();
		cJSON_AddNumberToObject(s, "revision", (double)saves[i].revision);
		cJSON_AddStringToObject(s, "saved_at", saves[i].saved_at);
		cJSON_AddNumberToObject(s, "length", (double)saves[i].length);
		/* who typed the change since the save before, and how much (when known) */
		if (saves[i].nauthors >= 0) {
			cJSON *who = cJSON_AddArrayToObject(s, "authors");
			for (int k = 0; who && k < saves[i].nauthors; k++) {
				cJSON *u = cJSON_CreateObject();
				cJSON_AddNumberToObject(u, "id", (double)saves[i].authors[k].id);
				cJSON_AddStringToObject(u, "username", saves[i].authors[k].username);
				cJSON_AddItemToArray(who, u);
			}
		}
		if (saves[i].inserted >= 0)
			cJSON_AddNumberToObject(s, "inserted", (double)saves[i].inserted);
		if (saves[i].deleted >= 0)
			cJSON_AddNumberToObject(s, "deleted", (double)saves[i].deleted);
		cJSON_AddItemToArray(arr, s);
	}
	/* more follow (a page that ends at revision 0 has none after it) */
	if (more && saves[n - 1].revision > 0)
		cJSON_AddNumberToObject(o, "next", (double)saves[n - 1].revision);
	else
		cJSON_AddNullToObject(o, "next");
	free(saves);
	api_json(c, 200, o);
}

void h_history_one(struct api_ctx *c)
{
	if (require_reader(c) < 0)
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
	enum store_status st = STORE_MAY_LAG(
		c->store, store_doc_history_text(c->store, &c->cfg->doc, c->params[0], rev,
						 doc_history_read_budget(&c->cfg->doc), &d, saved_at));
	if (st == STORE_NOT_FOUND) {
		api_error(c, 404, "snapshot_not_found", "no snapshot at revision %lld", rev);
		return;
	}
	if (st == STORE_TOO_LARGE) {
		/* a chain of batches saved before checkpoints were bounded in bytes: refused
		 * rather than read into this process (the revisions of the checkpoints stay
		 * readable) */
		api_error(c, 413, "history_too_large", "%s", c->store->msg);
		return;
	}
	if (st != STORE_OK) {
		api_fail_why(c, st);
		return;
	}
	answer_text(c, &d, "saved_at", saved_at);
}

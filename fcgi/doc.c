#include "doc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "events.h"
#include "log.h"
#include "utf8.h"
#include "clock.h"

#define DOC_COMMIT_ATTEMPTS 200
#define SNAP_DUE_KEY "cc:snap:due"

/* KEYS doc, ops; ARGV client revision.
 * {-1} no document; {0, rev} revision in the future; {1, rev} older than the kept log;
 * {2, rev, content, {ops since the client's revision}} */
static const char read_script[] =
	"local rev = tonumber(redis.call('HGET', KEYS[1], 'revision')) "
	"if not rev then return {-1} end "
	"local want = tonumber(ARGV[1]) "
	"if want > rev then return {0, rev} end "
	"local len = redis.call('LLEN', KEYS[2]) "
	"local first = rev - len + 1 "
	"if want + 1 < first then return {1, rev} end "
	"local ops = {} "
	"if want < rev then ops = redis.call('LRANGE', KEYS[2], want + 1 - first, -1) end "
	"return {2, rev, redis.call('HGET', KEYS[1], 'content'), ops}";

/* KEYS doc, ops; ARGV revision, content. Creates the document unless it exists. */
static const char init_script[] =
	"if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "
	"redis.call('HSET', KEYS[1], 'revision', ARGV[1], 'content', ARGV[2]) "
	"redis.call('DEL', KEYS[2]) return 1";

/* KEYS doc, ops, events, channel, snapshot-due; ARGV expected revision, new content, op
 * JSON, ops to keep, event data JSON, due time ms, room id, history length.
 * {0, rev} someone committed first; {1, new revision, event id}. The event text is built
 * as lib/events.c builds it, so subscribers and history readers see one shape. */
static const char commit_script[] =
	"local rev = tonumber(redis.call('HGET', KEYS[1], 'revision')) "
	"if rev ~= tonumber(ARGV[1]) then return {0, rev or -1} end "
	"redis.call('HSET', KEYS[1], 'revision', rev + 1, 'content', ARGV[2]) "
	"redis.call('RPUSH', KEYS[2], ARGV[3]) "
	"redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1) "
	"local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', "
	"'type', 'operation', 'data', ARGV[5]) "
	"redis.call('PUBLISH', KEYS[4], '{\"type\":\"operation\",\"id\":\"' .. id .. "
	"'\",\"data\":' .. ARGV[5] .. '}') "
	"redis.call('ZADD', KEYS[5], 'NX', ARGV[6], ARGV[7]) "
	"return {1, rev + 1, id}";

static long snapshot_interval_ms(void)
{
	long v = 2000;
	char err[128];
	if (cfg_long("SNAPSHOT_INTERVAL_MS", 2000, 50, 3600000, &v, err, sizeof err) < 0)
		v = 2000;
	return v;
}

void doc_state_free(struct doc_state *d)
{
	free(d->content);
	d->content = NULL;
	d->content_len = 0;
}

/* Copies a Redis string reply (nil: empty) into out->content, NUL-terminated. 0, or -1
 * with 500 answered. */
static int copy_content(struct api_ctx *c, struct doc_state *out, const redisReply *r)
{
	out->content_len = r->type == REDIS_REPLY_STRING ? r->len : 0;
	out->content = malloc(out->content_len + 1);
	if (!out->content) {
		api_error(c, 500, "internal", "out of memory");
		return -1;
	}
	if (out->content_len)
		memcpy(out->content, r->str, out->content_len);
	out->content[out->content_len] = '\0';
	return 0;
}

static void keys_of(const char *room, char doc[96], char ops[96])
{
	snprintf(doc, 96, "cc:room:%s:doc", room);
	snprintf(ops, 96, "cc:room:%s:ops", room);
}

/* Creates the Redis document from the latest snapshot, or empty at revision 0. */
static int doc_restore(struct api_ctx *c, redisContext *rd, const char *room)
{
	const char *params[] = {room};
	PGresult *r = api_sql(c,
			      "SELECT revision, content FROM snapshots WHERE room_id = $1 "
			      "ORDER BY revision DESC LIMIT 1",
			      1, params, NULL, NULL);
	if (!r)
		return -1;
	const char *rev = PQntuples(r) ? PQgetvalue(r, 0, 0) : "0";
	const char *content = PQntuples(r) ? PQgetvalue(r, 0, 1) : "";
	size_t clen = PQntuples(r) ? (size_t)PQgetlength(r, 0, 1) : 0;
	char dk[96], ok[96];
	keys_of(room, dk, ok);
	const char *args[] = {dk, ok, rev, content};
	size_t lens[] = {strlen(dk), strlen(ok), strlen(rev), clen};
	redisReply *rep = rds_eval(rd, init_script, 2, 4, args, lens);
	int rc = rep && rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
	if (rc == 0 && rep->integer == 1 && PQntuples(r))
		log_info("room %s: document restored from its snapshot at revision %s", room, rev);
	if (rep)
		freeReplyObject(rep);
	PQclear(r);
	if (rc < 0) {
		api_redis_failed(c);
		api_error(c, 503, "redis_unavailable", "the document store is unavailable");
	}
	return rc;
}

/* One read: the state plus the committed ops since `since` (a Redis array reply the
 * caller frees with freeReplyObject; NULL when there are none). -1 answered. */
static int read_since(struct api_ctx *c, const char *room, long long since,
		      struct doc_state *out, redisReply **ops_reply)
{
	char dk[96], ok[96];
	keys_of(room, dk, ok);
	*ops_reply = NULL;
	for (int attempt = 0; attempt < 2; attempt++) {
		redisContext *rd = api_redis(c);
		if (!rd)
			return -1;
		char sincestr[24];
		snprintf(sincestr, sizeof sincestr, "%lld", since);
		const char *args[] = {dk, ok, sincestr};
		redisReply *rep = rds_eval(rd, read_script, 2, 3, args, NULL);
		if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1) {
			if (rep)
				freeReplyObject(rep);
			api_redis_failed(c);
			api_error(c, 503, "redis_unavailable", "the document store is unavailable");
			return -1;
		}
		long long kind = rep->element[0]->integer;
		if (kind == -1) {
			freeReplyObject(rep);
			if (attempt == 0 && doc_restore(c, rd, room) == 0)
				continue;
			if (attempt == 0)
				return -1;
			api_error(c, 503, "redis_unavailable", "the document could not be loaded");
			return -1;
		}
		long long rev = rep->element[1]->integer;
		if (kind == 0 || kind == 1) {
			freeReplyObject(rep);
			api_error(c, 409, kind == 0 ? "revision_in_future" : "revision_too_old",
				  kind == 0 ? "revision %lld is ahead of the document (now at %lld)"
					    : "revision %lld is older than the kept history (now at "
					      "%lld): fetch the document again",
				  since, rev);
			char h[32];
			snprintf(h, sizeof h, "%lld", rev);
			http_resp_header(c->resp, "X-Revision", h);
			/* the body names the current revision too, for clients that ignore headers */
			cJSON *o = cJSON_Parse(c->resp->body.data);
			if (o) {
				cJSON_AddNumberToObject(o, "revision", (double)rev);
				api_json(c, 409, o);
			}
			return -1;
		}
		out->revision = rev;
		if (copy_content(c, out, rep->element[2]) < 0) {
			freeReplyObject(rep);
			return -1;
		}
		*ops_reply = rep;
		return 0;
	}
	return -1;
}

int doc_read(struct api_ctx *c, const char *room, struct doc_state *out)
{
	redisReply *rep = NULL;
	memset(out, 0, sizeof *out);
	char dk[96], ok[96];
	keys_of(room, dk, ok);
	for (int attempt = 0; attempt < 2; attempt++) {
		redisContext *rd = api_redis(c);
		if (!rd)
			return -1;
		rep = redisCommand(rd, "HMGET %s revision content", dk);
		if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
			if (rep)
				freeReplyObject(rep);
			api_redis_failed(c);
			api_error(c, 503, "redis_unavailable", "the document store is unavailable");
			return -1;
		}
		if (rep->element[0]->type != REDIS_REPLY_STRING) {
			freeReplyObject(rep);
			rep = NULL;
			if (attempt == 0 && doc_restore(c, rd, room) == 0)
				continue;
			if (attempt == 1)
				api_error(c, 503, "redis_unavailable", "the document could not be loaded");
			return -1;
		}
		out->revision = strtoll(rep->element[0]->str, NULL, 10);
		int rc = copy_content(c, out, rep->element[1]);
		freeReplyObject(rep);
		return rc;
	}
	return -1;
}

/* One entry of the op log: {"u":user id,"s":site,"ops":[...]} (the author orders
 * concurrent inserts, lib/ot.h "Who goes first"). An entry written before authors were
 * kept is the bare array; its author is unknown (has_author 0). *site is a copy the
 * caller frees. 0, or -1 with err set. */
static int log_entry_parse(const redisReply *e, struct ot_op **op, long long *user,
			   char **site, int *has_author, char *err, size_t errlen)
{
	*op = NULL;
	*site = NULL;
	*has_author = 0;
	if (e->type != REDIS_REPLY_STRING) {
		snprintf(err, errlen, "a log entry is not a string");
		return -1;
	}
	if (e->len == 0 || e->str[0] != '{')
		return ot_parse_json(e->str, e->len, 0, op, err, errlen);
	int rc = -1;
	cJSON *j = cJSON_ParseWithLength(e->str, e->len);
	const cJSON *u = j ? cJSON_GetObjectItemCaseSensitive(j, "u") : NULL;
	const cJSON *st = j ? cJSON_GetObjectItemCaseSensitive(j, "s") : NULL;
	if (!cJSON_IsNumber(u) || !cJSON_IsString(st)) {
		snprintf(err, errlen, "a log entry has no author");
		goto out;
	}
	/* written by log_entry_write from a parsed op: no \u0000 to hide from cJSON */
	if (ot_from_cjson(cJSON_GetObjectItemCaseSensitive(j, "ops"), 0, op, err, errlen) < 0)
		goto out;
	if (!(*site = strdup(st->valuestring))) {
		snprintf(err, errlen, "out of memory");
		ot_free(*op);
		*op = NULL;
		goto out;
	}
	*user = (long long)u->valuedouble;
	*has_author = 1;
	rc = 0;
out:
	cJSON_Delete(j);
	return rc;
}

/* The log entry for op by user and client_id's site (may be NULL); caller frees. */
static char *log_entry_write(const struct ot_op *op, long long user, const char *client_id)
{
	char *text = NULL, *site = NULL;
	size_t sl = ot_site_len(client_id);
	cJSON *j = cJSON_CreateObject(), *ops = ot_to_cjson(op);
	if (!j || !ops || !(site = malloc(sl + 1)))
		goto out;
	if (sl)
		memcpy(site, client_id, sl);
	site[sl] = '\0';
	if (!cJSON_AddNumberToObject(j, "u", (double)user) || !cJSON_AddStringToObject(j, "s", site))
		goto out;
	if (!cJSON_AddItemToObject(j, "ops", ops))
		goto out;
	ops = NULL; /* owned by j now */
	text = cJSON_PrintUnformatted(j);
out:
	free(site);
	cJSON_Delete(ops);
	cJSON_Delete(j);
	return text;
}

/* Transforms *op, by `me`, over every committed op in the reply's 4th element, in order;
 * at one position the lower author's insert goes first (lib/ot.h, "Who goes first"). */
static int transform_over(struct api_ctx *c, redisReply *rep, struct ot_op **op, size_t doc_cps,
			  const struct ot_author *me)
{
	char err[256];
	redisReply *list = rep->elements > 3 ? rep->element[3] : NULL;
	size_t n = list && list->type == REDIS_REPLY_ARRAY ? list->elements : 0;
	/* The op was made against the document of the client's revision: its length is the
	 * base length of the first committed op after it, or the current length if none. */
	for (size_t i = 0; i < n; i++) {
		struct ot_op *b = NULL, *a2 = NULL, *b2 = NULL;
		char *site = NULL;
		long long user = 0;
		int known = 0;
		if (log_entry_parse(list->element[i], &b, &user, &site, &known, err, sizeof err) < 0) {
			log_error("a stored operation does not parse: %s", err);
			api_error(c, 500, "internal", "the operation log is damaged");
			return -1;
		}
		if (i == 0 && ot_extend(*op, ot_base_len(b), err, sizeof err) < 0) {
			free(site);
			ot_free(b);
			api_error(c, 400, "invalid_operation", "%s", err);
			return -1;
		}
		/* stored as the site already: not cut at a '.' again */
		struct ot_author them = {.user = user, .site = site ? site : "",
					 .site_len = site ? strlen(site) : 0};
		int a_first = known && ot_author_cmp(me, &them) < 0;
		int rc = ot_transform_ordered(*op, b, a_first, &a2, &b2, err, sizeof err);
		free(site);
		ot_free(b);
		if (rc < 0) {
			log_error("transform failed: %s", err);
			api_error(c, 500, "internal", "the operation could not be transformed");
			return -1;
		}
		ot_free(b2);
		ot_free(*op);
		*op = a2;
	}
	if (n == 0 && ot_extend(*op, doc_cps, err, sizeof err) < 0) {
		api_error(c, 400, "invalid_operation", "%s", err);
		return -1;
	}
	return 0;
}

int doc_operation_event(long long revision, const struct ot_op *op, long long user_id,
			const char *username, const char *client_id, char **data, size_t *len)
{
	*data = NULL;
	*len = 0;
	cJSON *ev = cJSON_CreateObject();
	cJSON *ops = ot_to_cjson(op), *u = NULL;
	int rc = -1;
	if (!ev || !ops || !cJSON_AddNumberToObject(ev, "revision", (double)revision)) {
		cJSON_Delete(ops);
		goto out;
	}
	if (!cJSON_AddItemToObject(ev, "ops", ops)) {
		cJSON_Delete(ops);
		goto out;
	}
	if (!(u = cJSON_AddObjectToObject(ev, "user")) ||
	    !cJSON_AddNumberToObject(u, "id", (double)user_id) ||
	    !cJSON_AddStringToObject(u, "username", username))
		goto out;
	if (!(client_id ? cJSON_AddStringToObject(ev, "client_id", client_id)
			: cJSON_AddNullToObject(ev, "client_id")))
		goto out;
	*data = cJSON_PrintUnformatted(ev);
	if (!*data)
		goto out;
	*len = strlen(*data);
	rc = *len > EVENTS_DATA_MAX ? 1 : 0;
out:
	cJSON_Delete(ev);
	return rc;
}

int doc_commit(struct api_ctx *c, const char *room, long long revision, struct ot_op *op,
	       const char *client_id, struct ot_op **applied, long long *new_rev)
{
	char dk[96], ok[96], ek[96], ch[96], err[256];
	keys_of(room, dk, ok);
	events_history_key(ek, sizeof ek, room);
	events_channel(ch, sizeof ch, room);
	*applied = NULL;
	struct buf out;
	/* room for the limit plus one insert, so "too large" is told apart from "does not fit" */
	buf_init(&out, (size_t)c->cfg->doc_max_bytes + OT_DEFAULT_MAX_INSERT + 16);
	int rc = -1;
	long interval = snapshot_interval_ms();
	struct ot_author me;
	ot_author_set(&me, c->user.user_id, client_id);

	for (int attempt = 0; attempt < DOC_COMMIT_ATTEMPTS; attempt++) {
		struct doc_state st = {0};
		redisReply *rep = NULL;
		struct ot_op *a = NULL;
		char *op_json = NULL, *data = NULL;
		if (read_since(c, room, revision, &st, &rep) < 0)
			goto out;
		/* work on a copy: a retry starts again from the client's operation */
		char *orig = ot_to_json(op);
		if (!orig || ot_parse_json(orig, strlen(orig), 0, &a, err, sizeof err) < 0) {
			free(orig);
			api_error(c, 500, "internal", "out of memory");
			goto retry_fail;
		}
		free(orig);
		if (transform_over(c, rep, &a, utf8_count(st.content, st.content_len), &me) < 0)
			goto retry_fail;
		if (ot_apply(a, st.content, st.content_len, &out, err, sizeof err) < 0) {
			api_error(c, 400, "invalid_operation", "%s", err);
			goto retry_fail;
		}
		if (out.len > (size_t)c->cfg->doc_max_bytes) {
			api_error(c, 413, "document_too_large",
				  "the document would be %zu bytes; the limit is %ld", out.len,
				  c->cfg->doc_max_bytes);
			goto retry_fail;
		}
		/* the stored op has its exact length: extend to the document it applies to */
		if (ot_extend(a, utf8_count(st.content, st.content_len), err, sizeof err) < 0) {
			api_error(c, 400, "invalid_operation", "%s", err);
			goto retry_fail;
		}
		op_json = log_entry_write(a, c->user.user_id, client_id);
		size_t data_len = 0;
		int ev = doc_operation_event(st.revision + 1, a, c->user.user_id, c->user.username,
					     client_id, &data, &data_len);
		if (!op_json || ev < 0) {
			api_error(c, 500, "internal", "out of memory");
			goto retry_fail;
		}
		if (ev > 0) {
			/* refused before the commit: the event could not reach every subscriber */
			api_error(c, 413, "operation_too_large",
				  "the operation's event would be %zu bytes; events are at most %zu "
				  "(control characters count six bytes each, as \\u00XX)",
				  data_len, EVENTS_DATA_MAX);
			goto retry_fail;
		}
		char exp[32], keep[16], due[32], hist[16];
		snprintf(exp, sizeof exp, "%lld", st.revision);
		snprintf(keep, sizeof keep, "%d", DOC_OPS_KEEP);
		snprintf(due, sizeof due, "%lld", clock_wall_ms() + interval);
		snprintf(hist, sizeof hist, "%d", EVENTS_HISTORY_MAX);
		const char *args[] = {dk, ok, ek, ch, SNAP_DUE_KEY, exp, out.data, op_json,
				      keep, data, due, room, hist};
		size_t lens[13];
		for (int i = 0; i < 13; i++)
			lens[i] = strlen(args[i]);
		lens[6] = out.len;
		redisContext *rd = api_redis(c);
		redisReply *cr = rd ? rds_eval(rd, commit_script, 5, 13, args, lens) : NULL;
		if (!cr || cr->type != REDIS_REPLY_ARRAY || cr->elements < 2) {
			if (cr)
				freeReplyObject(cr);
			if (rd)
				api_redis_failed(c);
			api_error(c, 503, "redis_unavailable", "the document store is unavailable");
			goto retry_fail;
		}
		int committed = cr->element[0]->integer == 1;
		long long nrev = cr->element[1]->integer;
		freeReplyObject(cr);
		free(op_json);
		free(data);
		freeReplyObject(rep);
		doc_state_free(&st);
		if (committed) {
			*applied = a;
			*new_rev = nrev;
			rc = 0;
			goto out;
		}
		ot_free(a);
		continue; /* someone committed in between: read again */
	retry_fail:
		free(op_json);
		free(data);
		ot_free(a);
		if (rep)
			freeReplyObject(rep);
		doc_state_free(&st);
		goto out;
	}
	api_error(c, 503, "busy", "the room is too busy; try again");
out:
	buf_free(&out);
	return rc;
}

/* --- snapshots ------------------------------------------------------------------------ */

static void snapshot_room(struct api_ctx *c, const char *room)
{
	char dk[96];
	snprintf(dk, sizeof dk, "cc:room:%s:doc", room);
	redisContext *rd = api_redis(c);
	if (!rd)
		return;
	redisReply *rep = redisCommand(rd, "HMGET %s revision content", dk);
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_STRING) {
		if (!rep)
			api_redis_failed(c);
		if (rep)
			freeReplyObject(rep);
		return;
	}
	const char *content = rep->element[1]->type == REDIS_REPLY_STRING ? rep->element[1]->str : "";
	const char *params[] = {room, rep->element[0]->str, content};
	int gone = 0;
	PGresult *r = api_sql(c,
			      "INSERT INTO snapshots (room_id, revision, content) VALUES ($1, $2, $3) "
			      "ON CONFLICT DO NOTHING "
			      "RETURNING to_char(saved_at AT TIME ZONE 'UTC', "
			      "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
			      3, params, "23503", &gone); /* 23503: the room was deleted */
	if (r && PQntuples(r) == 1) {
		char data[160];
		snprintf(data, sizeof data, "{\"revision\":%s,\"saved_at\":\"%s\"}",
			 rep->element[0]->str, PQgetvalue(r, 0, 0));
		if (events_emit(rd, room, "snapshot", data, NULL, 0) < 0)
			api_redis_failed(c);
	}
	if (!r && !gone) {
		/* PostgreSQL failed: the claim (ZREM) took the room off the due set, and a room
		 * that goes idle is never marked again. Give the claim back so the next pass
		 * retries; NX keeps an earlier mark made by a commit meanwhile. */
		char due[32];
		snprintf(due, sizeof due, "%lld", clock_wall_ms() + snapshot_interval_ms());
		redisReply *again = redisCommand(rd, "ZADD %s NX %s %s", SNAP_DUE_KEY, due, room);
		if (!again || again->type == REDIS_REPLY_ERROR)
			log_warn("room %s: its snapshot failed and could not be retried", room);
		if (!again)
			api_redis_failed(c);
		else
			freeReplyObject(again);
	}
	if (r)
		PQclear(r);
	freeReplyObject(rep);
}

int doc_snapshotter(const struct api_config *cfg, struct api_conns *conns, volatile int *stop)
{
	log_info("snapshotter: writing room snapshots every %ld ms while rooms change",
		 snapshot_interval_ms());
	int draining = 0;
	for (;;) {
		if (*stop && !draining)
			draining = 1; /* one more pass that takes everything due, then exit */
		struct http_req req = {0};
		struct http_resp resp;
		struct api_ctx c = {.cfg = cfg, .conns = conns, .req = &req, .resp = &resp};
		http_resp_init(&resp);
		redisContext *rd = api_redis(&c);
		redisReply *rep = NULL;
		char bound[32];
		if (draining)
			snprintf(bound, sizeof bound, "+inf");
		else
			snprintf(bound, sizeof bound, "%lld", clock_wall_ms());
		if (rd)
			rep = redisCommand(rd, "ZRANGEBYSCORE %s -inf %s LIMIT 0 100", SNAP_DUE_KEY, bound);
		http_resp_free(&resp);
		size_t n = rep && rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
		for (size_t i = 0; i < n; i++) {
			/* snapshot_room() drops a failed connection (api_redis_failed frees it): never
			 * use rd past that; the rooms left stay due for the next pass */
			if (c.conns->redis != rd || rd->err)
				break;
			redisReply *claim = redisCommand(rd, "ZREM %s %s", SNAP_DUE_KEY, rep->element[i]->str);
			int mine = claim && claim->type == REDIS_REPLY_INTEGER && claim->integer == 1;
			if (claim)
				freeReplyObject(claim);
			if (mine) {
				http_resp_init(&resp);
				snapshot_room(&c, rep->element[i]->str);
				http_resp_free(&resp);
			}
		}
		if (!rep && rd && c.conns->redis == rd)
			api_redis_failed(&c);
		if (rep)
			freeReplyObject(rep);
		if (draining && n == 0)
			break;
		if (!draining)
			usleep(n == 100 ? 0 : 200 * 1000);
	}
	log_info("snapshotter: stopped");
	return 0;
}

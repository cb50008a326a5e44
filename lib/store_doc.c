#include "store_doc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cfg.h"
#include "clock.h"
#include "events.h"
#include "log.h"
#include "rkeys.h"
#include "rnd.h"
#include "rscript.h"
#include "utf8.h"

#define DOC_COMMIT_ATTEMPTS 200
/* The first key of the transaction-level advisory lock that serialises the saves of one
 * room (the second is hashtext(room id)): "CC" and 1. Another room with the same hash only
 * waits for a save to end. */
#define SNAP_LOCK_CLASS "1128464385"
/* user ids a log entry may name: integers a double holds exactly */
#define LOG_USER_MAX 9007199254740992.0
#define SNAP_DUE_KEY rkey0(RK_SNAP_DUE)
/* The bounds an operation read back from storage is parsed with (the op log in Redis, the
 * history batches in PostgreSQL), not those of a request: whatever was stored is read back
 * (docs/INTERNALS.md, "What is stored can be read"). Every stored entry was carried by an
 * event, so neither its inserted text nor its components can be more than the event's
 * bound allows (lib/ot.h, OT_MAX_STORED_COMPONENTS). */
#define DOC_STORED_MAX_INSERT EVENTS_DATA_MAX
_Static_assert(EVENTS_DATA_MAX / 2 <= OT_MAX_STORED_COMPONENTS,
	       "an entry that fits an event has at most OT_MAX_STORED_COMPONENTS components");

/* The hash cc:room:{id}:doc: `revision` and `length` (code points) of the document now,
 * `bytes` (an upper bound of its size in bytes, exact after a fold), `content` = the text
 * at revision `crev`. The operations crev+1..revision are in the ops list, which is never
 * trimmed below them. A commit touches only the small fields and the list: its cost does
 * not depend on the document's size. A hash without `crev` (written before) holds the
 * text at `revision`; the first access folds it into the new shape. */

int store_doc_cfg_load(struct store_doc_cfg *cfg, char *err, int errlen)
{
	const struct cfg_setting table[] = {
		{"DOCUMENT_MAX_BYTES", 1024 * 1024, 1024, 64L * 1024 * 1024, &cfg->max_bytes},
		{"SNAPSHOT_INTERVAL_MS", 2000, 50, 3600000, &cfg->snapshot_interval_ms},
		{"HISTORY_CHECKPOINT_OPS", 5000, 1, 100000000, &cfg->history_checkpoint_ops},
		{"HISTORY_KEEP_OPS_DAYS", 7, 0, 36500, &cfg->history_keep_ops_days},
		{"HISTORY_THIN_INTERVAL_S", 3600, 1, 86400 * 30, &cfg->history_thin_interval_s},
		/* above the fold interval: a bound at or below it would stand in for the regular
		 * fold, not back it up */
		{"DOCUMENT_PENDING_OPS_MAX", DOC_PENDING_MAX, DOC_FOLD_EVERY + 1, 1000000,
		 &cfg->pending_max},
		/* at least the log's count: a repeat whose entry the log holds must be found */
		{"DOCUMENT_COMMITS_KEEP", DOC_COMMITS_KEEP, DOC_OPS_KEEP, 1000000, &cfg->commits_keep},
	};
	if (cfg_load(table, sizeof table / sizeof table[0], err, errlen) < 0)
		return -1;
	/* its default and its least value follow DOCUMENT_MAX_BYTES, read above: the list
	 * should hold a maximal op (a paste of a whole document) and as much again of the ops
	 * before it, or one paste alone would send every client behind it back to a reload */
	long least = 2 * cfg->max_bytes;
	const struct cfg_setting ops[] = {
		{"OPS_LOG_MAX_BYTES",
		 least > DOC_OPS_MAX_BYTES_DEFAULT ? least : DOC_OPS_MAX_BYTES_DEFAULT, 2048,
		 64L * 1024 * 1024 * 1024, &cfg->ops_max_bytes},
	};
	if (cfg_load(ops, 1, err, errlen) < 0)
		return -1;
	if (cfg->ops_max_bytes < least) {
		snprintf(err, (size_t)errlen,
			 "OPS_LOG_MAX_BYTES (%ld) must be at least 2 x DOCUMENT_MAX_BYTES (2 x %ld = "
			 "%ld), so that the operation log holds the largest operation and as much again",
			 cfg->ops_max_bytes, cfg->max_bytes, least);
		return -1;
	}
	return 0;
}

static void keys_of(const char *room, struct rkey *doc, struct rkey *ops)
{
	*doc = rkey1(RK_ROOM_DOC, room);
	*ops = rkey1(RK_ROOM_OPS, room);
}

/* out takes a NUL-terminated copy of text[0..len) as the document at revision rev (what a
 * fold and a history rebuild end with). 0, or -1 out of memory. */
static int state_set(struct doc_state *out, const char *text, size_t len, long long rev)
{
	out->content = malloc(len + 1);
	if (!out->content)
		return -1;
	if (len)
		memcpy(out->content, text, len);
	out->content[len] = '\0';
	out->content_len = len;
	out->revision = rev;
	return 0;
}


void doc_state_free(struct doc_state *d)
{
	free(d->content);
	d->content = NULL;
	d->content_len = 0;
}


/* lib/store_doc.h */
int store_doc_log_entry_parse(const redisReply *e, struct ot_op **op, long long *user,
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
		return ot_parse_json_max(e->str, e->len, DOC_STORED_MAX_INSERT,
					 OT_MAX_STORED_COMPONENTS, op, err, errlen);
	int rc = -1;
	errno = 0;
	cJSON *j = cJSON_ParseWithLength(e->str, e->len);
	if (!j && errno == ENOMEM) { /* cJSON says only "no": malloc says why */
		snprintf(err, errlen, "out of memory");
		return OT_NOMEM;
	}
	const cJSON *u = j ? cJSON_GetObjectItemCaseSensitive(j, "u") : NULL;
	const cJSON *st = j ? cJSON_GetObjectItemCaseSensitive(j, "s") : NULL;
	/* a user id beyond what a double holds exactly is no id (and converting one past
	 * what a long long holds would be undefined) */
	if (!cJSON_IsNumber(u) || !(fabs(u->valuedouble) <= LOG_USER_MAX) || !cJSON_IsString(st)) {
		snprintf(err, errlen, "a log entry has no author");
		goto out;
	}
	/* written by log_entry_write from a parsed op: no \u0000 to hide from cJSON */
	rc = ot_from_cjson_max(cJSON_GetObjectItemCaseSensitive(j, "ops"), DOC_STORED_MAX_INSERT,
			       OT_MAX_STORED_COMPONENTS, op, err, errlen);
	if (rc < 0)
		goto out;
	if (!(*site = strdup(st->valuestring))) {
		snprintf(err, errlen, "out of memory");
		ot_free(*op);
		*op = NULL;
		rc = OT_NOMEM;
		goto out;
	}
	*user = (long long)u->valuedouble;
	*has_author = 1;
	rc = 0;
out:
	cJSON_Delete(j);
	return rc;
}

/* The log entry {"u","s","ops"} with ops_raw (JSON text put in as it is) as its ops, by
 * user and client_id's site (may be NULL); caller frees. */
static char *log_entry_json(const char *ops_raw, long long user, const char *client_id)
{
	char *text = NULL, *site = NULL;
	size_t sl = ot_site_len(client_id);
	cJSON *j = cJSON_CreateObject();
	if (!j || !(site = malloc(sl + 1)))
		goto out;
	if (sl)
		memcpy(site, client_id, sl);
	site[sl] = '\0';
	if (!cJSON_AddNumberToObject(j, "u", (double)user) || !cJSON_AddStringToObject(j, "s", site) ||
	    !cJSON_AddRawToObject(j, "ops", ops_raw))
		goto out;
	text = cJSON_PrintUnformatted(j);
out:
	free(site);
	cJSON_Delete(j);
	return text;
}

/* Composes room's stored ops (JSON strings, each with its exact base length; the first of
 * revision `first`) into one. 0 with *out (caller ot_free()s; NULL when there are none), -1
 * logged, with *bad the revision at fault, or 0 when memory ran out (nothing stored is to
 * blame then). */
static int compose_ops(const char *room, long long first, const redisReply *list,
		       struct ot_op **out, long long *bad)
{
	char err[256];
	struct ot_op *acc = NULL;
	*out = NULL;
	*bad = 0;
	for (size_t i = 0; i < list->elements; i++) {
		struct ot_op *b = NULL, *ab = NULL;
		char *site = NULL;
		long long user;
		int known;
		/* the authors matter only to a transform: a fold takes the ops */
		const char *what = "parse";
		int rc = store_doc_log_entry_parse(list->element[i], &b, &user, &site, &known, err,
						   sizeof err);
		if (rc < 0)
			goto failed;
		free(site);
		if (!acc) {
			acc = b;
			continue;
		}
		what = "compose";
		rc = ot_compose(acc, b, &ab, err, sizeof err);
		ot_free(b);
		ot_free(acc);
		acc = ab; /* NULL on failure */
		if (rc < 0)
			goto failed;
		continue;
	failed:
		ot_free(acc);
		if (rc == OT_NOMEM) { /* nothing stored is to blame: *bad stays 0 */
			log_error("room %s: the document could not be folded: %s", room, err);
			return -1;
		}
		log_error("room %s: stored operation %lld does not %s: %s", room,
			  first + (long long)i, what, err);
		*bad = first + (long long)i;
		return -1;
	}
	*out = acc;
	return 0;
}


/* The `operation` event's data with ops_raw (JSON text put in as it is) as its ops;
 * caller frees. */
static char *operation_event_json(long long revision, const char *ops_raw, long long user_id,
				  const char *username, const char *client_id)
{
	char *text = NULL;
	cJSON *ev = cJSON_CreateObject(), *u;
	if (!ev || !cJSON_AddNumberToObject(ev, "revision", (double)revision) ||
	    !cJSON_AddRawToObject(ev, "ops", ops_raw))
		goto out;
	if (!(u = cJSON_AddObjectToObject(ev, "user")) ||
	    !cJSON_AddNumberToObject(u, "id", (double)user_id) ||
	    !cJSON_AddStringToObject(u, "username", username))
		goto out;
	if (!(client_id ? cJSON_AddStringToObject(ev, "client_id", client_id)
			: cJSON_AddNullToObject(ev, "client_id")))
		goto out;
	text = cJSON_PrintUnformatted(ev);
out:
	cJSON_Delete(ev);
	return text;
}

int doc_operation_event(long long revision, const struct ot_op *op, long long user_id,
			const char *username, const char *client_id, char **data, size_t *len)
{
	*len = 0;
	char *ops = ot_to_json(op);
	*data = ops ? operation_event_json(revision, ops, user_id, username, client_id) : NULL;
	free(ops);
	if (!*data)
		return -1;
	*len = strlen(*data);
	return *len > EVENTS_DATA_MAX ? 1 : 0;
}

#define TS_SQL(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* Appends the ops of one stored batch (a JSON array of the ops first..last) to *acc by
 * composition, up to revision `upto`. 0, or -1 logged. */
static int compose_batch(const char *room, const char *json, size_t len, long long first,
			 long long last, long long upto, size_t max_insert, struct ot_op **acc)
{
	char err[256];
	cJSON *arr = cJSON_ParseWithLength(json, len);
	int rc = -1;
	if (!cJSON_IsArray(arr)) {
		log_error("room %s: a stored history batch is not a JSON array", room);
		goto out;
	}
	long long r = first;
	const cJSON *e;
	cJSON_ArrayForEach(e, arr)
	{
		if (r > upto)
			break;
		struct ot_op *b = NULL, *ab = NULL;
		/* an op log entry with its author ({"u","s","ops"}) or, from before authors were
		 * kept, the bare op */
		const cJSON *ops = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "ops") : e;
		if (ot_from_cjson_max(ops, max_insert, OT_MAX_STORED_COMPONENTS, &b, err, sizeof err) <
		    0) {
			log_error("room %s: stored operation %lld does not parse: %s", room, r, err);
			goto out;
		}
		if (!*acc) {
			*acc = b;
		} else {
			int cr = ot_compose(*acc, b, &ab, err, sizeof err);
			ot_free(b);
			ot_free(*acc);
			*acc = ab;
			if (cr < 0) {
				log_error("room %s: stored operation %lld does not compose: %s", room, r, err);
				goto out;
			}
		}
		r++;
	}
	rc = r - 1 == (upto < last ? upto : last) ? 0 : -1;
	if (rc < 0)
		log_error("room %s: a history batch holds fewer operations than it says", room);
out:
	cJSON_Delete(arr);
	return rc;
}


/* --- reading: fold and restore ----------------------------------------------------- */

/* A fold of room failed at the stored op of revision `at` (ops: the entries from crev + 1
 * on, as read): marks it for DOC_FOLD_FAILED_MS as "<at>:<SHA-1 of that entry, hex>", so
 * that commits at the bound are refused without folding again while the entry stays as it
 * is (doc_commit.lua compares the digest with redis.sha1hex). Best effort: without the mark
 * the next commit at the bound only folds again. */
static void mark_fold_failed(struct rds *rd, const char *room, long long crev,
			     const redisReply *ops, long long at)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char val[24 + 1 + 2 * EVP_MAX_MD_SIZE + 1], ms[24];
	if (at <= crev || (size_t)(at - crev - 1) >= ops->elements)
		return;
	const redisReply *e = ops->element[at - crev - 1];
	if (e->type != REDIS_REPLY_STRING ||
	    EVP_Digest(e->str, e->len, md, &mdlen, EVP_sha1(), NULL) != 1)
		return;
	size_t o = (size_t)snprintf(val, sizeof val, "%lld:", at);
	for (unsigned int i = 0; i < mdlen && o + 3 <= sizeof val; i++)
		o += (size_t)snprintf(val + o, sizeof val - o, "%02x", md[i]);
	snprintf(ms, sizeof ms, "%d", DOC_FOLD_FAILED_MS);
	struct rkey mk = rkey1(RK_ROOM_FOLD_FAILED, room);
	redisReply *r = rds_cmd(rd, mk.s, "SET %s %s PX %s", mk.s, val, ms);
	if (!r || r->type == REDIS_REPLY_ERROR)
		log_warn("room %s: the failed fold could not be marked", room);
	if (r)
		freeReplyObject(r);
}

/* Materialises the document: its text at `crev` plus the ops since, composed and applied
 * once, stored back (compare-and-set) so the next reader starts from there. out gets the
 * text at the revision read. STORE_OK; STORE_NOT_FOUND no document in Redis;
 * STORE_REDIS_UNAVAILABLE (connection dropped); STORE_ERROR the stored state is damaged
 * or out of memory (logged), with out->damaged the revision of the stored op no fold gets
 * past when one is to blame, and out->damaged_text 1 when the stored text before it may be
 * instead (that failure marked: mark_fold_failed). */
static enum store_status fold(struct store *s, const struct store_doc_cfg *cfg, const char *room,
			      struct doc_state *out)
{
	struct rkey dk, ok;
	char err[256];
	keys_of(room, &dk, &ok);
	memset(out, 0, sizeof *out);
	struct rds *rd;
	if (store_redis(s, &rd) != STORE_OK)
		return store_fail(s, STORE_REDIS_UNAVAILABLE, "the document store is unavailable");
	const char *args[] = {dk.s, ok.s};
	redisReply *rep = rds_script(rd, &rs_doc_fold_read, 2, 2, args, NULL);
	struct ot_op *all = NULL;
	struct buf text;
	buf_init(&text, 0);
	enum store_status st = STORE_ERROR;
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER) {
		store_redis_failed(s);
		st = store_fail(s, STORE_REDIS_UNAVAILABLE, "the document store is unavailable");
		goto out;
	}
	long long kind = rep->element[0]->integer;
	if (kind == -1) {
		st = STORE_NOT_FOUND;
		goto out;
	}
	if (kind == -2 || rep->elements < 5) {
		log_error("room %s: the operations after the stored text are missing", room);
		goto out;
	}
	long long rev = rep->element[1]->integer, crev = rep->element[2]->integer;
	const redisReply *content = rep->element[3], *ops = rep->element[4];
	const char *base = content->type == REDIS_REPLY_STRING ? content->str : "";
	size_t base_len = content->type == REDIS_REPLY_STRING ? content->len : 0;
	if (ops->type != REDIS_REPLY_ARRAY)
		goto out;
	if (compose_ops(room, crev + 1, ops, &all, &out->damaged) < 0) {
		/* out->damaged 0 (out of memory): nothing is marked */
		mark_fold_failed(rd, room, crev, ops, out->damaged);
		goto out;
	}
	int rc = all ? ot_apply(all, base, base_len, &text, err, sizeof err) : 0;
	if (rc == OT_NOMEM) {
		log_error("room %s: the document could not be folded: %s", room, err);
		goto out;
	}
	if (rc < 0) {
		/* the ops fit together but not onto the stored text: either that text (at crev)
		 * or the first of them is at fault, nothing here tells which */
		log_error("room %s: the stored text at revision %lld and the stored operation of "
			  "revision %lld do not fit together: %s",
			  room, crev, crev + 1, err);
		out->damaged = crev + 1;
		out->damaged_text = 1;
		mark_fold_failed(rd, room, crev, ops, out->damaged);
		goto out;
	}
	if (state_set(out, all ? text.data : base, all ? text.len : base_len, rev) < 0)
		goto out;
	st = STORE_OK;
	if (all || kind == 0) {
		/* store it back (and trim the ops list, which may now drop what was folded);
		 * losing the race to another folder or a failure here only means the next reader
		 * folds again */
		char crevs[24], revs[24], cps[24], bytes[24], keep[16], budget[24];
		snprintf(crevs, sizeof crevs, "%lld", crev);
		snprintf(revs, sizeof revs, "%lld", rev);
		snprintf(cps, sizeof cps, "%zu", utf8_count(out->content, out->content_len));
		snprintf(bytes, sizeof bytes, "%zu", out->content_len);
		snprintf(keep, sizeof keep, "%d", DOC_OPS_KEEP);
		snprintf(budget, sizeof budget, "%ld", cfg->ops_max_bytes);
		const char *sargs[] = {dk.s,  ok.s,  crevs, revs, out->content, cps,
				       bytes, kind == 0 ? "1" : "0", keep, budget};
		size_t lens[10];
		for (int i = 0; i < 10; i++)
			lens[i] = strlen(sargs[i]);
		lens[4] = out->content_len;
		redisReply *sr = rds_script(rd, &rs_doc_fold_store, 2, 10, sargs, lens);
		if (!sr)
			store_redis_failed(s);
		else
			freeReplyObject(sr);
	}
out:
	if (st == STORE_ERROR)
		store_fail(s, STORE_ERROR, "the document could not be put together");
	if (st != STORE_OK)
		doc_state_free(out);
	ot_free(all);
	buf_free(&text);
	if (rep)
		freeReplyObject(rep);
	return st;
}

/* STORE_OK when the room's row is in PostgreSQL, STORE_NOT_FOUND when it is not, or the
 * query's failure. */
static enum store_status room_row_exists(struct store *s, const char *room)
{
	const char *params[] = {room};
	PGresult *r;
	enum store_status st = store_sql(s, &r, NULL, "SELECT 1 FROM rooms WHERE id = $1", 1, params);
	if (st != STORE_OK)
		return st;
	int found = PQntuples(r) == 1;
	PQclear(r);
	return found ? STORE_OK : store_fail(s, STORE_NOT_FOUND, "no room with id %s", room);
}

/* Creates the Redis document from the newest saved revision (a checkpoint and the typed
 * operations after it), or empty at revision 0 when the room has no saved history at all.
 * Saved history that does not rebuild its newest revision is STORE_ERROR (logged), never
 * an empty document. STORE_NOT_FOUND when the room's row is gone:
 * a deleted room gets no document back (its commits then answer 404, and no keys without
 * an expiry are left behind). The row is read after the document is written: a DELETE
 * that removes the row after this read clears the room's keys after it too
 * (fcgi/h_rooms.c, h_room_delete), and one that removed it before is seen here, and what
 * was just written is taken back. */
static enum store_status restore(struct store *s, const struct store_doc_cfg *cfg,
				 struct rds *rd, const char *room)
{
	struct doc_state h = {0};
	enum store_status hs = store_doc_history_text(s, cfg, room, -1, 0, &h, NULL);
	if (hs != STORE_OK && hs != STORE_NOT_FOUND)
		return hs;
	int saved = hs == STORE_OK;
	struct rkey dk, ok;
	char rev[24], cps[24], bytes[24];
	keys_of(room, &dk, &ok);
	snprintf(rev, sizeof rev, "%lld", saved ? h.revision : 0);
	const char *content = saved ? h.content : "";
	size_t clen = saved ? h.content_len : 0;
	snprintf(cps, sizeof cps, "%zu", utf8_count(content, clen));
	snprintf(bytes, sizeof bytes, "%zu", clen);
	/* the commits set goes with the ops: its revisions name the lost document's */
	struct rkey ck = rkey1(RK_ROOM_COMMITS, room);
	const char *args[] = {dk.s, ok.s, ck.s, rev, content, cps, bytes};
	size_t lens[] = {strlen(dk.s), strlen(ok.s), strlen(ck.s), strlen(rev), clen, strlen(cps),
			 strlen(bytes)};
	redisReply *rep = rds_script(rd, &rs_doc_init, 3, 7, args, lens);
	enum store_status st = rep && rep->type == REDIS_REPLY_INTEGER ? STORE_OK : STORE_REDIS_UNAVAILABLE;
	if (st == STORE_OK && rep->integer == 1 && saved) {
		log_info("room %s: document restored from its history at revision %s", room, rev);
		s->restores++;
	}
	if (rep)
		freeReplyObject(rep);
	doc_state_free(&h);
	if (st != STORE_OK) {
		store_redis_failed(s);
		store_fail(s, st, "the document store is unavailable");
		return st;
	}
	if ((st = room_row_exists(s, room)) == STORE_NOT_FOUND) {
		/* the commits set too: the restore kept it without an expiry (doc_init.lua) */
		redisReply *del = rds_cmd(rd, dk.s, "DEL %s %s %s", dk.s, ok.s, ck.s);
		if (!del || del->type == REDIS_REPLY_ERROR)
			log_warn("room %s: the document restored for a deleted room could not be "
				 "deleted",
				 room);
		if (del)
			freeReplyObject(del);
		else
			store_redis_failed(s);
		/* the message names the room, not the Redis failure */
		store_fail(s, STORE_NOT_FOUND, "no room with id %s", room);
	}
	return st;
}

enum store_status store_doc_read(struct store *s, const struct store_doc_cfg *cfg,
				 const char *room, struct doc_state *out)
{
	memset(out, 0, sizeof *out);
	for (int attempt = 0; attempt < 2; attempt++) {
		enum store_status st = fold(s, cfg, room, out);
		if (st != STORE_NOT_FOUND)
			return st;
		struct rds *rd;
		if ((st = store_redis(s, &rd)) != STORE_OK)
			return st;
		if (attempt == 0 && (st = restore(s, cfg, rd, room)) == STORE_OK)
			continue;
		if (attempt == 1)
			st = store_fail(s, STORE_REDIS_UNAVAILABLE, "the document could not be loaded");
		return st;
	}
	return store_fail(s, STORE_REDIS_UNAVAILABLE, "the document could not be loaded");
}

/* --- committing ------------------------------------------------------------------------ */

void doc_commit_text_free(struct doc_commit_text *t)
{
	for (int i = 0; i < 2; i++) {
		free(t->log[i]);
		free(t->ev[i]);
	}
}

/* Splits text at its one \x01 (where the ops were put in raw): *pre = what comes before
 * plus ops_open, *post = "]" plus what comes after. 0, or -1 (out of memory, or no mark). */
static int cut_at_mark(const char *text, const char *ops_open, char **pre, char **post)
{
	const char *m = text ? strchr(text, '\x01') : NULL;
	*pre = *post = NULL;
	if (!m)
		return -1;
	size_t n = (size_t)(m - text), ol = strlen(ops_open);
	*pre = malloc(n + ol + 1);
	*post = malloc(strlen(m + 1) + 2);
	if (!*pre || !*post) {
		free(*pre);
		free(*post);
		*pre = *post = NULL;
		return -1;
	}
	memcpy(*pre, text, n);
	memcpy(*pre + n, ops_open, ol + 1);
	(*post)[0] = ']';
	strcpy(*post + 1, m + 1);
	return 0;
}

/* A \x01 cannot occur in printed JSON otherwise (cJSON escapes control characters in
 * strings), so it marks where the ops go. */
int doc_commit_text(struct doc_commit_text *t, const struct ot_op *a, long long revision,
		    const struct doc_commit *dc)
{
	memset(t, 0, sizeof *t);
	char *ops = NULL, *log = NULL, *ev = NULL;
	int rc = -1;
	cJSON *arr = ot_to_cjson(a), *e;
	if (!arr)
		return -1;
	cJSON_ArrayForEach(e, arr)
	{
		if (cJSON_IsString(e))
			t->ins_bytes += strlen(e->valuestring);
		else if (cJSON_IsNumber(e) && e->valuedouble < 0)
			t->del_cps += (size_t)-e->valuedouble;
	}
	int n = cJSON_GetArraySize(arr);
	cJSON *last = n > 0 ? cJSON_GetArrayItem(arr, n - 1) : NULL;
	if (last && cJSON_IsNumber(last) && last->valuedouble > 0) {
		t->retain = (size_t)last->valuedouble;
		cJSON_DeleteItemFromArray(arr, n - 1);
		n--;
	}
	t->comps = (size_t)n;
	t->span = ot_base_len(a) - t->retain;
	t->delta = (long long)ot_target_len(a) - (long long)ot_base_len(a);
	t->sep = n > 0 ? "," : "";
	if (!(ops = cJSON_PrintUnformatted(arr)))
		goto out;
	ops[strlen(ops) - 1] = '\0'; /* "[…" without its "]" */
	log = log_entry_json("\x01", dc->user_id, dc->client_id);
	ev = operation_event_json(revision, "\x01", dc->user_id, dc->username, dc->client_id);
	if (cut_at_mark(log, ops, &t->log[0], &t->log[1]) < 0 ||
	    cut_at_mark(ev, ops, &t->ev[0], &t->ev[1]) < 0)
		goto out;
	t->ev_max = strlen(t->ev[0]) + strlen(t->ev[1]) + 21;
	rc = 0;
out:
	if (rc < 0)
		doc_commit_text_free(t);
	cJSON_Delete(arr);
	free(ops);
	free(log);
	free(ev);
	return rc;
}

/* Transforms *op, by `me`, over every committed op in the reply's 5th element, in order;
 * at one position the lower author's insert goes first (lib/ot.h, "Who goes first").
 * doc_cps is the stored length of the document now. */
static enum store_status transform_over(struct store *s, redisReply *rep, struct ot_op **op,
					size_t doc_cps, const struct ot_author *me)
{
	char err[256];
	redisReply *list = rep->elements > 4 ? rep->element[4] : NULL;
	size_t n = list && list->type == REDIS_REPLY_ARRAY ? list->elements : 0;
	/* The op was made against the document of the client's revision: its length is the
	 * base length of the first committed op after it, or the current length if none. */
	for (size_t i = 0; i < n; i++) {
		struct ot_op *b = NULL, *a2 = NULL, *b2 = NULL;
		char *site = NULL;
		long long user = 0;
		int known = 0;
		if (store_doc_log_entry_parse(list->element[i], &b, &user, &site, &known, err,
					      sizeof err) < 0) {
			log_error("a stored operation does not parse: %s", err);
			return store_fail(s, STORE_ERROR, "the operation log is damaged");
		}
		if (i == 0 && ot_extend(*op, ot_base_len(b), err, sizeof err) < 0) {
			free(site);
			ot_free(b);
			return store_fail(s, STORE_INVALID, "%s", err);
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
			return store_fail(s, STORE_ERROR, "the operation could not be transformed");
		}
		ot_free(b2);
		ot_free(*op);
		*op = a2;
	}
	if (n == 0 && ot_extend(*op, doc_cps, err, sizeof err) < 0)
		return store_fail(s, STORE_INVALID, "%s", err);
	return STORE_OK;
}

/* The exact size of the document after `a` (extended to the document at `rev`), when the
 * stored bound says it might be over the limit: fold the text (O(document), near the
 * limit only) and apply. STORE_OK with *bytes; STORE_CONFLICT the document moved past rev
 * (read again); a failure otherwise (STORE_ERROR with dc->damaged when the fold found a
 * damaged stored op). */
static enum store_status exact_size_after(struct store *s, const struct store_doc_cfg *cfg,
					  struct doc_commit *dc, long long rev,
					  const struct ot_op *a, size_t *bytes)
{
	char err[256];
	struct doc_state d;
	enum store_status st = fold(s, cfg, dc->room, &d);
	if (st == STORE_NOT_FOUND)
		return store_fail(s, STORE_REDIS_UNAVAILABLE, "the document could not be loaded");
	if (st != STORE_OK) {
		dc->damaged = d.damaged;
		dc->damaged_text = d.damaged_text;
		return st;
	}
	if (d.revision != rev) {
		doc_state_free(&d);
		return STORE_CONFLICT;
	}
	struct buf out;
	/* room for the limit plus one insert, so "too large" is told apart from "does not fit" */
	buf_init(&out, (size_t)cfg->max_bytes + OT_DEFAULT_MAX_INSERT + 16);
	int rc = ot_apply(a, d.content, d.content_len, &out, err, sizeof err);
	doc_state_free(&d);
	if (rc < 0)
		st = store_fail(s, STORE_INVALID, "%s", err);
	else
		*bytes = out.len;
	buf_free(&out);
	return st;
}

/* "<user id>|<revision>|<ops digest>|<client_id>": a client_id is at most 64 characters
 * of up to 4 bytes each (fcgi/h_docs.c), so it always fits whole. */
#define DOC_MEMBER_MAX (24 + 1 + 24 + 1 + 32 + 1 + 64 * 4 + 1)

/* The member of the commits set (RK_ROOM_COMMITS) that names this commit request: the
 * user, the revision it was made against, a digest of its operation as sent (the first 16
 * bytes of the SHA-256 of its canonical JSON) and the whole client_id. A repeat is the same
 * request again; a client that sends one client_id with all its operations (a stable site,
 * as docs/API.md allows) is not taken for repeating itself, nor is another user with an
 * equal request. "" without a client_id (nothing to recognise it by), or when out of
 * memory or too long to keep whole: such a commit is not recognised. */
static void dedupe_member(const struct doc_commit *dc, char *out, size_t cap)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[33];
	out[0] = '\0';
	if (!dc->client_id || !*dc->client_id)
		return;
	cJSON *j = ot_to_cjson(dc->op);
	char *text = j ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	int ok = text && EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL) == 1 &&
		 mdlen >= 16;
	free(text);
	if (!ok)
		return;
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	int n = snprintf(out, cap, "%lld|%lld|%s|%s", dc->user_id, dc->revision, hex, dc->client_id);
	if (n < 0 || (size_t)n >= cap)
		out[0] = '\0';
}

/* The room's snapshot mark: ZADD LT on the schedule, made once a commit was applied (the
 * snapshotter saves the room by `due`). LT keeps an earlier mark (as NX did) and moves a
 * room a snapshotter holds (its lease's end, store_doc_claim) down to this commit's due
 * time, so the release after that save leaves the room due (store_doc_release). Best
 * effort: a mark that failed (logged) is made again by the room's next commit, if any; the
 * snapshotter's walk over the rooms (store_doc_sweep) finds a room whose last commits lost
 * their mark within SNAPSHOT_SWEEP_MS, also when this process died before the ZADD. The
 * client gets its 200 either way: the edit is applied, and an error would make a client
 * without a client_id send it again.
 *
 * Why after the commit's answer and not in its pipeline: the schedule is a key of another
 * slot than the room's, so it cannot be in the commit script (docs/INTERNALS.md, "Redis
 * Cluster: one slot per script"), and whether to mark depends on that script's answer.
 * Pipelined ahead of the script it was made for every attempt, refused ones too, so any
 * signed-in user could put any room id on the schedule by posting operations to it. Sent
 * without waiting for its answer it would leave an unread reply on a connection other
 * commands share. So a commit that was applied costs one more round trip; a refused one
 * costs none. */
static void mark_due(struct store *s, const struct store_doc_cfg *cfg, const char *room)
{
	struct rds *rd;
	char due[32];
	if (store_redis(s, &rd) != STORE_OK) {
		log_warn("room %s: its snapshot mark failed: %s", room, s->msg);
		return;
	}
	snprintf(due, sizeof due, "%lld", clock_wall_ms() + cfg->snapshot_interval_ms);
	redisReply *z = rds_cmd(rd, SNAP_DUE_KEY, "ZADD %s LT %s %s", SNAP_DUE_KEY, due, room);
	if (!z)
		log_warn("room %s: its snapshot mark failed: %s", room, rds_error(rd));
	else if (z->type == REDIS_REPLY_ERROR)
		log_warn("room %s: its snapshot mark failed: %s", room, z->str);
	if (z)
		freeReplyObject(z);
}

/* One attempt: the commit script with a's texts, expecting `expected`. The reply (caller
 * frees), or NULL when Redis failed. */
static redisReply *commit_attempt(struct store *s, const struct store_doc_cfg *cfg,
				  const struct doc_commit *dc, const struct doc_commit_text *t,
				  long long expected, int role_checked, const char *exact,
				  const char *member)
{
	const char *room = dc->room;
	struct rkey dk, ok;
	keys_of(room, &dk, &ok);
	struct rkey ek = rkey1(RK_ROOM_EVENTS, room);
	struct rkey mk = rkey1(RK_ROOM_MEMBERS, room), ck = rkey1(RK_ROOM_COMMITS, room);
	struct rkey fk = rkey1(RK_ROOM_FOLD_FAILED, room);
	char exp[24], uid[24], span[24], ret[24], delta[24], ins[24], del[24], limit[24];
	char keep[16], pmax[24], budget[24], comps[24], cmax[24], ckeep[24];
	snprintf(exp, sizeof exp, "%lld", expected);
	if (role_checked)
		uid[0] = '\0';
	else
		snprintf(uid, sizeof uid, "%lld", dc->user_id);
	snprintf(span, sizeof span, "%zu", t->span);
	snprintf(ret, sizeof ret, "%zu", t->retain);
	snprintf(delta, sizeof delta, "%lld", t->delta);
	snprintf(ins, sizeof ins, "%zu", t->ins_bytes);
	snprintf(del, sizeof del, "%zu", t->del_cps);
	snprintf(limit, sizeof limit, "%ld", cfg->max_bytes);
	snprintf(keep, sizeof keep, "%d", DOC_OPS_KEEP);
	snprintf(pmax, sizeof pmax, "%ld", cfg->pending_max);
	snprintf(budget, sizeof budget, "%ld", cfg->ops_max_bytes);
	snprintf(comps, sizeof comps, "%zu", t->comps);
	snprintf(cmax, sizeof cmax, "%d", OT_MAX_COMPONENTS);
	snprintf(ckeep, sizeof ckeep, "%ld", cfg->commits_keep);
	const char *args[] = {dk.s,	 ok.s,	   ek.s,      mk.s,	 ck.s,	    fk.s,
			      exp,	 uid,	   span,      ret,	 delta,	   ins,
			      del,	 limit,	   exact,     t->log[0], t->log[1], t->ev[0],
			      t->ev[1], t->sep,	   keep,      EVENTS_HISTORY_BOUNDS,
			      member,	 pmax,	   budget,    comps,	 cmax,	    ckeep};
	struct rds *rd;
	redisReply *r = NULL;
	if (store_redis(s, &rd) == STORE_OK)
		r = rds_script(rd, &rs_doc_commit, 6, sizeof args / sizeof args[0], args, NULL);
	if (r && (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
		  r->element[0]->type != REDIS_REPLY_INTEGER)) {
		freeReplyObject(r);
		r = NULL;
	}
	return r;
}

/* The reply's element i as an integer (0 when it is missing or not one). */
static long long reply_int(const redisReply *r, size_t i)
{
	return i < r->elements && r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer
									      : 0;
}

/* The refusal of an op that would be stored with `n` components, more than every reader
 * of the log takes: nothing is stored (docs/INTERNALS.md, "What is stored can be read"). */
static enum store_status too_many_components(struct store *s, struct doc_commit *dc, size_t n)
{
	dc->event_too_large = 0;
	dc->components = n;
	return store_fail(s, STORE_TOO_LARGE,
			  "the operation would be stored with %zu components; at most %d are kept", n,
			  OT_MAX_COMPONENTS);
}

enum store_status store_doc_commit(struct store *s, const struct store_doc_cfg *cfg,
				   struct doc_commit *dc)
{
	char err[256];
	const char *room = dc->room;
	dc->applied = NULL;
	dc->refusal = STORE_REFUSE_NONE;
	dc->races = 0;
	dc->repeated = 0;
	dc->unfolded = 0;
	dc->damaged = 0;
	dc->damaged_text = 0;
	dc->components = 0;
	dc->applied_rev = 0;
	char member[DOC_MEMBER_MAX]; /* how a repeat of this very request is recognised */
	dedupe_member(dc, member, sizeof member);
	struct ot_author me;
	ot_author_set(&me, dc->user_id, dc->client_id);
	/* a: the client's op, transformed up to `expected` as the answers bring what others
	 * committed; exact: the new size in bytes once measured (near the limit only) */
	struct ot_op *a = ot_copy(dc->op);
	if (!a)
		return store_fail(s, STORE_ERROR, "out of memory");
	long long expected = dc->revision;
	int role_checked = 0, restored = 0, folded_at_bound = 0;
	char exact[24] = "";
	enum store_status st = STORE_BUSY;

	for (int attempt = 0; attempt < DOC_COMMIT_ATTEMPTS; attempt++) {
		struct doc_commit_text t;
		if (doc_commit_text(&t, a, expected + 1, dc) < 0) {
			st = store_fail(s, STORE_ERROR, "out of memory");
			break;
		}
		if (t.ev_max > EVENTS_DATA_MAX) {
			/* refused before the commit: the event could not reach every subscriber */
			dc->event_too_large = 1;
			dc->size = t.ev_max;
			doc_commit_text_free(&t);
			st = store_fail(s, STORE_TOO_LARGE, "the operation's event would be %zu bytes",
					dc->size);
			break;
		}
		/* every reader of the log takes at most OT_MAX_COMPONENTS from a commit: one the
		 * transform split past it (another's insert inside its delete splits that delete
		 * in two) is refused here; one at the limit that the script would give its final
		 * retain, by the script (answer 10). With a retain of its own the entry has one
		 * more (span is then short of the document: the script writes it) */
		size_t stored = t.comps + (t.retain > 0);
		if (stored > OT_MAX_COMPONENTS) {
			doc_commit_text_free(&t);
			st = too_many_components(s, dc, stored);
			break;
		}
		redisReply *r = commit_attempt(s, cfg, dc, &t, expected, role_checked, exact, member);
		doc_commit_text_free(&t);
		exact[0] = '\0';
		if (!r) {
			store_redis_failed(s);
			st = store_fail(s, STORE_REDIS_UNAVAILABLE, "the document store is unavailable");
			break;
		}
		long long kind = r->element[0]->integer, rev = reply_int(r, 1);
		size_t len = (size_t)reply_int(r, kind == 1 ? 4 : 2);
		/* read before r is freed */
		long long unfolded = kind == 8 || kind == 9 ? reply_int(r, 2) : 0;
		long long ncomps = kind == 10 ? reply_int(r, 2) : 0;
		long long became = kind == 4 ? reply_int(r, 2) : 0;
		if (kind == 1) {
			long long pending = reply_int(r, 3);
			int over = reply_int(r, 5) == 1; /* the ops not yet folded pass the budget */
			freeReplyObject(r);
			/* the op as the log holds it: with its exact length */
			if (ot_extend(a, len, err, sizeof err) < 0) {
				log_error("room %s: a committed op does not fit its length: %s", room, err);
				st = store_fail(s, STORE_ERROR, "the operation log is damaged");
				break;
			}
			/* durability: the commit is answered only once enough replicas hold it
			 * (REDIS_WAIT_REPLICAS; lib/rds.h). Short of that it is applied but not
			 * safe from the loss of its master: 503, and the client's retry is
			 * recognised as this very commit (kind 7) */
			struct rkey wk = rkey1(RK_ROOM_DOC, room);
			int waited = rds_wait(s->redis, wk.s, err, sizeof err);
			/* applied either way (the WAIT must follow the write directly): due */
			mark_due(s, cfg, room);
			if (waited < 0) {
				log_warn("room %s: revision %lld: %s", room, rev, err);
				st = store_fail(s, STORE_REDIS_UNAVAILABLE,
						"the change was not confirmed by a Redis replica in time; "
						"try again");
				break;
			}
			dc->applied = a;
			dc->new_rev = rev;
			/* compaction: the committer that makes the pending ops a multiple of
			 * DOC_FOLD_EVERY folds them (one at a time, without a lock), so the text
			 * a reader must rebuild stays bounded even without a snapshotter; so does
			 * the one whose pending ops alone hold more than OPS_LOG_MAX_BYTES (the
			 * script could trim nothing older), and the fold's store trims the list
			 * back within it (lib/lua/doc_fold_store.lua). A failure costs the next
			 * reader's time; a fold that keeps failing stops commits at
			 * cfg->pending_max (kind 8 below), and is not asked for by the budget
			 * while its mark lasts (DOC_FOLD_FAILED_MS). */
			if (pending > 0 && (pending % DOC_FOLD_EVERY == 0 || over)) {
				struct doc_state d;
				if (fold(s, cfg, room, &d) == STORE_OK)
					doc_state_free(&d);
				else
					log_warn("room %s: %lld operations could not be folded (%s); "
						 "commits are refused once %ld wait",
						 room, pending, s->msg, cfg->pending_max);
			}
			return STORE_OK;
		}
		if (kind == 7) {
			/* this very request was committed already (its answer was lost, and the
			 * client sent it again): the first commit's revision and op as applied
			 * are the answer; nothing is applied */
			char *site = NULL;
			long long user = 0;
			int known = 0;
			if (r->elements < 3 ||
			    store_doc_log_entry_parse(r->element[2], &dc->applied, &user, &site,
						      &known, err, sizeof err) < 0) {
				log_error("room %s: the entry of revision %lld does not parse", room, rev);
				st = store_fail(s, STORE_ERROR, "the operation log is damaged");
			} else {
				dc->new_rev = rev;
				dc->repeated = 1;
				st = STORE_OK;
			}
			/* durability of the first commit, which another connection wrote (its
			 * WAIT may have fallen short): a WAIT on this connection waits for the
			 * master's replication offset as of its last command, this script, read
			 * or write (Redis records it after every command), so it covers the
			 * first commit too */
			if (st == STORE_OK && rds_wait_replicas(s->redis) > 0) {
				struct rkey wk = rkey1(RK_ROOM_DOC, room);
				if (rds_wait(s->redis, wk.s, err, sizeof err) < 0) {
					log_warn("room %s: repeated revision %lld: %s", room, rev, err);
					ot_free(dc->applied);
					dc->applied = NULL;
					st = store_fail(s, STORE_REDIS_UNAVAILABLE,
							"the change was not confirmed by a Redis replica "
							"in time; try again");
				}
			}
			free(site);
			freeReplyObject(r);
			break;
		}
		if (kind == 2) {
			/* the first answer to a client behind, or a lost race: transform over the
			 * ops it brings and try again at once (a pause would let more in first) */
			if (attempt > 0)
				dc->races++;
			st = transform_over(s, r, &a, len, &me);
			freeReplyObject(r);
			if (st != STORE_OK)
				break;
			/* a retain or delete past the end of the document is refused here */
			if (ot_extend(a, len, err, sizeof err) < 0) {
				st = store_fail(s, STORE_INVALID, "%s", err);
				break;
			}
			expected = rev;
			continue;
		}
		if (kind == -3) {
			/* not an editor by the cache: a viewer is refused here; anyone else (a cold
			 * cache, a stranger, a missing room) is judged by PostgreSQL, as every other
			 * edit is (store_room_access) */
			int viewer = r->elements > 1 && r->element[1]->type == REDIS_REPLY_STRING &&
				     strcmp(r->element[1]->str, "viewer") == 0;
			freeReplyObject(r);
			if (viewer) {
				dc->refusal = STORE_REFUSE_VIEWER;
				st = store_fail(s, STORE_FORBIDDEN, "viewers can only watch this room");
				break;
			}
			char role[STORE_ROLE_MAX], lang[STORE_LANGUAGE_MAX];
			st = store_room_access(s, room, dc->user_id, 1, role, lang, &dc->refusal);
			if (st != STORE_OK)
				break;
			role_checked = 1;
			continue;
		}
		freeReplyObject(r);
		if (kind == -1) {
			struct rds *rd;
			if (restored) {
				st = store_fail(s, STORE_REDIS_UNAVAILABLE, "the document could not be loaded");
				break;
			}
			if ((st = store_redis(s, &rd)) != STORE_OK || (st = restore(s, cfg, rd, room)) != STORE_OK)
				break;
			restored = 1;
			continue;
		}
		if (kind == 3) {
			/* written in the old shape (content only): a fold brings it into the new one */
			struct doc_state d;
			st = fold(s, cfg, room, &d);
			doc_state_free(&d);
			/* gone meanwhile: the next attempt restores it */
			if (st != STORE_OK && st != STORE_NOT_FOUND)
				break;
			st = STORE_BUSY;
			continue;
		}
		if (kind == 8 || kind == 9) {
			/* cfg->pending_max ops wait to be folded: fold them now (once per request:
			 * a document repaired since is taken up again without a reader's help), or
			 * refuse, so the ops list and every read's replay stay bounded. Nothing
			 * committed is touched. 9: a fold failed moments ago and the entry it
			 * failed at is as it was then (the mark, DOC_FOLD_FAILED_MS): refused
			 * without reading the list again */
			if (kind == 8 && !folded_at_bound) {
				folded_at_bound = 1;
				struct doc_state d;
				st = fold(s, cfg, room, &d);
				/* folded: commit again; gone meanwhile: the next attempt restores it */
				if (st == STORE_OK || st == STORE_NOT_FOUND) {
					doc_state_free(&d);
					st = STORE_BUSY;
					continue;
				}
				if (st != STORE_ERROR)
					break; /* Redis failed: say so, as for any commit */
			}
			log_error("room %s: commit refused: %lld operations wait to be folded (the most "
				  "is %ld, DOCUMENT_PENDING_OPS_MAX) and they do not fold%s: the stored "
				  "operations are damaged and must be repaired (docs/OPERATIONS.md)",
				  room, unfolded, cfg->pending_max,
				  kind == 9 ? " (a fold failed moments ago, not tried again)" : "");
			dc->unfolded = unfolded > 0 ? unfolded : 1;
			st = store_fail(s, STORE_ERROR, "the document's history cannot be folded");
			break;
		}
		if (kind == 0 || kind == 4) {
			dc->current = rev;
			dc->ahead = kind == 0;
			/* 4 with a third element: this very request became that revision, and
			 * the log has dropped its entry since (read before r was freed) */
			dc->applied_rev = kind == 4 && became > 0 ? became : 0;
			/* the client takes applied_rev as its edit committed for good, as it takes
			 * a repeat's 200 (kind 7): the same WAIT first, which covers the first
			 * commit (its own WAIT may have fallen short, and a budget trimmed by bytes
			 * can drop its entry a few commits later) */
			if (dc->applied_rev > 0 && rds_wait_replicas(s->redis) > 0) {
				struct rkey wk = rkey1(RK_ROOM_DOC, room);
				if (rds_wait(s->redis, wk.s, err, sizeof err) < 0) {
					log_warn("room %s: repeat of revision %lld: %s", room,
						 dc->applied_rev, err);
					dc->applied_rev = 0;
					st = store_fail(s, STORE_REDIS_UNAVAILABLE,
							"the change was not confirmed by a Redis replica "
							"in time; try again");
					break;
				}
			}
			st = store_fail(s, STORE_CONFLICT, "revision %lld is %s (now at %lld)",
					dc->revision, kind == 0 ? "ahead" : "too old", rev);
			break;
		}
		if (kind == 5) {
			/* the op reaches past the end: ot_extend says how, in the usual words */
			if (ot_extend(a, len, err, sizeof err) < 0)
				st = store_fail(s, STORE_INVALID, "%s", err);
			else
				st = store_fail(s, STORE_ERROR, "the document store answered oddly");
			break;
		}
		if (kind == 10) {
			st = too_many_components(s, dc, (size_t)ncomps);
			break;
		}
		if (kind == 6) {
			/* the bound says the document might pass the limit: measure it exactly
			 * (folds the text: near the limit only) */
			size_t bytes = 0;
			if (ot_extend(a, len, err, sizeof err) < 0) {
				st = store_fail(s, STORE_INVALID, "%s", err);
				break;
			}
			st = exact_size_after(s, cfg, dc, rev, a, &bytes);
			if (st == STORE_CONFLICT) {
				st = STORE_BUSY;
				continue; /* moved on meanwhile: the next answer brings the ops */
			}
			if (st != STORE_OK)
				break;
			if (bytes > (size_t)cfg->max_bytes) {
				dc->event_too_large = 0;
				dc->size = bytes;
				st = store_fail(s, STORE_TOO_LARGE, "the document would be %zu bytes; the "
						"limit is %ld", bytes, cfg->max_bytes);
				break;
			}
			snprintf(exact, sizeof exact, "%zu", bytes);
			st = STORE_BUSY;
			continue;
		}
		st = store_fail(s, STORE_ERROR, "the document store answered oddly");
		break;
	}
	ot_free(a);
	if (st == STORE_BUSY)
		st = store_fail(s, STORE_BUSY, "the room is too busy; try again");
	return st;
}

/* --- history ------------------------------------------------------------------------- */

/* The newest revision of room kept in snapshots (*snap) and in history_ops (*hist); -1
 * where there is none. */
static enum store_status saved_revisions(struct store *s, const char *room, long long *snap,
					 long long *hist)
{
	const char *params[] = {room};
	PGresult *r;
	enum store_status st = store_sql(s, &r, NULL,
					 "SELECT (SELECT max(revision) FROM snapshots WHERE room_id = $1), "
					 "(SELECT max(revision) FROM history_ops WHERE room_id = $1)",
					 1, params);
	if (st != STORE_OK)
		return st;
	*snap = PQgetisnull(r, 0, 0) ? -1 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	*hist = PQgetisnull(r, 0, 1) ? -1 : strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	return STORE_OK;
}

/* The bytes of the batches saved after the checkpoint at `cp` (the newest), up to the newest
 * batch at `ops`: that batch's chain_bytes, or for one saved before the column was kept the
 * sum of the batches (their lengths, which PostgreSQL knows without reading the text). */
static enum store_status chain_bytes(struct store *s, const char *room, long long cp,
				     long long ops, long long *bytes)
{
	*bytes = 0;
	if (ops <= cp)
		return STORE_OK; /* no batch since the checkpoint */
	char cps[24], opss[24];
	snprintf(cps, sizeof cps, "%lld", cp);
	snprintf(opss, sizeof opss, "%lld", ops);
	const char *params[] = {room, cps, opss};
	PGresult *r;
	enum store_status st = store_sql(
		s, &r, NULL,
		"SELECT COALESCE((SELECT chain_bytes FROM history_ops WHERE room_id = $1 AND "
		"revision = $3), (SELECT COALESCE(sum(octet_length(ops)), 0) FROM history_ops "
		"WHERE room_id = $1 AND revision > $2))",
		3, params);
	if (st != STORE_OK)
		return st;
	*bytes = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
							    : 0;
	PQclear(r);
	return STORE_OK;
}

/* the batches a rebuild reads at a time (their text, each up to about the document's size) */
#define HISTORY_PAGE_ROWS 32
#define HISTORY_PAGE_ROWS_SQL "32"

enum store_status store_doc_history_text(struct store *s, const struct store_doc_cfg *cfg,
					 const char *room, long long rev, size_t budget,
					 struct doc_state *out, char saved_at[40])
{
	char revs[24], cps[24], err[256];
	PGresult *cp = NULL, *bt = NULL;
	struct ot_op *all = NULL;
	struct buf text;
	buf_init(&text, 0);
	memset(out, 0, sizeof *out);
	enum store_status st;
	/* the newest saved revision: saved rows that do not rebuild it are damage, not "no
	 * history" (restore would otherwise start the room over, empty at revision 0) */
	int newest = rev < 0;
	long long broken = -1; /* with newest: the revision the saved history stops at */
	if (rev < 0) {
		long long snap, hist;
		st = saved_revisions(s, room, &snap, &hist);
		if (st != STORE_OK)
			goto out;
		rev = snap > hist ? snap : hist;
		if (rev < 0) {
			newest = 0; /* nothing saved at all: the one "not found" of the newest */
			st = STORE_NOT_FOUND;
			goto out;
		}
	}
	snprintf(revs, sizeof revs, "%lld", rev);
	const char *p2[] = {room, revs};
	st = store_sql(s, &cp, NULL,
		       "SELECT revision, content, " TS_SQL("saved_at") " FROM snapshots "
		       "WHERE room_id = $1 AND revision <= $2 ORDER BY revision DESC LIMIT 1",
		       2, p2);
	if (st != STORE_OK)
		goto out;
	if (PQntuples(cp) != 1) {
		st = STORE_NOT_FOUND;
		goto out; /* newest: broken stays -1, no checkpoint to start from */
	}
	long long cprev = strtoll(PQgetvalue(cp, 0, 0), NULL, 10);
	if (saved_at)
		snprintf(saved_at, 40, "%s", PQgetvalue(cp, 0, 2));
	if (cprev < rev) {
		snprintf(cps, sizeof cps, "%lld", cprev);
		const char *p3[] = {room, cps, revs};
		if (budget > 0) {
			/* what the rebuild would read, from the batches' lengths (PostgreSQL knows
			 * them without reading the text): refused before any of it is read */
			st = store_sql(s, &bt, NULL,
				       "SELECT COALESCE(sum(octet_length(ops)), 0) FROM history_ops "
				       "WHERE room_id = $1 AND revision > $2 AND first_revision <= $3",
				       3, p3);
			if (st != STORE_OK)
				goto out;
			long long need = strtoll(PQgetvalue(bt, 0, 0), NULL, 10);
			PQclear(bt);
			bt = NULL;
			if (need > (long long)budget) {
				log_warn("room %s: revision %lld not rebuilt: %lld bytes of operations "
					 "since the checkpoint at %lld, over the budget of %zu",
					 room, rev, need, cprev, budget);
				st = store_fail(s, STORE_TOO_LARGE,
						"revision %lld would take %lld bytes of saved operations "
						"to rebuild, more than the %zu a request may read",
						rev, need, budget);
				goto out;
			}
		}
		long long next = cprev + 1;
		/* what a batch may hold: what the bound of an event let through, or more where
		 * DOCUMENT_MAX_BYTES is larger (read as the parser of a request did before) */
		size_t stored_max_insert = (size_t)cfg->max_bytes > DOC_STORED_MAX_INSERT
						   ? (size_t)cfg->max_bytes
						   : DOC_STORED_MAX_INSERT;
		/* in pages of HISTORY_PAGE_ROWS batches, each page freed before the next is read:
		 * one result holding every batch since the checkpoint held them all at once */
		int more = 1;
		while (more) {
			char nexts[24];
			snprintf(nexts, sizeof nexts, "%lld", next - 1);
			const char *pp[] = {room, nexts, revs};
			st = store_sql(s, &bt, NULL,
				       "SELECT first_revision, revision, ops, " TS_SQL("saved_at")
				       " FROM history_ops WHERE room_id = $1 AND revision > $2 AND "
				       "first_revision <= $3 ORDER BY revision LIMIT "
				       HISTORY_PAGE_ROWS_SQL,
				       3, pp);
			if (st != STORE_OK)
				goto out;
			int rows = PQntuples(bt);
			more = rows == HISTORY_PAGE_ROWS;
			for (int i = 0; i < rows; i++) {
				long long first = strtoll(PQgetvalue(bt, i, 0), NULL, 10);
				if (first != next) {
					more = 0;
					break; /* thinned away: the revision cannot be rebuilt */
				}
				long long last = strtoll(PQgetvalue(bt, i, 1), NULL, 10);
				if (compose_batch(room, PQgetvalue(bt, i, 2),
						  (size_t)PQgetlength(bt, i, 2), first, last, rev,
						  stored_max_insert, &all) < 0) {
					st = store_fail(s, STORE_ERROR, "the history is damaged");
					goto out;
				}
				if (saved_at)
					snprintf(saved_at, 40, "%s", PQgetvalue(bt, i, 3));
				next = last + 1;
			}
			PQclear(bt);
			bt = NULL;
		}
		if (next <= rev) {
			broken = next - 1;
			st = STORE_NOT_FOUND;
			goto out;
		}
	}
	const char *base = PQgetvalue(cp, 0, 1);
	size_t base_len = (size_t)PQgetlength(cp, 0, 1);
	if (all && ot_apply(all, base, base_len, &text, err, sizeof err) < 0) {
		log_error("room %s: history does not apply at revision %lld: %s", room, rev, err);
		st = store_fail(s, STORE_ERROR, "the history is damaged");
		goto out;
	}
	if (state_set(out, all ? text.data : base, all ? text.len : base_len, rev) < 0) {
		st = store_fail(s, STORE_ERROR, "out of memory");
		goto out;
	}
	st = STORE_OK;
out:
	if (st == STORE_NOT_FOUND && newest) {
		if (broken < 0)
			log_error("room %s: history is saved up to revision %lld but no checkpoint "
				  "at or before it is kept",
				  room, rev);
		else
			log_error("room %s: history is saved up to revision %lld but its saved "
				  "operations stop following on after revision %lld (a batch that "
				  "overlaps or leaves a gap)",
				  room, rev, broken);
		st = store_fail(s, STORE_ERROR,
				"the saved history of the room is damaged: its newest revision %lld "
				"cannot be rebuilt; an operator must repair it",
				rev);
	} else if (st == STORE_NOT_FOUND)
		store_fail(s, st, "no snapshot at revision %lld", rev);
	if (cp)
		PQclear(cp);
	if (bt)
		PQclear(bt);
	ot_free(all);
	buf_free(&text);
	return st;
}

enum store_status store_doc_history_list(struct store *s, const char *room, int max,
					 long long before, struct doc_save **out, int *n)
{
	*out = NULL;
	*n = 0;
	char lim[16], bef[32];
	snprintf(lim, sizeof lim, "%d", max);
	snprintf(bef, sizeof bef, "%lld", before > 0 ? before : (1LL << 62));
	/* every save: the checkpoints (full text) and the batches of typed operations, whose
	 * row holds the document's length at its end. A checkpoint and a batch can end at one
	 * revision (an operator's repair, or a checkpoint written before today's rule for idle
	 * rooms): listed once, the row that says who typed first, then the batch */
	const char *params[] = {room, lim, bef};
	PGresult *r;
	/* and who typed how much since the save before (authors named from users, by id) */
	enum store_status st = store_sql(
		s, &r, NULL,
		"SELECT DISTINCT ON (revision) revision, " TS_SQL("saved_at") ", len, inserted, "
		"deleted, CASE WHEN authors IS NULL THEN NULL ELSE (SELECT COALESCE(json_agg("
		"json_build_array(u.id, u.username) ORDER BY u.id), '[]') FROM users u "
		"WHERE u.id = ANY(h.authors)) END "
		"FROM (SELECT revision, saved_at, length(content) AS len, authors, inserted, deleted, "
		"1 AS k FROM snapshots WHERE room_id = $1 AND revision < $3 UNION ALL "
		"SELECT revision, saved_at, length AS len, authors, inserted, deleted, 0 AS k "
		"FROM history_ops WHERE room_id = $1 AND revision < $3) h "
		"ORDER BY revision DESC, authors IS NULL, k LIMIT $2",
		3, params);
	if (st != STORE_OK)
		return st;
	int rows = PQntuples(r);
	struct doc_save *v = rows ? calloc((size_t)rows, sizeof *v) : NULL;
	if (rows && !v) {
		PQclear(r);
		return store_fail(s, STORE_ERROR, "out of memory");
	}
	for (int i = 0; i < rows; i++) {
		v[i].revision = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		snprintf(v[i].saved_at, sizeof v[i].saved_at, "%s", PQgetvalue(r, i, 1));
		v[i].length = strtoll(PQgetvalue(r, i, 2), NULL, 10);
		v[i].inserted = PQgetisnull(r, i, 3) ? -1 : strtoll(PQgetvalue(r, i, 3), NULL, 10);
		v[i].deleted = PQgetisnull(r, i, 4) ? -1 : strtoll(PQgetvalue(r, i, 4), NULL, 10);
		v[i].nauthors = -1;
		if (PQgetisnull(r, i, 5))
			continue;
		cJSON *arr = cJSON_Parse(PQgetvalue(r, i, 5)), *a;
		v[i].nauthors = 0;
		cJSON_ArrayForEach(a, arr)
		{
			const cJSON *id = cJSON_GetArrayItem(a, 0), *name = cJSON_GetArrayItem(a, 1);
			if (!cJSON_IsNumber(id) || !cJSON_IsString(name) ||
			    v[i].nauthors >= DOC_SAVE_AUTHORS_MAX)
				continue;
			v[i].authors[v[i].nauthors].id = (long long)id->valuedouble;
			snprintf(v[i].authors[v[i].nauthors].username,
				 sizeof v[i].authors[v[i].nauthors].username, "%s", name->valuestring);
			v[i].nauthors++;
		}
		cJSON_Delete(arr);
	}
	PQclear(r);
	*out = v;
	*n = rows;
	return STORE_OK;
}

/* --- the snapshotter's side ---------------------------------------------------------- */

int doc_batch_stats(const char *json, size_t len, long long *inserted, long long *deleted,
		    long long *ids, int max, int *nids)
{
	*inserted = *deleted = 0;
	*nids = 0;
	cJSON *arr = cJSON_ParseWithLength(json, len);
	const cJSON *e, *c;
	int rc = -1;
	if (!cJSON_IsArray(arr))
		goto out;
	cJSON_ArrayForEach(e, arr)
	{
		/* {"u","s","ops"}, or the bare op of an entry from before authors were kept */
		const cJSON *ops = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "ops") : e;
		const cJSON *u = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "u") : NULL;
		if (!cJSON_IsArray(ops))
			goto out;
		cJSON_ArrayForEach(c, ops)
		{
			if (cJSON_IsString(c))
				*inserted += (long long)utf8_count(c->valuestring, strlen(c->valuestring));
			else if (cJSON_IsNumber(c) && c->valuedouble < 0) {
				/* no document holds 2^31 code points: a larger count (or one that
				 * would not convert, as 1e300) is no entry we wrote */
				if (!(c->valuedouble >= -2147483648.0))
					goto out;
				*deleted += (long long)-c->valuedouble;
			}
		}
		/* (cJSON_IsNumber(NULL) is false too; the NULL test is spelled out for the
		 * static analyzers, which do not see into libcjson and kept flagging the line
		 * below as an edit elsewhere in the file moved their paths) */
		if (!u || !cJSON_IsNumber(u))
			continue;
		if (!(fabs(u->valuedouble) <= LOG_USER_MAX))
			goto out; /* no user id (store_doc_log_entry_parse says the same) */
		long long id = (long long)u->valuedouble;
		int at = 0;
		while (at < *nids && ids[at] < id)
			at++;
		if ((at < *nids && ids[at] == id) || *nids >= max)
			continue;
		memmove(ids + at + 1, ids + at, (size_t)(*nids - at) * sizeof *ids);
		ids[at] = id;
		(*nids)++;
	}
	rc = 0;
out:
	cJSON_Delete(arr);
	return rc;
}

enum store_status store_doc_due(struct store *s, long long until, int max, redisReply **due)
{
	*due = NULL;
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	char bound[32];
	if (until < 0)
		snprintf(bound, sizeof bound, "+inf");
	else
		snprintf(bound, sizeof bound, "%lld", until);
	redisReply *rep = rds_cmd(rd, SNAP_DUE_KEY, "ZRANGEBYSCORE %s -inf %s LIMIT 0 %d", SNAP_DUE_KEY,
				       bound, max);
	if (!rep || rep->type != REDIS_REPLY_ARRAY) {
		if (rep)
			freeReplyObject(rep);
		return store_redis_failed(s);
	}
	*due = rep;
	return STORE_OK;
}

enum store_status store_doc_claim(struct store *s, const char *room, long long until,
				  long long lease_end)
{
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	char bound[32], end[32];
	if (until < 0)
		snprintf(bound, sizeof bound, "+inf");
	else
		snprintf(bound, sizeof bound, "%lld", until);
	snprintf(end, sizeof end, "%lld", lease_end);
	const char *args[] = {SNAP_DUE_KEY, room, bound, end};
	redisReply *claim = rds_script(rd, &rs_snap_claim, 1, 4, args, NULL);
	if (!claim || claim->type != REDIS_REPLY_INTEGER) {
		if (claim)
			freeReplyObject(claim);
		return store_redis_failed(s);
	}
	int mine = claim->integer == lease_end;
	freeReplyObject(claim);
	return mine ? STORE_OK : STORE_CONFLICT;
}

void store_doc_release(struct store *s, const struct store_doc_cfg *cfg, const char *room,
		       long long lease_end)
{
	/* a commit whose mark (its time + the interval) is not below the lease's end cannot
	 * move the lease down: close to the lease's end, keep it (the room is claimed once
	 * more when it ends, a save that finds nothing new writes nothing). Twice the interval
	 * leaves the release's round trip as much again. */
	if (clock_wall_ms() + 2 * cfg->snapshot_interval_ms >= lease_end)
		return;
	struct rds *rd;
	if (store_redis(s, &rd) != STORE_OK) {
		log_warn("room %s: its snapshot lease could not be ended (it ends by itself): %s", room,
			 s->msg);
		return;
	}
	char end[32];
	snprintf(end, sizeof end, "%lld", lease_end);
	const char *args[] = {SNAP_DUE_KEY, room, end};
	redisReply *rep = rds_script(rd, &rs_snap_release, 1, 3, args, NULL);
	if (!rep || rep->type != REDIS_REPLY_INTEGER) {
		if (rep)
			freeReplyObject(rep);
		store_redis_failed(s);
		log_warn("room %s: its snapshot lease could not be ended (it ends by itself): %s", room,
			 s->msg);
		return;
	}
	freeReplyObject(rep);
}

/* The stored ops first..last as one JSON array in *out, from Redis, and where in it the
 * last one (the entry of revision `last`) starts in *last_at. 0; 1 not all kept there any
 * more; -1 Redis failed. */
static int ops_batch(struct store *s, const char *room, long long first, long long last,
		     struct buf *out, size_t *last_at)
{
	struct rkey dk, ok;
	char a[24], b[24];
	keys_of(room, &dk, &ok);
	snprintf(a, sizeof a, "%lld", first);
	snprintf(b, sizeof b, "%lld", last);
	struct rds *rd;
	if (store_redis(s, &rd) != STORE_OK)
		return -1;
	const char *args[] = {dk.s, ok.s, a, b};
	redisReply *rep = rds_script(rd, &rs_doc_ops_range, 2, 4, args, NULL);
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1) {
		if (rep)
			freeReplyObject(rep);
		store_redis_failed(s);
		return -1;
	}
	int rc = 1;
	if (rep->element[0]->integer == 1 && rep->elements == 2 &&
	    rep->element[1]->type == REDIS_REPLY_ARRAY &&
	    rep->element[1]->elements == (size_t)(last - first + 1)) {
		rc = buf_putc(out, '[');
		for (size_t i = 0; rc == 0 && i < rep->element[1]->elements; i++) {
			const redisReply *e = rep->element[1]->element[i];
			if ((i && buf_putc(out, ',') < 0) || e->type != REDIS_REPLY_STRING)
				rc = -2;
			*last_at = out->len;
			if (rc == 0 && buf_append(out, e->str, e->len) < 0)
				rc = -2;
		}
		if (rc == 0 && buf_putc(out, ']') < 0)
			rc = -2;
		if (rc == -2) {
			log_error("room %s: the operations could not be gathered", room);
			rc = 1; /* a checkpoint instead */
		}
	}
	freeReplyObject(rep);
	return rc;
}

/* How many rows a statement changed; -1 when it failed. */
static long rows_changed(struct store *s, const char *sql, int n, const char *const *params)
{
	PGresult *r;
	if (store_sql(s, &r, NULL, sql, n, params) != STORE_OK)
		return -1;
	long rows = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return rows;
}

/* Rooms whose old operation batches no checkpoint covers yet (they stopped changing
 * before the next checkpoint was due) get one where the newest of those old batches ends,
 * so that thinning can take those batches too: without it a room left alone keeps them
 * forever. Not at the newest saved revision: when someone typed again lately, that one
 * ends a recent batch, which stays, and the history would list its revision twice (the
 * batch and the checkpoint). At most `max` rooms a pass. The number of checkpoints
 * written, or -1 (logged). */
static long checkpoint_idle(struct store *s, const struct store_doc_cfg *cfg, const char *days,
			    int max)
{
	char lim[16];
	snprintf(lim, sizeof lim, "%d", max);
	const char *p[] = {days, lim};
	PGresult *r;
	if (store_sql(s, &r, NULL,
		      "SELECT h.room_id, max(h.revision) FROM history_ops h "
		      "WHERE h.saved_at < now() - $1::interval "
		      "AND NOT EXISTS (SELECT 1 FROM snapshots c WHERE c.room_id = h.room_id "
		      "AND c.revision >= h.revision) GROUP BY h.room_id LIMIT $2::int",
		      2, p) != STORE_OK)
		return -1;
	long made = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		store_progress(s);
		const char *room = PQgetvalue(r, i, 0);
		long long at = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		struct doc_state d = {0};
		if (store_doc_history_text(s, cfg, room, at, 0, &d, NULL) != STORE_OK) {
			log_warn("room %s: its saved revision %lld could not be rebuilt: %s", room, at,
				 s->msg);
			continue;
		}
		char rev[24];
		snprintf(rev, sizeof rev, "%lld", d.revision);
		const char *q[] = {room, rev, d.content};
		long n = rows_changed(s,
				      "INSERT INTO snapshots (room_id, revision, content) VALUES ($1, $2, $3) "
				      "ON CONFLICT DO NOTHING",
				      3, q);
		doc_state_free(&d);
		if (n > 0)
			made += n;
	}
	PQclear(r);
	return made;
}

/* Runs a DELETE of at most THIN_BATCH rows ($2) again until one deletes fewer: a large
 * backlog goes in statements of bounded length, the progress function called between them.
 * The rows deleted in all, or -1. */
#define THIN_BATCH "5000"
static long delete_in_batches(struct store *s, const char *sql, const char *days)
{
	const char *p[] = {days, THIN_BATCH};
	long all = 0;
	for (;;) {
		store_progress(s);
		long n = rows_changed(s, sql, 2, p);
		if (n < 0)
			return -1;
		all += n;
		if (n < atol(THIN_BATCH))
			return all;
	}
}

int store_doc_thin(struct store *s, const struct store_doc_cfg *cfg)
{
	char days[24];
	snprintf(days, sizeof days, "%ld days", cfg->history_keep_ops_days);
	long idle = checkpoint_idle(s, cfg, days, 1000);
	if (idle > 0)
		log_info("history: %ld rooms left alone got a checkpoint, so their old operations can go",
			 idle);
	long ops = delete_in_batches(
		s,
		"DELETE FROM history_ops WHERE ctid IN (SELECT h.ctid FROM history_ops h "
		"WHERE h.saved_at < now() - $1::interval "
		"AND EXISTS (SELECT 1 FROM snapshots s WHERE s.room_id = h.room_id "
		"AND s.revision >= h.revision) LIMIT $2::int)",
		days);
	long cps = delete_in_batches(
		s,
		"DELETE FROM snapshots WHERE ctid IN (SELECT s.ctid FROM snapshots s "
		"WHERE s.saved_at < now() - $1::interval "
		"AND EXISTS (SELECT 1 FROM snapshots n WHERE n.room_id = s.room_id "
		"AND n.revision > s.revision AND n.saved_at < now() - $1::interval "
		"AND date_trunc('hour', n.saved_at) = date_trunc('hour', s.saved_at)) LIMIT $2::int)",
		days);
	if (ops != 0 || cps != 0)
		log_info("history thinned: %ld operation batches, %ld checkpoints removed (-1: failed)",
			 ops, cps);
	return ops < 0 || cps < 0 || idle < 0 ? -1 : 0;
}

/* The most rooms one page of the sweep unloads: each costs a fold of its text in Redis and
 * a rebuild of its newest saved revision from PostgreSQL; the others wait for the next walk. */
#define SWEEP_UNLOAD_MAX 50

/* Takes room's document out of Redis (doc_unload.lua) when nothing of it is unsaved: its
 * revision in Redis is `rev`, the newest saved one, and the text Redis holds there is the
 * text the saved history rebuilds, byte for byte (so the restore of the next read or
 * commit gives back exactly this document). Its commits set stays keep_ms longer. A room
 * with a stream open is passed over before anything is read (one ZCOUNT; the script asks
 * again on Redis's clock). 1 unloaded; 0 left in Redis (moved on, a stream of the room
 * open, gone, a history that does not give back this text, or a script that refused:
 * logged); -1 when Redis or PostgreSQL could not be reached (s->msg). */
static int unload_idle(struct store *s, const struct store_doc_cfg *cfg, const char *room,
		       long long rev, long long keep_ms)
{
	struct doc_state live = {0}, saved = {0};
	redisReply *rep = NULL;
	int rc = 0;
	struct rds *rd;
	if (store_redis(s, &rd) != STORE_OK)
		return -1;
	struct rkey nk = rkey1(RK_ROOM_CONNS, room);
	rep = rds_cmd(rd, nk.s, "ZCOUNT %s (%lld +inf", nk.s, clock_wall_ms());
	if (!rep) {
		store_redis_failed(s);
		return -1;
	}
	int watched = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
	freeReplyObject(rep);
	rep = NULL;
	if (watched)
		return 0;
	enum store_status st = store_doc_read(s, cfg, room, &live);
	if (st == STORE_REDIS_UNAVAILABLE || st == STORE_UNAVAILABLE) {
		rc = -1;
		goto out;
	}
	if (st != STORE_OK || live.revision != rev)
		goto out; /* gone, damaged (the read logged it) or moved on: not now */
	st = store_doc_history_text(s, cfg, room, -1, 0, &saved, NULL);
	if (st == STORE_UNAVAILABLE || st == STORE_REDIS_UNAVAILABLE) {
		rc = -1; /* the page ends; the next walk tries again */
		goto out;
	}
	if (st != STORE_OK || saved.revision != rev || saved.content_len != live.content_len ||
	    (live.content_len > 0 && memcmp(saved.content, live.content, live.content_len) != 0)) {
		log_warn("room %s: idle, but kept in Redis: its saved history %s", room,
			 st != STORE_OK		 ? s->msg
			 : saved.revision != rev ? "ends at another revision"
						 : "does not give back the text Redis holds");
		goto out;
	}
	if (store_redis(s, &rd) != STORE_OK) {
		rc = -1;
		goto out;
	}
	struct rkey dk = rkey1(RK_ROOM_DOC, room), ok = rkey1(RK_ROOM_OPS, room),
		    ck = rkey1(RK_ROOM_COMMITS, room), fk = rkey1(RK_ROOM_FOLD_FAILED, room),
		    ek = rkey1(RK_ROOM_EVENTS, room);
	char revs[24], keep[24];
	snprintf(revs, sizeof revs, "%lld", rev);
	snprintf(keep, sizeof keep, "%lld", keep_ms > 0 ? keep_ms : 1);
	const char *args[] = {dk.s, ok.s, ck.s, nk.s, fk.s, ek.s, revs, keep};
	rep = rds_script(rd, &rs_doc_unload, 6, 8, args, NULL);
	if (!rep) {
		store_redis_failed(s);
		rc = -1;
		goto out;
	}
	if (rep->type != REDIS_REPLY_INTEGER) {
		/* refused (an ACL, a full Redis): this room stays; the walk goes on */
		log_warn("room %s: idle, but kept in Redis: the unload was refused: %s", room,
			 rep->type == REDIS_REPLY_ERROR ? rep->str : "an unexpected answer");
		goto out;
	}
	if (rep->integer == 1) {
		log_info("room %s: idle, unloaded from Redis at revision %lld (saved; the next "
			 "read restores it)",
			 room, rev);
		rc = 1;
	}
out:
	if (rep)
		freeReplyObject(rep);
	doc_state_free(&live);
	doc_state_free(&saved);
	return rc;
}

/* The API marks a room due after each commit it applied (mark_due), but that mark is a
 * command of its own on another key (another node of a cluster) and may fail, and the
 * process may die before it is sent: nothing else would put the room on the schedule until
 * its next commit, and a room's last edits have none. So the snapshotter walks every room
 * now and then and compares; a room that is fine costs one HMGET in Redis and two index
 * lookups in PostgreSQL, and nothing is written for it. A room whose revision is behind the
 * saved one (Redis lost writes) is marked too: its save puts it back (store_doc_snapshot),
 * which would otherwise wait for a commit.
 *
 * The page's saved revisions are read before Redis's, so a save that ends in between makes
 * a room look behind or ahead that is not: only the rooms that differ and are not on the
 * schedule (ZMSCORE, one read for the page) have their saved revision read again, after
 * the schedule was, and are marked when they still differ. A room being typed in is on the
 * schedule from its first commit's mark until a save that holds its revision, so what is
 * left is a commit whose mark is still on its way (the round trip after the commit script
 * and its WAIT): marked a moment early, which costs a save that finds nothing new.
 * The rooms that are saved and idle long enough are then unloaded (unload_idle; docs/
 * INTERNALS.md, "Idle rooms"). */
int store_doc_sweep(struct store *s, const struct store_doc_cfg *cfg, char *after, size_t cap,
		    int max, long unload_idle_s, long *marked, long *unloaded)
{
	*marked = 0;
	*unloaded = 0;
	char lim[16];
	snprintf(lim, sizeof lim, "%d", max);
	const char *p[] = {after, lim};
	PGresult *r;
	/* each room's newest checkpoint and newest batch (one primary-key lookup each) give its
	 * saved revision and how long ago the newer of the two was saved; greatest() skips
	 * NULLs: NULL only when nothing is saved */
	if (store_sql(s, &r, NULL,
		      "SELECT r.id, greatest(c.revision, h.revision), "
		      "floor(extract(epoch FROM now() - greatest(c.saved_at, h.saved_at)))::bigint "
		      "FROM rooms r "
		      "LEFT JOIN LATERAL (SELECT revision, saved_at FROM snapshots "
		      "WHERE room_id = r.id ORDER BY revision DESC LIMIT 1) c ON true "
		      "LEFT JOIN LATERAL (SELECT revision, saved_at FROM history_ops "
		      "WHERE room_id = r.id ORDER BY revision DESC LIMIT 1) h ON true "
		      "WHERE r.id > $1 ORDER BY r.id LIMIT $2::int",
		      2, p) != STORE_OK)
		return -1;
	int n = PQntuples(r), rc = n == max;
	if (n == 0) {
		PQclear(r);
		return 0;
	}
	/* rows whose Redis revision differs, and that revision; rows to unload (idle, saved) */
	int *off = malloc((size_t)n * sizeof *off);
	long long *revs = malloc((size_t)n * sizeof *revs);
	int *idle = malloc((size_t)n * sizeof *idle);
	long long *idle_revs = malloc((size_t)n * sizeof *idle_revs);
	const char **argv = malloc(((size_t)n * 2 + 3) * sizeof *argv);
	struct rds *rd = NULL;
	struct rds_pipe *pp = NULL;
	redisReply *sc = NULL, *z = NULL;
	int noff = 0, nidle = 0;
	if (!off || !revs || !idle || !idle_revs || !argv) {
		store_fail(s, STORE_ERROR, "out of memory");
		rc = -1;
		goto out;
	}
	if (store_redis(s, &rd) != STORE_OK) {
		rc = -1;
		goto out;
	}
	if (!(pp = rds_pipe_new(rd))) {
		store_fail(s, STORE_ERROR, "out of memory");
		rc = -1;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		struct rkey k = rkey1(RK_ROOM_DOC, PQgetvalue(r, i, 0));
		/* loaded: when a restore last brought the document back (doc_init.lua) */
		const char *hmget[] = {"HMGET", k.s, "revision", "loaded"};
		if (!rkey_ok(&k) || rds_pipe_add(pp, k.s, 4, hmget, NULL) < 0) {
			store_fail(s, STORE_REDIS_UNAVAILABLE, "%s",
				   rkey_ok(&k) ? rds_error(rd) : "a room id too long for a key");
			rc = -1;
			goto out;
		}
	}
	long long wall = clock_wall_ms(), idle_ms = (long long)unload_idle_s * 1000;
	for (int i = 0; i < n; i++) {
		redisReply *hm = rds_pipe_reply(pp);
		if (!hm || hm->type != REDIS_REPLY_ARRAY || hm->elements != 2) {
			store_fail(s, STORE_REDIS_UNAVAILABLE, "%s",
				   hm && hm->type == REDIS_REPLY_ERROR ? hm->str
				   : hm ? "an unexpected answer to HMGET"
					: rds_error(rd));
			if (hm)
				freeReplyObject(hm);
			rc = -1;
			goto out;
		}
		const redisReply *rev = hm->element[0], *ld = hm->element[1];
		/* no document (nil): the room is gone, or lives in PostgreSQL only and the next
		 * read restores it; a fresh room at 0 with nothing saved has nothing to save */
		if (rev->type == REDIS_REPLY_STRING) {
			long long now = strtoll(rev->str, NULL, 10);
			/* restored less than one idle period ago (by this process's clock; the
			 * unload script asks again on Redis's): it stays, and costs no fold and no
			 * rebuild in each walk until then */
			int fresh = ld->type == REDIS_REPLY_STRING &&
				    wall - strtoll(ld->str, NULL, 10) < idle_ms;
			long long saved =
				PQgetisnull(r, i, 1) ? -1 : strtoll(PQgetvalue(r, i, 1), NULL, 10);
			if (now != saved && (now > 0 || saved >= 0)) {
				revs[noff] = now;
				off[noff++] = i;
			} else if (now == saved && saved >= 0 && unload_idle_s > 0 &&
				   !PQgetisnull(r, i, 2) &&
				   strtoll(PQgetvalue(r, i, 2), NULL, 10) >= unload_idle_s && !fresh &&
				   nidle < SWEEP_UNLOAD_MAX) {
				idle_revs[nidle] = now;
				idle[nidle++] = i;
			}
		}
		freeReplyObject(hm);
	}
	rds_pipe_free(pp);
	pp = NULL;
	if (noff > 0) {
		const char *due_key = SNAP_DUE_KEY;
		argv[0] = "ZMSCORE";
		argv[1] = due_key;
		for (int j = 0; j < noff; j++)
			argv[2 + j] = PQgetvalue(r, off[j], 0);
		sc = rds_cmdv(rd, due_key, 2 + noff, argv, NULL);
		if (!sc || sc->type != REDIS_REPLY_ARRAY || sc->elements != (size_t)noff) {
			store_fail(s, STORE_REDIS_UNAVAILABLE, "%s",
				   sc && sc->type == REDIS_REPLY_ERROR ? sc->str : rds_error(rd));
			rc = -1;
			goto out;
		}
		char due[32];
		snprintf(due, sizeof due, "%lld", clock_wall_ms() + cfg->snapshot_interval_ms);
		int argc = 3;
		argv[0] = "ZADD";
		argv[1] = due_key;
		argv[2] = "NX"; /* a commit's mark or a lease that came meanwhile is kept */
		for (int j = 0; j < noff; j++) {
			const char *room = PQgetvalue(r, off[j], 0);
			long long cp, ops;
			if (sc->element[j]->type != REDIS_REPLY_NIL)
				continue;
			if (saved_revisions(s, room, &cp, &ops) != STORE_OK) {
				rc = -1;
				goto out;
			}
			long long saved = cp > ops ? cp : ops;
			if (saved == revs[j])
				continue; /* saved as the walk looked */
			log_warn("room %s: revision %lld in Redis, %lld saved, and not due for a "
				 "snapshot (its mark was lost): marking it due",
				 room, revs[j], saved);
			argv[argc++] = due;
			argv[argc++] = room;
		}
		if (argc > 3) {
			z = rds_cmdv(rd, due_key, argc, argv, NULL);
			if (!z || z->type != REDIS_REPLY_INTEGER) {
				store_fail(s, STORE_REDIS_UNAVAILABLE, "%s",
					   z && z->type == REDIS_REPLY_ERROR ? z->str : rds_error(rd));
				rc = -1;
				goto out;
			}
			*marked = (argc - 3) / 2;
		}
	}
	for (int j = 0; j < nidle; j++) {
		int u = unload_idle(s, cfg, PQgetvalue(r, idle[j], 0), idle_revs[j],
				    idle_ms);
		if (u < 0) {
			rc = -1;
			goto out;
		}
		*unloaded += u;
	}
	/* the next page starts after this one; an id too long to keep ends the walk */
	const char *last = PQgetvalue(r, n - 1, 0);
	if (strlen(last) < cap)
		strcpy(after, last);
	else
		rc = 0;
out:
	if (pp)
		rds_pipe_free(pp);
	if (sc)
		freeReplyObject(sc);
	if (z)
		freeReplyObject(z);
	free(off);
	free(revs);
	free(idle);
	free(idle_revs);
	free(argv);
	PQclear(r);
	return rc;
}

/* PostgreSQL (or Redis) failed: the claim's lease stays on the schedule, so the room is due
 * again when it ends even if Redis cannot be reached now. Bring it forward to one interval
 * from now (XX: only while the room is still there; LT: an earlier mark made by a commit
 * meanwhile is kept), so the next pass retries as soon as a new mark would. */
static void due_again(struct store *s, const struct store_doc_cfg *cfg, const char *room)
{
	struct rds *rd;
	redisReply *again = NULL;
	char due[32];
	snprintf(due, sizeof due, "%lld", clock_wall_ms() + cfg->snapshot_interval_ms);
	if (store_redis(s, &rd) == STORE_OK) {
		again = rds_cmd(rd, SNAP_DUE_KEY, "ZADD %s XX LT %s %s", SNAP_DUE_KEY, due, room);
		if (!again)
			store_redis_failed(s);
	}
	if (!again || again->type == REDIS_REPLY_ERROR)
		log_warn("room %s: its snapshot failed; it is tried again when its lease ends", room);
	if (again)
		freeReplyObject(again);
}

/* --- when Redis loses its last writes ------------------------------------------------ */

/* How the room's document in Redis stands against its newest saved revision S, read under
 * the lock on the room's saves (docs/INTERNALS.md, "When Redis loses its last writes"). In
 * normal work Redis's revision never goes below S and its op log holds, for S, the entry the
 * history saved for S. Redis that lost its last writes (an fsync window lost in a crash, a
 * failover to a replica behind) is a prefix of what it was: its revision is back below S, and
 * commits made since reuse revisions the history holds with other operations. */
enum saved_vs_redis {
	SV_FOLLOWS,  /* Redis holds the saved history and goes on from it (or nothing says not) */
	SV_PREFIX,   /* behind S, at a revision whose entry the history holds the same: nothing
		      * committed since the loss, the saved revisions after it are all it lacks */
	SV_DIVERGED, /* lost writes the history holds and took other commits since, or behind S
		      * with nothing that shows it to be a prefix */
	SV_UNSURE,   /* at or past S with its own entry for S, but the history kept none to
		      * compare (a checkpoint saved while the operations since the save before
		      * could not be gathered): most likely it follows, but a batch cut from it
		      * could lie on another text than S's, so this save is a checkpoint */
};

/* Whether PostgreSQL saved, for revision `at`, the same op log entry as Redis holds (entry,
 * JSON text): *same 1 the same, 0 different, -1 not known (no batch holds it, no checkpoint
 * at it kept its entry, or what is kept does not parse). STORE_OK, or the query's failure. */
static enum store_status saved_entry_same(struct store *s, const char *room, long long at,
					  const redisReply *entry, int *same)
{
	char ats[24];
	snprintf(ats, sizeof ats, "%lld", at);
	const char *p[] = {room, ats};
	PGresult *r;
	/* the batch holding `at` is the first one ending at or after it (a chain does not
	 * overlap), when it starts at or before it */
	enum store_status st = store_sql(
		s, &r, NULL,
		"SELECT b.first_revision, b.ops, (SELECT entry FROM snapshots WHERE room_id = $1 "
		"AND revision = $2) FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT first_revision, ops "
		"FROM history_ops WHERE room_id = $1 AND revision >= $2 ORDER BY revision LIMIT 1) b "
		"ON true",
		2, p);
	if (st != STORE_OK)
		return st;
	*same = -1;
	if (PQntuples(r) != 1) { /* one row always, whatever is saved */
		PQclear(r);
		return STORE_OK;
	}
	cJSON *batch = NULL, *kept = NULL, *live = NULL;
	const cJSON *saved = NULL;
	long long first = PQgetisnull(r, 0, 0) ? at + 1 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	if (first <= at) {
		batch = cJSON_ParseWithLength(PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1));
		saved = cJSON_IsArray(batch) ? cJSON_GetArrayItem(batch, (int)(at - first)) : NULL;
	}
	if (!saved && !PQgetisnull(r, 0, 2))
		saved = kept = cJSON_ParseWithLength(PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2));
	/* compared as JSON: the history keeps entries verbatim, but a difference of spelling
	 * is none of what was typed */
	if (saved && (live = cJSON_ParseWithLength(entry->str, entry->len)))
		*same = cJSON_Compare(saved, live, 1) ? 1 : 0;
	cJSON_Delete(batch);
	cJSON_Delete(kept);
	cJSON_Delete(live);
	PQclear(r);
	return STORE_OK;
}

/* Reads Redis's revision now (*now) and its entry for the lower of that and `saved`, and
 * tells how Redis stands (*how). STORE_OK; STORE_NOT_FOUND the document is gone; the
 * stores' failures. */
static enum store_status check_saved(struct store *s, const char *room, long long saved,
				     enum saved_vs_redis *how, long long *now)
{
	struct rkey dk, ok;
	char sv[24];
	keys_of(room, &dk, &ok);
	snprintf(sv, sizeof sv, "%lld", saved);
	struct rds *rd;
	if (store_redis(s, &rd) != STORE_OK)
		return store_fail(s, STORE_REDIS_UNAVAILABLE, "the document store is unavailable");
	const char *args[] = {dk.s, ok.s, sv};
	redisReply *rep = rds_script(rd, &rs_doc_saved_check, 2, 3, args, NULL);
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER) {
		if (rep)
			freeReplyObject(rep);
		store_redis_failed(s);
		return store_fail(s, STORE_REDIS_UNAVAILABLE, "the document store is unavailable");
	}
	enum store_status st = STORE_OK;
	if (rep->element[0]->integer == -1 || rep->elements < 3) {
		st = store_fail(s, STORE_NOT_FOUND, "no document for room %s", room);
		goto out;
	}
	long long rev = rep->element[0]->integer, at = reply_int(rep, 1);
	const redisReply *entry = rep->element[2];
	int known = entry->type == REDIS_REPLY_STRING, same = -1;
	*now = rev;
	if (rev >= saved && (at == 0 || !known)) {
		/* the entry of `saved` is no longer in the list (a thousand commits on, large
		 * ones past OPS_LOG_MAX_BYTES, or the list restarted with the document): nothing
		 * to compare. (The newest entry is never trimmed, so a Redis behind, below,
		 * still has its own to compare.) A save of this room then
		 * writes a checkpoint of Redis's text, which needs no base. */
		*how = SV_FOLLOWS;
	} else if (rev < saved && at == 0) {
		*how = SV_PREFIX; /* revision 0: the empty text every history starts from */
	} else if (!known) {
		*how = SV_DIVERGED; /* behind, and nothing shows Redis to be a prefix */
	} else {
		st = saved_entry_same(s, room, at, entry, &same);
		if (rev >= saved)
			*how = same == 0 ? SV_DIVERGED : same == 1 ? SV_FOLLOWS : SV_UNSURE;
		else
			*how = same == 1 ? SV_PREFIX : SV_DIVERGED;
	}
out:
	freeReplyObject(rep);
	return st;
}

/* Puts text (len bytes) at revision `to` in place of the room's document while its revision
 * is still `expected`, and emits the `resync` event with `data` (doc_reset.lua). STORE_OK
 * replaced; STORE_CONFLICT the document moved on (or is gone) meanwhile;
 * STORE_REDIS_UNAVAILABLE. */
static enum store_status reset_doc(struct store *s, const char *room, long long expected,
				   long long to, const char *text, size_t len, const char *data)
{
	struct rkey dk, ok;
	keys_of(room, &dk, &ok);
	struct rkey ck = rkey1(RK_ROOM_COMMITS, room), ek = rkey1(RK_ROOM_EVENTS, room);
	char exp[24], rev[24], cps[24], bytes[24];
	snprintf(exp, sizeof exp, "%lld", expected);
	snprintf(rev, sizeof rev, "%lld", to);
	snprintf(cps, sizeof cps, "%zu", utf8_count(text, len));
	snprintf(bytes, sizeof bytes, "%zu", len);
	const char *args[] = {dk.s, ok.s, ck.s, ek.s, exp, rev, text, cps, bytes, data,
			      EVENTS_HISTORY_BOUNDS};
	size_t lens[11];
	for (int i = 0; i < 11; i++)
		lens[i] = i == 6 ? len : strlen(args[i]);
	struct rds *rd;
	if (store_redis(s, &rd) != STORE_OK)
		return store_fail(s, STORE_REDIS_UNAVAILABLE, "the document store is unavailable");
	redisReply *rep = rds_script(rd, &rs_doc_reset, 4, 11, args, lens);
	if (!rep || rep->type != REDIS_REPLY_INTEGER) {
		if (rep)
			freeReplyObject(rep);
		store_redis_failed(s);
		return store_fail(s, STORE_REDIS_UNAVAILABLE, "the document store is unavailable");
	}
	enum store_status st = rep->integer == 1 ? STORE_OK : STORE_CONFLICT;
	freeReplyObject(rep);
	return st;
}

/* The resync event's data after a reset: the revision the document is at now, the newest
 * saved revision, and whose text it holds ("saved": the history's, nothing saved is
 * missing; "live": what Redis held, and saved revisions up to saved_revision may hold edits
 * it lacks). */
static void restored_event(char *out, size_t cap, long long rev, long long saved, const char *text)
{
	snprintf(out, cap,
		 "{\"reason\":\"document_restored\",\"revision\":%lld,\"saved_revision\":%lld,"
		 "\"text\":\"%s\"}",
		 rev, saved, text);
}

/* Redis is behind the saved revision `saved`, at `now`, with nothing committed since the
 * loss (SV_PREFIX): the document goes back to the saved revision, so that the acknowledged
 * edits Redis lost are in it again. STORE_OK (restored; or it moved on meanwhile and is looked
 * at again at the next pass; or, *how set to SV_DIVERGED, the saved revision does not
 * rebuild and the chain is to start again from Redis's text); the stores' failures. */
static enum store_status back_to_saved(struct store *s, const struct store_doc_cfg *cfg,
				       const char *room, long long saved, long long now,
				       enum saved_vs_redis *how)
{
	struct doc_state h;
	char data[200];
	enum store_status st = store_doc_history_text(s, cfg, room, saved, 0, &h, NULL);
	if (st == STORE_NOT_FOUND || st == STORE_ERROR) {
		log_error("room %s: Redis lost writes (its document is back at revision %lld, the "
			  "history is saved up to %lld), and the saved revision %lld cannot be rebuilt "
			  "(%s): the live text is kept and saved as a new checkpoint",
			  room, now, saved, saved, s->msg);
		*how = SV_DIVERGED;
		return STORE_OK;
	}
	if (st != STORE_OK)
		return st;
	restored_event(data, sizeof data, saved, saved, "saved");
	st = reset_doc(s, room, now, saved, h.content, h.content_len, data);
	doc_state_free(&h);
	if (st == STORE_OK) {
		s->lost_restored++;
		log_warn("room %s: Redis lost its last writes: its document was back at revision %lld, "
			 "below the saved revision %lld, with nothing committed since; restored from the "
			 "history at revision %lld, and its clients told to fetch it again",
			 room, now, saved, saved);
	} else if (st == STORE_CONFLICT) {
		/* a commit came first: the next pass looks again (then the room has diverged) */
		log_info("room %s: Redis is behind its saved history and moved on before it could be "
			 "restored; looked at again at the next pass",
			 room);
		due_again(s, cfg, room);
		st = STORE_OK;
	}
	return st;
}

/* Redis lost writes the history holds and took other commits since (SV_DIVERGED): what the
 * room's people edit now is kept. The document moves to a revision past both its own and the
 * saved one, with its text and nothing after it, so no batch ever lands on a base the history
 * does not hold; *d becomes that text at that revision, for the checkpoint that starts the
 * chain again. The saved revisions stay in the history, where the lost edits can be found.
 * STORE_OK; STORE_CONFLICT the document moved on meanwhile (looked at again at the next
 * pass); STORE_NOT_FOUND it is gone; the stores' failures. */
static enum store_status restart_chain(struct store *s, const struct store_doc_cfg *cfg,
				       const char *room, long long saved, long long now,
				       struct doc_state *d)
{
	struct doc_state live;
	char data[200];
	enum store_status st = fold(s, cfg, room, &live);
	if (st != STORE_OK)
		return st;
	long long to = (saved > live.revision ? saved : live.revision) + 1;
	restored_event(data, sizeof data, to, saved, "live");
	st = reset_doc(s, room, live.revision, to, live.content, live.content_len, data);
	if (st != STORE_OK) {
		doc_state_free(&live);
		return st;
	}
	s->lost_restarted++;
	log_warn("room %s: Redis lost writes that the room's saved history holds and took other "
		 "commits since (its revision was %lld, the newest saved %lld): the live text goes on "
		 "as revision %lld, saved as a new checkpoint, and its clients were told to fetch it "
		 "again; acknowledged edits it lacks are in the saved revisions up to %lld "
		 "(GET /api/rooms/%s/history)",
		 room, now, saved, to, saved, room);
	doc_state_free(d);
	*d = live;
	d->revision = to;
	return STORE_OK;
}

enum store_status store_doc_snapshot(struct store *s, const struct store_doc_cfg *cfg,
				     const char *room)
{
	/* the text is put together here (and stored folded back), not on every commit; a
	 * room deleted meanwhile has no document and is not brought back */
	struct doc_state d;
	struct buf batch;
	buf_init(&batch, 0);
	PGresult *r = NULL;
	char *entry = NULL;
	int in_tx = 0;
	enum store_status st = fold(s, cfg, room, &d);
	if (st != STORE_OK) {
		if (st == STORE_ERROR)
			log_error("room %s: no snapshot, the document could not be put together", room);
		return st;
	}
	char revs[24], firsts[24], cps[24];
	snprintf(revs, sizeof revs, "%lld", d.revision);
	snprintf(cps, sizeof cps, "%zu", utf8_count(d.content, d.content_len));
	/* one save of a room at a time: two snapshotters (or one that claimed the room twice)
	 * would both read the same newest saved revision and both write a batch starting
	 * after it, overlapping batches that no rebuild gets past. The lock is held until the
	 * batch is committed; the newest saved revision is read under it, and the batch is
	 * cut to start right after it. */
	if ((st = store_begin(s)) != STORE_OK)
		goto out;
	in_tx = 1;
	const char *lp[] = {room};
	st = store_sql(s, &r, NULL, "SELECT pg_advisory_xact_lock(" SNAP_LOCK_CLASS ", hashtext($1))",
		       1, lp);
	if (st != STORE_OK)
		goto out;
	PQclear(r);
	r = NULL;
	long long cp, ops;
	st = saved_revisions(s, room, &cp, &ops);
	if (st != STORE_OK)
		goto out;
	long long saved = cp > ops ? cp : ops;
	/* Redis may have lost its last writes (docs/INTERNALS.md, "When Redis loses its last
	 * writes"): its revision read now, under the lock (the fold above may be older than a
	 * save another snapshotter made meanwhile), and its entry for the saved revision against
	 * the history's tell. A batch is only ever cut from a Redis that follows the history. */
	int restarted = 0; /* the chain starts again at d.revision: a checkpoint, no batch */
	int unsure = 0;	   /* SV_UNSURE: a checkpoint, which needs no base */
	if (saved >= 0) {
		/* check_saved sets it whenever it answers STORE_OK (an initial value for gcc, which
		 * cannot see that once the build initialises automatic variables: Makefile) */
		enum saved_vs_redis how = SV_UNSURE;
		long long now = 0;
		if ((st = check_saved(s, room, saved, &how, &now)) != STORE_OK)
			goto out;
		if (how == SV_PREFIX &&
		    ((st = back_to_saved(s, cfg, room, saved, now, &how)) != STORE_OK || how == SV_PREFIX))
			goto out; /* restored (nothing to save: Redis holds the saved text) */
		unsure = how == SV_UNSURE;
		if (how == SV_DIVERGED) {
			st = restart_chain(s, cfg, room, saved, now, &d);
			if (st == STORE_CONFLICT) {
				/* nothing is saved: d is still the fold taken before the lock, the
				 * diverged text on the old numbering. A checkpoint of it would stand
				 * at a revision Redis reuses, and the next pass would compare with it
				 * (unsure, no entry) and never see the divergence again. */
				log_info("room %s: Redis lost writes and moved on before the chain could "
					 "start again; looked at again at the next pass",
					 room);
				due_again(s, cfg, room);
				st = STORE_OK;
				goto out;
			}
			if (st != STORE_OK)
				goto out;
			restarted = 1;
			snprintf(revs, sizeof revs, "%lld", d.revision);
			snprintf(cps, sizeof cps, "%zu", utf8_count(d.content, d.content_len));
		}
	}
	if (d.revision <= saved)
		goto out; /* nothing new since the last save (or another save got further) */
	/* a checkpoint for the first save, every HISTORY_CHECKPOINT_OPS ops, and whenever the
	 * typed ops are gone from Redis or would take more room than the text */
	int checkpoint = restarted || unsure || cp < 0 ||
			 d.revision - cp >= cfg->history_checkpoint_ops;
	/* the operations since the last save: the batch to store, and who typed how much (a
	 * checkpoint records that too when they are still in Redis) */
	long long first = saved < 0 ? 1 : saved + 1;
	int have_batch = 0;
	size_t last_at = 0;
	if (first <= d.revision && !restarted) {
		int br = ops_batch(s, room, first, d.revision, &batch, &last_at);
		if (br < 0 && !checkpoint) {
			st = STORE_REDIS_UNAVAILABLE;
			goto out;
		}
		have_batch = br == 0;
	}
	if (!checkpoint)
		checkpoint = !have_batch || batch.len > d.content_len;
	/* and when the batches since the last checkpoint would hold more than twice the text
	 * (DOC_HISTORY_CHAIN_MIN_BYTES at least): a rebuild reads all of them, and an editor who
	 * replaces most of a large text every save would otherwise pile up gigabytes of them
	 * before the next checkpoint by count */
	long long chain = 0;
	char chains[24];
	if (!checkpoint) {
		if ((st = chain_bytes(s, room, cp, ops, &chain)) != STORE_OK)
			goto out;
		chain += (long long)batch.len;
		long long bound = 2 * (long long)d.content_len;
		if (bound < DOC_HISTORY_CHAIN_MIN_BYTES)
			bound = DOC_HISTORY_CHAIN_MIN_BYTES;
		checkpoint = chain > bound;
	}
	snprintf(chains, sizeof chains, "%lld", chain);
	char ins[24], del[24], authors[DOC_SAVE_AUTHORS_MAX * 24 + 4];
	const char *ins_p = NULL, *del_p = NULL, *authors_p = NULL;
	long long ni, nd, ids[DOC_SAVE_AUTHORS_MAX];
	int nids;
	if (have_batch &&
	    doc_batch_stats(batch.data, batch.len, &ni, &nd, ids, DOC_SAVE_AUTHORS_MAX, &nids) == 0) {
		snprintf(ins, sizeof ins, "%lld", ni);
		snprintf(del, sizeof del, "%lld", nd);
		size_t o = 0;
		authors[o++] = '{';
		for (int i = 0; i < nids; i++)
			o += (size_t)snprintf(authors + o, sizeof authors - o, "%s%lld", i ? "," : "",
					      ids[i]);
		snprintf(authors + o, sizeof authors - o, "}");
		ins_p = ins;
		del_p = del;
		authors_p = authors;
	}
	/* 23503: the room was deleted meanwhile (STORE_CONFLICT): nothing to save */
	if (checkpoint) {
		/* the checkpoint's own entry (the batch's last), for the next save's comparison
		 * (check_saved) */
		if (have_batch && !(entry = strndup(batch.data + last_at, batch.len - 1 - last_at))) {
			st = store_fail(s, STORE_ERROR, "out of memory");
			goto out;
		}
		const char *params[] = {room, revs, d.content, authors_p, ins_p, del_p, entry};
		st = store_sql(s, &r, "23503",
			       "INSERT INTO snapshots (room_id, revision, content, authors, inserted, "
			       "deleted, entry) VALUES ($1, $2, $3, $4, $5, $6, $7) "
			       "ON CONFLICT DO NOTHING RETURNING " TS_SQL("saved_at"),
			       7, params);
	} else {
		snprintf(firsts, sizeof firsts, "%lld", saved + 1);
		const char *params[] = {room,	   revs,  firsts, batch.data, cps,
					authors_p, ins_p, del_p,  chains};
		st = store_sql(s, &r, "23503",
			       "INSERT INTO history_ops (room_id, revision, first_revision, ops, length, "
			       "authors, inserted, deleted, chain_bytes) "
			       "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING "
			       "RETURNING " TS_SQL("saved_at"),
			       9, params);
	}
	if (st == STORE_CONFLICT) {
		st = STORE_OK;
		goto out;
	}
	if (st != STORE_OK)
		goto out;
	in_tx = 0;
	if ((st = store_commit(s)) != STORE_OK)
		goto out;
	struct rds *rd;
	if (PQntuples(r) == 1 && store_redis(s, &rd) == STORE_OK) {
		char data[160];
		snprintf(data, sizeof data, "{\"revision\":%s,\"saved_at\":\"%s\"}", revs,
			 PQgetvalue(r, 0, 0));
		if (events_emit(rd, room, EV_SNAPSHOT, data, NULL, 0) < 0)
			store_redis_failed(s);
	}
out:
	if (in_tx)
		store_rollback(s); /* nothing written, or a failed (aborted) transaction */
	if (st != STORE_OK)
		due_again(s, cfg, room);
	if (r)
		PQclear(r);
	buf_free(&batch);
	free(entry);
	doc_state_free(&d);
	return st;
}

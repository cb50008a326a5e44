/* The store layer's pure parts: the one table from a store status to an HTTP answer
 * (fcgi/api.c), what api_fail() answers with it, ot_copy(), the document settings' table,
 * and the connection getters' statuses when nothing listens. */
#include <stdlib.h>
#include <string.h>

#include "../../fcgi/api.h"
#include "buf.h"
#include "ot.h"
#include "store.h"
#include "store_doc.h"
#include "unit.h"

static void check_table(void)
{
	/* every status the store can return has an error answer with a code and a message */
	for (int st = STORE_NOT_FOUND; st < STORE__COUNT; st++) {
		const struct api_answer *a = api_status_answer((enum store_status)st);
		CHECK(a->status >= 400 && a->status < 600);
		CHECK(a->code && a->code[0]);
		CHECK(a->message && a->message[0]);
		CHECK(store_status_name((enum store_status)st)[0] != '\0');
		for (int other = STORE_OK; other < st; other++)
			CHECK(strcmp(store_status_name((enum store_status)st),
				     store_status_name((enum store_status)other)) != 0);
	}
	CHECK(api_status_answer(STORE_NOT_FOUND)->status == 404);
	CHECK(api_status_answer(STORE_CONFLICT)->status == 409);
	CHECK(api_status_answer(STORE_INVALID)->status == 400);
	CHECK(api_status_answer(STORE_FORBIDDEN)->status == 403);
	CHECK(api_status_answer(STORE_TOO_LARGE)->status == 413);
	CHECK(api_status_answer(STORE_BUSY)->status == 503);
	CHECK(api_status_answer(STORE_ERROR)->status == 500);
	/* the contract's codes for the stores being down (docs/API.md) */
	CHECK_STR(api_status_answer(STORE_UNAVAILABLE)->code, "database_unavailable");
	CHECK_STR(api_status_answer(STORE_UNAVAILABLE)->message, "the database is unavailable");
	CHECK_STR(api_status_answer(STORE_LOST)->code, "database_unavailable");
	CHECK(api_status_answer(STORE_LOST)->status == 503);
	CHECK_STR(api_status_answer(STORE_REDIS_UNAVAILABLE)->code, "redis_unavailable");
	CHECK_STR(api_status_answer(STORE_REDIS_UNAVAILABLE)->message,
		  "the event store is unavailable");
	CHECK_STR(api_status_answer(STORE_ERROR)->code, "internal");
	/* out of range: the internal error, never a crash or a 200 */
	CHECK(api_status_answer((enum store_status)STORE__COUNT)->status == 500);
	CHECK(api_status_answer((enum store_status)-1)->status == 500);
	CHECK_STR(store_status_name((enum store_status)STORE__COUNT), "");
}

/* Which statements store_sql sends again after their connection died: only what cannot
 * have been carried out (the server said it was going down) or only reads. */
static void check_repeatable(void)
{
	/* the server ended the session before running it: anything may go again */
	CHECK(store_pg_repeatable("57P01", "INSERT INTO users (name) VALUES ($1)"));
	CHECK(store_pg_repeatable("57P02", "UPDATE rooms SET name = $1"));
	CHECK(store_pg_repeatable("57P03", "DELETE FROM rooms WHERE id = $1"));
	/* no word from the server (it vanished): reads only */
	CHECK(store_pg_repeatable(NULL, "SELECT 1"));
	CHECK(store_pg_repeatable(NULL, "  \n select id FROM rooms WHERE id = $1"));
	CHECK(!store_pg_repeatable(NULL, "INSERT INTO users (name) VALUES ($1)"));
	CHECK(!store_pg_repeatable(NULL, "UPDATE users SET token_gen = token_gen + 1"));
	CHECK(!store_pg_repeatable(NULL, "COMMIT"));
	CHECK(!store_pg_repeatable(NULL, "WITH x AS (DELETE FROM t RETURNING 1) SELECT 1"));
	CHECK(!store_pg_repeatable(NULL, "SELECT id FROM rooms WHERE id = $1 FOR UPDATE"));
	CHECK(!store_pg_repeatable(NULL, "SELECT role FROM room_members FOR SHARE"));
	CHECK(!store_pg_repeatable(NULL, "SELECT 1 FROM rooms WHERE id = $1 FOR NO KEY UPDATE"));
	CHECK(!store_pg_repeatable(NULL, "SELECT 1 FROM rooms WHERE id = $1 for key share"));
	CHECK(!store_pg_repeatable(NULL, "SELECT pg_advisory_xact_lock(1, hashtext($1))"));
	/* another error with the connection (a statement timeout, a disk full): not safe */
	CHECK(!store_pg_repeatable("53100", "INSERT INTO users (name) VALUES ($1)"));
	CHECK(!store_pg_repeatable("", "UPDATE users SET token_gen = 1"));
	CHECK(!store_pg_repeatable(NULL, ""));
}

/* The answer api_fail() gives: table defaults, or the handler's own code and message. */
static void check_fail(void)
{
	struct http_resp resp;
	struct store s;
	struct api_ctx c;
	memset(&c, 0, sizeof c);
	store_init(&s, "", NULL);
	c.store = &s;
	c.resp = &resp;

	http_resp_init(&resp);
	api_fail(&c, STORE_UNAVAILABLE, NULL, NULL);
	CHECK(resp.status == 503);
	CHECK_STR(resp.body.data,
		  "{\"error\":\"database_unavailable\",\"message\":\"the database is unavailable\"}");
	http_resp_free(&resp);

	http_resp_init(&resp);
	api_fail(&c, STORE_NOT_FOUND, "snapshot_not_found", "no snapshot at revision %d", 7);
	CHECK(resp.status == 404);
	CHECK_STR(resp.body.data,
		  "{\"error\":\"snapshot_not_found\",\"message\":\"no snapshot at revision 7\"}");
	http_resp_free(&resp);

	/* the store's own words */
	http_resp_init(&resp);
	store_fail(&s, STORE_REDIS_UNAVAILABLE, "the document store is unavailable");
	api_fail_why(&c, STORE_REDIS_UNAVAILABLE);
	CHECK(resp.status == 503);
	CHECK_STR(resp.body.data, "{\"error\":\"redis_unavailable\",\"message\":\"the document "
				  "store is unavailable\"}");
	http_resp_free(&resp);

	/* an error body with one more field, built without printing and parsing it again */
	cJSON *o = api_error_body("revision_too_old", "revision %d is old", 3);
	CHECK(o != NULL);
	cJSON_AddNumberToObject(o, "revision", 9);
	char *txt = cJSON_PrintUnformatted(o);
	CHECK_STR(txt, "{\"error\":\"revision_too_old\",\"message\":\"revision 3 is old\","
		       "\"revision\":9}");
	free(txt);
	cJSON_Delete(o);
	store_close(&s);
}

static void check_ot_copy(void)
{
	char err[256];
	struct ot_op *a = NULL;
	const char *json = "[3,\"h\\u00e9llo\",-2,\"x\"]";
	CHECK(ot_parse_json(json, strlen(json), 0, &a, err, sizeof err) == 0);
	struct ot_op *b = a ? ot_copy(a) : NULL;
	CHECK(b != NULL);
	if (!a || !b) {
		ot_free(a);
		ot_free(b);
		return;
	}
	char *ja = ot_to_json(a), *jb = ot_to_json(b);
	CHECK_STR(jb, ja);
	CHECK(ot_base_len(a) == ot_base_len(b) && ot_target_len(a) == ot_target_len(b));
	/* the copy is its own: changing it leaves the original as it was */
	CHECK(ot_insert(b, "zz", 2) == 0);
	char *ja2 = ot_to_json(a), *jb2 = ot_to_json(b);
	CHECK_STR(ja2, ja);
	CHECK(strcmp(jb2, ja) != 0);
	free(ja);
	free(jb);
	free(ja2);
	free(jb2);
	ot_free(a);
	/* and it outlives the original */
	struct buf out;
	buf_init(&out, 0);
	CHECK(ot_apply(b, "abcde", 5, &out, err, sizeof err) == 0);
	CHECK_STR(out.data, "abch\xc3\xa9llox" "zz");
	buf_free(&out);
	ot_free(b);
	struct ot_op *e = ot_new(), *ec = e ? ot_copy(e) : NULL;
	CHECK(ec != NULL && ot_size(ec) == 0);
	ot_free(e);
	ot_free(ec);
}

static void check_doc_cfg(void)
{
	struct store_doc_cfg cfg;
	char err[256];
	unsetenv("DOCUMENT_MAX_BYTES");
	unsetenv("SNAPSHOT_INTERVAL_MS");
	unsetenv("HISTORY_CHECKPOINT_OPS");
	unsetenv("HISTORY_KEEP_OPS_DAYS");
	unsetenv("HISTORY_THIN_INTERVAL_S");
	unsetenv("DOCUMENT_PENDING_OPS_MAX");
	unsetenv("OPS_LOG_MAX_BYTES");
	CHECK(store_doc_cfg_load(&cfg, err, sizeof err) == 0);
	CHECK(cfg.max_bytes == 1024 * 1024 && cfg.snapshot_interval_ms == 2000 &&
	      cfg.history_checkpoint_ops == 5000 && cfg.history_keep_ops_days == 7 &&
	      cfg.history_thin_interval_s == 3600 && cfg.pending_max == 5000);
	setenv("SNAPSHOT_INTERVAL_MS", "10", 1); /* below its range */
	CHECK(store_doc_cfg_load(&cfg, err, sizeof err) == -1);
	CHECK(strstr(err, "SNAPSHOT_INTERVAL_MS") != NULL);
	unsetenv("SNAPSHOT_INTERVAL_MS");
	/* the bound on unfolded ops: above the fold interval, an integer */
	const char *bad[] = {"500", "0", "-1", "many", "1000001"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		setenv("DOCUMENT_PENDING_OPS_MAX", bad[i], 1);
		CHECK(store_doc_cfg_load(&cfg, err, sizeof err) == -1);
		CHECK(strstr(err, "DOCUMENT_PENDING_OPS_MAX") != NULL);
	}
	setenv("DOCUMENT_PENDING_OPS_MAX", "501", 1);
	CHECK(store_doc_cfg_load(&cfg, err, sizeof err) == 0 && cfg.pending_max == 501);
	unsetenv("DOCUMENT_PENDING_OPS_MAX");
	/* the revisions a commit request is recognised for: ten times the log's count by
	 * default, never fewer than the log holds */
	CHECK(store_doc_cfg_load(&cfg, err, sizeof err) == 0 && cfg.commits_keep == 10000);
	const char *bad_keep[] = {"999", "0", "-1", "lots", "1000001"};
	for (size_t i = 0; i < sizeof bad_keep / sizeof bad_keep[0]; i++) {
		setenv("DOCUMENT_COMMITS_KEEP", bad_keep[i], 1);
		CHECK(store_doc_cfg_load(&cfg, err, sizeof err) == -1);
		CHECK(strstr(err, "DOCUMENT_COMMITS_KEEP") != NULL);
	}
	setenv("DOCUMENT_COMMITS_KEEP", "1000", 1);
	CHECK(store_doc_cfg_load(&cfg, err, sizeof err) == 0 && cfg.commits_keep == 1000);
	unsetenv("DOCUMENT_COMMITS_KEEP");
	/* the ops list's bytes: 16 MiB by default, at least 2 x DOCUMENT_MAX_BYTES, which its
	 * default follows past 8 MiB documents */
	unsetenv("OPS_LOG_MAX_BYTES");
	CHECK(store_doc_cfg_load(&cfg, err, sizeof err) == 0 && cfg.ops_max_bytes == 16L << 20);
	setenv("DOCUMENT_MAX_BYTES", "33554432", 1);
	CHECK(store_doc_cfg_load(&cfg, err, sizeof err) == 0 && cfg.ops_max_bytes == 64L << 20);
	setenv("OPS_LOG_MAX_BYTES", "67108863", 1);
	CHECK(store_doc_cfg_load(&cfg, err, sizeof err) == -1);
	CHECK_STR(err, "OPS_LOG_MAX_BYTES (67108863) must be at least 2 x DOCUMENT_MAX_BYTES (2 x "
		       "33554432 = 67108864), so that the operation log holds the largest operation "
		       "and as much again");
	unsetenv("DOCUMENT_MAX_BYTES");
	const char *bad_ops[] = {"2097151", "0", "-1", "16MiB", "", "68719476737"};
	for (size_t i = 0; i < sizeof bad_ops / sizeof bad_ops[0]; i++) {
		setenv("OPS_LOG_MAX_BYTES", bad_ops[i], 1);
		int rc = store_doc_cfg_load(&cfg, err, sizeof err);
		/* "" is unset, as for every setting (lib/cfg.h) */
		CHECK(*bad_ops[i] ? rc == -1 && strstr(err, "OPS_LOG_MAX_BYTES") != NULL
				  : rc == 0 && cfg.ops_max_bytes == 16L << 20);
	}
	setenv("DOCUMENT_MAX_BYTES", "1024", 1);
	setenv("OPS_LOG_MAX_BYTES", "2048", 1);
	CHECK(store_doc_cfg_load(&cfg, err, sizeof err) == 0 && cfg.ops_max_bytes == 2048);
	unsetenv("DOCUMENT_MAX_BYTES");
	unsetenv("OPS_LOG_MAX_BYTES");
}

/* Nothing listens on port 1: each getter says its store is unavailable, in words. */
static void check_getters_down(void)
{
	struct store s;
	struct rds_target t;
	char err[256];
	CHECK(rds_parse_url("redis://127.0.0.1:1", &t, err, sizeof err) == 0);
	store_init(&s, "postgresql://127.0.0.1:1/none?connect_timeout=2", &t);
	struct rds *rd = NULL;
	CHECK(store_redis(&s, &rd) == STORE_REDIS_UNAVAILABLE && rd == NULL);
	CHECK_STR(s.msg, "the event store is unavailable");
	PGresult *r = (PGresult *)&s; /* must be cleared */
	CHECK(store_sql(&s, &r, NULL, "SELECT 1", 0, NULL) == STORE_UNAVAILABLE && r == NULL);
	CHECK_STR(s.msg, "the database is unavailable");
	/* a transaction that cannot start leaves the store outside one */
	CHECK(store_begin(&s) == STORE_UNAVAILABLE && s.in_tx == 0);
	store_close(&s);
}

/* DATABASE_READ_URL: a read that may lag with no replica reachable is asked of the primary
 * (here down too: the primary's answer), the replica is not tried again before its back-off,
 * and STORE_MAY_LAG sets the mode for one call only. */
static int seen_may_lag(struct store *s)
{
	return s->may_lag ? STORE_NOT_FOUND : STORE_OK;
}

static void check_read_replica(void)
{
	struct store s;
	store_init(&s, "postgresql://127.0.0.1:1/none?connect_timeout=2", NULL);
	store_set_read_url(&s, "");
	CHECK(s.database_read_url == NULL);
	store_set_read_url(&s, "postgresql://127.0.0.1:1/replica?connect_timeout=2");
	CHECK(s.database_read_url != NULL);
	CHECK(STORE_MAY_LAG(&s, seen_may_lag(&s)) == STORE_NOT_FOUND);
	CHECK(s.may_lag == 0);
	PGresult *r = NULL;
	CHECK(STORE_MAY_LAG(&s, store_sql(&s, &r, NULL, "SELECT 1", 0, NULL)) == STORE_UNAVAILABLE);
	CHECK(r == NULL && s.pg_read == NULL && s.may_lag == 0);
	CHECK_STR(s.msg, "the database is unavailable");
	/* the failed connect set a back-off: the next read does not wait for the replica */
	CHECK(s.read_retry_at > 0 && s.read_attempt == 1);
	long long at = s.read_retry_at;
	CHECK(STORE_MAY_LAG(&s, store_sql(&s, &r, NULL, "SELECT 2", 0, NULL)) == STORE_UNAVAILABLE);
	CHECK(s.read_retry_at == at && s.read_attempt == 1);
	store_close(&s);
}

/* An op log entry's author: a user id past what a double holds exactly is refused, not
 * converted (past a long long that was undefined; found by tests/fuzz/fuzz_worker_redis.c). */
static void check_log_entry(void)
{
	const char *texts[] = {"{\"u\":12,\"s\":\"c1\",\"ops\":[\"x\"]}", "[\"x\"]",
			       "{\"u\":1e300,\"s\":\"c1\",\"ops\":[\"x\"]}",
			       "{\"u\":-1e19,\"s\":\"c1\",\"ops\":[\"x\"]}"};
	const int ok[] = {1, 1, 0, 0};
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		redisReply r = {.type = REDIS_REPLY_STRING, .str = (char *)texts[i],
				.len = strlen(texts[i])};
		struct ot_op *op = NULL;
		char *site = NULL, err[128] = "";
		long long user = 0;
		int known = -1;
		int rc = store_doc_log_entry_parse(&r, &op, &user, &site, &known, err, sizeof err);
		CHECK(rc == (ok[i] ? 0 : -1));
		if (ok[i]) {
			CHECK(op != NULL && known == (i == 0));
			if (i == 0)
				CHECK(user == 12 && site && !strcmp(site, "c1"));
		} else {
			CHECK(op == NULL && site == NULL);
			CHECK_STR(err, "a log entry has no author");
		}
		ot_free(op);
		free(site);
	}
}

/* A log entry is read with the bounds of stored data, not those of a request: an entry of
 * 10,001 components (an operation of 10,000 with the final retain the commit script
 * appended, stored before that was refused) and one inserting more than a request's
 * default 1 MiB (DOCUMENT_MAX_BYTES set higher) are read back; past the stored bound
 * (OT_MAX_STORED_COMPONENTS) an entry is refused, as damaged. */
static void check_log_entry_bounds(void)
{
	struct buf b;
	buf_init(&b, 0);
	for (int shape = 0; shape < 2; shape++) { /* {"u","s","ops"}, and a bare op */
		buf_reset(&b);
		buf_puts(&b, shape ? "[" : "{\"u\":7,\"s\":\"site\",\"ops\":[");
		for (int i = 0; i < OT_MAX_COMPONENTS / 2; i++)
			buf_puts(&b, i ? ",1,\"a\"" : "1,\"a\"");
		buf_puts(&b, shape ? ",1000]" : ",1000]}");
		redisReply r = {.type = REDIS_REPLY_STRING, .str = b.data, .len = b.len};
		struct ot_op *op = NULL;
		char *site = NULL, err[256] = "";
		long long user = 0;
		int known = -1;
		CHECK(store_doc_log_entry_parse(&r, &op, &user, &site, &known, err, sizeof err) == 0);
		CHECK(op && ot_size(op) == OT_MAX_COMPONENTS + 1);
		CHECK(op && ot_base_len(op) == OT_MAX_COMPONENTS / 2 + 1000);
		CHECK(known == !shape);
		ot_free(op);
		free(site);
	}
	/* an insert of 1.5 MiB */
	buf_reset(&b);
	buf_puts(&b, "{\"u\":7,\"s\":\"\",\"ops\":[\"");
	for (size_t i = 0; i < OT_DEFAULT_MAX_INSERT * 3 / 2; i++)
		buf_putc(&b, 'z');
	buf_puts(&b, "\"]}");
	redisReply big = {.type = REDIS_REPLY_STRING, .str = b.data, .len = b.len};
	struct ot_op *op = NULL;
	char *site = NULL, err[256] = "";
	long long user = 0;
	int known = -1;
	CHECK(store_doc_log_entry_parse(&big, &op, &user, &site, &known, err, sizeof err) == 0);
	CHECK(op && ot_target_len(op) == OT_DEFAULT_MAX_INSERT * 3 / 2);
	ot_free(op);
	free(site);
	site = NULL;
	/* past the stored bound */
	buf_reset(&b);
	buf_putc(&b, '[');
	for (size_t i = 0; i <= OT_MAX_STORED_COMPONENTS; i++)
		buf_puts(&b, i ? ",1" : "1");
	buf_putc(&b, ']');
	redisReply over = {.type = REDIS_REPLY_STRING, .str = b.data, .len = b.len};
	op = NULL;
	CHECK(store_doc_log_entry_parse(&over, &op, &user, &site, &known, err, sizeof err) == -1);
	CHECK(!op && !site && strstr(err, "more than 1048576 components") != NULL);
	buf_free(&b);
}

/* How many components the entry of a commit will have (lib/store_doc.c checks it against
 * OT_MAX_COMPONENTS, what every reader of the log takes): doc_commit_text() counts those
 * before the final retain; the commit script writes that retain when the document is
 * longer than span. */
static void check_commit_components(void)
{
	struct doc_commit dc = {.room = "r", .user_id = 7, .username = "u", .client_id = "s.1"};
	struct doc_commit_text t;
	struct ot_op *a = ot_new();
	CHECK(a != NULL);
	if (!a)
		return;
	/* the trigger: [1,"a",…] of 10,000 on a longer document: 10,000 before the retain,
	 * span 5,000; the script adds the 10,001st, so it refuses (answer 10) */
	int built = 1; /* one check for the whole loop, not one per component */
	for (int i = 0; i < OT_MAX_COMPONENTS / 2; i++)
		built = built && ot_retain(a, 1) == 0 && ot_insert(a, "a", 1) == 0;
	CHECK(built);
	CHECK(doc_commit_text(&t, a, 2, &dc) == 0);
	CHECK(t.comps == OT_MAX_COMPONENTS && t.retain == 0 && t.span == OT_MAX_COMPONENTS / 2);
	doc_commit_text_free(&t);
	/* extended to the document (as after a transform): the retain is cut off and counted
	 * apart, 10,000 + 1 */
	char err[128];
	CHECK(ot_extend(a, 6000, err, sizeof err) == 0);
	CHECK(doc_commit_text(&t, a, 2, &dc) == 0);
	CHECK(t.comps == OT_MAX_COMPONENTS && t.retain == 1000 && t.span == OT_MAX_COMPONENTS / 2);
	doc_commit_text_free(&t);
	ot_free(a);
}

int main(void)
{
	check_log_entry();
	check_log_entry_bounds();
	check_commit_components();
	check_table();
	check_repeatable();
	check_fail();
	check_ot_copy();
	check_doc_cfg();
	check_getters_down();
	check_read_replica();
	return unit_summary("store");
}

#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "rkeys.h"
#include "rscript.h"
#include "access.h"
#include "cfg.h"
#include "jsoncheck.h"
#include "log.h"
#include "ratelimit.h"
#include "utf8.h"
#include "valid.h"

int api_config_load(struct api_config *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof *cfg);
	if (token_key_load(&cfg->key, err, errlen) < 0)
		return -1;
	if (rds_parse_url(cfg_str("REDIS_URL", NULL), &cfg->redis, err, errlen) < 0)
		return -1;
	cfg->database_url = cfg_str("DATABASE_URL", "postgresql:///codecollab");
	int e = 0;
	e |= cfg_long("TOKEN_TTL", 86400, 60, 365L * 86400, &cfg->token_ttl_s, err, (int)errlen);
	if (!e)
		e |= cfg_long("TICKET_TTL", 60, 5, 3600, &cfg->ticket_ttl_s, err, (int)errlen);
	if (!e)
		e |= cfg_long("LOGIN_RATE_LIMIT", 10, 1, 1000000, &cfg->login_limit, err, (int)errlen);
	if (!e)
		e |= cfg_long("LOGIN_ADDRESS_RATE_LIMIT", cfg->login_limit * 5, 1, 10000000,
			      &cfg->login_addr_limit, err, (int)errlen);
	if (!e)
		e |= cfg_long("REGISTER_RATE_LIMIT", 10, 1, 10000000, &cfg->register_limit, err,
			      (int)errlen);
	if (!e)
		e |= cfg_long("EXECUTION_RATE_LIMIT", 10, 1, 1000000, &cfg->exec_limit, err,
			      (int)errlen);
	if (!e)
		e |= cfg_long("AI_RATE_LIMIT", 10, 1, 1000000, &cfg->ai_limit, err, (int)errlen);
	if (!e)
		e |= cfg_long("DOCUMENT_MAX_BYTES", 1024 * 1024, 1024, 64L * 1024 * 1024,
			      &cfg->doc_max_bytes, err, (int)errlen);
	if (!e)
		e |= cfg_long("SNAPSHOT_INTERVAL_MS", 2000, 50, 3600000, &cfg->snapshot_interval_ms,
			      err, (int)errlen);
	if (!e)
		e |= cfg_long("HISTORY_CHECKPOINT_OPS", 5000, 1, 100000000,
			      &cfg->history_checkpoint_ops, err, (int)errlen);
	if (!e)
		e |= cfg_long("HISTORY_KEEP_OPS_DAYS", 7, 0, 36500, &cfg->history_keep_ops_days, err,
			      (int)errlen);
	if (!e)
		e |= cfg_long("HISTORY_THIN_INTERVAL_S", 3600, 1, 86400 * 30,
			      &cfg->history_thin_interval_s, err, (int)errlen);
	if (!e)
		e |= cfg_long("JOB_ROOM_BACKLOG_MAX", 30, 1, 10000000, &cfg->job_room_backlog_max,
			      err, (int)errlen);
	if (!e)
		e |= cfg_long("JOB_USER_BACKLOG_MAX", 20, 1, 10000000, &cfg->job_user_backlog_max,
			      err, (int)errlen);
	if (!e)
		e |= cfg_long("JOB_QUEUE_MAX", 2000, 1, 10000000, &cfg->job_queue_max, err,
			      (int)errlen);
	return e ? -1 : 0;
}

void api_config_free(struct api_config *cfg)
{
	token_key_free(&cfg->key);
}

PGconn *api_pg(struct api_ctx *c)
{
	struct api_conns *k = c->conns;
	if (k->pg && PQstatus(k->pg) != CONNECTION_OK) {
		PQfinish(k->pg);
		k->pg = NULL;
		if (c->in_tx) {
			/* the transaction died with the connection; its outcome is the server's to
			 * tell, and a new connection would run the rest of it unprotected */
			api_error(c, 503, "database_unavailable",
				  "the database connection was lost during the change; try again");
			return NULL;
		}
	}
	if (!k->pg) {
		k->pg = PQconnectdb(c->cfg->database_url);
		if (!k->pg || PQstatus(k->pg) != CONNECTION_OK) {
			log_error("postgres: %s", k->pg ? PQerrorMessage(k->pg) : "out of memory");
			PQfinish(k->pg);
			k->pg = NULL;
			api_error(c, 503, "database_unavailable", "the database is unavailable");
			return NULL;
		}
	}
	return k->pg;
}

redisContext *api_redis(struct api_ctx *c)
{
	struct api_conns *k = c->conns;
	if (k->redis && k->redis->err) {
		redisFree(k->redis);
		k->redis = NULL;
	}
	if (!k->redis) {
		char err[256];
		k->redis = rds_connect(&c->cfg->redis, 2000, err, sizeof err);
		if (!k->redis) {
			log_error("%s", err);
			api_error(c, 503, "redis_unavailable", "the event store is unavailable");
			return NULL;
		}
	}
	return k->redis;
}

void api_redis_failed(struct api_ctx *c)
{
	if (c->conns->redis) {
		redisFree(c->conns->redis);
		c->conns->redis = NULL;
	}
}

void api_conns_close(struct api_conns *conns)
{
	if (conns->pg)
		PQfinish(conns->pg);
	if (conns->redis)
		redisFree(conns->redis);
	conns->pg = NULL;
	conns->redis = NULL;
}

void api_json(struct api_ctx *c, int status, cJSON *obj)
{
	c->resp->status = status;
	buf_reset(&c->resp->body);
	if (!obj)
		return;
	char *s = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	if (!s || buf_puts(&c->resp->body, s) < 0) {
		c->resp->status = 500;
		buf_reset(&c->resp->body);
		buf_puts(&c->resp->body, "{\"error\":\"internal\",\"message\":\"out of memory\"}");
	}
	free(s);
}

void api_error(struct api_ctx *c, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* a long argument (a request path) may be cut inside a UTF-8 sequence, and JSON text
	 * must be UTF-8 (RFC 8259, section 8.1): end the message before the broken sequence */
	size_t bad = 0;
	if (utf8_validate(msg, strlen(msg), NULL, &bad) != UTF8_OK)
		msg[bad] = '\0';
	cJSON *o = cJSON_CreateObject();
	if (o) {
		cJSON_AddStringToObject(o, "error", code);
		cJSON_AddStringToObject(o, "message", msg);
	}
	api_json(c, status, o);
	if (!o)
		c->resp->status = status;
}

void api_no_content(struct api_ctx *c)
{
	c->resp->status = 204;
	buf_reset(&c->resp->body);
}

void api_too_many(struct api_ctx *c, long retry_s, const char *code, const char *fmt, ...)
{
	char msg[400], ra[24];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(ra, sizeof ra, "%ld", retry_s);
	api_error(c, 429, code, "%s; try again in %ld s", msg, retry_s);
	http_resp_header(c->resp, "Retry-After", ra);
}

int api_user_quota(struct api_ctx *c, const char *what, long limit, const char *noun)
{
	redisContext *rd = api_redis(c);
	if (!rd)
		return -1;
	long retry = 0;
	char uid[24];
	snprintf(uid, sizeof uid, "%lld", c->user.user_id);
	struct rkey key = rkey2(RK_RL_USER, what, uid);
	enum ratelimit_result rl = ratelimit_check(rd, key.s, limit, 60000, 1, &retry);
	if (rl == RATELIMIT_ERROR) {
		api_redis_failed(c);
		api_error(c, 503, "redis_unavailable", "the rate limiter is unavailable");
		return -1;
	}
	if (rl == RATELIMIT_LIMITED) {
		api_too_many(c, retry, "rate_limited", "at most %ld %s per minute", limit, noun);
		return -1;
	}
	return 0;
}

/* 401 for a session that was revoked. Which revocation is told apart only on this (rare)
 * path, with one more round trip: signed out if its session key exists, else outdated. */
static void answer_revoked(struct api_ctx *c, redisContext *rd)
{
	struct rkey key = rkey1(RK_SESSION_REVOKED, c->user.sid);
	redisReply *rep = redisCommand(rd, "EXISTS %s", key.s);
	int signed_out = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
	if (!rep)
		api_redis_failed(c);
	else
		freeReplyObject(rep);
	if (signed_out)
		api_error(c, 401, "session_revoked", "this session was signed out; sign in again");
	else
		api_error(c, 401, "session_revoked", "the password was changed; sign in again");
}

/* A token with a good signature may still have been revoked (lib/access.h): by a sign-out
 * of its session, or by a password change that raised the user's generation. Asking Redis
 * costs one round trip per request; when Redis cannot answer we cannot tell a signed-out
 * session from a live one, so the request is refused (503) rather than let through.
 * 0 to go on, or -1 answered. */
static int require_live_session(struct api_ctx *c)
{
	redisContext *rd = api_redis(c);
	if (!rd)
		return -1;
	switch (access_session_check(rd, &c->user)) {
	case ACCESS_OK:
		return 0;
	case ACCESS_REVOKED:
		answer_revoked(c, rd);
		return -1;
	case ACCESS_ERROR:
		api_redis_failed(c);
		api_error(c, 503, "redis_unavailable", "the session store is unavailable");
		return -1;
	case ACCESS_NO_GEN:
		break;
	}
	/* Redis lost the generation (restart, eviction): PostgreSQL holds the record */
	char uid[24];
	snprintf(uid, sizeof uid, "%lld", c->user.user_id);
	const char *params[] = {uid};
	PGresult *r = api_sql(c, "SELECT token_gen FROM users WHERE id = $1", 1, params, NULL, NULL);
	if (!r)
		return -1;
	if (PQntuples(r) != 1) {
		PQclear(r);
		api_error(c, 401, "session_revoked", "the account no longer exists");
		return -1;
	}
	long long gen = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	/* only a cache for the next request: the answer below is PostgreSQL's either way */
	if (access_gen_store(rd, c->user.user_id, gen) < 0)
		api_redis_failed(c);
	if (c->user.gen < gen) {
		api_error(c, 401, "session_revoked", "the password was changed; sign in again");
		return -1;
	}
	return 0;
}

int api_require_user(struct api_ctx *c)
{
	if (c->authed)
		return 0;
	const char *h = c->req->authorization;
	if (!h || !*h) {
		api_error(c, 401, "unauthorized", "sign in first: send Authorization: Bearer <token>");
		return -1;
	}
	if (strncasecmp(h, "Bearer ", 7) != 0) {
		api_error(c, 401, "unauthorized", "the Authorization header must be \"Bearer <token>\"");
		return -1;
	}
	const char *why = NULL;
	if (token_verify(&c->cfg->key, h + 7, (long long)time(NULL), &c->user, &why) < 0) {
		api_error(c, 401, "invalid_token", "the token is not valid: %s", why);
		return -1;
	}
	if (c->user.kind != TOKEN_SESSION) {
		api_error(c, 401, "invalid_token", "a stream ticket cannot be used for the API");
		return -1;
	}
	if (require_live_session(c) < 0)
		return -1;
	c->authed = 1;
	return 0;
}

PGresult *api_sql(struct api_ctx *c, const char *sql, int n, const char *const *params,
		  const char *expect_state, int *state_hit)
{
	if (state_hit)
		*state_hit = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		PGconn *pg = api_pg(c);
		if (!pg)
			return NULL;
		PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
		ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
			return r;
		const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		if (expect_state && state && strcmp(state, expect_state) == 0) {
			PQclear(r);
			if (state_hit)
				*state_hit = 1;
			return NULL;
		}
		if (PQstatus(pg) != CONNECTION_OK && attempt == 0 && !c->in_tx) {
			/* the server went away (restart): reconnect once and retry; never inside a
			 * transaction, whose earlier statements were lost with the connection */
			PQclear(r);
			continue;
		}
		log_error("sql failed (%s): %s", state ? state : "-", PQerrorMessage(pg));
		PQclear(r);
		if (PQstatus(pg) != CONNECTION_OK)
			api_error(c, 503, "database_unavailable", "the database is unavailable");
		else
			api_error(c, 500, "internal", "a database error occurred");
		return NULL;
	}
	return NULL;
}

int api_parse_body(struct api_ctx *c, int allow_empty)
{
	struct http_req *r = c->req;
	if (!r->body || r->body_len == 0) {
		if (!allow_empty) {
			api_error(c, 400, "invalid_json", "a JSON object body is required");
			return -1;
		}
		c->body = cJSON_CreateObject();
		if (!c->body) {
			api_error(c, 500, "internal", "out of memory");
			return -1;
		}
		return 0;
	}
	if (!http_is_json_type(r->content_type)) {
		api_error(c, 415, "unsupported_media_type",
			  "send the body as JSON with Content-Type: application/json");
		return -1;
	}
	/* strict RFC 8259 first (lib/jsoncheck.h): cJSON alone passes raw control bytes in
	 * strings, leading zeros, stray whitespace bytes and duplicate names, and a raw byte it
	 * passes comes back six times larger in every event that echoes it */
	struct jsoncheck_error jerr;
	c->body = jsoncheck_parse(r->body, r->body_len, &jerr);
	if (!c->body) {
		if (jerr.status == JSONCHECK_NO_MEMORY)
			api_error(c, 500, "internal", "out of memory");
		else
			api_error(c, 400, "invalid_json", "the body is not valid JSON: %s",
				  jerr.message);
		return -1;
	}
	if (!cJSON_IsObject(c->body)) {
		api_error(c, 400, "invalid_json", "the body must be a JSON object");
		return -1;
	}
	return 0;
}

int api_body_fields(struct api_ctx *c, int allow_empty, const struct valid_field *fields,
		    size_t n, struct valid_value *v)
{
	char err[256];
	if (api_parse_body(c, allow_empty) < 0)
		return -1;
	if (valid_object(c->body, fields, n, v, err, sizeof err) < 0) {
		api_error(c, 400, "invalid_request", "%s", err);
		return -1;
	}
	return 0;
}

#include "api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rkeys.h"
#include "access.h"
#include "cfg.h"
#include "id.h"
#include "jsoncheck.h"
#include "log.h"
#include "presence.h"
#include "ratelimit.h"
#include "store_user.h"
#include "utf8.h"
#include "valid.h"
#include "query.h"
#include "api_metrics.h"
#include "route.h"

int api_config_load(struct api_config *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof *cfg);
	if (token_key_load(&cfg->key, err, errlen) < 0)
		return -1;
	if (rds_config_env(&cfg->redis, NULL, err, errlen) < 0)
		return -1;
	cfg->database_url = cfg_str("DATABASE_URL", "postgresql:///codecollab");
	cfg->database_read_url = cfg_str("DATABASE_READ_URL", ""); /* a hot standby, or none */
	cfg->metrics_file = cfg_str("API_METRICS_FILE", NULL);
	/* where clients may open their streams straight on the broker (docs/API.md, "Direct
	 * streams"): checked here, so that a wrong value stops the API with its reason */
	cfg->stream_origin = cfg_str("STREAM_ORIGIN", "");
	if (*cfg->stream_origin && strcmp(cfg->stream_origin, "off") != 0 &&
	    strcmp(cfg->stream_origin, "auto") != 0) {
		char norm[HTTP_ORIGIN_MAX], why[160];
		if (origin_parse(cfg->stream_origin, norm, sizeof norm, why, sizeof why) < 0) {
			snprintf(err, errlen,
				 "STREAM_ORIGIN %s: write auto, off, or an origin such as "
				 "http://streams.example.com:8081 (no path), not \"%.80s\"",
				 why, cfg->stream_origin);
			return -1;
		}
	}
	/* read in this order; the address limit's default is five times the per-name limit,
	 * so the table is read in two parts around it */
	const struct cfg_setting first[] = {
		{"TOKEN_TTL", 86400, 60, 365L * 86400, &cfg->token_ttl_s},
		{"TICKET_TTL", 60, 5, 3600, &cfg->ticket_ttl_s},
		{"LOGIN_RATE_LIMIT", 10, 1, 1000000, &cfg->login_limit},
	};
	if (cfg_load(first, sizeof first / sizeof first[0], err, (int)errlen) < 0)
		return -1;
	const struct cfg_setting rest[] = {
		{"LOGIN_ADDRESS_RATE_LIMIT", cfg->login_limit * 5, 1, 10000000, &cfg->login_addr_limit},
		{"REGISTER_RATE_LIMIT", 10, 1, 10000000, &cfg->register_limit},
		/* every argon2id check holds an API process for its whole length, and a right
		 * password is not counted by the two above: thrice their per-name allowance lets
		 * a person sign in on every device, far below what keeps the processes busy */
		{"PASSWORD_CHECK_RATE_LIMIT", 30, 1, 1000000, &cfg->pw_check_limit},
		{"EXECUTION_RATE_LIMIT", 10, 1, 1000000, &cfg->exec_limit},
		{"AI_RATE_LIMIT", 10, 1, 1000000, &cfg->ai_limit},
		/* wrong invite codes: no one mistypes a link twenty times a minute, and a guess
		 * at a code (about 82 bits) gets nowhere at this pace */
		{"JOIN_RATE_LIMIT", 20, 1, 1000000, &cfg->join_limit},
		{"PRESENCE_RATE_LIMIT", PRESENCE_RATE_LIMIT_DEFAULT, 1, 1000000, &cfg->presence_limit},
	};
	if (cfg_load(rest, sizeof rest / sizeof rest[0], err, (int)errlen) < 0)
		return -1;
	/* an IPv6 /48's windows: eight times its /64's by default, so a site whose people sign
	 * in from several /64s is not held to one client's allowance, while a client moving
	 * across the /48's 65,536 /64s gets eight windows' worth, not 65,536 */
	const struct cfg_setting net[] = {
		{"LOGIN_NETWORK_RATE_LIMIT", cfg->login_addr_limit * 8, 1, 100000000,
		 &cfg->login_net_limit},
		{"REGISTER_NETWORK_RATE_LIMIT", cfg->register_limit * 8, 1, 100000000,
		 &cfg->register_net_limit},
	};
	/* then the document's (shared with the snapshotter, lib/store_doc.h) and the jobs' */
	const struct cfg_setting jobs[] = {
		{"JOB_ROOM_BACKLOG_MAX", 30, 1, 10000000, &cfg->job_room_backlog_max},
		{"JOB_USER_BACKLOG_MAX", 20, 1, 10000000, &cfg->job_user_backlog_max},
		{"JOB_QUEUE_MAX", 2000, 1, 10000000, &cfg->job_queue_max},
		/* anyone with an invite link may join: the bound of a room's member list and of
		 * the answers that list it (docs/CONVENTIONS.md §3); a join past it: 409 room_full */
		{"ROOM_MEMBERS_MAX", 1000, 1, 1000000, &cfg->room_members_max},
		/* anyone may register and create rooms: every room is rows and Redis keys that
		 * outlive the session, and work for the room list, the snapshotter's walk and
		 * the account's deletion (one Redis round trip per room, in its transaction);
		 * far more than a person uses. A create past it: 409 user_rooms_full */
		{"ROOMS_PER_USER_MAX", 1000, 1, 1000000, &cfg->rooms_per_user_max},
		{"METRICS_PORT", 0, 0, 65535, &cfg->metrics_port},
		{"BROKER_PORT", 8081, 1, 65535, &cfg->broker_port},
		/* a request still running after this ends its process (fcgi/main.c): every
		 * call a request makes has a bound of its own (PG_QUERY_TIMEOUT_MS, the Redis
		 * timeout), so this is for what has none, a fault in the code */
		{"API_HANG_TIMEOUT_S", 120, 0, 86400, &cfg->hang_timeout_s},
	};
	if (cfg_load(net, sizeof net / sizeof net[0], err, (int)errlen) < 0 ||
	    store_doc_cfg_load(&cfg->doc, err, (int)errlen) < 0 ||
	    store_cfg_load(err, (int)errlen) < 0)
		return -1;
	/* a document (GET …/document, …/history/{revision}) must fit in an answer whatever it
	 * holds: a control character is six bytes of JSON (\u0001), so its bytes six times
	 * over, and room for the rest of the answer */
	http_set_resp_body_max((size_t)cfg->doc.max_bytes * 6 + 1024 * 1024);
	return cfg_load(jobs, sizeof jobs / sizeof jobs[0], err, (int)errlen);
}

void api_config_free(struct api_config *cfg)
{
	token_key_free(&cfg->key);
}

/* The one table from a store status to its default answer. A handler passes its own code
 * and message where the contract names a specific one (docs/API.md). */
static const struct api_answer answers[STORE__COUNT] = {
	[STORE_OK] = {500, "internal", "no error to answer"},
	[STORE_NOT_FOUND] = {404, "not_found", "not found"},
	[STORE_CONFLICT] = {409, "conflict", "the request conflicts with what is stored"},
	[STORE_INVALID] = {400, "invalid_request", "the request is not valid"},
	[STORE_FORBIDDEN] = {403, "forbidden", "you may not do this"},
	[STORE_TOO_LARGE] = {413, "payload_too_large", "the result would be too large"},
	[STORE_BUSY] = {503, "busy", "the server is busy; try again"},
	[STORE_UNAVAILABLE] = {503, "database_unavailable", "the database is unavailable"},
	[STORE_REDIS_UNAVAILABLE] = {503, "redis_unavailable", "the event store is unavailable"},
	[STORE_LOST] = {503, "database_unavailable",
			"the database connection was lost during the change; try again"},
	[STORE_ERROR] = {500, "internal", "a database error occurred"},
};

const struct api_answer *api_status_answer(enum store_status st)
{
	return (unsigned)st < STORE__COUNT ? &answers[st] : &answers[STORE_ERROR];
}

void api_fail(struct api_ctx *c, enum store_status st, const char *code, const char *fmt, ...)
{
	const struct api_answer *a = api_status_answer(st);
	if (a->status == 503)
		api_metrics_unavailable(st);
	char msg[512];
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
	} else {
		snprintf(msg, sizeof msg, "%s", a->message);
	}
	api_error(c, a->status, code ? code : a->code, "%s", msg);
}

void api_fail_why(struct api_ctx *c, enum store_status st)
{
	api_fail(c, st, NULL, "%s", c->store->msg[0] ? c->store->msg : api_status_answer(st)->message);
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

void api_job_accepted(struct api_ctx *c, const char *id, cJSON *obj)
{
	char loc[128];
	snprintf(loc, sizeof loc, "/api/jobs/%s", id);
	http_resp_header(c->resp, "Location", loc);
	api_json(c, 202, obj);
}

__attribute__((format(printf, 2, 0))) static cJSON *error_body(const char *code, const char *fmt,
								  va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	/* a long argument (a request path) may be cut inside a UTF-8 sequence, and JSON text
	 * must be UTF-8 (RFC 8259, section 8.1): end the message before the broken sequence */
	size_t bad = 0;
	if (utf8_validate(msg, strlen(msg), NULL, &bad) != UTF8_OK)
		msg[bad] = '\0';
	cJSON *o = cJSON_CreateObject();
	if (o && (!cJSON_AddStringToObject(o, "error", code) ||
		  !cJSON_AddStringToObject(o, "message", msg))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return o;
}

cJSON *api_error_body(const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cJSON *o = error_body(code, fmt, ap);
	va_end(ap);
	return o;
}

void api_error(struct api_ctx *c, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cJSON *o = error_body(code, fmt, ap);
	va_end(ap);
	api_json(c, status, o);
	if (!o)
		c->resp->status = status;
	/* a 401 says how to authenticate (RFC 9110 §15.5.2): the API reads a bearer token in
	 * Authorization (a scheme that makes no browser show a sign-in dialog), the broker
	 * answers the same */
	if (status == 401)
		http_resp_header(c->resp, "WWW-Authenticate", "Bearer realm=\"codecollab\"");
}

/* The web server's own refusals, in the API's words (api_front_door_error). */
static const struct {
	int status;
	const char *code;
	const char *message;
} front_door[] = {
	{400, "invalid_request", "the web server could not read this request"},
	{403, "forbidden", "this path is not served"},
	{404, "not_found", "no such path"},
	{405, "method_not_allowed", "this method is not allowed here"},
	{408, "request_timeout", "the request did not arrive in time"},
	{413, "payload_too_large", "the request body is larger than 1 MiB"},
	{414, "uri_too_long", "the request target is too long"},
	{417, "expectation_failed", "only Expect: 100-continue is understood"},
	{431, "header_too_large", "the request head is too large"},
	{501, "not_implemented", "this method is not implemented"},
	{505, "http_version_not_supported", "this HTTP version is not supported"},
};

void api_front_door_error(struct api_ctx *c, int status)
{
	for (size_t i = 0; i < sizeof front_door / sizeof front_door[0]; i++)
		if (front_door[i].status == status) {
			api_error(c, status, front_door[i].code, "%s", front_door[i].message);
			return;
		}
	if (status == 500 || status == 502 || status == 503 || status == 504) {
		/* the web server could not get an answer from what serves the path: for the API,
		 * lighttpd says 500 when the API process died with the request in flight, 503 when
		 * none could take it, 504 when none answered in time. The same codes as
		 * deploy/lighttpd/backend-error.lua gives when no API process can answer this one
		 * either, and Retry-After */
		const char *p = c->req->path ? c->req->path : "";
		if (strncmp(p, "/events/", 8) == 0)
			api_error(c, status == 500 ? 502 : status, "broker_unavailable",
				  "the event broker is unavailable");
		else if (status == 503)
			api_error(c, 503, "api_unavailable",
				  "no API process could take the request; it was not carried out: try "
				  "again");
		else if (status == 504)
			api_error(c, 504, "gateway_timeout", "the API did not answer in time; the "
				  "request may or may not have been carried out");
		else
			api_error(c, 502, "bad_gateway",
				  "the API process handling the request stopped before it answered; the "
				  "request may or may not have been carried out: try again (after a "
				  "change, check whether it was made)");
		http_resp_header(c->resp, "Retry-After", "1");
		return;
	}
	api_error(c, status, status < 500 ? "invalid_request" : "internal",
		  "the web server refused this request (%d)", status);
}

static void events_post(struct api_ctx *c)
{
	static const char rooms[] = "/events/rooms/", multi[] = "/events/multi";
	const char *p = c->req->path ? c->req->path : "";
	const char *allow = NULL;
	if (strncmp(p, multi, sizeof multi - 1) == 0 &&
	    (p[sizeof multi - 1] == '\0' || p[sizeof multi - 1] == '/')) {
		const char *tail = p + sizeof multi - 1;
		if (tail[0] == '\0' || strcmp(tail, "/ws") == 0)
			allow = "GET, OPTIONS";
		else if (strcmp(tail, "/poll") == 0) {
			api_error(c, 404, "not_found",
				  "long-poll carries one room: use /events/rooms/{id}/poll");
			return;
		}
	} else if (strcmp(p, "/events/health") == 0) {
		api_error(c, 405, "method_not_allowed", "use GET or HEAD");
		http_resp_header(c->resp, "Allow", "GET, HEAD, OPTIONS");
		return;
	} else if (strncmp(p, rooms, sizeof rooms - 1) == 0) {
		const char *id = p + sizeof rooms - 1;
		const char *slash = strchr(id, '/');
		/* a room id as the broker reads one in a path (lib/id.h) */
		if (!id_valid(id, slash ? (size_t)(slash - id) : strlen(id))) {
			api_error(c, 404, "room_not_found", "no such room");
			return;
		}
		if (!slash || strcmp(slash, "/poll") == 0 || strcmp(slash, "/ws") == 0)
			allow = "GET, OPTIONS";
	}
	if (!allow) {
		api_error(c, 404, "not_found", "no such endpoint");
		return;
	}
	api_error(c, 405, "method_not_allowed", "use GET");
	http_resp_header(c->resp, "Allow", allow);
}

static void static_post(struct api_ctx *c)
{
	api_front_door_error(c, 405);
	if (http_resp_header(c->resp, "Allow", "GET, HEAD") < 0)
		api_error(c, 500, "internal", "out of memory");
}

void api_bodyless_post(struct api_ctx *c)
{
	const char *p = c->req->path ? c->req->path : "";
	/* lighttpd refused it before its proxy could hand it to the broker, or before
	 * static-method.lua could look at it (lighttpd.conf) */
	if (strncmp(p, "/events/", 8) == 0)
		events_post(c);
	else if (strncmp(p, "/api/", 5) != 0)
		static_post(c);
	else
		route_dispatch(c);
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

/* The signed-in user's rate-limit key for what (RK_RL_USER). */
static struct rkey user_rl_key(const struct api_ctx *c, const char *what)
{
	char uid[24];
	snprintf(uid, sizeof uid, "%lld", c->user.user_id);
	return rkey2(RK_RL_USER, what, uid);
}

/* api_user_quota; member not NULL: the event counted is handed back there. */
static int user_quota(struct api_ctx *c, const char *what, long limit, const char *noun,
		      char *member)
{
	struct rds *rd;
	enum store_status st = store_redis(c->store, &rd);
	if (st != STORE_OK) {
		api_fail(c, st, NULL, NULL);
		return -1;
	}
	long retry = 0;
	struct rkey key = user_rl_key(c, what);
	enum ratelimit_result rl = member ? ratelimit_reserve(rd, key.s, limit, 60000, member, &retry)
				       : ratelimit_check(rd, key.s, limit, 60000, 1, &retry);
	if (rl == RATELIMIT_ERROR) {
		api_fail(c, store_redis_failed(c->store), NULL, "the rate limiter is unavailable");
		return -1;
	}
	if (rl == RATELIMIT_LIMITED) {
		api_too_many(c, retry, "rate_limited", "at most %ld %s per minute", limit, noun);
		return -1;
	}
	return 0;
}

int api_user_quota(struct api_ctx *c, const char *what, long limit, const char *noun)
{
	return user_quota(c, what, limit, noun, NULL);
}

int api_user_quota_reserve(struct api_ctx *c, const char *what, long limit, const char *noun,
			   char member[RATELIMIT_MEMBER_LEN + 1])
{
	return user_quota(c, what, limit, noun, member);
}

void api_user_quota_release(struct api_ctx *c, const char *what, const char *member)
{
	struct rds *rd;
	struct rkey key = user_rl_key(c, what);
	if (store_redis(c->store, &rd) != STORE_OK || ratelimit_release(rd, key.s, member) < 0)
		log_warn("user %lld: could not take back a counted %s", c->user.user_id, what);
}

/* 401 for a session that was revoked. Which revocation is told apart only on this (rare)
 * path: signed out if its session key exists, else gone if PostgreSQL has no such account
 * (deleted: DELETE /api/auth/me), else outdated. signed_out: whether the key exists when
 * access_revoked_confirm read it (1 or 0), -1 when it did not and it is read here, one
 * round trip more. */
static void answer_revoked(struct api_ctx *c, int signed_out)
{
	long long gen;
	if (signed_out < 0) {
		signed_out = 0;
		store_session_signed_out(c->store, c->user.sid, &signed_out);
	}
	if (signed_out)
		api_error(c, 401, "session_revoked", "this session was signed out; sign in again");
	else if (store_user_gen(c->store, c->user.user_id, &gen) == STORE_NOT_FOUND)
		api_error(c, 401, "session_revoked", "the account no longer exists");
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
	struct rds *rd;
	enum store_status st = store_redis(c->store, &rd);
	if (st != STORE_OK) {
		api_fail(c, st, NULL, NULL);
		return -1;
	}
	switch (access_session_check(rd, &c->user)) {
	case ACCESS_OK:
		return 0;
	case ACCESS_REVOKED: {
		/* The 401 says the session is over, so a replica must hold that first: the
		 * sign-out or password change that revoked it may have been answered 503 (no
		 * replica confirmed it) and this be its retry, or come from a connection that
		 * never waited. Without it a failover could bring the session back after it was
		 * answered as over. */
		char err[256];
		int signed_out;
		if (access_revoked_confirm(rd, &c->user, &signed_out, err, sizeof err) < 0) {
			log_warn("user %lld: a revoked session is not confirmed by a replica: %s",
				 c->user.user_id, err);
			api_error(c, 503, "redis_unavailable",
				  "this session is over, but no replica of the session store confirms "
				  "it yet; send the request again");
			return -1;
		}
		answer_revoked(c, signed_out);
		return -1;
	}
	case ACCESS_ERROR:
		api_fail(c, store_redis_failed(c->store), NULL, "the session store is unavailable");
		return -1;
	case ACCESS_NO_GEN:
		break;
	}
	/* Redis lost the generation (restart, eviction): PostgreSQL holds the record */
	long long gen;
	st = store_user_gen(c->store, c->user.user_id, &gen);
	if (st == STORE_NOT_FOUND) {
		/* the row was deleted without the rest of a deletion (in SQL alone): the brokers
		 * count a missing generation as 0 and would go on taking the account's tokens, so
		 * the generation of a deleted account goes in, and they re-check its streams */
		if (access_gen_bury(rd, c->user.user_id, c->cfg->token_ttl_s + 1) < 0 ||
		    access_publish_user(rd, c->user.user_id) < 0)
			store_redis_failed(c->store);
		api_error(c, 401, "session_revoked", "the account no longer exists");
		return -1;
	}
	if (st != STORE_OK) {
		api_fail_why(c, st);
		return -1;
	}
	/* only a cache for the next request: the answer below is PostgreSQL's either way */
	if (access_gen_store(rd, c->user.user_id, gen) < 0)
		store_redis_failed(c->store);
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
	const char *tok = token_bearer(h);
	if (!tok) {
		api_error(c, 401, "unauthorized", "the Authorization header must be \"Bearer <token>\"");
		return -1;
	}
	if (!*tok) {
		api_error(c, 401, "unauthorized",
			  "the Authorization header has no token after \"Bearer\": sign in first");
		return -1;
	}
	const char *why = NULL;
	int v = token_verify(&c->cfg->key, tok, (long long)time(NULL), &c->user, &why);
	if (v == TOKEN_UNCHECKED) {
		/* no verdict on the token (out of memory): a failure of ours, not the holder's
		 * (logged with every 5xx, fcgi/main.c) */
		api_error(c, 500, "internal", "the token could not be checked: %s", why);
		return -1;
	}
	if (v < 0) {
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
			  "send the body as JSON with Content-Type: application/json (JSON is "
			  "UTF-8: a charset parameter, if any, must be utf-8)");
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

int api_body_none(struct api_ctx *c)
{
	return api_parse_body(c, 1);
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

/* name's value in the query (query_find: names compared decoded): 1 with val and vlen, 0
 * when it is not there, -1 answered 400 when the query is malformed or it comes twice. A
 * repeated parameter is refused rather than the first one taken: a cache or proxy in front
 * may read the last, and then serves one page for another (the same rule on every
 * endpoint, docs/API.md "Paging"); a proxy reads `li%6Dit` as `limit` too. */
static int query_one(struct api_ctx *c, const char *name, const char **val, size_t *vlen)
{
	const char *why = NULL;
	int count;
	if (query_find(c->req->query, name, val, vlen, &count, &why) < 0) {
		api_error(c, 400, "invalid_request", "%s", why);
		return -1;
	}
	if (count > 1) {
		api_error(c, 400, "invalid_request", "the %s parameter is given more than once",
			  name);
		return -1;
	}
	return count;
}

int api_query(struct api_ctx *c, const char *name, char *out, size_t outlen)
{
	const char *val;
	size_t vlen;
	int got = query_one(c, name, &val, &vlen);
	if (got <= 0)
		return got;
	/* `?limit` with no `=` is the parameter given empty, as `?limit=` is (refused where a
	 * value is needed), not a parameter left out */
	if (vlen >= outlen) {
		api_error(c, 400, "invalid_request", "the %s parameter is too long", name);
		return -1;
	}
	for (size_t i = 0; i < vlen; i++) {
		char ch = val[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-')) {
			api_error(c, 400, "invalid_request",
				  "the %s parameter holds a character it never has", name);
			return -1;
		}
	}
	memcpy(out, val, vlen);
	out[vlen] = '\0';
	return 1;
}

int api_query_once(struct api_ctx *c, const char *name)
{
	const char *val;
	size_t vlen;
	return query_one(c, name, &val, &vlen) < 0 ? -1 : 0;
}

int api_query_int(struct api_ctx *c, const char *name, long long min, long long max,
		  long long def, long long *v)
{
	char text[24];
	int got = api_query(c, name, text, sizeof text);
	if (got < 0)
		return -1;
	*v = def;
	if (got == 0)
		return 0;
	char *end;
	errno = 0;
	long long n = strtoll(text, &end, 10);
	if (!text[0] || *end || errno || n < min || n > max || (text[0] == '-' && min >= 0)) {
		api_error(c, 400, "invalid_request", "%s must be an integer from %lld to %lld", name,
			  min, max);
		return -1;
	}
	*v = n;
	return 0;
}

int api_iso_time(long long ms, char out[40])
{
	if (ms < 0)
		return -1;
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		return -1;
	char day[32];
	if (strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		return -1;
	snprintf(out, 40, "%s.%03lldZ", day, ms % 1000);
	return 0;
}

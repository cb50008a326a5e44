/* api: what every handler of the API gets — the read-only configuration, the process's
 * store (lib/store.h: its PostgreSQL and Redis connections, and every data access that
 * returns a status instead of an answer), and one request context (struct api_ctx) that
 * is created and freed around each request. A handler turns a store status into its
 * answer with api_fail(), through the one table in api.c. */
#ifndef CC_API_H
#define CC_API_H

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "http.h"
#include "id.h"
#include "rds.h"
#include "store.h"
#include "store_doc.h"
#include "token.h"

struct api_config {
	struct token_key key;
	struct rds_target redis;
	const char *database_url;
	const char *database_read_url; /* reads that may lag (lib/store.h); "" for none */
	long token_ttl_s;
	long ticket_ttl_s;
	long login_limit;      /* failed logins per minute per username */
	long login_addr_limit; /* failed logins per minute per client address */
	long login_net_limit;  /* the same per IPv6 /48 (lib/clientaddr.h) */
	long pw_check_limit;   /* password checks, right or wrong, per minute per username */
	long register_limit;   /* registrations per hour per client address */
	long register_net_limit; /* the same per IPv6 /48 */
	long exec_limit;       /* executions per minute per user */
	long ai_limit;         /* AI requests per minute per user */
	long join_limit;       /* joins with a wrong invite code per minute per user */
	long presence_limit;   /* presence events per second per user per room (lib/presence.h) */
	struct store_doc_cfg doc;    /* the document settings, shared with the snapshotter */
	long job_room_backlog_max;   /* JOB_ROOM_BACKLOG_MAX: jobs waiting in one room's line */
	long job_user_backlog_max;   /* JOB_USER_BACKLOG_MAX: jobs one user has waiting */
	long job_queue_max;          /* JOB_QUEUE_MAX: jobs waiting in all lines */
	long room_members_max;       /* ROOM_MEMBERS_MAX: members of one room, the owner too */
	long rooms_per_user_max;     /* ROOMS_PER_USER_MAX: rooms one user owns */
	long metrics_port;           /* METRICS_PORT: GET /metrics answers there only; 0 none */
	const char *metrics_file;    /* API_METRICS_FILE: the processes' shared counters */
	const char *stream_origin;   /* STREAM_ORIGIN: "auto", an origin, or "" / "off" */
	long broker_port;            /* BROKER_PORT: the broker's port, for "auto" */
	long hang_timeout_s;         /* API_HANG_TIMEOUT_S: a request's hard bound; 0 none */
};

#define API_MAX_PARAMS 4
#define API_ID_MAX ID_MAX /* a path segment matched by '*' is an id (lib/id.h) */

struct api_ctx {
	const struct api_config *cfg;
	struct store *store; /* the process's; outlives the request */
	struct http_req *req;
	struct http_resp *resp;
	cJSON *body; /* the parsed JSON object, or NULL when the request had no body */
	int authed;
	struct token_claims user;
	char params[API_MAX_PARAMS][API_ID_MAX + 1]; /* path segments matched by '*' */
	int nparams;
	int route; /* the route table's index that matched, -1 none (api_metrics.h) */
};

int api_config_load(struct api_config *cfg, char *err, size_t errlen);
void api_config_free(struct api_config *cfg);

/* What a store status answers by default: the HTTP status, the error code and message. */
struct api_answer {
	int status;
	const char *code;
	const char *message;
};
/* The table's row for st (a row for STORE_ERROR when st is out of range). */
const struct api_answer *api_status_answer(enum store_status st);
/* Answers a store status: the table's HTTP status, with `code` and the message fmt (each
 * NULL: the table's) where the contract names a specific one. */
void api_fail(struct api_ctx *c, enum store_status st, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The same with the store's own words for why (c->store->msg): for the failures of store
 * functions that say which part failed ("the document store is unavailable"). */
void api_fail_why(struct api_ctx *c, enum store_status st);

/* Answers: api_json takes ownership of obj (may be NULL: no body). */
void api_json(struct api_ctx *c, int status, cJSON *obj);
/* 202 with obj (taken) and `Location: /api/jobs/{id}`: a job was created or joined. */
void api_job_accepted(struct api_ctx *c, const char *id, cJSON *obj);
void api_error(struct api_ctx *c, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The error body {"error": code, "message": …} as api_error() sends it, for an answer that
 * carries more fields (caller adds them and passes it to api_json); NULL out of memory. */
cJSON *api_error_body(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void api_no_content(struct api_ctx *c);
/* Words the web server's own refusal of a request (a status it handed to its error handler,
 * http_req.redirect_status: 400, 404, 413, 431, 503, …) as the API's JSON error, with the
 * same status: one vocabulary for every answer under the front door (docs/API.md). */
void api_front_door_error(struct api_ctx *c, int status);
/* A POST without a body, which lighttpd refused with 411 and handed to the API, its error
 * handler (fcgi/main.c turns it back into the POST it was): answered, by its path, as the
 * place lighttpd would have taken it to answers a POST. Under /events/ as the broker does
 * there (sse-broker/server.c, route_request), so that the front door tells the same as the
 * broker's own port: 405 with Allow on the stream paths and /events/health, 404 elsewhere.
 * Outside /api/ (the client's pages and files), 405 with Allow: GET, HEAD, in the words
 * deploy/lighttpd/static-method.lua answers one with a body in, and Apache's error page
 * (deploy/apache/errors/405.json). Under /api/, by the route table (route_dispatch). */
void api_bodyless_post(struct api_ctx *c);

/* A per-minute quota of the signed-in caller, counted in Redis under cc:rl:{what}:{user}.
 * 0 to go on (and one more counted); -1 answered: 429 with Retry-After naming `noun`
 * ("at most 10 runs per minute"), or 503 when Redis cannot say. */
int api_user_quota(struct api_ctx *c, const char *what, long limit, const char *noun);
/* api_user_quota that hands back the counted event (member, 33 bytes), so that a request
 * that turns out not to need it (a repeated run, a job the queue refused) can take it back
 * with api_user_quota_release (which logs a failure: the quota is then one short a minute). */
int api_user_quota_reserve(struct api_ctx *c, const char *what, long limit, const char *noun,
			   char member[33]);
void api_user_quota_release(struct api_ctx *c, const char *what, const char *member);

/* Answers 429 `code` with a Retry-After of retry_s seconds. */
void api_too_many(struct api_ctx *c, long retry_s, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ms since 1970 as the API writes every timestamp: ISO-8601 UTC with milliseconds,
 * "2026-11-30T04:52:18.123Z" (docs/API.md "Timestamps"). 0, or -1 when out of range. */
int api_iso_time(long long ms, char out[40]);

/* A query parameter (request's query string), its value copied undecoded into out: 1
 * found, 0 absent, -1 answered (400 invalid_request: given more than once, longer than
 * outlen - 1, or a byte outside [A-Za-z0-9._-], which no value the API takes needs, so an
 * escape in a value is refused). Names are compared percent-decoded (query_find, `+` a
 * space), and any name with a malformed escape is refused (400). */
int api_query(struct api_ctx *c, const char *name, char *out, size_t outlen);
/* 0 when the query parameter `name` is given at most once (bare or with a value, its name
 * decoded as api_query does); -1 answered (400 invalid_request) when it is repeated or a
 * name holds a malformed escape. */
int api_query_once(struct api_ctx *c, const char *name);
/* An integer query parameter in [min, max], *v = def when absent: 0, or -1 answered (400
 * invalid_request naming the parameter and its bounds). */
int api_query_int(struct api_ctx *c, const char *name, long long min, long long max,
		  long long def, long long *v);

/* Requires a valid session token that is still live (not signed out, not older than the
 * user's last password change; lib/access.h); answers 401 and returns -1 otherwise, or 503
 * when Redis (or PostgreSQL, when Redis lost the user's generation) cannot say. */
int api_require_user(struct api_ctx *c);

/* The request's client-supplied JSON for dispatch: checks Content-Type and parses. 0 or the
 * error was answered (-1). An empty body gives an empty object when allow_empty. */
int api_parse_body(struct api_ctx *c, int allow_empty);

/* The body of an endpoint that reads no fields (sign-out, a stream ticket, the invite link,
 * the deletions): none, or one JSON object whose members are ignored, checked as any body
 * is (415 for another media type, 400 invalid_json), so that what a client sends is never
 * dropped unseen on one endpoint and refused on the next. 0, or -1 answered. */
int api_body_none(struct api_ctx *c);

/* The request's JSON object, checked against a table of fields (valid.h): 0 with the
 * values in v[0..n), or -1 with the error answered (400/413/415). */
struct valid_field;
struct valid_value;
int api_body_fields(struct api_ctx *c, int allow_empty, const struct valid_field *fields,
		    size_t n, struct valid_value *v);

#endif

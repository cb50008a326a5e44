/* api: what every handler of the API gets — the read-only configuration, the process's
 * connections to PostgreSQL and Redis, and one request context (struct api_ctx) that is
 * created and freed around each request. */
#ifndef CC_API_H
#define CC_API_H

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "http.h"
#include "rds.h"
#include "token.h"

struct api_config {
	struct token_key key;
	struct rds_target redis;
	const char *database_url;
	long token_ttl_s;
	long ticket_ttl_s;
	long login_limit;      /* failed logins per minute per username */
	long login_addr_limit; /* failed logins per minute per client address */
	long register_limit;   /* registrations per hour per client address */
	long exec_limit;       /* executions per minute per user */
	long ai_limit;         /* AI requests per minute per user */
	long doc_max_bytes;
	long snapshot_interval_ms;   /* SNAPSHOT_INTERVAL_MS: at most one save per room this often */
	long history_checkpoint_ops; /* HISTORY_CHECKPOINT_OPS: a full text every this many ops */
	long history_keep_ops_days;  /* HISTORY_KEEP_OPS_DAYS: typed ops kept this long */
	long history_thin_interval_s; /* HISTORY_THIN_INTERVAL_S: how often history is thinned */
	long job_room_backlog_max;   /* JOB_ROOM_BACKLOG_MAX: jobs waiting in one room's line */
	long job_user_backlog_max;   /* JOB_USER_BACKLOG_MAX: jobs one user has waiting */
	long job_queue_max;          /* JOB_QUEUE_MAX: jobs waiting in all lines */
};

struct api_conns {
	PGconn *pg;
	redisContext *redis;
};

#define API_MAX_PARAMS 4
#define API_ID_MAX 64

struct api_ctx {
	const struct api_config *cfg;
	struct api_conns *conns;
	struct http_req *req;
	struct http_resp *resp;
	cJSON *body; /* the parsed JSON object, or NULL when the request had no body */
	int authed;
	int in_tx; /* inside BEGIN..COMMIT on conns->pg: a lost connection is never silently
		    * replaced (the statements after it would run outside the transaction) */
	struct token_claims user;
	char params[API_MAX_PARAMS][API_ID_MAX + 1]; /* path segments matched by '*' */
	int nparams;
};

int api_config_load(struct api_config *cfg, char *err, size_t errlen);
void api_config_free(struct api_config *cfg);

/* Live connections, reconnected on demand; NULL (and a 503 answered) when the server is
 * unreachable. Borrowed: owned by conns. */
PGconn *api_pg(struct api_ctx *c);
redisContext *api_redis(struct api_ctx *c);
void api_conns_close(struct api_conns *conns);
/* After a failed Redis command: drop the context so the next api_redis() reconnects. */
void api_redis_failed(struct api_ctx *c);

/* Answers: api_json takes ownership of obj (may be NULL: no body). */
void api_json(struct api_ctx *c, int status, cJSON *obj);
void api_error(struct api_ctx *c, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void api_no_content(struct api_ctx *c);

/* A per-minute quota of the signed-in caller, counted in Redis under cc:rl:{what}:{user}.
 * 0 to go on (and one more counted); -1 answered: 429 with Retry-After naming `noun`
 * ("at most 10 runs per minute"), or 503 when Redis cannot say. */
int api_user_quota(struct api_ctx *c, const char *what, long limit, const char *noun);

/* Answers 429 `code` with a Retry-After of retry_s seconds. */
void api_too_many(struct api_ctx *c, long retry_s, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Requires a valid session token that is still live (not signed out, not older than the
 * user's last password change; lib/access.h); answers 401 and returns -1 otherwise, or 503
 * when Redis (or PostgreSQL, when Redis lost the user's generation) cannot say. */
int api_require_user(struct api_ctx *c);

/* Runs a parameterised statement. Returns the result (caller frees with PQclear) when its
 * status is COMMAND_OK or TUPLES_OK. Otherwise answers 503 (connection) or 500 and returns
 * NULL, unless the SQLSTATE equals `expect_state` (e.g. "23505"): then it answers nothing,
 * sets *state_hit = 1 and returns NULL. */
PGresult *api_sql(struct api_ctx *c, const char *sql, int n, const char *const *params,
		  const char *expect_state, int *state_hit);

/* The request's client-supplied JSON for dispatch: checks Content-Type and parses. 0 or the
 * error was answered (-1). An empty body gives an empty object when allow_empty. */
int api_parse_body(struct api_ctx *c, int allow_empty);

/* The request's JSON object, checked against a table of fields (valid.h): 0 with the
 * values in v[0..n), or -1 with the error answered (400/413/415). */
struct valid_field;
struct valid_value;
int api_body_fields(struct api_ctx *c, int allow_empty, const struct valid_field *fields,
		    size_t n, struct valid_value *v);

#endif

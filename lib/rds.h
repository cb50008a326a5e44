/* rds: synchronous Redis connections for the API and the worker (hiredis).
 *
 * REDIS_URL is redis://[:password@]host[:port][/db] or unix:///path/to/socket; the
 * default is redis://127.0.0.1:6379. Parsed with libcurl's URL API. */
#ifndef CC_RDS_H
#define CC_RDS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

struct rds_target {
	char host[256];
	int port;
	char socket[256]; /* non-empty for unix sockets */
	char password[256];
	int db;
};

int rds_parse_url(const char *url, struct rds_target *t, char *err, size_t errlen);
/* Connects (timeout in ms for connect and every command), authenticates, selects the db.
 * Caller frees with redisFree(). NULL on failure, message in err. */
redisContext *rds_connect(const struct rds_target *t, int timeout_ms, char *err, size_t errlen);

/* After a command: 1 when it failed, with "redis: …" in err — a NULL reply (the connection
 * is broken, r->errstr says why) or an error reply, which is freed here; 0 for any other
 * reply, which stays the caller's. */
int rds_reply_failed(redisContext *r, redisReply *rep, char *err, size_t errlen);

#endif

struct rscript;
/* Runs one of the contract's Lua scripts (rscript.h) by its SHA-1 (EVALSHA), sending the
 * text only when Redis does not know it yet (NOSCRIPT): the script is parsed once per
 * server, not once per call. args: nkeys keys then the other arguments (argc in all, at
 * most RDS_SCRIPT_MAX_ARGS), binary-safe with lens (NULL: strlen). Caller frees the reply
 * with freeReplyObject(); NULL when the connection failed or argc is too large. */
#define RDS_SCRIPT_MAX_ARGS 64
redisReply *rds_script(redisContext *c, const struct rscript *s, int nkeys, int argc,
		       const char *const *args, const size_t *lens);

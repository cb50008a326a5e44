/* Accounts: register, login (rate limited), me, and health. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "handlers.h"
#include "log.h"
#include "pw.h"
#include "ratelimit.h"
#include "rnd.h"
#include "valid.h"

#define LOGIN_WINDOW_MS 60000

static int check_username(const char *s, const char **why)
{
	for (; *s; s++) {
		char ch = *s;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '_' || ch == '-' || ch == '.')) {
			*why = "may only contain letters, digits, '_', '-' and '.'";
			return -1;
		}
	}
	return 0;
}

static const struct valid_field register_fields[] = {
	{"username", VALID_STRING, VALID_REQUIRED | VALID_SINGLE_LINE, 3, 32, NULL, check_username},
	{"password", VALID_STRING, VALID_REQUIRED, 8, 1024, NULL, NULL},
};

/* Login takes any string: a wrong-shaped name is simply a failed login. */
static const struct valid_field login_fields[] = {
	{"username", VALID_STRING, VALID_REQUIRED, 1, 256, NULL, NULL},
	{"password", VALID_STRING, VALID_REQUIRED, 1, 4096, NULL, NULL},
};

/* {token, user:{id, username}} for a freshly authenticated user. */
static void answer_token(struct api_ctx *c, int status, long long id, const char *username)
{
	struct token_claims cl = {.user_id = id, .kind = TOKEN_SESSION};
	long long now = (long long)time(NULL);
	cl.iat = now;
	cl.exp = now + c->cfg->token_ttl_s;
	snprintf(cl.username, sizeof cl.username, "%s", username);
	if (rnd_id(cl.sid, TOKEN_SID_LEN) < 0) {
		api_error(c, 500, "internal", "could not make a session id");
		return;
	}
	char *tok = token_sign(&c->cfg->key, &cl);
	if (!tok) {
		api_error(c, 500, "internal", "could not sign a token");
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "token", tok);
	cJSON_AddNumberToObject(o, "expires_in", (double)c->cfg->token_ttl_s);
	cJSON *u = cJSON_AddObjectToObject(o, "user");
	cJSON_AddNumberToObject(u, "id", (double)id);
	cJSON_AddStringToObject(u, "username", username);
	free(tok);
	api_json(c, status, o);
}

void h_register(struct api_ctx *c)
{
	struct valid_value v[2];
	if (api_body_fields(c, 0, register_fields, 2, v) < 0)
		return;
	char hash[PW_HASH_MAX];
	if (pw_hash(v[1].s, v[1].len, hash) < 0) {
		api_error(c, 500, "internal", "could not hash the password");
		return;
	}
	const char *params[] = {v[0].s, hash};
	int taken = 0;
	PGresult *r = api_sql(c,
			      "INSERT INTO users (username, password_hash) VALUES ($1, $2) "
			      "RETURNING id",
			      2, params, "23505", &taken);
	if (!r) {
		if (taken)
			api_error(c, 409, "username_taken", "the username \"%s\" is taken", v[0].s);
		return;
	}
	long long id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	answer_token(c, 201, id, v[0].s);
}

/* A real argon2id hash of a random password: verifying against it costs what a real
 * check costs, so an unknown username answers as slowly as a wrong password. */
static const char dummy_hash[] =
	"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
	"2fJm0WyXHhnL8T5bXb5NLk3Nc0ICMVPjSPq9PKbVf0M";

/* Takes this attempt's place in the window of key (member receives its id). 0 when there
 * was one; else answered: 1 limited (429), -1 Redis failed (503; rd is gone then). */
static int limited(struct api_ctx *c, redisContext *rd, const char *key, long limit,
		   const char *what, char member[RATELIMIT_MEMBER_LEN + 1])
{
	long retry = 0;
	enum ratelimit_result rl = ratelimit_reserve(rd, key, limit, LOGIN_WINDOW_MS, member, &retry);
	if (rl == RATELIMIT_ERROR) {
		api_redis_failed(c);
		api_error(c, 503, "redis_unavailable", "the rate limiter is unavailable");
		return -1;
	}
	if (rl == RATELIMIT_LIMITED) {
		api_too_many(c, retry, "too_many_attempts", "too many failed sign-ins %s", what);
		return 1;
	}
	return 0;
}

void h_login(struct api_ctx *c)
{
	struct valid_value v[2];
	if (api_body_fields(c, 0, login_fields, 2, v) < 0)
		return;
	redisContext *rd = api_redis(c);
	if (!rd)
		return;
	/* usernames are case-insensitive, so the limit is too */
	char lower[257], ukey[320], akey[320];
	size_t i;
	for (i = 0; v[0].s[i] && i < sizeof lower - 1; i++)
		lower[i] = (char)((v[0].s[i] >= 'A' && v[0].s[i] <= 'Z') ? v[0].s[i] + 32 : v[0].s[i]);
	lower[i] = '\0';
	snprintf(ukey, sizeof ukey, "cc:rl:login:user:%s", lower);
	snprintf(akey, sizeof akey, "cc:rl:login:addr:%s", c->req->remote_addr);
	/* The attempt takes its place in both windows before the password is checked, so
	 * parallel guesses cannot pass a window that has one place left; an attempt that is not
	 * a wrong password (refused by the other limit, database down, success) gives its places
	 * back: the limits count failed sign-ins. */
	char umember[RATELIMIT_MEMBER_LEN + 1], amember[RATELIMIT_MEMBER_LEN + 1];
	if (limited(c, rd, ukey, c->cfg->login_limit, "for this username", umember) != 0)
		return;
	int al = limited(c, rd, akey, c->cfg->login_addr_limit, "from this address", amember);
	if (al != 0) {
		if (al > 0 && ratelimit_release(rd, ukey, umember) < 0)
			api_redis_failed(c);
		return;
	}

	const char *params[] = {v[0].s};
	PGresult *r = api_sql(c,
			      "SELECT id, username, password_hash FROM users "
			      "WHERE lower(username) = lower($1)",
			      1, params, NULL, NULL);
	if (!r) {
		if (ratelimit_release(rd, ukey, umember) < 0 ||
		    ratelimit_release(rd, akey, amember) < 0)
			api_redis_failed(c);
		return;
	}
	int found = PQntuples(r) == 1;
	int ok = pw_verify(found ? PQgetvalue(r, 0, 2) : dummy_hash, v[1].s, v[1].len);
	if (!found || ok != 1) {
		PQclear(r);
		if (ok < 0 && found)
			log_error("user %s has a malformed password hash", v[0].s);
		api_error(c, 401, "invalid_credentials", "wrong username or password");
		return;
	}
	long long id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	char name[TOKEN_USERNAME_MAX + 1];
	snprintf(name, sizeof name, "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
	if (ratelimit_release(rd, ukey, umember) < 0 || ratelimit_release(rd, akey, amember) < 0)
		api_redis_failed(c);
	answer_token(c, 200, id, name);
}

void h_me(struct api_ctx *c)
{
	if (api_require_user(c) < 0)
		return;
	cJSON *o = cJSON_CreateObject();
	cJSON *u = cJSON_AddObjectToObject(o, "user");
	cJSON_AddNumberToObject(u, "id", (double)c->user.user_id);
	cJSON_AddStringToObject(u, "username", c->user.username);
	api_json(c, 200, o);
}

void h_health(struct api_ctx *c)
{
	const char *pg = "ok", *rs = "ok";
	PGconn *conn = c->conns->pg;
	if (!conn || PQstatus(conn) != CONNECTION_OK) {
		if (conn)
			PQfinish(conn);
		conn = c->conns->pg = PQconnectdb(c->cfg->database_url);
	}
	PGresult *r = conn ? PQexec(conn, "SELECT 1") : NULL;
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK)
		pg = "down";
	PQclear(r);
	redisContext *rd = c->conns->redis;
	if (!rd || rd->err) {
		char err[256];
		if (rd)
			redisFree(rd);
		rd = c->conns->redis = rds_connect(&c->cfg->redis, 1000, err, sizeof err);
	}
	redisReply *rep = rd ? redisCommand(rd, "PING") : NULL;
	if (!rep || rep->type != REDIS_REPLY_STATUS)
		rs = "down";
	if (rep)
		freeReplyObject(rep);
	int up = strcmp(pg, "ok") == 0 && strcmp(rs, "ok") == 0;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", up ? "ok" : "degraded");
	cJSON_AddStringToObject(o, "postgres", pg);
	cJSON_AddStringToObject(o, "redis", rs);
	api_json(c, up ? 200 : 503, o);
}

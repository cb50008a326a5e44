/* Accounts: register (limited per address), login (rate limited), logout, password change,
 * deletion, me, and health. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access.h"
#include "clientaddr.h"
#include "rkeys.h"
#include "rscript.h"
#include "store_user.h"
#include "handlers.h"
#include "log.h"
#include "pw.h"
#include "ratelimit.h"
#include "rnd.h"
#include "valid.h"

#define LOGIN_WINDOW_MS 60000
#define REGISTER_WINDOW_MS 3600000

int auth_username_key(const char *name, char *out, size_t cap)
{
	size_t i;
	for (i = 0; name[i]; i++) {
		if (i + 1 >= cap)
			return -1;
		char ch = name[i];
		/* ASCII letters only: a locale's lower() folds look-alikes (the Kelvin sign, dotted
		 * and dotless i) into ASCII, which would let them share an account's limit or name */
		out[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch);
	}
	if (cap == 0)
		return -1;
	out[i] = '\0';
	return 0;
}

static const struct valid_field register_fields[] = {
	{"username", VALID_STRING, VALID_REQUIRED | VALID_SINGLE_LINE, 3, 32, NULL, valid_plain_name},
	{"password", VALID_STRING, VALID_REQUIRED, 8, 1024, NULL, NULL},
};

/* Login takes any string: a wrong-shaped name is simply a failed login. */
static const struct valid_field login_fields[] = {
	{"username", VALID_STRING, VALID_REQUIRED, 1, 256, NULL, NULL},
	{"password", VALID_STRING, VALID_REQUIRED, 1, 4096, NULL, NULL},
};

/* The store's Redis connection; NULL with its failure answered (503). */
static struct rds *auth_redis(struct api_ctx *c)
{
	struct rds *rd;
	enum store_status st = store_redis(c->store, &rd);
	if (st == STORE_OK)
		return rd;
	api_fail(c, st, NULL, NULL);
	return NULL;
}

/* The key of limit `id` for the client's address ca (REMOTE_ADDR, read once for both keys
 * with clientaddr_parse): its group (lib/clientaddr.h), so that an IPv6 client counts by its
 * /64. */
static struct rkey addr_key(const struct clientaddr *ca, enum rk id)
{
	char group[CLIENTADDR_GROUP_MAX];
	clientaddr_group(ca, group, sizeof group);
	return rkey1(id, group);
}

/* The key of limit `id` for the client's wider network, an IPv6 client's /48: the same key
 * as addr_key's with the /48 for its group (never equal to a /64's or an address's). 1 with
 * *key set; 0 when the client has no wider window (IPv4). */
static int net_key(const struct clientaddr *ca, enum rk id, struct rkey *key)
{
	char group[CLIENTADDR_GROUP_MAX];
	if (!clientaddr_network(ca, group, sizeof group))
		return 0;
	*key = rkey1(id, group);
	return 1;
}

/* {token, user:{id, username}} for a freshly authenticated user: a new session (fresh sid)
 * of the user's token generation gen (users.token_gen). */
static void answer_token(struct api_ctx *c, int status, long long id, const char *username,
			 long long gen)
{
	struct token_claims cl = {.user_id = id, .kind = TOKEN_SESSION, .gen = gen};
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

/* Gives back a place a request took in the window of key (ratelimit_release); a failure
 * is logged and the place stays until the window moves past it. Each place on its own: the
 * windows' keys lie in different slots, so one that cannot be reached keeps no other. */
static void give_back(struct api_ctx *c, struct rds *rd, const char *key, const char *member)
{
	if (ratelimit_release(rd, key, member) < 0)
		store_redis_failed(c->store);
}

/* Takes this request's place in the window of key (window_ms long, at most limit places;
 * member receives its id). 0 when there was one; else answered: 1 limited (429 with the
 * error code and message given), -1 Redis failed (503). */
static int limited(struct api_ctx *c, struct rds *rd, const char *key, long limit,
		   long window_ms, const char *code, const char *message,
		   char member[RATELIMIT_MEMBER_LEN + 1])
{
	long retry = 0;
	enum ratelimit_result rl = ratelimit_reserve(rd, key, limit, window_ms, member, &retry);
	if (rl == RATELIMIT_ERROR) {
		api_fail(c, store_redis_failed(c->store), NULL, "the rate limiter is unavailable");
		return -1;
	}
	if (rl == RATELIMIT_LIMITED) {
		api_too_many(c, retry, code, "%s", message);
		return 1;
	}
	return 0;
}

/* Registrations per client address in a sliding hour, counted before the argon2 hash: each
 * costs a hash and makes an account with fresh per-user quotas. Every attempt with a valid
 * body counts (a taken name cost a hash too). A place in the address's window, then (IPv6)
 * in its /48's; refused by the second, the first is given back: a registration refused is
 * not counted. 0 to go on, or -1 answered (429/503). */
static int register_allowed(struct api_ctx *c)
{
	struct rds *rd = auth_redis(c);
	if (!rd)
		return -1;
	char member[RATELIMIT_MEMBER_LEN + 1], nmember[RATELIMIT_MEMBER_LEN + 1], msg[128];
	struct clientaddr ca;
	clientaddr_parse(c->req->remote_addr, &ca);
	struct rkey key = addr_key(&ca, RK_RL_REGISTER_ADDR), nkey;
	snprintf(msg, sizeof msg, "at most %ld registrations per hour from one address",
		 c->cfg->register_limit);
	if (limited(c, rd, key.s, c->cfg->register_limit, REGISTER_WINDOW_MS,
		    "too_many_registrations", msg, member) != 0)
		return -1;
	if (!net_key(&ca, RK_RL_REGISTER_ADDR, &nkey))
		return 0;
	snprintf(msg, sizeof msg,
		 "at most %ld registrations per hour from one network (an IPv6 /48)",
		 c->cfg->register_net_limit);
	if (limited(c, rd, nkey.s, c->cfg->register_net_limit, REGISTER_WINDOW_MS,
		    "too_many_registrations", msg, nmember) != 0) {
		give_back(c, rd, key.s, member);
		return -1;
	}
	return 0;
}

void h_register(struct api_ctx *c)
{
	struct valid_value v[2];
	if (api_body_fields(c, 0, register_fields, 2, v) < 0)
		return;
	if (register_allowed(c) < 0)
		return;
	char hash[PW_HASH_MAX];
	if (pw_hash(v[1].s, v[1].len, hash) < 0) {
		api_error(c, 500, "internal", "could not hash the password");
		return;
	}
	/* the name's canonical form (users.username_key) decides whether it is taken */
	long long id, gen;
	enum store_status st = store_user_create(c->store, v[0].s, hash, &id, &gen);
	if (st == STORE_CONFLICT) {
		api_error(c, 409, "username_taken", "the username \"%s\" is taken", v[0].s);
		return;
	}
	if (st != STORE_OK) {
		api_fail_why(c, st);
		return;
	}
	answer_token(c, 201, id, v[0].s, gen);
}

/* A real argon2id hash of a random password: verifying against it costs what a real
 * check costs, so an unknown username answers as slowly as a wrong password. */
static const char dummy_hash[] =
	"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
	"2fJm0WyXHhnL8T5bXb5NLk3Nc0ICMVPjSPq9PKbVf0M";

/* Every password check of the username's canonical form, right or wrong, in a looser window
 * of its own (PASSWORD_CHECK_RATE_LIMIT), never given back: the failure windows below give
 * a right password's place back, so without this a client with any account (anyone may
 * register one) could loop right sign-ins or password changes, each an argon2id hash that
 * holds one of the few API processes for its whole length. 0 to go on; -1 answered (429
 * too_many_attempts with Retry-After, as the failure windows answer, or 503). */
static int checks_allowed(struct api_ctx *c, struct rds *rd, const char *name_key)
{
	struct rkey key = rkey1(RK_RL_LOGIN_CHECK, name_key);
	long retry = 0;
	enum ratelimit_result rl =
		ratelimit_check(rd, key.s, c->cfg->pw_check_limit, LOGIN_WINDOW_MS, 1, &retry);
	if (rl == RATELIMIT_ERROR) {
		api_fail(c, store_redis_failed(c->store), NULL, "the rate limiter is unavailable");
		return -1;
	}
	if (rl == RATELIMIT_LIMITED) {
		api_too_many(c, retry, "too_many_attempts",
			     "too many password checks for this username (at most %ld a minute, right "
			     "or wrong)", c->cfg->pw_check_limit);
		return -1;
	}
	return 0;
}

/* limited() for a failed sign-in's window (LOGIN_WINDOW_MS): `what` says whose window it is
 * in the 429's message ("for this username"). */
static int login_limited(struct api_ctx *c, struct rds *rd, const char *key, long limit,
			 const char *what, char member[RATELIMIT_MEMBER_LEN + 1])
{
	char msg[96];
	snprintf(msg, sizeof msg, "too many failed sign-ins %s", what);
	return limited(c, rd, key, limit, LOGIN_WINDOW_MS, "too_many_attempts", msg, member);
}

/* One password check against the sign-in limits: its places in the window of the username's
 * canonical form and in the window of the client address. */
struct pw_attempt {
	struct rkey ukey, akey, nkey;
	int wide; /* nkey is set: an IPv6 client's /48 has a window too */
	char umember[RATELIMIT_MEMBER_LEN + 1], amember[RATELIMIT_MEMBER_LEN + 1];
	char nmember[RATELIMIT_MEMBER_LEN + 1];
};

/* The attempt takes its place in both windows before the password is checked, so parallel
 * guesses cannot pass a window that has one place left; first it is counted among the
 * name's checks (checks_allowed). Refused by a window (429) or not answered by it (503), it
 * gives back the places it took in the windows before. 0 to go on; -1 answered (429/503). */
static int attempt_begin(struct api_ctx *c, struct rds *rd, const char *name_key,
			 struct pw_attempt *a)
{
	if (checks_allowed(c, rd, name_key) < 0)
		return -1;
	struct clientaddr ca;
	clientaddr_parse(c->req->remote_addr, &ca);
	a->ukey = rkey1(RK_RL_LOGIN_USER, name_key);
	a->akey = addr_key(&ca, RK_RL_LOGIN_ADDR);
	if (login_limited(c, rd, a->ukey.s, c->cfg->login_limit, "for this username",
			  a->umember) != 0)
		return -1;
	if (login_limited(c, rd, a->akey.s, c->cfg->login_addr_limit, "from this address",
			  a->amember) != 0) {
		give_back(c, rd, a->ukey.s, a->umember);
		return -1;
	}
	a->wide = net_key(&ca, RK_RL_LOGIN_ADDR, &a->nkey);
	if (!a->wide)
		return 0;
	if (login_limited(c, rd, a->nkey.s, c->cfg->login_net_limit,
			  "from this network (an IPv6 /48)", a->nmember) != 0) {
		give_back(c, rd, a->ukey.s, a->umember);
		give_back(c, rd, a->akey.s, a->amember);
		return -1;
	}
	return 0;
}

/* An attempt that was not a wrong password (a success, the database down) gives its places
 * back: the limits count failed sign-ins. */
static void attempt_forgive(struct api_ctx *c, struct rds *rd, const struct pw_attempt *a)
{
	give_back(c, rd, a->ukey.s, a->umember);
	give_back(c, rd, a->akey.s, a->amember);
	if (a->wide)
		give_back(c, rd, a->nkey.s, a->nmember);
}

void h_login(struct api_ctx *c)
{
	struct valid_value v[2];
	if (api_body_fields(c, 0, login_fields, 2, v) < 0)
		return;
	struct rds *rd = auth_redis(c);
	if (!rd)
		return;
	/* the canonical form computed here, not lower() in SQL: a name with any byte outside
	 * ASCII (a look-alike of a real name) matches no account and has a limit of its own */
	char key[AUTH_NAME_KEY_MAX + 1];
	if (auth_username_key(v[0].s, key, sizeof key) < 0) {
		api_error(c, 400, "invalid_request", "username is too long");
		return;
	}
	struct pw_attempt a;
	if (attempt_begin(c, rd, key, &a) < 0)
		return;
	struct store_user u;
	enum store_status st = store_user_by_key(c->store, key, &u);
	if (st != STORE_OK && st != STORE_NOT_FOUND) {
		attempt_forgive(c, rd, &a);
		api_fail_why(c, st);
		return;
	}
	int found = st == STORE_OK;
	int ok = pw_verify(found ? u.password_hash : dummy_hash, v[1].s, v[1].len);
	store_user_free(&u);
	if (!found || ok != 1) {
		if (ok < 0 && found)
			log_error("user %s has a malformed password hash", v[0].s);
		api_error(c, 401, "invalid_credentials", "wrong username or password");
		return;
	}
	long long id = u.id, gen = u.token_gen;
	char name[TOKEN_USERNAME_MAX + 1];
	snprintf(name, sizeof name, "%s", u.username);
	attempt_forgive(c, rd, &a);
	/* Raise-only, so harmless when Redis already has it; it repairs a password change whose
	 * own store failed after its commit (h_password): this sign-in with the new password
	 * makes the older tokens fail from now on. A failure here leaves the API's check to
	 * PostgreSQL when Redis has no generation at all. */
	if (store_redis(c->store, &rd) == STORE_OK && access_gen_store(rd, id, gen) < 0)
		store_redis_failed(c->store);
	answer_token(c, 200, id, name, gen);
}

/* Tells Redis, then every broker, that user_id's tokens changed: fn (a sign-out or a new
 * generation, written to key) then SPUBLISH on cc:access. Both are idempotent, so after a
 * failure both are retried once on a fresh connection (a connection that went stale between
 * requests). Then a replica must hold the write (REDIS_WAIT_REPLICAS), as it must hold a
 * change of rights in a room: the change is answered as done only once a failover can no
 * longer bring back the tokens it revoked. 0, or -1: Redis failed or no replica confirmed
 * (the caller answers 503; a retry finds the tokens revoked, and their 401 waits for the
 * replica too: fcgi/api.c) or Redis could not be reached (503 answered). */
static int revoke_and_tell(struct api_ctx *c, long long user_id,
			   int (*fn)(struct rds *rd, struct api_ctx *c, long long arg),
			   long long arg, const char *key)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		struct rds *rd = auth_redis(c);
		if (!rd)
			return -1;
		if (fn(rd, c, arg) != 0) {
			store_redis_failed(c->store);
			continue;
		}
		/* the brokers first: the master refuses the tokens already, and their streams
		 * should not wait for the replica */
		if (access_publish_user(rd, user_id) != 0) {
			store_redis_failed(c->store);
			continue;
		}
		char err[256];
		int exists;
		if (access_key_confirm(rd, key, &exists, err, sizeof err) == 0)
			return 0;
		log_warn("user %lld: a revocation is not confirmed by a replica: %s", user_id, err);
		return -1;
	}
	return -1;
}

static int revoke_session(struct rds *rd, struct api_ctx *c, long long ttl_s)
{
	return access_session_revoke(rd, c->user.sid, ttl_s);
}

static int store_gen(struct rds *rd, struct api_ctx *c, long long gen)
{
	return access_gen_store(rd, c->user.user_id, gen);
}

void h_logout(struct api_ctx *c)
{
	if (api_require_user(c) < 0 || api_body_none(c) < 0)
		return;
	/* the mark lives as long as the token (and every ticket taken with it, which never
	 * outlives it) could still pass token_verify; one second more for the rounding */
	long long ttl = c->user.exp - (long long)time(NULL) + 1;
	struct rkey mark = rkey1(RK_SESSION_REVOKED, c->user.sid);
	if (revoke_and_tell(c, c->user.user_id, revoke_session, ttl, mark.s) < 0) {
		api_error(c, 503, "redis_unavailable",
			  "the session store is unavailable; the session may not be signed out");
		return;
	}
	api_no_content(c);
}

/* The new password follows registration's rule. */
static const struct valid_field password_fields[] = {
	{"password", VALID_STRING, VALID_REQUIRED, 1, 4096, NULL, NULL},
	{"new_password", VALID_STRING, VALID_REQUIRED, 8, 1024, NULL, NULL},
};

/* The current password of the signed-in user, given as `password` (v), checked as a sign-in
 * is: a stolen token must not give unlimited guesses at the password, so a wrong one counts
 * against the same limits as a failed sign-in. 0 when it is right; 1 when the account no
 * longer exists (nothing answered); -1 answered (403 wrong_password, 429, 503). */
static int current_password_ok(struct api_ctx *c, const struct valid_value *v)
{
	struct rds *rd = auth_redis(c);
	if (!rd)
		return -1;
	char key[AUTH_NAME_KEY_MAX + 1];
	if (auth_username_key(c->user.username, key, sizeof key) < 0) {
		api_error(c, 500, "internal", "the token's username is too long");
		return -1;
	}
	struct pw_attempt a;
	if (attempt_begin(c, rd, key, &a) < 0)
		return -1;
	struct store_user u;
	enum store_status st = store_user_by_id(c->store, c->user.user_id, &u);
	if (st != STORE_OK) {
		attempt_forgive(c, rd, &a);
		if (st == STORE_NOT_FOUND)
			return 1;
		api_fail_why(c, st);
		return -1;
	}
	int ok = pw_verify(u.password_hash, v->s, v->len);
	store_user_free(&u);
	if (ok != 1) {
		if (ok < 0)
			log_error("user %lld has a malformed password hash", c->user.user_id);
		/* not 401: clients take 401 as "signed out", and this session is still fine */
		api_error(c, 403, "wrong_password", "the current password is wrong");
		return -1;
	}
	attempt_forgive(c, rd, &a);
	return 0;
}

void h_password(struct api_ctx *c)
{
	struct valid_value v[2];
	if (api_require_user(c) < 0 || api_body_fields(c, 0, password_fields, 2, v) < 0)
		return;
	int pw = current_password_ok(c, &v[0]);
	if (pw == 1)
		api_error(c, 401, "session_revoked", "the account no longer exists");
	if (pw != 0)
		return;
	char hash[PW_HASH_MAX];
	if (pw_hash(v[1].s, v[1].len, hash) < 0) {
		api_error(c, 500, "internal", "could not hash the password");
		return;
	}
	/* the new hash and the new generation commit together */
	long long gen;
	enum store_status st = store_user_set_password(c->store, c->user.user_id, hash, &gen);
	if (st == STORE_NOT_FOUND) {
		api_error(c, 401, "session_revoked", "the account no longer exists");
		return;
	}
	if (st != STORE_OK) {
		api_fail_why(c, st);
		return;
	}
	/* The commit is done. Until Redis holds the new generation the API and the brokers
	 * still take the older tokens, so the new token is only handed out once it does; if
	 * Redis cannot take it, 503 says so and the next sign-in (which stores the generation
	 * it reads) closes the window (h_login). */
	struct rkey genkey = rkey_id(RK_USER_TOKGEN, c->user.user_id);
	if (revoke_and_tell(c, c->user.user_id, store_gen, gen, genkey.s) < 0) {
		api_error(c, 503, "redis_unavailable",
			  "the password was changed, but other sessions could not be signed out "
			  "yet; sign in with the new password");
		return;
	}
	answer_token(c, 200, c->user.user_id, c->user.username, gen);
}

static int bury_gen(struct rds *rd, struct api_ctx *c, long long user_id)
{
	/* every token signed before the deletion has expired once TOKEN_TTL has passed; one
	 * second more for the rounding */
	return access_gen_bury(rd, user_id, c->cfg->token_ttl_s + 1);
}

/* The step between the account's DELETE and its COMMIT: rooms_delete_begin for every room it
 * owns. Every room it received, owned and left, is kept for account_delete_failed and for
 * step 3 after a COMMIT whose answer was lost: store_user_delete frees its own list when the
 * COMMIT fails, and the retry finds no account, so nothing else knows those rooms any more. */
struct account_step {
	struct api_ctx *c;
	struct store_user_room *rooms;
	int *finished; /* rooms[i] was finished as a deleted room by account_delete_failed */
	int n;
	int begun;  /* rooms[0..begun) had their first step tried */
	int failed; /* Redis failed in the step: rolled back */
	int committing; /* the step ended well: a failure after it is the COMMIT's */
};

static enum store_status account_begin_step(void *arg, const struct store_user_room *rooms,
					    int n)
{
	struct account_step *a = arg;
	if (n == 0) {
		a->committing = 1;
		return STORE_OK;
	}
	a->rooms = malloc((size_t)n * sizeof *a->rooms);
	a->finished = calloc((size_t)n, sizeof *a->finished);
	if (!a->rooms || !a->finished)
		return store_fail(a->c->store, STORE_ERROR, "out of memory");
	memcpy(a->rooms, rooms, (size_t)n * sizeof *rooms);
	a->n = n;
	for (int i = 0; i < n; i++) {
		if (!rooms[i].owned)
			continue;
		a->begun = i + 1;
		if (rooms_delete_begin(a->c, rooms[i].id) < 0) {
			a->failed = 1;
			return STORE_REDIS_UNAVAILABLE;
		}
	}
	a->committing = 1;
	return STORE_OK;
}

/* A deletion that failed, once the rooms whose first step ran are settled: a room still
 * there gets its visibility key and member cache back; a room whose row is gone (the COMMIT went through and
 * only its answer was lost) is finished as a deleted room, but only after a failed COMMIT:
 * after a failed step, a room found gone was deleted by another request, which finishes it
 * (rooms_delete_settle). Then the account's row is read
 * again, as the rooms' were: gone, the deletion happened and 1 is returned, nothing
 * answered, for the caller to go on with step 3 (the retry would find no account and know
 * none of its rooms). Still there, or unreadable: the failure is answered (0). */
static int account_delete_failed(struct api_ctx *c, long long id, enum store_status st,
				 struct account_step *a)
{
	char msg[sizeof c->store->msg];
	snprintf(msg, sizeof msg, "%s", c->store->msg);
	for (int i = 0; i < a->begun; i++) {
		if (a->rooms[i].owned &&
		    rooms_delete_settle(c, a->rooms[i].id, a->committing) == 1) {
			rooms_delete_finish(c, a->rooms[i].id);
			a->finished[i] = 1;
		}
	}
	/* only a failed COMMIT can have deleted the row: after a failed step this request rolled
	 * back, and a row found gone then is another deletion's, which finishes it itself */
	if (a->committing) {
		long long gen;
		enum store_status now = store_user_gen(c->store, id, &gen);
		if (now == STORE_NOT_FOUND) {
			log_warn("account %lld: its deletion's COMMIT went through, only the answer "
				 "was lost (%s): finishing it", id, msg);
			return 1;
		}
		/* unreadable: the answer below is a 503 when the COMMIT's fate was unknown, and the
		 * retry (which finds the account gone, or deletes it) settles it */
		if (now != STORE_OK)
			log_warn("account %lld: its deletion failed, and whether the row is still "
				 "there cannot be read: %s", id, c->store->msg);
	}
	if (a->failed) {
		api_error(c, 503, "redis_unavailable",
			  "the account cannot be deleted right now; try again");
		return 0;
	}
	snprintf(c->store->msg, sizeof c->store->msg, "%s", msg);
	api_fail_why(c, st);
	return 0;
}

/* Deleting an account is one transaction in PostgreSQL with a step in Redis inside it, and
 * steps in Redis after it:
 *   1. the transaction locks the account's row, reads its rooms and memberships, and
 *      deletes the row, which takes those rooms and memberships with it (store_user_delete);
 *   2. before its COMMIT, the member cache and visibility key of every room it owns go
 *      (rooms_delete_begin), as in DELETE /api/rooms/{id}; a failure here rolls back, and a
 *      failure in 1 has touched nothing in Redis. The rooms' documents stay until their
 *      rows are gone, so a deletion that fails loses no edit (account_delete_failed);
 *   3. every token of the account is revoked (access_gen_bury, then cc:access: every broker
 *      ends the account's streams), then each room it left loses its member entry and hears
 *      a `members` event (rooms_member_gone), and each room it owned is finished as DELETE
 *      finishes one (rooms_delete_finish: its `deleted` event, its jobs cancelled, its
 *      keys gone).
 * A failed COMMIT after 2 (its answer lost with its connection) reads the row again
 * (account_delete_failed): gone, the COMMIT went through, and 3 runs as after a COMMIT that
 * answered (the owned rooms are already finished by then), since nothing else would run it:
 * the retry finds no account and knows none of its rooms, and a client that never retries
 * would leave the tokens passing and the member entries (which the broker and the document
 * endpoints trust) admitting the account to the rooms it was in. Still there, the failure
 * is answered; unreadable, 503 as when the COMMIT's fate is unknown.
 * Until 3 has revoked them the account's tokens still pass the API's check (Redis holds its
 * old generation), so a failure there answers 503 and the retry, which finds the account
 * gone, revokes them. The rooms' steps of 3 run all the same (nothing can repeat them: the
 * retry knows no rooms), and their failures are logged, as DELETE logs them. Tokens are
 * revoked after the commit, not before, so that a failure of 1 or 2 leaves the session that
 * asked able to send the request again. */
int auth_account_delete(struct api_ctx *c, long long id, int *owned, int *left)
{
	int no = 0, nl = 0;
	struct store_user_room *rooms = NULL;
	int n = 0, rc = -1;
	struct account_step a = {.c = c};
	const int *finished = NULL; /* the rooms account_delete_failed finished, or NULL */
	enum store_status st = store_user_delete(c->store, id, &rooms, &n, account_begin_step, &a);
	if (st != STORE_OK && st != STORE_NOT_FOUND) {
		if (account_delete_failed(c, id, st, &a) == 0)
			goto out;
		/* the COMMIT went through: its rooms are the step's (store_user_delete kept none) */
		st = STORE_OK;
		free(rooms);
		rooms = a.rooms;
		n = a.n;
		a.rooms = NULL;
		finished = a.finished;
	}
	/* a deletion that won a race with this one, or that was done in SQL alone (then its
	 * tokens still pass in Redis): the tokens go all the same */
	struct rkey genkey = rkey_id(RK_USER_TOKGEN, id);
	int revoked = revoke_and_tell(c, id, bury_gen, id, genkey.s);
	if (st == STORE_NOT_FOUND) {
		if (revoked < 0) {
			api_error(c, 503, "redis_unavailable",
				  "the account no longer exists, but its sessions could not be "
				  "ended everywhere yet; send the request again");
			goto out;
		}
		api_error(c, 401, "session_revoked", "the account no longer exists");
		rc = 1;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		if (rooms[i].owned) {
			/* after a lost COMMIT's answer, account_delete_failed finished the rooms it
			 * found gone; one whose row it could not read is gone too (the account's
			 * row is, and takes its rooms with it) */
			if (!finished || !finished[i])
				rooms_delete_finish(c, rooms[i].id);
			no++;
		} else {
			if (rooms_member_gone(c, rooms[i].id, id) < 0)
				log_error("room %s: account %lld deleted, but its member entry could not "
					  "be cleared", rooms[i].id, id);
			nl++;
		}
	}
	if (revoked < 0) {
		api_error(c, 503, "redis_unavailable",
			  "the account was deleted, but its sessions could not be ended everywhere "
			  "yet; send the request again");
		goto out;
	}
	log_info("account %lld deleted: %d rooms it owned deleted, %d rooms left", id, no, nl);
	api_no_content(c);
	rc = 0;
out:
	free(rooms);
	free(a.rooms);
	free(a.finished);
	if (owned)
		*owned = no;
	if (left)
		*left = nl;
	return rc;
}

static const struct valid_field delete_fields[] = {
	{"password", VALID_STRING, VALID_REQUIRED, 1, 4096, NULL, NULL},
};

void h_account_delete(struct api_ctx *c)
{
	struct valid_value v[1];
	if (api_require_user(c) < 0 || api_body_fields(c, 0, delete_fields, 1, v) < 0)
		return;
	/* an account already gone (a deletion whose revocation failed, or one in SQL alone)
	 * has nothing to check the password against: its tokens are revoked and the answer
	 * says it is gone */
	int pw = current_password_ok(c, &v[0]);
	if (pw < 0)
		return;
	auth_account_delete(c, c->user.user_id, NULL, NULL);
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

/* GET /api/streams: where this client may open its streams straight on the broker
 * (docs/API.md, "Direct streams"); null: on the front door's /events/ */
void h_streams(struct api_ctx *c)
{
	char origin[HTTP_ORIGIN_MAX];
	cJSON *o = cJSON_CreateObject();
	if (http_stream_origin(c->cfg->stream_origin, c->cfg->broker_port, c->req->host,
			       c->req->https, origin, sizeof origin))
		cJSON_AddStringToObject(o, "origin", origin);
	else
		cJSON_AddNullToObject(o, "origin");
	api_json(c, 200, o);
}

void h_health(struct api_ctx *c)
{
	int pg = 0, rs = 0;
	store_health(c->store, &pg, &rs);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", pg && rs ? "ok" : "degraded");
	cJSON_AddStringToObject(o, "postgres", pg ? "ok" : "down");
	cJSON_AddStringToObject(o, "redis", rs ? "ok" : "down");
	api_json(c, pg && rs ? 200 : 503, o);
}

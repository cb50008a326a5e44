#include "access.h"

#include "rds.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

void access_members_key(char *out, size_t cap, const char *room_id)
{
	snprintf(out, cap, "cc:room:%s:members", room_id);
}

void access_visibility_key(char *out, size_t cap, const char *room_id)
{
	snprintf(out, cap, "cc:room:%s:visibility", room_id);
}

void access_session_key(char *out, size_t cap, const char *sid)
{
	snprintf(out, cap, "cc:sess:%s:revoked", sid);
}

void access_gen_key(char *out, size_t cap, long long user_id)
{
	snprintf(out, cap, "cc:user:%lld:tokgen", user_id);
}

const char access_stream_script[] =
	"local out = {} "
	"local vis = redis.call('GET', KEYS[2]) "
	"for i = 1, #ARGV / 2 do "
	"  local uid, gen = ARGV[2 * i - 1], tonumber(ARGV[2 * i]) "
	"  local cur = tonumber(redis.call('GET', KEYS[2 * i + 2]) or '0') or 0 "
	"  if redis.call('EXISTS', KEYS[2 * i + 1]) == 1 or gen == nil or gen < cur then "
	"    out[i] = 'revoked' "
	"  else "
	"    local role = redis.call('HGET', KEYS[1], uid) "
	"    if role then out[i] = role "
	"    elseif vis == 'public' then out[i] = 'public' "
	"    else out[i] = '' end "
	"  end "
	"end "
	"return out";

/* Raises, never lowers: two API processes storing what they read from PostgreSQL at
 * different moments cannot put an older generation back. */
static const char gen_store_script[] =
	"local cur = tonumber(redis.call('GET', KEYS[1]) or '-1') or -1 "
	"if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end "
	"return 1";

enum access_session access_session_check(redisContext *r, const struct token_claims *t)
{
	char skey[ACCESS_KEY_MAX], gkey[ACCESS_KEY_MAX];
	access_session_key(skey, sizeof skey, t->sid);
	access_gen_key(gkey, sizeof gkey, t->user_id);
	redisReply *rep = redisCommand(r, "MGET %s %s", skey, gkey);
	if (!rep)
		return ACCESS_ERROR;
	enum access_session res = ACCESS_ERROR;
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
		const redisReply *rev = rep->element[0], *gen = rep->element[1];
		if (rev->type != REDIS_REPLY_NIL) {
			res = ACCESS_REVOKED;
		} else if (gen->type == REDIS_REPLY_NIL) {
			res = ACCESS_NO_GEN;
		} else if (gen->type == REDIS_REPLY_STRING) {
			char *end;
			long long g = strtoll(gen->str, &end, 10);
			if (*end == '\0' && end != gen->str)
				res = t->gen < g ? ACCESS_REVOKED : ACCESS_OK;
		}
	}
	freeReplyObject(rep);
	return res;
}

int access_gen_store(redisContext *r, long long user_id, long long gen)
{
	char key[ACCESS_KEY_MAX], val[24];
	access_gen_key(key, sizeof key, user_id);
	snprintf(val, sizeof val, "%lld", gen);
	const char *args[] = {key, val};
	redisReply *rep = rds_eval(r, gen_store_script, 1, 2, args, NULL);
	int rc = rep && rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
	if (rep)
		freeReplyObject(rep);
	return rc;
}

int access_session_revoke(redisContext *r, const char *sid, long long ttl_s)
{
	char key[ACCESS_KEY_MAX];
	access_session_key(key, sizeof key, sid);
	redisReply *rep = redisCommand(r, "SET %s 1 EX %lld", key, ttl_s > 0 ? ttl_s : 1);
	int rc = rep && rep->type == REDIS_REPLY_STATUS ? 0 : -1;
	if (rep)
		freeReplyObject(rep);
	return rc;
}

int access_publish_user(redisContext *r, long long user_id)
{
	char msg[48];
	snprintf(msg, sizeof msg, "{\"user\":%lld}", user_id);
	redisReply *rep = redisCommand(r, "PUBLISH %s %s", ACCESS_CHANNEL, msg);
	int rc = rep && rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
	if (rep)
		freeReplyObject(rep);
	return rc;
}

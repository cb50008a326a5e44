#include "access.h"

#include "rds.h"
#include "rkeys.h"
#include "rscript.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

enum access_session access_session_check(redisContext *r, const struct token_claims *t)
{
	struct rkey skey = rkey1(RK_SESSION_REVOKED, t->sid);
	struct rkey gkey = rkey_id(RK_USER_TOKGEN, t->user_id);
	/* two slots (the session's, the user's): two GETs in one pipeline, not MGET */
	redisReply *rev = NULL, *gen = NULL;
	if (redisAppendCommand(r, "GET %s", skey.s) != REDIS_OK ||
	    redisAppendCommand(r, "GET %s", gkey.s) != REDIS_OK ||
	    redisGetReply(r, (void **)&rev) != REDIS_OK || redisGetReply(r, (void **)&gen) != REDIS_OK) {
		if (rev)
			freeReplyObject(rev);
		return ACCESS_ERROR;
	}
	enum access_session res = ACCESS_ERROR;
	if (rev->type != REDIS_REPLY_ERROR && gen->type != REDIS_REPLY_ERROR) {
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
	freeReplyObject(rev);
	freeReplyObject(gen);
	return res;
}

int access_gen_store(redisContext *r, long long user_id, long long gen)
{
	char val[24];
	struct rkey key = rkey_id(RK_USER_TOKGEN, user_id);
	snprintf(val, sizeof val, "%lld", gen);
	const char *args[] = {key.s, val};
	redisReply *rep = rds_script(r, &rs_access_gen_store, 1, 2, args, NULL);
	int rc = rep && rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
	if (rep)
		freeReplyObject(rep);
	return rc;
}

int access_session_revoke(redisContext *r, const char *sid, long long ttl_s)
{
	struct rkey key = rkey1(RK_SESSION_REVOKED, sid);
	redisReply *rep = redisCommand(r, "SET %s 1 EX %lld", key.s, ttl_s > 0 ? ttl_s : 1);
	int rc = rep && rep->type == REDIS_REPLY_STATUS ? 0 : -1;
	if (rep)
		freeReplyObject(rep);
	return rc;
}

int access_publish_user(redisContext *r, long long user_id)
{
	char msg[48];
	snprintf(msg, sizeof msg, "{\"user\":%lld}", user_id);
	redisReply *rep = redisCommand(r, "SPUBLISH %s %s", rkey0(RK_ACCESS_CHANNEL), msg);
	int rc = rep && rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
	if (rep)
		freeReplyObject(rep);
	return rc;
}

#include "access.h"

#include "rds.h"
#include "rkeys.h"
#include "rscript.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

enum access_session access_session_check(struct rds *r, const struct token_claims *t)
{
	struct rkey skey = rkey1(RK_SESSION_REVOKED, t->sid);
	struct rkey gkey = rkey_id(RK_USER_TOKGEN, t->user_id);
	/* two keys of two slots (a cluster): one pipeline of two GETs, one round trip when
	 * they live on one node */
	struct rds_pipe *p = rds_pipe_new(r);
	if (!p)
		return ACCESS_ERROR;
	const char *ga[] = {"GET", skey.s}, *gb[] = {"GET", gkey.s};
	redisReply *rev = NULL, *gen = NULL;
	enum access_session res = ACCESS_ERROR;
	if (rds_pipe_add(p, skey.s, 2, ga, NULL) == 0 && rds_pipe_add(p, gkey.s, 2, gb, NULL) == 0) {
		rev = rds_pipe_reply(p);
		gen = rev ? rds_pipe_reply(p) : NULL;
	}
	rds_pipe_free(p);
	if (rev && gen && rev->type != REDIS_REPLY_ERROR && gen->type != REDIS_REPLY_ERROR) {
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
	if (rev)
		freeReplyObject(rev);
	if (gen)
		freeReplyObject(gen);
	return res;
}

int access_key_confirm(struct rds *r, const char *key, int *exists, char *err, size_t errlen)
{
	*exists = 0;
	if (rds_wait_replicas(r) <= 0)
		return 0;
	redisReply *rep = rds_cmd(r, key, "EXISTS %s", key);
	int ok = rep && rep->type == REDIS_REPLY_INTEGER;
	if (ok)
		*exists = rep->integer > 0;
	if (rep)
		freeReplyObject(rep);
	if (!ok) {
		snprintf(err, errlen, "redis: EXISTS %s failed", key);
		return -1;
	}
	return rds_wait(r, key, err, errlen);
}

int access_revoked_confirm(struct rds *r, const struct token_claims *t, int *signed_out,
			   char *err, size_t errlen)
{
	*signed_out = -1;
	if (rds_wait_replicas(r) <= 0) /* nothing to confirm, so nothing was read */
		return 0;
	struct rkey keys[2] = {rkey1(RK_SESSION_REVOKED, t->sid),
			       rkey_id(RK_USER_TOKGEN, t->user_id)};
	for (int i = 0; i < 2; i++) {
		int exists = 0;
		if (access_key_confirm(r, keys[i].s, &exists, err, errlen) < 0)
			return -1;
		if (i == 0)
			*signed_out = exists;
		if (exists) /* this one revokes it (the mark alone suffices when both are there) */
			return 0;
	}
	/* both gone since the check (a sign-out mark expired with its token): nothing revokes
	 * the token any more, and token_verify refuses it once it has expired */
	return 0;
}

int access_gen_store(struct rds *r, long long user_id, long long gen)
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

int access_gen_bury(struct rds *r, long long user_id, long long ttl_s)
{
	struct rkey key = rkey_id(RK_USER_TOKGEN, user_id);
	/* a plain SET: nothing is higher, so raise-only (access_gen_store) has nothing to keep */
	redisReply *rep = rds_cmd(r, key.s, "SET %s %lld EX %lld", key.s, (long long)ACCESS_GEN_DELETED,
				  ttl_s > 0 ? ttl_s : 1);
	int rc = rep && rep->type == REDIS_REPLY_STATUS ? 0 : -1;
	if (rep)
		freeReplyObject(rep);
	return rc;
}

int access_session_revoke(struct rds *r, const char *sid, long long ttl_s)
{
	struct rkey key = rkey1(RK_SESSION_REVOKED, sid);
	redisReply *rep = rds_cmd(r, key.s, "SET %s 1 EX %lld", key.s, ttl_s > 0 ? ttl_s : 1);
	int rc = rep && rep->type == REDIS_REPLY_STATUS ? 0 : -1;
	if (rep)
		freeReplyObject(rep);
	return rc;
}

int access_publish_user(struct rds *r, long long user_id)
{
	char msg[48];
	snprintf(msg, sizeof msg, "{\"user\":%lld}", user_id);
	/* routed by the channel's name: the node that owns its slot (sharded pub/sub) */
	redisReply *rep = rds_cmd(r, rkey0(RK_ACCESS_CHANNEL), "SPUBLISH %s %s",
				  rkey0(RK_ACCESS_CHANNEL), msg);
	int rc = rep && rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
	if (rep)
		freeReplyObject(rep);
	return rc;
}

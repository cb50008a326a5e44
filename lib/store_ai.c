#include "store_ai.h"

#include <string.h>

#include "aicfg.h"
#include "rkeys.h"
#include "rscript.h"

/* After a command: the reply, or NULL with the connection dropped and the status set. */
static redisReply *ai_cmd_done(struct store *s, redisReply *rep)
{
	if (rep && rep->type != REDIS_REPLY_ERROR)
		return rep;
	if (rep)
		freeReplyObject(rep);
	store_redis_failed(s);
	store_fail(s, STORE_REDIS_UNAVAILABLE, "the AI cache is unavailable");
	return NULL;
}

enum store_status store_ai_cached(struct store *s, const char *room, const char *key,
				  cJSON **hit)
{
	*hit = NULL;
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey asked = rkey2(RK_ROOM_AI_ASKED, room, key), cache = rkey1(RK_AI_CACHE, key);
	/* the room's mark and the shared answer live in two slots (a cluster): two GETs in one
	 * pipeline, one round trip when both are on one node */
	struct rds_pipe *p = rds_pipe_new(rd);
	const char *ga[] = {"GET", asked.s}, *gc[] = {"GET", cache.s};
	int queued = p && rds_pipe_add(p, asked.s, 2, ga, NULL) == 0 &&
		     rds_pipe_add(p, cache.s, 2, gc, NULL) == 0;
	redisReply *a = queued ? rds_pipe_reply(p) : NULL;
	redisReply *c = queued ? rds_pipe_reply(p) : NULL;
	rds_pipe_free(p);
	if (!a || !c || a->type == REDIS_REPLY_ERROR || c->type == REDIS_REPLY_ERROR) {
		if (c)
			freeReplyObject(c);
		ai_cmd_done(s, a && a->type != REDIS_REPLY_ERROR ? NULL : a);
		if (a && a->type != REDIS_REPLY_ERROR)
			freeReplyObject(a);
		return STORE_REDIS_UNAVAILABLE;
	}
	cJSON *res = NULL;
	if (a->type == REDIS_REPLY_STRING && c->type == REDIS_REPLY_STRING)
		res = cJSON_Parse(c->str);
	freeReplyObject(a);
	freeReplyObject(c);
	if (res && !cJSON_IsObject(res)) {
		cJSON_Delete(res);
		res = NULL;
	}
	/* the provider's time is the worker's, never an answer's */
	cJSON_DeleteItemFromObjectCaseSensitive(res, AICFG_CACHE_PROVIDER_MS);
	*hit = res;
	return STORE_OK;
}

enum store_status store_ai_claim(struct store *s, const char *room, const char *key,
				 const char *id, long ttl_ms, char other[STORE_AI_JOB_ID_LEN + 1])
{
	other[0] = '\0';
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey pending = rkey2(RK_ROOM_AI_PENDING, room, key);
	redisReply *rep =
		ai_cmd_done(s, rds_cmd(rd, pending.s, "SET %s %s NX PX %ld", pending.s, id, ttl_ms));
	if (!rep)
		return STORE_REDIS_UNAVAILABLE;
	int claimed = rep->type == REDIS_REPLY_STATUS;
	freeReplyObject(rep);
	if (claimed)
		return STORE_OK;
	if (!(rep = ai_cmd_done(s, rds_cmd(rd, pending.s, "GET %s", pending.s))))
		return STORE_REDIS_UNAVAILABLE;
	if (rep->type == REDIS_REPLY_STRING && rep->len == STORE_AI_JOB_ID_LEN)
		memcpy(other, rep->str, STORE_AI_JOB_ID_LEN + 1);
	freeReplyObject(rep);
	return STORE_CONFLICT;
}

enum store_status store_ai_mark(struct store *s, const char *room, const char *key,
				const char *id, long ttl_s)
{
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey pending = rkey2(RK_ROOM_AI_PENDING, room, key);
	redisReply *rep = ai_cmd_done(s, rds_cmd(rd, pending.s, "SET %s %s EX %ld", pending.s, id, ttl_s));
	if (!rep)
		return STORE_REDIS_UNAVAILABLE;
	freeReplyObject(rep);
	return STORE_OK;
}

enum store_status store_ai_release(struct store *s, const char *room, const char *key,
				   const char *id)
{
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey pending = rkey2(RK_ROOM_AI_PENDING, room, key);
	const char *args[] = {pending.s, id};
	redisReply *rep = ai_cmd_done(s, rds_script(rd, &rs_ai_release, 1, 2, args, NULL));
	if (!rep)
		return STORE_REDIS_UNAVAILABLE;
	freeReplyObject(rep);
	return STORE_OK;
}

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
	redisContext *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey asked = rkey2(RK_ROOM_AI_ASKED, room, key), cache = rkey1(RK_AI_CACHE, key);
	/* two slots (the room's mark, the shared answer): two GETs in one pipeline, not MGET */
	redisReply *a = NULL, *rep = NULL;
	if (redisAppendCommand(rd, "GET %s", asked.s) != REDIS_OK ||
	    redisAppendCommand(rd, "GET %s", cache.s) != REDIS_OK ||
	    redisGetReply(rd, (void **)&a) != REDIS_OK)
		a = NULL;
	else if (redisGetReply(rd, (void **)&rep) != REDIS_OK)
		rep = NULL;
	int got = a && a->type == REDIS_REPLY_STRING;
	if (a)
		freeReplyObject(a);
	rep = ai_cmd_done(s, a ? rep : NULL);
	if (!rep)
		return STORE_REDIS_UNAVAILABLE;
	cJSON *res = NULL;
	if (got && rep->type == REDIS_REPLY_STRING)
		res = cJSON_Parse(rep->str);
	freeReplyObject(rep);
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
	redisContext *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey pending = rkey2(RK_ROOM_AI_PENDING, room, key);
	redisReply *rep =
		ai_cmd_done(s, redisCommand(rd, "SET %s %s NX PX %ld", pending.s, id, ttl_ms));
	if (!rep)
		return STORE_REDIS_UNAVAILABLE;
	int claimed = rep->type == REDIS_REPLY_STATUS;
	freeReplyObject(rep);
	if (claimed)
		return STORE_OK;
	if (!(rep = ai_cmd_done(s, redisCommand(rd, "GET %s", pending.s))))
		return STORE_REDIS_UNAVAILABLE;
	if (rep->type == REDIS_REPLY_STRING && rep->len == STORE_AI_JOB_ID_LEN)
		memcpy(other, rep->str, STORE_AI_JOB_ID_LEN + 1);
	freeReplyObject(rep);
	return STORE_CONFLICT;
}

enum store_status store_ai_mark(struct store *s, const char *room, const char *key,
				const char *id, long ttl_s)
{
	redisContext *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey pending = rkey2(RK_ROOM_AI_PENDING, room, key);
	redisReply *rep = ai_cmd_done(s, redisCommand(rd, "SET %s %s EX %ld", pending.s, id, ttl_s));
	if (!rep)
		return STORE_REDIS_UNAVAILABLE;
	freeReplyObject(rep);
	return STORE_OK;
}

enum store_status store_ai_release(struct store *s, const char *room, const char *key,
				   const char *id)
{
	redisContext *rd;
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

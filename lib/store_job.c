#include "store_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rkeys.h"

static const char *const job_fields[] = {"status", "kind",   "room",  "user",
					 "event_kind", "result", "error", "created_at"};
#define NFIELDS (sizeof job_fields / sizeof job_fields[0])

void store_job_free(struct store_job *j)
{
	char **f[NFIELDS] = {&j->status, &j->kind,   &j->room,  &j->user,
			     &j->event_kind, &j->result, &j->error, &j->created_at};
	for (size_t i = 0; i < NFIELDS; i++) {
		free(*f[i]);
		*f[i] = NULL;
	}
}

enum store_status store_job_load(struct store *s, const char *id, struct store_job *out)
{
	memset(out, 0, sizeof *out);
	redisContext *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey key = rkey1(RK_JOB, id);
	const char *argv[NFIELDS + 2] = {"HMGET", key.s};
	for (size_t i = 0; i < NFIELDS; i++)
		argv[i + 2] = job_fields[i];
	redisReply *rep = redisCommandArgv(rd, (int)NFIELDS + 2, argv, NULL);
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != NFIELDS) {
		if (rep)
			freeReplyObject(rep);
		store_redis_failed(s);
		return store_fail(s, STORE_REDIS_UNAVAILABLE, "the queue is unavailable");
	}
	char **f[NFIELDS] = {&out->status, &out->kind,   &out->room,  &out->user,
			     &out->event_kind, &out->result, &out->error, &out->created_at};
	st = STORE_OK;
	for (size_t i = 0; i < NFIELDS && st == STORE_OK; i++) {
		const redisReply *e = rep->element[i];
		if (e->type != REDIS_REPLY_STRING)
			continue;
		if (!(*f[i] = strndup(e->str, e->len)))
			st = store_fail(s, STORE_ERROR, "out of memory");
	}
	freeReplyObject(rep);
	if (st == STORE_OK && (!out->status || !out->room))
		st = store_fail(s, STORE_NOT_FOUND, "no job %s (jobs are kept for 7 days)", id);
	if (st != STORE_OK)
		store_job_free(out);
	return st;
}

enum store_status store_job_status(struct store *s, const char *id, char status[16])
{
	status[0] = '\0';
	redisContext *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	redisReply *rep = redisCommand(rd, "HGET %s status", rkey1(RK_JOB, id).s);
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		if (rep)
			freeReplyObject(rep);
		store_redis_failed(s);
		return store_fail(s, STORE_REDIS_UNAVAILABLE, "the queue is unavailable");
	}
	if (rep->type == REDIS_REPLY_STRING)
		snprintf(status, 16, "%s", rep->str);
	freeReplyObject(rep);
	return STORE_OK;
}

enum store_status store_runtimes(struct store *s, cJSON **out)
{
	*out = NULL;
	redisContext *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	redisReply *rep = redisCommand(rd, "GET %s", rkey0(RK_RUNTIMES));
	if (!rep) {
		store_redis_failed(s);
		return store_fail(s, STORE_REDIS_UNAVAILABLE, "the queue is unavailable");
	}
	cJSON *arr = rep->type == REDIS_REPLY_STRING ? cJSON_Parse(rep->str) : NULL;
	freeReplyObject(rep);
	if (!cJSON_IsArray(arr)) {
		cJSON_Delete(arr);
		return store_fail(s, STORE_NOT_FOUND, "no worker is running: code cannot run right now");
	}
	*out = arr;
	return STORE_OK;
}

#include "store_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobstate.h"
#include "log.h"
#include "rkeys.h"

static const char *const job_fields[] = {
	"status",      "kind",	   "room",     "user",	   "event_kind",  "result",
	"error",       "created_at", "event_extra", "language", "version", "started_at",
	"finished_at"};
#define NFIELDS (sizeof job_fields / sizeof job_fields[0])

/* The struct's members in the order of job_fields. */
static void field_slots(struct store_job *j, char **f[NFIELDS])
{
	char **all[NFIELDS] = {&j->status,     &j->kind,	   &j->room,	    &j->user,
			       &j->event_kind, &j->result,	   &j->error,	    &j->created_at,
			       &j->event_extra, &j->language, &j->version, &j->started_at,
			       &j->finished_at};
	memcpy(f, all, sizeof all);
}

void store_job_free(struct store_job *j)
{
	char **f[NFIELDS];
	field_slots(j, f);
	for (size_t i = 0; i < NFIELDS; i++) {
		free(*f[i]);
		*f[i] = NULL;
	}
	free(j->id);
	j->id = NULL;
}

/* Copies an HMGET reply of job_fields into j (missing fields stay NULL): 0, or -1 out of
 * memory (j partly filled: store_job_free it). */
static int fields_take(const redisReply *rep, struct store_job *j)
{
	char **f[NFIELDS];
	field_slots(j, f);
	for (size_t i = 0; i < NFIELDS; i++) {
		const redisReply *e = rep->element[i];
		if (e->type != REDIS_REPLY_STRING)
			continue;
		if (!(*f[i] = strndup(e->str, e->len)))
			return -1;
	}
	return 0;
}

enum store_status store_job_load(struct store *s, const char *id, struct store_job *out)
{
	memset(out, 0, sizeof *out);
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey key = rkey1(RK_JOB, id);
	const char *argv[NFIELDS + 2] = {"HMGET", key.s};
	for (size_t i = 0; i < NFIELDS; i++)
		argv[i + 2] = job_fields[i];
	redisReply *rep = rds_cmdv(rd, key.s, (int)NFIELDS + 2, argv, NULL);
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != NFIELDS) {
		if (rep)
			freeReplyObject(rep);
		store_redis_failed(s);
		return store_fail(s, STORE_REDIS_UNAVAILABLE, "the queue is unavailable");
	}
	st = fields_take(rep, out) < 0 ? store_fail(s, STORE_ERROR, "out of memory") : STORE_OK;
	freeReplyObject(rep);
	if (st == STORE_OK && (!out->status || !out->room))
		st = store_fail(s, STORE_NOT_FOUND, "no job %s (jobs are kept for 7 days)", id);
	if (st == STORE_OK) {
		/* the status read is in the room's history before it is answered: its event may
		 * still wait in the jobs' outbox when its writer has not drained yet (lib/jobstate.h) */
		char err[256];
		if (jobstate_drain(rd, err, sizeof err) < 0)
			log_warn("job %s: the outbox could not be drained: %s", id, err);
	}
	if (st != STORE_OK)
		store_job_free(out);
	return st;
}

enum store_status store_job_recent(struct store *s, const char *room, int max,
				   struct store_job **out, int *n)
{
	*out = NULL;
	*n = 0;
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey runs = rkey1(RK_ROOM_RUNS, room);
	redisReply *ids = rds_cmd(rd, runs.s, "LRANGE %s 0 %d", runs.s, max - 1);
	if (!ids || ids->type != REDIS_REPLY_ARRAY) {
		if (ids)
			freeReplyObject(ids);
		store_redis_failed(s);
		return store_fail(s, STORE_REDIS_UNAVAILABLE, "the queue is unavailable");
	}
	size_t want = ids->elements;
	struct store_job *v = want ? calloc(want, sizeof *v) : NULL;
	if (want && !v) {
		freeReplyObject(ids);
		return store_fail(s, STORE_ERROR, "out of memory");
	}
	/* one round trip per node: every job's HMGET pipelined (routed by each job's key) */
	struct rds_pipe *p = rds_pipe_new(rd);
	if (!p) {
		freeReplyObject(ids);
		free(v);
		return store_fail(s, STORE_ERROR, "out of memory");
	}
	int sent = 0;
	for (size_t i = 0; i < want; i++) {
		const redisReply *e = ids->element[i];
		if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > 64)
			continue;
		char id[65];
		memcpy(id, e->str, e->len);
		id[e->len] = '\0';
		struct rkey key = rkey1(RK_JOB, id);
		const char *argv[NFIELDS + 2] = {"HMGET", key.s};
		for (size_t k = 0; k < NFIELDS; k++)
			argv[k + 2] = job_fields[k];
		if (!(v[sent].id = strdup(id))) {
			st = store_fail(s, STORE_ERROR, "out of memory");
			break;
		}
		if (rds_pipe_add(p, key.s, (int)NFIELDS + 2, argv, NULL) < 0) {
			free(v[sent].id);
			v[sent].id = NULL;
			store_redis_failed(s);
			st = store_fail(s, STORE_REDIS_UNAVAILABLE, "the queue is unavailable");
			break;
		}
		sent++;
	}
	freeReplyObject(ids);
	int kept = 0;
	for (int i = 0; i < sent; i++) {
		redisReply *rep = rds_pipe_reply(p);
		if (!rep) {
			store_redis_failed(s);
			st = store_fail(s, STORE_REDIS_UNAVAILABLE, "the queue is unavailable");
			break;
		}
		if (st == STORE_OK && (rep->type != REDIS_REPLY_ARRAY || rep->elements != NFIELDS))
			st = store_fail(s, STORE_REDIS_UNAVAILABLE, "the queue answered oddly");
		if (st == STORE_OK) {
			struct store_job *j = &v[kept];
			if (j != &v[i]) { /* close the gap left by an expired job */
				*j = v[i];
				memset(&v[i], 0, sizeof v[i]);
			}
			if (fields_take(rep, j) < 0)
				st = store_fail(s, STORE_ERROR, "out of memory");
			else if (j->status && j->room && !strcmp(j->room, room))
				kept++;
			else
				store_job_free(j); /* expired (or not this room's): left out */
		}
		freeReplyObject(rep);
	}
	rds_pipe_free(p);
	if (st != STORE_OK) {
		for (size_t i = 0; i < want; i++)
			store_job_free(&v[i]);
		free(v);
		return st;
	}
	*out = v;
	*n = kept;
	return STORE_OK;
}

enum store_status store_job_status(struct store *s, const char *id, char status[16])
{
	status[0] = '\0';
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	struct rkey jk = rkey1(RK_JOB, id);
	redisReply *rep = rds_cmd(rd, jk.s, "HGET %s status", jk.s);
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
	struct rds *rd;
	enum store_status st = store_redis(s, &rd);
	if (st != STORE_OK)
		return st;
	redisReply *rep = rds_cmd(rd, rkey0(RK_RUNTIMES), "GET %s", rkey0(RK_RUNTIMES));
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

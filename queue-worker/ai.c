/* ai: the AI job glue (see ai.h): a cached answer reused, or the provider asked, the
 * answer stored and the marks changed in Redis. */
#include "ai.h"

#include "clock.h"
#include "errbuf.h"
#include "log.h"
#include "worker_metrics.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rkeys.h"
#include "rscript.h"
#include "rds.h"

#define AI_SLEEP_SLICE_MS 100 /* how soon a cancel ends the wait of a shared answer */

static int cancelled(const volatile sig_atomic_t *cancel)
{
	return cancel && *cancel;
}

int ai_deps_init(struct ai_deps *d, const struct sandbox *sb, const struct runtimes *rts,
		 const struct sandbox_limits *lim, char *err, size_t errlen)
{
	struct aicfg cfg;
	memset(d, 0, sizeof *d);
	d->sb = sb;
	d->rts = rts;
	d->lim = lim;
	if (aicfg_load(&cfg, err, errlen) < 0)
		return -1;
	if (strpbrk(cfg.api_key, "\r\n")) {
		errbuf_set(err, errlen, "AI_API_KEY must be one line");
		return -1;
	}
	return 0;
}

/* The cache keys of a request: the shared answer, and the scope's pending and asked marks
 * (the unscoped pending mark of jobs queued before scopes). */
struct ai_keys {
	struct rkey cache, pending, asked, deleted;
};

static void keys_of(const struct ai_request *rq, struct ai_keys *k)
{
	k->cache = rkey1(RK_AI_CACHE, rq->cache_key);
	if (rq->scope) {
		k->pending = rkey2(RK_ROOM_AI_PENDING, rq->scope, rq->cache_key);
		k->asked = rkey2(RK_ROOM_AI_ASKED, rq->scope, rq->cache_key);
		k->deleted = rkey1(RK_ROOM_DELETED, rq->scope);
	} else {
		k->pending = rkey1(RK_AI_PENDING_UNSCOPED, rq->cache_key);
		k->asked.s[0] = '\0';
		k->deleted.s[0] = '\0';
	}
}

/* Stores the answer (entry: the answer with its provider time, when there is one), then
 * marks the scope as having asked (when it got an answer) and clears the job's pending mark
 * in one step of the room's slot (the shared answer lives in another slot; it goes first,
 * so a request that still finds the pending mark joins a job whose answer is stored). */
static void finish(struct rds *r, const struct ai_request *rq, const char *job_id,
		   const char *entry, int answered)
{
	if (!r || !rq->cache_key)
		return;
	struct ai_keys k;
	keys_of(rq, &k);
	char ttl[16], err[256];
	snprintf(ttl, sizeof ttl, "%d", AICFG_CACHE_TTL_S);
	redisReply *rep;
	if (entry) {
		rep = rds_cmd(r, k.cache.s, "SET %s %s EX %s", k.cache.s, entry, ttl);
		if (rds_reply_failed(r, rep, err, sizeof err)) {
			log_warn("ai: could not store the answer of job %s: %s",
				 job_id ? job_id : "?", err);
			return;
		}
		freeReplyObject(rep);
	}
	if (rq->scope) {
		/* a room deleted meanwhile is not marked (lib/lua/ai_finish.lua) */
		const char *args[] = {k.asked.s, k.pending.s, k.deleted.s, ttl,
				      answered ? "1" : "0", job_id ? job_id : ""};
		rep = rds_script(r, &rs_ai_finish, 3, 6, args, NULL);
	} else { /* a job queued before marks had rooms: only its mark to clear */
		const char *args[] = {k.pending.s, job_id ? job_id : ""};
		rep = rds_script(r, &rs_ai_release, 1, 2, args, NULL);
	}
	if (rds_reply_failed(r, rep, err, sizeof err)) {
		log_warn("ai: could not clear the pending mark of job %s: %s", job_id ? job_id : "?",
			 err);
		return;
	}
	freeReplyObject(rep);
}

/* The shared answer cached under the request's key, or NULL: asked by another scope (or
 * a job delivered twice). It is given out as a fresh answer (cached false, without the
 * stored provider time), and *provider_ms says how long the provider took to make it.
 * Caller frees with free(). */
static char *cached_answer(struct rds *r, const struct ai_request *rq, long long *provider_ms)
{
	*provider_ms = 0;
	if (!r || !rq->cache_key)
		return NULL;
	struct rkey ck = rkey1(RK_AI_CACHE, rq->cache_key);
	redisReply *rep = rds_cmd(r, ck.s, "GET %s", ck.s);
	cJSON *o = rep && rep->type == REDIS_REPLY_STRING ? cJSON_Parse(rep->str) : NULL;
	if (rep)
		freeReplyObject(rep);
	char *s = NULL;
	const cJSON *ms = cJSON_GetObjectItemCaseSensitive(o, AICFG_CACHE_PROVIDER_MS);
	if (cJSON_IsObject(o) && cJSON_IsNumber(ms)) {
		*provider_ms = ms->valuedouble > 0 && ms->valuedouble < 3600e3
				       ? (long long)ms->valuedouble
				       : 0;
		cJSON_DeleteItemFromObjectCaseSensitive(o, AICFG_CACHE_PROVIDER_MS);
		cJSON_DeleteItemFromObjectCaseSensitive(o, "cached");
		cJSON_AddFalseToObject(o, "cached");
		s = cJSON_PrintUnformatted(o);
	}
	cJSON_Delete(o);
	return s;
}

/* The cache entry for a fresh answer: the answer and how long the provider took. Caller
 * frees; NULL when out of memory (the answer is then not cached). */
static char *cache_entry(const cJSON *res, long long provider_ms)
{
	cJSON *e = cJSON_Duplicate(res, 1);
	char *s = NULL;
	if (e && cJSON_AddNumberToObject(e, AICFG_CACHE_PROVIDER_MS, (double)provider_ms))
		s = cJSON_PrintUnformatted(e);
	cJSON_Delete(e);
	return s;
}

/* The openai provider's result for rq; NULL when out of memory. */
static cJSON *openai_result(const struct ai_request *rq, const char *text, int cut)
{
	cJSON *res = cJSON_CreateObject();
	if (!res || !cJSON_AddStringToObject(res, "kind", rq->kind) ||
	    !cJSON_AddStringToObject(res, "provider", "openai") ||
	    !cJSON_AddStringToObject(res, "model", rq->model) ||
	    !cJSON_AddStringToObject(res, "text", text) ||
	    (cut && !cJSON_AddTrueToObject(res, "truncated"))) {
		cJSON_Delete(res);
		return NULL;
	}
	return res;
}

/* A fresh answer from the request's provider, with "cached": false (caller frees), how
 * long the provider took in *provider_ms, and in *cacheable whether it may be shared
 * through the cache (not an answer of the local provider that only says what this worker
 * could not do); NULL and a message in err. */
static cJSON *fresh_answer(const struct ai_deps *d, const struct ai_request *rq,
			   const volatile sig_atomic_t *cancel, long long *provider_ms,
			   int *cacheable, char *err, size_t errlen)
{
	struct aicfg cfg;
	cJSON *res = NULL;
	char *text = NULL;
	int cut = 0;
	if (aicfg_load(&cfg, err, errlen) < 0)
		return NULL;
	long long start = clock_mono_ms();
	*cacheable = 1;
	if (rq->provider == AICFG_LOCAL) {
		res = ai_local_result(d->sb, d->rts, d->lim, rq, cancel, cacheable, err, errlen);
	} else if (ai_openai_call(cancel, &cfg, rq, &text, &cut, err, errlen) == 0) {
		res = openai_result(rq, text, cut);
		if (!res)
			errbuf_set(err, errlen, "out of memory");
	}
	*provider_ms = clock_mono_ms() - start;
	if (!cancelled(cancel))
		metric_observe(&worker_metrics[WM_AI_PROVIDER],
			       rq->provider == AICFG_LOCAL ? WM_LOCAL : WM_OPENAI,
			       res ? WM_CALL_OK : WM_CALL_ERROR, *provider_ms);
	free(text);
	if (res && !cJSON_AddFalseToObject(res, "cached")) {
		cJSON_Delete(res);
		res = NULL;
		errbuf_set(err, errlen, "out of memory");
	}
	return res;
}

enum ai_status ai_job_run(const struct ai_deps *d, struct rds *r, const char *job_id,
			  const char *request_json, const volatile sig_atomic_t *cancel,
			  char **result_json, char *err, size_t errlen)
{
	struct ai_request rq;
	cJSON *res = NULL;
	char *entry = NULL;
	int answered = 0, cacheable = 0;
	long long provider_ms = 0, t0 = clock_mono_ms();
	enum ai_status st = AI_FAILED;
	*result_json = NULL;
	if (ai_request_parse(request_json, &rq, err, errlen) < 0)
		return AI_FAILED;
	*result_json = cached_answer(r, &rq, &provider_ms);
	if (rq.cache_key)
		metric_inc(&worker_metrics[WM_AI_CACHE], *result_json ? WM_HIT : WM_MISS, 0);
	if (*result_json) {
		/* another scope's answer: no provider call, but no sooner than the call that
		 * made it took, so neither the answer nor its timing tells that anyone asked */
		clock_sleep_watching((long)(provider_ms - (clock_mono_ms() - t0)), AI_SLEEP_SLICE_MS,
				     cancel);
		if (cancelled(cancel))
			goto cancelled;
		st = AI_OK;
		answered = 1;
		goto out;
	}
	res = fresh_answer(d, &rq, cancel, &provider_ms, &cacheable, err, errlen);
	if (!res && cancelled(cancel))
		goto cancelled;
	if (!res)
		goto out;
	*result_json = cJSON_PrintUnformatted(res);
	if (!*result_json) {
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	st = AI_OK;
	/* an answer that is not stored for all leaves no asked mark either: the mark says the
	 * room got the stored answer (docs/INTERNALS.md, "AI cache scopes") */
	if (cacheable) {
		answered = 1;
		entry = cache_entry(res, provider_ms);
	}
out:
	finish(r, &rq, job_id, entry, answered);
	cJSON_Delete(res);
	free(entry);
	ai_request_free(&rq);
	return st;
cancelled:
	free(*result_json);
	*result_json = NULL;
	ai_request_free(&rq);
	return AI_CANCELLED; /* the mark stays: the job runs again */
}

enum queue_outcome ai_queue_run(void *ctx, struct rds *r, const struct queue_job *job,
				const volatile sig_atomic_t *cancel, char **result_json, char *err,
				size_t errlen)
{
	const struct ai_deps *d = ctx;
	enum ai_status st =
		ai_job_run(d, r, job->id, job->request, cancel, result_json, err, errlen);
	return st == AI_OK ? QUEUE_FINISHED : st == AI_CANCELLED ? QUEUE_REQUEUE : QUEUE_FAILED;
}

char *ai_event_data(const struct queue_job *job, const char *status, const char *result_json,
		    const char *error)
{
	char kind[16];
	ai_request_kind(job->request, kind, sizeof kind);
	return jobstate_event_json(job->id, kind, status, result_json, error);
}

#include "queue.h"
#include "rkeys.h"

#include "events.h"
#include "jobstate.h"
#include "errbuf.h"
#include "log.h"
#include "rds.h"
#include "rscript.h"
#include "worker_metrics.h"
#include "clock.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void copy_str(char *dst, size_t cap, const redisReply *s)
{
	size_t n = s->len < cap - 1 ? s->len : cap - 1;
	memcpy(dst, s->str, n);
	dst[n] = '\0';
}

/* A string reply that fits dst whole (no NUL inside, shorter than cap) into dst: 0, or -1
 * with dst "" (a cut id could name another entry or job). */
static int copy_id(char *dst, size_t cap, const redisReply *s)
{
	dst[0] = '\0';
	if (s->type != REDIS_REPLY_STRING || s->len >= cap || memchr(s->str, '\0', s->len))
		return -1;
	copy_str(dst, cap, s);
	return 0;
}

int queue_entry_parse(const redisReply *x, struct queue_entry *e)
{
	e->entry[0] = e->job[0] = '\0';
	if (!x || x->type != REDIS_REPLY_ARRAY || x->elements < 2 ||
	    copy_id(e->entry, sizeof e->entry, x->element[0]) < 0 || !e->entry[0])
		return -1;
	const redisReply *f = x->element[1];
	if (f->type != REDIS_REPLY_ARRAY)
		return 0;
	for (size_t i = 0; i + 1 < f->elements; i += 2)
		if (f->element[i]->type == REDIS_REPLY_STRING && f->element[i]->len == 3 &&
		    !memcmp(f->element[i]->str, "job", 3))
			copy_id(e->job, sizeof e->job, f->element[i + 1]);
	return 0;
}

int queue_ensure_group(struct rds *r, char *err, size_t errlen)
{
	redisReply *rep = rds_cmd(r, QUEUE_STREAM, "XGROUP CREATE %s %s 0 MKSTREAM", QUEUE_STREAM, QUEUE_GROUP);
	if (rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "BUSYGROUP", 9)) {
		freeReplyObject(rep);
		return 0;
	}
	if (rds_reply_failed(r, rep, err, errlen))
		return -1;
	freeReplyObject(rep);
	return 0;
}

int queue_read(struct rds *r, const char *consumer, int block_ms, struct queue_entry *e,
	       char *err, size_t errlen)
{
	redisReply *rep = rds_cmd(r, QUEUE_STREAM, "XREADGROUP GROUP %s %s COUNT 1 BLOCK %d STREAMS %s >", QUEUE_GROUP, consumer, block_ms, QUEUE_STREAM);
	if (rds_reply_failed(r, rep, err, errlen))
		return -1;
	int rc = 0;
	/* [[stream, [entry]]] or nil when nothing came */
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
	    rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2) {
		const redisReply *entries = rep->element[0]->element[1];
		if (entries->type == REDIS_REPLY_ARRAY && entries->elements >= 1 &&
		    queue_entry_parse(entries->element[0], e) == 0)
			rc = 1;
	}
	freeReplyObject(rep);
	return rc;
}

int queue_claim(struct rds *r, const char *consumer, long min_idle_ms, struct queue_entry *e,
		char *err, size_t errlen)
{
	redisReply *rep = rds_cmd(r, QUEUE_STREAM, "XAUTOCLAIM %s %s %s %ld 0-0 COUNT 1", QUEUE_STREAM,
				       QUEUE_GROUP, consumer, min_idle_ms);
	if (rds_reply_failed(r, rep, err, errlen))
		return -1;
	int rc = 0;
	/* [next cursor, [entry…], (Redis 7: deleted ids)]; a deleted entry is nil in 6.2 */
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 &&
	    rep->element[1]->type == REDIS_REPLY_ARRAY && rep->element[1]->elements >= 1 &&
	    queue_entry_parse(rep->element[1]->element[0], e) == 0)
		rc = 1;
	freeReplyObject(rep);
	return rc;
}

int queue_alive(struct rds *r, const char *consumer, long ttl_ms)
{
	struct rkey k = rkey1(RK_WORKER_ALIVE, consumer);
	if (!k.s[0])
		return -1;
	redisReply *rep = ttl_ms > 0 ? rds_cmd(r, k.s, "SET %s 1 PX %ld", k.s, ttl_ms)
				     : rds_cmd(r, k.s, "DEL %s", k.s);
	char err[64];
	if (rds_reply_failed(r, rep, err, sizeof err))
		return -1;
	freeReplyObject(rep);
	return 0;
}

/* A script over many items, as many per call as a script takes: KEYS[1] the jobs stream,
 * ARGV the group, then `extra` (may be NULL), then the items. The sum of the calls' integer
 * replies, or -1. */
static long script_in_chunks(struct rds *r, const struct rscript *rs, const char *extra,
			     const char *const *items, size_t n)
{
	const size_t fixed = extra ? 3 : 2, max = RDS_SCRIPT_MAX_ARGS - fixed;
	const char *args[RDS_SCRIPT_MAX_ARGS];
	long sum = 0;
	args[0] = QUEUE_STREAM;
	args[1] = QUEUE_GROUP;
	args[2] = extra;
	for (size_t done = 0; done < n;) {
		size_t k = n - done < max ? n - done : max;
		for (size_t i = 0; i < k; i++)
			args[fixed + i] = items[done + i];
		redisReply *rep = rds_script(r, rs, 1, (int)(fixed + k), args, NULL);
		char err[64];
		if (rds_reply_failed(r, rep, err, sizeof err))
			return -1;
		if (rep->type == REDIS_REPLY_INTEGER)
			sum += (long)rep->integer;
		freeReplyObject(rep);
		done += k;
	}
	return sum;
}

/* Names out of the group (lib/lua/queue_forget.lua): how many had nothing pending (now
 * out), or -1. */
static long forget_names(struct rds *r, const char *const *names, size_t n)
{
	return script_in_chunks(r, &rs_queue_forget, NULL, names, n);
}

int queue_forget(struct rds *r, const char *consumer)
{
	long n = forget_names(r, &consumer, 1);
	return n < 0 ? -1 : n > 0;
}

/* 1 when consumer's liveness key exists, 0 when it is gone, -1 error. */
static int consumer_alive(struct rds *r, const char *consumer, char *err, size_t errlen)
{
	struct rkey k = rkey1(RK_WORKER_ALIVE, consumer);
	if (!k.s[0])
		return 1; /* a name no key can hold: not ours to judge */
	redisReply *rep = rds_cmd(r, k.s, "EXISTS %s", k.s);
	if (rds_reply_failed(r, rep, err, errlen))
		return -1;
	int alive = rep->type != REDIS_REPLY_INTEGER || rep->integer != 0;
	freeReplyObject(rep);
	return alive;
}

long queue_sweep(struct rds *r, const char *self, char *err, size_t errlen)
{
	redisReply *rep = rds_cmd(r, QUEUE_STREAM, "XINFO CONSUMERS %s %s", QUEUE_STREAM, QUEUE_GROUP);
	/* no stream or no group yet: no names */
	if (rep && rep->type == REDIS_REPLY_ERROR && rep->str &&
	    (strstr(rep->str, "no such key") || !strncmp(rep->str, "NOGROUP", 7))) {
		freeReplyObject(rep);
		return 0;
	}
	if (!rep) {
		errbuf_set(err, errlen, "%s", rds_error(r));
		return -1;
	}
	if (rds_reply_failed(r, rep, err, errlen))
		return -1;
	const char *gone[QUEUE_SWEEP_MAX];
	size_t ngone = 0;
	long rc = 0;
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements && ngone < QUEUE_SWEEP_MAX; i++) {
		const redisReply *c = rep->element[i];
		const char *name = NULL;
		long long pending = -1;
		/* a map as a flat list of field and value (RESP2) */
		for (size_t f = 0; c->type == REDIS_REPLY_ARRAY && f + 1 < c->elements; f += 2) {
			const redisReply *k = c->element[f], *v = c->element[f + 1];
			if (k->type != REDIS_REPLY_STRING)
				continue;
			if (!strcmp(k->str, "name") && v->type == REDIS_REPLY_STRING)
				name = v->str;
			else if (!strcmp(k->str, "pending") && v->type == REDIS_REPLY_INTEGER)
				pending = v->integer;
		}
		if (!name || pending != 0 || !strcmp(name, self))
			continue;
		int alive = consumer_alive(r, name, err, errlen);
		if (alive < 0) {
			rc = -1;
			break;
		}
		if (!alive)
			gone[ngone++] = name;
	}
	if (rc == 0 && ngone > 0)
		rc = forget_names(r, gone, ngone);
	freeReplyObject(rep);
	if (rc < 0 && !*err)
		snprintf(err, errlen, "the sweep of gone workers' names failed");
	return rc;
}

/* The consumers a pass has already asked about, so a dead worker's many entries cost one
 * EXISTS; once it is full, further owners are asked about at every entry (still bounded by
 * the pass's pages). */
struct owner_cache {
	char name[QUEUE_ORPHAN_SCAN][QUEUE_ID_MAX * 4];
	int alive[QUEUE_ORPHAN_SCAN];
	size_t n;
};

/* 1 when owner's liveness key exists, 0 when it is gone, -1 error. */
static int owner_alive(struct rds *r, struct owner_cache *c, const char *owner, char *err,
		       size_t errlen)
{
	for (size_t k = 0; k < c->n; k++)
		if (!strcmp(c->name[k], owner))
			return c->alive[k];
	int live = consumer_alive(r, owner, err, errlen);
	if (live >= 0 && c->n < QUEUE_ORPHAN_SCAN) {
		snprintf(c->name[c->n], sizeof c->name[c->n], "%s", owner);
		c->alive[c->n++] = live;
	}
	return live;
}

/* One entry of an XPENDING page, [id, consumer, idle ms, deliveries]: XCLAIMs it when its
 * consumer is another one whose liveness key is gone. 1 with *e, 0 not taken, -1 error. */
static int claim_if_orphan(struct rds *r, struct owner_cache *cache, const char *consumer,
			   long min_idle_ms, const char *id, const char *owner,
			   struct queue_entry *e, char *err, size_t errlen)
{
	if (!strcmp(owner, consumer))
		return 0;
	int live = owner_alive(r, cache, owner, err, errlen);
	if (live != 0)
		return live < 0 ? -1 : 0;
	/* still idle that long: no one (the owner come back, another worker) took it
	 * meanwhile; otherwise Redis answers an empty array and we go on */
	redisReply *c = rds_cmd(r, QUEUE_STREAM, "XCLAIM %s %s %s %ld %s", QUEUE_STREAM, QUEUE_GROUP,
				     consumer, min_idle_ms, id);
	if (rds_reply_failed(r, c, err, errlen))
		return -1;
	int rc = 0;
	if (c->type == REDIS_REPLY_ARRAY && c->elements >= 1 &&
	    queue_entry_parse(c->element[0], e) == 0) {
		log_info("entry %s (job %s): its worker %s is gone (no liveness key): taken over",
			 e->entry, e->job, owner);
		rc = 1;
	}
	freeReplyObject(c);
	return rc;
}

int queue_claim_orphan(struct rds *r, const char *consumer, long min_idle_ms, char *cursor,
		       struct queue_entry *e, char *err, size_t errlen)
{
	struct owner_cache cache;
	cache.n = 0;
	/* a pass that began at the head ends at the list's end; one that went on from where
	 * the last left off goes round once to the head, so no entry waits a pass longer */
	int from_head = !cursor[0];
	int rc = 0;
	for (int page = 0; page < QUEUE_ORPHAN_PAGES && rc == 0; page++) {
		/* after the last id seen, exclusive ("(" needs Redis 6.2, as IDLE does) */
		char start[QUEUE_ID_MAX + 1];
		snprintf(start, sizeof start, "%s%s", cursor[0] ? "(" : "-", cursor);
		/* [[id, consumer, idle ms, deliveries], …], by id */
		redisReply *rep = rds_cmd(r, QUEUE_STREAM, "XPENDING %s %s IDLE %ld %s + %d",
					       QUEUE_STREAM, QUEUE_GROUP, min_idle_ms, start,
					       QUEUE_ORPHAN_SCAN);
		if (rds_reply_failed(r, rep, err, errlen))
			return -1;
		size_t n = rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
		int end = n < QUEUE_ORPHAN_SCAN;
		for (size_t i = 0; i < n && rc == 0; i++) {
			const redisReply *x = rep->element[i];
			char owner[QUEUE_ID_MAX * 4], id[QUEUE_ID_MAX];
			if (x->type != REDIS_REPLY_ARRAY || x->elements < 3 ||
			    copy_id(id, sizeof id, x->element[0]) < 0 || !id[0]) {
				end = 1; /* no id to go on from: start again at the head */
				break;
			}
			snprintf(cursor, QUEUE_ID_MAX, "%s", id);
			if (x->element[1]->type != REDIS_REPLY_STRING)
				continue;
			copy_str(owner, sizeof owner, x->element[1]);
			rc = claim_if_orphan(r, &cache, consumer, min_idle_ms, id, owner, e, err, errlen);
		}
		freeReplyObject(rep);
		if (rc == 0 && end) {
			cursor[0] = '\0';
			if (from_head)
				break;
			from_head = 1;
		}
	}
	return rc;
}

int queue_touch(struct rds *r, const char *consumer, const char *const *ids, size_t n)
{
	/* only the entries still pending with us (lib/lua/queue_touch.lua): one another worker
	 * took over while we stalled is left to it */
	return script_in_chunks(r, &rs_queue_touch, consumer, ids, n) < 0 ? -1 : 0;
}

int queue_ack(struct rds *r, const char *entry_id)
{
	redisReply *rep = rds_cmd(r, QUEUE_STREAM, "XACK %s %s %s", QUEUE_STREAM, QUEUE_GROUP, entry_id);
	char err[64];
	if (rds_reply_failed(r, rep, err, sizeof err))
		return -1;
	freeReplyObject(rep);
	return 0;
}

/* An error reply that Redis gives for what a key holds (not a hash, a field that is not an
 * integer or would overflow), as opposed to one about the server or the connection (LOADING,
 * OOM, READONLY, CLUSTERDOWN, TRYAGAIN, ...): sending the command again cannot help. */
static int data_error(const redisReply *rep)
{
	return rep && rep->type == REDIS_REPLY_ERROR && rep->str &&
	       (!strncmp(rep->str, "WRONGTYPE", 9) || !strncmp(rep->str, "ERR ", 4));
}

int queue_job_load(struct rds *r, const char *job_id, struct queue_job *j, char *err,
		   size_t errlen)
{
	memset(j, 0, sizeof *j);
	struct rkey jk = rkey1(RK_JOB, job_id);
	redisReply *rep = rds_cmd(r, jk.s, "HMGET %s kind room user status request attempts", jk.s);
	int malformed = data_error(rep);
	if (rds_reply_failed(r, rep, err, errlen))
		return malformed ? QUEUE_MALFORMED : -1;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 6) {
		errbuf_set(err, errlen, "redis: unexpected HMGET reply");
		freeReplyObject(rep);
		return -1;
	}
	redisReply **e = rep->element;
	if (e[3]->type != REDIS_REPLY_STRING) { /* no status: no such job (or expired) */
		freeReplyObject(rep);
		return 0;
	}
	snprintf(j->id, sizeof j->id, "%s", job_id);
	snprintf(j->kind, sizeof j->kind, "execution");
	if (e[0]->type == REDIS_REPLY_STRING && e[0]->len)
		copy_str(j->kind, sizeof j->kind, e[0]);
	if (e[1]->type == REDIS_REPLY_STRING)
		copy_str(j->room, sizeof j->room, e[1]);
	if (e[2]->type == REDIS_REPLY_STRING)
		copy_str(j->user, sizeof j->user, e[2]);
	copy_str(j->status, sizeof j->status, e[3]);
	j->request = strndup(e[4]->type == REDIS_REPLY_STRING ? e[4]->str : "",
			     e[4]->type == REDIS_REPLY_STRING ? e[4]->len : 0);
	if (e[5]->type == REDIS_REPLY_STRING)
		j->attempts = atol(e[5]->str);
	freeReplyObject(rep);
	if (!j->request) {
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	return 1;
}

void queue_job_free(struct queue_job *j)
{
	free(j->request);
	j->request = NULL;
}

int queue_job_done(const struct queue_job *j)
{
	enum job_status st;
	return job_status_parse(j->status, &st) == 0 && job_status_over(st);
}

int queue_job_count_attempt(struct rds *r, struct queue_job *j, long max_attempts, char *err,
			    size_t errlen)
{
	struct rkey jk = rkey1(RK_JOB, j->id);
	redisReply *rep = rds_cmd(r, jk.s, "HINCRBY %s attempts 1", jk.s);
	int malformed = data_error(rep);
	if (rds_reply_failed(r, rep, err, errlen))
		return malformed ? QUEUE_MALFORMED : -1;
	j->attempts = rep->type == REDIS_REPLY_INTEGER ? (long)rep->integer : 0;
	freeReplyObject(rep);
	return j->attempts <= max_attempts;
}

int queue_publish_runtimes(struct rds *r, const char *json, long ttl_s)
{
	redisReply *rep = rds_cmd(r, QUEUE_RUNTIMES_KEY, "SET %s %s EX %ld", QUEUE_RUNTIMES_KEY, json, ttl_s);
	char err[64];
	if (rds_reply_failed(r, rep, err, sizeof err))
		return -1;
	freeReplyObject(rep);
	return 0;
}

/* The event data of a status change (caller frees). Data over EVENTS_DATA_MAX (a result
 * with large outputs) is sent without its result: the job's hash keeps it, for
 * GET /api/jobs/{id}. */
static char *event_data(const struct queue_handler *h, const struct queue_job *j,
			const char *status, const char *result_json, const char *error)
{
	char *data = h && h->event_data ? h->event_data(j, status, result_json, error)
					: jobstate_event_json(j->id, NULL, status, result_json, error);
	if (data && result_json && strlen(data) > EVENTS_DATA_MAX) {
		log_warn("job %s: its %s event would be %zu bytes: sent without the result",
			 j->id, status, strlen(data));
		free(data);
		data = h && h->event_data ? h->event_data(j, status, NULL, error)
					  : jobstate_event_json(j->id, NULL, status, NULL, error);
	}
	return data;
}

/* A running event of attempt 2 or later: an earlier attempt's worker died (or stalled)
 * and this one starts the job again from the beginning; its output so far is not kept.
 * The event says so: "attempt": n, "restarted": true (docs/API.md). Takes data, returns
 * the new text (caller frees), NULL when out of memory. */
static char *mark_restart(char *data, long attempt)
{
	cJSON *o = cJSON_Parse(data);
	free(data);
	char *out = NULL;
	if (o && cJSON_IsObject(o) && cJSON_AddNumberToObject(o, "attempt", (double)attempt) &&
	    cJSON_AddTrueToObject(o, "restarted"))
		out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return out;
}

/* One status change of this attempt with its room event (lib/jobstate.h): 1 done, 0
 * refused because this worker is stale (the job moved on: another worker claimed it, or it
 * is over), -1 Redis error (err). attempt -1: any attempt (a job failed before counting). */
static int change(struct rds *r, const struct queue_handler *h, const struct queue_job *j,
		  long attempt, unsigned from, enum job_status status, const char *result_json,
		  const char *error, const char *const *fields, size_t nfields,
		  const char *requeue_entry, char *err, size_t errlen)
{
	char *data = event_data(h, j, job_status_name(status), result_json, error);
	if (data && status == JOB_RUNNING && attempt > 1)
		data = mark_restart(data, attempt);
	if (!data) {
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	char cur[16];
	struct jobstate_change c = {
		.job_id = j->id,
		.room = j->room,
		.event_type = h ? h->event : EV_EXECUTION,
		.event_data = data,
		.attempt = attempt,
		.from = from,
		.status = status,
		.fields = fields,
		.nfields = nfields,
		.requeue_entry = requeue_entry,
	};
	int rc = jobstate_change(r, &c, cur, sizeof cur, err, errlen);
	free(data);
	if (rc == 0)
		log_warn("job %s: attempt %ld is stale (the job is %s at another attempt): its %s "
			 "is dropped",
			 j->id, j->attempts, cur[0] ? cur : "gone", job_status_name(status));
	return rc;
}

/* After a refused change: when the job is over (cancelled by someone, or done by another
 * attempt) or gone, its entry is acknowledged, so it is not delivered again and again. A
 * job still queued or running at another attempt is that attempt's: left alone. 0 or -1. */
static int ack_if_over(struct rds *r, const struct queue_job *j, const char *entry)
{
	struct rkey jk = rkey1(RK_JOB, j->id);
	redisReply *rep = rds_cmd(r, jk.s, "HGET %s status", jk.s);
	char err[64];
	if (rds_reply_failed(r, rep, err, sizeof err))
		return -1;
	enum job_status st;
	int over = rep->type != REDIS_REPLY_STRING || job_status_parse(rep->str, &st) < 0 ||
		   job_status_over(st);
	freeReplyObject(rep);
	return over ? queue_ack(r, entry) : 0;
}

/* Stores a final status with its event, then acknowledges: in that order, so a crash in
 * between leaves a job that is done (skipped when delivered again), never a lost one. A
 * stale attempt acknowledges nothing: the entry is the claiming worker's now. */
static int conclude(struct rds *r, const struct queue_handler *h, const struct queue_job *j,
		    long attempt, unsigned from, const char *entry, enum job_status status,
		    const char *result_json, const char *error, char *err, size_t errlen)
{
	char now[24];
	snprintf(now, sizeof now, "%lld", (long long)time(NULL));
	const char *fields[] = {"finished_at", now, "error", error ? error : "", "result",
				result_json};
	int rc = change(r, h, j, attempt, from, status, result_json, error, fields,
			result_json ? 3 : 2, NULL, err, errlen);
	if (rc >= 0)
		worker_metrics_job(j->kind, rc == 0 ? WM_STALE
					  : status == JOB_FINISHED ? WM_FINISHED : WM_FAILED);
	if (rc == 0 && ack_if_over(r, j, entry) < 0) {
		errbuf_set(err, errlen, "redis: XACK failed");
		return -1;
	}
	if (rc <= 0)
		return rc;
	if (queue_ack(r, entry) < 0) {
		errbuf_set(err, errlen, "redis: XACK failed");
		return -1;
	}
	return 0;
}

int queue_process(struct rds *r, const struct queue_entry *e, const struct queue_handler *h,
		  size_t nh, const char *consumer, long max_attempts,
		  const volatile sig_atomic_t *cancel, volatile sig_atomic_t *attempt, char *err,
		  size_t errlen)
{
	struct queue_job j;
	char why[512] = "";
	char *result = NULL;
	int rc = -1;
	if (!e->job[0]) {
		log_warn("stream entry %s carries no job id: dropped", e->entry);
		return queue_ack(r, e->entry);
	}
	int found = queue_job_load(r, e->job, &j, err, errlen);
	if (found == QUEUE_MALFORMED) {
		/* no hash to give a status to: only the entry can go */
		log_warn("job %s (entry %s) is not a job hash (%s): dropped", e->job, e->entry, err);
		return queue_ack(r, e->entry);
	}
	if (found < 0)
		return -1;
	if (found == 0) {
		log_warn("job %s (entry %s) has no hash (expired or deleted): dropped", e->job, e->entry);
		return queue_ack(r, e->entry);
	}
	if (queue_job_done(&j)) {
		rc = queue_ack(r, e->entry);
		goto out;
	}
	/* a job of a room deleted since it was queued (one that raced the delete, which
	 * cancels the room's jobs) is not run: cancelled without an event, the room is gone */
	int gone = j.room[0] ? jobstate_room_deleted(r, j.room, err, errlen) : 0;
	if (gone < 0)
		goto out;
	if (gone) {
		char cur[16];
		log_info("job %s: its room %s was deleted: cancelled unrun", j.id, j.room);
		int c = jobstate_cancel(r, j.id, NULL, EV_EXECUTION, "{}", JOBSTATE_ROOM_DELETED_ERROR, cur,
					sizeof cur, err, errlen);
		if (c < 0)
			goto out;
		rc = c == 1 ? queue_ack(r, e->entry) : ack_if_over(r, &j, e->entry);
		goto out;
	}
	const struct queue_handler *hd = NULL;
	for (size_t i = 0; i < nh && !hd; i++)
		if (!strcmp(h[i].kind, j.kind))
			hd = &h[i];
	if (!hd) {
		snprintf(why, sizeof why, "this worker cannot run jobs of kind \"%s\"", j.kind);
		log_warn("job %s: %s", j.id, why);
		rc = conclude(r, NULL, &j, -1, JOB_BIT(JOB_QUEUED) | JOB_BIT(JOB_RUNNING), e->entry, JOB_FAILED, NULL, why, err,
			      errlen);
		goto out;
	}
	int within = queue_job_count_attempt(r, &j, max_attempts, err, errlen);
	if (within == QUEUE_MALFORMED) {
		/* Redis refused to count an attempt on what the hash holds (an attempts field
		 * that is no integer): asking again cannot help, and a retry would hold the
		 * entry, and its scheduler slot, for ever. Failed at any attempt, acknowledged. */
		snprintf(why, sizeof why, "malformed job: its attempt count cannot be kept (%s)", err);
		log_warn("job %s: %s", j.id, why);
		rc = conclude(r, hd, &j, -1, JOB_BIT(JOB_QUEUED) | JOB_BIT(JOB_RUNNING), e->entry,
			      JOB_FAILED, NULL, why, err, errlen);
		goto out;
	}
	if (within < 0)
		goto out;
	if (within == 0) {
		snprintf(why, sizeof why,
			 "gave up after %ld attempts: each time, the worker running this job stopped "
			 "before it finished",
			 max_attempts);
		log_warn("job %s: %s", j.id, why);
		rc = conclude(r, hd, &j, j.attempts, JOB_BIT(JOB_QUEUED) | JOB_BIT(JOB_RUNNING), e->entry, JOB_FAILED, NULL, why,
			      err, errlen);
		goto out;
	}
	log_info("job %s (%s, room %s): attempt %ld", j.id, j.kind, j.room, j.attempts);
	/* running: from queued, or from running when a dead worker's job is claimed; this
	 * attempt only, so a worker that counted an older one cannot go on */
	char now[24];
	snprintf(now, sizeof now, "%lld", (long long)time(NULL));
	const char *running[] = {"worker", consumer, "started_at", now};
	int ok = change(r, hd, &j, j.attempts, JOB_BIT(JOB_QUEUED) | JOB_BIT(JOB_RUNNING), JOB_RUNNING, NULL, NULL, running, 2,
			NULL, err, errlen);
	if (ok == 0 && ack_if_over(r, &j, e->entry) < 0)
		ok = -1;
	if (ok <= 0) {
		rc = ok;
		goto out;
	}
	*attempt = (sig_atomic_t)j.attempts; /* within max_attempts (at most 100) */
	long long t0 = clock_mono_ms();
	enum queue_outcome o = hd->run(hd->ctx, r, &j, cancel, &result, why, sizeof why);
	worker_metrics_job_time(j.kind, clock_mono_ms() - t0);
	switch (o) {
	case QUEUE_FINISHED:
		log_info("job %s: finished", j.id);
		/* only from running: a job requeued meanwhile (queued again at this attempt
		 * number) is not this attempt's any more */
		rc = conclude(r, hd, &j, j.attempts, JOB_BIT(JOB_RUNNING), e->entry, JOB_FINISHED, result, NULL,
			      err, errlen);
		break;
	case QUEUE_FAILED:
		log_info("job %s: failed: %s", j.id, why);
		rc = conclude(r, hd, &j, j.attempts, JOB_BIT(JOB_RUNNING), e->entry, JOB_FAILED, result,
			      why[0] ? why : "failed", err, errlen);
		break;
	case QUEUE_REQUEUE:
		if (*cancel == QUEUE_OVERRAN) {
			log_info("job %s: failed: %s", j.id, QUEUE_OVERRAN_ERROR);
			rc = conclude(r, hd, &j, j.attempts, JOB_BIT(JOB_RUNNING), e->entry, JOB_FAILED,
				      result, QUEUE_OVERRAN_ERROR, err, errlen);
			break;
		}
		if (*cancel == QUEUE_TAKEN_OVER) {
			/* stopped because another worker runs the job now (the main thread said
			 * so): the entry and the job are that worker's, nothing of ours to store */
			worker_metrics_job(j.kind, WM_STALE);
			rc = 0;
			break;
		}
		/* status queued, attempts - 1, a new entry, this one acknowledged, the queued
		 * event: one step, and only while this attempt is still the job's */
		log_info("job %s: put back in the queue", j.id);
		ok = change(r, hd, &j, j.attempts, JOB_BIT(JOB_RUNNING), JOB_QUEUED, NULL, NULL, NULL, 0, e->entry,
			    err, errlen);
		/* refused because the job was cancelled (that is why it stopped): acknowledged */
		if (ok >= 0)
			worker_metrics_job(j.kind, ok == 0 ? WM_STALE : WM_REQUEUED);
		if (ok == 0 && ack_if_over(r, &j, e->entry) < 0)
			ok = -1;
		rc = ok < 0 ? -1 : 0;
		break;
	}
out:
	free(result);
	queue_job_free(&j);
	return rc;
}

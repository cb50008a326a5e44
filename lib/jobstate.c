#include "jobstate.h"

#include "errbuf.h"
#include "events.h"
#include "log.h"
#include "rds.h"
#include "rkeys.h"
#include "rnd.h"
#include "rscript.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const status_names[] = {
	[JOB_QUEUED] = "queued",	 [JOB_RUNNING] = "running", [JOB_FINISHED] = "finished",
	[JOB_FAILED] = "failed",	 [JOB_CANCELLED] = "cancelled",
};

const char *job_status_name(enum job_status st)
{
	return (unsigned)st < sizeof status_names / sizeof status_names[0] ? status_names[st] : "";
}

int job_status_parse(const char *name, enum job_status *out)
{
	for (size_t i = 0; name && i < sizeof status_names / sizeof status_names[0]; i++)
		if (!strcmp(name, status_names[i])) {
			*out = (enum job_status)i;
			return 0;
		}
	return -1;
}

int job_status_over(enum job_status st)
{
	return st == JOB_FINISHED || st == JOB_FAILED || st == JOB_CANCELLED;
}

/* After a change: its events (and any left by others) into their rooms. A failure here
 * does not undo the change; the events wait in the outbox for the next drain. */
static void drain_after(struct rds *r, const char *what)
{
	char err[256];
	if (jobstate_drain(r, err, sizeof err) < 0)
		log_warn("%s: its room events wait in the outbox: %s", what, err);
}

/* Runs a job script and reads its {1|0, status} answer: 1 done, 0 refused (cur, when
 * given, receives the status it found), -1 failed (err says what, naming the request as
 * `what`). */
static int eval_verdict(struct rds *r, const struct rscript *script, int nkeys, int argc,
			const char *const *args, const char *what, char *cur, size_t curcap,
			char *err, size_t errlen)
{
	int rc = -1;
	redisReply *rep = rds_script(r, script, nkeys, argc, args, NULL);
	if (rds_reply_failed(r, rep, err, errlen)) {
		rep = NULL;
		goto out;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER ||
	    rep->element[1]->type != REDIS_REPLY_STRING) {
		errbuf_set(err, errlen, "redis: unexpected reply to %s", what);
		goto out;
	}
	rc = rep->element[0]->integer == 1;
	if (cur && curcap)
		snprintf(cur, curcap, "%s", rep->element[1]->str);
	if (rc == 1)
		drain_after(r, what);
out:
	if (rep)
		freeReplyObject(rep);
	return rc;
}

int jobstate_change(struct rds *r, const struct jobstate_change *c, char *cur, size_t curcap,
		    char *err, size_t errlen)
{
	enum { KEYS = 2, FIXED = 12 };
	const char *args[KEYS + FIXED + 2 * JOBSTATE_FIELDS_MAX];
	char attempt[24], from[128], smax[16], pmax[16], dmax[24];
	struct rkey key;
	int argc = 0;
	if (cur && curcap)
		cur[0] = '\0';
	if (c->nfields > JOBSTATE_FIELDS_MAX) {
		errbuf_set(err, errlen, "jobstate: %zu fields, at most %d", c->nfields,
			   JOBSTATE_FIELDS_MAX);
		return -1;
	}
	int has_event = c->room && *c->room && c->event_data;
	if (has_event && strlen(c->event_data) > EVENTS_DATA_MAX) {
		errbuf_set(err, errlen, "jobstate: event data over %zu bytes", EVENTS_DATA_MAX);
		return -1;
	}
	key = rkey1(RK_JOB, c->job_id);
	if (c->attempt >= 0)
		snprintf(attempt, sizeof attempt, "%ld", c->attempt);
	else
		attempt[0] = '\0';
	/* the names, each with a space either side, so a status is found only as a whole word */
	size_t o = 0;
	from[o++] = ' ';
	for (int st = JOB_QUEUED; st <= JOB_CANCELLED; st++)
		if (c->from & JOB_BIT(st))
			o += (size_t)snprintf(from + o, sizeof from - o, "%s ", job_status_name(st));
	from[o] = '\0';
	snprintf(smax, sizeof smax, "%d", JOBSTATE_STREAM_MAX);
	snprintf(pmax, sizeof pmax, "%d", JOBSTATE_POSITION_UPDATES);
	args[argc++] = key.s;
	args[argc++] = rkey0(RK_JOBS);
	args[argc++] = attempt;
	args[argc++] = from;
	args[argc++] = job_status_name(c->status);
	args[argc++] = has_event ? event_type_name(c->event_type) : "";
	args[argc++] = has_event ? c->event_data : "";
	args[argc++] = has_event ? c->room : "";
	args[argc++] = c->requeue_entry ? c->requeue_entry : "";
	args[argc++] = JOBSTATE_GROUP;
	args[argc++] = c->job_id;
	args[argc++] = smax;
	args[argc++] = pmax;
	snprintf(dmax, sizeof dmax, "%zu", (size_t)EVENTS_DATA_MAX);
	args[argc++] = dmax; /* who started the job is added to the event within this bound */
	for (size_t i = 0; i < 2 * c->nfields; i++)
		args[argc++] = c->fields[i];
	return eval_verdict(r, &rs_job_change, KEYS, argc, args, "a job change", cur, curcap, err,
			    errlen);
}

/* A string reply copied into out (cap bytes; out NULL: only checked): 1, or 0 when it is no
 * string or would not fit. */
static int copy_reply_str(const redisReply *e, char *out, size_t cap)
{
	if (e->type != REDIS_REPLY_STRING || e->len >= cap)
		return 0;
	if (out) {
		memcpy(out, e->str, e->len);
		out[e->len] = '\0';
	}
	return 1;
}

/* The answer about a request id in a script's reply (lib/lua/_jobreq.lua): {2, first job,
 * its status, language, version}, a repeat, answered once enough replicas hold the first
 * job (a WAIT covers the master's offset as of the connection's last command, this script,
 * so a WAIT on key, a key of the queue's slot, covers that job's creation too), or {0,
 * "reused", 0, first job}. JOBSTATE_REPEATED or
 * JOBSTATE_REUSED (*first filled when not NULL), 0 when the reply is neither, -1 (err).
 * rep: an array whose first element is an integer. */
static int prior_reply(struct rds *r, const redisReply *rep, const char *key,
		       struct jobstate_first *first, char *err, size_t errlen)
{
	if (rep->element[0]->integer == 2) {
		if (rep->elements < 5 ||
		    !copy_reply_str(rep->element[1], first ? first->id : NULL, sizeof first->id)) {
			errbuf_set(err, errlen, "redis: unexpected reply to a repeated job");
			return -1;
		}
		if (first) {
			copy_reply_str(rep->element[2], first->status, sizeof first->status);
			copy_reply_str(rep->element[3], first->language, sizeof first->language);
			copy_reply_str(rep->element[4], first->version, sizeof first->version);
		}
		if (rds_wait(r, key, err, errlen) < 0)
			return -1;
		return JOBSTATE_REPEATED;
	}
	if (rep->element[0]->integer == 0 && rep->elements > 3 &&
	    rep->element[1]->type == REDIS_REPLY_STRING && !strcmp(rep->element[1]->str, "reused") &&
	    copy_reply_str(rep->element[3], first ? first->id : NULL, sizeof first->id))
		return JOBSTATE_REUSED;
	return 0;
}

int jobstate_create(struct rds *r, const struct jobstate_new *n, long *position,
		    long *backlog, char *err, size_t errlen)
{
	enum { KEYS = 1, FIXED = 16 };
	const char *args[KEYS + FIXED + 2 * JOBSTATE_FIELDS_MAX];
	char ttl[24], smax[16], rmax[24], umax[24], qmax[24], pmax[16], keep[16], rttl[24];
	struct rkey key;
	int argc = 0, rc = -1;
	redisReply *rep = NULL;
	if (n->nfields > JOBSTATE_FIELDS_MAX || strlen(n->event_data) > EVENTS_DATA_MAX) {
		errbuf_set(err, errlen, "jobstate: too many fields or too large an event");
		return -1;
	}
	key = rkey1(RK_JOB, n->job_id);
	snprintf(ttl, sizeof ttl, "%ld", n->ttl_s);
	snprintf(keep, sizeof keep, "%d", JOBSTATE_RUNS_KEEP);
	snprintf(smax, sizeof smax, "%d", JOBSTATE_STREAM_MAX);
	snprintf(rmax, sizeof rmax, "%ld", n->room_max);
	snprintf(umax, sizeof umax, "%ld", n->user_max);
	snprintf(qmax, sizeof qmax, "%ld", n->queue_max);
	snprintf(pmax, sizeof pmax, "%d", JOBSTATE_POSITION_UPDATES);
	args[argc++] = key.s;
	args[argc++] = ttl;
	args[argc++] = event_type_name(n->event_type);
	args[argc++] = n->event_data;
	args[argc++] = keep;
	args[argc++] = smax;
	args[argc++] = n->job_id;
	args[argc++] = n->room;
	args[argc++] = n->user;
	args[argc++] = rmax;
	args[argc++] = umax;
	args[argc++] = qmax;
	args[argc++] = pmax;
	int with_rid = n->request_id && n->request_id[0];
	snprintf(rttl, sizeof rttl, "%ld", n->request_ttl_s);
	args[argc++] = with_rid ? n->request_id : "";
	args[argc++] = with_rid && n->request_digest ? n->request_digest : "";
	args[argc++] = rttl;
	args[argc++] = n->run_right ? n->run_right : "";
	for (size_t i = 0; i < 2 * n->nfields; i++)
		args[argc++] = n->fields[i];
	rep = rds_script(r, &rs_job_create, KEYS, argc, args, NULL);
	if (rds_reply_failed(r, rep, err, errlen)) {
		rep = NULL;
		goto out;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER) {
		errbuf_set(err, errlen, "redis: unexpected reply to a new job");
		goto out;
	}
	rc = prior_reply(r, rep, args[0], n->first, err, errlen);
	if (rc != 0)
		goto out;
	rc = -1;
	if (rep->element[0]->integer == 1) {
		/* durability: the job is acknowledged only once enough replicas hold it
		 * (REDIS_WAIT_REPLICAS, lib/rds.h); short of that the caller answers 503 */
		if (rds_wait(r, args[0], err, errlen) < 0)
			goto out;
		if (position)
			*position = rep->element[1]->type == REDIS_REPLY_INTEGER
					    ? (long)rep->element[1]->integer
					    : 0;
		rc = JOBSTATE_ADMITTED;
		drain_after(r, "a new job");
		goto out;
	}
	const char *what = rep->element[1]->type == REDIS_REPLY_STRING ? rep->element[1]->str : "";
	if (backlog)
		*backlog = rep->elements > 2 && rep->element[2]->type == REDIS_REPLY_INTEGER
				   ? (long)rep->element[2]->integer
				   : 0;
	if (!strcmp(what, "room"))
		rc = JOBSTATE_ROOM_FULL;
	else if (!strcmp(what, "user"))
		rc = JOBSTATE_USER_FULL;
	else if (!strcmp(what, "queue"))
		rc = JOBSTATE_QUEUE_FULL;
	else if (!strcmp(what, "right"))
		rc = JOBSTATE_RIGHT_CHANGED;
	else
		errbuf_set(err, errlen, "jobstate: job %s exists already", n->job_id);
out:
	if (rep)
		freeReplyObject(rep);
	return rc;
}

int jobstate_request_repeat(struct rds *r, const char *room, const char *user, const char *rid,
			    const char *digest, struct jobstate_first *first, char *err,
			    size_t errlen)
{
	const char *ids[] = {room, user, rid};
	struct rkey key = rkey_fill(RK_JOB_REQUEST, 3, ids);
	if (!rkey_ok(&key)) {
		errbuf_set(err, errlen, "jobstate: request id too long for a key");
		return -1;
	}
	const char *args[] = {key.s, digest};
	redisReply *rep = rds_script(r, &rs_job_repeat, 1, 2, args, NULL);
	if (rds_reply_failed(r, rep, err, errlen))
		return -1;
	int rc = -1;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER)
		errbuf_set(err, errlen, "redis: unexpected reply to a request id");
	else if ((rc = prior_reply(r, rep, key.s, first, err, errlen)) == 0 &&
		 rep->element[0]->integer != 1) {
		errbuf_set(err, errlen, "redis: unexpected reply to a request id");
		rc = -1;
	}
	freeReplyObject(rep);
	return rc;
}

int jobstate_cancel(struct rds *r, const char *job_id, const char *room,
		    enum event_type event_type, const char *event_data, const char *error,
		    char *cur, size_t curcap, char *err, size_t errlen)
{
	char now[24], smax[16], pmax[16];
	struct rkey key;
	if (cur && curcap)
		cur[0] = '\0';
	if (strlen(event_data) > EVENTS_DATA_MAX) {
		errbuf_set(err, errlen, "jobstate: event data over %zu bytes", EVENTS_DATA_MAX);
		return -1;
	}
	key = rkey1(RK_JOB, job_id);
	snprintf(now, sizeof now, "%lld", (long long)time(NULL));
	snprintf(smax, sizeof smax, "%d", JOBSTATE_STREAM_MAX);
	snprintf(pmax, sizeof pmax, "%d", JOBSTATE_POSITION_UPDATES);
	const char *args[] = {key.s, event_type_name(event_type), event_data, room ? room : "",
			      job_id, error, now, smax, pmax};
	return eval_verdict(r, &rs_job_cancel, 1, (int)(sizeof args / sizeof args[0]), args,
			    "a cancel", cur, curcap, err, errlen);
}

int jobstate_room_drop(struct rds *r, const char *room, const char *error, long *cancelled,
		       char *err, size_t errlen)
{
	char now[24], smax[16], pmax[16];
	struct rkey line = rkey1(RK_FAIR_ROOM, room);
	*cancelled = 0;
	if (!rkey_ok(&line)) {
		errbuf_set(err, errlen, "jobstate: room id %s does not fit a key", room);
		return -1;
	}
	snprintf(now, sizeof now, "%lld", (long long)time(NULL));
	snprintf(smax, sizeof smax, "%d", JOBSTATE_STREAM_MAX);
	snprintf(pmax, sizeof pmax, "%d", JOBSTATE_POSITION_UPDATES);
	const char *args[] = {line.s, room, error, now, smax, pmax};
	redisReply *rep = rds_script(r, &rs_job_room_drop, 1, 6, args, NULL);
	if (rds_reply_failed(r, rep, err, errlen))
		return -1;
	int rc = 0;
	if (rep->type == REDIS_REPLY_INTEGER) {
		*cancelled = (long)rep->integer;
	} else {
		errbuf_set(err, errlen, "redis: unexpected reply to a room's jobs dropped");
		rc = -1;
	}
	freeReplyObject(rep);
	/* the dispatch at its end may have told other rooms' jobs their new place */
	if (rc == 0)
		drain_after(r, "a room's jobs dropped");
	return rc;
}

int jobstate_room_deleted(struct rds *r, const char *room, char *err, size_t errlen)
{
	struct rkey dk = rkey1(RK_ROOM_DELETED, room);
	if (!rkey_ok(&dk)) /* no room of ours: it has no mark */
		return 0;
	redisReply *rep = rds_cmd(r, dk.s, "EXISTS %s", dk.s);
	if (rds_reply_failed(r, rep, err, errlen))
		return -1;
	int rc = -1;
	if (rep->type == REDIS_REPLY_INTEGER)
		rc = rep->integer > 0;
	else
		errbuf_set(err, errlen, "redis: unexpected reply to EXISTS");
	freeReplyObject(rep);
	return rc;
}

int jobstate_run_right_read(struct rds *r, const char *room, const char *user,
			    char out[JOBSTATE_RUN_RIGHT_LEN + 2], char *err, size_t errlen)
{
	struct rkey k = rkey2(RK_RUN_RIGHT, room, user);
	if (!rkey_ok(&k)) {
		errbuf_set(err, errlen, "jobstate: room or user id too long for a key");
		return -1;
	}
	redisReply *rep = rds_cmd(r, k.s, "GET %s", k.s);
	if (rds_reply_failed(r, rep, err, errlen))
		return -1;
	int rc = 0;
	if (rep->type == REDIS_REPLY_NIL)
		snprintf(out, JOBSTATE_RUN_RIGHT_LEN + 2, "=");
	else if (rep->type == REDIS_REPLY_STRING && rep->len == JOBSTATE_RUN_RIGHT_LEN)
		snprintf(out, JOBSTATE_RUN_RIGHT_LEN + 2, "=%s", rep->str);
	else { /* not a mark we write: no job can be made against it until a change rewrites
		* it, so say so rather than refuse every run */
		errbuf_set(err, errlen, "redis: %s holds no run-right mark", k.s);
		rc = -1;
	}
	freeReplyObject(rep);
	return rc;
}

int jobstate_run_right_taken(struct rds *r, const char *room, const char *user, char *err,
			     size_t errlen)
{
	char mark[JOBSTATE_RUN_RIGHT_LEN + 1], ttl[24];
	struct rkey k = rkey2(RK_RUN_RIGHT, room, user);
	if (!rkey_ok(&k)) {
		errbuf_set(err, errlen, "jobstate: room or user id too long for a key");
		return -1;
	}
	if (rnd_id(mark, JOBSTATE_RUN_RIGHT_LEN) < 0) {
		errbuf_set(err, errlen, "jobstate: no random bytes for a run-right mark");
		return -1;
	}
	snprintf(ttl, sizeof ttl, "%d", JOBSTATE_RUN_RIGHT_TTL_S);
	redisReply *rep = rds_cmd(r, k.s, "SET %s %s EX %s", k.s, mark, ttl);
	if (rds_reply_failed(r, rep, err, errlen))
		return -1;
	int rc = 0;
	if (rep->type != REDIS_REPLY_STATUS) {
		errbuf_set(err, errlen, "redis: unexpected reply to SET");
		rc = -1;
	}
	freeReplyObject(rep);
	return rc;
}

int jobstate_worker(struct rds *r, const char *consumer, long threads, long lifetime_ms,
		    long room_cap, char *err, size_t errlen)
{
	char n[24], life[24], cap[24], smax[16], pmax[16];
	snprintf(n, sizeof n, "%ld", threads);
	snprintf(life, sizeof life, "%ld", lifetime_ms);
	snprintf(cap, sizeof cap, "%ld", room_cap);
	snprintf(smax, sizeof smax, "%d", JOBSTATE_STREAM_MAX);
	snprintf(pmax, sizeof pmax, "%d", JOBSTATE_POSITION_UPDATES);
	const char *args[] = {rkey0(RK_FAIR_WORKERS), consumer, n, life, cap, smax, pmax};
	redisReply *rep = rds_script(r, &rs_job_workers, 1, 7, args, NULL);
	if (rds_reply_failed(r, rep, err, errlen))
		return -1;
	freeReplyObject(rep);
	/* every worker's registration, every second, is also the drain that catches events
	 * whose writer died between its change and its own drain */
	return jobstate_drain(r, err, errlen);
}

/* The value of field name in a stream entry's flat field/value array; NULL when absent. */
static const char *entry_field(const redisReply *f, const char *name)
{
	for (size_t i = 0; i + 1 < f->elements; i += 2)
		if (f->element[i]->type == REDIS_REPLY_STRING &&
		    f->element[i + 1]->type == REDIS_REPLY_STRING && !strcmp(f->element[i]->str, name))
			return f->element[i + 1]->str;
	return NULL;
}

/* One outbox entry into its room (outbox_apply.lua): 0 applied now or before, 1 an entry
 * that is not ours to apply (malformed: it is dropped with a line in the log), -1 failed. */
static int drain_one(struct rds *r, const redisReply *e, char *err, size_t errlen)
{
	const char *id = e->element[0]->str;
	const redisReply *f = e->element[1];
	const char *room = entry_field(f, "room"), *type = entry_field(f, "type");
	const char *data = entry_field(f, "data"), *run = entry_field(f, "run");
	const char *keep = entry_field(f, "keep"), *ttl = entry_field(f, "ttl");
	if (!room || !*room || !type || !data || (run && (!keep || !ttl))) {
		log_warn("jobs outbox: entry %s is malformed; dropped", id);
		return 1;
	}
	struct rkey ek = rkey1(RK_ROOM_EVENTS, room);
	struct rkey mk = rkey1(RK_ROOM_OUTBOX, room), rk = rkey1(RK_ROOM_RUNS, room);
	struct rkey dk = rkey1(RK_ROOM_DELETED, room);
	if (!rkey_ok(&ek) || !rkey_ok(&mk) || !rkey_ok(&rk) || !rkey_ok(&dk)) {
		log_warn("jobs outbox: entry %s names an impossible room; dropped", id);
		return 1;
	}
	char mttl[24];
	snprintf(mttl, sizeof mttl, "%d", JOBSTATE_MARK_TTL_S);
	/* a deleted room's entry is dropped there (2): done all the same, deleted below */
	const char *args[] = {ek.s, mk.s, rk.s, dk.s, id, type, data, EVENTS_HISTORY_BOUNDS,
			      run ? run : "", run ? keep : "", run ? ttl : "", mttl};
	redisReply *rep = rds_script(r, &rs_outbox_apply, 4, 12, args, NULL);
	if (rds_reply_failed(r, rep, err, errlen))
		return -1;
	freeReplyObject(rep);
	return 0;
}

/* The drain proper; jobstate_drain keeps rds_wait's mark around it. */
static int drain(struct rds *r, char *err, size_t errlen)
{
	for (int round = 0; round < JOBSTATE_DRAIN_ROUNDS; round++) {
		redisReply *rep = rds_cmd(r, rkey0(RK_JOBS_OUTBOX), "XRANGE %s - + COUNT %d",
					   rkey0(RK_JOBS_OUTBOX), JOBSTATE_DRAIN_BATCH);
		if (rds_reply_failed(r, rep, err, errlen))
			return -1;
		if (rep->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(rep);
			errbuf_set(err, errlen, "redis: unexpected reply to XRANGE of the outbox");
			return -1;
		}
		/* XDEL key id… of the entries done, in one command at the end */
		const char *argv[2 + JOBSTATE_DRAIN_BATCH];
		int argc = 0, rc = 0;
		argv[argc++] = "XDEL";
		argv[argc++] = rkey0(RK_JOBS_OUTBOX);
		size_t n = rep->elements;
		for (size_t i = 0; i < n && i < JOBSTATE_DRAIN_BATCH; i++) {
			const redisReply *e = rep->element[i];
			if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
			    e->element[0]->type != REDIS_REPLY_STRING ||
			    e->element[1]->type != REDIS_REPLY_ARRAY) {
				errbuf_set(err, errlen, "redis: unexpected entry in the outbox");
				rc = -1;
				break;
			}
			/* in order: an entry left undone stops the drain, so no later entry of
			 * its room can pass it (the room's mark would then skip it) */
			if (drain_one(r, e, err, errlen) < 0) {
				rc = -1;
				break;
			}
			argv[argc++] = e->element[0]->str;
		}
		if (argc > 2) {
			char xerr[128];
			redisReply *d = rds_cmdv(r, rkey0(RK_JOBS_OUTBOX), argc, argv, NULL);
			if (rds_reply_failed(r, d, xerr, sizeof xerr)) {
				if (rc == 0)
					errbuf_set(err, errlen, "%s", xerr);
				rc = -1;
			} else {
				freeReplyObject(d);
			}
		}
		freeReplyObject(rep);
		if (rc < 0)
			return -1;
		if (n < JOBSTATE_DRAIN_BATCH)
			return 0;
	}
	return 0;
}

int jobstate_drain(struct rds *r, char *err, size_t errlen)
{
	/* A caller may WAIT (rds_wait, key of the queue's slot) for the change it drains after,
	 * and a WAIT goes by the last command answered. The drain ends in the queue's slot when
	 * it deletes what it applied, but an entry that fails first in its batch leaves nothing
	 * to delete, and the last command is then outbox_apply in the entry's room: another
	 * slot, in a cluster another node, and the WAIT would be refused as if the change's
	 * connection were gone (or, on the room's node, would not cover the change at all). So
	 * the mark is put back as the caller left it, whichever way the drain ends. */
	struct rds_mark m = rds_mark_get(r);
	int rc = drain(r, err, errlen);
	rds_mark_set(r, m);
	return rc;
}

int jobstate_position(struct rds *r, const char *job_id, const char *room, long *position,
		      char *err, size_t errlen)
{
	struct rkey line = rkey1(RK_FAIR_ROOM, room);
	redisReply *a = rds_cmd(r, line.s, "LPOS %s %s", line.s, job_id);
	if (rds_reply_failed(r, a, err, errlen))
		return -1;
	if (a->type != REDIS_REPLY_INTEGER) {
		freeReplyObject(a);
		return 0;
	}
	long idx = (long)a->integer;
	freeReplyObject(a);
	redisReply *b = rds_cmd(r, rkey0(RK_FAIR_ROOMS), "ZRANK %s %s", rkey0(RK_FAIR_ROOMS), room);
	if (rds_reply_failed(r, b, err, errlen))
		return -1;
	*position = idx + (b->type == REDIS_REPLY_INTEGER ? (long)b->integer : 0);
	freeReplyObject(b);
	return 1;
}

char *jobstate_event_json(const char *job_id, const char *kind, const char *status,
			  const char *result_json, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "job_id", job_id);
	if (kind)
		cJSON_AddStringToObject(o, "kind", kind);
	cJSON_AddStringToObject(o, "status", status);
	if (result_json) {
		cJSON *res = cJSON_Parse(result_json);
		cJSON_AddItemToObject(o, "result", res ? res : cJSON_CreateNull());
	}
	if (error && *error)
		cJSON_AddStringToObject(o, "error", error);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

struct cJSON *jobstate_event_extra_parse(const char *event_extra)
{
	if (!event_extra || !event_extra[0])
		return NULL;
	size_t n = strlen(event_extra);
	char *wrapped = malloc(n + 3);
	if (!wrapped)
		return NULL;
	wrapped[0] = '{';
	memcpy(wrapped + 1, event_extra, n);
	wrapped[n + 1] = '}';
	wrapped[n + 2] = '\0';
	cJSON *o = cJSON_Parse(wrapped);
	free(wrapped);
	return o;
}

char *jobstate_event_extra(long long user_id, const char *username, const char *stdin_text)
{
	char *text = NULL, *shown = NULL;
	cJSON *o = cJSON_CreateObject(), *u = NULL;
	if (!o || !(u = cJSON_AddObjectToObject(o, "user")) ||
	    !cJSON_AddNumberToObject(u, "id", (double)user_id) ||
	    !cJSON_AddStringToObject(u, "username", username ? username : ""))
		goto out;
	if (stdin_text) {
		size_t len = strlen(stdin_text), cut = len;
		if (cut > JOBSTATE_STDIN_SHOWN) {
			cut = JOBSTATE_STDIN_SHOWN;
			/* back to the first byte of a character: never half of one */
			while (cut > 0 && ((unsigned char)stdin_text[cut] & 0xC0) == 0x80)
				cut--;
		}
		if (!(shown = strndup(stdin_text, cut)) ||
		    !cJSON_AddBoolToObject(o, "stdin_given", len > 0) ||
		    !cJSON_AddStringToObject(o, "stdin", shown) ||
		    !cJSON_AddBoolToObject(o, "stdin_truncated", cut < len))
			goto out;
	}
	char *all = cJSON_PrintUnformatted(o);
	if (!all)
		goto out;
	/* {…} without its braces: members to put at the front of another object */
	size_t n = strlen(all);
	memmove(all, all + 1, n - 2);
	all[n - 2] = '\0';
	text = all;
out:
	free(shown);
	cJSON_Delete(o);
	return text;
}

/* queue: the worker's side of the job queue (docs/INTERNALS.md).
 *
 *   cc:jobs     a Stream read by the consumer group "workers"; entry field "job" = job id;
 *               the fair scheduler (lib/jobstate.h) adds a job to it when a worker thread
 *               is free for it, so a thread reads the fair choice, not the oldest job
 *   cc:job:{id} a hash: kind, room, user, request (JSON), status, result (JSON), attempts,
 *               error; written by the API (queued, cancelled) and by the worker (running,
 *               finished, failed)
 * A job is acknowledged (XACK) only once its outcome is stored, so a worker that dies
 * leaves it pending: another worker claims it (XAUTOCLAIM) after QUEUE min-idle time and
 * runs it again, and once `attempts` passes the retry budget the job fails with a message
 * instead of running again. Every status change is one step with its room event, fenced
 * by the attempt (lib/jobstate.h): readers of the hash and of the room agree, events come
 * in order, and a stale worker (its job claimed by another) changes nothing.
 * One Redis client (struct rds, lib/rds.h) per thread; nothing here keeps state between
 * calls. */
#ifndef CC_QUEUE_H
#define CC_QUEUE_H

#include "jobstate.h"
#include "rkeys.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stddef.h>

#define QUEUE_STREAM rkey0(RK_JOBS)
#define QUEUE_GROUP JOBSTATE_GROUP
#define QUEUE_RUNTIMES_KEY rkey0(RK_RUNTIMES)
#define QUEUE_ID_MAX 64

/* One stream entry: its id and the job id it carries ("" when the entry has none). */
struct queue_entry {
	char entry[QUEUE_ID_MAX];
	char job[QUEUE_ID_MAX];
};

/* A stream entry as Redis hands it, [id, [field, value, …]], into e: 0, or -1 when it is
 * not one (a deleted entry is nil; an id that is empty or does not fit whole is refused).
 * e->job is the value of the field `job` (the last one when there are several), or ""
 * when there is none or it is not an id that fits whole (the entry is then dropped). */
int queue_entry_parse(const redisReply *x, struct queue_entry *e);

struct queue_job {
	char id[QUEUE_ID_MAX];
	char kind[32];	  /* "execution" when the hash has none */
	char room[QUEUE_ID_MAX];
	char user[QUEUE_ID_MAX];
	char status[16];
	char *request;	  /* owned, JSON text, "" when absent */
	long attempts;	  /* after queue_job_begin(): this attempt's number, from 1 */
};

/* What a job's handler says about it. */
enum queue_outcome {
	QUEUE_FINISHED, /* the work is done: status finished, result stored */
	QUEUE_FAILED,	/* it cannot be done: status failed, error (and result if any) stored */
	QUEUE_REQUEUE,	/* not done, not its fault (the worker is stopping): back in the queue */
};

/* A job kind: the worker looks the hash's `kind` up in its table of these. */
struct queue_handler {
	const char *kind;  /* "execution", "ai", … */
	enum event_type event; /* the room event type its status changes are sent as */
	void *ctx;	   /* handed to run; read-only configuration */
	/* Does the work; on QUEUE_FINISHED sets *result_json (caller frees with free()), on
	 * QUEUE_FAILED writes a message for people in err (and may set *result_json). When
	 * *cancel becomes non-zero it should stop soon and answer QUEUE_REQUEUE. r is the job
	 * thread's Redis connection, idle while run works: a handler that needs Redis uses
	 * it (and opens none of its own), reading every reply it asks for. When the
	 * connection breaks there, storing the outcome fails too and the thread reconnects;
	 * the entry stays pending and runs again later. */
	enum queue_outcome (*run)(void *ctx, struct rds *r, const struct queue_job *job,
				  const volatile sig_atomic_t *cancel, char **result_json,
				  char *err, size_t errlen);
	/* The event's data; NULL means jobstate_event_json without a kind ({job_id, status, result?, error?}).
	 * Returns a string the caller frees with free(). */
	char *(*event_data)(const struct queue_job *job, const char *status,
			    const char *result_json, const char *error);
};

/* XGROUP CREATE cc:jobs workers 0 MKSTREAM: a new group starts at the beginning, so jobs
 * queued before any worker ever ran are not skipped; an existing group (BUSYGROUP) is fine. */
int queue_ensure_group(struct rds *r, char *err, size_t errlen);

/* A new entry for this consumer, waiting up to block_ms. 1 with *e filled, 0 when none
 * came, -1 on a Redis error (message in err). */
int queue_read(struct rds *r, const char *consumer, int block_ms, struct queue_entry *e,
	       char *err, size_t errlen);

/* An entry pending for more than min_idle_ms with any consumer (a dead worker's), now
 * ours. 1, 0 or -1 as queue_read. Entries deleted from the stream are dropped by Redis. */
int queue_claim(struct rds *r, const char *consumer, long min_idle_ms, struct queue_entry *e,
		char *err, size_t errlen);

/* This worker is alive: SET cc:worker:<consumer>:alive PX ttl_ms, renewed by the main
 * thread every second from before the job threads read until they have all ended (also
 * while a stopping worker finishes its jobs), deleted (ttl_ms 0) when it exits. A worker
 * killed outright stops renewing it, and its key is gone ttl_ms later. 0 or -1. */
int queue_alive(struct rds *r, const char *consumer, long ttl_ms);

/* A stopping worker's name taken out of the consumer group (XGROUP DELCONSUMER), so that
 * names of workers that have stopped do not pile up there: only when no entry is pending
 * with it (DELCONSUMER drops pending entries; one that is, is left for another worker to
 * take over). Called once every job thread has ended, when nothing can give the name a new
 * entry. 1 removed, 0 kept, -1 error. */
int queue_forget(struct rds *r, const char *consumer);

/* The names of workers that are gone taken out of the group: each with nothing pending and
 * no liveness key (killed outright, its entries since taken over), but never self. At most
 * QUEUE_SWEEP_MAX a call (the rest at the next). Every worker runs it at start and once a
 * minute. How many were taken out, or -1 with err. */
#define QUEUE_SWEEP_MAX 256
long queue_sweep(struct rds *r, const char *self, char *err, size_t errlen);

/* An entry pending with a consumer whose liveness key is gone (a worker killed outright),
 * idle at least min_idle_ms, now ours (XCLAIM with that idle time, so of several live
 * workers trying at once one gets it). Reads the pending entries idle that long in pages of
 * QUEUE_ORPHAN_SCAN, at most QUEUE_ORPHAN_PAGES pages a call, from just after cursor (a
 * stream id, or "" for the head; QUEUE_ID_MAX bytes, the caller's, kept between calls):
 * on return cursor is the last entry looked at, or "" once the list's end was reached, so
 * the next call goes on from there. Live workers' long jobs at the head of the list thus
 * never hide a dead worker's entry behind them. 1 with *e, 0 none, -1 error (err). Entries
 * of workers that are alive, however long their jobs run, are never taken here. */
#define QUEUE_ORPHAN_SCAN 32
#define QUEUE_ORPHAN_PAGES 8
int queue_claim_orphan(struct rds *r, const char *consumer, long min_idle_ms, char *cursor,
		       struct queue_entry *e, char *err, size_t errlen);

/* Resets the idle time of entries this worker is still working on, so they are not
 * claimed by another worker while they run (XCLAIM … JUSTID), but only of those still
 * pending with this consumer (lib/lua/queue_touch.lua): an entry another worker took over
 * while this one stalled stays that worker's, so the orphan scan judges it by that
 * worker's liveness. ids: n entry ids. 0 or -1. */
int queue_touch(struct rds *r, const char *consumer, const char *const *ids, size_t n);

int queue_ack(struct rds *r, const char *entry_id);

/* What a job command returns when Redis refused it for the job's data (WRONGTYPE, or an
 * ERR such as "hash value is not an integer"), not for a failure of Redis or the link:
 * the job is malformed, and no retry can help. */
#define QUEUE_MALFORMED (-2)

/* Reads cc:job:{id}. 1 found (free with queue_job_free), 0 no such job, QUEUE_MALFORMED
 * (the key is not a hash; err says so), -1 error. */
int queue_job_load(struct rds *r, const char *job_id, struct queue_job *j, char *err,
		   size_t errlen);
void queue_job_free(struct queue_job *j);

/* 1 when the job is over (finished, failed or cancelled): a second delivery of a job whose
 * worker died between storing and acknowledging, or a job cancelled before it ran. */
int queue_job_done(const struct queue_job *j);

/* Counts an attempt (HINCRBY attempts 1; j->attempts updated). 1 when it is within
 * max_attempts, 0 when over budget (the caller fails the job), QUEUE_MALFORMED when Redis
 * refused the increment (attempts not an integer; err says so), -1 error. */
int queue_job_count_attempt(struct rds *r, struct queue_job *j, long max_attempts, char *err,
			    size_t errlen);

/* Handles one entry from queue_read/queue_claim start to end: loads the job, skips one
 * already done, counts the attempt (failing the job past max_attempts), marks it running,
 * runs the handler of its kind, stores the outcome and acknowledges the entry last; each
 * status change together with its room event. A stale attempt (the job was claimed by
 * another worker meanwhile, or is over) stores, announces and acknowledges nothing.
 * *attempt (the caller's, 0 before) is set to the attempt's number once the job is marked
 * running at it, so the caller can tell from the job's hash that another worker took the
 * job over. *cancel non-zero stops the handler; QUEUE_TAKEN_OVER there says the job is
 * another worker's now: the stopped attempt is not put back in the queue, only dropped.
 * 0 when the entry is dealt with; -1 when Redis failed (err): the entry stays pending and
 * is claimed again later. */
#define QUEUE_TAKEN_OVER 2
/* *cancel QUEUE_OVERRAN: the job ran past the most a job may take (JOB_HANG_TIMEOUT_S,
 * the worker's main thread says so): the stopped attempt fails, with that as its error,
 * instead of going back to the queue to run as long again */
#define QUEUE_OVERRAN 3
#define QUEUE_OVERRAN_ERROR "the job ran longer than a job may (JOB_HANG_TIMEOUT_S) and was stopped"
int queue_process(struct rds *r, const struct queue_entry *e, const struct queue_handler *h,
		  size_t nh, const char *consumer, long max_attempts,
		  const volatile sig_atomic_t *cancel, volatile sig_atomic_t *attempt, char *err,
		  size_t errlen);

/* SET cc:runtimes <json> EX ttl_s: it lapses when no worker refreshes it, so the API can
 * tell that nothing would run a job. 0 or -1. */
int queue_publish_runtimes(struct rds *r, const char *json, long ttl_s);

#endif

/* jobstate: a job's status changes, each one atomic with its room event.
 *
 * A job is the hash RK_JOB (field `status`: enum job_status below) plus, once the fair
 * scheduler dispatches it, an entry in the stream RK_JOBS (lib/rkeys.def); every status
 * change is also a room event (lib/events.h).
 * Written as two commands, readers could disagree: GET /api/jobs/{id} could say finished
 * while the room's history had no finished event yet, and a fast worker could announce
 * running before the API announced queued. So each change here is one Lua script that
 * checks the job, writes the hash and appends the event to the jobs' outbox
 * (lib/lua/job_*.lua, lib/lua/_outbox.lua) together; Redis runs a script alone, so no one
 * sees one without the other, and the outbox holds the events in the order of the changes.
 *
 * Redis Cluster: every key of the queue carries the hash tag {jobs} (one slot), a room's
 * keys {<room>}, and no script may touch two slots. So the room's side comes second: after
 * each change (and every second from each worker's registration) jobstate_drain() carries
 * the outbox's entries, oldest first, to their rooms (lib/lua/outbox_apply.lua, in the
 * room's slot), each at most once thanks to the room's mark of the last entry applied, then
 * deletes them. A process that dies between the two steps only delays its events: the next
 * drain, by anyone, delivers them, once and in order. Each function below drains before it
 * returns, so its caller's events are in the room when it answers (unless Redis failed
 * meanwhile: then the next drain brings them).
 *
 * Fencing: a worker counts its attempt (HINCRBY attempts) before it starts a job, and every
 * later change names that attempt. A change is refused unless the job is still at that
 * attempt and in one of the statuses the change may leave. A stale worker — one that stalled
 * so long that another claimed its job and counted a new attempt — can thus neither move the
 * job back to running nor store (and announce) a second outcome. */
#ifndef CC_JOBSTATE_H
#define CC_JOBSTATE_H

#include <hiredis/hiredis.h>

#include "rds.h"

#include "events.h"
#include <stddef.h>

#define JOBSTATE_GROUP "workers"
/* The longest result JSON a worker stores for a job: a run's outputs are cut to fit
 * (sandbox_result_json, marked truncated), since OUTPUT_LIMIT_KB alone allows results of
 * over a gigabyte once control bytes are escaped. GET /api/jobs/{id} answers the result
 * with the job's few other fields within the API's answer bound (HTTP_RESP_BODY_MAX,
 * fcgi/http.h, 8 MiB; h_jobs.c checks that the two line up). */
#define JOB_RESULT_MAX ((size_t)6 * 1024 * 1024)
#define JOBSTATE_STREAM_MAX 100000 /* MAXLEN ~ of the jobs stream */
#define JOBSTATE_FIELDS_MAX 12	   /* field/value pairs one call may write besides status */
#define JOBSTATE_POSITION_UPDATES 10	/* queued jobs of a room told their new place per move */
#define JOBSTATE_RUNS_KEEP 20	/* a room's recent executions kept in RK_ROOM_RUNS */
#define JOBSTATE_STDIN_SHOWN 1024 /* bytes of a run's stdin its events and listings carry */
#define JOBSTATE_DRAIN_BATCH 64	  /* outbox entries read per round trip of a drain */
#define JOBSTATE_DRAIN_ROUNDS 16  /* batches one drain takes at most (the rest: next drain) */
#define JOBSTATE_MARK_TTL_S (7 * 86400) /* a room's outbox mark outlives every entry */

/* A job's status, as the hash's `status` field, the API's answers and the events name it. */
enum job_status { JOB_QUEUED, JOB_RUNNING, JOB_FINISHED, JOB_FAILED, JOB_CANCELLED };
/* "queued", "running", "finished", "failed", "cancelled"; "" out of range. */
const char *job_status_name(enum job_status st);
/* 0 with *out, or -1 for a name that is not a status. */
int job_status_parse(const char *name, enum job_status *out);
/* finished, failed or cancelled: nothing will change it any more. */
int job_status_over(enum job_status st);
/* A set of statuses, for the statuses a change may leave: JOB_BIT(JOB_QUEUED) | … */
#define JOB_BIT(st) (1u << (st))

/* One status change. */
struct jobstate_change {
	const char *job_id;
	const char *room;	/* NULL or "": no event */
	enum event_type event_type; /* EV_EXECUTION, EV_AI */
	const char *event_data; /* JSON object text, at most EVENTS_DATA_MAX bytes; NULL: none */
	long attempt;		/* the job's attempts must equal this; -1: any */
	unsigned from;		/* the statuses it may leave: JOB_BIT(JOB_QUEUED) | … */
	enum job_status status; /* the new status */
	const char *const *fields; /* nfields field/value pairs written with it */
	size_t nfields;
	/* Not NULL: a requeue. The job also gets a new RK_JOBS entry, this entry is
	 * acknowledged and attempts goes down by one (this attempt does not count). */
	const char *requeue_entry;
};

/* 1 done; 0 refused (the job is gone, or not at that attempt in a `from` status: its
 * status, "" when gone, is copied into cur); -1 Redis error (message in err). */
int jobstate_change(struct rds *r, const struct jobstate_change *c, char *cur, size_t curcap,
		    char *err, size_t errlen);

/* A new job, the API's side. An execution's id also goes to the front of its room's recent
 * runs (RK_ROOM_RUNS, at most JOBSTATE_RUNS_KEEP, kept as long as a job). */
struct jobstate_new {
	const char *job_id;
	const char *room;
	const char *user;	/* the submitter's id: the per-user backlog */
	enum event_type event_type; /* EV_EXECUTION, EV_AI */
	const char *event_data; /* the queued event; `position` is added to it */
	const char *const *fields; /* nfields field/value pairs besides status */
	size_t nfields;
	long ttl_s;
	long room_max;	/* queued jobs a room may have (its line), */
	long user_max;	/* a user may have, */
	long queue_max; /* everyone together may have */
	/* Idempotent submission (RK_JOB_REQUEST): the client's request id (NULL or "": none;
	 * letters, digits, '_', '-', '.', validated by the caller), a digest of its request
	 * (hex, no ':') and how long the id names the job it made. */
	const char *request_id;
	const char *request_digest;
	long request_ttl_s;
	/* Not NULL: filled for JOBSTATE_REPEATED (the first job) and JOBSTATE_REUSED (its id). */
	struct jobstate_first *first;
	/* A run: the user's run-right mark as jobstate_run_right_read read it before the
	 * caller read the user's right to run code in the room; the job is made only while the
	 * mark is still that (else JOBSTATE_RIGHT_CHANGED). NULL: not checked (AI jobs). */
	const char *run_right;
};

#define JOBSTATE_ID_MAX 64 /* the longest job id jobstate_first holds */

/* The job a request id already names. */
struct jobstate_first {
	char id[JOBSTATE_ID_MAX + 1];
	char status[16];
	char language[33];
	char version[33];
};

enum {
	JOBSTATE_ADMITTED = 0,
	JOBSTATE_ROOM_FULL = 1,
	JOBSTATE_USER_FULL = 2,
	JOBSTATE_QUEUE_FULL = 3,
	JOBSTATE_REPEATED = 4, /* the request id names a job made for the same request */
	JOBSTATE_REUSED = 5,   /* the request id names a job made for another request */
	JOBSTATE_RIGHT_CHANGED = 6, /* the run-right mark changed since it was read */
};

/* The run-right mark (RK_RUN_RIGHT) closes the race between a run's creation and a change
 * that takes its author's right to run code in the room away (a removal, a leave, a
 * demotion to viewer, the account's deletion). The change, once the right is gone from
 * PostgreSQL, writes a new mark (jobstate_run_right_taken) and only then looks for the
 * user's runs to cancel them. A run's creation reads the mark (jobstate_run_right_read)
 * before it reads the right from PostgreSQL, and jobstate_create makes the job only while
 * the mark is unchanged. A creation whose read of the right came before the change
 * therefore either made its job before the mark was written (so the change's look finds it)
 * or is refused; one whose read came after the mark sees the right gone. */
#define JOBSTATE_RUN_RIGHT_LEN 24 /* a mark's random characters */
/* How long a mark lives: far longer than any request between its two steps (a mark that
 * expired in between would read as none again) */
#define JOBSTATE_RUN_RIGHT_TTL_S 86400
/* The mark of user in room into out: '=' and the mark, '=' alone when there is none. 0, or
 * -1 (err). */
int jobstate_run_right_read(struct rds *r, const char *room, const char *user,
			    char out[JOBSTATE_RUN_RIGHT_LEN + 2], char *err, size_t errlen);
/* A new mark for user in room: every creation that read the old one is refused. 0, or -1
 * (err). The connection's last command is then in the jobs' slot. */
int jobstate_run_right_taken(struct rds *r, const char *room, const char *user, char *err,
			     size_t errlen);

/* Admission, then the hash (status queued), its expiry, the job in its room's line at its
 * user's next round (people in a room take turns: lib/lua/_fair.lua), the room's `queued` event with the job's place in line (into the outbox) and a
 * dispatch, in one script: the outbox holds the queued event before any worker can take the
 * job, so its room hears `queued` before anything else of it. With a request id, its mark
 * is written in the same script, so of requests that race under one id exactly one makes
 * a job. JOBSTATE_ADMITTED (*position: jobs that will run before it), JOBSTATE_*_FULL
 * (nothing written; *backlog: the queued jobs counted against that bound),
 * JOBSTATE_RIGHT_CHANGED (nothing written; n->run_right is not the mark any more),
 * JOBSTATE_REPEATED / JOBSTATE_REUSED (nothing made; the first job in *n->first), -1 (err;
 * also when the id exists). ADMITTED and REPEATED are answered only once enough replicas
 * hold the job (rds_wait; short of that -1): a repeat wrote to the first job in the same
 * script, so its WAIT also covers a first creation whose own WAIT fell short. */
int jobstate_create(struct rds *r, const struct jobstate_new *n, long *position,
		    long *backlog, char *err, size_t errlen);

/* Cancels a queued or running job: status `cancelled` (with error and finished_at) and its
 * room event in one step; a queued job leaves its room's line, a dispatched or running one
 * frees its slot (its worker sees the status and stops it). 1 done; 0 refused (the job is
 * gone or over: its status, "" when gone, in cur); -1 Redis error. */
int jobstate_cancel(struct rds *r, const char *job_id, const char *room,
		    enum event_type event_type, const char *event_data, const char *error,
		    char *cur, size_t curcap, char *err, size_t errlen);

/* A room was deleted (DELETE /api/rooms/{id}): every job of it still queued or running
 * becomes `cancelled` with `error`, without an event (lib/lua/job_room_drop.lua). A job
 * waiting in the room's line leaves it and never runs; one dispatched or running frees its
 * slot (its worker sees the status and stops it); the room leaves the fair scheduler; then
 * a dispatch. 0 with *cancelled (how many), or -1 (err). */
int jobstate_room_drop(struct rds *r, const char *room, const char *error, long *cancelled,
		       char *err, size_t errlen);

/* Is the room deleted, i.e. does its deleted mark (RK_ROOM_DELETED, written by the API when
 * it deletes the room, expiring after JOBSTATE_ROOM_DELETED_TTL_S) exist? 1, 0, or -1 (err).
 * A job of such a room is not run (queue-worker/queue.c). */
int jobstate_room_deleted(struct rds *r, const char *room, char *err, size_t errlen);
/* How long a deleted room's mark lasts: longer than any job of the room (its hash lives
 * 7 days) and any outbox entry of one, so nothing of the room is written back meanwhile. */
#define JOBSTATE_ROOM_DELETED_TTL_S (8 * 86400)
/* The error of a job its room's deletion ended (the API's drop, the worker's check). */
#define JOBSTATE_ROOM_DELETED_ERROR "the room was deleted"

/* A worker's registration: `threads` job threads for lifetime_ms (renewed while it lives;
 * 0 threads: it stops), the per-room cap on jobs in flight (0: none); then a dispatch.
 * 0 or -1. */
int jobstate_worker(struct rds *r, const char *consumer, long threads, long lifetime_ms,
		    long room_cap, char *err, size_t errlen);

/* The second step of every change above: the outbox's entries (oldest first, at most
 * JOBSTATE_DRAIN_ROUNDS batches) emitted in their rooms, each once, then deleted from the
 * outbox. Any process may call it at any time. 0, or -1 with err (what is left stays for the
 * next drain). Whichever way it ends, rds_wait's mark is where the caller left it (the
 * drain's commands in rooms' slots do not move it): a WAIT for the change before the drain
 * goes to the connection that carried that change. */
int jobstate_drain(struct rds *r, char *err, size_t errlen);

/* Is this request a repeat? The request id (rid) of this room and user, with the digest of
 * the request (as in jobstate_new), looked up (lib/lua/job_repeat.lua) before any work is
 * done for the job: JOBSTATE_REPEATED (counted and answered as jobstate_create does, the
 * first job in *first) or JOBSTATE_REUSED (its id in *first), 0 when the id names no job
 * (jobstate_create then decides, atomically, for copies racing past this), -1 error. */
int jobstate_request_repeat(struct rds *r, const char *room, const char *user, const char *rid,
			    const char *digest, struct jobstate_first *first, char *err,
			    size_t errlen);

/* A queued job's place in line: 1 (*position set), 0 when it is not waiting in its room's
 * line (dispatched or over), -1 error. */
int jobstate_position(struct rds *r, const char *job_id, const char *room, long *position,
		      char *err, size_t errlen);

/* Who started a job, as the job's `event_extra` field: JSON members without the braces,
 * which every event of the job carries at its front (lib/lua/_jobev.lua):
 * "user":{"id","username"} and, for an execution (stdin not NULL), "stdin_given" (the
 * stdin is not empty), "stdin" (at most JOBSTATE_STDIN_SHOWN bytes of it, cut at a
 * character boundary) and "stdin_truncated". stdin must be valid UTF-8. Caller frees with
 * free(); NULL when out of memory. */
char *jobstate_event_extra(long long user_id, const char *username, const char *stdin_text);

/* The members of an `event_extra` field (above) as the object they are put into; NULL when
 * there are none, they do not parse, or out of memory. Caller cJSON_Delete()s. */
struct cJSON *jobstate_event_extra_parse(const char *event_extra);

/* The data of a job's event: {job_id, kind?, status, result?, error?}; kind NULL: none;
 * result_json inserted as JSON (null when it does not parse); error omitted when NULL or "".
 * Caller frees with free(); NULL when out of memory. */
char *jobstate_event_json(const char *job_id, const char *kind, const char *status,
			  const char *result_json, const char *error);

#endif

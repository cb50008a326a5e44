/* jobstate: a job's status changes, each one atomic with its room event.
 *
 * A job is the hash cc:job:{id} (field `status`: queued, running, finished, failed) plus an
 * entry in the stream cc:jobs; every status change is also a room event (lib/events.h).
 * Written as two commands, readers could disagree: GET /api/jobs/{id} could say finished
 * while the room's history had no finished event yet, and a fast worker could announce
 * running before the API announced queued. So each change here is one Lua script that
 * checks the job, writes the hash and appends+publishes the event (events_emit_script, run
 * as a function inside it) together; Redis runs a script alone, so no one sees one without
 * the other, and events come in the order of the changes.
 *
 * Fencing: a worker counts its attempt (HINCRBY attempts) before it starts a job, and every
 * later change names that attempt. A change is refused unless the job is still at that
 * attempt and in one of the statuses the change may leave. A stale worker — one that stalled
 * so long that another claimed its job and counted a new attempt — can thus neither move the
 * job back to running nor store (and announce) a second outcome. */
#ifndef CC_JOBSTATE_H
#define CC_JOBSTATE_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#define JOBSTATE_STREAM "cc:jobs"
#define JOBSTATE_GROUP "workers"
#define JOBSTATE_STREAM_MAX 100000 /* MAXLEN ~ of cc:jobs */
#define JOBSTATE_FIELDS_MAX 8	   /* field/value pairs one call may write besides status */

/* One status change. */
struct jobstate_change {
	const char *job_id;
	const char *room;	/* NULL or "": no event */
	const char *event_type; /* "execution", "ai" */
	const char *event_data; /* JSON object text, at most EVENTS_DATA_MAX bytes */
	long attempt;		/* the job's attempts must equal this; -1: any */
	const char *from;	/* the statuses it may leave, space-separated ("queued running") */
	const char *status;	/* the new status */
	const char *const *fields; /* nfields field/value pairs written with it */
	size_t nfields;
	/* Not NULL: a requeue. The job also gets a new cc:jobs entry, this entry is
	 * acknowledged and attempts goes down by one (this attempt does not count). */
	const char *requeue_entry;
};

/* 1 done; 0 refused (the job is gone, or not at that attempt in a `from` status: its
 * status, "" when gone, is copied into cur); -1 Redis error (message in err). */
int jobstate_change(redisContext *r, const struct jobstate_change *c, char *cur, size_t curcap,
		    char *err, size_t errlen);

/* A new job, the API's side: the hash (status queued plus nfields field/value pairs),
 * its expiry, the room's `queued` event and only then the cc:jobs entry, in one script, so
 * no worker can take the job before the room has heard of it. 0, or -1 (err; also when a
 * job with that id exists). */
int jobstate_create(redisContext *r, const char *job_id, const char *room,
		    const char *event_type, const char *event_data, const char *const *fields,
		    size_t nfields, long ttl_s, char *err, size_t errlen);

/* The data of a job's event: {job_id, kind?, status, result?, error?}; kind NULL: none;
 * result_json inserted as JSON (null when it does not parse); error omitted when NULL or "".
 * Caller frees with free(); NULL when out of memory. */
char *jobstate_event_json(const char *job_id, const char *kind, const char *status,
			  const char *result_json, const char *error);

#endif

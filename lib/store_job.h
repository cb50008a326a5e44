/* store_job: what the API reads of a job (the hash RK_JOB, written by lib/jobstate.c) and
 * the runtimes the workers announced, as store functions (lib/store.h). Status changes stay
 * in lib/jobstate.h; the API's handlers (fcgi/h_jobs.c) answer. */
#ifndef CC_STORE_JOB_H
#define CC_STORE_JOB_H

#include <cjson/cJSON.h>

#include "store.h"

#define STORE_JOB_ROOM_MAX 64

/* A job's fields as stored; a field the hash lacks is NULL (strings) or has_* 0. */
struct store_job {
	char *id; /* store_job_recent only */
	char *status, *kind, *room, *user, *event_kind, *result, *error;
	char *created_at;
	char *event_extra; /* who started it: JSON members without braces (lib/jobstate.h) */
	char *language, *version, *started_at, *finished_at;
};

void store_job_free(struct store_job *j);

/* The job with this id: STORE_OK with *out (caller store_job_free()s); STORE_NOT_FOUND
 * when there is none (no status or room: expired, never made); STORE_REDIS_UNAVAILABLE. */
enum store_status store_job_load(struct store *s, const char *id, struct store_job *out);

/* The room's most recent executions, newest first, at most max (the room keeps the last
 * JOBSTATE_RUNS_KEEP, each as long as its job): STORE_OK with *out (n of them; caller
 * store_job_free()s each, then free()s the array; NULL when none), or
 * STORE_REDIS_UNAVAILABLE. Jobs that expired meanwhile are left out. */
enum store_status store_job_recent(struct store *s, const char *room, int max,
				   struct store_job **out, int *n);

/* Only the job's status as stored (status: "" when there is no such job), or
 * STORE_REDIS_UNAVAILABLE. */
enum store_status store_job_status(struct store *s, const char *id, char status[16]);

/* The installed runtimes as the workers announced them (a JSON array, caller
 * cJSON_Delete()s): STORE_OK; STORE_NOT_FOUND when no worker announces any;
 * STORE_REDIS_UNAVAILABLE. */
enum store_status store_runtimes(struct store *s, cJSON **out);

#endif

/* The job the jobstate program tests (tests/programs/test_jobstate_*.c) queue: an execution
 * of user in room with generous bounds, its fields f (nf pairs) and a run-right mark
 * (NULL: not checked). Header-only: each test is one program. */
#ifndef CC_JOB_FIXTURE_H
#define CC_JOB_FIXTURE_H

#include "jobstate.h"

static inline struct jobstate_new test_job(const char *room, const char *user, const char *job,
					   const char *const *f, size_t nf, const char *right)
{
	struct jobstate_new n = {
		.job_id = job,
		.room = room,
		.user = user,
		.event_type = EV_EXECUTION,
		.event_data = "{\"status\":\"queued\"}",
		.fields = f,
		.nfields = nf,
		.ttl_s = 600,
		.room_max = 100,
		.user_max = 100,
		.queue_max = 1000,
		.run_right = right,
	};
	return n;
}

#endif

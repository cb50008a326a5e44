/* ratelimit: sliding-window limits kept in Redis sorted sets (one member per counted
 * event, scored by its time), so several API processes share one count exactly. */
#ifndef CC_RATELIMIT_H
#define CC_RATELIMIT_H

#include <hiredis/hiredis.h>

#include "rds.h"

enum ratelimit_result { RATELIMIT_OK = 0, RATELIMIT_LIMITED = 1, RATELIMIT_ERROR = -1 };

/* Counts the events of `key` in the last window_ms. When `record` is set and the count is
 * below `limit`, records one more event. LIMITED when the count already reached the limit;
 * then *retry_after_s is the whole seconds until the oldest event leaves the window (>= 1). */
enum ratelimit_result ratelimit_check(struct rds *r, const char *key, long limit,
				      long window_ms, int record, long *retry_after_s);

/* Records one event unconditionally (e.g. a failed login after the check passed). */
int ratelimit_record(struct rds *r, const char *key, long window_ms);

#define RATELIMIT_MEMBER_LEN 32

/* ratelimit_check with record set, handing back the recorded event's id in member so the
 * caller can take the event back with ratelimit_release (a login that succeeded). Check and
 * record are one step: concurrent requests cannot all pass a window that has one place
 * left, as they can between ratelimit_check and a later ratelimit_record. */
enum ratelimit_result ratelimit_reserve(struct rds *r, const char *key, long limit,
					long window_ms, char member[RATELIMIT_MEMBER_LEN + 1],
					long *retry_after_s);

/* Forgets the event that ratelimit_reserve recorded as member. 0 or -1 (Redis failed). */
int ratelimit_release(struct rds *r, const char *key, const char *member);

#endif

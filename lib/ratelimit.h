/* ratelimit: sliding-window limits kept in Redis sorted sets (one member per counted
 * event, scored by its time), so several API processes share one count exactly. */
#ifndef CC_RATELIMIT_H
#define CC_RATELIMIT_H

#include <hiredis/hiredis.h>

enum ratelimit_result { RATELIMIT_OK = 0, RATELIMIT_LIMITED = 1, RATELIMIT_ERROR = -1 };

/* Counts the events of `key` in the last window_ms. When `record` is set and the count is
 * below `limit`, records one more event. LIMITED when the count already reached the limit;
 * then *retry_after_s is the whole seconds until the oldest event leaves the window (>= 1). */
enum ratelimit_result ratelimit_check(redisContext *r, const char *key, long limit,
				      long window_ms, int record, long *retry_after_s);

/* Records one event unconditionally (e.g. a failed login after the check passed). */
int ratelimit_record(redisContext *r, const char *key, long window_ms);

#endif

#include "ratelimit.h"

#include <stdio.h>
#include <time.h>

#include "rds.h"
#include "rkeys.h"
#include "rscript.h"
#include "rnd.h"
#include "clock.h"

/* member: the id recorded when record is set (RATELIMIT_MEMBER_LEN + 1 bytes). */
static enum ratelimit_result check(struct rds *r, const char *key, long limit, long window_ms,
				   int record, char *member, long *retry_after_s)
{
	if (rnd_hex(member, RATELIMIT_MEMBER_LEN / 2) < 0)
		return RATELIMIT_ERROR;
	char now[24], win[24], lim[24];
	snprintf(now, sizeof now, "%lld", clock_wall_ms());
	snprintf(win, sizeof win, "%ld", window_ms);
	snprintf(lim, sizeof lim, "%ld", limit);
	const char *args[] = {key, now, win, lim, member, record ? "1" : "0"};
	redisReply *rep = rds_script(r, &rs_ratelimit_check, 1, 6, args, NULL);
	enum ratelimit_result res = RATELIMIT_ERROR;
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	    rep->element[0]->type == REDIS_REPLY_INTEGER &&
	    rep->element[1]->type == REDIS_REPLY_INTEGER) {
		if (rep->element[0]->integer == 1) {
			res = RATELIMIT_OK;
		} else {
			long long ms = rep->element[1]->integer;
			long s = (long)((ms + 999) / 1000);
			*retry_after_s = s < 1 ? 1 : s;
			res = RATELIMIT_LIMITED;
		}
	}
	if (rep)
		freeReplyObject(rep);
	return res;
}

enum ratelimit_result ratelimit_check(struct rds *r, const char *key, long limit,
				      long window_ms, int record, long *retry_after_s)
{
	char member[RATELIMIT_MEMBER_LEN + 1];
	return check(r, key, limit, window_ms, record, member, retry_after_s);
}

enum ratelimit_result ratelimit_reserve(struct rds *r, const char *key, long limit,
					long window_ms, char member[RATELIMIT_MEMBER_LEN + 1],
					long *retry_after_s)
{
	return check(r, key, limit, window_ms, 1, member, retry_after_s);
}

int ratelimit_release(struct rds *r, const char *key, const char *member)
{
	redisReply *rep = rds_cmd(r, key, "ZREM %s %s", key, member);
	int rc = (rep && rep->type == REDIS_REPLY_INTEGER) ? 0 : -1;
	if (rep)
		freeReplyObject(rep);
	return rc;
}

int ratelimit_record(struct rds *r, const char *key, long window_ms)
{
	char member[40];
	if (rnd_hex(member, 16) < 0)
		return -1;
	char now[24], win[24];
	snprintf(now, sizeof now, "%lld", clock_wall_ms());
	snprintf(win, sizeof win, "%ld", window_ms);
	const char *args[] = {key, now, win, member};
	redisReply *rep = rds_script(r, &rs_ratelimit_record, 1, 4, args, NULL);
	int rc = (rep && rep->type == REDIS_REPLY_INTEGER) ? 0 : -1;
	if (rep)
		freeReplyObject(rep);
	return rc;
}

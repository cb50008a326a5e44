/* A plain hiredis connection to a redis-server a C program test (tests/programs/test_*.c)
 * started on 127.0.0.1, for the test's own looks and writes beside the code under test
 * (which goes through lib/rds or the broker's hub). Header-only, like waits.h: each test is
 * one program. */
#ifndef CC_TEST_REDIS_DIRECT_H
#define CC_TEST_REDIS_DIRECT_H

#include <hiredis/hiredis.h>
#include <sys/time.h>

/* Connected to port, with a 2 s bound on the connect and on every reply; NULL when it could
 * not connect (caller frees with redisFree()). */
static inline redisContext *redis_direct(int port)
{
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	if (c && c->err) {
		redisFree(c);
		return NULL;
	}
	if (c && redisSetTimeout(c, tv) != REDIS_OK) {
		redisFree(c);
		return NULL;
	}
	return c;
}

#endif

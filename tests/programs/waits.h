/* Time helpers of the C program tests (tests/programs/test_*.c), which start real servers
 * and wait for them: a monotonic clock in milliseconds and a sleep that an interrupting
 * signal does not cut short. Header-only: each test is one program. */
#ifndef CC_TEST_WAITS_H
#define CC_TEST_WAITS_H

#include <errno.h>
#include <time.h>

static inline long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

#endif

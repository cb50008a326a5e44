#include "clock.h"

#include <errno.h>
#include <time.h>

static long long ms_of(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long clock_wall_ms(void)
{
	return ms_of(CLOCK_REALTIME);
}

long long clock_mono_ms(void)
{
	return ms_of(CLOCK_MONOTONIC);
}

void clock_sleep_ms(long ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int clock_sleep_watching(long ms, long slice_ms, const volatile int *stop)
{
	if (slice_ms <= 0)
		slice_ms = 1;
	for (long left = ms; left > 0; left -= slice_ms) {
		if (stop && *stop)
			return 1;
		clock_sleep_ms(left < slice_ms ? left : slice_ms);
	}
	return stop && *stop ? 1 : 0;
}

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

void clock_sleep_us(long us)
{
	if (us <= 0)
		return;
	struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void clock_sleep_ms(long ms)
{
	clock_sleep_us(ms > 0 ? ms * 1000 : 0);
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

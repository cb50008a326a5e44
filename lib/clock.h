/* clock: milliseconds, from the wall clock (timestamps shared between processes: rate
 * limits, due times) or from the monotonic clock (durations and deadlines in one process),
 * and the one way every program sleeps. */
#ifndef CC_CLOCK_H
#define CC_CLOCK_H

long long clock_wall_ms(void);
long long clock_mono_ms(void);

/* Sleeps ms milliseconds (nothing for ms <= 0), resuming after a signal interrupts it. A
 * caller that must notice a stop flag sleeps in slices (clock_sleep_until). */
void clock_sleep_ms(long ms);
/* The same in microseconds, for the short random waits of a contended retry loop. */
void clock_sleep_us(long us);
/* Sleeps up to ms milliseconds in slices of at most slice_ms, returning early (1) as soon
 * as *stop is non-zero; 0 when the whole time passed. stop may be NULL. */
int clock_sleep_watching(long ms, long slice_ms, const volatile int *stop);

#endif

/* clock: milliseconds, from the wall clock (timestamps shared between processes: rate
 * limits, due times) or from the monotonic clock (durations and deadlines in one process). */
#ifndef CC_CLOCK_H
#define CC_CLOCK_H

long long clock_wall_ms(void);
long long clock_mono_ms(void);

#endif

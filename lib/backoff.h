/* backoff: the one capped exponential back-off with jitter, for every retry loop (Redis
 * reconnects in the broker and the worker, provider calls in the worker).
 *
 * Attempt n (0 for the first retry) waits a random time in [d/2, d] where
 * d = min(first_ms * 2^n, max_ms): spreading the retries of many clients keeps them from
 * arriving together, and the cap keeps a long outage from growing the wait without end. */
#ifndef CC_BACKOFF_H
#define CC_BACKOFF_H

struct backoff {
	long first_ms; /* d for attempt 0 */
	long max_ms;   /* the cap of d */
	int attempt;   /* retries so far; backoff_reset() sets it to 0 */
};

/* The delay before the next retry, and one more attempt counted. */
long backoff_next(struct backoff *b);
/* The bound d of attempt n, without jitter (what backoff_next draws below). */
long backoff_cap(const struct backoff *b, int attempt);
/* After a success. */
void backoff_reset(struct backoff *b);

#endif

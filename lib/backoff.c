#include "backoff.h"

#include "rnd.h"

long backoff_cap(const struct backoff *b, int attempt)
{
	long d = b->first_ms > 0 ? b->first_ms : 1;
	for (int i = 0; i < attempt && d < b->max_ms; i++)
		d *= 2;
	return d > b->max_ms ? b->max_ms : d;
}

long backoff_next(struct backoff *b)
{
	long d = backoff_cap(b, b->attempt);
	if (b->attempt < 62)
		b->attempt++;
	unsigned r = 0;
	if (rnd_bytes(&r, sizeof r) < 0)
		r = 0; /* no randomness: the longest wait of the range, still bounded */
	return d - (long)(r % (unsigned long)(d / 2 + 1));
}

void backoff_reset(struct backoff *b)
{
	b->attempt = 0;
}

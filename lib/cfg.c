#include "cfg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

const char *cfg_str(const char *name, const char *def)
{
	const char *v = getenv(name);
	return (v && *v) ? v : def;
}

int cfg_long(const char *name, long def, long min, long max, long *out, char *err, int errlen)
{
	const char *v = getenv(name);
	if (!v || !*v) {
		*out = def;
		return 0;
	}
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max) {
		snprintf(err, (size_t)errlen, "%s must be an integer from %ld to %ld (got \"%s\")",
			 name, min, max, v);
		return -1;
	}
	*out = n;
	return 0;
}

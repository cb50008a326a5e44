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

int cfg_load(const struct cfg_setting *table, size_t n, char *err, int errlen)
{
	for (size_t i = 0; i < n; i++) {
		const struct cfg_setting *s = &table[i];
		if (cfg_long(s->name, s->def, s->min, s->max, s->out, err, errlen) < 0)
			return -1;
	}
	return 0;
}

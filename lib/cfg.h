/* cfg: configuration from environment variables, read once at start and never changed
 * after. Every program describes its integer settings in one table (struct cfg_setting)
 * and reads it with cfg_load(): a value that is not an integer in range stops the program
 * with a message naming the variable, instead of being silently replaced by the default. */
#ifndef CC_CFG_H
#define CC_CFG_H

#include <stddef.h>

/* Borrowed from the environment; def when unset or empty. */
const char *cfg_str(const char *name, const char *def);
/* def when unset; a value that is not an integer in [min, max] is an error (-1, message
 * in err) so a typo in a setting stops the program instead of being silently ignored. */
int cfg_long(const char *name, long def, long min, long max, long *out, char *err, int errlen);

/* One integer setting: the variable, its default and range, where it goes. */
struct cfg_setting {
	const char *name;
	long def, min, max;
	long *out;
};

/* Reads every setting of the table; -1 with the first bad one's message in err. */
int cfg_load(const struct cfg_setting *table, size_t n, char *err, int errlen);

#endif

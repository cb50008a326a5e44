/* cfg: configuration from environment variables, read at start and never changed after. */
#ifndef CC_CFG_H
#define CC_CFG_H

/* Borrowed from the environment; def when unset or empty. */
const char *cfg_str(const char *name, const char *def);
/* def when unset; a value that is not an integer in [min, max] is an error (-1, message
 * in err) so a typo in a setting stops the program instead of being silently ignored. */
int cfg_long(const char *name, long def, long min, long max, long *out, char *err, int errlen);

#endif

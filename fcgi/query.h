/* query: reading a request's query string (docs/API.md, "Query parameters"). Pure. */
#ifndef CC_QUERY_H
#define CC_QUERY_H

#include <stddef.h>

/* Looks for the parameter `name` in query (the text after '?', pairs split at '&').
 * Every pair's name is percent-decoded before it is compared (`%XX`, either case, is the
 * byte 0xXX; `+` is a space, as in an HTML form), so `li%6Dit=5` is `limit`; a name with a
 * `%` not followed by two hex digits cannot be read, and makes the whole query -1 (*why
 * says so). Values are not decoded: *val and *vlen give the first match's value as sent
 * ("" for a pair with no `=`). *count is how many pairs are named `name`. 0 (with *count
 * 0 when absent), or -1. */
int query_find(const char *query, const char *name, const char **val, size_t *vlen, int *count,
	       const char **why);

#endif

#include "query.h"
#include "hex.h"

#include <string.h>

/* 1 when the encoded name key[0..n) decodes to name, 0 when not, -1 when it holds a
 * malformed escape. The whole key is checked even once it is known not to match, so that a
 * malformed name is refused whichever parameter is looked for. */
static int name_is(const char *key, size_t n, const char *name)
{
	size_t j = 0, nlen = strlen(name);
	int same = 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)key[i];
		if (ch == '%') {
			if (n - i < 3 || hex_digit(key[i + 1]) < 0 || hex_digit(key[i + 2]) < 0)
				return -1;
			ch = (unsigned char)(hex_digit(key[i + 1]) * 16 + hex_digit(key[i + 2]));
			i += 2;
		} else if (ch == '+') {
			ch = ' ';
		}
		if (same && (j >= nlen || (unsigned char)name[j] != ch))
			same = 0;
		j++;
	}
	return same && j == nlen;
}

int query_find(const char *query, const char *name, const char **val, size_t *vlen, int *count,
	       const char **why)
{
	*val = "";
	*vlen = 0;
	*count = 0;
	for (const char *p = query ? query : ""; *p;) {
		size_t n = strcspn(p, "&");
		size_t kn = strcspn(p, "=&");
		int is = name_is(p, kn, name);
		if (is < 0) {
			*why = "a query parameter's name holds a malformed percent escape (a % must be "
			       "followed by two hex digits)";
			return -1;
		}
		if (is && (*count)++ == 0) {
			*val = kn < n ? p + kn + 1 : p + n;
			*vlen = kn < n ? n - kn - 1 : 0;
		}
		p += n;
		if (*p == '&')
			p++;
	}
	return 0;
}

/* ai_text: see ai_text.h; the UTF-8 rules are lib/utf8.c's utf8_sanitize(). */
#include "ai_text.h"

#include "utf8.h"

char *ai_clean_text(const char *s, size_t len, size_t max, int *cut)
{
	/* NUL is a control character here: dropped, like the others */
	return utf8_sanitize(s, len, UTF8_SAN_CONTROLS, max, NULL, cut);
}

/* ai_text: text from outside the worker (a provider's answer, a checker's output) made
 * safe to store and show, pure. */
#ifndef CC_AI_TEXT_H
#define CC_AI_TEXT_H

#include <stddef.h>

/* s[0..len) as valid UTF-8 (bad bytes become U+FFFD), without control characters but
 * \n and \t (\r\n becomes \n), cut at a character boundary within max bytes; *cut (may be
 * NULL) says whether the bound lost text. Caller frees with free(); NULL when OOM. */
char *ai_clean_text(const char *s, size_t len, size_t max, int *cut);

#endif

/* What several fuzz targets share: a broken law stops the run (libFuzzer saves the input),
 * and the input read as a mode byte followed by a NUL-terminated string. */
#ifndef CC_FUZZ_H
#define CC_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                               \
	do {                                                                                   \
		if (!(c))                                                                      \
			__builtin_trap();                                                      \
	} while (0)

/* data[1..size) as a string of its own (the caller frees it); NULL for an empty input or
 * when memory runs out. data[0] is left to the caller, to choose what to do. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	if (size < 1)
		return NULL;
	char *s = malloc(size);
	if (!s)
		return NULL;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	return s;
}

#endif

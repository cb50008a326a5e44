/* What several fuzz targets share: a broken law stops the run (libFuzzer saves the input),
 * and the input read as a NUL-terminated string, whole or after a mode byte. */
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

/* The input as a string of its own (the caller frees it); NULL when memory runs out. */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return NULL;
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* data[1..size) as a string of its own (the caller frees it); NULL for an empty input or
 * when memory runs out. data[0] is left to the caller, to choose what to do. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	return size < 1 ? NULL : fuzz_str(data + 1, size - 1);
}

#endif

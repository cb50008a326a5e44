/* chunk.h: the one piece of HTTP/1.1 chunked decoding both load tools share (bench/c/opsgen.c
 * reads answers, bench/c/ssesub.c streams), header-only since each tool is one source file. */
#ifndef CC_BENCH_CHUNK_H
#define CC_BENCH_CHUNK_H

#include <stddef.h>
#include <stdint.h>

/* The hex digits that start a chunk-size line (RFC 9112 §7.1); returns how many there were.
 * Their value goes into *size, and *over is set once it passed cap, after which it stops
 * growing: no line, however long, overflows it. The caller judges what follows the digits
 * (extensions, spaces). */
static inline size_t chunk_size_hex(const char *p, size_t len, uint64_t cap, uint64_t *size,
				    int *over)
{
	uint64_t v = 0;
	size_t i = 0;
	*over = 0;
	for (; i < len; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (d < 0)
			break;
		if (!*over) {
			v = v * 16 + (uint64_t)d;
			if (v > cap)
				*over = 1;
		}
	}
	*size = v;
	return i;
}

#endif

/* buf: a growable byte buffer with a hard size bound.
 *
 * A buf owns its data; release it with buf_free(). Every append fails (returns -1) instead
 * of growing past `limit` bytes, so a caller can never be made to allocate without bound.
 * data is always NUL-terminated when non-NULL. */
#ifndef CC_BUF_H
#define CC_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t limit; /* 0 means BUF_DEFAULT_LIMIT */
};

#define BUF_DEFAULT_LIMIT ((size_t)64 * 1024 * 1024)

/* A stack buffer that a read fills before anything reads it: left out of the compiler's
 * initialisation of automatic variables (-ftrivial-auto-var-init, Makefile), which would
 * otherwise write all of it on every call, on paths as hot as a stream's reads. */
#define BUF_SCRATCH __attribute__((uninitialized))

void buf_init(struct buf *b, size_t limit);
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void buf_reset(struct buf *b);
/* Appends the whole of the file at path. 0, or -1 with errno: open's or read's, or EFBIG when
 * the file would take b past its limit (what was read stays in b; the caller frees it). */
int buf_read_file(struct buf *b, const char *path);
/* Hands the data to the caller (free() it) and leaves b empty. Never NULL unless OOM. */
char *buf_detach(struct buf *b);
void buf_free(struct buf *b);

#endif

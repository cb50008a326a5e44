/* sse: Server-Sent Events framing (HTML Living Standard, "Server-sent events", §9.2.5/§9.2.6).
 * Pure text formatting into a bounded buf; the server decides where the bytes go. */
#ifndef CC_BROKER_SSE_H
#define CC_BROKER_SSE_H

#include <stddef.h>

#include "buf.h"

/* The response head of an event stream; extra: more header lines (each ending in CRLF) or
 * NULL. */
int sse_response_head(struct buf *out, const char *extra);

/* One event: "id:", "event:", then one "data:" line per line of data (a CR, LF or CRLF in
 * data starts a new line, as the parser on the other side splits them), then a blank line.
 * id and type must hold no CR or LF (-1 otherwise). 0 or -1 (also when out is full). */
int sse_event(struct buf *out, const char *id, const char *type, const char *data, size_t len);

/* A comment line ": text\n\n" (keeps proxies and half-open detection busy). text must be a
 * single line. */
int sse_comment(struct buf *out, const char *text);

/* "retry: ms" – the reconnection delay the browser should use. */
int sse_retry(struct buf *out, long ms);

#endif

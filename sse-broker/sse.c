#include "sse.h"

#include <string.h>

int sse_response_head(struct buf *out, const char *extra)
{
	/* No length and no chunking: the stream ends when the connection does. X-Accel-Buffering
	 * tells nginx-style proxies not to hold the body; lighttpd needs
	 * server.stream-response-body = 2 on its side. */
	return buf_printf(out,
			  "HTTP/1.1 200 OK\r\n"
			  "Content-Type: text/event-stream; charset=utf-8\r\n"
			  "Cache-Control: no-cache, no-transform\r\n"
			  "X-Accel-Buffering: no\r\n"
			  "%s"
			  "Connection: close\r\n"
			  "\r\n",
			  extra ? extra : "");
}

static int one_line(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

int sse_event(struct buf *out, const char *id, const char *type, const char *data, size_t len)
{
	if ((id && !one_line(id)) || (type && !one_line(type)))
		return -1;
	size_t mark = out->len;
	if (id && buf_printf(out, "id: %s\n", id) < 0)
		goto fail;
	if (type && buf_printf(out, "event: %s\n", type) < 0)
		goto fail;
	/* every terminator ends a line, so data ending in "\n" yields a last empty data line
	 * and the receiver rebuilds exactly the same text */
	size_t i = 0;
	for (;;) {
		size_t j = i;
		while (j < len && data[j] != '\r' && data[j] != '\n')
			j++;
		if (buf_puts(out, "data: ") < 0 || buf_append(out, data + i, j - i) < 0 ||
		    buf_putc(out, '\n') < 0)
			goto fail;
		if (j >= len)
			break;
		if (data[j] == '\r' && j + 1 < len && data[j + 1] == '\n')
			j++;
		i = j + 1;
	}
	if (buf_putc(out, '\n') < 0)
		goto fail;
	return 0;
fail:
	/* leave out as it was: never a half-written event on the wire */
	out->len = mark;
	if (out->data)
		out->data[mark] = '\0';
	return -1;
}

int sse_comment(struct buf *out, const char *text)
{
	if (!one_line(text))
		return -1;
	return buf_printf(out, ": %s\n\n", text);
}

int sse_retry(struct buf *out, long ms)
{
	return buf_printf(out, "retry: %ld\n\n", ms);
}

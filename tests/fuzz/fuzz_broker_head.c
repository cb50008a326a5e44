/* fuzz_broker_head: libFuzzer target for the broker's request-head and query parsers, the
 * method of a refused head (http_head_line_is_head) and the reads of a parsed head's fields
 * (http_head_has_token, http_head_framing_error, the Host field and an absolute-form
 * target's authority) (see README.md; `make fuzz` builds and runs it, with -max_len from
 * fuzz_broker_head.options). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../sse-broker/http_head.h"

static struct http_head h, part;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum http_head_status st = http_head_parse(&h, (const char *)data, size);
	/* a refused head's method, for an answer without a body to a HEAD (server.c): read
	 * from the same bytes, never past them */
	int is_head = http_head_line_is_head((const char *)data, size);
	/* 414 is for a request line past the bound: more bytes than the bound came, and no
	 * whole request line among them, so its method is not known */
	if (st == HTTP_HEAD_URI_TOO_LONG && (size <= HTTP_HEAD_MAX || is_head))
		__builtin_trap();
	/* the server hands in at most HTTP_HEAD_READ_MAX bytes and waits for more only on
	 * HTTP_HEAD_MORE: with that many there must be a verdict, or the client would wait for
	 * the head timeout */
	if (size >= HTTP_HEAD_READ_MAX &&
	    http_head_parse(&part, (const char *)data, HTTP_HEAD_READ_MAX) == HTTP_HEAD_MORE)
		__builtin_trap();
	if (st != HTTP_HEAD_OK)
		return 0;
	/* a head taken was not refused early: the bytes before its last one (a read that ended
	 * there) wait for more */
	if (http_head_parse(&part, (const char *)data, h.head_len - 1) != HTTP_HEAD_MORE)
		__builtin_trap();
	/* the path is a path, whatever the target's form; an authority is a host[:port] */
	if (h.path[0] != '/')
		__builtin_trap();
	if (h.authority && (!*h.authority || strpbrk(h.authority, "@/?# ")))
		__builtin_trap();
	/* a head that parses names HEAD exactly when its request line does */
	if (is_head != (strcmp(h.method, "HEAD") == 0))
		__builtin_trap();
	/* what the server reads from a parsed head */
	if (h.head_len > size)
		__builtin_trap();
	char v[4097];
	http_query_get(h.query, "ticket", v, sizeof v);
	http_query_get(h.query, "last_event_id", v, sizeof v);
	const char *c = http_head_get(&h, "Connection");
	/* every Connection line is read: the first line's token is among them */
	if (c && http_list_has(c, "upgrade") && !http_head_has_token(&h, "Connection", "upgrade"))
		__builtin_trap();
	const char *why = http_head_framing_error(&h);
	if (why && !*why)
		__builtin_trap();
	/* HTTP/1.1 taken only with a Host, whatever the target; never with two */
	if (!why && ((h.minor == 1 && !http_head_get(&h, "Host")) ||
		     http_head_count(&h, "Host") > 1))
		__builtin_trap();
	/* a head taken has no line ending in LF alone */
	for (size_t i = 0; i < h.head_len; i++)
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			__builtin_trap();
	for (size_t i = 0; i < h.nheaders; i++)
		if (strlen(h.headers[i].name) == 0)
			__builtin_trap();
	return 0;
}

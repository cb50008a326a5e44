/* SSE framing: ids, types, multi-line data, comments, bounds. */
#include "../../sse-broker/sse.h"
#include "unit.h"

int main(void)
{
	struct buf b;
	buf_init(&b, 0);
	CHECK(sse_event(&b, "1-0", "operation", "{\"a\":1}", 7) == 0);
	CHECK_STR(b.data, "id: 1-0\nevent: operation\ndata: {\"a\":1}\n\n");

	buf_reset(&b);
	CHECK(sse_event(&b, "2-0", "x", "a\nb\r\nc\rd", 8) == 0);
	CHECK_STR(b.data, "id: 2-0\nevent: x\ndata: a\ndata: b\ndata: c\ndata: d\n\n");

	/* a trailing newline survives as a last empty data line */
	buf_reset(&b);
	CHECK(sse_event(&b, NULL, NULL, "a\n", 2) == 0);
	CHECK_STR(b.data, "data: a\ndata: \n\n");

	buf_reset(&b);
	CHECK(sse_event(&b, NULL, "t", "", 0) == 0);
	CHECK_STR(b.data, "event: t\ndata: \n\n");

	/* ids and types are single lines */
	buf_reset(&b);
	CHECK(sse_event(&b, "1\n2", "t", "x", 1) == -1);
	CHECK(sse_event(&b, "1", "t\r", "x", 1) == -1);
	CHECK(b.len == 0);

	buf_reset(&b);
	CHECK(sse_comment(&b, "ping") == 0);
	CHECK_STR(b.data, ": ping\n\n");
	CHECK(sse_comment(&b, "a\nb") == -1);
	buf_reset(&b);
	CHECK(sse_retry(&b, 3000) == 0);
	CHECK_STR(b.data, "retry: 3000\n\n");
	buf_reset(&b);
	CHECK(sse_response_head(&b, NULL) == 0);
	CHECK(strstr(b.data, "Content-Type: text/event-stream") != NULL);
	CHECK(strstr(b.data, "\r\n\r\n") == b.data + b.len - 4);
	/* more header lines go inside the head, before its end */
	buf_reset(&b);
	CHECK(sse_response_head(&b, "A: 1\r\nB: 2\r\n") == 0);
	CHECK(strstr(b.data, "\r\nA: 1\r\nB: 2\r\n") != NULL);
	CHECK(strstr(b.data, "\r\n\r\n") == b.data + b.len - 4);
	buf_free(&b);

	/* at the bound nothing half-written stays behind */
	struct buf small;
	buf_init(&small, 40);
	CHECK(sse_event(&small, "1-0", "t", "0123456789012345678901234567890123456789", 40) == -1);
	CHECK(small.len == 0);
	CHECK(sse_event(&small, "1-0", "t", "abc", 3) == 0);
	buf_free(&small);
	return unit_summary("test_broker_sse");
}

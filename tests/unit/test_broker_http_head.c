/* The broker's request-head and query-string parsers, with malformed and hostile input. */
#include <stdlib.h>
#include <string.h>

#include "../../sse-broker/http_head.h"
#include "unit.h"

static struct http_head h;

static enum http_head_status parse(const char *s)
{
	return http_head_parse(&h, s, strlen(s));
}

static void test_valid(void)
{
	const char *req = "GET /events/rooms/abc?ticket=x%2By&last_event_id=1-2 HTTP/1.1\r\n"
			  "Host: example\r\n"
			  "Last-Event-ID:  5-0 \r\n"
			  "Connection: keep-alive, Upgrade\r\n"
			  "\r\nleftover";
	CHECK(parse(req) == HTTP_HEAD_OK);
	CHECK_STR(h.method, "GET");
	CHECK_STR(h.path, "/events/rooms/abc");
	CHECK_STR(h.query, "ticket=x%2By&last_event_id=1-2");
	CHECK(h.minor == 1);
	CHECK(h.nheaders == 3);
	CHECK_STR(http_head_get(&h, "last-event-id"), "5-0");
	CHECK_STR(http_head_get(&h, "HOST"), "example");
	CHECK(http_head_get(&h, "Cookie") == NULL);
	CHECK(h.head_len == strlen(req) - strlen("leftover"));
	CHECK(http_list_has(http_head_get(&h, "Connection"), "upgrade"));
	CHECK(!http_list_has(http_head_get(&h, "Connection"), "close"));

	CHECK(parse("GET / HTTP/1.0\r\n\r\n") == HTTP_HEAD_OK);
	CHECK(h.minor == 0);
	CHECK_STR(h.query, "");
	/* leading empty lines are tolerated (RFC 9112 §2.2) */
	CHECK(parse("\r\nGET /x HTTP/1.1\r\n\r\n") == HTTP_HEAD_OK);
	CHECK_STR(h.path, "/x");
	/* empty header value */
	CHECK(parse("GET /x HTTP/1.1\r\nX-Empty:\r\n\r\n") == HTTP_HEAD_OK);
	CHECK_STR(http_head_get(&h, "x-empty"), "");
}

static void test_incomplete(void)
{
	CHECK(parse("") == HTTP_HEAD_MORE);
	CHECK(parse("GET / HTTP/1.1\r\n") == HTTP_HEAD_MORE);
	CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\n\r") == HTTP_HEAD_MORE);
}

static void test_malformed(void)
{
	CHECK(parse("\r\n\r\n") == HTTP_HEAD_MORE); /* empty lines skipped, then nothing yet */
	CHECK(parse("\r\n\r\n\r\n\r\n\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET /\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET / HTTP/2.0\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET / HTTP/1.1 \r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET http://x/ HTTP/1.1\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET  / HTTP/1.1\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("G(T / HTTP/1.1\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET /a b HTTP/1.1\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET / HTTP/1.1\r\n: empty-name\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET / HTTP/1.1\r\nBad Name: v\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET / HTTP/1.1\r\nA: b\nC: d\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET / HTTP/1.1\r\nA: \x7f\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET /\x01 HTTP/1.1\r\n\r\n") == HTTP_HEAD_BAD);
}

static void test_hostile(void)
{
	/* NULs inside a line */
	static const char nul_req[] = "GET /a\0b HTTP/1.1\r\n\r\n";
	CHECK(http_head_parse(&h, nul_req, sizeof nul_req - 1) == HTTP_HEAD_BAD);
	static const char nul_hdr[] = "GET / HTTP/1.1\r\nA: x\0y\r\n\r\n";
	CHECK(http_head_parse(&h, nul_hdr, sizeof nul_hdr - 1) == HTTP_HEAD_BAD);

	/* a head over the bound, complete or not */
	size_t n = HTTP_HEAD_MAX + 100;
	char *big = malloc(n + 8);
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	memset(big + 19, 'a', n - 19);
	CHECK(http_head_parse(&h, big, n) == HTTP_HEAD_TOO_LARGE);
	memcpy(big + n, "\r\n\r\n", 4);
	CHECK(http_head_parse(&h, big, n + 4) == HTTP_HEAD_TOO_LARGE);
	/* just under the bound is fine */
	size_t m = HTTP_HEAD_MAX - 4;
	memset(big + 19, 'a', m - 19);
	memcpy(big + m - 2, "\r\n\r\n", 4);
	CHECK(http_head_parse(&h, big, m + 2) == HTTP_HEAD_OK);
	free(big);

	/* RFC 9110 §15.5.15: a request line that alone is over the bound (its CRLF does not
	 * fit in HTTP_HEAD_MAX bytes) is a target too long, 414, not a head too large, 431:
	 * whole or not, with or without fields after it; a line that fits leaves 431 to the
	 * fields that go past the bound */
	big = malloc(2 * HTTP_HEAD_MAX + 64);
	CHECK(big != NULL);
	if (big) {
		for (size_t line = HTTP_HEAD_MAX - 4; line <= HTTP_HEAD_MAX + 2; line++) {
			/* "GET /aaa…a HTTP/1.1" of line bytes, then CRLF */
			memcpy(big, "GET /", 5);
			memset(big + 5, 'a', line - 5 - 9);
			memcpy(big + line - 9, " HTTP/1.1\r\n", 11);
			size_t at = line + 2;
			enum http_head_status whole, with_field, cut;
			memcpy(big + at, "\r\n", 2);
			whole = http_head_parse(&h, big, at + 2);
			memcpy(big + at, "Host: x\r\n\r\n", 11);
			with_field = http_head_parse(&h, big, at + 11);
			/* only the line's first bytes are here, more than the bound */
			cut = line > HTTP_HEAD_MAX ? http_head_parse(&h, big, HTTP_HEAD_MAX + 1)
						   : HTTP_HEAD_MORE;
			if (line + 2 <= HTTP_HEAD_MAX) {
				CHECK(whole == HTTP_HEAD_OK);
				/* the line fits, the field does not: 431 */
				CHECK(with_field == HTTP_HEAD_TOO_LARGE);
			} else {
				CHECK(whole == HTTP_HEAD_URI_TOO_LONG);
				CHECK(with_field == HTTP_HEAD_URI_TOO_LONG);
				if (line > HTTP_HEAD_MAX)
					CHECK(cut == HTTP_HEAD_URI_TOO_LONG);
			}
		}
		/* a line far over the bound, with nothing after it yet */
		memcpy(big, "GET /", 5);
		memset(big + 5, 'b', 2 * HTTP_HEAD_MAX);
		CHECK(http_head_parse(&h, big, HTTP_HEAD_MAX + 4) == HTTP_HEAD_URI_TOO_LONG);
		CHECK(http_head_parse(&h, big, 2 * HTTP_HEAD_MAX) == HTTP_HEAD_URI_TOO_LONG);
		/* under the bound, it waits for more */
		CHECK(http_head_parse(&h, big, HTTP_HEAD_MAX) == HTTP_HEAD_MORE);
		/* empty lines before the request line do not count towards it */
		memcpy(big, "\r\n\r\nGET /", 9);
		CHECK(http_head_parse(&h, big, HTTP_HEAD_MAX + 4) == HTTP_HEAD_URI_TOO_LONG);
		free(big);
	}

	/* too many fields */
	char many[HTTP_HEAD_MAX];
	size_t o = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
	for (int i = 0; i <= HTTP_HEADERS_MAX; i++)
		o += (size_t)snprintf(many + o, sizeof many - o, "H%d: v\r\n", i);
	o += (size_t)snprintf(many + o, sizeof many - o, "\r\n");
	CHECK(http_head_parse(&h, many, o) == HTTP_HEAD_TOO_LARGE);
}

/* RFC 9112 §2.2: lines end in CRLF. A head of LF-only lines never shows CRLF CRLF, so it is
 * refused as soon as a bare LF is seen, with a reason, instead of waiting for more. */
static void test_bare_lf(void)
{
	CHECK(parse("GET /events/health HTTP/1.1\nHost: x\n\n") == HTTP_HEAD_BAD);
	CHECK(h.why != NULL && strstr(h.why, "CRLF") != NULL);
	/* at once, before the head could be whole */
	CHECK(parse("GET /events/health HTTP/1.1\n") == HTTP_HEAD_BAD);
	CHECK(parse("GET / HTTP/1.1\r\nHost: x\n") == HTTP_HEAD_BAD);
	CHECK(parse("\nGET / HTTP/1.1\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("\r\n\nGET / HTTP/1.1\r\n\r\n") == HTTP_HEAD_BAD);
	/* the end of the head in LF alone, the lines before it in CRLF */
	CHECK(parse("GET / HTTP/1.1\r\nHost: x\r\n\n") == HTTP_HEAD_BAD);
	/* inside an otherwise CRLF head, as before */
	CHECK(parse("GET / HTTP/1.1\r\nA: b\nC: d\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(h.why != NULL);
	/* what follows a whole head is not the head's: a body or frames may hold any LF */
	CHECK(parse("GET / HTTP/1.1\r\nHost: x\r\n\r\nline\nline\n\n") == HTTP_HEAD_OK);
	CHECK(h.why == NULL);
	CHECK(h.head_len == strlen("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
	/* a CRLF head not yet whole still waits; other refusals give no reason */
	CHECK(parse("GET / HTTP/1.1\r\nHost: x\r\n") == HTTP_HEAD_MORE);
	CHECK(parse("GET / HTTP/1.1\r\nBad Name: v\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(h.why == NULL);
}

/* RFC 9110 §5.3: field lines of one name are one comma-separated list. */
static void test_repeated_fields(void)
{
	CHECK(parse("GET / HTTP/1.1\r\nConnection: keep-alive\r\nHost: x\r\n"
		    "connection: Upgrade\r\nUpgrade: foo\r\nUpgrade: bar, WebSocket\r\n\r\n") ==
	      HTTP_HEAD_OK);
	CHECK(http_head_has_token(&h, "Connection", "upgrade"));
	CHECK(http_head_has_token(&h, "connection", "keep-alive"));
	CHECK(http_head_has_token(&h, "Upgrade", "websocket"));
	CHECK(!http_head_has_token(&h, "Connection", "close"));
	CHECK(!http_head_has_token(&h, "Cookie", "x"));
	/* whole list items only */
	CHECK(!http_head_has_token(&h, "Upgrade", "web"));
	CHECK(http_head_count(&h, "CONNECTION") == 2);
	CHECK(http_head_count(&h, "Upgrade") == 2);
	CHECK(http_head_count(&h, "Host") == 1);
	CHECK(http_head_count(&h, "Cookie") == 0);
	/* the first line alone, as http_head_get() reads it, would miss it */
	CHECK(!http_list_has(http_head_get(&h, "Connection"), "upgrade"));
}

/* A head whose end could be read two ways (RFC 9112 §6.3, §11.2): the broker reads no body. */
static void test_framing(void)
{
	static const struct {
		const char *fields;
		int ok;
	} cases[] = {
		{"Host: x\r\n", 1},
		{"", 1}, /* no Host: taken, as before */
		{"Host: x\r\nContent-Length: 0\r\n", 1},
		{"Host: x\r\nContent-Length: 40\r\n", 1}, /* one length: not kept (preflight) */
		{"Host: x\r\nContent-Length: 0\r\nContent-Length: 40\r\n", 0},
		{"Host: x\r\nContent-Length: 0\r\ncontent-length: 0\r\n", 0},
		{"Host: x\r\nContent-Length: 0, 40\r\n", 0},
		{"Host: x\r\nContent-Length: -1\r\n", 0},
		{"Host: x\r\nContent-Length: +5\r\n", 0},
		{"Host: x\r\nContent-Length:\r\n", 0},
		{"Host: x\r\nTransfer-Encoding: chunked\r\n", 0},
		{"Host: x\r\ntransfer-encoding: identity\r\nContent-Length: 0\r\n", 0},
		{"Host: x\r\nHost: y\r\n", 0},
		{"Host: x\r\nhost: x\r\n", 0},
	};
	char req[256];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(req, sizeof req, "OPTIONS /events/rooms/a HTTP/1.1\r\n%s\r\n",
			 cases[i].fields);
		CHECK(parse(req) == HTTP_HEAD_OK);
		const char *why = http_head_framing_error(&h);
		CHECK(cases[i].ok ? why == NULL : why != NULL && *why != '\0');
	}
}

static void test_query(void)
{
	char out[32];
	CHECK(http_query_get("a=1&ticket=x%2By+z&b", "ticket", out, sizeof out) == 1);
	CHECK_STR(out, "x+y z");
	CHECK(http_query_get("a=1&b", "b", out, sizeof out) == 1);
	CHECK_STR(out, "");
	CHECK(http_query_get("a=1", "ticket", out, sizeof out) == 0);
	CHECK(http_query_get("", "a", out, sizeof out) == 0);
	CHECK(http_query_get("ti%63ket=ok", "ticket", out, sizeof out) == 1);
	CHECK_STR(out, "ok");
	CHECK(http_query_get("a=1&a=2", "a", out, sizeof out) == 1);
	CHECK_STR(out, "1");
	/* bad escapes */
	CHECK(http_query_get("a=%", "a", out, sizeof out) == -1);
	CHECK(http_query_get("a=%4", "a", out, sizeof out) == -1);
	CHECK(http_query_get("a=%zz", "a", out, sizeof out) == -1);
	CHECK(http_query_get("a=%00", "a", out, sizeof out) == -1);
	/* too long for out */
	CHECK(http_query_get("a=0123456789012345678901234567890123456789", "a", out, sizeof out) == -1);
	char d[8];
	CHECK(http_percent_decode("%41%62c", 7, d, sizeof d, 0) == 3);
	CHECK_STR(d, "Abc");
	CHECK(http_percent_decode("a+b", 3, d, sizeof d, 0) == 3);
	CHECK_STR(d, "a+b");
}

static int line_is_head(const char *s)
{
	return http_head_line_is_head(s, strlen(s));
}

/* The method of a refused head, for an answer without a body to a HEAD: known only when the
 * request line was read whole and parses. */
static void test_refused_head(void)
{
	CHECK(line_is_head("HEAD /events/health HTTP/1.1\r\nBad Name: v\r\n\r\n"));
	CHECK(line_is_head("\r\nHEAD / HTTP/1.0\r\nX: ")); /* the rest never came */
	CHECK(!line_is_head("GET /events/health HTTP/1.1\r\nBad Name: v\r\n\r\n"));
	CHECK(!line_is_head("head / HTTP/1.1\r\n\r\n")); /* methods are case-sensitive */
	CHECK(!line_is_head("HEAD / HTTP/1.1")); /* not a whole line yet */
	CHECK(!line_is_head("HEAD / HTTP/2.0\r\n\r\n"));
	CHECK(!line_is_head("HEAD /a b HTTP/1.1\r\n\r\n"));
	CHECK(!line_is_head("HEAD / HTTP/1.1\rX\r\n\r\n"));
	CHECK(!line_is_head(""));
	CHECK(!line_is_head("\r\n\r\n\r\n\r\n\r\nHEAD / HTTP/1.1\r\n")); /* past the skipped lines */
	static const char nul[] = "HEAD /a\0b HTTP/1.1\r\n\r\n";
	CHECK(!http_head_line_is_head(nul, sizeof nul - 1));
	/* a head over the bound whose request line came whole, and one whose line never ends */
	size_t n = HTTP_HEAD_MAX + 100;
	char *big = malloc(n);
	CHECK(big != NULL);
	if (!big)
		return;
	memcpy(big, "HEAD / HTTP/1.1\r\nX: ", 20);
	memset(big + 20, 'a', n - 20);
	CHECK(http_head_parse(&h, big, n) == HTTP_HEAD_TOO_LARGE);
	CHECK(http_head_line_is_head(big, n));
	memcpy(big, "HEAD /", 6);
	memset(big + 6, 'a', n - 6);
	CHECK(!http_head_line_is_head(big, n));
	free(big);
}

int main(void)
{
	test_valid();
	test_incomplete();
	test_malformed();
	test_hostile();
	test_bare_lf();
	test_repeated_fields();
	test_framing();
	test_query();
	test_refused_head();
	return unit_summary("test_broker_http_head");
}

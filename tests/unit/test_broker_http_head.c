/* The broker's request-head and query-string parsers, with malformed and hostile input. */
#include <stdio.h>
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
	CHECK(parse("GET ftp://x/ HTTP/1.1\r\n\r\n") == HTTP_HEAD_BAD);
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
		CHECK(http_head_parse(&h, big, HTTP_HEAD_MAX + 4) == HTTP_HEAD_MORE);
		CHECK(http_head_parse(&h, big, HTTP_HEAD_MAX + 5) == HTTP_HEAD_URI_TOO_LONG);
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
		{"", 0}, /* no Host over HTTP/1.1 (test_host has the rest) */
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

/* RFC 9112 §3.2.2: an absolute-form target ("http://host/path") is taken; its authority is
 * the host, and what follows it the path. */
static void test_absolute_form(void)
{
	CHECK(parse("GET http://example.com:8080/events/health?x=1 HTTP/1.1\r\n\r\n") ==
	      HTTP_HEAD_OK);
	CHECK_STR(h.method, "GET");
	CHECK_STR(h.authority, "example.com:8080");
	CHECK_STR(h.path, "/events/health");
	CHECK_STR(h.query, "x=1");
	CHECK(h.minor == 1);
	/* the target split into authority, path and query: the scheme in any case, https too;
	 * no path is "/", and a query right after the authority is the query of "/"; IP
	 * literals, an empty port */
	static const struct {
		const char *req, *authority, *path, *query;
	} split[] = {
		{"HEAD HTTPS://Example.COM/events/rooms/a/poll HTTP/1.0\r\nHost: x\r\n\r\n",
		 "Example.COM", "/events/rooms/a/poll", ""},
		{"GET hTtP://x/ HTTP/1.1\r\n\r\n", "x", "/", ""},
		{"GET http://x HTTP/1.1\r\n\r\n", "x", "/", ""},
		{"GET http://x:8081?a=1&b=/c HTTP/1.1\r\n\r\n", "x:8081", "/", "a=1&b=/c"},
		{"GET http://x/a?b?c HTTP/1.1\r\n\r\n", "x", "/a", "b?c"},
		{"GET http://[::1]:8081/events/health HTTP/1.1\r\n\r\n", "[::1]:8081",
		 "/events/health", ""},
		{"GET http://127.0.0.1:/p HTTP/1.1\r\n\r\n", "127.0.0.1:", "/p", ""},
	};
	for (size_t i = 0; i < sizeof split / sizeof split[0]; i++) {
		CHECK(parse(split[i].req) == HTTP_HEAD_OK);
		CHECK_STR(h.authority, split[i].authority);
		CHECK_STR(h.path, split[i].path);
		CHECK_STR(h.query, split[i].query);
	}
	/* the fields that follow are read as usual */
	CHECK(parse("GET http://x/p HTTP/1.1\r\nHost: y\r\nA: b\r\n\r\n") == HTTP_HEAD_OK);
	CHECK(h.nheaders == 2);
	CHECK_STR(http_head_get(&h, "a"), "b");
	/* origin-form has none */
	CHECK(parse("GET /p HTTP/1.1\r\nHost: y\r\n\r\n") == HTTP_HEAD_OK);
	CHECK(h.authority == NULL);

	/* refused, each with a reason for the 400 */
	static const char *const bad[] = {
		"GET ftp://x/ HTTP/1.1",	/* another scheme */
		"GET ws://x/ HTTP/1.1",
		"GET httpx://x/ HTTP/1.1",
		"GET http:/x/ HTTP/1.1",
		"GET http:x HTTP/1.1",
		"GET x/y HTTP/1.1",
		"GET example.com:80 HTTP/1.1", /* authority-form is CONNECT's */
		"GET http:// HTTP/1.1",		/* no authority */
		"GET http:///events/health HTTP/1.1",
		"GET https://?a=1 HTTP/1.1",
		"GET http://u@x/ HTTP/1.1", /* user information */
		"GET http://u:p@x:80/ HTTP/1.1",
		"GET http://@x/ HTTP/1.1",
		"GET http://x:8o/ HTTP/1.1", /* a port that is no number */
		"GET http://x:80:80/ HTTP/1.1",
		"GET http://:80/ HTTP/1.1", /* a port without a host */
		"GET http://[::1/ HTTP/1.1", /* IP literals */
		"GET http://[]/ HTTP/1.1",
		"GET http://[::1]x/ HTTP/1.1",
		"GET http://[v1.x]/ HTTP/1.1",
		"GET http://a%2/ HTTP/1.1", /* a broken escape */
		"GET http://a%zz/ HTTP/1.1",
		"GET http://a#b/ HTTP/1.1", /* a fragment, anywhere */
		"GET http://a/#b HTTP/1.1",
		"GET /events/health#x HTTP/1.1",
		"GET /events/health?a=1#x HTTP/1.1",
		"GET /# HTTP/1.1",
		"GET http://[1]/ HTTP/1.1", /* no IPv6 address */
		"GET http://[::1%25lo]/ HTTP/1.1",
		"GET http://a\"b/ HTTP/1.1",
		"OPTIONS * HTTP/1.1", /* the asterisk-form */
	};
	char req[128];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(req, sizeof req, "%s\r\nHost: x\r\n\r\n", bad[i]);
		CHECK(parse(req) == HTTP_HEAD_BAD);
		CHECK(h.why != NULL);
	}
	CHECK(parse("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(h.why != NULL && strstr(h.why, "asterisk") != NULL);
	CHECK(parse("GET http://u@x/ HTTP/1.1\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(h.why != NULL && strstr(h.why, "user") != NULL);
	CHECK(parse("GET http://x#y HTTP/1.1\r\nHost: x\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(h.why != NULL && strstr(h.why, "fragment") != NULL);
	CHECK(parse("GET /p?q#y HTTP/1.1\r\nHost: x\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(h.why != NULL && strstr(h.why, "fragment") != NULL);
	/* an IPv6 address with an IPv4 tail, the longest form inet_pton reads */
	CHECK(parse("GET http://[0000:0000:0000:0000:0000:ffff:255.255.255.255]:8/p "
		    "HTTP/1.1\r\nHost: x\r\n\r\n") == HTTP_HEAD_OK);
	CHECK_STR(h.authority, "[0000:0000:0000:0000:0000:ffff:255.255.255.255]:8");
	/* a well-formed host with more behind it is still one target: it cannot hide a space */
	CHECK(parse("GET http://x /p HTTP/1.1\r\n\r\n") == HTTP_HEAD_BAD);
	/* the method of a refused head is known from an absolute-form line too */
	static const char abs_head[] =
		"HEAD http://x/events/health HTTP/1.1\r\nBad Name: v\r\n\r\n";
	CHECK(http_head_line_is_head(abs_head, sizeof abs_head - 1));
	static const char ftp_head[] = "HEAD ftp://x/ HTTP/1.1\r\n\r\n";
	CHECK(!http_head_line_is_head(ftp_head, sizeof ftp_head - 1));

	/* the request line's bound is the same: the scheme and authority count */
	char *big = malloc(HTTP_HEAD_MAX + 16);
	CHECK(big != NULL);
	if (!big)
		return;
	for (size_t line = HTTP_HEAD_MAX - 2; line <= HTTP_HEAD_MAX - 1; line++) {
		static const char pre[] = "GET http://example.com:8081/events/health?x=";
		memcpy(big, pre, sizeof pre - 1);
		memset(big + sizeof pre - 1, 'a', line - (sizeof pre - 1) - 9);
		memcpy(big + line - 9, " HTTP/1.1\r\n\r\n", 13);
		enum http_head_status st = http_head_parse(&h, big, line + 4);
		if (line == HTTP_HEAD_MAX - 2) {
			CHECK(st == HTTP_HEAD_OK);
			CHECK_STR(h.authority, "example.com:8081");
			CHECK_STR(h.path, "/events/health");
			CHECK(h.query && strlen(h.query) == line - (sizeof pre - 1) - 9 + 2);
			/* parsed whole; as HTTP/1.1 with no room left for a Host, it is then refused */
			CHECK_STR(http_head_framing_error(&h),
				  "an HTTP/1.1 request must carry a Host field");
		} else {
			CHECK(st == HTTP_HEAD_URI_TOO_LONG);
		}
	}
	free(big);
}

/* RFC 9112 §3.2: the Host field. One at most, a valid host[:port] or empty, and present in
 * every HTTP/1.1 request (with an absolute-form target, the target's authority counts, but the
 * field must still be sent). */
static void test_host(void)
{
	static const struct {
		const char *line;
		const char *fields;
		int ok;
	} cases[] = {
		/* missing: refused over HTTP/1.1, whatever the target's form */
		{"GET /events/health HTTP/1.1", "", 0},
		{"GET /events/health HTTP/1.1", "X-Host: a\r\n", 0},
		{"GET /events/health HTTP/1.0", "", 1},
		{"GET http://a/events/health HTTP/1.1", "", 0},
		{"GET http://a/events/health HTTP/1.0", "", 1},
		/* empty: valid (a target without an authority may send it) */
		{"GET /events/health HTTP/1.1", "Host:\r\n", 1},
		{"GET /events/health HTTP/1.1", "Host:   \r\n", 1},
		{"GET /events/health HTTP/1.0", "Host:\r\n", 1},
		/* valid values */
		{"GET / HTTP/1.1", "Host: example.com\r\n", 1},
		{"GET / HTTP/1.1", "host: EXAMPLE.com:8080\r\n", 1},
		{"GET / HTTP/1.1", "Host: 127.0.0.1:8081\r\n", 1},
		{"GET / HTTP/1.1", "Host: [::1]:8081\r\n", 1},
		{"GET / HTTP/1.1", "Host: [2001:db8::ffff:1.2.3.4]\r\n", 1},
		{"GET / HTTP/1.1", "Host: my_host.local\r\n", 1},
		{"GET / HTTP/1.1", "Host: a%41b\r\n", 1},
		{"GET / HTTP/1.1", "Host: a:\r\n", 1},
		{"GET / HTTP/1.1", "Host: \t localhost:80 \r\n", 1},
		/* more than one, whatever the version or target */
		{"GET / HTTP/1.1", "Host: a\r\nHost: a\r\n", 0},
		{"GET / HTTP/1.0", "Host: a\r\nhost: b\r\n", 0},
		{"GET / HTTP/1.1", "Host:\r\nHost: a\r\n", 0},
		{"GET http://a/ HTTP/1.1", "Host: a\r\nHost: b\r\n", 0},
		/* invalid values, over 1.0 and 1.1 and with either target */
		{"GET / HTTP/1.1", "Host: a b\r\n", 0},
		{"GET / HTTP/1.1", "Host: a\tb\r\n", 0},
		{"GET / HTTP/1.1", "Host: a/b\r\n", 0},
		{"GET / HTTP/1.1", "Host: a/\r\n", 0},
		{"GET / HTTP/1.1", "Host: u@a\r\n", 0},
		{"GET / HTTP/1.1", "Host: a?b\r\n", 0},
		{"GET / HTTP/1.1", "Host: a#b\r\n", 0},
		{"GET / HTTP/1.1", "Host: http://a\r\n", 0},
		{"GET / HTTP/1.1", "Host: a:8o\r\n", 0},
		{"GET / HTTP/1.1", "Host: a:-1\r\n", 0},
		{"GET / HTTP/1.1", "Host: a:80:80\r\n", 0},
		{"GET / HTTP/1.1", "Host: :80\r\n", 0},
		{"GET / HTTP/1.1", "Host: [::1\r\n", 0},
		{"GET / HTTP/1.1", "Host: []\r\n", 0},
		{"GET / HTTP/1.1", "Host: [::1]x\r\n", 0},
		{"GET / HTTP/1.1", "Host: [::g]\r\n", 0},
		{"GET / HTTP/1.1", "Host: [1]\r\n", 0}, /* brackets around what is no IPv6 address */
		{"GET / HTTP/1.1", "Host: [1:2]:80\r\n", 0},
		{"GET / HTTP/1.1", "Host: [1.2.3.4]\r\n", 0},
		{"GET / HTTP/1.1", "Host: [:::1]\r\n", 0},
		{"GET / HTTP/1.1", "Host: [1::2::3]\r\n", 0},
		{"GET / HTTP/1.1", "Host: [::1]]\r\n", 0},
		{"GET / HTTP/1.1", "Host: [[::1]]\r\n", 0},
		{"GET / HTTP/1.1", "Host: [fe80::1%25eth0]\r\n", 0}, /* a zone id */
		{"GET / HTTP/1.1",
		 "Host: [0000:0000:0000:0000:0000:ffff:255.255.255.255:1]\r\n", 0}, /* too long */
		{"GET / HTTP/1.1", "Host: [0000:0000:0000:0000:0000:ffff:255.255.255.255]:1\r\n", 1},
		{"GET / HTTP/1.1", "Host: [fe80::1]\r\n", 1},
		{"GET / HTTP/1.1", "Host: [::]:0\r\n", 1},
		{"GET / HTTP/1.1", "Host: a%2\r\n", 0},
		{"GET / HTTP/1.1", "Host: a,b\r\nHost: c\r\n", 0}, /* two Host lines (a,b alone is a reg-name) */
		{"GET / HTTP/1.1", "Host: \"a\"\r\n", 0},
		{"GET / HTTP/1.1", "Host: \xc3\xa9.example\r\n", 0},
		{"GET / HTTP/1.0", "Host: a b\r\n", 0},
		{"GET / HTTP/1.0", "Host: u@a\r\n", 0},
		{"GET http://a/ HTTP/1.1", "Host: a b\r\n", 0},
		/* an absolute-form target with a Host of its own: the target's authority counts */
		{"GET http://a:1/events/health HTTP/1.1", "Host: b:2\r\n", 1},
	};
	char req[256];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(req, sizeof req, "%s\r\n%s\r\n", cases[i].line, cases[i].fields);
		CHECK(parse(req) == HTTP_HEAD_OK);
		const char *why = http_head_framing_error(&h);
		if (cases[i].ok ? why != NULL : why == NULL || strstr(why, "Host") == NULL)
			fprintf(stderr, "  case %zu: %s / %s: %s\n", i, cases[i].line,
				cases[i].fields, why ? why : "(taken)");
		CHECK(cases[i].ok ? why == NULL : why != NULL && strstr(why, "Host") != NULL);
	}
	/* the message names what is missing */
	CHECK(parse("GET /events/health HTTP/1.1\r\n\r\n") == HTTP_HEAD_OK);
	CHECK_STR(http_head_framing_error(&h), "an HTTP/1.1 request must carry a Host field");
	/* with an absolute-form target, the target's host is the one */
	CHECK(parse("GET http://a:1/events/health HTTP/1.1\r\nHost: b:2\r\n\r\n") == HTTP_HEAD_OK);
	CHECK_STR(h.authority, "a:1");
	CHECK_STR(h.path, "/events/health");
}

/* RFC 9112 §2.2: up to HTTP_HEAD_LEADING_MAX bytes of empty lines before the request line are
 * skipped, and count neither towards the bound nor against the bytes a server hands in. */
static void test_leading_lines(void)
{
	CHECK(HTTP_HEAD_LEADING_MAX == 8);
	size_t cap = 2 * HTTP_HEAD_MAX;
	char *big = malloc(cap);
	CHECK(big != NULL);
	if (!big)
		return;
	for (size_t line = HTTP_HEAD_MAX - 2; line <= HTTP_HEAD_MAX - 1; line++) {
		/* 4 empty lines, "GET /events/health?x=dd…d HTTP/1.1" of line bytes, CRLF CRLF */
		static const char pre[] = "\r\n\r\n\r\n\r\nGET /events/health?x=";
		memcpy(big, pre, sizeof pre - 1);
		size_t at = HTTP_HEAD_LEADING_MAX + line - 9;
		memset(big + sizeof pre - 1, 'd', at - (sizeof pre - 1));
		memcpy(big + at, " HTTP/1.1\r\n\r\n", 13);
		size_t total = at + 13;
		/* what the server hands in: at most HTTP_HEAD_READ_MAX bytes, here all of them */
		size_t take = total < HTTP_HEAD_READ_MAX ? total : HTTP_HEAD_READ_MAX;
		enum http_head_status st = http_head_parse(&h, big, take);
		if (line == HTTP_HEAD_MAX - 2) {
			/* the longest request line taken */
			CHECK(take == total);
			CHECK(st == HTTP_HEAD_OK);
			CHECK(h.head_len == total);
			CHECK_STR(h.path, "/events/health");
			CHECK(h.query && strlen(h.query) ==
					     line - strlen("GET /events/health?x= HTTP/1.1") + 2);
			/* and every part of it, as reads may split it, waits for the rest: no
			 * early 414 (the empty lines) nor 431 (a head ending 2 bytes past the
			 * bound) */
			size_t early = 0;
			for (size_t n = 0; n < total; n++)
				if (http_head_parse(&h, big, n) != HTTP_HEAD_MORE)
					early++;
			CHECK(early == 0);
		} else {
			CHECK(st == HTTP_HEAD_URI_TOO_LONG);
		}
		/* the same line, and a field that takes the head past the bound: 431 */
		memcpy(big + at, " HTTP/1.1\r\nHost: x\r\n\r\n", 22);
		total = at + 22;
		take = total < HTTP_HEAD_READ_MAX ? total : HTTP_HEAD_READ_MAX;
		st = http_head_parse(&h, big, take);
		CHECK(st ==
		      (line == HTTP_HEAD_MAX - 2 ? HTTP_HEAD_TOO_LARGE : HTTP_HEAD_URI_TOO_LONG));
	}

	/* HTTP_HEAD_READ_MAX bytes always give a verdict, whatever the empty lines before */
	for (size_t skip = 0; skip <= HTTP_HEAD_LEADING_MAX; skip += 2) {
		for (size_t i = 0; i < skip; i += 2)
			memcpy(big + i, "\r\n", 2);
		memcpy(big + skip, "GET /", 5);
		memset(big + skip + 5, 'b', cap - skip - 5);
		CHECK(http_head_parse(&h, big, HTTP_HEAD_READ_MAX) == HTTP_HEAD_URI_TOO_LONG);
		memcpy(big + skip, "GET / HTTP/1.1\r\nX: ", 19);
		CHECK(http_head_parse(&h, big, HTTP_HEAD_READ_MAX) == HTTP_HEAD_TOO_LARGE);
		/* a line that never ends is answered once the bytes after the empty lines are
		 * past the bound, not before */
		memcpy(big + skip, "GET /", 5);
		memset(big + skip + 5, 'b', 20);
		CHECK(http_head_parse(&h, big, skip + HTTP_HEAD_MAX) == HTTP_HEAD_MORE);
		CHECK(http_head_parse(&h, big, skip + HTTP_HEAD_MAX + 1) == HTTP_HEAD_URI_TOO_LONG);
		/* fields one byte past the bound: only a head whose bytes there are CR LF CR may
		 * still end (its final LF would come next); any other is 431 at once, not after
		 * the head timeout */
		memcpy(big + skip, "GET / HTTP/1.1\r\nX: ", 19);
		memset(big + skip + 19, 'c', HTTP_HEAD_MAX);
		memcpy(big + skip + HTTP_HEAD_MAX - 2, "\r\n\r", 3);
		CHECK(http_head_parse(&h, big, skip + HTTP_HEAD_MAX + 1) == HTTP_HEAD_MORE);
		memcpy(big + skip + HTTP_HEAD_MAX - 2, "\r\nY", 3);
		CHECK(http_head_parse(&h, big, skip + HTTP_HEAD_MAX + 1) == HTTP_HEAD_TOO_LARGE);
		memcpy(big + skip + HTTP_HEAD_MAX - 2, "ccc", 3);
		CHECK(http_head_parse(&h, big, skip + HTTP_HEAD_MAX + 1) == HTTP_HEAD_TOO_LARGE);
	}
	free(big);

	/* a fifth empty line is refused at once, with a reason, whole head or not */
	CHECK(parse("\r\n\r\n\r\n\r\nGET / HTTP/1.0\r\n\r\n") == HTTP_HEAD_OK);
	CHECK(h.head_len == strlen("\r\n\r\n\r\n\r\nGET / HTTP/1.0\r\n\r\n"));
	CHECK(parse("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.0\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(h.why != NULL && strstr(h.why, "empty lines") != NULL);
	CHECK(parse("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.0\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("\r\n\r\n\r\n\r\n\r\n") == HTTP_HEAD_BAD);
	CHECK(parse("\r\n\r\n\r\n\r\n\r") == HTTP_HEAD_MORE);
	CHECK(parse("\r\n\r\n\r\n\r\nGET / HTTP/1.0\r\n") == HTTP_HEAD_MORE);
	static const char five[] = "\r\n\r\n\r\n\r\n\r\nHEAD / HTTP/1.1\r\n\r\n";
	CHECK(!http_head_line_is_head(five, sizeof five - 1));
	static const char four[] = "\r\n\r\n\r\n\r\nHEAD / HTTP/1.1\r\nBad Name: v\r\n\r\n";
	CHECK(http_head_line_is_head(four, sizeof four - 1));
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
	test_absolute_form();
	test_host();
	test_leading_lines();
	test_query();
	test_refused_head();
	return unit_summary("test_broker_http_head");
}

/* BROKER_ALLOW_ORIGIN's parser and the CORS header text: what is taken, how it is written
 * (as a browser's Origin), what is refused, and the preflight answer. */
#include <stdlib.h>

#include "../../sse-broker/cors.h"
#include "unit.h"

static char out[CORS_ORIGIN_MAX + 1];
static char err[300];

static int parse(const char *in)
{
	out[0] = '\0';
	err[0] = '\0';
	return cors_origin_parse(in, out, sizeof out, err, sizeof err);
}

static void test_taken(void)
{
	CHECK(parse("*") == 0);
	CHECK_STR(out, "*");
	CHECK(parse("https://a.example") == 0);
	CHECK_STR(out, "https://a.example");
	CHECK(parse("http://localhost:8080") == 0);
	CHECK_STR(out, "http://localhost:8080");
	CHECK(parse("http://127.0.0.1:65535") == 0);
	CHECK_STR(out, "http://127.0.0.1:65535");
	CHECK(parse("https://[::1]:8443") == 0);
	CHECK_STR(out, "https://[::1]:8443");
	CHECK(parse("http://[2001:db8::7]") == 0);
	CHECK_STR(out, "http://[2001:db8::7]");
	/* written as the browser sends it: lower case, no default port */
	CHECK(parse("HTTPS://App.Example.COM") == 0);
	CHECK_STR(out, "https://app.example.com");
	CHECK(parse("https://a.example:443") == 0);
	CHECK_STR(out, "https://a.example");
	CHECK(parse("http://a.example:80") == 0);
	CHECK_STR(out, "http://a.example");
	CHECK(parse("http://a.example:443") == 0);
	CHECK_STR(out, "http://a.example:443");
	CHECK(parse("https://a.example:1") == 0);
	CHECK_STR(out, "https://a.example:1");
}

static void test_refused(void)
{
	static const char *bad[] = {
		"", "**", "* ", "null", "a.example", "//a.example", "ftp://a.example",
		"ws://a.example", "https:/a.example", "https://", "https://:8080",
		"https://a.example/", "https://a.example/path", "https://a.example?x=1",
		"https://a.example#f", "https://user@a.example", "https://a.example:",
		"https://a.example:0", "https://a.example:080", "https://a.example:65536",
		"https://a.example:99999999999999999999", "https://a.example:80a",
		"https://a.example:-1", "https://a.example, https://b.example",
		"https://a.example https://b.example", " https://a.example",
		"https://a.example\r\nX-Evil: 1", "https://a.example\n", "https://a_b.example",
		"https://.a.example", "https://a.example.", "https://-a.example",
		"https://a..example", "https://[::1", "https://[zz::1]", "https://[1]",
		"https://[::1]x", "http://a.exa\tmple", "https://\xc3\xa9.example",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int r = parse(bad[i]);
		CHECK(r == -1);
		if (r != -1)
			fprintf(stderr, "  taken: \"%s\" -> \"%s\"\n", bad[i], out);
		/* every refusal says what to write instead */
		CHECK(strstr(err, "one origin") != NULL);
	}
	CHECK(cors_origin_parse(NULL, out, sizeof out, err, sizeof err) == -1);

	/* oversized: a long host, and a value far past the bound */
	char *big = malloc(100000);
	CHECK(big != NULL);
	if (!big)
		return;
	strcpy(big, "https://");
	memset(big + 8, 'a', 254);
	big[8 + 254] = '\0';
	CHECK(parse(big) == -1);
	memset(big + 8, 'a', 99990);
	big[99998] = '\0';
	CHECK(parse(big) == -1);
	CHECK(strstr(err, "longer") != NULL);
	free(big);

	/* an output too small is a refusal, never a cut origin */
	char tiny[12];
	CHECK(cors_origin_parse("https://a.example", tiny, sizeof tiny, err, sizeof err) == -1);
	CHECK(cors_origin_parse("*", tiny, 1, err, sizeof err) == -1);
}

static void test_headers(void)
{
	struct buf h, p;
	buf_init(&h, 0);
	buf_init(&p, 0);
	CHECK(cors_headers(&h, "*") == 0);
	CHECK_STR(h.data, "Access-Control-Allow-Origin: *\r\n"
			  "X-Content-Type-Options: nosniff\r\n"
			  "Referrer-Policy: no-referrer\r\n");
	CHECK(cors_preflight(&p, h.data, 1) == 0);
	CHECK_STR(p.data, "HTTP/1.1 204 No Content\r\n"
			  "Access-Control-Allow-Origin: *\r\n"
			  "X-Content-Type-Options: nosniff\r\n"
			  "Referrer-Policy: no-referrer\r\n"
			  "Access-Control-Allow-Methods: GET\r\n"
			  "Access-Control-Allow-Headers: authorization, last-event-id\r\n"
			  "Access-Control-Max-Age: 600\r\n"
			  "\r\n");
	buf_reset(&p);
	CHECK(cors_preflight(&p, h.data, 0) == 0);
	CHECK(strstr(p.data, "\r\nConnection: close\r\n\r\n") != NULL);
	CHECK(strstr(p.data, "Content-Length") == NULL);
	buf_free(&h);
	buf_free(&p);

	/* a bounded buffer too small fails whole */
	struct buf s;
	buf_init(&s, 16);
	CHECK(cors_headers(&s, "https://a.example") == -1);
	buf_free(&s);
}

int main(void)
{
	test_taken();
	test_refused();
	test_headers();
	return unit_summary("test_broker_cors");
}

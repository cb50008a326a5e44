/* BROKER_ALLOW_ORIGIN's parser and the CORS header text. The origin grammar itself (what
 * is an origin, how it is written) is lib/origin.c's, checked case by case in
 * test_origin.c; here only what CORS adds: "*", the refusal's advice, and that a value is
 * taken or refused whole. */
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
	/* an origin comes back as lib/origin.c writes it: as a browser sends it */
	CHECK(parse("HTTPS://App.Example.COM:443") == 0);
	CHECK_STR(out, "https://app.example.com");
	CHECK(parse("https://[::1]:8443") == 0);
	CHECK_STR(out, "https://[::1]:8443");
}

static void test_refused(void)
{
	/* "*" only alone; a list or a header injection is no origin; one of the grammar's own
	 * refusals, to show its reason reaches the message */
	static const char *bad[] = {
		"", "**", "* ", " *", "*,https://a.example", "null",
		"https://a.example, https://b.example", "https://a.example\r\nX-Evil: 1",
		"https://a.example/",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int r = parse(bad[i]);
		CHECK(r == -1);
		if (r != -1)
			fprintf(stderr, "  taken: \"%s\" -> \"%s\"\n", bad[i], out);
		/* every refusal says what to write instead */
		CHECK(strstr(err, "write * or one origin") != NULL);
	}
	CHECK(parse("https://a.example/") == -1);
	CHECK(strstr(err, "has more than an origin") == err); /* the grammar's reason first */
	CHECK(cors_origin_parse(NULL, out, sizeof out, err, sizeof err) == -1);

	/* far past the bound */
	char *big = malloc(100000);
	CHECK(big != NULL);
	if (!big)
		return;
	strcpy(big, "https://");
	memset(big + 8, 'a', 99990);
	big[99998] = '\0';
	CHECK(parse(big) == -1);
	CHECK(strstr(err, "longer") != NULL);
	free(big);

	/* an output too small is a refusal, never a cut origin */
	char tiny[12];
	CHECK(cors_origin_parse("https://a.example", tiny, sizeof tiny, err, sizeof err) == -1);
	CHECK(cors_origin_parse("*", tiny, 1, err, sizeof err) == -1);
	CHECK(strstr(err, "fit") != NULL);
}

static void test_headers(void)
{
	struct buf h, p;
	buf_init(&h, 0);
	buf_init(&p, 0);
	/* the headers of ours a page of the allowed origin needs to read, past the ones the
	 * Fetch standard lets it read anyway: a 401's challenge, the wait of a 429 or 503 */
	CHECK(cors_headers(&h, "*") == 0);
	CHECK_STR(h.data, "Access-Control-Allow-Origin: *\r\n"
			  "Access-Control-Expose-Headers: WWW-Authenticate, Retry-After\r\n"
			  "X-Content-Type-Options: nosniff\r\n"
			  "Referrer-Policy: no-referrer\r\n");
	buf_reset(&h);
	CHECK(cors_headers(&h, "https://app.example.com:8443") == 0);
	CHECK_STR(h.data, "Access-Control-Allow-Origin: https://app.example.com:8443\r\n"
			  "Access-Control-Expose-Headers: WWW-Authenticate, Retry-After\r\n"
			  "X-Content-Type-Options: nosniff\r\n"
			  "Referrer-Policy: no-referrer\r\n");
	buf_reset(&h);
	CHECK(cors_headers(&h, "*") == 0);
	CHECK(cors_preflight(&p, h.data, 1) == 0);
	CHECK_STR(p.data, "HTTP/1.1 204 No Content\r\n"
			  "Access-Control-Allow-Origin: *\r\n"
			  "Access-Control-Expose-Headers: WWW-Authenticate, Retry-After\r\n"
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

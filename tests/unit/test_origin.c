/* lib/origin: one grammar of origins and Host values for the API and the broker. What is
 * taken, how it is written back, what is refused (hostile and oversized values too). */
#include <stdlib.h>

#include "origin.h"
#include "unit.h"

static char out[ORIGIN_MAX + 1];
static char err[200];

static int parse(const char *in)
{
	out[0] = '\0';
	err[0] = '\0';
	return origin_parse(in, out, sizeof out, err, sizeof err);
}

static void test_parse(void)
{
	static const char *same[] = {
		"http://localhost:8081", "https://streams.example.com", "http://[::1]:8081",
		"http://10.0.0.5:1", "https://a-b.c:65535", "http://[2001:db8::7]",
		"http://[::ffff:10.0.0.1]:9", "http://a.example:443", "https://x:80",
	};
	for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
		CHECK(parse(same[i]) == 0);
		CHECK_STR(out, same[i]);
	}
	/* as a browser writes it */
	CHECK(parse("HTTPS://App.Example.COM") == 0);
	CHECK_STR(out, "https://app.example.com");
	CHECK(parse("Http://[::ABCD]:8080") == 0);
	CHECK_STR(out, "http://[::abcd]:8080");
	CHECK(parse("https://a.example:443") == 0);
	CHECK_STR(out, "https://a.example");
	CHECK(parse("http://a.example:80") == 0);
	CHECK_STR(out, "http://a.example");

	static const char *bad[] = {
		"", "*", "null", "a.example", "localhost:8081", "//a.example", "ftp://a.example",
		"ws://a.example", "https:/a.example", "http://", "http://:80", "https://a.example/",
		"https://a.example/events", "https://a.example?x=1", "https://a.example#f",
		"https://user@a.example", "http://host:", "http://host:0", "http://host:080",
		"http://host:65536", "http://host:123456", "http://host:99999999999999999999",
		"http://host:80x", "http://host:-1", "http://ho st", "http://host\r\nX: y",
		"http://\"><script>", " https://a.example", "https://a.example\n",
		"https://a_b.example", "https://.a.example", "https://a.example.", "https://-a.example",
		"https://a-.example.b-", "https://a..example", "http://[::1", "http://[zz]:80",
		"http://[1]", "http://[::1]x", "http://[]", "https://\xc3\xa9.example",
		"http://a.example:80:80", "http://[::1]:80/x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int r = parse(bad[i]);
		CHECK(r == -1);
		if (r != -1)
			fprintf(stderr, "  taken: \"%s\" -> \"%s\"\n", bad[i], out);
		CHECK(err[0] != '\0'); /* every refusal says why */
	}
	CHECK(origin_parse(NULL, out, sizeof out, err, sizeof err) == -1);
	CHECK(origin_parse("http://x", out, sizeof out, NULL, 0) == 0); /* no reason wanted */

	/* oversized: a name of 254, a value of 301 and of 100,000 characters */
	char *big = malloc(100001);
	CHECK(big != NULL);
	if (!big)
		return;
	strcpy(big, "https://");
	memset(big + 8, 'a', 254);
	big[8 + 254] = '\0';
	CHECK(parse(big) == -1);
	big[8 + 253] = '\0'; /* 253 is a name's most */
	CHECK(parse(big) == 0);
	memset(big + 8, 'a', 301);
	big[8 + 301] = '\0';
	CHECK(parse(big) == -1);
	CHECK(strstr(err, "longer") != NULL);
	memset(big + 8, 'a', 99990);
	big[99998] = '\0';
	CHECK(parse(big) == -1);
	free(big);

	/* an output too small is a refusal, never a cut origin */
	char tiny[12];
	CHECK(origin_parse("https://a.example", tiny, sizeof tiny, err, sizeof err) == -1);
	CHECK(strstr(err, "fit") != NULL);
}

static void test_host_port(void)
{
	size_t hl = 0;
	long port = 0;
	CHECK(origin_host_port("example.com:8080", &hl, &port) == 0);
	CHECK(hl == 11 && port == 8080);
	CHECK(origin_host_port("localhost", &hl, &port) == 0);
	CHECK(hl == 9 && port == -1);
	CHECK(origin_host_port("[::1]:80", &hl, &port) == 0);
	CHECK(hl == 5 && port == 80);
	CHECK(origin_host_port("127.0.0.1:1", &hl, &port) == 0);
	CHECK(hl == 9 && port == 1);
	static const char *bad[] = {
		"", ":80", "evil.com/x", "a b", "host:99999", "host:80:80", "host:", "host:08",
		"[::1", "[::1]x", "a..b", ".a", "a.", "x\r\ny", "h\xc3\xa9", "user@host",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(origin_host_port(bad[i], &hl, &port) == -1);
	CHECK(origin_host_port(NULL, &hl, &port) == -1);
	char big[ORIGIN_MAX + 2];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	CHECK(origin_host_port(big, &hl, &port) == -1);
}

int main(void)
{
	test_parse();
	test_host_port();
	return unit_summary("test_origin");
}

/* The API's and the library's pure modules: routing, field validation, HTTP header
 * helpers, languages, REDIS_URL parsing, configuration, errbuf and clock. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "clock.h"
#include "errbuf.h"
#include "../../fcgi/handlers.h"
#include "../../fcgi/http.h"
#include "../../fcgi/query.h"
#include "lang.h"
#include "rds.h"
#include "../../fcgi/route.h"
#include "unit.h"
#include "../../fcgi/valid.h"

static int query_count(const char *q, const char *name, const char **val, size_t *vlen)
{
	int count = -1;
	const char *why = NULL;
	if (query_find(q, name, val, vlen, &count, &why) < 0) {
		CHECK(why != NULL && strstr(why, "percent escape") != NULL);
		return -1;
	}
	return count;
}

static void test_query(void)
{
	const char *v;
	size_t vl;
	CHECK(query_count("", "limit", &v, &vl) == 0 && vl == 0);
	CHECK(query_count(NULL, "limit", &v, &vl) == 0);
	CHECK(query_count("limit=5", "limit", &v, &vl) == 1 && vl == 1 && v[0] == '5');
	/* names decoded, either case of hex, before they are compared */
	CHECK(query_count("a%62c=1", "abc", &v, &vl) == 1 && vl == 1 && v[0] == '1');
	CHECK(query_count("%61%62%63=xy&d=2", "abc", &v, &vl) == 1 && vl == 2 &&
	      strncmp(v, "xy", 2) == 0);
	CHECK(query_count("li%6dit=1&li%6Dit=2", "limit", &v, &vl) == 2 && v[0] == '1');
	CHECK(query_count("limit=1&lim%69t=2", "limit", &v, &vl) == 2);
	/* values are given as sent, escapes and all */
	CHECK(query_count("before=%41", "before", &v, &vl) == 1 && vl == 3 &&
	      strncmp(v, "%41", 3) == 0);
	/* '+' is a space; an escaped '+' is a plus; an escaped '=' or '&' is part of the name */
	CHECK(query_count("a+b=1", "a b", &v, &vl) == 1);
	CHECK(query_count("a+b=1", "a+b", &v, &vl) == 0);
	CHECK(query_count("a%2Bb=1", "a+b", &v, &vl) == 1);
	CHECK(query_count("limit%3D1", "limit", &v, &vl) == 0);
	CHECK(query_count("limit%3D1", "limit=1", &v, &vl) == 1 && vl == 0);
	CHECK(query_count("a%26b=1", "a&b", &v, &vl) == 1);
	/* a decoded NUL ends no name early */
	CHECK(query_count("limit%00=1", "limit", &v, &vl) == 0);
	/* bare names, empty pairs */
	CHECK(query_count("limit", "limit", &v, &vl) == 1 && vl == 0);
	CHECK(query_count("&&limit=&", "limit", &v, &vl) == 1 && vl == 0);
	CHECK(query_count("=1&limit=2", "limit", &v, &vl) == 1 && v[0] == '2');
	/* a malformed escape in any name refuses the query, whichever name is asked for */
	const char *bad[] = {"%zz=1", "a%4=1", "a%=1", "limit=1&x%", "%4g", "%G1=2&limit=1",
			     "x%%41=1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(query_count(bad[i], "limit", &v, &vl) == -1);
	/* a malformed escape in a value is not the parser's business */
	CHECK(query_count("x=%zz&limit=1", "limit", &v, &vl) == 1);
}

static void test_route_malformed(void)
{
	const char *k = NULL;
	CHECK(route_match_malformed("/api/rooms/*/document", "/api/rooms/a.b/document", &k) &&
	      strcmp(k, "room") == 0);
	CHECK(route_match_malformed("/api/rooms/*", "/api/rooms/%41b", &k) && strcmp(k, "room") == 0);
	CHECK(route_match_malformed("/api/rooms/*", "/api/rooms/%zz/", &k) && strcmp(k, "room") == 0);
	CHECK(route_match_malformed("/api/jobs/*", "/api/jobs/x~y", &k) && strcmp(k, "job") == 0);
	CHECK(route_match_malformed("/api/rooms/*/members/*", "/api/rooms/abc/members/a.b", &k) &&
	      strcmp(k, "member") == 0);
	/* the first malformed segment decides */
	CHECK(route_match_malformed("/api/rooms/*/members/*", "/api/rooms/a.b/members/c.d", &k) &&
	      strcmp(k, "room") == 0);
	CHECK(route_match_malformed("/api/rooms/*/history/*", "/api/rooms/abc/history/1.5", &k) &&
	      strcmp(k, "revision") == 0);
	char path[256], longid[API_ID_MAX + 2];
	memset(longid, 'a', sizeof longid - 1);
	longid[sizeof longid - 1] = '\0';
	snprintf(path, sizeof path, "/api/jobs/%s", longid);
	CHECK(route_match_malformed("/api/jobs/*", path, &k) && strcmp(k, "job") == 0);
	longid[API_ID_MAX] = '\0';
	snprintf(path, sizeof path, "/api/jobs/%s", longid);
	CHECK(!route_match_malformed("/api/jobs/*", path, &k)); /* well-formed: route_match's */
	/* well-formed ids, other shapes, empty segments: not this */
	CHECK(!route_match_malformed("/api/rooms/*/document", "/api/rooms/abc/document", &k));
	CHECK(!route_match_malformed("/api/rooms/*/document", "/api/rooms/a.b/documents", &k));
	CHECK(!route_match_malformed("/api/rooms/*/document", "/api/rooms/a.b/document/x", &k));
	CHECK(!route_match_malformed("/api/rooms/*/document", "/api/rooms//document", &k));
	CHECK(!route_match_malformed("/api/rooms/*", "/api/rooms/", &k));
	CHECK(!route_match_malformed("/api/rooms", "/api/rooms", &k));
	CHECK(!route_match_malformed("/api/rooms/*/document", "/api/room/a.b/document", &k));
}

static void test_route(void)
{
	char p[API_MAX_PARAMS][API_ID_MAX + 1];
	int n = -1;
	CHECK(route_match("/api/rooms", "/api/rooms", p, &n) && n == 0);
	CHECK(route_match("/api/rooms", "/api/rooms/", p, &n)); /* one trailing slash */
	CHECK(!route_match("/api/rooms", "/api/rooms//", p, &n));
	CHECK(!route_match("/api/rooms", "/api/roomsx", p, &n));
	CHECK(!route_match("/api/rooms", "/api/room", p, &n));
	CHECK(route_match("/api/rooms/*/members/*", "/api/rooms/ab_c-1/members/42", p, &n));
	CHECK(n == 2);
	CHECK_STR(p[0], "ab_c-1");
	CHECK_STR(p[1], "42");
	/* hostile segments never match */
	CHECK(!route_match("/api/rooms/*", "/api/rooms/", p, &n));
	CHECK(!route_match("/api/rooms/*", "/api/rooms/%2e%2e", p, &n));
	CHECK(!route_match("/api/rooms/*", "/api/rooms/..", p, &n));
	CHECK(!route_match("/api/rooms/*", "/api/rooms/a b", p, &n));
	CHECK(!route_match("/api/rooms/*", "/api/rooms/\xc3\xa9", p, &n));
	char longid[API_ID_MAX + 20];
	memset(longid, 'a', sizeof longid - 1);
	longid[sizeof longid - 1] = '\0';
	char path[256];
	snprintf(path, sizeof path, "/api/rooms/%s", longid);
	CHECK(!route_match("/api/rooms/*", path, p, &n));
	longid[API_ID_MAX] = '\0';
	snprintf(path, sizeof path, "/api/rooms/%s", longid);
	CHECK(route_match("/api/rooms/*", path, p, &n) && strlen(p[0]) == API_ID_MAX);
}

static const char *const colours[] = {"red", "blue", NULL};

static int no_x(const char *s, const char **why)
{
	if (strchr(s, 'x')) {
		*why = "must not contain x";
		return -1;
	}
	return 0;
}

static const struct valid_field fields[] = {
	{"name", VALID_STRING, VALID_REQUIRED | VALID_SINGLE_LINE, 2, 5, NULL, no_x},
	{"n", VALID_INT, 0, -3, 10, NULL, NULL},
	{"colour", VALID_ENUM, 0, 0, 0, colours, NULL},
	{"code", VALID_STRING, VALID_TEXT, 0, 100, NULL, NULL},
	{"any", VALID_ANY, 0, 0, 0, NULL, NULL},
};

/* 0 when the JSON text passes the table, else -1 with err filled */
static int check(const char *json, struct valid_value *v, char *err)
{
	cJSON *o = cJSON_Parse(json);
	if (!o)
		return -2;
	int rc = valid_object(o, fields, 5, v, err, 256);
	cJSON_Delete(o);
	return rc;
}

/* usernames and request ids: one plain key/URL component */
static void test_plain_name(void)
{
	const char *why = NULL;
	CHECK(valid_plain_name("Ann_b-1.x", &why) == 0 && why == NULL);
	CHECK(valid_plain_name("", &why) == 0); /* the length is the field's bound's business */
	const char *bad[] = {"a:b", "{room}", "a b", "a/b", "\xc3\xa9", "a\x7f", "a\tb", "*", "%41"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		why = NULL;
		CHECK(valid_plain_name(bad[i], &why) == -1);
		CHECK(why && strstr(why, "letters, digits"));
	}
}

static void test_valid(void)
{
	struct valid_value v[5];
	char err[256];
	cJSON *o = cJSON_Parse("{\"name\":\"\xc3\xa9t\xc3\xa9\",\"n\":-3,\"colour\":\"red\",\"code\":\"a\\tb\\nc\",\"any\":[1]}");
	CHECK(valid_object(o, fields, 5, v, err, sizeof err) == 0);
	CHECK_STR(v[0].s, "\xc3\xa9t\xc3\xa9"); /* 3 code points, 5 bytes: within 2..5 */
	CHECK(v[0].len == 5);
	CHECK(v[1].present && v[1].n == -3);
	CHECK(v[4].present && cJSON_IsArray(v[4].item));
	cJSON_Delete(o);
	CHECK(check("{\"name\":\"ab\",\"unknown\":1}", v, err) == 0); /* unknown fields ignored */
	CHECK(!v[1].present && !v[2].present);
	CHECK(check("{\"name\":\"ab\",\"n\":null}", v, err) == 0 && !v[1].present);
	CHECK(check("{}", v, err) == -1);
	CHECK_STR(err, "name is required");
	CHECK(check("{\"name\":5}", v, err) == -1);
	CHECK_STR(err, "name must be a string");
	CHECK(check("{\"name\":\"a\"}", v, err) == -1);
	CHECK_STR(err, "name is too short");
	CHECK(check("{\"name\":\"abcdef\"}", v, err) == -1);
	CHECK_STR(err, "name is too long");
	CHECK(check("{\"name\":\"a\\nb\"}", v, err) == -1);
	CHECK(check("{\"name\":\"axb\"}", v, err) == -1);
	CHECK_STR(err, "name must not contain x");
	CHECK(check("{\"name\":\"ab\",\"n\":11}", v, err) == -1);
	CHECK_STR(err, "n must be an integer from -3 to 10");
	CHECK(check("{\"name\":\"ab\",\"n\":1.5}", v, err) == -1);
	CHECK(check("{\"name\":\"ab\",\"n\":\"1\"}", v, err) == -1);
	CHECK(check("{\"name\":\"ab\",\"n\":1e300}", v, err) == -1);
	CHECK(check("{\"name\":\"ab\",\"colour\":\"green\"}", v, err) == -1);
	CHECK_STR(err, "colour must be one of: red, blue");
	CHECK(check("{\"name\":\"ab\",\"code\":\"a\\u0001b\"}", v, err) == -1);
	/* invalid UTF-8 smuggled in as raw bytes */
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", "a\xff" "b");
	CHECK(valid_object(o, fields, 5, v, err, sizeof err) == -1);
	CHECK_STR(err, "name is not valid UTF-8");
	cJSON_Delete(o);
	const char *why = NULL;
	CHECK(valid_text("ok", 2, 0, 10, 0, &why) == 0);
	CHECK(valid_text("\xed\xa0\x80", 3, 0, 10, 0, &why) == -1); /* a surrogate */
	CHECK(valid_text("", 0, 1, 10, 0, &why) == -1);
	CHECK_STR(why, "must not be empty");
}

/* A single line (names) refuses the C1 controls and the Unicode line and paragraph
 * separators as it refuses \n; other non-ASCII text, the bidi controls included, passes
 * (the client shows names isolated). */
static void test_single_line(void)
{
	const char *bad[] = {
		"a\xc2\x85" "b", /* NEL U+0085 */
		"\xc2\x80",      /* U+0080, the first C1 control */
		"ab\xc2\x9f",    /* U+009F, the last */
		"a\xe2\x80\xa8" "b", /* LINE SEPARATOR U+2028 */
		"\xe2\x80\xa9",      /* PARAGRAPH SEPARATOR U+2029 */
		"a\nb", "a\x1b" "b", "\x7f",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		const char *why = NULL;
		CHECK(valid_text(bad[i], strlen(bad[i]), 0, 100, VALID_SINGLE_LINE, &why) == -1);
		CHECK_STR(why, "must not contain control characters or line breaks");
	}
	const char *good[] = {
		"a\xc2\xa0" "b",       /* NO-BREAK SPACE U+00A0, just past the C1 block */
		"\xc2\xa9 2024",       /* U+00A9 */
		"\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", /* Hebrew */
		"\xf0\x9f\x98\x80",  /* an emoji */
		"\xe2\x80\xa7\xe2\x80\xaa", /* U+2027 and U+202A, either side of the separators */
		"\xd7\xa9 \xe2\x80\xae" "evil\xe2\x80\xac", /* RLO .. PDF, unbalanced or not */
		"a\xe2\x80\xae",
		"\xe2\x81\xa6x\xe2\x81\xa9\xe2\x81\xa7\xe2\x81\xa8", /* LRI, PDI, RLI, FSI */
	};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		const char *why = NULL;
		CHECK(valid_text(good[i], strlen(good[i]), 0, 100, VALID_SINGLE_LINE, &why) == 0);
	}
	/* multi-line text keeps them: they are text there */
	const char *why = NULL;
	CHECK(valid_text("a\xc2\x85\xe2\x80\xa8" "b", 7, 0, 100, VALID_TEXT, &why) == 0);
	/* and through a field table, the same answer as for \n */
	struct valid_value v[5];
	char err[256];
	CHECK(check("{\"name\":\"a\\u0085b\"}", v, err) == -1);
	CHECK_STR(err, "name must not contain control characters or line breaks");
	CHECK(check("{\"name\":\"a\\u2029\"}", v, err) == -1);
	CHECK(check("{\"name\":\"a\\u00a0b\"}", v, err) == 0);
}

static void test_http(void)
{
	size_t n = 0;
	CHECK(http_parse_length("0", &n) == 0 && n == 0);
	CHECK(http_parse_length("1048576", &n) == 0 && n == 1048576);
	CHECK(http_parse_length("", &n) == -1);
	CHECK(http_parse_length(NULL, &n) == -1);
	CHECK(http_parse_length("-1", &n) == -1);
	CHECK(http_parse_length("+1", &n) == -1);
	CHECK(http_parse_length(" 1", &n) == -1);
	CHECK(http_parse_length("1e3", &n) == -1);
	CHECK(http_parse_length("0x10", &n) == -1);
	CHECK(http_parse_length("5, 5", &n) == -1);
	/* past size_t: the largest length, answered 413 like any length past the bound */
	CHECK(http_parse_length("18446744073709551615", &n) == 0 && n == (size_t)-1);
	CHECK(http_parse_length("18446744073709551616", &n) == 0 && n == (size_t)-1);
	CHECK(http_parse_length("99999999999999999999999999999", &n) == 0 && n == (size_t)-1);
	CHECK(http_parse_length("99999999999999999999999x", &n) == -1);
	CHECK(http_is_json_type("application/json"));
	CHECK(http_is_json_type("Application/JSON; charset=utf-8"));
	CHECK(http_is_json_type("  application/json;charset=UTF-8"));
	CHECK(!http_is_json_type("application/jsonp"));
	CHECK(!http_is_json_type("text/json"));
	CHECK(!http_is_json_type("application/x-www-form-urlencoded"));
	CHECK(!http_is_json_type(""));
	CHECK(!http_is_json_type(NULL));
	/* parameters (RFC 9110): a charset must be utf-8, in any case, quoted or not */
	CHECK(http_is_json_type("application/json;charset=\"utf-8\""));
	CHECK(http_is_json_type("application/json; charset=\"UTF-8\""));
	CHECK(http_is_json_type("application/json;charset=\"utf\\-8\""));
	CHECK(http_is_json_type("application/json ; charset=utf-8 "));
	CHECK(http_is_json_type("application/json;\tcharset=utf-8;charset=UTF-8"));
	CHECK(http_is_json_type("application/json;"));
	CHECK(http_is_json_type("application/json; ;"));
	CHECK(http_is_json_type("application/json; foo=bar; baz=\"a;b=c\""));
	CHECK(http_is_json_type("application/json; foo=\"\""));
	CHECK(!http_is_json_type("application/json;charset=latin1"));
	CHECK(!http_is_json_type("application/json; Charset=\"ISO-8859-1\""));
	CHECK(!http_is_json_type("application/json; charset=utf-16"));
	/* "utf8", unregistered, is what some clients send for UTF-8 */
	CHECK(http_is_json_type("application/json; charset=utf8"));
	CHECK(http_is_json_type("application/json; charset=\"UTF8\""));
	CHECK(!http_is_json_type("application/json; charset=utf8x"));
	CHECK(!http_is_json_type("application/json; charset=utf-"));
	CHECK(!http_is_json_type("application/json; charset=utf-88"));
	CHECK(!http_is_json_type("application/json; charset=utf-8x"));
	CHECK(!http_is_json_type("application/json; charset=utf"));
	CHECK(!http_is_json_type("application/json; charset=utf-8; charset=latin1"));
	CHECK(!http_is_json_type("application/json; charset=\"\""));
	CHECK(!http_is_json_type("application/json; charset="));
	CHECK(!http_is_json_type("application/json; charset= utf-8"));
	CHECK(!http_is_json_type("application/json; charset=\"utf-8"));
	CHECK(!http_is_json_type("application/json; charset=\"utf-8\\"));
	CHECK(!http_is_json_type("application/json; charset=utf-8 x"));
	CHECK(!http_is_json_type("application/json; =utf-8"));
	CHECK(!http_is_json_type("application/json; charset"));
	CHECK(!http_is_json_type("application/json; charset =utf-8"));
	CHECK(!http_is_json_type("application/json; foo=\"a\x01\""));
	CHECK(!http_is_json_type("application/json x"));
	CHECK(!http_is_json_type("application/json, text/plain"));
	CHECK(!http_is_json_type("application/json/x"));
	{
		/* a long value is read to its end, whatever its length */
		static char big[70000];
		memcpy(big, "application/json; x=", 20);
		memset(big + 20, 'a', sizeof big - 21);
		CHECK(http_is_json_type(big));
		memcpy(big, "application/json; charset=", 26);
		CHECK(!http_is_json_type(big));
	}
	CHECK_STR(http_reason(429), "Too Many Requests");
	CHECK_STR(http_reason(599), "Unknown");
	struct http_resp r;
	http_resp_init(&r);
	CHECK(http_resp_header(&r, "Retry-After", "3") == 0);
	CHECK(http_resp_header(&r, "X-Evil", "a\r\nSet-Cookie: x") == -1); /* no header splitting */
	CHECK(http_resp_header(&r, "X:Evil", "a") == -1);
	CHECK_STR(r.headers.data, "Retry-After: 3\r\n");
	http_resp_free(&r);
}

/* An origin as the API takes STREAM_ORIGIN (lib/origin.h): 0, or -1. */
static int origin_ok(const char *s)
{
	char norm[ORIGIN_MAX + 1];
	return origin_parse(s, norm, sizeof norm, NULL, 0);
}

/* STREAM_ORIGIN and the Host header: what the API answers as a stream origin */
static void test_stream_origin(void)
{
	CHECK(origin_ok("http://localhost:8081") == 0);
	CHECK(origin_ok("https://streams.example.com") == 0);
	CHECK(origin_ok("http://[::1]:8081") == 0);
	CHECK(origin_ok("http://10.0.0.5:1") == 0);
	CHECK(origin_ok("https://a-b.c:65535") == 0);
	CHECK(origin_ok("http://localhost:8081/") == -1);      /* a path */
	CHECK(origin_ok("http://localhost:8081/events") == -1);
	CHECK(origin_ok("ftp://localhost") == -1);
	CHECK(origin_ok("localhost:8081") == -1);              /* no scheme */
	CHECK(origin_ok("http://") == -1);
	CHECK(origin_ok("http://:80") == -1);
	CHECK(origin_ok("http://host:0") == -1);
	CHECK(origin_ok("http://host:65536") == -1);
	CHECK(origin_ok("http://host:123456") == -1);
	CHECK(origin_ok("http://host:") == -1);
	CHECK(origin_ok("http://host:80x") == -1);
	CHECK(origin_ok("http://user@host") == -1);
	CHECK(origin_ok("http://ho st") == -1);
	CHECK(origin_ok("http://host\r\nX: y") == -1);       /* header splitting */
	CHECK(origin_ok("http://\"><script>") == -1);
	CHECK(origin_ok("http://-host") == -1);
	CHECK(origin_ok("http://[::1") == -1);
	CHECK(origin_ok("http://[zz]:80") == -1);
	CHECK(origin_ok("http://[::1]x") == -1);
	CHECK(origin_ok(NULL) == -1);
	char big[400];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	memcpy(big, "http://", 7);
	CHECK(origin_ok(big) == -1); /* oversized */

	char name[HTTP_ORIGIN_MAX];
	CHECK(http_host_name("example.com:8080", name, sizeof name) == 0);
	CHECK_STR(name, "example.com");
	CHECK(http_host_name("localhost", name, sizeof name) == 0);
	CHECK_STR(name, "localhost");
	CHECK(http_host_name("[::1]:8080", name, sizeof name) == 0);
	CHECK_STR(name, "[::1]");
	CHECK(http_host_name("", name, sizeof name) == -1);
	CHECK(http_host_name(NULL, name, sizeof name) == -1);
	CHECK(http_host_name("evil.com/x", name, sizeof name) == -1);
	CHECK(http_host_name("a b", name, sizeof name) == -1);
	CHECK(http_host_name("host:99999", name, sizeof name) == -1);
	CHECK(http_host_name("host:80:80", name, sizeof name) == -1);
	CHECK(http_host_name("example.com", name, 4) == -1); /* does not fit */
	CHECK(http_host_name(big + 7, name, sizeof name) == -1);

	char o[HTTP_ORIGIN_MAX];
	CHECK(http_stream_origin("auto", 8081, "localhost:8080", 0, o, sizeof o) == 1);
	CHECK_STR(o, "http://localhost:8081");
	CHECK(http_stream_origin("auto", 9000, "[::1]:8080", 0, o, sizeof o) == 1);
	CHECK_STR(o, "http://[::1]:9000");
	CHECK(http_stream_origin("auto", 8081, "localhost:8443", 1, o, sizeof o) == 0); /* TLS */
	CHECK(http_stream_origin("auto", 8081, "", 0, o, sizeof o) == 0);              /* no Host */
	CHECK(http_stream_origin("auto", 8081, "x\r\ny", 0, o, sizeof o) == 0);
	CHECK(http_stream_origin("auto", 0, "localhost", 0, o, sizeof o) == 0);
	CHECK(http_stream_origin("https://s.example.com", 8081, "localhost", 1, o, sizeof o) == 1);
	CHECK_STR(o, "https://s.example.com");
	CHECK(http_stream_origin("http://s.example.com:81", 8081, "", 0, o, sizeof o) == 1);
	CHECK_STR(o, "http://s.example.com:81");
	CHECK(http_stream_origin("off", 8081, "localhost", 0, o, sizeof o) == 0);
	CHECK(http_stream_origin("", 8081, "localhost", 0, o, sizeof o) == 0);
	CHECK(http_stream_origin(NULL, 8081, "localhost", 0, o, sizeof o) == 0);
	CHECK(http_stream_origin("http://x/y", 8081, "localhost", 0, o, sizeof o) == 0);
	CHECK(http_stream_origin("auto", 8081, "localhost", 0, o, 10) == 0); /* does not fit */
}

static void test_lang(void)
{
	CHECK_STR(lang_canonical("cpp"), "c++");
	CHECK_STR(lang_canonical("C++"), "c++");
	CHECK_STR(lang_canonical("py"), "python");
	CHECK_STR(lang_canonical("node"), "javascript");
	CHECK_STR(lang_canonical("sh"), "bash");
	CHECK_STR(lang_canonical("Python"), "python");
	CHECK(lang_canonical("cobol") == NULL);
	CHECK(lang_canonical("") == NULL);
	CHECK(lang_canonical(NULL) == NULL);
	for (size_t i = 0; lang_names[i]; i++)
		CHECK(lang_canonical(lang_names[i]) == lang_names[i]);
}

static void test_rds_url(void)
{
	struct rds_target t;
	char err[256];
	CHECK(rds_parse_url(NULL, &t, err, sizeof err) == 0);
	CHECK_STR(t.host, "127.0.0.1");
	CHECK(t.port == 6379 && t.db == 0 && !t.password[0] && !t.socket[0]);
	CHECK(rds_parse_url("redis://example.org:6380/3", &t, err, sizeof err) == 0);
	CHECK_STR(t.host, "example.org");
	CHECK(t.port == 6380 && t.db == 3);
	CHECK(rds_parse_url("redis://:p%40ss@10.0.0.1", &t, err, sizeof err) == 0);
	CHECK_STR(t.password, "p@ss");
	CHECK(t.port == 6379);
	CHECK(rds_parse_url("redis://[::1]:7000", &t, err, sizeof err) == 0);
	CHECK_STR(t.host, "::1");
	CHECK(t.port == 7000);
	CHECK(rds_parse_url("unix:///run/redis.sock", &t, err, sizeof err) == 0);
	CHECK_STR(t.socket, "/run/redis.sock");
	CHECK(rds_parse_url("http://host", &t, err, sizeof err) == -1);
	CHECK(rds_parse_url("redis://host:99999", &t, err, sizeof err) == -1);
	CHECK(rds_parse_url("redis://host/notanumber", &t, err, sizeof err) == -1);
	CHECK(rds_parse_url("not a url", &t, err, sizeof err) == -1);
	CHECK(rds_parse_url("unix://", &t, err, sizeof err) == -1);
}

static void test_cfg(void)
{
	long v = 0;
	char err[256];
	unsetenv("CC_TEST_N");
	CHECK(cfg_long("CC_TEST_N", 7, 1, 10, &v, err, sizeof err) == 0 && v == 7);
	setenv("CC_TEST_N", "9", 1);
	CHECK(cfg_long("CC_TEST_N", 7, 1, 10, &v, err, sizeof err) == 0 && v == 9);
	setenv("CC_TEST_N", "11", 1);
	CHECK(cfg_long("CC_TEST_N", 7, 1, 10, &v, err, sizeof err) == -1);
	CHECK_STR(err, "CC_TEST_N must be an integer from 1 to 10 (got \"11\")");
	setenv("CC_TEST_N", "9x", 1);
	CHECK(cfg_long("CC_TEST_N", 7, 1, 10, &v, err, sizeof err) == -1);
	setenv("CC_TEST_N", "99999999999999999999999", 1);
	CHECK(cfg_long("CC_TEST_N", 7, 1, 10, &v, err, sizeof err) == -1);
	setenv("CC_TEST_N", "", 1);
	CHECK(cfg_long("CC_TEST_N", 7, 1, 10, &v, err, sizeof err) == 0 && v == 7);
	CHECK_STR(cfg_str("CC_TEST_N", "dflt"), "dflt");
	setenv("CC_TEST_N", "x", 1);
	CHECK_STR(cfg_str("CC_TEST_N", "dflt"), "x");
	unsetenv("CC_TEST_N");
}

static void test_errbuf_clock(void)
{
	char err[8];
	errbuf_set(err, sizeof err, "%s %d", "abcdef", 123); /* truncated, terminated */
	CHECK_STR(err, "abcdef ");
	errbuf_set(NULL, 0, "ignored %d", 1); /* no buffer: nothing happens */
	long long a = clock_mono_ms(), w = clock_wall_ms();
	CHECK(a > 0);
	CHECK(w > 1700000000000LL); /* after 2023 */
	CHECK(clock_mono_ms() >= a);
}

/* The canonical username: ASCII letters lowered and nothing else, so look-alikes that a
 * locale's lower() would fold into ASCII stay different names. */
/* The key of `name` is `key` (in a 16-byte buffer). */
static void key_is(const char *name, const char *key)
{
	char k[16];
	CHECK(auth_username_key(name, k, sizeof k) == 0);
	CHECK_STR(k, key);
}

static void test_username_key(void)
{
	key_is("KirkAdmin_.-9", "kirkadmin_.-9");
	key_is("", "");
	/* KELVIN SIGN (U+212A) + "irkadmin": bytes kept, never "kirkadmin" */
	key_is("\xe2\x84\xaairkadmin", "\xe2\x84\xaairkadmin");
	/* LATIN CAPITAL LETTER I WITH DOT ABOVE (U+0130) and DOTLESS I (U+0131) */
	key_is("\xc4\xb0X", "\xc4\xb0x");
	key_is("\xc4\xb1", "\xc4\xb1");
	/* exactly what fits, then one byte too many */
	key_is("ABCDEFGHIJKLMNO", "abcdefghijklmno");
	char k[16];
	CHECK(auth_username_key("ABCDEFGHIJKLMNOP", k, sizeof k) < 0);
	CHECK(auth_username_key("a", k, 0) < 0);
	CHECK(auth_username_key("", k, 1) == 0);
}

/* A request whose REQUEST_METHOD is there but empty is refused like one without it
 * (found by tests/fuzz/fuzz_api_http.c); the body stream is not read before that. */
static void test_read_request_method(void)
{
	char m_empty[] = "REQUEST_METHOD=", m_get[] = "REQUEST_METHOD=GET";
	char uri[] = "REQUEST_URI=/api/health";
	char *env[] = {m_empty, uri, NULL};
	struct http_io io = {.in = NULL, .out = NULL, .envp = env, .cgi = 0};
	struct http_req req;
	const char *why = NULL;
	CHECK(http_read_request(&io, &req, &why) == 400);
	CHECK_STR(why, "missing or unknown request method");
	http_req_free(&req);
	env[0] = m_get;
	CHECK(http_read_request(&io, &req, &why) == 0);
	CHECK_STR(req.method, "GET");
	CHECK_STR(req.path, "/api/health");
	http_req_free(&req);
}

/* A body stream in memory: `avail` bytes, handed out 16 KiB at a time; `given` counts them. */
struct drain_src {
	size_t avail, given;
};

static void drain_fill(FCGX_Stream *s)
{
	static unsigned char chunk[16384];
	struct drain_src *d = s->data;
	if (d->given >= d->avail) {
		s->isClosed = 1;
		return;
	}
	size_t n = d->avail - d->given < sizeof chunk ? d->avail - d->given : sizeof chunk;
	s->rdNext = s->stopUnget = chunk;
	s->stop = chunk + n;
	d->given += n;
}

static void drain_empty(FCGX_Stream *s, int do_close)
{
	(void)s;
	(void)do_close;
}

/* The bytes of a body of `len` (all of them sent) the API reads before its 413. */
static size_t drained(size_t len)
{
	char m[] = "REQUEST_METHOD=POST", uri[] = "REQUEST_URI=/api/auth/register", cl[40];
	snprintf(cl, sizeof cl, "CONTENT_LENGTH=%zu", len);
	char *env[] = {m, uri, cl, NULL};
	struct drain_src d = {len, 0};
	FCGX_Stream in;
	memset(&in, 0, sizeof in);
	in.isReader = 1;
	in.fillBuffProc = drain_fill;
	in.emptyBuffProc = drain_empty;
	in.data = &d;
	struct http_io io = {.in = &in, .out = NULL, .envp = env, .cgi = 0};
	struct http_req req;
	const char *why = NULL;
	CHECK(http_read_request(&io, &req, &why) == 413);
	http_req_free(&req);
	return d.given - (size_t)(in.stop - in.rdNext);
}

/* A body over HTTP_BODY_MAX is read and thrown away before the 413 (mod_proxy_fcgi cuts the
 * client off when the answer comes first), up to the 2 MiB both web servers pass on; a
 * larger one never comes from them, and the API reads none of it (before, up to 4 MiB of it
 * was read for nothing). */
static void test_read_request_drain(void)
{
	const size_t MiB = 1024 * 1024;
	CHECK(drained(MiB + 1) == MiB + 1);
	CHECK(drained(2 * MiB - 1) == 2 * MiB - 1);
	CHECK(drained(2 * MiB) == 2 * MiB);
	CHECK(drained(2 * MiB + 1) == 0);
	CHECK(drained(4 * MiB) == 0);
	CHECK(drained(64 * MiB) == 0);
}

int main(void)
{
	test_read_request_method();
	test_read_request_drain();
	test_route();
	test_route_malformed();
	test_query();
	test_username_key();
	test_valid();
	test_single_line();
	test_plain_name();
	test_http();
	test_stream_origin();
	test_lang();
	test_rds_url();
	test_cfg();
	test_errbuf_clock();
	return unit_summary("api_pure");
}

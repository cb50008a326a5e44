/* fuzz_api_request: libFuzzer target for what the API reads of a request before a handler
 * runs (fcgi/valid.c, fcgi/route.c, fcgi/http.c; README.md; `make fuzz`).
 *
 * Byte 0 picks what the rest is:
 *   0: a JSON body: strict parse (jsoncheck_parse, as api_parse_body does), then valid_object
 *      against field tables shaped like the handlers' (required and optional strings with
 *      bounds, names, text, integers, enums, anything);
 *   1: a request path, matched against every route of the table (route_match);
 *   2: a header value: Content-Length (http_parse_length), Content-Type
 *      (http_is_json_type) and Host (http_host_name, and the stream origin built from it);
 *   3: a query string, read by api_query and api_query_int as handlers read theirs, and
 *      the rooms list's `before` cursor (rooms_parse_before).
 *
 * Laws (a break aborts): a refused body says why, naming the field; every value of an
 * accepted one is within its field's rules again (valid_text, the integer bounds, the enum's
 * choices, the name check); a path's captures are one per '*' of the pattern, 1..64 id
 * characters each, and a path a pattern matches never has a malformed id for it (a malformed
 * one names a room, job, member or revision); a length taken is the decimal the value spells; a host name is a prefix
 * of the value; a query's names are read decoded (a leading "limit" reads the same written
 * "li%6Dit"); a query value taken holds only [A-Za-z0-9._-] and fits its buffer, an integer
 * taken is within its bounds, a `before` cursor taken prints back as the same text, and a
 * refused one is answered 400 with a JSON error; a stream
 * origin built from a Host passes origin_parse unchanged but for
 * case. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../fcgi/api.h"
#include "../../fcgi/handlers.h"
#include "../../fcgi/http.h"
#include "../../fcgi/route.h"
#include "../../fcgi/valid.h"
#include "jsoncheck.h"
#include "origin.h"
#include "fuzz.h"
#include "fuzz_api.h"

static const char *const vis[] = {"public", "private", NULL};

static const struct valid_field signup[] = {
	{"username", VALID_STRING, VALID_REQUIRED | VALID_SINGLE_LINE, 3, 32, NULL, valid_plain_name},
	{"password", VALID_STRING, VALID_REQUIRED, 8, 1024, NULL, NULL},
};
static const struct valid_field ops[] = {
	{"revision", VALID_INT, VALID_REQUIRED, 0, (1LL << 52) - 1, NULL, NULL},
	{"ops", VALID_ANY, VALID_REQUIRED, 0, 0, NULL, NULL},
	{"client_id", VALID_STRING, VALID_SINGLE_LINE, 1, 64, NULL, NULL},
};
static const struct valid_field room[] = {
	{"name", VALID_STRING, VALID_SINGLE_LINE, 1, 100, NULL, NULL},
	{"visibility", VALID_ENUM, 0, 0, 0, vis, NULL},
	{"cursor", VALID_INT, 0, 0, 1LL << 40, NULL, NULL},
};
static const struct valid_field run[] = {
	{"language", VALID_STRING, VALID_SINGLE_LINE, 1, 32, NULL, NULL},
	{"code", VALID_STRING, VALID_TEXT, 0, 1 << 20, NULL, NULL},
	{"stdin", VALID_STRING, VALID_TEXT, 0, 4096, NULL, NULL},
	{"args", VALID_ANY, 0, 0, 0, NULL, NULL},
	{"request_id", VALID_STRING, VALID_SINGLE_LINE, 1, 64, NULL, valid_plain_name},
};

static void check_table(const cJSON *body, const struct valid_field *f, size_t n)
{
	struct valid_value v[8];
	char err[256] = "";
	if (valid_object(body, f, n, v, err, sizeof err) < 0) {
		int named = 0;
		for (size_t i = 0; i < n; i++)
			named |= strncmp(err, f[i].name, strlen(f[i].name)) == 0;
		if (!named)
			__builtin_trap();
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!v[i].present) {
			if (f[i].flags & VALID_REQUIRED)
				__builtin_trap();
			continue;
		}
		const char *why = NULL;
		switch (f[i].type) {
		case VALID_INT:
			if (v[i].n < f[i].min || v[i].n > f[i].max)
				__builtin_trap();
			break;
		case VALID_STRING:
			if (!v[i].s || strlen(v[i].s) != v[i].len ||
			    valid_text(v[i].s, v[i].len, f[i].min, f[i].max, f[i].flags, &why) < 0)
				__builtin_trap();
			if (f[i].check && f[i].check(v[i].s, &why) < 0)
				__builtin_trap();
			break;
		case VALID_ENUM: {
			int ok = 0;
			for (const char *const *c = f[i].choices; *c; c++)
				ok |= v[i].s && strcmp(*c, v[i].s) == 0;
			if (!ok)
				__builtin_trap();
			break;
		}
		case VALID_ANY:
			if (!v[i].item)
				__builtin_trap();
			break;
		}
	}
}

static void fuzz_body(const char *s, size_t n)
{
	cJSON *body = jsoncheck_parse(s, n, NULL);
	if (!body)
		return;
	check_table(body, signup, sizeof signup / sizeof signup[0]);
	check_table(body, ops, sizeof ops / sizeof ops[0]);
	check_table(body, room, sizeof room / sizeof room[0]);
	check_table(body, run, sizeof run / sizeof run[0]);
	cJSON_Delete(body);
}

static int id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static void fuzz_path(const char *path)
{
	for (size_t i = 0; i < route_count(); i++) {
		const char *pat = route_pattern(i);
		char params[API_MAX_PARAMS][API_ID_MAX + 1];
		int np = -1;
		const char *kind = NULL;
		int bad = route_match_malformed(pat, path, &kind);
		if (bad && (!kind || (strcmp(kind, "room") && strcmp(kind, "job") &&
				      strcmp(kind, "member") && strcmp(kind, "revision"))))
			__builtin_trap();
		if (!route_match(pat, path, params, &np))
			continue;
		/* a path a route takes is never also one with a malformed id */
		if (bad)
			__builtin_trap();
		int stars = 0;
		for (const char *p = pat; *p; p++)
			stars += *p == '*';
		if (np != stars)
			__builtin_trap();
		for (int k = 0; k < np; k++) {
			size_t len = strnlen(params[k], API_ID_MAX + 1);
			if (len == 0 || len > API_ID_MAX || !strstr(path, params[k]))
				__builtin_trap();
			for (size_t j = 0; j < len; j++)
				if (!id_char(params[k][j]))
					__builtin_trap();
		}
	}
}

static void fuzz_header(const char *v)
{
	size_t len = 0;
	if (http_parse_length(v, &len) == 0) {
		char back[32];
		snprintf(back, sizeof back, "%zu", len);
		/* leading zeros aside, the value is the decimal taken; or, past what size_t
		 * holds (more digits, or as many and larger), the largest value */
		const char *d = v;
		while (d[0] == '0' && d[1])
			d++;
		size_t nd = strlen(d), nb = strlen(back);
		int past = nd > nb || (nd == nb && strcmp(d, back) > 0);
		if (past ? len != (size_t)-1 : strcmp(back, d) != 0)
			__builtin_trap();
	}
	(void)http_is_json_type(v);
	char name[HTTP_ORIGIN_MAX];
	if (http_host_name(v, name, sizeof name) == 0 && strncmp(name, v, strlen(name)) != 0)
		__builtin_trap();
	char origin[HTTP_ORIGIN_MAX], again[HTTP_ORIGIN_MAX];
	if (http_stream_origin("auto", 8080, v, 0, origin, sizeof origin) == 1) {
		/* the same origin, but for case: the host is kept as the client wrote it */
		if (origin_parse(origin, again, sizeof again, NULL, 0) < 0 ||
		    strcasecmp(origin, again) != 0)
			__builtin_trap();
	}
}

static void refused_well(struct http_resp *resp)
{
	cJSON *o = cJSON_ParseWithLength(resp->body.data, resp->body.len);
	if (resp->status != 400 || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "error")) ||
	    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "message")))
		__builtin_trap();
	cJSON_Delete(o);
}

static void fuzz_query(char *query)
{
	struct http_req req;
	struct http_resp resp;
	struct api_ctx c;
	fuzz_api_ctx(&c, &req, &resp);
	req.query = query;
	static const char *const names[] = {"before", "status", "kind", "q"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char v[96];
		int got = api_query(&c, names[i], v, sizeof v);
		if (got < 0) {
			refused_well(&resp);
			http_resp_free(&resp);
			http_resp_init(&resp);
			continue;
		}
		if (got == 1) {
			size_t n = strnlen(v, sizeof v);
			if (n >= sizeof v)
				__builtin_trap();
			for (size_t k = 0; k < n; k++)
				if (!id_char(v[k]) && v[k] != '.')
					__builtin_trap();
			/* the rooms list's cursor: taken only as a page writes it */
			long long us = -1;
			const char *id = NULL;
			char back[128];
			if (i == 0 && rooms_parse_before(v, &us, &id) == 0 &&
			    (us < 0 || !id || !*id || strchr(id, '.') ||
			     (snprintf(back, sizeof back, "%lld.%s", us, id), strcmp(back, v) != 0)))
				__builtin_trap();
		}
	}
	long long n = 0;
	int lrc = api_query_int(&c, "limit", 1, 500, 50, &n);
	if (lrc < 0)
		refused_well(&resp);
	else if (n < 1 || n > 500)
		__builtin_trap();
	http_resp_free(&resp);
	/* names are read decoded: the query with a leading "limit" written "li%6Dit" reads the
	 * same */
	if (strncmp(query, "limit", 5) == 0) {
		size_t qlen = strlen(query);
		char *e = malloc(qlen + 3);
		long long n2 = 0;
		if (!e)
			__builtin_trap();
		memcpy(e, "li%6Dit", 7);
		memcpy(e + 7, query + 5, qlen - 5 + 1);
		fuzz_api_ctx(&c, &req, &resp);
		req.query = e;
		int lrc2 = api_query_int(&c, "limit", 1, 500, 50, &n2);
		if (lrc2 != lrc || (lrc == 0 && n2 != n))
			__builtin_trap();
		http_resp_free(&resp);
		free(e);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	if (!s)
		return 0;
	switch (data[0] % 4) {
	case 0:
		fuzz_body(s, size - 1);
		break;
	case 1:
		fuzz_path(s);
		break;
	case 2:
		fuzz_header(s);
		break;
	default:
		fuzz_query(s);
		break;
	}
	free(s);
	return 0;
}

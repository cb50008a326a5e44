/* jsoncheck: strict RFC 8259 checking of outside JSON (lib/jsoncheck.h). */
#include "jsoncheck.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

/* The status for a NUL-terminated text; *e keeps the details. */
static struct jsoncheck_error e;
static enum jsoncheck_status st(const char *s)
{
	memset(&e, 0, sizeof e);
	return jsoncheck_text(s, strlen(s), &e);
}

static int has(const char *needle)
{
	return strstr(e.message, needle) != NULL;
}

int main(void)
{
	/* what RFC 8259 allows passes */
	const char *good[] = {
		"{}", "[]", "0", "-0", "1.5", "-12.25e+10", "1E5", "0e0", "true", "false", "null",
		"\"\"", " \t\r\n{ \"a\" : [ 1 , 2 , {\"b\":null} ] } \n",
		"{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude80\"}",
		"[\"\xc3\xa9\xf0\x9f\x9a\x80\"]", /* raw UTF-8 */
		"{\"revision\":1,\"ops\":[6,\"\\u0001\\u001f\"]}", /* control characters escaped */
		"\"\x7f\"",                                       /* DEL is not a control byte in JSON */
	};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		if (st(good[i]) != JSONCHECK_OK)
			fprintf(stderr, "refused %s: %s\n", good[i], e.message);
		CHECK(st(good[i]) == JSONCHECK_OK);
	}

	/* the reported case: raw control bytes inside a string, with where they are */
	CHECK(st("{\"revision\":1,\"ops\":[6,\"ab\x01\"]}") == JSONCHECK_CONTROL);
	CHECK(e.at == 26);
	CHECK_STR(e.message, "a raw control byte 0x01 inside a string at byte 26 (RFC 8259 "
			     "requires it escaped, e.g. \\u0001)");
	CHECK(st("[\"\t\"]") == JSONCHECK_CONTROL); /* even tab and newline, raw */
	CHECK(st("[\"a\nb\"]") == JSONCHECK_CONTROL && e.at == 3);
	CHECK(st("{\"a\x1f\":1}") == JSONCHECK_CONTROL); /* in a name too */
	/* a NUL byte anywhere; the length is given, so the text goes on past it */
	memset(&e, 0, sizeof e);
	CHECK(jsoncheck_text("[\"a\0\"]", 6, &e) == JSONCHECK_CONTROL && e.at == 3 &&
	      has("NUL byte at byte 3"));
	memset(&e, 0, sizeof e);
	CHECK(jsoncheck_text("{}\0", 3, &e) == JSONCHECK_CONTROL);

	/* whitespace is space, tab, LF, CR only (cJSON skips every byte up to 0x20) */
	CHECK(st("{\x01}") == JSONCHECK_CONTROL && e.at == 1 && has("0x01"));
	CHECK(st("\x0b[]") == JSONCHECK_CONTROL);
	CHECK(st("[1,\x0c 2]") == JSONCHECK_CONTROL);

	/* numbers */
	CHECK(st("01") == JSONCHECK_NUMBER && has("leading zero"));
	CHECK(st("[-01]") == JSONCHECK_NUMBER && e.at == 1);
	CHECK(st("1.") == JSONCHECK_NUMBER);
	CHECK(st("1.e5") == JSONCHECK_NUMBER);
	CHECK(st(".5") == JSONCHECK_SYNTAX);
	CHECK(st("-") == JSONCHECK_NUMBER);
	CHECK(st("+1") == JSONCHECK_SYNTAX);
	CHECK(st("1e") == JSONCHECK_NUMBER && has("exponent"));
	CHECK(st("1e+") == JSONCHECK_NUMBER);
	CHECK(st("0x10") == JSONCHECK_TRAILING);
	CHECK(st("[NaN]") == JSONCHECK_SYNTAX);
	CHECK(st("[Infinity]") == JSONCHECK_SYNTAX);

	/* escapes */
	CHECK(st("[\"\\q\"]") == JSONCHECK_ESCAPE && e.at == 2);
	CHECK(st("[\"\\u12\"]") == JSONCHECK_ESCAPE);
	CHECK(st("[\"\\u12g4\"]") == JSONCHECK_ESCAPE);
	CHECK(st("[\"\\") == JSONCHECK_SYNTAX); /* cut after the backslash */
	CHECK(st("[\"\\u0000\"]") == JSONCHECK_NUL_ESCAPE && has("\\u0000"));
	CHECK(st("[\"\\ud800\"]") == JSONCHECK_SURROGATE && has("high"));
	CHECK(st("[\"\\udc00\"]") == JSONCHECK_SURROGATE && has("low"));
	CHECK(st("[\"\\ud800\\u0041\"]") == JSONCHECK_SURROGATE);
	CHECK(st("[\"\\ud800\\ud800\"]") == JSONCHECK_SURROGATE);
	CHECK(st("[\"\\ud83d") == JSONCHECK_SURROGATE); /* at the end of the text */

	/* UTF-8 and a byte order mark */
	CHECK(st("[\"\xc0\xaf\"]") == JSONCHECK_UTF8 && e.at == 2 && has("overlong"));
	CHECK(st("[\"\xed\xa0\x80\"]") == JSONCHECK_UTF8);
	CHECK(st("\xef\xbb\xbf{}") == JSONCHECK_SYNTAX && e.at == 0);
	CHECK(st("[\xc3\xa9]") == JSONCHECK_SYNTAX && has("0xC3")); /* non-ASCII outside strings */

	/* structure */
	CHECK(st("") == JSONCHECK_EMPTY);
	CHECK(st("  \n") == JSONCHECK_EMPTY);
	CHECK(st("{") == JSONCHECK_SYNTAX && has("ends at byte 1"));
	CHECK(st("[1,]") == JSONCHECK_SYNTAX);
	CHECK(st("{\"a\":1,}") == JSONCHECK_SYNTAX && has("member name"));
	CHECK(st("{a:1}") == JSONCHECK_SYNTAX);
	CHECK(st("{'a':1}") == JSONCHECK_SYNTAX);
	CHECK(st("{\"a\" 1}") == JSONCHECK_SYNTAX && has("':'"));
	CHECK(st("[1 2]") == JSONCHECK_SYNTAX && has("',' or ']'"));
	CHECK(st("{\"a\":1]") == JSONCHECK_SYNTAX && has("',' or '}'"));
	CHECK(st("{\"a\":1} x") == JSONCHECK_TRAILING && e.at == 8);
	CHECK(st("{}{}") == JSONCHECK_TRAILING);
	CHECK(st("[tru]") == JSONCHECK_SYNTAX);
	CHECK(st("[truex]") == JSONCHECK_SYNTAX);
	CHECK(st("[\"abc") == JSONCHECK_SYNTAX && has("not closed"));
	CHECK(st("{\"a\":1 /* c */}") == JSONCHECK_SYNTAX);

	/* depth: the bound passes, one more level does not, and a huge depth costs nothing */
	char deep[2 * JSONCHECK_MAX_DEPTH + 4];
	for (int extra = 0; extra < 2; extra++) {
		size_t d = JSONCHECK_MAX_DEPTH + (size_t)extra, k = 0;
		for (size_t j = 0; j < d; j++)
			deep[k++] = '[';
		for (size_t j = 0; j < d; j++)
			deep[k++] = ']';
		deep[k] = '\0';
		CHECK(st(deep) == (extra ? JSONCHECK_DEPTH : JSONCHECK_OK));
	}
	size_t big = 1000000;
	char *huge = malloc(big + 1);
	CHECK(huge != NULL);
	if (huge) {
		memset(huge, '[', big);
		huge[big] = '\0';
		CHECK(st(huge) == JSONCHECK_DEPTH && e.at == JSONCHECK_MAX_DEPTH);
		free(huge);
	}

	/* duplicate names, compared after decoding, at any depth; the same name in two
	 * objects is fine */
	memset(&e, 0, sizeof e);
	cJSON *o = jsoncheck_parse("{\"a\":1,\"b\":{\"x\":1},\"c\":[{\"x\":2}]}",
			    strlen("{\"a\":1,\"b\":{\"x\":1},\"c\":[{\"x\":2}]}"), &e);
	CHECK(o != NULL);
	cJSON_Delete(o);
	const char *dups[] = {
		"{\"a\":1,\"a\":2}",
		"{\"a\":1,\"\\u0061\":2}",
		"[{\"k\":{\"z\":1,\"y\":2,\"z\":3}}]",
	};
	for (size_t i = 0; i < sizeof dups / sizeof *dups; i++) {
		memset(&e, 0, sizeof e);
		o = jsoncheck_parse(dups[i], strlen(dups[i]), &e);
		CHECK(o == NULL && e.status == JSONCHECK_DUPLICATE && has("appears twice"));
		cJSON_Delete(o);
	}
	memset(&e, 0, sizeof e);
	o = jsoncheck_parse("{\"revision\":1,\"revision\":2}", 27, &e);
	CHECK(o == NULL);
	CHECK_STR(e.message, "the member name \"revision\" appears twice");
	/* jsoncheck_parse parses what it passes, length-bounded */
	o = jsoncheck_parse("{\"a\":[1,\"\\u00e9\"]}xyz", 18, &e);
	CHECK(o && cJSON_IsArray(cJSON_GetObjectItem(o, "a")));
	CHECK(o && strcmp(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "a"), 1)->valuestring,
			  "\xc3\xa9") == 0);
	cJSON_Delete(o);
	/* the error pointer may be NULL */
	CHECK(jsoncheck_text("[\x01]", 3, NULL) == JSONCHECK_CONTROL);
	CHECK(jsoncheck_parse("{\"a\":1,\"a\":1}", 13, NULL) == NULL);
	return unit_summary("test_jsoncheck");
}

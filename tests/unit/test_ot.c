/* ot: unit tests, then a randomized property test and a simulated server with clients.
 * The random parts print their seed; OT_SEED=<n> replays a run. */
#include "buf.h"
#include "ot.h"
#include "unit.h"
#include "utf8.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERRLEN 256

/* --- helpers ------------------------------------------------------------------------- */

static struct ot_op *parse(const char *json)
{
	char err[ERRLEN];
	struct ot_op *op;
	if (ot_parse_json(json, strlen(json), 0, &op, err, sizeof err) < 0) {
		fprintf(stderr, "parse %s: %s\n", json, err);
		return NULL;
	}
	return op;
}

/* The operation printed back, normalised; a static buffer, valid until the next call. */
static const char *norm(const char *json)
{
	static char out[1024];
	struct ot_op *op = parse(json);
	char *s = op ? ot_to_json(op) : NULL;
	snprintf(out, sizeof out, "%s", s ? s : "(parse failed)");
	free(s);
	ot_free(op);
	return out;
}

/* 1 when parsing fails with a message containing want. */
static int parse_fails(const char *json, size_t len, size_t max_insert, const char *want)
{
	char err[ERRLEN] = "";
	struct ot_op *op = (struct ot_op *)1;
	int rc = ot_parse_json(json, len, max_insert, &op, err, sizeof err);
	if (rc == 0) {
		fprintf(stderr, "  parsed, but should not have: %s\n", json);
		ot_free(op);
		return 0;
	}
	if (op != NULL || !strstr(err, want)) {
		fprintf(stderr, "  %s: message \"%s\" lacks \"%s\"\n", json, err, want);
		return 0;
	}
	return 1;
}

#define FAILS(lit, want) parse_fails(lit, sizeof lit - 1, 0, want)

/* apply(op, doc) as a string; a static buffer: "!" and the message on failure. */
static const char *apply(const char *opjson, const char *doc)
{
	static char out[1024];
	char err[ERRLEN];
	struct buf b;
	buf_init(&b, 0);
	struct ot_op *op = parse(opjson);
	if (!op)
		snprintf(out, sizeof out, "!parse");
	else if (ot_apply(op, doc, strlen(doc), &b, err, sizeof err) < 0)
		snprintf(out, sizeof out, "!%s", err);
	else
		snprintf(out, sizeof out, "%s", b.data ? b.data : "");
	ot_free(op);
	buf_free(&b);
	return out;
}

/* --- parsing ------------------------------------------------------------------------- */

static void test_parse(void)
{
	struct ot_op *op = parse("[5, \"abc\", -2]");
	CHECK(op && ot_base_len(op) == 7 && ot_target_len(op) == 8 && ot_size(op) == 3);
	CHECK(op && !ot_is_noop(op));
	ot_free(op);

	CHECK_STR(norm("[]"), "[]");
	CHECK_STR(norm(" [ 1 ,\n\"a\" ]\r\n\t "), "[1,\"a\"]");
	CHECK_STR(norm("[\"x\"]"), "[\"x\"]");
	/* normalising: merged runs, insert before delete */
	CHECK_STR(norm("[1, 2, \"a\", \"b\", -1, -2]"), "[3,\"ab\",-3]");
	CHECK_STR(norm("[-2, \"x\"]"), "[\"x\",-2]");
	CHECK_STR(norm("[1, -1, \"a\", -1, \"b\", 2]"), "[1,\"ab\",-2,2]");
	CHECK_STR(norm("[-1, \"a\", -1, \"b\", -1]"), "[\"ab\",-3]");
	/* whole numbers written otherwise still count */
	CHECK_STR(norm("[3.0, -2e0, 1E1]"), "[3,-2,10]");
	CHECK_STR(norm("[1073741824]"), "[1073741824]");
	/* escapes are decoded, and printed back as needed */
	CHECK_STR(norm("[\"\\n\\\"\\\\\\t\\u00e9\\ud83d\\ude00\\u0001\\/\"]"),
		  "[\"\\n\\\"\\\\\\t\xC3\xA9\xF0\x9F\x98\x80\\u0001/\"]");
	op = parse("[\"\xE4\xB8\xAD\xF0\x9D\x84\x9E\", 2]");
	CHECK(op && ot_target_len(op) == 4 && ot_base_len(op) == 2);
	ot_free(op);
	op = parse("[4]");
	CHECK(op && ot_is_noop(op));
	ot_free(op);

	/* not one JSON array */
	CHECK(FAILS("", "not valid JSON"));
	CHECK(FAILS("[", "not valid JSON"));
	CHECK(FAILS("[1,]", "not valid JSON"));
	CHECK(FAILS("[1 2]", "not valid JSON"));
	CHECK(FAILS("[NaN]", "not valid JSON"));
	CHECK(FAILS("[Infinity]", "not valid JSON"));
	CHECK(FAILS("[\"a]", "not valid JSON"));
	CHECK(FAILS("[1] x", "unexpected text after the operation at byte 4"));
	CHECK(FAILS("[1][2]", "unexpected text"));
	CHECK(FAILS("[1]\0", "unexpected text"));
	CHECK(FAILS("{}", "must be a JSON array, not an object"));
	CHECK(FAILS("1", "must be a JSON array, not a number"));
	CHECK(FAILS("\"abc\"", "must be a JSON array, not a string"));
	CHECK(FAILS("null", "must be a JSON array, not null"));
	/* the length is honoured: the same bytes, cut, no longer parse */
	CHECK(parse_fails("[1, 2]", 4, 0, "not valid JSON"));

	/* components of the wrong type */
	CHECK(FAILS("[true]", "component 1: expected a number (retain or delete) or a string "
			      "(insert), not true"));
	CHECK(FAILS("[1, false]", "component 2: expected a number"));
	CHECK(FAILS("[1, \"a\", null]", "component 3: expected a number (retain or delete) or a "
					"string (insert), not null"));
	CHECK(FAILS("[[1]]", "not an array"));
	CHECK(FAILS("[{\"retain\": 1}]", "not an object"));

	/* zero, fractions, out of range */
	CHECK(FAILS("[0]", "component 1: 0 is not allowed"));
	CHECK(FAILS("[-0]", "0 is not allowed"));
	CHECK(FAILS("[1, 0.0]", "component 2: 0 is not allowed"));
	CHECK(FAILS("[1.5]", "component 1: 1.5 is not a whole number"));
	CHECK(FAILS("[-0.5]", "-0.5 is not a whole number"));
	CHECK(FAILS("[1e-300]", "not a whole number"));
	CHECK(FAILS("[1e400]", "component 1: the number is out of range"));
	CHECK(FAILS("[-1e400]", "out of range"));
	CHECK(FAILS("[1073741825]", "out of range (counts are at most 1073741824)"));
	CHECK(FAILS("[-1073741825]", "out of range"));
	CHECK(FAILS("[1, 2, 99999999999999999999999999]", "component 3: the number is out of range"));

	/* a NaN cannot be written in JSON, but a caller can build one with cJSON */
	cJSON *arr = cJSON_CreateArray();
	cJSON_AddItemToArray(arr, cJSON_CreateNumber(NAN));
	char err[ERRLEN];
	CHECK(ot_from_cjson(arr, 0, &op, err, sizeof err) == -1 && op == NULL);
	CHECK(strstr(err, "out of range") != NULL);
	cJSON_Delete(arr);
	arr = cJSON_CreateArray();
	cJSON_AddItemToArray(arr, cJSON_CreateNumber(INFINITY));
	CHECK(ot_from_cjson(arr, 0, &op, err, sizeof err) == -1);
	cJSON_Delete(arr);
	CHECK(ot_from_cjson(NULL, 0, &op, err, sizeof err) == -1 && op == NULL);
	CHECK_STR(err, "an operation is required");
	arr = cJSON_CreateObject();
	CHECK(ot_from_cjson(arr, 0, &op, err, sizeof err) == -1);
	cJSON_Delete(arr);
	/* a tiny err buffer is cut, not overrun; no buffer at all is fine */
	char tiny[8];
	CHECK(ot_parse_json("[0]", 3, 0, &op, tiny, sizeof tiny) == -1 && strlen(tiny) == 7);
	CHECK(ot_parse_json("[0]", 3, 0, &op, NULL, 0) == -1);

	/* text that is not valid UTF-8 once decoded */
	CHECK(FAILS("[\"\"]", "component 1: an empty insert is not allowed"));
	CHECK(FAILS("[1, \"ok\xC0\xAF\"]", "component 2: the inserted text is not valid UTF-8: an "
					  "overlong encoding at byte 2"));
	CHECK(FAILS("[\"\xED\xA0\x80\"]", "surrogate"));
	CHECK(FAILS("[\"\xF4\x90\x80\x80\"]", "above U+10FFFF"));
	CHECK(FAILS("[\"\xE4\xB8\"]", "incomplete"));
	CHECK(FAILS("[\"\xFF\"]", "not valid UTF-8"));
	/* lone surrogate escapes and \u0000, which cJSON would turn into a cut string */
	CHECK(FAILS("[\"\\uD800\"]", "the escape at byte 2 of the operation stands for a UTF-16 "
				     "surrogate"));
	CHECK(FAILS("[\"\\udc00\"]", "surrogate"));
	CHECK(FAILS("[\"\\uD83D\\u0041\"]", "surrogate"));
	CHECK(FAILS("[\"a\\u0000b\"]", "stands for a NUL character (U+0000)"));
	CHECK_STR(norm("[\"\\\\u0000\"]"), "[\"\\\\u0000\"]"); /* a backslash, then text */

	/* bounds: components and inserted bytes */
	struct buf b;
	buf_init(&b, 0);
	buf_putc(&b, '[');
	for (int i = 0; i < OT_MAX_COMPONENTS; i++)
		buf_puts(&b, i ? ",1" : "1");
	buf_putc(&b, ']');
	CHECK(ot_parse_json(b.data, b.len, 0, &op, err, sizeof err) == 0);
	CHECK(op && ot_size(op) == 1 && ot_base_len(op) == OT_MAX_COMPONENTS);
	ot_free(op);
	b.len--;
	buf_puts(&b, ",1]");
	CHECK(parse_fails(b.data, b.len, 0, "more than 10000 components"));
	buf_reset(&b);
	buf_putc(&b, '[');
	for (int i = 0; i < OT_MAX_COMPONENTS / 2; i++)
		buf_puts(&b, i ? ",1,\"x\"" : "1,\"x\"");
	buf_putc(&b, ']');
	CHECK(ot_parse_json(b.data, b.len, 0, &op, err, sizeof err) == 0);
	CHECK(op && ot_size(op) == OT_MAX_COMPONENTS);
	ot_free(op);

	CHECK(parse_fails("[\"12345678901\"]", 15, 10, "component 1: the operation inserts more "
						       "than 10 bytes of text"));
	CHECK(parse_fails("[\"12345\", 1, \"678901\"]", 22, 10, "component 3: the operation "
								"inserts more than 10 bytes"));
	CHECK(ot_parse_json("[\"12345\", 1, \"67890\"]", 21, 10, &op, err, sizeof err) == 0);
	ot_free(op);
	buf_reset(&b);
	buf_puts(&b, "[\"");
	for (size_t i = 0; i < OT_DEFAULT_MAX_INSERT; i++)
		buf_putc(&b, 'a');
	buf_puts(&b, "\"]");
	CHECK(ot_parse_json(b.data, b.len, 0, &op, err, sizeof err) == 0);
	CHECK(op && ot_target_len(op) == OT_DEFAULT_MAX_INSERT);
	ot_free(op);
	b.len -= 2;
	buf_puts(&b, "a\"]");
	CHECK(parse_fails(b.data, b.len, 0, "inserts more than 1048576 bytes"));
	buf_free(&b);
}

/* --- printing and building ----------------------------------------------------------- */

static void test_print_build(void)
{
	struct ot_op *op = ot_new();
	CHECK(op && ot_is_noop(op) && ot_base_len(op) == 0);
	CHECK(ot_retain(op, 2) == 0 && ot_retain(op, 0) == 0 && ot_delete(op, 1) == 0);
	CHECK(ot_insert(op, "\xC3\xA9t\xC3\xA9", 5) == 0); /* goes before the delete */
	CHECK(ot_insert(op, "\xC0\xAF", 2) == -1);          /* refused, op unchanged */
	CHECK(ot_insert(op, "", 0) == 0 && ot_delete(op, 0) == 0);
	CHECK(ot_delete(op, 2) == 0 && ot_retain(op, 1) == 0);
	char *s = ot_to_json(op);
	CHECK_STR(s, "[2,\"\xC3\xA9t\xC3\xA9\",-3,1]");
	free(s);
	CHECK(ot_base_len(op) == 6 && ot_target_len(op) == 6);

	cJSON *arr = ot_to_cjson(op);
	char *printed = arr ? cJSON_PrintUnformatted(arr) : NULL;
	CHECK_STR(printed, "[2,\"\xC3\xA9t\xC3\xA9\",-3,1]");
	cJSON_free(printed);
	struct ot_op *back;
	char err[ERRLEN];
	CHECK(ot_from_cjson(arr, 0, &back, err, sizeof err) == 0);
	s = back ? ot_to_json(back) : NULL;
	CHECK_STR(s, "[2,\"\xC3\xA9t\xC3\xA9\",-3,1]");
	free(s);
	ot_free(back);
	cJSON_Delete(arr);

	/* ot_write_json appends and honours the buffer's bound */
	struct buf b;
	buf_init(&b, 10);
	buf_puts(&b, "x=");
	CHECK(ot_write_json(op, &b) == -1);
	buf_free(&b);
	buf_init(&b, 0);
	buf_puts(&b, "x=");
	CHECK(ot_write_json(op, &b) == 0);
	CHECK_STR(b.data, "x=[2,\"\xC3\xA9t\xC3\xA9\",-3,1]");
	buf_free(&b);
	ot_free(op);
	ot_free(NULL);
}

/* --- applying ------------------------------------------------------------------------ */

static void test_apply(void)
{
	const char *d = "h\xC3\xA9llo w\xC3\xB6rld"; /* héllo wörld, 11 characters */
	CHECK_STR(apply("[5, \" there\"]", d), "h\xC3\xA9llo there w\xC3\xB6rld");
	CHECK_STR(apply("[1, -1, \"e\"]", d), "hello w\xC3\xB6rld");
	CHECK_STR(apply("[7, -1, \"o\", 3]", d), "h\xC3\xA9llo world");
	CHECK_STR(apply("[-11]", d), "");
	CHECK_STR(apply("[11, \"!\"]", d), "h\xC3\xA9llo w\xC3\xB6rld!");
	CHECK_STR(apply("[]", d), d);
	CHECK_STR(apply("[\"abc\"]", ""), "abc");
	/* astral characters are one character each */
	CHECK_STR(apply("[1, -1, \"\xF0\x9D\x84\x9E\"]", "a\xF0\x9F\x98\x80" "b"),
		  "a\xF0\x9D\x84\x9E" "b");
	CHECK_STR(apply("[1, -1]", "\xE4\xB8\xAD\xE6\x96\x87"), "\xE4\xB8\xAD");
	/* past the end */
	CHECK_STR(apply("[-5]", "abcd"), "!operation component 1: delete of 5 characters from "
					 "position 0 goes past the end of the 4-character document");
	CHECK_STR(apply("[3, \"x\", 2]", "abcd"),
		  "!operation component 3: retain of 2 characters from position 3 goes past the "
		  "end of the 4-character document");
	CHECK_STR(apply("[1, \"x\", -1, \"y\", -3]", "abcd"),
		  "!operation components 3 to 5: delete of 4 characters from position 1 goes past "
		  "the end of the 4-character document");
	CHECK_STR(apply("[1]", ""), "!operation component 1: retain of 1 character from position "
				    "0 goes past the end of the 0-character document");
	CHECK_STR(apply("[2, -1]", "\xF0\x9F\x98\x80\xF0\x9F\x98\x80"),
		  "!operation component 2: delete of 1 character from position 2 goes past the "
		  "end of the 2-character document");
	/* a document that is not valid UTF-8 */
	CHECK_STR(apply("[1]", "a\xC0\xAF"), "!the document is not valid UTF-8: an overlong "
					     "encoding at byte 1");

	/* the output bound, and out is reset first and left empty on failure */
	struct ot_op *op = parse("[2, \"xyz\"]");
	char err[ERRLEN];
	struct buf b;
	buf_init(&b, 6);
	CHECK(op && ot_apply(op, "abc", 3, &b, err, sizeof err) == 0);
	CHECK_STR(b.data, "abxyzc");
	CHECK(op && ot_apply(op, "abcd", 4, &b, err, sizeof err) == -1);
	CHECK_STR(err, "the document would grow past its limit of 6 bytes");
	CHECK(b.len == 0);
	buf_free(&b);
	ot_free(op);

	/* a document at the default size limit, of three-byte characters */
	buf_init(&b, 0);
	for (int i = 0; i < 349525; i++)
		buf_puts(&b, "\xE4\xB8\xAD");
	op = parse("[100000, \"x\", -1, 249523, \"\xF0\x9F\x98\x80\", -1]");
	struct buf big;
	buf_init(&big, (size_t)1 << 20);
	CHECK(op && ot_apply(op, b.data, b.len, &big, err, sizeof err) == 0);
	CHECK(big.len == b.len - 6 + 1 + 4 && utf8_count(big.data, big.len) == 349525);
	CHECK(big.len > 300000 && memcmp(big.data + 300000, "x\xE4\xB8\xAD", 4) == 0);
	CHECK(memcmp(big.data + big.len - 4, "\xF0\x9F\x98\x80", 4) == 0);
	ot_free(op);
	buf_free(&big);
	buf_free(&b);

	/* extend: the trailing retain made explicit */
	op = parse("[2, -1]");
	CHECK(op && ot_extend(op, 3, err, sizeof err) == 0 && ot_base_len(op) == 3);
	CHECK(op && ot_extend(op, 5, err, sizeof err) == 0 && ot_base_len(op) == 5);
	char *s = op ? ot_to_json(op) : NULL;
	CHECK_STR(s, "[2,-1,2]");
	free(s);
	CHECK(op && ot_extend(op, 4, err, sizeof err) == -1);
	ot_free(op);
	op = parse("[2, \"a\", -1]");
	CHECK(op && ot_extend(op, 2, err, sizeof err) == -1);
	CHECK_STR(err, "operation component 3: delete of 1 character from position 2 goes past "
		       "the end of the 2-character document");
	ot_free(op);
	op = parse("[\"x\", 4]");
	CHECK(op && ot_extend(op, 4, err, sizeof err) == 0 && ot_size(op) == 2);
	ot_free(op);
}

/* --- composing and transforming ------------------------------------------------------ */

static const char *compose(const char *aj, const char *bj)
{
	static char out[1024];
	char err[ERRLEN];
	struct ot_op *a = parse(aj), *b = parse(bj), *c = NULL;
	if (!a || !b) {
		snprintf(out, sizeof out, "!parse");
	} else if (ot_compose(a, b, &c, err, sizeof err) < 0) {
		snprintf(out, sizeof out, "!%s", err);
	} else {
		char *s = ot_to_json(c);
		snprintf(out, sizeof out, "%s", s);
		free(s);
	}
	ot_free(a);
	ot_free(b);
	ot_free(c);
	return out;
}

/* "a' b'" as JSON, or "!message". */
static const char *transform(const char *aj, const char *bj)
{
	static char out[1024];
	char err[ERRLEN];
	struct ot_op *a = parse(aj), *b = parse(bj), *ap = NULL, *bp = NULL;
	if (!a || !b) {
		snprintf(out, sizeof out, "!parse");
	} else if (ot_transform(a, b, &ap, &bp, err, sizeof err) < 0) {
		snprintf(out, sizeof out, "!%s", err);
		CHECK(ap == NULL && bp == NULL);
	} else {
		char *s1 = ot_to_json(ap), *s2 = ot_to_json(bp);
		snprintf(out, sizeof out, "%s %s", s1, s2);
		free(s1);
		free(s2);
	}
	ot_free(a);
	ot_free(b);
	ot_free(ap);
	ot_free(bp);
	return out;
}

static void test_compose(void)
{
	CHECK_STR(compose("[\"ab\", 3]", "[1, -2, \"X\", 2]"), "[\"aX\",-1,2]");
	CHECK_STR(apply("[\"aX\",-1,2]", "xyz"), "aXyz");
	CHECK_STR(compose("[\"\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97\"]", "[1, -1, 1]"),
		  "[\"\xE4\xB8\xAD\xE5\xAD\x97\"]");
	CHECK_STR(compose("[-2, 1]", "[\"q\", 1]"), "[\"q\",-2,1]");
	CHECK_STR(compose("[\"abc\"]", "[-3]"), "[]");
	CHECK_STR(compose("[]", "[]"), "[]");
	CHECK_STR(compose("[3]", "[2]"), "!cannot compose: the first operation leaves 3 characters "
					 "but the second expects 2");
}

static void test_transform(void)
{
	/* the tie-break: b (committed) goes first, a after it, on both sides */
	CHECK_STR(transform("[1, \"a\", 2]", "[1, \"b\", 2]"), "[2,\"a\",2] [1,\"b\",3]");
	CHECK_STR(apply("[2,\"a\",2]", "xbyz"), "xbayz");
	CHECK_STR(apply("[1,\"b\",3]", "xayz"), "xbayz");
	CHECK_STR(transform("[\"\xF0\x9F\x98\x80\"]", "[\"\xC3\xA9\"]"),
		  "[1,\"\xF0\x9F\x98\x80\"] [\"\xC3\xA9\",1]");
	/* overlapping deletes */
	CHECK_STR(transform("[-2, 1]", "[1, -2]"), "[-1] [-1]");
	/* an insert inside a range the other deleted survives */
	CHECK_STR(transform("[1, \"Q\", 2]", "[-3]"), "[\"Q\"] [-1,1,-2]");
	CHECK_STR(apply("[-1,1,-2]", "xQyz"), "Q");
	/* independent edits */
	CHECK_STR(transform("[-1, 2]", "[3, \"!\"]"), "[-1,3] [2,\"!\"]");
	CHECK_STR(transform("[]", "[]"), "[] []");
	CHECK_STR(transform("[3]", "[2]"), "!cannot transform: the operations apply to documents of "
					   "different lengths (3 and 2 characters)");

	/* cursors */
	struct ot_op *op = parse("[2, \"abc\", -2, 3]");
	CHECK(op && ot_transform_index(op, 0) == 0);
	CHECK(op && ot_transform_index(op, 1) == 1);
	CHECK(op && ot_transform_index(op, 2) == 5); /* text inserted at the cursor: after it */
	CHECK(op && ot_transform_index(op, 3) == 5); /* inside the deleted range */
	CHECK(op && ot_transform_index(op, 4) == 5);
	CHECK(op && ot_transform_index(op, 5) == 6);
	CHECK(op && ot_transform_index(op, 7) == 8);
	ot_free(op);
}

/* --- randomized ---------------------------------------------------------------------- */

struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r) /* splitmix64 */
{
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static size_t rng_below(struct rng *r, size_t n)
{
	return n ? (size_t)(rng_next(r) % n) : 0;
}

/* ASCII, two-, three- and four-byte characters, and JSON's specials */
static const char *const pieces[] = {
	"a", "b", "z", " ", "\n", "\"", "\\", "\t",
	"\xC3\xA9",         /* é */
	"\xD0\xB6",         /* ж */
	"\xE4\xB8\xAD",     /* 中 */
	"\xF0\x9F\x98\x80", /* 😀 */
	"\xF0\x9D\x84\x9E", /* 𝄞 */
};
#define NPIECES (sizeof pieces / sizeof pieces[0])

static void random_text(struct rng *r, struct buf *out, size_t max_chars)
{
	size_t n = 1 + rng_below(r, max_chars);
	for (size_t i = 0; i < n; i++)
		buf_puts(out, pieces[rng_below(r, NPIECES)]);
}

/* A random operation on a document of len characters, with its trailing retain. Long
 * documents get more deletes, so the simulation's document stays small. */
static struct ot_op *random_op(struct rng *r, size_t len)
{
	struct ot_op *op = ot_new();
	struct buf t;
	buf_init(&t, 0);
	size_t pos = 0, del_weight = len > 60 ? 4 : 1;
	while (pos < len) {
		size_t k = 1 + rng_below(r, len - pos < 6 ? len - pos : 6);
		size_t pick = rng_below(r, 4 + del_weight);
		if (pick < 3) {
			ot_retain(op, k);
			pos += k;
		} else if (pick == 3) {
			buf_reset(&t);
			random_text(r, &t, 4);
			ot_insert(op, t.data, t.len);
		} else {
			ot_delete(op, k);
			pos += k;
		}
	}
	if (rng_below(r, 3) == 0) {
		buf_reset(&t);
		random_text(r, &t, 4);
		ot_insert(op, t.data, t.len);
	}
	buf_free(&t);
	return op;
}

/* op's JSON, with the trailing retain left out half the time (the contract allows it). */
static char *random_json(struct rng *r, const struct ot_op *op)
{
	char *s = ot_to_json(op);
	size_t n = strlen(s);
	if (rng_below(r, 2) && n >= 3 && s[n - 2] >= '0' && s[n - 2] <= '9') {
		size_t i = n - 2;
		while (s[i - 1] >= '0' && s[i - 1] <= '9')
			i--;
		if (s[i - 1] == ',' || s[i - 1] == '[') {
			i = s[i - 1] == ',' ? i - 1 : i;
			s[i] = ']';
			s[i + 1] = '\0';
		}
	}
	return s;
}

static int apply_ok(const struct ot_op *op, const char *doc, size_t len, struct buf *out)
{
	char err[ERRLEN];
	if (ot_apply(op, doc, len, out, err, sizeof err) < 0) {
		fprintf(stderr, "apply: %s\n", err);
		return 0;
	}
	return 1;
}

static int same_op(const struct ot_op *a, const struct ot_op *b)
{
	char *x = ot_to_json(a), *y = ot_to_json(b);
	int eq = strcmp(x, y) == 0;
	free(x);
	free(y);
	return eq;
}

/* Convergence (apply(apply(d,a),b') == apply(apply(d,b),a')), composition, lengths and
 * the JSON round trip, on random documents and concurrent operations. */
static void property(uint64_t seed, int rounds)
{
	struct rng r = {seed};
	struct buf doc, da, db, dab, dba, dc;
	buf_init(&doc, 0);
	buf_init(&da, 0);
	buf_init(&db, 0);
	buf_init(&dab, 0);
	buf_init(&dba, 0);
	buf_init(&dc, 0);
	int bad = 0;
	char err[ERRLEN];
	for (int i = 0; i < rounds && bad < 5; i++) {
		buf_reset(&doc);
		if (rng_below(&r, 8))
			random_text(&r, &doc, 30);
		size_t len = utf8_count(doc.data ? doc.data : "", doc.len);
		struct ot_op *a = random_op(&r, len), *b = random_op(&r, len);
		struct ot_op *ap = NULL, *bp = NULL, *ab = NULL, *ba = NULL, *back = NULL;
		int ok = apply_ok(a, doc.data, doc.len, &da) && apply_ok(b, doc.data, doc.len, &db);
		ok = ok && ot_target_len(a) == utf8_count(da.data, da.len);
		ok = ok && ot_transform(a, b, &ap, &bp, err, sizeof err) == 0;
		ok = ok && apply_ok(bp, da.data, da.len, &dab) && apply_ok(ap, db.data, db.len, &dba);
		ok = ok && dab.len == dba.len && memcmp(dab.data, dba.data, dab.len) == 0;
		ok = ok && ot_compose(a, bp, &ab, err, sizeof err) == 0;
		ok = ok && apply_ok(ab, doc.data, doc.len, &dc) && dc.len == dab.len &&
		     memcmp(dc.data, dab.data, dc.len) == 0;
		ok = ok && ot_compose(b, ap, &ba, err, sizeof err) == 0;
		ok = ok && apply_ok(ba, doc.data, doc.len, &dc) && dc.len == dab.len &&
		     memcmp(dc.data, dab.data, dc.len) == 0;
		/* the JSON round trip, short form included */
		char *js = random_json(&r, a);
		ok = ok && ot_parse_json(js, strlen(js), 0, &back, err, sizeof err) == 0;
		ok = ok && ot_extend(back, len, err, sizeof err) == 0 && same_op(a, back);
		if (!ok) {
			bad++;
			char *sa = ot_to_json(a), *sb = ot_to_json(b);
			fprintf(stderr, "property round %d: doc \"%s\" a %s b %s json %s (%s)\n", i,
				doc.data ? doc.data : "", sa, sb, js, err);
			free(sa);
			free(sb);
		}
		free(js);
		ot_free(a);
		ot_free(b);
		ot_free(ap);
		ot_free(bp);
		ot_free(ab);
		ot_free(ba);
		ot_free(back);
	}
	CHECK(bad == 0);
	buf_free(&doc);
	buf_free(&da);
	buf_free(&db);
	buf_free(&dab);
	buf_free(&dba);
	buf_free(&dc);
}

/* --- a simulated server and its clients ---------------------------------------------- */

/* The classic OT client: synchronized (nothing sent unacknowledged), awaiting (one
 * operation sent, no answer yet) or awaiting with a buffer (and more edits made since,
 * composed into one, to send once the first is acknowledged). */
struct client {
	struct buf doc;
	size_t rev;                /* server operations received */
	struct ot_op *outstanding; /* sent, not acknowledged; NULL when synchronized */
	struct ot_op *buffer;      /* edited since; only while awaiting */
};

struct sent {
	size_t client, rev;
	char *json;
};

#define NCLIENTS 5

/* The server keeps its log as JSON, as Redis would, and the length of the document at
 * each revision, to extend operations sent without their trailing retain. */
struct server {
	struct buf doc;
	char **log;
	size_t *author;
	size_t *len_at; /* len_at[r]: characters at revision r */
	size_t nlog, cap;
	struct sent queue[NCLIENTS]; /* each client has at most one operation in flight */
	size_t qhead, qlen;
};

static int sim_send(struct server *s, size_t client, size_t rev, char *json)
{
	if (s->qlen == NCLIENTS)
		return -1;
	s->queue[(s->qhead + s->qlen++) % NCLIENTS] = (struct sent){client, rev, json};
	return 0;
}

static int client_edit(struct client *c, size_t id, struct server *s, struct rng *r)
{
	char err[ERRLEN];
	size_t len = utf8_count(c->doc.data ? c->doc.data : "", c->doc.len);
	struct ot_op *op = random_op(r, len);
	struct buf out;
	buf_init(&out, 0);
	int ok = apply_ok(op, c->doc.data ? c->doc.data : "", c->doc.len, &out);
	buf_free(&c->doc);
	c->doc = out;
	if (!c->outstanding) {
		c->outstanding = op;
		ok = ok && sim_send(s, id, c->rev, random_json(r, op)) == 0;
	} else if (!c->buffer) {
		c->buffer = op;
	} else {
		struct ot_op *both;
		ok = ok && ot_compose(c->buffer, op, &both, err, sizeof err) == 0;
		ot_free(op);
		ot_free(c->buffer);
		c->buffer = ok ? both : NULL;
	}
	return ok;
}

static int server_receive(struct server *s)
{
	char err[ERRLEN];
	struct sent m = s->queue[s->qhead];
	s->qhead = (s->qhead + 1) % NCLIENTS;
	s->qlen--;
	struct ot_op *op;
	int ok = ot_parse_json(m.json, strlen(m.json), 0, &op, err, sizeof err) == 0;
	free(m.json);
	ok = ok && ot_extend(op, s->len_at[m.rev], err, sizeof err) == 0;
	for (size_t r = m.rev; ok && r < s->nlog; r++) {
		struct ot_op *done, *ap, *bp;
		ok = ot_parse_json(s->log[r], strlen(s->log[r]), 0, &done, err, sizeof err) == 0;
		ok = ok && ot_transform(op, done, &ap, &bp, err, sizeof err) == 0;
		ot_free(done);
		ot_free(op);
		op = ok ? ap : NULL;
		if (ok)
			ot_free(bp);
	}
	struct buf out;
	buf_init(&out, 0);
	ok = ok && apply_ok(op, s->doc.data ? s->doc.data : "", s->doc.len, &out);
	buf_free(&s->doc);
	s->doc = out;
	if (ok && s->nlog == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->log = realloc(s->log, s->cap * sizeof *s->log);
		s->author = realloc(s->author, s->cap * sizeof *s->author);
		s->len_at = realloc(s->len_at, (s->cap + 1) * sizeof *s->len_at);
	}
	if (ok) {
		s->log[s->nlog] = ot_to_json(op);
		s->author[s->nlog] = m.client;
		s->len_at[s->nlog + 1] = ot_target_len(op);
		s->nlog++;
	} else {
		fprintf(stderr, "server: %s\n", err);
	}
	ot_free(op);
	return ok;
}

/* The client takes the next operation from the server's log. */
static int client_receive(struct client *c, size_t id, struct server *s, struct rng *r)
{
	char err[ERRLEN];
	size_t rev = c->rev++;
	if (s->author[rev] == id) { /* the acknowledgement of our own */
		ot_free(c->outstanding);
		c->outstanding = c->buffer;
		c->buffer = NULL;
		return !c->outstanding || sim_send(s, id, c->rev, random_json(r, c->outstanding)) == 0;
	}
	struct ot_op *op, *ap, *bp;
	int ok = ot_parse_json(s->log[rev], strlen(s->log[rev]), 0, &op, err, sizeof err) == 0;
	struct ot_op **mine[] = {&c->outstanding, &c->buffer};
	for (int i = 0; i < 2 && ok && *mine[i]; i++) {
		ok = ot_transform(*mine[i], op, &ap, &bp, err, sizeof err) == 0;
		if (ok) {
			ot_free(*mine[i]);
			ot_free(op);
			*mine[i] = ap;
			op = bp;
		}
	}
	struct buf out;
	buf_init(&out, 0);
	ok = ok && apply_ok(op, c->doc.data ? c->doc.data : "", c->doc.len, &out);
	buf_free(&c->doc);
	c->doc = out;
	if (!ok)
		fprintf(stderr, "client %zu: %s\n", id, err);
	ot_free(op);
	return ok;
}

static int same_doc(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Clients edit, the server commits in arrival order, clients hear back late: every
 * interleaving the network allows. A synchronized client that has heard everything must
 * hold the server's text, at every step; at the end all must. */
static void simulate(uint64_t seed, int rounds, size_t *ops_out)
{
	struct rng r = {seed ^ 0x5151};
	struct server s = {0};
	struct client c[NCLIENTS] = {0};
	buf_init(&s.doc, 0);
	buf_puts(&s.doc, "int main(void) { return 0; } /* \xE4\xB8\xAD\xF0\x9F\x98\x80 */");
	s.len_at = malloc(sizeof *s.len_at);
	s.len_at[0] = utf8_count(s.doc.data, s.doc.len);
	for (size_t i = 0; i < NCLIENTS; i++) {
		buf_init(&c[i].doc, 0);
		buf_append(&c[i].doc, s.doc.data, s.doc.len);
	}
	int ok = 1, diverged = 0;
	for (int round = 0; ok && round < rounds; round++) {
		size_t who = rng_below(&r, NCLIENTS), what = rng_below(&r, 10);
		if (what < 4)
			ok = client_edit(&c[who], who, &s, &r);
		else if (what < 6 && s.qlen)
			ok = server_receive(&s);
		else if (c[who].rev < s.nlog)
			ok = client_receive(&c[who], who, &s, &r);
		if (!c[who].outstanding && c[who].rev == s.nlog && !same_doc(&c[who].doc, &s.doc))
			diverged++;
	}
	/* the network drains */
	for (int busy = 1; ok && busy;) {
		busy = 0;
		while (ok && s.qlen) {
			ok = server_receive(&s);
			busy = 1;
		}
		for (size_t i = 0; i < NCLIENTS; i++) {
			while (ok && c[i].rev < s.nlog) {
				ok = client_receive(&c[i], i, &s, &r);
				busy = 1;
			}
		}
	}
	CHECK(ok);
	CHECK(diverged == 0);
	for (size_t i = 0; i < NCLIENTS; i++) {
		CHECK(c[i].outstanding == NULL && c[i].buffer == NULL);
		CHECK(same_doc(&c[i].doc, &s.doc));
		buf_free(&c[i].doc);
		ot_free(c[i].outstanding);
		ot_free(c[i].buffer);
	}
	*ops_out = s.nlog;
	for (size_t i = 0; i < s.nlog; i++)
		free(s.log[i]);
	while (s.qlen) {
		free(s.queue[s.qhead].json);
		s.qhead = (s.qhead + 1) % NCLIENTS;
		s.qlen--;
	}
	free(s.log);
	free(s.author);
	free(s.len_at);
	buf_free(&s.doc);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
	test_parse();
	test_print_build();
	test_apply();
	test_compose();
	test_transform();

	uint64_t seed = 20261125; /* fixed, so a failure in CI replays as is */
	const char *env = getenv("OT_SEED");
	if (env && *env)
		seed = strtoull(env, NULL, 10);
	printf("ot: random seed %llu (replay with OT_SEED=%llu)\n", (unsigned long long)seed,
	       (unsigned long long)seed);
	fflush(stdout);

	enum { PROPERTY_ROUNDS = 20000, SIM_ROUNDS = 20000, SIM_RUNS = 4 };
	double t0 = now();
	property(seed, PROPERTY_ROUNDS);
	double t1 = now();
	size_t committed = 0;
	for (int i = 0; i < SIM_RUNS; i++) {
		size_t n = 0;
		simulate(seed + (uint64_t)i, SIM_ROUNDS, &n);
		committed += n;
	}
	double t2 = now();
	printf("ot: property: %d rounds in %.2f s; simulation: %d runs x %d rounds, %d clients, "
	       "%zu operations committed, in %.2f s\n",
	       PROPERTY_ROUNDS, t1 - t0, SIM_RUNS, SIM_ROUNDS, NCLIENTS, committed, t2 - t1);
	return unit_summary("ot");
}

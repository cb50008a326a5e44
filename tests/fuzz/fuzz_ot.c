/* fuzz_ot: libFuzzer target for the operation parser and the OT core (see README.md).
 *
 * The input is parsed as an operation; the UTF-8 functions also get it raw. A valid
 * operation is then applied, round-tripped through JSON, and transformed and composed
 * against a second operation derived from the input's hash, on a few small documents and
 * on one generated to fit it.
 * Every law the unit tests check must hold here too: a break aborts, so the fuzzer
 * reports it like a crash. */
#include "buf.h"
#include "ot.h"
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INSERT 256
#define MAX_DOC 2048 /* characters of the generated document */

static const char *const docs[] = {
	"",
	"a",
	"h\xC3\xA9llo w\xC3\xB6rld",
	"\xF0\x9F\x98\x80\xE4\xB8\xAD\n\t\"x\\\xD0\xB6\xF0\x9D\x84\x9E",
};

static const char *const pieces[] = {"x", "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\""};

static void law(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_ot: law broken: %s\n", what);
		abort();
	}
}

/* A second operation on a document of len characters, chosen by h. */
static struct ot_op *derived_op(uint64_t h, size_t len)
{
	struct ot_op *op = ot_new();
	size_t pos = 0;
	if (!op)
		return NULL;
	while (pos < len || (h & 7) == 1) {
		uint64_t pick = h & 3;
		size_t k = 1 + (size_t)((h >> 2) & 3);
		if (k > len - pos)
			k = len - pos;
		if (pick == 0 || k == 0) {
			const char *p = pieces[(h >> 4) % (sizeof pieces / sizeof pieces[0])];
			ot_insert(op, p, strlen(p));
		} else if (pick == 1) {
			ot_delete(op, k);
			pos += k;
		} else {
			ot_retain(op, k);
			pos += k;
		}
		h = h * 6364136223846793005ull + 1442695040888963407ull;
		h ^= h >> 29;
		if (pos == len && (h & 7) == 1)
			h++; /* at most one extra insert at the end */
	}
	return op;
}

static int same_buf(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void raw_utf8(const char *s, size_t size)
{
	size_t count = 0, bad = 0, off = 0;
	if (utf8_validate(s, size, &count, &bad) == UTF8_OK) {
		law(utf8_count(s, size) == count, "utf8_count agrees with utf8_validate");
		law(utf8_offset(s, size, count, &off) == 0 && off == size, "offset of the end");
		law(utf8_offset(s, size, count + 1, &off) == -1, "no offset past the end");
	} else {
		law(bad < size, "the bad offset is inside the input");
	}
	utf8_json_escapes(s, size, &bad);
}

static void against(const struct ot_op *parsed, const char *doc, uint64_t h)
{
	char err[256];
	size_t doclen = strlen(doc), len = utf8_count(doc, doclen);
	struct buf da, db, dab, dba, dc;
	struct ot_op *a = NULL, *b = NULL, *ap = NULL, *bp = NULL, *ab = NULL;
	buf_init(&da, 0);
	buf_init(&db, 0);
	buf_init(&dab, 0);
	buf_init(&dba, 0);
	buf_init(&dc, 0);

	/* apply works exactly when the operation fits the document */
	int applied = ot_apply(parsed, doc, doclen, &da, err, sizeof err) == 0;
	char *json = ot_to_json(parsed);
	law(json != NULL, "ot_to_json");
	law(ot_parse_json(json, strlen(json), MAX_INSERT, &a, err, sizeof err) == 0,
	    "printed operations parse");
	char *again = ot_to_json(a);
	law(strcmp(json, again) == 0, "the JSON round trip is exact");
	free(again);
	free(json);
	int fits = ot_extend(a, len, err, sizeof err) == 0;
	law(fits == applied, "ot_extend and ot_apply agree on fitting");
	if (!fits)
		goto out;
	law(ot_base_len(a) == len, "extended to the document");
	law(utf8_count(da.data, da.len) == ot_target_len(a), "target length");

	b = derived_op(h, len);
	law(b && ot_base_len(b) == len, "derived operation");
	law(ot_apply(b, doc, doclen, &db, err, sizeof err) == 0, "derived operation applies");
	/* either author may sort first (lib/ot.h, "Who goes first"): the input says which */
	int a_first = (int)((h >> 17) & 1);
	law(ot_transform_ordered(a, b, a_first, &ap, &bp, err, sizeof err) == 0, "transform");
	law(ot_apply(bp, da.data, da.len, &dab, err, sizeof err) == 0, "b' applies after a");
	law(ot_apply(ap, db.data, db.len, &dba, err, sizeof err) == 0, "a' applies after b");
	law(same_buf(&dab, &dba), "convergence");
	law(ot_compose(a, bp, &ab, err, sizeof err) == 0, "compose");
	law(ot_apply(ab, doc, doclen, &dc, err, sizeof err) == 0 && same_buf(&dc, &dab),
	    "compose applies as both");
	for (size_t i = 0; i <= len; i++) {
		law(ot_transform_index(a, i) <= ot_target_len(a), "cursors stay inside");
		law(ot_transform_index_ordered(a, i, 0) <= ot_transform_index(a, i),
		    "a caret kept before an insert is never further right");
	}
	ot_free(ap);
	ot_free(bp);
	/* an operation concurrent with itself */
	law(ot_transform(a, a, &ap, &bp, err, sizeof err) == 0, "transform with itself");
	law(ot_apply(bp, da.data, da.len, &dab, err, sizeof err) == 0, "self b'");
	law(ot_apply(ap, da.data, da.len, &dba, err, sizeof err) == 0, "self a'");
	law(same_buf(&dab, &dba), "self convergence");
out:
	ot_free(a);
	ot_free(b);
	ot_free(ap);
	ot_free(bp);
	ot_free(ab);
	buf_free(&da);
	buf_free(&db);
	buf_free(&dab);
	buf_free(&dba);
	buf_free(&dc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	raw_utf8(s, size);

	char err[256] = "";
	struct ot_op *op = NULL;
	if (ot_parse_json(s, size, MAX_INSERT, &op, err, sizeof err) < 0) {
		law(op == NULL && err[0] != '\0', "a refusal says why");
		return 0;
	}
	law(ot_size(op) <= OT_MAX_COMPONENTS, "component bound");
	uint64_t h = 1469598103934665603ull; /* FNV-1a of the input picks the other operation */
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 1099511628211ull;
	for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
		against(op, docs[i], h + i);
	/* and a document the operation fits exactly, so most inputs reach transform */
	if (ot_base_len(op) <= MAX_DOC) {
		struct buf doc;
		buf_init(&doc, 0);
		buf_puts(&doc, "");
		for (size_t i = 0; i < ot_base_len(op); i++)
			buf_puts(&doc, pieces[(h >> (i % 32)) % (sizeof pieces / sizeof pieces[0])]);
		against(op, doc.data, h);
		buf_free(&doc);
	}
	ot_free(op);
	return 0;
}

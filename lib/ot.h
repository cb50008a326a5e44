/* ot: operational transformation of plain-text documents (docs/API.md, Operations).
 *
 * An operation walks the document from its start. In JSON it is an array: a positive
 * integer retains that many characters, a negative one deletes that many, a string
 * inserts itself. Characters are Unicode code points. A trailing retain may be left out.
 *
 * In memory an operation is always normal: adjacent components of one kind are merged,
 * and an insert next to a delete comes first ([-2, "x"] is kept as ["x", -2]: both do the
 * same, and one spelling makes equal operations print equal). Zero counts and empty
 * strings are refused by the parsers rather than dropped: a client that sends them is
 * out of step with the protocol, and a 400 tells its author sooner than silence would.
 *
 * Lengths: an operation's base length is what it retains plus what it deletes, its target
 * length what it retains plus what it inserts. When the trailing retain was left out the
 * base length is only a lower bound; ot_extend() makes it exact for a given document.
 * ot_compose() and ot_transform() need exact lengths, ot_apply() does not.
 *
 * Every function that can fail returns 0 or a negative number: OT_NOMEM when memory ran
 * out (the input may be fine), else -1; either way a message for people (it ends up as
 * the "message" of a 400) is written to err[0..errlen) when err is not NULL. Nothing here
 * touches sockets, Redis or globals, so tests and the fuzzer drive it directly. */
#ifndef CC_OT_H
#define CC_OT_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "buf.h"

/* At most this many components in an operation the API takes, both as sent (the parse)
 * and as stored: a commit whose operation, transformed over what was committed since and
 * with the final retain the commit script writes, would have more is refused, 413, and
 * nothing is stored (lib/store_doc.c, docs/INTERNALS.md "What is stored can be read"). */
#define OT_MAX_COMPONENTS 10000
/* At most this many components in an operation read back from storage (the Redis op log,
 * the history batches in PostgreSQL: ot_parse_json_max(), ot_from_cjson_max()). Larger
 * than OT_MAX_COMPONENTS on purpose: before the limit above was kept at write time a commit
 * could store more (the final retain the commit script appended to an operation of 10,000,
 * or the pieces a transform split it into), and a reader with the write limit could not
 * read that room any more. Every stored entry was carried by an event of at most 2 MiB
 * (EVENTS_DATA_MAX, lib/events.h) and a component takes at least two of its bytes (a digit
 * and a comma), so no entry any version stored has more than this. */
#define OT_MAX_STORED_COMPONENTS ((size_t)1 << 20)
/* A retain or delete count above this is refused while parsing: far above any document,
 * and small enough that lengths summed over OT_MAX_STORED_COMPONENTS (at most 2^50) never
 * overflow a 64-bit size_t (the adders in lib/ot.c check for overflow all the same). */
#define OT_MAX_COUNT ((size_t)1 << 30)
/* The inserted text of one parsed operation, in bytes, when the caller passes 0. Matches
 * the default document limit. */
#define OT_DEFAULT_MAX_INSERT ((size_t)1 << 20)

/* What a function that can fail returns when memory ran out (not -1: the input is not to
 * blame). */
#define OT_NOMEM (-2)

struct ot_op; /* opaque */

/* --- Parsing and printing ------------------------------------------------------------ */

/* Parses JSON text text[0..len) (need not be NUL-terminated) into *out. Refused, with a
 * message naming the 1-based component: text that is not one JSON array (trailing text
 * included), more than OT_MAX_COMPONENTS components, anything but numbers and strings,
 * numbers that are not whole, zero, or beyond OT_MAX_COUNT, empty strings, text that is
 * not valid UTF-8 (utf8.h) once decoded, including \u0000 and lone surrogate escapes, and
 * more than max_insert bytes of inserted text in all (0: OT_DEFAULT_MAX_INSERT).
 * A number counts when its value is whole: 3.0 and 3e0 are 3, as JSON does not tell them
 * apart. On success the caller frees *out with ot_free(); on failure *out is NULL. */
int ot_parse_json(const char *text, size_t len, size_t max_insert, struct ot_op **out,
		  char *err, size_t errlen);

/* The same checks on an array cJSON already parsed (arr is borrowed, not kept). cJSON has
 * then decoded \u0000 and cut the string short there, which this cannot see: run
 * utf8_json_escapes() on the raw text first. Caller frees *out with ot_free(). */
int ot_from_cjson(const cJSON *arr, size_t max_insert, struct ot_op **out, char *err,
		  size_t errlen);

/* ot_parse_json() and ot_from_cjson() with at most max_components components in place of
 * OT_MAX_COMPONENTS: for operations read back from storage (OT_MAX_STORED_COMPONENTS). */
int ot_parse_json_max(const char *text, size_t len, size_t max_insert, size_t max_components,
		      struct ot_op **out, char *err, size_t errlen);
int ot_from_cjson_max(const cJSON *arr, size_t max_insert, size_t max_components,
		      struct ot_op **out, char *err, size_t errlen);

/* Appends op as compact JSON to out; -1 when out's bound is reached (out then holds a
 * partial array: reset it). */
int ot_write_json(const struct ot_op *op, struct buf *out);

/* op as compact JSON. Caller frees with free(); NULL when out of memory. */
char *ot_to_json(const struct ot_op *op);

/* op as a new cJSON array. Caller frees with cJSON_Delete(); NULL when out of memory. */
cJSON *ot_to_cjson(const struct ot_op *op);

/* --- Building ------------------------------------------------------------------------ */

/* An empty operation (the identity on the empty document). Caller frees with ot_free();
 * NULL when out of memory. */
struct ot_op *ot_new(void);

/* Append one component, keeping op normal. A zero count or empty text adds nothing.
 * ot_insert() refuses text that is not valid UTF-8 (utf8.h); all return -1 when out of
 * memory or when a length would overflow. */
int ot_retain(struct ot_op *op, size_t n);
int ot_insert(struct ot_op *op, const char *text, size_t len);
int ot_delete(struct ot_op *op, size_t n);

/* A copy of op that shares nothing with it. Caller frees with ot_free(); NULL when out of
 * memory. */
struct ot_op *ot_copy(const struct ot_op *op);

/* Frees op and everything in it. NULL is fine. */
void ot_free(struct ot_op *op);

/* --- Inspecting ---------------------------------------------------------------------- */

size_t ot_base_len(const struct ot_op *op);   /* in code points */
size_t ot_target_len(const struct ot_op *op); /* in code points */
/* Number of components. */
size_t ot_size(const struct ot_op *op);
/* 1 when op changes nothing (only retains, or empty), else 0. */
int ot_is_noop(const struct ot_op *op);

/* --- Operating ----------------------------------------------------------------------- */

/* Makes the trailing retain explicit so that op's base length is exactly doc_len (in code
 * points). Fails, naming the component, when op reaches past the end of such a document. */
int ot_extend(struct ot_op *op, size_t doc_len, char *err, size_t errlen);

/* Applies op to doc[0..doclen) (UTF-8, checked here) and puts the result in out, which is
 * reset first; out's limit bounds the result (the message then says so). Characters past
 * op's base length are kept (the implicit trailing retain). Fails when a retain or delete
 * goes past the end of the document; out is then empty. */
int ot_apply(const struct ot_op *op, const char *doc, size_t doclen, struct buf *out,
	     char *err, size_t errlen);

/* *out = one operation doing a then b. Needs ot_target_len(a) == ot_base_len(b).
 * Caller frees *out with ot_free(); *out is NULL on failure. */
int ot_compose(const struct ot_op *a, const struct ot_op *b, struct ot_op **out, char *err,
	       size_t errlen);

/* Transforms two operations made concurrently on the same document (equal base lengths)
 * so that apply(apply(d, a), b') == apply(apply(d, b), a').
 * Roles: b is the operation already committed on the server, a the incoming one made
 * without seeing it. A client transforming its pending operation against one from the
 * server passes its own as a and the server's as b, the same roles and the same a_first,
 * so server and clients order ties alike and converge (any fixed tie-break does: the
 * server is the only place where two operations meet in an order that matters).
 * Tie-break: when both insert at the same position, a's text goes first if a_first, else
 * b's. Callers pass a_first = ot_author_cmp(author of a, author of b) < 0; see "Who goes
 * first" for why that keeps people's typing whole.
 * Caller frees *a_prime and *b_prime with ot_free(); both NULL on failure. */
int ot_transform_ordered(const struct ot_op *a, const struct ot_op *b, int a_first,
			 struct ot_op **a_prime, struct ot_op **b_prime, char *err,
			 size_t errlen);

/* ot_transform_ordered() with a_first 0: b's insert goes first. For operations of
 * unknown authors (a log written before authors were kept, a refetched document). */
int ot_transform(const struct ot_op *a, const struct ot_op *b, struct ot_op **a_prime,
		 struct ot_op **b_prime, char *err, size_t errlen);

/* --- Who goes first ------------------------------------------------------------------
 *
 * Concurrent inserts at one position are ordered by their authors, the same way every
 * time, never by which reached the server first. An author is a user id and a site: the
 * part of the operation's client_id before its last '.' (a browser tab sends
 * "<random site>.<counter>"), so two tabs of one user are two authors. Lower user id
 * first, then the lower site (bytewise, which is code point order). Equal authors (no
 * client_id, or ids without a stable site) keep the old rule: the committed one first.
 *
 * Why this keeps runs whole. N typists (2..10) put their carets at one position p of a
 * document everyone has, then each types forward (and may backspace over their own text):
 * each of their operations inserts at the end of their own run, or deletes its last
 * characters. Number them 1..N in author order. Claim: every document state anyone ever
 * holds (the server's, and each client's, pending edits included) reads, from p on,
 * R_1 R_2 ... R_N, where R_i is a prefix of typist i's run as typed (its first k_i live
 * characters, none from anyone else), and typist i's caret is at the end of R_i.
 *   Initially every k_i is 0. A state changes by applying one of i's own edits (at the
 * end of R_i by the caret part of the claim: R_i grows or shrinks at its end) or an
 * operation transformed to the state. Transforming only ever meets two operations on one
 * state: x by i, y by j != i, each at the end of its own run there. If i < j, x's
 * position p + k_1 + .. + k_i is <= y's, p + k_1 + .. + k_j, and equal only when
 * R_(i+1)..R_j are all empty; then both insert at one position and the tie-break puts x
 * (lower author) first. Either way x' still lands at the end of R_i and y' at the end of
 * R_j in the state after the other, so the claim holds after both, whatever the order of
 * delivery and whatever each typist had seen of the others (R_j may be any prefix).
 * A delete of i's last characters is at or after the end of R_(i-1) and touches no one
 * else's text, so transforming it moves nothing out of order either.
 *   The caret: a remote insert y by j at typist i's caret, transformed to i's state, is at
 * the end of R_j; it equals i's caret when j < i and R_(j+1)..R_i are empty (y belongs
 * before the caret: carry the caret past it) or j > i and R_(i+1)..R_j are empty (y
 * belongs after: leave the caret before it). So a caret is mapped over an insert exactly
 * at it by the same order: pushed right by a lower author's insert, kept by a higher
 * author's (ot_transform_index_ordered). A text editor's usual rule, one way for all,
 * breaks the claim, and so does ordering by commit: "ab" and "xy" typed at one spot
 * became "axby" or "xaby" depending on timing.
 * The simulation in tests/unit/test_ot.c checks the claim on random runs. */

/* An operation's author, for the order above. site is borrowed. */
struct ot_author {
	long long user;
	const char *site;
	size_t site_len;
};

/* The length of client_id's site: up to its last '.', or all of it; 0 for NULL. */
size_t ot_site_len(const char *client_id);
/* Sets *au to user and client_id's site (client_id is borrowed; NULL: no site). */
void ot_author_set(struct ot_author *au, long long user, const char *client_id);
/* <0 when x's inserts go before y's at one position, >0 after, 0 for the same author. */
int ot_author_cmp(const struct ot_author *x, const struct ot_author *y);

/* Where a cursor at code point index pos ends up once op is applied: text inserted at or
 * before it pushes it right, deleted text before it pulls it left. For presence. */
size_t ot_transform_index(const struct ot_op *op, size_t pos);

/* The same for the caret of the typist whose author sorts after op's (after_op 1) or
 * before it (0): text inserted exactly at pos pushes it right only when after_op. */
size_t ot_transform_index_ordered(const struct ot_op *op, size_t pos, int after_op);

#endif

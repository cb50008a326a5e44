#include "ot.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

enum ot_kind { OT_RETAIN, OT_INSERT, OT_DELETE };

struct ot_comp {
	enum ot_kind kind;
	size_t n;   /* characters retained, deleted or inserted */
	size_t off; /* insert: where its text starts in op->text */
	size_t len; /* insert: its text's length in bytes */
	/* 1-based indexes in the JSON array of the first and last parsed components merged
	 * into this one, for messages; 0 when computed */
	size_t src, src_end;
};

/* The texts of all inserts live in one buffer, in the order of the components: a
 * component only ever grows at the end of the buffer (see add_insert), so merging two
 * inserts never moves text. */
struct ot_op {
	struct ot_comp *comps;
	size_t ncomps, cap;
	struct buf text;
	size_t base_len, target_len;
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen,
						      const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* fail() for memory that ran out: OT_NOMEM. */
static int nomem(char *err, size_t errlen)
{
	fail(err, errlen, "out of memory");
	return OT_NOMEM;
}

static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

/* --- Building ------------------------------------------------------------------------ */

struct ot_op *ot_new(void)
{
	struct ot_op *op = calloc(1, sizeof *op);
	if (op)
		buf_init(&op->text, 0);
	return op;
}

struct ot_op *ot_copy(const struct ot_op *op)
{
	struct ot_op *c = ot_new();
	if (!c)
		return NULL;
	c->text.limit = op->text.limit;
	if ((op->ncomps && !(c->comps = malloc(op->ncomps * sizeof *c->comps))) ||
	    (op->text.len && buf_append(&c->text, op->text.data, op->text.len) < 0)) {
		ot_free(c);
		return NULL;
	}
	if (op->ncomps)
		memcpy(c->comps, op->comps, op->ncomps * sizeof *c->comps);
	c->ncomps = c->cap = op->ncomps;
	c->base_len = op->base_len;
	c->target_len = op->target_len;
	return c;
}

void ot_free(struct ot_op *op)
{
	if (!op)
		return;
	free(op->comps);
	buf_free(&op->text);
	free(op);
}

static struct ot_comp *last(struct ot_op *op, size_t back)
{
	return op->ncomps > back ? &op->comps[op->ncomps - 1 - back] : NULL;
}

static struct ot_comp *push(struct ot_op *op, enum ot_kind kind, size_t n, size_t src)
{
	if (op->ncomps == op->cap) {
		size_t cap = op->cap ? op->cap * 2 : 8;
		struct ot_comp *c = realloc(op->comps, cap * sizeof *c);
		if (!c)
			return NULL;
		op->comps = c;
		op->cap = cap;
	}
	struct ot_comp *c = &op->comps[op->ncomps++];
	*c = (struct ot_comp){.kind = kind, .n = n, .src = src, .src_end = src};
	return c;
}

static void merged(struct ot_comp *c, size_t n, size_t src)
{
	c->n += n;
	if (src)
		c->src_end = src;
	if (!c->src)
		c->src = src;
}

static int add_retain(struct ot_op *op, size_t n, size_t src)
{
	if (n == 0)
		return 0;
	if (n > SIZE_MAX - op->base_len || n > SIZE_MAX - op->target_len)
		return -1;
	struct ot_comp *l = last(op, 0);
	if (l && l->kind == OT_RETAIN)
		merged(l, n, src);
	else if (!push(op, OT_RETAIN, n, src))
		return -1;
	op->base_len += n;
	op->target_len += n;
	return 0;
}

static int add_delete(struct ot_op *op, size_t n, size_t src)
{
	if (n == 0)
		return 0;
	if (n > SIZE_MAX - op->base_len)
		return -1;
	struct ot_comp *l = last(op, 0);
	if (l && l->kind == OT_DELETE)
		merged(l, n, src);
	else if (!push(op, OT_DELETE, n, src))
		return -1;
	op->base_len += n;
	return 0;
}

/* text[0..len) is valid UTF-8 of ncp code points. */
static int add_insert(struct ot_op *op, const char *text, size_t len, size_t ncp, size_t src)
{
	if (len == 0)
		return 0;
	if (ncp > SIZE_MAX - op->target_len)
		return -1;
	size_t off = op->text.len;
	if (buf_append(&op->text, text, len) < 0)
		return -1;
	/* The insert goes before a trailing delete; the text still lands after every earlier
	 * insert's, so it can join an insert just before that delete. */
	struct ot_comp *l = last(op, 0);
	int after_delete = l && l->kind == OT_DELETE;
	struct ot_comp *target = after_delete ? last(op, 1) : l;
	if (target && target->kind == OT_INSERT) {
		merged(target, ncp, src);
		target->len += len;
	} else {
		struct ot_comp *c = push(op, OT_INSERT, ncp, src); /* moves comps: l is stale */
		if (!c) {
			op->text.len = off;
			return -1;
		}
		c->off = off;
		c->len = len;
		if (after_delete) {
			struct ot_comp ins = *c;
			c[0] = c[-1];
			c[-1] = ins;
		}
	}
	op->target_len += ncp;
	return 0;
}

int ot_retain(struct ot_op *op, size_t n)
{
	return add_retain(op, n, 0);
}

int ot_delete(struct ot_op *op, size_t n)
{
	return add_delete(op, n, 0);
}

int ot_insert(struct ot_op *op, const char *text, size_t len)
{
	size_t ncp;
	if (utf8_validate(text, len, &ncp, NULL) != UTF8_OK)
		return -1;
	return add_insert(op, text, len, ncp, 0);
}

/* --- Inspecting ---------------------------------------------------------------------- */

size_t ot_base_len(const struct ot_op *op)
{
	return op->base_len;
}

size_t ot_target_len(const struct ot_op *op)
{
	return op->target_len;
}

size_t ot_size(const struct ot_op *op)
{
	return op->ncomps;
}

int ot_is_noop(const struct ot_op *op)
{
	return op->ncomps == 0 || (op->ncomps == 1 && op->comps[0].kind == OT_RETAIN);
}

/* --- Parsing ------------------------------------------------------------------------- */

static const char *json_type(const cJSON *v)
{
	if (cJSON_IsBool(v))
		return v->type & cJSON_True ? "true" : "false";
	if (cJSON_IsNull(v))
		return "null";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsObject(v))
		return "an object";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsString(v))
		return "a string";
	return "an unsupported value";
}

static int parse_number(struct ot_op *op, const cJSON *v, size_t i, char *err, size_t errlen)
{
	double d = v->valuedouble;
	/* written so that NaN fails too; no libm, so the fuzz build needs no -lm */
	if (!(d >= -(double)OT_MAX_COUNT && d <= (double)OT_MAX_COUNT))
		return fail(err, errlen,
			    "operation component %zu: the number is out of range (counts are at "
			    "most %zu)",
			    i, OT_MAX_COUNT);
	long long whole = (long long)d;
	if ((double)whole != d)
		return fail(err, errlen, "operation component %zu: %g is not a whole number", i, d);
	if (whole == 0)
		return fail(err, errlen,
			    "operation component %zu: 0 is not allowed (a positive number retains, "
			    "a negative one deletes)",
			    i);
	int rc = whole > 0 ? add_retain(op, (size_t)whole, i) : add_delete(op, (size_t)-whole, i);
	if (rc < 0)
		return nomem(err, errlen);
	return 0;
}

static int parse_string(struct ot_op *op, const cJSON *v, size_t i, size_t max_insert,
			char *err, size_t errlen)
{
	const char *s = v->valuestring;
	size_t len = s ? strlen(s) : 0;
	if (len == 0)
		return fail(err, errlen, "operation component %zu: an empty insert is not allowed", i);
	if (len > max_insert || op->text.len > max_insert - len)
		return fail(err, errlen,
			    "operation component %zu: the operation inserts more than %zu bytes of "
			    "text",
			    i, max_insert);
	size_t ncp, bad;
	enum utf8_status st = utf8_validate(s, len, &ncp, &bad);
	if (st != UTF8_OK)
		return fail(err, errlen,
			    "operation component %zu: the inserted text is not valid UTF-8: %s at "
			    "byte %zu",
			    i, utf8_status_str(st), bad);
	if (add_insert(op, s, len, ncp, i) < 0)
		return nomem(err, errlen);
	return 0;
}

_Static_assert(OT_MAX_COMPONENTS <= OT_MAX_STORED_COMPONENTS,
	       "what the API stores must be readable back");
_Static_assert(OT_MAX_STORED_COMPONENTS <= SIZE_MAX / OT_MAX_COUNT,
	       "lengths summed over a stored operation fit a size_t");

int ot_from_cjson(const cJSON *arr, size_t max_insert, struct ot_op **out, char *err,
		  size_t errlen)
{
	return ot_from_cjson_max(arr, max_insert, OT_MAX_COMPONENTS, out, err, errlen);
}

int ot_from_cjson_max(const cJSON *arr, size_t max_insert, size_t max_components,
		      struct ot_op **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!max_insert)
		max_insert = OT_DEFAULT_MAX_INSERT;
	if (!arr)
		return fail(err, errlen, "an operation is required");
	if (!cJSON_IsArray(arr))
		return fail(err, errlen, "an operation must be a JSON array, not %s", json_type(arr));
	size_t n = 0;
	for (const cJSON *v = arr->child; v; v = v->next) {
		if (++n > max_components)
			return fail(err, errlen,
				    "the operation has more than %zu components (at most %zu are "
				    "allowed)",
				    max_components, max_components);
	}
	struct ot_op *op = ot_new();
	if (!op)
		return nomem(err, errlen);
	size_t i = 0;
	for (const cJSON *v = arr->child; v; v = v->next) {
		int rc;
		i++;
		if (cJSON_IsNumber(v))
			rc = parse_number(op, v, i, err, errlen);
		else if (cJSON_IsString(v))
			rc = parse_string(op, v, i, max_insert, err, errlen);
		else
			rc = fail(err, errlen,
				  "operation component %zu: expected a number (retain or delete) or "
				  "a string (insert), not %s",
				  i, json_type(v));
		if (rc < 0) {
			ot_free(op);
			return rc;
		}
	}
	*out = op;
	return 0;
}

int ot_parse_json(const char *text, size_t len, size_t max_insert, struct ot_op **out,
		  char *err, size_t errlen)
{
	return ot_parse_json_max(text, len, max_insert, OT_MAX_COMPONENTS, out, err, errlen);
}

int ot_parse_json_max(const char *text, size_t len, size_t max_insert, size_t max_components,
		      struct ot_op **out, char *err, size_t errlen)
{
	*out = NULL;
	size_t bad;
	enum utf8_status st = utf8_json_escapes(text, len, &bad);
	if (st != UTF8_OK)
		return fail(err, errlen, "the escape at byte %zu of the operation stands for %s",
			    bad, utf8_status_str(st));
	const char *end = NULL;
	errno = 0;
	cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!j && errno == ENOMEM) /* cJSON says only "no": malloc says why */
		return nomem(err, errlen);
	if (!j) {
		size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
		return fail(err, errlen, "the operation is not valid JSON (error at byte %zu)", at);
	}
	/* cJSON stops after the first value; anything but white space after it is an error
	 * (its own check for that misfires when a length is given). */
	size_t i = (size_t)(end - text);
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
		i++;
	int rc;
	if (i < len)
		rc = fail(err, errlen, "unexpected text after the operation at byte %zu", i);
	else
		rc = ot_from_cjson_max(j, max_insert, max_components, out, err, errlen);
	cJSON_Delete(j);
	return rc;
}

/* --- Printing ------------------------------------------------------------------------ */

/* A JSON string (RFC 8259 section 7): quote, backslash and control characters escaped,
 * everything else (valid UTF-8, no NUL) as is. */
static int write_string(struct buf *out, const char *s, size_t len)
{
	if (buf_putc(out, '"') < 0)
		return -1;
	size_t run = 0; /* start of the bytes not yet written */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if (buf_append(out, s + run, i - run) < 0)
			return -1;
		run = i + 1;
		int rc;
		switch (c) {
		case '"':
			rc = buf_puts(out, "\\\"");
			break;
		case '\\':
			rc = buf_puts(out, "\\\\");
			break;
		case '\n':
			rc = buf_puts(out, "\\n");
			break;
		case '\r':
			rc = buf_puts(out, "\\r");
			break;
		case '\t':
			rc = buf_puts(out, "\\t");
			break;
		default:
			rc = buf_printf(out, "\\u%04x", c);
			break;
		}
		if (rc < 0)
			return -1;
	}
	if (buf_append(out, s + run, len - run) < 0)
		return -1;
	return buf_putc(out, '"');
}

int ot_write_json(const struct ot_op *op, struct buf *out)
{
	if (buf_putc(out, '[') < 0)
		return -1;
	for (size_t i = 0; i < op->ncomps; i++) {
		const struct ot_comp *c = &op->comps[i];
		if (i && buf_putc(out, ',') < 0)
			return -1;
		int rc;
		if (c->kind == OT_RETAIN)
			rc = buf_printf(out, "%zu", c->n);
		else if (c->kind == OT_DELETE)
			rc = buf_printf(out, "-%zu", c->n);
		else
			rc = write_string(out, op->text.data + c->off, c->len);
		if (rc < 0)
			return -1;
	}
	return buf_putc(out, ']');
}

char *ot_to_json(const struct ot_op *op)
{
	struct buf b;
	buf_init(&b, 0);
	if (ot_write_json(op, &b) < 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_detach(&b);
}

cJSON *ot_to_cjson(const struct ot_op *op)
{
	cJSON *arr = cJSON_CreateArray();
	if (!arr)
		return NULL;
	for (size_t i = 0; i < op->ncomps; i++) {
		const struct ot_comp *c = &op->comps[i];
		cJSON *v = NULL;
		if (c->kind == OT_RETAIN) {
			v = cJSON_CreateNumber((double)c->n);
		} else if (c->kind == OT_DELETE) {
			v = cJSON_CreateNumber(-(double)c->n);
		} else {
			char *s = malloc(c->len + 1); /* cJSON wants a C string */
			if (s) {
				memcpy(s, op->text.data + c->off, c->len);
				s[c->len] = '\0';
				v = cJSON_CreateString(s);
				free(s);
			}
		}
		if (!v || !cJSON_AddItemToArray(arr, v)) {
			cJSON_Delete(v);
			cJSON_Delete(arr);
			return NULL;
		}
	}
	return arr;
}

/* --- Applying ------------------------------------------------------------------------ */

static const char *kind_name(enum ot_kind k)
{
	return k == OT_RETAIN ? "retain" : k == OT_DELETE ? "delete" : "insert";
}

/* The message for a retain or delete c starting at position pos that runs past the end of
 * a document of doc_len characters. */
static int past_end(char *err, size_t errlen, const struct ot_comp *c, size_t pos,
		    size_t doc_len)
{
	char where[96] = "operation";
	if (c->src && c->src_end > c->src)
		snprintf(where, sizeof where, "operation components %zu to %zu", c->src, c->src_end);
	else if (c->src)
		snprintf(where, sizeof where, "operation component %zu", c->src);
	return fail(err, errlen,
		    "%s: %s of %zu character%s from position %zu goes past the end of the "
		    "%zu-character document",
		    where, kind_name(c->kind), c->n, plural(c->n), pos, doc_len);
}

int ot_extend(struct ot_op *op, size_t doc_len, char *err, size_t errlen)
{
	if (op->base_len > doc_len) {
		size_t pos = 0;
		for (size_t i = 0; i < op->ncomps; i++) {
			const struct ot_comp *c = &op->comps[i];
			if (c->kind == OT_INSERT)
				continue;
			if (c->n > doc_len - pos)
				return past_end(err, errlen, c, pos, doc_len);
			pos += c->n;
		}
	}
	if (add_retain(op, doc_len - op->base_len, 0) < 0)
		return nomem(err, errlen);
	return 0;
}

static int append_doc(struct buf *out, const char *s, size_t len, char *err, size_t errlen)
{
	if (buf_append(out, s, len) == 0)
		return 0;
	if (len > out->limit || out->len > out->limit - len)
		return fail(err, errlen, "the document would grow past its limit of %zu bytes",
			    out->limit);
	return nomem(err, errlen);
}

int ot_apply(const struct ot_op *op, const char *doc, size_t doclen, struct buf *out,
	     char *err, size_t errlen)
{
	buf_reset(out);
	if (!doc)
		doc = ""; /* an empty buf has no data yet */
	size_t doc_len, bad;
	enum utf8_status st = utf8_validate(doc, doclen, &doc_len, &bad);
	if (st != UTF8_OK)
		return fail(err, errlen, "the document is not valid UTF-8: %s at byte %zu",
			    utf8_status_str(st), bad);
	size_t pos = 0, at = 0; /* in characters, in bytes */
	for (size_t i = 0; i < op->ncomps; i++) {
		const struct ot_comp *c = &op->comps[i];
		if (c->kind == OT_INSERT) {
			if (append_doc(out, op->text.data + c->off, c->len, err, errlen) < 0)
				goto failed;
			continue;
		}
		size_t nb;
		if (c->n > doc_len - pos) {
			past_end(err, errlen, c, pos, doc_len);
			goto failed;
		}
		utf8_offset(doc + at, doclen - at, c->n, &nb); /* cannot fail: checked above */
		if (c->kind == OT_RETAIN && append_doc(out, doc + at, nb, err, errlen) < 0)
			goto failed;
		at += nb;
		pos += c->n;
	}
	if (append_doc(out, doc + at, doclen - at, err, errlen) < 0)
		goto failed;
	return 0;
failed:
	buf_reset(out);
	return -1;
}

/* --- Composing and transforming ------------------------------------------------------ */

/* A read position inside an operation, which may be in the middle of a component. */
struct walk {
	const struct ot_op *op;
	size_t i;    /* current component */
	size_t done; /* characters of it already taken */
	size_t boff; /* insert: bytes of its text already taken */
};

/* The current component and in *left how many of its characters remain; NULL at the end. */
static const struct ot_comp *peek(const struct walk *w, size_t *left)
{
	if (w->i >= w->op->ncomps)
		return NULL;
	const struct ot_comp *c = &w->op->comps[w->i];
	*left = c->n - w->done;
	return c;
}

/* Takes k characters (at most what is left) of the current component; for an insert,
 * *text and *len get the text taken (borrowed from the operation). */
static void take(struct walk *w, size_t k, const char **text, size_t *len)
{
	const struct ot_comp *c = &w->op->comps[w->i];
	if (c->kind == OT_INSERT) {
		const char *s = w->op->text.data + c->off + w->boff;
		size_t rest = c->len - w->boff, nb = rest;
		if (k < c->n - w->done)
			utf8_offset(s, rest, k, &nb);
		*text = s;
		*len = nb;
		w->boff += nb;
	}
	w->done += k;
	if (w->done == c->n) {
		w->i++;
		w->done = 0;
		w->boff = 0;
	}
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

int ot_compose(const struct ot_op *a, const struct ot_op *b, struct ot_op **out, char *err,
	       size_t errlen)
{
	*out = NULL;
	if (a->target_len != b->base_len)
		return fail(err, errlen,
			    "cannot compose: the first operation leaves %zu characters but the "
			    "second expects %zu",
			    a->target_len, b->base_len);
	const char *why = NULL; /* NULL: out of memory */
	struct ot_op *r = ot_new();
	if (!r)
		goto failed;
	struct walk wa = {.op = a}, wb = {.op = b};
	for (;;) {
		size_t la = 0, lb = 0, tlen = 0;
		const char *t = NULL;
		const struct ot_comp *ca = peek(&wa, &la), *cb = peek(&wb, &lb);
		int rc = 0;
		if (!ca && !cb)
			break;
		if (ca && ca->kind == OT_DELETE) { /* b never saw these characters */
			take(&wa, la, &t, &tlen);
			rc = add_delete(r, la, 0);
		} else if (cb && cb->kind == OT_INSERT) { /* nor these, a never had them */
			take(&wb, lb, &t, &tlen);
			rc = add_insert(r, t, tlen, lb, 0);
		} else if (!ca || !cb) {
			/* unreachable with matching lengths; kept so a bug cannot read past the end */
			why = "cannot compose: the operations do not line up";
			goto failed;
		} else {
			size_t k = min_size(la, lb);
			const char *ta = NULL;
			size_t tla = 0;
			take(&wa, k, &ta, &tla);
			take(&wb, k, &t, &tlen);
			if (ca->kind == OT_RETAIN && cb->kind == OT_RETAIN)
				rc = add_retain(r, k, 0);
			else if (ca->kind == OT_RETAIN) /* b deletes what a kept */
				rc = add_delete(r, k, 0);
			else if (cb->kind == OT_RETAIN) /* b keeps what a inserted */
				rc = add_insert(r, ta, tla, k, 0);
			/* else b deletes what a inserted: nothing is left of either */
		}
		if (rc < 0)
			goto failed;
	}
	*out = r;
	return 0;
failed:
	ot_free(r);
	return why ? fail(err, errlen, "%s", why) : nomem(err, errlen);
}

/* --- Who goes first ------------------------------------------------------------------ */

size_t ot_site_len(const char *client_id)
{
	if (!client_id)
		return 0;
	const char *dot = strrchr(client_id, '.');
	return dot ? (size_t)(dot - client_id) : strlen(client_id);
}

void ot_author_set(struct ot_author *au, long long user, const char *client_id)
{
	au->user = user;
	au->site = client_id ? client_id : "";
	au->site_len = ot_site_len(client_id);
}

int ot_author_cmp(const struct ot_author *x, const struct ot_author *y)
{
	if (x->user != y->user)
		return x->user < y->user ? -1 : 1;
	/* bytewise on UTF-8 is code point order, which the browser client compares too */
	size_t n = min_size(x->site_len, y->site_len);
	int c = n ? memcmp(x->site, y->site, n) : 0;
	if (c)
		return c < 0 ? -1 : 1;
	return x->site_len < y->site_len ? -1 : x->site_len > y->site_len ? 1 : 0;
}

int ot_transform(const struct ot_op *a, const struct ot_op *b, struct ot_op **a_prime,
		 struct ot_op **b_prime, char *err, size_t errlen)
{
	return ot_transform_ordered(a, b, 0, a_prime, b_prime, err, errlen);
}

int ot_transform_ordered(const struct ot_op *a, const struct ot_op *b, int a_first,
			 struct ot_op **a_prime, struct ot_op **b_prime, char *err,
			 size_t errlen)
{
	*a_prime = *b_prime = NULL;
	if (a->base_len != b->base_len)
		return fail(err, errlen,
			    "cannot transform: the operations apply to documents of different "
			    "lengths (%zu and %zu characters)",
			    a->base_len, b->base_len);
	const char *why = NULL; /* NULL: out of memory */
	struct ot_op *ap = ot_new(), *bp = ot_new();
	if (!ap || !bp)
		goto failed;
	struct walk wa = {.op = a}, wb = {.op = b};
	for (;;) {
		size_t la = 0, lb = 0, tlen = 0;
		const char *t = NULL;
		const struct ot_comp *ca = peek(&wa, &la), *cb = peek(&wb, &lb);
		if (!ca && !cb)
			break;
		/* the tie-break: the insert looked at first ends up first. a's goes first only
		 * when both insert here and a_first says so; an insert of a alone (b retains
		 * or deletes here) is taken either way, as is one of b alone. */
		if (a_first && ca && ca->kind == OT_INSERT) {
			take(&wa, la, &t, &tlen);
			if (add_insert(ap, t, tlen, la, 0) < 0 || add_retain(bp, la, 0) < 0)
				goto failed;
			continue;
		}
		if (cb && cb->kind == OT_INSERT) {
			take(&wb, lb, &t, &tlen);
			if (add_retain(ap, lb, 0) < 0 || add_insert(bp, t, tlen, lb, 0) < 0)
				goto failed;
			continue;
		}
		if (ca && ca->kind == OT_INSERT) {
			take(&wa, la, &t, &tlen);
			if (add_insert(ap, t, tlen, la, 0) < 0 || add_retain(bp, la, 0) < 0)
				goto failed;
			continue;
		}
		if (!ca || !cb) { /* unreachable with equal lengths, as in ot_compose */
			why = "cannot transform: the operations do not line up";
			goto failed;
		}
		size_t k = min_size(la, lb);
		take(&wa, k, &t, &tlen);
		take(&wb, k, &t, &tlen);
		int rc = 0; /* when both deleted the same characters, neither has to any more */
		if (ca->kind == OT_RETAIN && cb->kind == OT_RETAIN)
			rc = add_retain(ap, k, 0) < 0 || add_retain(bp, k, 0) < 0 ? -1 : 0;
		else if (ca->kind == OT_DELETE && cb->kind == OT_RETAIN)
			rc = add_delete(ap, k, 0);
		else if (ca->kind == OT_RETAIN && cb->kind == OT_DELETE)
			rc = add_delete(bp, k, 0);
		if (rc < 0)
			goto failed;
	}
	*a_prime = ap;
	*b_prime = bp;
	return 0;
failed:
	ot_free(ap);
	ot_free(bp);
	return why ? fail(err, errlen, "%s", why) : nomem(err, errlen);
}

size_t ot_transform_index_ordered(const struct ot_op *op, size_t pos, int after_op)
{
	size_t at = 0, out = pos; /* at: position in the old document */
	for (size_t i = 0; i < op->ncomps && at <= pos; i++) {
		const struct ot_comp *c = &op->comps[i];
		if (c->kind == OT_RETAIN) {
			at += c->n;
		} else if (c->kind == OT_INSERT) {
			if (at < pos || after_op)
				out += c->n;
		} else {
			out -= min_size(c->n, pos - at);
			at += c->n;
		}
	}
	return out;
}

size_t ot_transform_index(const struct ot_op *op, size_t pos)
{
	/* committed first: an insert at pos always carries the position past it */
	return ot_transform_index_ordered(op, pos, 1);
}

#include "jsoncheck.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Records the first problem; returns its status so callers can `return fail(...)`. */
__attribute__((format(printf, 4, 5))) static enum jsoncheck_status
fail(struct jsoncheck_error *e, enum jsoncheck_status st, size_t at, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->message, sizeof e->message, fmt, ap);
		va_end(ap);
		e->status = st;
		e->at = at;
	}
	return st;
}

/* Section 2: insignificant whitespace is exactly these four bytes. */
static size_t skip_ws(const char *s, size_t len, size_t i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

static int hex4(const char *s, size_t len, size_t i, unsigned *out)
{
	unsigned v = 0;
	if (i > len || len - i < 4)
		return -1;
	for (size_t k = i; k < i + 4; k++) {
		char ch = s[k];
		unsigned d;
		if (ch >= '0' && ch <= '9')
			d = (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			d = (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			d = (unsigned)(ch - 'A' + 10);
		else
			return -1;
		v = v * 16 + d;
	}
	*out = v;
	return 0;
}

/* A string starting at s[i] == '"' (section 7). The whole text is valid UTF-8 already, so
 * only bytes below 0x20, quotes and escapes need looking at. *next: the byte after the
 * closing quote. */
static enum jsoncheck_status scan_string(const char *s, size_t len, size_t i, size_t *next,
					 struct jsoncheck_error *e)
{
	size_t start = i++;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"') {
			*next = i + 1;
			return JSONCHECK_OK;
		}
		if (c < 0x20)
			return fail(e, JSONCHECK_CONTROL, i,
				    "a raw control byte 0x%02X inside a string at byte %zu (RFC 8259 "
				    "requires it escaped, e.g. \\u%04X)",
				    c, i, c);
		if (c != '\\') {
			i++;
			continue;
		}
		if (i + 1 >= len)
			break;
		char k = s[i + 1];
		if (k != '\0' && strchr("\"\\/bfnrt", k)) {
			i += 2;
			continue;
		}
		unsigned cp, lo;
		if (k != 'u' || hex4(s, len, i + 2, &cp) < 0)
			return fail(e, JSONCHECK_ESCAPE, i, "an invalid escape at byte %zu", i);
		if (cp == 0)
			return fail(e, JSONCHECK_NUL_ESCAPE, i,
				    "a \\u0000 escape at byte %zu (NUL cannot be stored)", i);
		if (cp >= 0xDC00 && cp <= 0xDFFF)
			return fail(e, JSONCHECK_SURROGATE, i,
				    "a lone low surrogate escape at byte %zu", i);
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			/* a high surrogate counts only with a low one right after it */
			if (i + 7 >= len || s[i + 6] != '\\' || s[i + 7] != 'u' ||
			    hex4(s, len, i + 8, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
				return fail(e, JSONCHECK_SURROGATE, i,
					    "a high surrogate escape without a low one at byte %zu", i);
			i += 12;
			continue;
		}
		i += 6;
	}
	return fail(e, JSONCHECK_SYNTAX, start, "the string starting at byte %zu is not closed",
		    start);
}

static int is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* A number starting at s[i] (section 6): -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static enum jsoncheck_status scan_number(const char *s, size_t len, size_t i, size_t *next,
					 struct jsoncheck_error *e)
{
	size_t start = i;
	if (s[i] == '-')
		i++;
	if (i >= len || !is_digit(s[i]))
		return fail(e, JSONCHECK_NUMBER, start, "a number without digits at byte %zu", start);
	if (s[i] == '0') {
		i++;
		if (i < len && is_digit(s[i]))
			return fail(e, JSONCHECK_NUMBER, start,
				    "a number with a leading zero at byte %zu", start);
	} else {
		while (i < len && is_digit(s[i]))
			i++;
	}
	if (i < len && s[i] == '.') {
		i++;
		if (i >= len || !is_digit(s[i]))
			return fail(e, JSONCHECK_NUMBER, start,
				    "a number with no digit after its '.' at byte %zu", start);
		while (i < len && is_digit(s[i]))
			i++;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= len || !is_digit(s[i]))
			return fail(e, JSONCHECK_NUMBER, start,
				    "a number with an empty exponent at byte %zu", start);
		while (i < len && is_digit(s[i]))
			i++;
	}
	*next = i;
	return JSONCHECK_OK;
}

/* Names the byte at s[i] for a message: a printable ASCII character quoted, else its hex. */
static enum jsoncheck_status unexpected(struct jsoncheck_error *e, const char *s, size_t len,
					size_t i, const char *wanted)
{
	if (i >= len)
		return fail(e, JSONCHECK_SYNTAX, i, "the text ends at byte %zu where %s was expected",
			    i, wanted);
	unsigned char c = (unsigned char)s[i];
	if (c < 0x20)
		return fail(e, JSONCHECK_CONTROL, i,
			    "a control byte 0x%02X at byte %zu where %s was expected", c, i, wanted);
	if (c < 0x7F)
		return fail(e, JSONCHECK_SYNTAX, i, "'%c' at byte %zu where %s was expected", c, i,
			    wanted);
	return fail(e, JSONCHECK_SYNTAX, i, "byte 0x%02X at byte %zu where %s was expected", c, i,
		    wanted);
}

/* After '{' or ',' in an object: a member name and its ':'. *next: where the value starts. */
static enum jsoncheck_status scan_name(const char *s, size_t len, size_t i, size_t *next,
				       struct jsoncheck_error *e)
{
	if (i >= len || s[i] != '"')
		return unexpected(e, s, len, i, "a member name");
	enum jsoncheck_status st = scan_string(s, len, i, &i, e);
	if (st != JSONCHECK_OK)
		return st;
	i = skip_ws(s, len, i);
	if (i >= len || s[i] != ':')
		return unexpected(e, s, len, i, "':'");
	*next = skip_ws(s, len, i + 1);
	return JSONCHECK_OK;
}

enum jsoncheck_status jsoncheck_text(const char *s, size_t len, struct jsoncheck_error *e)
{
	size_t bad = 0;
	enum utf8_status u = utf8_validate(s, len, NULL, &bad);
	if (u == UTF8_NUL)
		return fail(e, JSONCHECK_CONTROL, bad, "a NUL byte at byte %zu", bad);
	if (u != UTF8_OK)
		return fail(e, JSONCHECK_UTF8, bad, "the text is not valid UTF-8: %s at byte %zu",
			    utf8_status_str(u), bad);
	/* open containers, innermost last: '{' or '[' */
	char stack[JSONCHECK_MAX_DEPTH];
	size_t depth = 0;
	size_t i = skip_ws(s, len, 0);
	if (i >= len)
		return fail(e, JSONCHECK_EMPTY, i, "there is no JSON value");
	int want_value = 1;
	for (;;) {
		enum jsoncheck_status st = JSONCHECK_OK;
		if (want_value) {
			if (i >= len)
				return unexpected(e, s, len, i, "a value");
			char ch = s[i];
			if (ch == '{' || ch == '[') {
				if (depth == JSONCHECK_MAX_DEPTH)
					return fail(e, JSONCHECK_DEPTH, i,
						    "nesting deeper than %d levels at byte %zu",
						    JSONCHECK_MAX_DEPTH, i);
				stack[depth++] = ch;
				i = skip_ws(s, len, i + 1);
				if (i < len && s[i] == (ch == '{' ? '}' : ']')) {
					depth--; /* empty: the container is the value */
					i++;
					want_value = 0;
				} else if (ch == '{') {
					st = scan_name(s, len, i, &i, e);
				}
			} else if (ch == '"') {
				st = scan_string(s, len, i, &i, e);
				want_value = 0;
			} else if (ch == '-' || is_digit(ch)) {
				st = scan_number(s, len, i, &i, e);
				want_value = 0;
			} else if (len - i >= 4 && (memcmp(s + i, "true", 4) == 0 ||
						    memcmp(s + i, "null", 4) == 0)) {
				i += 4;
				want_value = 0;
			} else if (len - i >= 5 && memcmp(s + i, "false", 5) == 0) {
				i += 5;
				want_value = 0;
			} else {
				return unexpected(e, s, len, i, "a value");
			}
			if (st != JSONCHECK_OK)
				return st;
			continue;
		}
		/* after a value: the end, a ',' or the closer of the innermost container */
		i = skip_ws(s, len, i);
		if (depth == 0) {
			if (i < len)
				return fail(e, JSONCHECK_TRAILING, i,
					    "text after the JSON value at byte %zu", i);
			return JSONCHECK_OK;
		}
		char top = stack[depth - 1];
		if (i < len && s[i] == ',') {
			i = skip_ws(s, len, i + 1);
			if (top == '{')
				st = scan_name(s, len, i, &i, e);
			if (st != JSONCHECK_OK)
				return st;
			want_value = 1;
		} else if (i < len && s[i] == (top == '{' ? '}' : ']')) {
			depth--;
			i++;
		} else {
			return unexpected(e, s, len, i, top == '{' ? "',' or '}'" : "',' or ']'");
		}
	}
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

enum jsoncheck_status jsoncheck_unique_names(const cJSON *item, struct jsoncheck_error *e)
{
	if (!item || !(cJSON_IsObject(item) || cJSON_IsArray(item)))
		return JSONCHECK_OK;
	size_t n = 0;
	for (const cJSON *ch = item->child; ch; ch = ch->next) {
		/* depth is bounded: the text passed jsoncheck_text, or cJSON's own nesting limit */
		enum jsoncheck_status st = jsoncheck_unique_names(ch, e);
		if (st != JSONCHECK_OK)
			return st;
		n++;
	}
	if (!cJSON_IsObject(item) || n < 2)
		return JSONCHECK_OK;
	/* sorted, equal names are neighbours: n log n, where comparing every pair would let
	 * one 1 MiB object of short names cost billions of comparisons */
	const char **names = malloc(n * sizeof *names);
	if (!names)
		return fail(e, JSONCHECK_NO_MEMORY, 0, "out of memory");
	size_t k = 0;
	for (const cJSON *ch = item->child; ch; ch = ch->next)
		names[k++] = ch->string ? ch->string : "";
	qsort(names, n, sizeof *names, name_cmp);
	enum jsoncheck_status st = JSONCHECK_OK;
	for (k = 1; k < n; k++) {
		if (strcmp(names[k - 1], names[k]) == 0) {
			/* a long name is cut; the API drops a sequence cut in the middle */
			st = fail(e, JSONCHECK_DUPLICATE, 0, "the member name \"%.40s\" appears twice",
				  names[k]);
			break;
		}
	}
	free(names);
	return st;
}

cJSON *jsoncheck_parse(const char *text, size_t len, struct jsoncheck_error *e)
{
	if (jsoncheck_text(text, len, e) != JSONCHECK_OK)
		return NULL;
	cJSON *o = cJSON_ParseWithLength(text, len);
	if (!o) {
		/* the text is valid and shallower than cJSON's nesting limit: only memory is left */
		fail(e, JSONCHECK_NO_MEMORY, 0, "out of memory");
		return NULL;
	}
	if (jsoncheck_unique_names(o, e) != JSONCHECK_OK) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

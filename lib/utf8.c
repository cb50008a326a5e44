#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *utf8_status_str(enum utf8_status st)
{
	switch (st) {
	case UTF8_OK:
		return "valid UTF-8";
	case UTF8_BAD_BYTE:
		return "a byte that cannot start a character";
	case UTF8_TRUNCATED:
		return "an incomplete multi-byte character";
	case UTF8_OVERLONG:
		return "an overlong encoding";
	case UTF8_SURROGATE:
		return "a UTF-16 surrogate (U+D800..U+DFFF)";
	case UTF8_TOO_BIG:
		return "a code point above U+10FFFF";
	case UTF8_NUL:
		return "a NUL character (U+0000)";
	}
	return "invalid UTF-8";
}

static int is_cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

/* One sequence at s (len > 0 bytes available): its length in *n, or the reason it is bad.
 * Each check follows the RFC 3629 section 4 grammar, where the second byte's range
 * depends on the first: E0 needs A0..BF (else overlong), ED needs 80..9F (else a
 * surrogate), F0 needs 90..BF (else overlong), F4 needs 80..8F (else above U+10FFFF). */
static enum utf8_status decode_one(const unsigned char *s, size_t len, size_t *n)
{
	unsigned char c = s[0];
	if (c < 0x80) {
		*n = 1;
		return c ? UTF8_OK : UTF8_NUL;
	}
	if (c < 0xC0)
		return UTF8_BAD_BYTE;
	if (c < 0xC2)
		return UTF8_OVERLONG;
	size_t need;
	unsigned char lo = 0x80, hi = 0xBF;
	enum utf8_status out_of_range = UTF8_OK;
	if (c < 0xE0) {
		need = 2;
	} else if (c < 0xF0) {
		need = 3;
		if (c == 0xE0) {
			lo = 0xA0;
			out_of_range = UTF8_OVERLONG;
		} else if (c == 0xED) {
			hi = 0x9F;
			out_of_range = UTF8_SURROGATE;
		}
	} else if (c < 0xF5) {
		need = 4;
		if (c == 0xF0) {
			lo = 0x90;
			out_of_range = UTF8_OVERLONG;
		} else if (c == 0xF4) {
			hi = 0x8F;
			out_of_range = UTF8_TOO_BIG;
		}
	} else if (c < 0xF8) {
		return UTF8_TOO_BIG; /* F5..F7 would start U+140000 and up */
	} else {
		return UTF8_BAD_BYTE;
	}
	if (len < 2 || !is_cont(s[1]))
		return UTF8_TRUNCATED;
	if (s[1] < lo || s[1] > hi)
		return out_of_range;
	for (size_t i = 2; i < need; i++) {
		if (i >= len || !is_cont(s[i]))
			return UTF8_TRUNCATED;
	}
	*n = need;
	return UTF8_OK;
}

enum utf8_status utf8_validate(const char *s, size_t len, size_t *count, size_t *bad_at)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, cps = 0;
	while (i < len) {
		if (p[i] >= 0x01 && p[i] < 0x80) { /* the common case, no call */
			i++;
			cps++;
			continue;
		}
		size_t n = 0;
		enum utf8_status st = decode_one(p + i, len - i, &n);
		if (st != UTF8_OK) {
			if (bad_at)
				*bad_at = i;
			return st;
		}
		i += n;
		cps++;
	}
	if (count)
		*count = cps;
	return UTF8_OK;
}

size_t utf8_count(const char *s, size_t len)
{
	size_t cps = 0;
	for (size_t i = 0; i < len; i++)
		cps += !is_cont((unsigned char)s[i]);
	return cps;
}

int utf8_offset(const char *s, size_t len, size_t n, size_t *off)
{
	size_t i = 0;
	/* skip n lead bytes, then the continuation bytes of the last one */
	while (n > 0 && i < len) {
		i++;
		while (i < len && is_cont((unsigned char)s[i]))
			i++;
		n--;
	}
	if (n > 0)
		return -1;
	*off = i;
	return 0;
}

static int hex4(const char *s, uint32_t *v)
{
	uint32_t x = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		x <<= 4;
		if (c >= '0' && c <= '9')
			x |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			x |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			x |= (uint32_t)(c - 'A' + 10);
		else
			return -1;
	}
	*v = x;
	return 0;
}

/* The escape at text[i] (a backslash): UTF8_NUL for \u0000, UTF8_SURROGATE for a lone
 * surrogate, UTF8_OK otherwise; *next is where the text goes on after it (a surrogate pair
 * is one escape, a lone surrogate's escape ends after its own six bytes). */
static enum utf8_status json_escape_at(const char *text, size_t len, size_t i, size_t *next)
{
	uint32_t v, lo;
	if (i + 1 >= len || text[i + 1] != 'u' || len - i < 6 || hex4(text + i + 2, &v) < 0) {
		*next = i + 2; /* \n, \", \\ and the like; a malformed \u is cJSON's to refuse */
		return UTF8_OK;
	}
	*next = i + 6;
	if (v == 0)
		return UTF8_NUL;
	if (v >= 0xDC00 && v <= 0xDFFF)
		return UTF8_SURROGATE;
	if (v >= 0xD800 && v <= 0xDBFF) {
		if (len - *next >= 6 && text[*next] == '\\' && text[*next + 1] == 'u' &&
		    hex4(text + *next + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
			*next += 6;
			return UTF8_OK;
		}
		return UTF8_SURROGATE;
	}
	return UTF8_OK;
}

enum utf8_status utf8_json_escapes(const char *text, size_t len, size_t *bad_at)
{
	size_t i = 0;
	while (i < len) {
		if (text[i] != '\\') {
			i++;
			continue;
		}
		size_t next;
		enum utf8_status st = json_escape_at(text, len, i, &next);
		if (st != UTF8_OK) {
			if (bad_at)
				*bad_at = i;
			return st;
		}
		i = next;
	}
	return UTF8_OK;
}

char *utf8_json_escapes_replaced(const char *text, size_t len, enum utf8_json_fix how,
				 size_t *out_len)
{
	char *t = malloc(len + 1);
	if (!t)
		return NULL;
	size_t i = 0, j = 0;
	while (i < len) {
		if (text[i] != '\\') {
			t[j++] = text[i++];
			continue;
		}
		size_t next;
		if (json_escape_at(text, len, i, &next) == UTF8_OK) {
			/* at most len - i bytes: a malformed escape at the end stays as it is */
			size_t n = next < len ? next - i : len - i;
			memcpy(t + j, text + i, n);
			j += n;
		} else if (how == UTF8_JSON_FIX_BYTE) {
			t[j++] = (char)0xff;
		} else {
			/* six bytes for six: \u0000 and a lone \uD800 alike become \ufffd */
			memcpy(t + j, "\\ufffd", 6);
			j += 6;
		}
		i = next;
	}
	/* a NUL byte itself: not JSON (a string may hold it only escaped), but cJSON reads on
	 * past it and its C string of that value ends there, silently: FF, one byte for one */
	for (size_t k = 0; k < j; k++)
		if (t[k] == '\0')
			t[k] = (char)0xff;
	t[j] = '\0';
	if (out_len)
		*out_len = j;
	return t;
}

size_t utf8_char_len(const char *s, size_t len)
{
	size_t n = 0;
	if (len == 0)
		return 0;
	enum utf8_status st = decode_one((const unsigned char *)s, len, &n);
	return st == UTF8_OK || st == UTF8_NUL ? n : 0;
}

/* A valid character of n bytes at p that UTF8_SAN_CONTROLS drops. */
static int is_control(const unsigned char *p, size_t n)
{
	if (n == 1)
		return (p[0] < 0x20 || p[0] == 0x7F) && p[0] != '\n' && p[0] != '\t';
	return n == 2 && p[0] == 0xC2 && p[1] < 0xA0;
}

char *utf8_sanitize(const char *s, size_t len, unsigned flags, size_t max, size_t *out_len,
		    int *cut)
{
	static const char replacement[] = "\xEF\xBF\xBD";
	const unsigned char *p = (const unsigned char *)s;
	/* every input byte becomes at most 3 output bytes */
	size_t cap = len <= (SIZE_MAX - 1) / 3 ? len * 3 : SIZE_MAX - 1;
	if (cap > max)
		cap = max;
	char *out = malloc(cap + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	int bounded = 0;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_char_len(s + i, len - i);
		const char *put = s + i;
		size_t put_len = n;
		if (n == 1 && p[i] == 0 && (flags & UTF8_SAN_NUL)) {
			put = replacement;
			put_len = 3;
		} else if (n == 0) {
			if ((flags & UTF8_SAN_CUT) && len - i < 4 && p[i] >= 0xC2 && p[i] <= 0xF4)
				break; /* a character cut in half by whoever cut the bytes */
			put = replacement;
			put_len = 3;
			n = 1;
		} else if ((flags & UTF8_SAN_CONTROLS) && is_control(p + i, n)) {
			put_len = 0;
		}
		if (put_len > cap - o) {
			bounded = 1;
			break;
		}
		memcpy(out + o, put, put_len);
		o += put_len;
		i += n;
	}
	out[o] = '\0';
	if (out_len)
		*out_len = o;
	if (cut)
		*cut = bounded;
	return out;
}

#include "unit.h"
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum utf8_status st_of(const char *s, size_t len)
{
	return utf8_validate(s, len, NULL, NULL);
}

#define ST(lit) st_of(lit, sizeof lit - 1)

/* A second opinion, written the other way round: decode the number, then ask whether
 * it was allowed. Used to check every sequence of up to three bytes. */
static int reference_valid(const unsigned char *s, size_t len, size_t *count)
{
	static const uint32_t min_of[] = {0, 0, 0x80, 0x800, 0x10000};
	size_t i = 0, cps = 0;
	while (i < len) {
		unsigned c = s[i];
		size_t n;
		uint32_t cp;
		if (c < 0x80) {
			n = 1;
			cp = c;
		} else if ((c & 0xE0) == 0xC0) {
			n = 2;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 3;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 4;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n > len - i)
			return 0;
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp < min_of[n] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF || cp == 0)
			return 0;
		i += n;
		cps++;
	}
	*count = cps;
	return 1;
}

static int agrees(const unsigned char *s, size_t len)
{
	size_t want = 0, got = 0;
	int ok = reference_valid(s, len, &want);
	enum utf8_status st = utf8_validate((const char *)s, len, &got, NULL);
	if (ok != (st == UTF8_OK) || (ok && want != got)) {
		fprintf(stderr, "disagree on");
		for (size_t i = 0; i < len; i++)
			fprintf(stderr, " %02x", s[i]);
		fprintf(stderr, ": reference %d, utf8_validate %s\n", ok, utf8_status_str(st));
		return 0;
	}
	return 1;
}

static void exhaustive(void)
{
	unsigned char s[4];
	int bad = 0;
	for (unsigned a = 0; a < 256 && bad < 5; a++) {
		s[0] = (unsigned char)a;
		bad += !agrees(s, 1);
		for (unsigned b = 0; b < 256 && bad < 5; b++) {
			s[1] = (unsigned char)b;
			bad += !agrees(s, 2);
			for (unsigned c = 0; c < 256 && bad < 5; c++) {
				s[2] = (unsigned char)c;
				bad += !agrees(s, 3);
			}
		}
	}
	/* four bytes: every lead and second byte, the edges of the last two */
	static const unsigned char tail[] = {0x00, 0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xFF};
	for (unsigned a = 0xE0; a < 256 && bad < 5; a++) {
		s[0] = (unsigned char)a;
		for (unsigned b = 0; b < 256; b++) {
			s[1] = (unsigned char)b;
			for (size_t c = 0; c < sizeof tail; c++) {
				s[2] = tail[c];
				for (size_t d = 0; d < sizeof tail; d++) {
					s[3] = tail[d];
					bad += !agrees(s, 4);
				}
			}
		}
	}
	CHECK(bad == 0);
}


/* utf8_sanitize of text whose result holds no NUL, its reported length checked */
static char *san(const char *s, size_t len, unsigned flags, size_t max)
{
	size_t n = 12345;
	char *out = utf8_sanitize(s, len, flags, max, &n, NULL);
	CHECK(out && n == strlen(out));
	return out;
}

#define FFFD "\xEF\xBF\xBD"

static void sanitizer(void)
{
	/* one character's length, NUL included; 0 where no valid character starts */
	CHECK(utf8_char_len("a", 1) == 1);
	CHECK(utf8_char_len("", 1) == 1);
	CHECK(utf8_char_len("\xC3\xA9!", 3) == 2);
	CHECK(utf8_char_len("\xE2\x82\xAC", 3) == 3);
	CHECK(utf8_char_len("\xF0\x9F\x98\x80", 4) == 4);
	CHECK(utf8_char_len("\xE2\x82\xAC", 2) == 0); /* cut short by len */
	CHECK(utf8_char_len("\xC0\xAF", 2) == 0);     /* overlong "/" */
	CHECK(utf8_char_len("\xED\xA0\x80", 3) == 0); /* a surrogate */
	CHECK(utf8_char_len("\xF4\x90\x80\x80", 4) == 0); /* above U+10FFFF */
	CHECK(utf8_char_len("\x80", 1) == 0 && utf8_char_len("\xFF", 1) == 0);
	CHECK(utf8_char_len("a", 0) == 0);

	size_t n = 99;
	char *t = utf8_sanitize("h\xC3\xA9llo", 6, 0, SIZE_MAX, &n, NULL);
	CHECK_STR(t, "h\xC3\xA9llo");
	CHECK(n == 6);
	free(t);
	/* each byte that starts no character becomes one U+FFFD, the next one is read again */
	t = san("a\xFF" "b\xC0\xAF" "c\xE2\x82" "d\xED\xA0\x80", 12, 0, SIZE_MAX);
	CHECK_STR(t, "a" FFFD "b" FFFD FFFD "c" FFFD FFFD "d" FFFD FFFD FFFD);
	free(t);
	/* NUL: a character unless asked; with UTF8_SAN_NUL a U+FFFD */
	t = utf8_sanitize("a\0b", 3, 0, SIZE_MAX, &n, NULL);
	CHECK(t && n == 3 && memcmp(t, "a\0b", 4) == 0);
	free(t);
	t = san("a\0b", 3, UTF8_SAN_NUL, SIZE_MAX);
	CHECK_STR(t, "a" FFFD "b");
	free(t);
	/* controls dropped: C0 but \n and \t (NUL too), DEL, C1; U+00A0 is no control */
	t = utf8_sanitize("a\0\r\n\t\x01\x7F\xC2\x80\xC2\x9F\xC2\xA0z", 14, UTF8_SAN_CONTROLS,
			  SIZE_MAX, &n, NULL);
	CHECK_STR(t, "a\n\t\xC2\xA0z");
	CHECK(n == 6);
	free(t);
	t = san("a\0b", 3, UTF8_SAN_CONTROLS | UTF8_SAN_NUL, SIZE_MAX);
	CHECK_STR(t, "a" FFFD "b");
	free(t);
	/* cut bytes: a character cut in half at the very end is dropped, not replaced */
	t = san("ok\xE2\x82", 4, UTF8_SAN_CUT, SIZE_MAX);
	CHECK_STR(t, "ok");
	free(t);
	t = san("ok\xF0\x9F\x98", 5, UTF8_SAN_CUT, SIZE_MAX);
	CHECK_STR(t, "ok");
	free(t);
	t = san("ok\xE2\x82", 4, 0, SIZE_MAX);
	CHECK_STR(t, "ok" FFFD FFFD);
	free(t);
	t = san("ok\xFF", 3, UTF8_SAN_CUT, SIZE_MAX); /* no lead byte: still a bad byte */
	CHECK_STR(t, "ok" FFFD);
	free(t);
	t = san("\xE2\x82xyzw", 6, UTF8_SAN_CUT, SIZE_MAX); /* not at the end */
	CHECK_STR(t, FFFD FFFD "xyzw");
	free(t);
	/* the bound: never half a character, replacements counted */
	t = san("ab\xE2\x82\xAC", 5, 0, 4);
	CHECK_STR(t, "ab");
	free(t);
	t = san("ab\xE2\x82\xAC", 5, 0, 5);
	CHECK_STR(t, "ab\xE2\x82\xAC");
	free(t);
	t = san("ab\xFF", 3, 0, 4);
	CHECK_STR(t, "ab");
	free(t);
	t = san("abc", 3, 0, 0);
	CHECK_STR(t, "");
	free(t);
	t = san(NULL, 0, 0, SIZE_MAX);
	CHECK_STR(t, "");
	free(t);
	/* it says whether the bound lost text: not for controls it drops anyway, nor for the
	 * half character UTF8_SAN_CUT drops */
	int cut = -1;
	t = utf8_sanitize("ab\xE2\x82\xAC", 5, 0, 4, NULL, &cut);
	CHECK(t && cut == 1);
	free(t);
	t = utf8_sanitize("ab\xE2\x82\xAC", 5, 0, 5, NULL, &cut);
	CHECK(t && cut == 0);
	free(t);
	t = utf8_sanitize("ab\xFF", 3, 0, 4, NULL, &cut);
	CHECK(t && cut == 1);
	free(t);
	t = utf8_sanitize("ab\x01\x7F", 4, UTF8_SAN_CONTROLS, 2, NULL, &cut);
	CHECK_STR(t, "ab");
	CHECK(cut == 0);
	free(t);
	t = utf8_sanitize("ab\x01" "c", 4, UTF8_SAN_CONTROLS, 2, NULL, &cut);
	CHECK_STR(t, "ab");
	CHECK(cut == 1);
	free(t);
	t = utf8_sanitize("ok\xE2\x82", 4, UTF8_SAN_CUT, SIZE_MAX, NULL, &cut);
	CHECK_STR(t, "ok");
	CHECK(cut == 0);
	free(t);

	/* whatever goes in, valid UTF-8 within the bound comes out */
	unsigned x = 12345;
	unsigned char in[64];
	int bad = 0;
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(round % 64);
		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			in[i] = (unsigned char)(x >> 16);
		}
		size_t max = (size_t)(round % 50), got = 0, all = 0;
		unsigned flags = UTF8_SAN_NUL | (round & 1 ? UTF8_SAN_CUT : 0);
		int lost = -1;
		char *o = utf8_sanitize((const char *)in, len, flags, max, &got, &lost);
		/* cut exactly when the bound lost text: the unbounded text is longer */
		char *whole = utf8_sanitize((const char *)in, len, flags, SIZE_MAX, &all, NULL);
		if (!o || !whole || got > max || utf8_validate(o, got, NULL, NULL) != UTF8_OK ||
		    lost != (all > got) || memcmp(o, whole, got) != 0)
			bad++;
		free(o);
		free(whole);
	}
	CHECK(bad == 0);
}

int main(void)
{
	size_t n = 99, at = 99;

	/* valid, at every boundary of the encoding */
	CHECK(ST("") == UTF8_OK);
	CHECK(utf8_validate("abc", 3, &n, NULL) == UTF8_OK && n == 3);
	CHECK(utf8_validate("h\xC3\xA9llo \xD0\xB6 \xE4\xB8\xAD", 13, &n, NULL) == UTF8_OK && n == 9);
	CHECK(utf8_validate("\xF0\x9F\x98\x80\xF0\x9D\x84\x9E", 8, &n, NULL) == UTF8_OK && n == 2);
	CHECK(ST("\x7F") == UTF8_OK);
	CHECK(ST("\xC2\x80") == UTF8_OK);           /* U+0080 */
	CHECK(ST("\xDF\xBF") == UTF8_OK);           /* U+07FF */
	CHECK(ST("\xE0\xA0\x80") == UTF8_OK);       /* U+0800 */
	CHECK(ST("\xED\x9F\xBF") == UTF8_OK);       /* U+D7FF, just below the surrogates */
	CHECK(ST("\xEE\x80\x80") == UTF8_OK);       /* U+E000, just above */
	CHECK(ST("\xEF\xBF\xBF") == UTF8_OK);       /* U+FFFF */
	CHECK(ST("\xF0\x90\x80\x80") == UTF8_OK);   /* U+10000 */
	CHECK(ST("\xF4\x8F\xBF\xBF") == UTF8_OK);   /* U+10FFFF */

	/* overlongs */
	CHECK(ST("\xC0\xAF") == UTF8_OVERLONG); /* "/" */
	CHECK(ST("\xC1\xBF") == UTF8_OVERLONG);
	CHECK(ST("\xE0\x80\xAF") == UTF8_OVERLONG);
	CHECK(ST("\xE0\x9F\xBF") == UTF8_OVERLONG);
	CHECK(ST("\xF0\x80\x80\xAF") == UTF8_OVERLONG);
	CHECK(ST("\xF0\x8F\xBF\xBF") == UTF8_OVERLONG);
	/* surrogates, encoded (CESU-8 style) */
	CHECK(ST("\xED\xA0\x80") == UTF8_SURROGATE);
	CHECK(ST("\xED\xBF\xBF") == UTF8_SURROGATE);
	CHECK(ST("\xED\xA0\xBD\xED\xB8\x80") == UTF8_SURROGATE); /* a pair, still refused */
	/* above U+10FFFF */
	CHECK(ST("\xF4\x90\x80\x80") == UTF8_TOO_BIG);
	CHECK(ST("\xF5\x80\x80\x80") == UTF8_TOO_BIG);
	CHECK(ST("\xF7\xBF\xBF\xBF") == UTF8_TOO_BIG);
	/* bytes that never start anything */
	CHECK(ST("\x80") == UTF8_BAD_BYTE);
	CHECK(ST("\xBF") == UTF8_BAD_BYTE);
	CHECK(ST("\xF8\x88\x80\x80\x80") == UTF8_BAD_BYTE);
	CHECK(ST("\xFE") == UTF8_BAD_BYTE);
	CHECK(ST("\xFF") == UTF8_BAD_BYTE);
	/* cut short, by the end or by the next character */
	CHECK(ST("\xC3") == UTF8_TRUNCATED);
	CHECK(ST("\xE4\xB8") == UTF8_TRUNCATED);
	CHECK(ST("\xF0\x9F\x98") == UTF8_TRUNCATED);
	CHECK(ST("\xC3" "A") == UTF8_TRUNCATED);
	CHECK(ST("\xE4\xB8" "A") == UTF8_TRUNCATED);
	CHECK(ST("\xF0\x9F\x98\xC3\xA9") == UTF8_TRUNCATED);
	/* NUL is refused (see utf8.h), even in the middle */
	CHECK(utf8_validate("a\0b", 3, NULL, &at) == UTF8_NUL && at == 1);
	/* the offset of the first bad sequence */
	CHECK(utf8_validate("ab\xC3\xA9\xC0\xAF", 6, NULL, &at) == UTF8_OVERLONG && at == 4);
	CHECK(utf8_validate("\xE4\xB8\xAD\xE4\xB8", 5, NULL, &at) == UTF8_TRUNCATED && at == 3);
	/* length is honoured: the byte past len is not read */
	CHECK(utf8_validate("ab\xFF", 2, &n, NULL) == UTF8_OK && n == 2);
	CHECK(strcmp(utf8_status_str(UTF8_OVERLONG), "an overlong encoding") == 0);

	exhaustive();

	/* counting and offsets */
	const char *d = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80z"; /* a é 中 😀 z */
	size_t dl = strlen(d);
	CHECK(utf8_count(d, dl) == 5);
	CHECK(utf8_count("", 0) == 0);
	size_t off = 99;
	CHECK(utf8_offset(d, dl, 0, &off) == 0 && off == 0);
	CHECK(utf8_offset(d, dl, 1, &off) == 0 && off == 1);
	CHECK(utf8_offset(d, dl, 2, &off) == 0 && off == 3);
	CHECK(utf8_offset(d, dl, 3, &off) == 0 && off == 6);
	CHECK(utf8_offset(d, dl, 4, &off) == 0 && off == 10);
	CHECK(utf8_offset(d, dl, 5, &off) == 0 && off == dl);
	CHECK(utf8_offset(d, dl, 6, &off) == -1);
	CHECK(utf8_offset("", 0, 0, &off) == 0 && off == 0);
	CHECK(utf8_offset("", 0, 1, &off) == -1);

	/* JSON escapes */
#define JE(lit, outp) utf8_json_escapes(lit, sizeof lit - 1, outp)
	CHECK(JE("[\"plain\"]", &at) == UTF8_OK);
	CHECK(JE("[\"\\u00e9\\n\\\"\"]", &at) == UTF8_OK);
	CHECK(JE("[\"\\uD83D\\uDE00\"]", &at) == UTF8_OK);
	CHECK(JE("[\"\\udbff\\udfff\"]", &at) == UTF8_OK);
	CHECK(JE("[\"a\\u0000b\"]", &at) == UTF8_NUL && at == 3);
	CHECK(JE("[\"\\\\u0000\"]", &at) == UTF8_OK); /* an escaped backslash, then text */
	CHECK(JE("[\"\\\\\\u0000\"]", &at) == UTF8_NUL && at == 4);
	CHECK(JE("[\"\\uD800\"]", &at) == UTF8_SURROGATE && at == 2);
	CHECK(JE("[\"\\uDC00\"]", &at) == UTF8_SURROGATE);
	CHECK(JE("[\"\\uD83Dx\"]", &at) == UTF8_SURROGATE);
	CHECK(JE("[\"\\uD83D\\u0041\"]", &at) == UTF8_SURROGATE);
	CHECK(JE("[\"\\uD83D\\uD83D\\uDE00\"]", &at) == UTF8_SURROGATE && at == 2);
	CHECK(JE("[\"\\uDE00\\uD83D\"]", &at) == UTF8_SURROGATE && at == 2);
	CHECK(JE("\\uD83D", &at) == UTF8_SURROGATE); /* at the very end */
	CHECK(JE("\\u12", &at) == UTF8_OK);          /* malformed: the JSON parser's job */
	CHECK(JE("\\", &at) == UTF8_OK);
	CHECK(JE("\\uzzzz", &at) == UTF8_OK);

	/* the same escapes replaced by \ufffd, the rest left as it was */
#define JR(lit, want)                                                                    \
	do {                                                                             \
		size_t n_ = 99;                                                          \
		char *r_ = utf8_json_escapes_replaced(lit, sizeof lit - 1,               \
						      UTF8_JSON_FIX_ESCAPE, &n_);        \
		CHECK(r_ != NULL);                                                       \
		if (r_) {                                                                \
			CHECK_STR(r_, want);                                             \
			CHECK(strlen(r_) == sizeof lit - 1 && n_ == strlen(r_));         \
		}                                                                        \
		free(r_);                                                                \
	} while (0)
	JR("[\"plain\"]", "[\"plain\"]");
	JR("[\"a\\u0000b\\u0000\"]", "[\"a\\ufffdb\\ufffd\"]");
	JR("[\"\\\\u0000\"]", "[\"\\\\u0000\"]");      /* an escaped backslash, then text */
	JR("[\"\\\\\\u0000\"]", "[\"\\\\\\ufffd\"]");
	JR("[\"\\uD83D\\uDE00\"]", "[\"\\uD83D\\uDE00\"]"); /* a pair stays */
	JR("[\"x\\uD800y\"]", "[\"x\\ufffdy\"]");
	JR("[\"\\uDC00\\uD83D\\uDE00\"]", "[\"\\ufffd\\uD83D\\uDE00\"]");
	JR("[\"\\uD83D\\uD83D\\uDE00\"]", "[\"\\ufffd\\uD83D\\uDE00\"]");
	JR("[\"\\uD83D\\u0041\"]", "[\"\\ufffd\\u0041\"]");
	JR("\\uD83D", "\\ufffd"); /* at the very end */
	JR("\\u12", "\\u12");     /* malformed: the JSON parser's job */
	JR("\\", "\\");
	JR("", "");
	/* a NUL byte itself (not JSON; cJSON would end the string's C string there): FF */
	JR("[\"a\0b\"]", "[\"a\xff" "b\"]");
	JR("[\"\\\0\"]", "[\"\\\xff\"]"); /* after a backslash too */

	/* or by the one byte FF (Piston's answers: the output is sanitized after cJSON, and
	 * the output bound counts a replaced NUL as one byte); the text gets shorter */
#define JB(lit, want)                                                                    \
	do {                                                                             \
		size_t n_ = 99;                                                          \
		char *r_ = utf8_json_escapes_replaced(lit, sizeof lit - 1,               \
						      UTF8_JSON_FIX_BYTE, &n_);          \
		CHECK(r_ != NULL);                                                       \
		if (r_) {                                                                \
			CHECK_STR(r_, want);                                             \
			CHECK(n_ == sizeof want - 1);                                    \
		}                                                                        \
		free(r_);                                                                \
	} while (0)
	JB("[\"plain\"]", "[\"plain\"]");
	JB("[\"a\0b\\u0000\"]", "[\"a\xff" "b\xff\"]");
	JB("[\"a\\u0000b\\u0000\"]", "[\"a\xff" "b\xff\"]");
	JB("[\"\\\\u0000\"]", "[\"\\\\u0000\"]"); /* an escaped backslash, then text */
	JB("[\"\\uD83D\\uDE00\"]", "[\"\\uD83D\\uDE00\"]"); /* a pair stays */
	JB("[\"x\\uD800y\\udc00z\"]", "[\"x\xffy\xffz\"]");
	JB("[\"\\uD83D\\uD83D\\uDE00\"]", "[\"\xff\\uD83D\\uDE00\"]");
	JB("\\uD83D", "\xff"); /* at the very end */
	JB("\\u12", "\\u12"); /* malformed: the JSON parser's job */
	JB("\\", "\\");
	JB("", "");

	sanitizer();
	return unit_summary("utf8");
}

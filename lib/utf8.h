/* utf8: strict UTF-8 (RFC 3629) for document text.
 *
 * A document is UTF-8 and its "characters" are Unicode code points (docs/API.md,
 * Operations). Everything that enters a document is validated here first; the counting
 * and offset functions then trust their input, so they only read lead bytes.
 *
 * Rejected: whatever the byte grammar of RFC 3629 section 4 does not produce (bytes that
 * never occur in UTF-8, continuation bytes out of place, sequences cut short, overlong
 * forms, UTF-16 surrogates U+D800..DFFF, anything above U+10FFFF; section 10 tells how
 * overlongs smuggle "/" past filters as C0 AF), and also U+0000. NUL is valid Unicode but we refuse it in documents: PostgreSQL text columns
 * cannot store it (snapshots would fail long after the edit was accepted), cJSON and
 * every C string API stop at it, so a document holding one would read back truncated. */
#ifndef CC_UTF8_H
#define CC_UTF8_H

#include <stddef.h>

enum utf8_status {
	UTF8_OK = 0,
	UTF8_BAD_BYTE,  /* a byte that cannot start a sequence: stray continuation, F8..FF */
	UTF8_TRUNCATED, /* a sequence cut short by the end or by a non-continuation byte */
	UTF8_OVERLONG,  /* a code point encoded in more bytes than it needs (C0, C1, E0 80..) */
	UTF8_SURROGATE, /* U+D800..U+DFFF, encoded or as a lone \uXXXX escape in JSON */
	UTF8_TOO_BIG,   /* above U+10FFFF */
	UTF8_NUL,       /* U+0000, refused in documents (see above) */
};

/* A short English phrase for a status ("overlong encoding"). Static storage; never NULL. */
const char *utf8_status_str(enum utf8_status st);

/* Checks s[0..len). On UTF8_OK, *count (when not NULL) receives the number of code points.
 * Otherwise *bad_at (when not NULL) receives the byte offset where the first bad sequence
 * starts. s need not be NUL-terminated. */
enum utf8_status utf8_validate(const char *s, size_t len, size_t *count, size_t *bad_at);

/* Code points in s[0..len), which must be valid UTF-8. */
size_t utf8_count(const char *s, size_t len);

/* Byte offset of the code point with index n (0-based) in s[0..len), which must be valid
 * UTF-8; n equal to the number of code points gives len. Returns -1 when s holds fewer
 * than n code points. */
int utf8_offset(const char *s, size_t len, size_t n, size_t *off);

/* Looks through JSON text for \u escapes that decode to what a document may not hold:
 * \u0000 (UTF8_NUL: cJSON decodes it and the C string then ends there, silently
 * truncating the text) and lone surrogates (UTF8_SURROGATE: a high one not followed by a
 * low one, or a low one alone). *bad_at receives the offset of the backslash. Run it on a
 * request body before handing it to cJSON. Every backslash in valid JSON starts an escape
 * inside a string, so no string tracking is needed; invalid JSON is the parser's to
 * refuse. */
enum utf8_status utf8_json_escapes(const char *text, size_t len, size_t *bad_at);

/* What utf8_json_escapes_replaced() puts in place of an escape it replaces. */
enum utf8_json_fix {
	UTF8_JSON_FIX_ESCAPE, /* the escape \ufffd: six bytes for six, so the text keeps its
				 length and cJSON reads U+FFFD there */
	UTF8_JSON_FIX_BYTE,   /* the single byte FF, which never occurs in UTF-8: for text
				 that goes through utf8_sanitize() after cJSON, which makes it
				 U+FFFD, while a byte bound taken before (a run's output bound)
				 counts it as the one byte a NUL is; the text gets shorter */
};

/* JSON text from outside that must be read whole rather than refused (a provider's
 * answer, Piston's): a copy of text[0..len) where each escape utf8_json_escapes() stops at
 * (\u0000, a lone surrogate) is replaced as `how` says, so cJSON neither cuts a string at
 * a NUL nor refuses the whole text, and reads the rest of it as it was. A NUL byte in
 * text[0..len) (never valid JSON, yet cJSON reads past it and ends that string's C string
 * there) becomes the byte FF in either mode, one byte for one. NUL-terminated; its length
 * in *out_len (may be NULL); caller frees with free(); NULL when out of memory. */
char *utf8_json_escapes_replaced(const char *text, size_t len, enum utf8_json_fix how,
				 size_t *out_len);

/* Length in bytes (1 to 4) of the valid character at the start of s[0..len), U+0000
 * included (one byte); 0 when s does not start with one (or len is 0). */
size_t utf8_char_len(const char *s, size_t len);

/* What utf8_sanitize() does besides replacing bad bytes. */
enum utf8_sanitize_flags {
	UTF8_SAN_NUL = 1,      /* U+0000 becomes U+FFFD (otherwise it is a character) */
	UTF8_SAN_CONTROLS = 2, /* control characters are dropped: C0 but \n and \t (so \r, and
				  NUL unless UTF8_SAN_NUL), DEL and C1 (U+0080..U+009F) */
	UTF8_SAN_CUT = 4,      /* the bytes were cut off at len: a lead byte (C2..F4) within the
				  last three bytes that does not start a valid character ends
				  the text there, instead of becoming U+FFFD */
};

/* Untrusted bytes s[0..len) as valid UTF-8 text: valid characters are copied, and each
 * byte that does not start one becomes U+FFFD (EF BF BD), then the scan goes on with the
 * next byte; flags add the rules above. At most max bytes come out (SIZE_MAX: no bound),
 * never half a character: the copy stops before the first character that does not fit,
 * and *cut (may be NULL) says whether it did (1: text was lost to the bound; 0 otherwise,
 * also when UTF8_SAN_CUT dropped a character cut in half). A new NUL-terminated string the
 * caller frees with free(), its length in *out_len (may be NULL); NULL when out of
 * memory. */
char *utf8_sanitize(const char *s, size_t len, unsigned flags, size_t max, size_t *out_len,
		    int *cut);

#endif

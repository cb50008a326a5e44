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

#endif

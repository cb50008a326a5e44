/* jsoncheck: strict JSON (RFC 8259) for text that comes from outside, checked before cJSON
 * sees it.
 *
 * cJSON is lenient where RFC 8259 is not, and each leniency let a client send text that
 * other JSON readers (browsers, our own events) treat differently:
 *   - raw bytes below 0x20 inside strings (section 7 requires them escaped); cJSON copies
 *     them, and cJSON_Print later writes each as a six-byte \u00XX escape, so a 300,000
 *     byte string became a 1.8 MB event;
 *   - any byte up to 0x20 as whitespace between tokens (section 2 allows only space, tab,
 *     LF and CR);
 *   - numbers with leading zeros ("01"), a bare fraction dot ("1.", "1.e5");
 *   - duplicate member names (section 4 says they SHOULD be unique; cJSON keeps both and
 *     our lookups see the first while JavaScript sees the last, so two readers of one
 *     body would disagree about what it says).
 * Also refused, beyond RFC 8259, because nothing here can carry them: \u0000 (C strings end
 * there, so cJSON silently truncates) and lone surrogate escapes (they are not Unicode
 * scalar values and cannot be written as UTF-8), and nesting deeper than
 * JSONCHECK_MAX_DEPTH. The text must be UTF-8 (section 8.1) without a byte order mark.
 *
 * The checker reads the text once, without recursion and without allocating; the depth
 * bound is a fixed array on the stack. */
#ifndef CC_JSONCHECK_H
#define CC_JSONCHECK_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Deeper nesting is refused: real requests are a few levels deep, and cJSON recurses once
 * per level. */
#define JSONCHECK_MAX_DEPTH 256

enum jsoncheck_status {
	JSONCHECK_OK = 0,
	JSONCHECK_EMPTY,       /* no value at all (empty or only whitespace) */
	JSONCHECK_SYNTAX,      /* a token where another was expected */
	JSONCHECK_CONTROL,     /* a raw byte below 0x20 inside a string, or NUL anywhere */
	JSONCHECK_ESCAPE,      /* an unknown escape or a \u without four hex digits */
	JSONCHECK_NUL_ESCAPE,  /* \u0000 */
	JSONCHECK_SURROGATE,   /* a lone surrogate escape */
	JSONCHECK_NUMBER,      /* a number outside the grammar (leading zero, "1.", "-") */
	JSONCHECK_UTF8,        /* the text is not UTF-8 */
	JSONCHECK_DEPTH,       /* nesting deeper than JSONCHECK_MAX_DEPTH */
	JSONCHECK_TRAILING,    /* text after the value */
	JSONCHECK_DUPLICATE,   /* one object names a member twice */
	JSONCHECK_NO_MEMORY,
};

struct jsoncheck_error {
	enum jsoncheck_status status;
	size_t at;         /* byte offset of the problem (0 for duplicates and memory) */
	char message[160]; /* English, says what and where: "... at byte 12" */
};

/* Checks text[0..len) (need not be NUL-terminated). JSONCHECK_OK, or the first problem
 * in *err (when not NULL). */
enum jsoncheck_status jsoncheck_text(const char *text, size_t len, struct jsoncheck_error *err);

/* Checks that no object in the tree names a member twice (names compared after escapes
 * are decoded, so "a" and "\u0061" are the same name). */
enum jsoncheck_status jsoncheck_unique_names(const cJSON *item, struct jsoncheck_error *err);

/* jsoncheck_text, then cJSON, then jsoncheck_unique_names: the parsed value (caller
 * cJSON_Delete()s), or NULL with *err set. For every parser of outside JSON (the API's
 * bodies, the broker's WebSocket messages). */
cJSON *jsoncheck_parse(const char *text, size_t len, struct jsoncheck_error *err);

#endif

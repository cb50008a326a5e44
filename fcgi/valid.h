/* valid: request fields declared once in a table and checked before a handler runs
 * (the house rule: validate at the edge). A handler gets the values that passed, or an answered 400. */
#ifndef CC_VALID_H
#define CC_VALID_H

#include <cjson/cJSON.h>
#include <stddef.h>

enum valid_type {
	VALID_STRING, /* UTF-8 text; min/max count code points */
	VALID_INT,    /* integer-valued number in [min, max] */
	VALID_ENUM,   /* a string out of `choices` (NULL-terminated) */
	VALID_ANY,    /* present or not; the handler looks at the cJSON item itself */
};

/* flags */
#define VALID_REQUIRED 1
#define VALID_SINGLE_LINE 2 /* no control characters at all, C0 or C1, nor U+2028/U+2029 (names) */
#define VALID_TEXT 4        /* control characters only \t \n \r (the AI's code and question) */

struct valid_field {
	const char *name;
	enum valid_type type;
	int flags;
	long long min, max;
	const char *const *choices; /* VALID_ENUM */
	/* optional extra rule: 0 when ok, else -1 with a static message in *why */
	int (*check)(const char *s, const char **why);
};

struct valid_value {
	int present;
	const char *s; /* borrowed from the cJSON object */
	size_t len;    /* bytes */
	long long n;
	const cJSON *item;
};

/* Checks obj against fields (n of them) and fills out[n]. Returns 0, or -1 with a message
 * for people in err naming the field. Unknown fields are ignored (clients may be newer). A
 * field whose value is null is absent, whatever its type: not present, or "is required"
 * (docs/API.md "Bodies": one rule for every field of every endpoint). */
int valid_object(const cJSON *obj, const struct valid_field *fields, size_t n,
		 struct valid_value *out, char *err, size_t errlen);

/* The string check alone: valid UTF-8, code points within [min, max], control characters
 * as flags allow. */
int valid_text(const char *s, size_t len, long long min, long long max, int flags,
	       const char **why);

/* A `check` for names that go into keys and URLs as one plain component (usernames, a
 * run's request_id): ASCII letters, digits, '_', '-' and '.' only. */
int valid_plain_name(const char *s, const char **why);

#endif

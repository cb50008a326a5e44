#include "valid.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "utf8.h"

int valid_text(const char *s, size_t len, long long min, long long max, int flags,
	       const char **why)
{
	size_t count = 0, bad = 0;
	enum utf8_status st = utf8_validate(s, len, &count, &bad);
	if (st != UTF8_OK) {
		*why = "is not valid UTF-8";
		return -1;
	}
	if ((long long)count < min) {
		*why = min <= 1 ? "must not be empty" : "is too short";
		return -1;
	}
	if ((long long)count > max) {
		*why = "is too long";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		int ctl = ch < 0x20 || ch == 0x7f;
		/* A single line refuses the rest of what ends a line or controls a terminal too:
		 * the C1 controls U+0080..U+009F (0xC2 0x80..0x9F; NEL U+0085 is a line break) and
		 * the line and paragraph separators U+2028/U+2029 (0xE2 0x80 0xA8/0xA9). The text is
		 * valid UTF-8 here, so a lead byte is followed by its continuation bytes. Bidi
		 * controls stay allowed: the client shows names isolated instead. */
		if (!ctl && (flags & VALID_SINGLE_LINE)) {
			if (ch == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
			    (unsigned char)s[i + 1] <= 0x9f)
				ctl = 1;
			else if (ch == 0xe2 && i + 2 < len && (unsigned char)s[i + 1] == 0x80 &&
				 ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9))
				ctl = 1;
		}
		if (!ctl)
			continue;
		if (flags & VALID_SINGLE_LINE) {
			*why = "must not contain control characters or line breaks";
			return -1;
		}
		if ((flags & VALID_TEXT) && ch != '\t' && ch != '\n' && ch != '\r') {
			*why = "must not contain control characters";
			return -1;
		}
	}
	return 0;
}

int valid_object(const cJSON *obj, const struct valid_field *fields, size_t n,
		 struct valid_value *out, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		const struct valid_field *f = &fields[i];
		struct valid_value *v = &out[i];
		memset(v, 0, sizeof *v);
		const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, f->name);
		if (!it || cJSON_IsNull(it)) {
			if (f->flags & VALID_REQUIRED) {
				snprintf(err, errlen, "%s is required", f->name);
				return -1;
			}
			continue;
		}
		v->item = it;
		v->present = 1;
		const char *why = NULL;
		switch (f->type) {
		case VALID_ANY:
			break;
		case VALID_INT: {
			double d = it->valuedouble;
			if (!cJSON_IsNumber(it) || !isfinite(d) || d != floor(d) ||
			    d < (double)f->min || d > (double)f->max) {
				snprintf(err, errlen, "%s must be an integer from %lld to %lld",
					 f->name, f->min, f->max);
				return -1;
			}
			v->n = (long long)d;
			break;
		}
		case VALID_STRING:
		case VALID_ENUM:
			if (!cJSON_IsString(it) || !it->valuestring) {
				snprintf(err, errlen, "%s must be a string", f->name);
				return -1;
			}
			v->s = it->valuestring;
			v->len = strlen(it->valuestring);
			if (f->type == VALID_ENUM) {
				int ok = 0;
				for (const char *const *c = f->choices; c && *c; c++)
					if (strcmp(*c, v->s) == 0)
						ok = 1;
				if (!ok) {
					char list[256] = "";
					for (const char *const *c = f->choices; c && *c; c++) {
						strncat(list, c == f->choices ? "" : ", ",
							sizeof list - strlen(list) - 1);
						strncat(list, *c, sizeof list - strlen(list) - 1);
					}
					snprintf(err, errlen, "%s must be one of: %s", f->name, list);
					return -1;
				}
				break;
			}
			if (valid_text(v->s, v->len, f->min, f->max, f->flags, &why) < 0) {
				snprintf(err, errlen, "%s %s", f->name, why);
				return -1;
			}
			break;
		}
		if (f->check && v->s && f->check(v->s, &why) < 0) {
			snprintf(err, errlen, "%s %s", f->name, why);
			return -1;
		}
	}
	return 0;
}

int valid_plain_name(const char *s, const char **why)
{
	for (; *s; s++) {
		char ch = *s;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '_' || ch == '-' || ch == '.')) {
			*why = "may only contain letters, digits, '_', '-' and '.'";
			return -1;
		}
	}
	return 0;
}

/* sandbox_out: the execution result as JSON (docs/API.md), the way sandbox.h describes
 * sandbox_result_json(): output made valid UTF-8 by lib/utf8.c, statuses and signals by
 * their names (sandbox_exit.c), the whole within JOB_RESULT_MAX (lib/jobstate.h). */
#include "sandbox.h"

#include "jobstate.h"
#include "utf8.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Output bytes as valid UTF-8 text: valid UTF-8 kept, anything else (and NUL) becomes
 * U+FFFD. When the output was cut, a character cut in half at the end is dropped. Caller
 * frees; NULL when out of memory. */
static char *output_text(const struct buf *b, int truncated, size_t *len)
{
	unsigned flags = UTF8_SAN_NUL | (truncated ? UTF8_SAN_CUT : 0);
	return utf8_sanitize(b->data ? b->data : "", b->len, flags, SIZE_MAX, len, NULL);
}

/* The bytes cJSON takes to print s[0..len) inside a string's quotes: '"', '\\' and the
 * control characters with a short escape (\b \f \n \r \t) two each, the other control
 * characters six (\u00XX), everything else as it is. */
static size_t json_escaped_len(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' ||
		    c == '\t')
			n += 2;
		else if (c < 0x20)
			n += 6;
		else
			n++;
	}
	return n;
}

/* The longest start of the UTF-8 text s[0..len) that prints in at most max bytes
 * (json_escaped_len), ending at a character boundary: its length. */
static size_t fit_text(const char *s, size_t len, size_t max)
{
	size_t used = 0, i = 0;
	while (i < len) {
		size_t c = utf8_char_len(s + i, len - i);
		if (c == 0)
			c = 1; /* not reached: the text is sanitized */
		size_t add = json_escaped_len(s + i, c);
		if (used + add > max)
			break;
		used += add;
		i += c;
	}
	return i;
}

/* The fields of one step into o, its outputs given as text; -1 when out of memory. */
static int add_step(cJSON *o, const struct sandbox_step *st, const char *out_text,
		    const char *err_text, int truncated)
{
	cJSON *out = cJSON_CreateString(out_text);
	if (!out || !cJSON_AddItemToObject(o, "stdout", out)) {
		cJSON_Delete(out);
		return -1;
	}
	cJSON *err = cJSON_CreateString(err_text);
	if (!err || !cJSON_AddItemToObject(o, "stderr", err)) {
		cJSON_Delete(err);
		return -1;
	}
	if (st->signal)
		cJSON_AddNullToObject(o, "exit_code");
	else
		cJSON_AddNumberToObject(o, "exit_code", st->exit_code);
	const char *sig = sandbox_signal_name(st->signal);
	if (sig)
		cJSON_AddStringToObject(o, "signal", sig);
	else
		cJSON_AddNullToObject(o, "signal");
	cJSON_AddNumberToObject(o, "time_ms", (double)st->time_ms);
	cJSON_AddBoolToObject(o, "truncated", truncated);
	const char *code = sandbox_status_code(st->status);
	const char *msg = sandbox_status_message(st->status);
	if (code) {
		cJSON_AddStringToObject(o, "status", code);
		cJSON_AddStringToObject(o, "message", msg);
	} else {
		cJSON_AddNullToObject(o, "status");
		cJSON_AddNullToObject(o, "message");
	}
	return 0;
}

/* The outputs of a result: run stdout, run stderr, compile stdout, compile stderr. */
enum { OUT_RUN = 0, OUT_COMPILE = 2, OUT_N = 4 };

/* The result JSON with these outputs and truncated flags (trunc[0] run, [1] compile).
 * Caller frees; NULL when out of memory. */
static char *result_text(const struct sandbox_result *res, const struct runtime *rt,
			 const char *const text[OUT_N], const int trunc[2])
{
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;
	if (!o)
		return NULL;
	if (res->ran) {
		if (add_step(o, &res->run, text[OUT_RUN], text[OUT_RUN + 1], trunc[0]) < 0)
			goto out;
	} else {
		/* not run (compile failed or cancelled): an empty run, saying why */
		struct sandbox_step none;
		memset(&none, 0, sizeof none);
		none.status = res->status;
		none.exit_code = 0;
		if (add_step(o, &none, "", "", 0) < 0)
			goto out;
		cJSON_ReplaceItemInObject(o, "exit_code", cJSON_CreateNull());
	}
	if (rt) {
		cJSON_AddStringToObject(o, "language", rt->language);
		cJSON_AddStringToObject(o, "version", rt->version);
	}
	if (res->compiled) {
		cJSON *c = cJSON_CreateObject();
		if (!c)
			goto out;
		if (add_step(c, &res->compile, text[OUT_COMPILE], text[OUT_COMPILE + 1], trunc[1]) < 0 ||
		    !cJSON_AddItemToObject(o, "compile", c)) {
			cJSON_Delete(c);
			goto out;
		}
	}
	s = cJSON_PrintUnformatted(o);
out:
	cJSON_Delete(o);
	return s;
}

/* Shares budget bytes among the outputs of printed sizes need[]: one that needs no more
 * than an even share of what is left gets all it needs, the others an even share of the
 * rest, so a short output is never cut for a long one's sake. */
static void share_budget(const size_t need[OUT_N], size_t budget, size_t share[OUT_N])
{
	int fixed[OUT_N] = {0};
	size_t left = budget, nleft = OUT_N;
	for (int changed = 1; changed && nleft;) {
		changed = 0;
		for (int k = 0; k < OUT_N; k++) {
			if (fixed[k] || !nleft || need[k] > left / nleft)
				continue;
			share[k] = need[k];
			fixed[k] = changed = 1;
			left -= need[k];
			nleft--;
		}
	}
	for (int k = 0; k < OUT_N; k++)
		if (!fixed[k])
			share[k] = left / nleft;
}

char *sandbox_result_json_within(const struct sandbox_result *res, const struct runtime *rt,
				 size_t max)
{
	const struct buf *src[OUT_N] = {
		res->ran ? &res->run.out : NULL, res->ran ? &res->run.err : NULL,
		res->compiled ? &res->compile.out : NULL, res->compiled ? &res->compile.err : NULL};
	int trunc[2] = {res->ran && res->run.truncated, res->compiled && res->compile.truncated};
	char *own[OUT_N] = {NULL, NULL, NULL, NULL};
	const char *text[OUT_N] = {"", "", "", ""};
	size_t len[OUT_N] = {0}, need[OUT_N] = {0}, total = 0;
	char *s = NULL;
	for (int k = 0; k < OUT_N; k++) {
		if (!src[k])
			continue;
		if (!(own[k] = output_text(src[k], trunc[k / 2], &len[k])))
			goto out;
		text[k] = own[k];
		need[k] = json_escaped_len(own[k], len[k]);
		total += need[k];
	}
	/* everything but the outputs: a few hundred bytes */
	static const char *const none[OUT_N] = {"", "", "", ""};
	char *bare = result_text(res, rt, none, trunc);
	if (!bare)
		goto out;
	size_t fixed = strlen(bare);
	free(bare);
	if (fixed + total > max) {
		/* OUTPUT_LIMIT_KB bounds each output's bytes, not the result: cut them further so
		 * the stored result stays one the API can answer (JOB_RESULT_MAX) */
		size_t share[OUT_N];
		share_budget(need, max > fixed ? max - fixed : 0, share);
		for (int k = 0; k < OUT_N; k++) {
			if (!own[k] || share[k] >= need[k])
				continue;
			own[k][fit_text(own[k], len[k], share[k])] = '\0';
			trunc[k / 2] = 1;
		}
	}
	s = result_text(res, rt, text, trunc);
out:
	for (int k = 0; k < OUT_N; k++)
		free(own[k]);
	return s;
}

char *sandbox_result_json(const struct sandbox_result *res, const struct runtime *rt)
{
	return sandbox_result_json_within(res, rt, JOB_RESULT_MAX);
}

/* sandbox_out: the execution result as JSON (docs/API.md), the way sandbox.h describes
 * sandbox_result_json(): output made valid UTF-8 by lib/utf8.c, statuses and signals by
 * their names (sandbox_exit.c). */
#include "sandbox.h"

#include "utf8.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A JSON string of output bytes: valid UTF-8 kept, anything else (and NUL) becomes
 * U+FFFD. When the output was cut, a character cut in half at the end is dropped. NULL
 * when out of memory. */
static cJSON *output_string(const struct buf *b, int truncated)
{
	unsigned flags = UTF8_SAN_NUL | (truncated ? UTF8_SAN_CUT : 0);
	char *s = utf8_sanitize(b->data ? b->data : "", b->len, flags, SIZE_MAX, NULL, NULL);
	if (!s)
		return NULL;
	cJSON *str = cJSON_CreateString(s);
	free(s);
	return str;
}

/* The fields of one step into o; -1 when out of memory. */
static int add_step(cJSON *o, const struct sandbox_step *st)
{
	cJSON *out = output_string(&st->out, st->truncated);
	if (!out || !cJSON_AddItemToObject(o, "stdout", out)) {
		cJSON_Delete(out);
		return -1;
	}
	cJSON *err = output_string(&st->err, st->truncated);
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
	cJSON_AddBoolToObject(o, "truncated", st->truncated);
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

char *sandbox_result_json(const struct sandbox_result *res, const struct runtime *rt)
{
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;
	if (!o)
		return NULL;
	if (res->ran) {
		if (add_step(o, &res->run) < 0)
			goto out;
	} else {
		/* not run (compile failed or cancelled): an empty run, saying why */
		struct sandbox_step none;
		memset(&none, 0, sizeof none);
		none.status = res->status;
		none.exit_code = 0;
		if (add_step(o, &none) < 0)
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
		if (add_step(c, &res->compile) < 0 || !cJSON_AddItemToObject(o, "compile", c)) {
			cJSON_Delete(c);
			goto out;
		}
	}
	s = cJSON_PrintUnformatted(o);
out:
	cJSON_Delete(o);
	return s;
}

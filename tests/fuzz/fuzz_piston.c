/* fuzz_piston: libFuzzer target for Piston's answers (queue-worker/piston.c; README.md;
 * `make fuzz`): each input is read both as an execute answer (piston_map_answer) and as a
 * runtimes answer (piston_runtimes_map). The execute answer carries what a user's program
 * printed, so its stdout and stderr are whatever a room member wants them to be.
 *
 * Laws (a break aborts): a refusal says why; an accepted execute answer becomes a result
 * that is strict JSON (lib/jsoncheck.h) with stdout and stderr strings of at most
 * OUTPUT_MAX bytes before repair (3 per byte after: a bad byte becomes U+FFFD),
 * `truncated`, a time_ms of at least 0 and an exit_code that is null or a whole number
 * from 0 to 255; an accepted runtimes answer becomes strict JSON
 * within PISTON_RUNTIMES_TEXT_MAX bytes, a list of at most PISTON_RUNTIMES_MAX runtimes
 * whose language, version and (at most PISTON_ALIASES_MAX) aliases are 1 to
 * PISTON_NAME_MAX bytes. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../queue-worker/piston.h"
#include "jsoncheck.h"
#include "fuzz.h"

#define OUTPUT_MAX 64

static void check_stage(const cJSON *st)
{
	const cJSON *out = cJSON_GetObjectItemCaseSensitive(st, "stdout");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(st, "stderr");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(st, "time_ms");
	if (!cJSON_IsString(out) || !cJSON_IsString(err) || strlen(out->valuestring) > 3 * OUTPUT_MAX ||
	    strlen(err->valuestring) > 3 * OUTPUT_MAX || !cJSON_IsNumber(t) || t->valuedouble < 0)
		__builtin_trap();
	/* an exit status or null, never what a number from the answer came to */
	const cJSON *ec = cJSON_GetObjectItemCaseSensitive(st, "exit_code");
	if (!cJSON_IsNull(ec) && !(cJSON_IsNumber(ec) && ec->valuedouble >= 0 &&
				   ec->valuedouble <= 255 && ec->valuedouble == (int)ec->valuedouble))
		__builtin_trap();
}

static int name_ok(const cJSON *v)
{
	size_t n = cJSON_IsString(v) ? strlen(v->valuestring) : 0;
	return n >= 1 && n <= PISTON_NAME_MAX;
}

static void check_runtimes(const char *body)
{
	struct piston_left_out lo;
	char err[256] = "";
	char *res = piston_runtimes_map(body, &lo, err, sizeof err);
	if (!res) {
		if (!err[0])
			__builtin_trap();
		return;
	}
	size_t n = strlen(res);
	if (n > PISTON_RUNTIMES_TEXT_MAX || jsoncheck_text(res, n, NULL) != JSONCHECK_OK)
		__builtin_trap();
	cJSON *o = cJSON_Parse(res);
	if (!cJSON_IsArray(o) || cJSON_GetArraySize(o) > PISTON_RUNTIMES_MAX)
		__builtin_trap();
	const cJSON *r;
	cJSON_ArrayForEach(r, o)
	{
		const cJSON *al = cJSON_GetObjectItemCaseSensitive(r, "aliases"), *a;
		if (!name_ok(cJSON_GetObjectItemCaseSensitive(r, "language")) ||
		    !name_ok(cJSON_GetObjectItemCaseSensitive(r, "version")) || !cJSON_IsArray(al) ||
		    cJSON_GetArraySize(al) > PISTON_ALIASES_MAX)
			__builtin_trap();
		cJSON_ArrayForEach(a, al)
		{
			if (!name_ok(a))
				__builtin_trap();
		}
	}
	cJSON_Delete(o);
	free(res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = fuzz_str(data, size);
	if (!body)
		return 0;
	check_runtimes(body);
	char *res = NULL, err[256] = "";
	if (piston_map_answer(body, size, 1234, OUTPUT_MAX, &res, err, sizeof err) < 0) {
		if (res || !err[0])
			__builtin_trap();
		free(body);
		return 0;
	}
	if (!res || jsoncheck_text(res, strlen(res), NULL) != JSONCHECK_OK)
		__builtin_trap();
	cJSON *o = cJSON_Parse(res);
	if (!cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(o, "truncated")))
		__builtin_trap();
	check_stage(o);
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "compile");
	if (c && !cJSON_IsNull(c))
		check_stage(c);
	cJSON_Delete(o);
	free(res);
	free(body);
	return 0;
}

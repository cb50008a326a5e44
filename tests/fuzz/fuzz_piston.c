/* fuzz_piston: libFuzzer target for Piston's execute answer (piston_map_answer,
 * queue-worker/piston.c; README.md; `make fuzz`). The answer carries what a user's program
 * printed, so its stdout and stderr are whatever a room member wants them to be.
 *
 * Laws (a break aborts): a refusal says why; an accepted answer becomes a result that is
 * strict JSON (lib/jsoncheck.h) with stdout and stderr strings of at most OUTPUT_MAX bytes
 * before repair (3 per byte after: a bad byte becomes U+FFFD), `truncated`, and a time_ms
 * of at least 0. */
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
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = fuzz_str(data, size);
	if (!body)
		return 0;
	char *res = NULL, err[256] = "";
	if (piston_map_answer(body, 1234, OUTPUT_MAX, &res, err, sizeof err) < 0) {
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

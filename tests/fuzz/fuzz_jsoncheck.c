/* fuzz_jsoncheck: arbitrary bytes to jsoncheck_text and jsoncheck_parse (lib/jsoncheck.c).
 * Whatever the checker passes must parse with cJSON, print, and pass the checker again
 * (cJSON's output is strict JSON); the reported offset is inside the text; a break aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsoncheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jsoncheck_error e;
	const char *text = (const char *)data;
	enum jsoncheck_status st = jsoncheck_text(text, size, &e);
	if (st != JSONCHECK_OK) {
		if (e.at > size || e.status != st || !e.message[0])
			abort();
		return 0;
	}
	cJSON *o = cJSON_ParseWithLength(text, size);
	if (!o)
		abort(); /* valid and shallow: cJSON must take it */
	char *printed = cJSON_PrintUnformatted(o);
	if (printed && jsoncheck_text(printed, strlen(printed), &e) != JSONCHECK_OK)
		abort();
	free(printed);
	cJSON_Delete(o);
	cJSON *p = jsoncheck_parse(text, size, &e);
	if (!p && e.status != JSONCHECK_DUPLICATE && e.status != JSONCHECK_NO_MEMORY)
		abort();
	cJSON_Delete(p);
	return 0;
}

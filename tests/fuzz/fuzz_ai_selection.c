/* fuzz_ai_selection: libFuzzer target for an AI request's `selection` (ai_selection_parse
 * and ai_selection_apply, fcgi/h_ai.c; README.md; `make fuzz`).
 *
 * Input: JSON for the selection up to the first NUL byte (parsed by cJSON as the body's
 * parser leaves it), then the code it applies to (made valid UTF-8 without NUL, as the
 * body's checks or the document guarantee). Laws (a break aborts): a selection taken has
 * whole numbers 0 <= from < to <= 1e9, exactly the object's; one refused is answered 400
 * invalid_request with a JSON error; applied to the code it leaves exactly the code points
 * from..to, NUL-terminated, with first_line one more than the newlines before them, or,
 * when the code is shorter than `to`, is answered 400 invalid_selection. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../fcgi/handlers.h"
#include "../../fcgi/http.h"
#include "utf8.h"
#include "fuzz.h"
#include "fuzz_api.h"

static void refused_with(struct http_resp *resp, const char *code)
{
	cJSON *o = cJSON_ParseWithLength(resp->body.data, resp->body.len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
	CHECK(resp->status == 400 && cJSON_IsString(e) && !strcmp(e->valuestring, code));
	cJSON_Delete(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t jlen = nul ? (size_t)(nul - data) : size;
	const char *rest = nul ? (const char *)nul + 1 : "";
	size_t rlen = nul ? size - jlen - 1 : 0;
	cJSON *sel = cJSON_ParseWithLength((const char *)data, jlen);
	size_t len = 0;
	char *code = utf8_sanitize(rest, rlen, UTF8_SAN_NUL, SIZE_MAX, &len, NULL);
	CHECK(code);
	char *orig = strdup(code);
	CHECK(orig);

	struct http_req req;
	struct http_resp resp;
	struct api_ctx c;
	fuzz_api_ctx(&c, &req, &resp);
	long long from = -1, to = -1;
	if (ai_selection_parse(&c, sel, &from, &to) < 0) {
		refused_with(&resp, "invalid_request");
		goto out;
	}
	CHECK(0 <= from && from < to && to <= 1000000000LL);
	CHECK((double)from == cJSON_GetObjectItemCaseSensitive(sel, "from")->valuedouble);
	CHECK((double)to == cJSON_GetObjectItemCaseSensitive(sel, "to")->valuedouble);
	size_t count = utf8_count(orig, len), n = len;
	long first_line = 0;
	if (ai_selection_apply(&c, code, &n, from, to, &first_line) < 0) {
		CHECK((size_t)to > count);
		refused_with(&resp, "invalid_selection");
		goto out;
	}
	CHECK((size_t)to <= count);
	size_t off_from = 0, off_to = 0;
	CHECK(utf8_offset(orig, len, (size_t)from, &off_from) == 0);
	CHECK(utf8_offset(orig, len, (size_t)to, &off_to) == 0);
	CHECK(n == off_to - off_from && !memcmp(code, orig + off_from, n) && code[n] == '\0');
	CHECK(utf8_count(code, n) == (size_t)(to - from));
	long lines = 1;
	for (size_t i = 0; i < off_from; i++)
		lines += orig[i] == '\n';
	CHECK(first_line == lines);
out:
	http_resp_free(&resp);
	cJSON_Delete(sel);
	free(code);
	free(orig);
	return 0;
}

/* fuzz_ai: libFuzzer target for what the AI worker reads from outside (see README.md):
 * a provider's HTTP answer (ai_openai_answer, ai_provider_error), a Retry-After header,
 * a checker's output for every language (ai_diag_parse) and a job's request.
 * Whatever comes out must be what clients are promised: text that is valid UTF-8 without
 * control characters but \n and \t, within its bound; a break aborts. */
#include "../../queue-worker/ai.h"
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"

static void law(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "law broken: %s\n", what);
		abort();
	}
}

static void clean(const char *s, size_t max, const char *what)
{
	size_t len = strlen(s);
	law(len <= max, what);
	law(utf8_validate(s, len, NULL, NULL) == UTF8_OK, what);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		law(ch >= 0x20 || ch == '\n' || ch == '\t', what);
		law(ch != 0x7F, what);
	}
}

static const char *const languages[] = {"c", "c++", "python", "javascript", "bash", "go"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_str(data, size);
	if (!s)
		return 0;

	char *text = NULL, err[256];
	int cut = 0;
	if (ai_openai_answer(s, size, &text, &cut, err, sizeof err) == 0) {
		law(text != NULL && text[strspn(text, " \n\t")] != '\0', "answer not empty");
		clean(text, AI_TEXT_MAX, "answer text");
	} else {
		law(text == NULL && err[0], "answer error");
	}
	free(text);

	char msg[200];
	ai_provider_error(s, size, msg, sizeof msg);
	clean(msg, sizeof msg - 1, "provider error");
	law(!strchr(msg, '\n'), "provider error on one line");

	long ra = ai_retry_after(s, 1700000000);
	law(ra >= -1 && ra <= 86400, "retry-after range");

	char *c = ai_clean_text(s, size, 1000, NULL);
	law(c != NULL, "clean");
	clean(c, 1000, "clean text");
	free(c);

	for (size_t i = 0; i < sizeof languages / sizeof languages[0]; i++) {
		cJSON *d = ai_diag_parse(languages[i], s, (long)(size % 50) + 1);
		law(cJSON_IsArray(d) && cJSON_GetArraySize(d) <= AI_DIAG_MAX, "diagnostics bound");
		const cJSON *it;
		cJSON_ArrayForEach(it, d)
		{
			const cJSON *line = cJSON_GetObjectItem(it, "line");
			const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(it, "message"));
			const char *sev = cJSON_GetStringValue(cJSON_GetObjectItem(it, "severity"));
			law(cJSON_IsNumber(line) && line->valuedouble >= 0, "diagnostic line");
			law(m && sev, "diagnostic fields");
			clean(m, AI_DIAG_MESSAGE_MAX, "diagnostic message");
		}
		cJSON_Delete(d);
	}

	struct ai_request rq;
	if (ai_request_parse(s, &rq, err, sizeof err) == 0) {
		char *body = ai_openai_body(&rq);
		law(body != NULL, "chat body");
		cJSON *o = cJSON_Parse(body);
		law(cJSON_IsObject(o), "chat body is JSON");
		cJSON_Delete(o);
		free(body);
		ai_request_free(&rq);
	}
	free(s);
	return 0;
}

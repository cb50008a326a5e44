/* ai_request: see ai_request.h. */
#include "ai_request.h"

#include "errbuf.h"
#include "prompts.h"

#include <stdio.h>
#include <string.h>

const char *ai_json_str(const cJSON *o, const char *name)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

int ai_request_parse(const char *json, struct ai_request *rq, char *err, size_t errlen)
{
	memset(rq, 0, sizeof *rq);
	rq->root = json ? cJSON_Parse(json) : NULL;
	if (!cJSON_IsObject(rq->root)) {
		errbuf_set(err, errlen, "the job's request is not a JSON object");
		goto bad;
	}
	rq->kind = ai_json_str(rq->root, "kind");
	rq->model = ai_json_str(rq->root, "model");
	rq->language = ai_json_str(rq->root, "language");
	rq->code = ai_json_str(rq->root, "code");
	rq->question = ai_json_str(rq->root, "question");
	rq->cache_key = ai_json_str(rq->root, "cache_key");
	rq->scope = ai_json_str(rq->root, "scope");
	const char *provider = ai_json_str(rq->root, "provider");
	const cJSON *fl = cJSON_GetObjectItemCaseSensitive(rq->root, "first_line");
	if (!prompts_system(rq->kind)) {
		errbuf_set(err, errlen, "the job's request has no kind hint or review");
		goto bad;
	}
	if (!provider || aicfg_provider_parse(provider, &rq->provider) < 0 ||
	    rq->provider == AICFG_OFF) {
		errbuf_set(err, errlen, "the job's request names no AI provider");
		goto bad;
	}
	if (!rq->model || !rq->language || !rq->code) {
		errbuf_set(err, errlen, "the job's request lacks its model, language or code");
		goto bad;
	}
	if (!rq->question)
		rq->question = "";
	rq->code_len = strlen(rq->code);
	rq->first_line = 1;
	if (cJSON_IsNumber(fl) && fl->valuedouble >= 1 && fl->valuedouble < 1e9)
		rq->first_line = (long)fl->valuedouble;
	if (rq->cache_key) {
		size_t n = strspn(rq->cache_key, "0123456789abcdef");
		if (n != AICFG_KEY_HEX || rq->cache_key[n])
			rq->cache_key = NULL; /* nothing to cache under */
	}
	if (rq->scope) {
		/* a room id: it becomes part of Redis key names */
		size_t n = strspn(rq->scope, "abcdefghijklmnopqrstuvwxyz0123456789");
		if (n == 0 || n > 64 || rq->scope[n])
			rq->scope = NULL;
	}
	return 0;
bad:
	ai_request_free(rq);
	return -1;
}

void ai_request_free(struct ai_request *rq)
{
	cJSON_Delete(rq->root);
	memset(rq, 0, sizeof *rq);
}

void ai_request_kind(const char *request_json, char *out, size_t cap)
{
	cJSON *o = request_json ? cJSON_Parse(request_json) : NULL;
	const char *k = ai_json_str(o, "kind");
	snprintf(out, cap, "%s", prompts_system(k) ? k : "");
	cJSON_Delete(o);
}

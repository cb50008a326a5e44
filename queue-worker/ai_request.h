/* ai_request: an AI job's request ({kind, provider, model, language, code, question,
 * first_line, cache_key, scope}, written by fcgi/h_ai.c) read and checked, pure. The queue
 * is an edge too (anything that can write Redis can enqueue), so every field is checked
 * again here. */
#ifndef CC_AI_REQUEST_H
#define CC_AI_REQUEST_H

#include "aicfg.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* A parsed job request; the strings are borrowed from root. Free with ai_request_free(). */
struct ai_request {
	cJSON *root;
	const char *kind, *model, *language, *code, *question, *cache_key;
	/* who asked: the room (NULL for jobs queued before scopes); the pending mark and the
	 * "this scope asked" mark are per scope, the cached answer is shared (ai.c) */
	const char *scope;
	size_t code_len;
	enum aicfg_provider provider;
	long first_line;
};

/* 0, or -1 with a message for people in err (rq is then empty). */
int ai_request_parse(const char *json, struct ai_request *rq, char *err, size_t errlen);
void ai_request_free(struct ai_request *rq);

/* "hint" or "review" from a job's request (for the `ai` event's kind), into out; "" when
 * the request is unreadable. */
void ai_request_kind(const char *request_json, char *out, size_t cap);

/* The string member name of o, or NULL (o may be NULL or not an object). */
const char *ai_json_str(const cJSON *o, const char *name);

#endif

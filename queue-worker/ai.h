/* ai: the worker's side of the AI copilot (jobs of kind "ai", written by fcgi/h_ai.c).
 *
 * A job's request is {kind: "hint"|"review", provider, model, language, code, question,
 * first_line, cache_key}. The API chose the provider and the model (they are part of the
 * cache key), so the worker answers with those, using its own AI_BASE_URL, AI_API_KEY and
 * AI_TIMEOUT_MS (lib/aicfg.h):
 *   openai  POST {AI_BASE_URL}/chat/completions (libcurl), retried with exponential backoff
 *           on 429 (honouring Retry-After) and 5xx; prompts in prompts.c;
 *   local   the language's own checker (gcc -fsyntax-only, python's compile(), node --check,
 *           bash -n) run in the sandbox, its diagnostics parsed into items.
 * The result is {kind, provider, model?, checker?, text, diagnostics?, truncated?, cached}.
 * The provider's text is untrusted: it is made valid UTF-8 without control characters
 * (but \n and \t), bounded, and only ever stored and sent as a JSON string.
 *
 * The answer goes to cc:ai:cache:{cache_key} (24 h) and the job's cc:ai:pending:{key} mark
 * is cleared, whether the job succeeded or not (docs/INTERNALS.md). */
#ifndef CC_AI_H
#define CC_AI_H

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stddef.h>

#include "aicfg.h"
#include "queue.h"
#include "rds.h"
#include "runtimes.h"
#include "sandbox.h"

#define AI_TEXT_MAX (32 * 1024)	    /* bytes of answer text kept */
#define AI_RESPONSE_MAX (1024 * 1024) /* bytes of a provider's HTTP answer read */
#define AI_DIAG_MAX 50		    /* diagnostics kept */
#define AI_DIAG_MESSAGE_MAX 400	    /* bytes of one diagnostic's message */
#define AI_ATTEMPTS 3		    /* provider calls per job, retries included */
#define AI_RETRY_AFTER_MAX_S 30	    /* a longer Retry-After fails the job at once */

/* What an AI job may use; filled by ai_deps_init(), then read-only configuration shared
 * by every job thread (the ctx of the "ai" queue_handler). */
struct ai_deps {
	const struct sandbox *sb;	  /* NULL: the local provider cannot check */
	const struct runtimes *rts;	  /* binaries of the checkers */
	const struct sandbox_limits *lim; /* NULL: sandbox_limits_default() */
	struct rds_target redis;	  /* for the cache and the pending marks */
};

/* Checks the AI settings of the environment and reads REDIS_URL. The program must have
 * called curl_global_init() before (the worker's main does, at start). sb, rts and lim are
 * borrowed (each may be NULL) and must outlive d. 0 or -1 with a message in err. */
int ai_deps_init(struct ai_deps *d, const struct sandbox *sb, const struct runtimes *rts,
		 const struct sandbox_limits *lim, char *err, size_t errlen);

/* The queue_handler of kind "ai" (queue.h), ctx a struct ai_deps:
 *   { "ai", "ai", &deps, ai_queue_run, ai_event_data }
 * ai_queue_run connects to Redis for the job's cache entry and runs ai_job_run();
 * ai_event_data makes the `ai` event {job_id, kind, status, result?, error?}. */
enum queue_outcome ai_queue_run(void *ctx, const struct queue_job *job,
				const volatile sig_atomic_t *cancel, char **result_json, char *err,
				size_t errlen);
char *ai_event_data(const struct queue_job *job, const char *status, const char *result_json,
		    const char *error);

enum ai_status { AI_OK = 0, AI_FAILED = -1, AI_CANCELLED = -2 };

/* Runs one AI job. request_json is the job's request field. r (may be NULL) is a Redis
 * connection for the cache and the pending mark; job_id names the job. AI_OK and
 * *result_json (caller frees with free()); AI_FAILED and a message for people in err, or
 * AI_CANCELLED when *cancel became non-zero (the job should run again later). The answer
 * is cached and the pending mark cleared unless cancelled. */
enum ai_status ai_job_run(const struct ai_deps *d, redisContext *r, const char *job_id,
			  const char *request_json, const volatile sig_atomic_t *cancel,
			  char **result_json, char *err, size_t errlen);

/* "hint" or "review" from a job's request (for the `ai` event's kind), into out; "" when
 * the request is unreadable. */
void ai_request_kind(const char *request_json, char *out, size_t cap);

/* ---- the pure parts, exposed for tests/unit/test_ai.c ---- */

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

int ai_request_parse(const char *json, struct ai_request *rq, char *err, size_t errlen);
void ai_request_free(struct ai_request *rq);

/* The chat completion request body for rq. Caller frees with free(); NULL when OOM. */
char *ai_openai_body(const struct ai_request *rq);

/* Reads a chat completion answer: 0 and *text (caller frees, cleaned with ai_clean_text)
 * and *cut (finish_reason "length"), or -1 and why in err (not JSON, no content, empty). */
int ai_openai_answer(const char *body, size_t len, char **text, int *cut, char *err,
		     size_t errlen);

/* The provider's own error message from an error answer ({"error":{"message"}},
 * {"error":"…"}, {"message":"…"}) or the start of the body, one line, cleaned, at most
 * cap - 1 bytes. */
void ai_provider_error(const char *body, size_t len, char *out, size_t cap);

/* s[0..len) as valid UTF-8 (bad bytes become U+FFFD), without control characters but
 * \n and \t (\r\n becomes \n), cut at a character boundary within max bytes. Caller frees
 * with free(); NULL when OOM. */
char *ai_clean_text(const char *s, size_t len, size_t max);

/* Retry-After (RFC 9110, 10.2.3): delay-seconds or an HTTP-date; seconds from now (>= 0),
 * or -1 when unreadable. */
long ai_retry_after(const char *value, long long now_s);

/* The checker's output for language parsed into [{line, column?, severity, message}] (new
 * array, caller frees), lines moved by first_line - 1, at most AI_DIAG_MAX items. */
cJSON *ai_diag_parse(const char *language, const char *output, long first_line);

/* The checker of a language: its source file name and a printable command; -1 for none. */
int ai_checker(const char *language, const char **file, const char **label);

#endif

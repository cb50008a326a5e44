/* ai: the worker's side of the AI copilot (jobs of kind "ai", written by fcgi/h_ai.c).
 *
 * A job's request is {kind: "hint"|"review", provider, model, language, code, question,
 * first_line, cache_key} (ai_request.h). The API chose the provider and the model (they
 * are part of the cache key), so the worker answers with those, using its own AI_BASE_URL,
 * AI_API_KEY and AI_TIMEOUT_MS (lib/aicfg.h):
 *   openai  POST {AI_BASE_URL}/chat/completions (ai_openai.h), retried with exponential
 *           backoff on 429 (honouring Retry-After) and 5xx; prompts in prompts.c;
 *   local   the language's own checker run in the sandbox (ai_local.h).
 * The result is {kind, provider, model?, checker?, text, diagnostics?, truncated?, cached}.
 * The provider's text is untrusted: it is made valid UTF-8 without control characters
 * (but \n and \t), bounded (ai_text.h), and only ever stored and sent as a JSON string.
 *
 * This file is the job glue: the answer goes to cc:ai:cache:{cache_key} (24 h), unless the
 * local provider marked it not cacheable (it says what this worker could not do, not what
 * the code is), and the job's cc:ai:pending:{key} mark is cleared, whether the job
 * succeeded or not (docs/INTERNALS.md), through the job thread's own Redis connection. */
#ifndef CC_AI_H
#define CC_AI_H

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stddef.h>

#include "ai_local.h"
#include "ai_openai.h"
#include "ai_request.h"
#include "ai_text.h"
#include "queue.h"
#include "runtimes.h"
#include "sandbox.h"

/* What an AI job may use; filled by ai_deps_init(), then read-only configuration shared
 * by every job thread (the ctx of the "ai" queue_handler). */
struct ai_deps {
	const struct sandbox *sb;	  /* NULL: the local provider cannot check */
	const struct runtimes *rts;	  /* binaries of the checkers */
	const struct sandbox_limits *lim; /* NULL: sandbox_limits_default() */
};

/* Checks the AI settings of the environment. The program must have called
 * curl_global_init() before (the worker's main does, at start). sb, rts and lim are
 * borrowed (each may be NULL) and must outlive d. 0 or -1 with a message in err. */
int ai_deps_init(struct ai_deps *d, const struct sandbox *sb, const struct runtimes *rts,
		 const struct sandbox_limits *lim, char *err, size_t errlen);

/* The queue_handler of kind "ai" (queue.h), ctx a struct ai_deps:
 *   { "ai", "ai", &deps, ai_queue_run, ai_event_data }
 * ai_queue_run runs ai_job_run() with the job thread's Redis connection r (for the job's
 * cache entry and pending mark); ai_event_data makes the `ai` event {job_id, kind,
 * status, result?, error?}. */
enum queue_outcome ai_queue_run(void *ctx, struct rds *r, const struct queue_job *job,
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
enum ai_status ai_job_run(const struct ai_deps *d, struct rds *r, const char *job_id,
			  const char *request_json, const volatile sig_atomic_t *cancel,
			  char **result_json, char *err, size_t errlen);

#endif

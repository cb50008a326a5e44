/* ai_openai: the OpenAI-compatible chat completions provider.
 *   ai_openai.c  pure: the request body, the answer read, an HTTP answer or a failed
 *                transfer mapped to an outcome (text, retry or fail, with the message for
 *                people), Retry-After, the URL asked and the one logged;
 *   ai_http.c    the call: POST {AI_BASE_URL}/chat/completions with libcurl, retried with
 *                lib/backoff.h on 429 (honouring Retry-After), 5xx and broken transfers. */
#ifndef CC_AI_OPENAI_H
#define CC_AI_OPENAI_H

#include "aicfg.h"
#include "ai_request.h"

#include <signal.h>
#include <stddef.h>

#define AI_TEXT_MAX (32 * 1024)	    /* bytes of answer text kept */
#define AI_RESPONSE_MAX (1024 * 1024) /* bytes of a provider's HTTP answer read */
/* provider calls per job, retries included, and the longest Retry-After honoured: shared
 * with the API, whose pending mark of a job must outlive the job (lib/aicfg.h) */
#define AI_ATTEMPTS AICFG_ATTEMPTS
#define AI_RETRY_AFTER_MAX_S AICFG_RETRY_AFTER_MAX_S

/* The chat completion request body for rq. Caller frees with free(); NULL when OOM. */
char *ai_openai_body(const struct ai_request *rq);

/* Why an answer's text is cut (the bits of *cut below): the provider stopped at our
 * max_tokens (finish_reason "length"), or the text was longer than AI_TEXT_MAX (a provider
 * may ignore max_tokens). Either way the answer is kept as it is, with truncated: true; it
 * is never asked for again (docs/INTERNALS.md, "What an AI job costs"). */
#define AI_CUT_LENGTH 1
#define AI_CUT_TEXT 2

/* Reads a chat completion answer: 0 and *text (caller frees, cleaned with ai_clean_text)
 * and *cut (AI_CUT_LENGTH, AI_CUT_TEXT, both or 0), or -1 and
 * why in err (not one JSON value with nothing but whitespace after it; no content, with
 * the provider's own message when the answer is an error; empty). A \u0000 escape, a NUL
 * byte or a lone surrogate escape in the answer is U+FFFD in the text; the rest of the
 * text is kept. */
int ai_openai_answer(const char *body, size_t len, char **text, int *cut, char *err,
		     size_t errlen);

/* The provider's own error message from an error answer ({"error":{"message"}},
 * {"error":"…"}, {"message":"…"}; read as ai_openai_answer reads an answer, so an escaped
 * NUL or lone surrogate in it is U+FFFD) or the start of the body, one line, cleaned, at
 * most cap - 1 bytes. */
void ai_provider_error(const char *body, size_t len, char *out, size_t cap);

/* Retry-After (RFC 9110, 10.2.3): delay-seconds or an HTTP-date; seconds from now (>= 0),
 * or -1 when unreadable. */
long ai_retry_after(const char *value, long long now_s);

/* What one provider call came to. */
enum ai_call { AI_CALL_OK, AI_CALL_RETRY, AI_CALL_FAIL };

/* Maps an HTTP answer (status, body[0..len), its Retry-After header or NULL, the time now)
 * to an outcome:
 *   2xx with an answer: AI_CALL_OK, *text (caller frees) and *cut as ai_openai_answer;
 *   2xx without one (not JSON, no choices[0].message.content, an error, empty):
 *   AI_CALL_FAIL;
 *   429 and 5xx: AI_CALL_RETRY, and *wait_ms the delay a readable Retry-After of a 429
 *   or 503 asks for (else -1);
 *   any other status: AI_CALL_FAIL.
 * Every outcome but AI_CALL_OK leaves a message for people in err ("the AI provider
 * answered HTTP 503: <its own message>"). */
enum ai_call ai_openai_map(long status, const char *body, size_t len, const char *retry_after,
			   long long now_s, char **text, int *cut, long *wait_ms, char *err,
			   size_t errlen);

/* What one request to the provider came to, as codecollab_worker_ai_provider_requests_total
 * counts it: what the provider may have spent on it. */
enum ai_spent {
	AI_SPENT_ANSWERED,   /* a 2xx answer read whole: one completion, the job's answer */
	AI_SPENT_LENGTH,     /* the same, stopped at max_tokens: kept, cut, not asked again */
	AI_SPENT_LOST,	     /* a 2xx head, its body not whole: a completion made and lost */
	AI_SPENT_REFUSED,    /* another status (429, 5xx, 4xx): as a rule no completion */
	AI_SPENT_UNANSWERED, /* no answer's head (not reached, nothing came, timed out) */
};

/* The kind of a request that ended with transfer_ok (libcurl's CURLE_OK), the HTTP status
 * of the answer's head (0 when none came) and, for a whole 2xx answer, cut from
 * ai_openai_map (0 when it was not read). */
enum ai_spent ai_openai_spent(int transfer_ok, long status, int cut);

/* Maps a transfer libcurl could not complete (curl_rc a CURLcode other than CURLE_OK) to
 * an outcome and a message for people in err. status is the HTTP status of the answer's
 * head (0 when none came), got the bytes of its body read, announced its Content-Length (-1
 * when it had none). The message never holds the URL or curl's detailed text (which names
 * the host): job errors are shown to the room. Another attempt (AI_CALL_RETRY) follows a
 * provider that could not be connected to or resolved, a connection that broke or closed
 * without an answer, and an answer cut off before its announced end (CURLE_PARTIAL_FILE,
 * "the AI provider's answer was cut off: …") or whose transfer broke (a malformed chunked
 * encoding); a timeout, a cancel and an answer past AI_RESPONSE_MAX fail at once. */
enum ai_call ai_openai_transport(int curl_rc, long status, long long got, long long announced,
				 long timeout_ms, char *err, size_t errlen);

/* {AI_BASE_URL}/chat/completions: base's path without its trailing slashes, then
 * /chat/completions, before base's query (kept: an operator may put a key there) and
 * without its fragment. Caller frees with free(); NULL with err (not a URL, out of memory;
 * the message does not quote base, which may hold a secret). */
char *ai_completions_url(const char *base, char *err, size_t errlen);

/* The provider's answer text for rq (ai_http.c): 0 and *text (caller frees) and *cut, or
 * -1 and a message in err. Stops early when *cancel becomes non-zero (cancel may be NULL). */
int ai_openai_call(const volatile sig_atomic_t *cancel, const struct aicfg *cfg,
		   const struct ai_request *rq, char **text, int *cut, char *err, size_t errlen);

#endif

/* ai_openai: the pure half of the OpenAI-compatible provider (see ai_openai.h). */
#include "ai_openai.h"

#include "ai_text.h"
#include "errbuf.h"
#include "prompts.h"
#include "url.h"
#include "utf8.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AI_TEMPERATURE 0.2
#define AI_MAX_TOKENS 1024

long ai_retry_after(const char *value, long long now_s)
{
	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (*value >= '0' && *value <= '9') {
		char *end;
		errno = 0;
		long long v = strtoll(value, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		if (errno || *end)
			return -1;
		return v > 86400 ? 86400 : (long)v;
	}
	time_t t = curl_getdate(value, NULL);
	if (t == (time_t)-1)
		return -1;
	return t <= now_s ? 0 : (t - now_s > 86400 ? 86400 : (long)(t - now_s));
}

char *ai_openai_body(const struct ai_request *rq)
{
	char *user = prompts_user(rq->kind, rq->language, rq->code, rq->code_len, rq->first_line,
				  rq->question);
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;
	if (!user || !o)
		goto out;
	cJSON_AddStringToObject(o, "model", rq->model);
	cJSON *msgs = cJSON_AddArrayToObject(o, "messages");
	cJSON *sys = cJSON_CreateObject();
	cJSON_AddStringToObject(sys, "role", "system");
	cJSON_AddStringToObject(sys, "content", prompts_system(rq->kind));
	cJSON_AddItemToArray(msgs, sys);
	cJSON *u = cJSON_CreateObject();
	cJSON_AddStringToObject(u, "role", "user");
	cJSON_AddStringToObject(u, "content", user);
	cJSON_AddItemToArray(msgs, u);
	cJSON_AddNumberToObject(o, "temperature", AI_TEMPERATURE);
	cJSON_AddNumberToObject(o, "max_tokens", AI_MAX_TOKENS);
	cJSON_AddFalseToObject(o, "stream");
	s = cJSON_PrintUnformatted(o);
out:
	cJSON_Delete(o);
	free(user);
	return s;
}

/* The provider's own message in an error answer o: {"error": "…"} or {"error": {"message":
 * "…"}}, with any_message also a bare {"message": "…"}; NULL when there is none. */
static const char *error_message(const cJSON *o, int any_message)
{
	if (!cJSON_IsObject(o))
		return NULL;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
	const char *m = cJSON_IsString(e) ? e->valuestring : ai_json_str(e, "message");
	return m || !any_message ? m : ai_json_str(o, "message");
}

/* s[0..n) (at most its first 4 KiB read) as one line of clean text in out[cap]. */
static void one_line(const char *s, size_t n, char *out, size_t cap)
{
	if (cap == 0)
		return;
	out[0] = '\0';
	char *t = ai_clean_text(s, n > 4096 ? 4096 : n, cap > 4 ? cap - 4 : 0, NULL);
	if (!t)
		return;
	size_t end = 0;
	for (size_t i = 0; t[i]; i++) {
		if (t[i] == '\n' || t[i] == '\t')
			t[i] = ' ';
		if (t[i] != ' ')
			end = i + 1;
	}
	t[end] = '\0'; /* no blank at the end: the message ends a sentence of ours */
	snprintf(out, cap, "%s", t);
	free(t);
}

int ai_openai_answer(const char *body, size_t len, char **text, int *cut, char *err,
		     size_t errlen)
{
	*text = NULL;
	*cut = 0;
	int rc = -1;
	/* cJSON ends a string at a decoded \u0000 (the answer was cut there) and refuses a
	 * lone surrogate (the whole answer was lost): both become U+FFFD first, as a NUL of a
	 * run's output does */
	char *fixed = body ? utf8_json_escapes_replaced(body, len, UTF8_JSON_FIX_ESCAPE, NULL) : NULL;
	if (body && !fixed) {
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	/* the answer is one JSON value and nothing after it but whitespace: cJSON alone stops
	 * at the end of the first value, and a body with more (two answers run together, a
	 * value cut off by junk) was read as its first value and cached for 24 h */
	const char *end = NULL;
	cJSON *o = fixed ? cJSON_ParseWithLengthOpts(fixed, len, &end, 0) : NULL;
	if (o && end) {
		size_t at = (size_t)(end - fixed);
		while (at < len && fixed[at] && strchr(" \t\r\n", fixed[at]))
			at++;
		if (at < len) {
			cJSON_Delete(o);
			o = NULL;
		}
	}
	free(fixed);
	if (!cJSON_IsObject(o)) {
		errbuf_set(err, errlen, "the AI provider's answer is not valid JSON");
		goto out;
	}
	const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0);
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
	if (!cJSON_IsObject(choice) || !cJSON_IsObject(msg) ||
	    !(cJSON_IsString(content) || cJSON_IsNull(content))) {
		/* some providers (and proxies in front of them) answer an error with a 2xx: its
		 * message says more than the shape that is missing */
		const char *em = error_message(o, 0);
		char why[256] = "";
		if (em)
			one_line(em, strlen(em), why, sizeof why);
		if (why[0])
			errbuf_set(err, errlen,
				   "the AI provider answered an error instead of an answer: %s", why);
		else
			errbuf_set(err, errlen, "the AI provider's answer is malformed: it has no "
						"choices[0].message.content");
		goto out;
	}
	const char *s = cJSON_IsString(content) ? content->valuestring : "";
	int bounded = 0;
	char *t = ai_clean_text(s, strlen(s), AI_TEXT_MAX, &bounded);
	if (!t) {
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	size_t a = strspn(t, " \n\t");
	if (!t[a]) {
		free(t);
		errbuf_set(err, errlen, "the AI provider gave an empty answer");
		goto out;
	}
	const char *fin = ai_json_str(choice, "finish_reason");
	/* cut by the provider's token limit, or by ours: a provider may ignore max_tokens */
	*cut = (fin && strcmp(fin, "length") == 0 ? AI_CUT_LENGTH : 0) | (bounded ? AI_CUT_TEXT : 0);
	*text = t;
	rc = 0;
out:
	cJSON_Delete(o);
	return rc;
}

void ai_provider_error(const char *body, size_t len, char *out, size_t cap)
{
	if (cap == 0)
		return;
	out[0] = '\0';
	/* read as an answer is (ai_openai_answer): an escaped NUL or lone surrogate in the
	 * message is U+FFFD in it, instead of the message cut there or the whole body shown */
	char *fixed = body && len ? utf8_json_escapes_replaced(body, len, UTF8_JSON_FIX_ESCAPE, NULL)
				  : NULL;
	cJSON *o = fixed ? cJSON_ParseWithLength(fixed, len) : NULL;
	free(fixed);
	const char *m = error_message(o, 1);
	if (m)
		one_line(m, strlen(m), out, cap);
	else if (body)
		one_line(body, len, out, cap);
	cJSON_Delete(o);
}

enum ai_call ai_openai_map(long status, const char *body, size_t len, const char *retry_after,
			   long long now_s, char **text, int *cut, long *wait_ms, char *err,
			   size_t errlen)
{
	*text = NULL;
	*cut = 0;
	*wait_ms = -1;
	if (status >= 200 && status < 300)
		return ai_openai_answer(body, len, text, cut, err, errlen) == 0 ? AI_CALL_OK
										 : AI_CALL_FAIL;
	char why[256];
	ai_provider_error(body, len, why, sizeof why);
	errbuf_set(err, errlen, "the AI provider answered HTTP %ld%s%s", status, why[0] ? ": " : "",
		   why);
	if (status != 429 && status < 500)
		return AI_CALL_FAIL;
	long ra = ai_retry_after(retry_after, now_s);
	if (ra >= 0 && (status == 429 || status == 503))
		*wait_ms = ra * 1000;
	return AI_CALL_RETRY;
}

enum ai_spent ai_openai_spent(int transfer_ok, long status, int cut)
{
	int two = status >= 200 && status < 300;
	if (status <= 0)
		return AI_SPENT_UNANSWERED;
	if (!two)
		return AI_SPENT_REFUSED;
	if (!transfer_ok)
		return AI_SPENT_LOST;
	return cut & AI_CUT_LENGTH ? AI_SPENT_LENGTH : AI_SPENT_ANSWERED;
}

enum ai_call ai_openai_transport(int curl_rc, long status, long long got, long long announced,
				 long timeout_ms, char *err, size_t errlen)
{
	CURLcode rc = (CURLcode)curl_rc;
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		errbuf_set(err, errlen, "the AI provider did not answer within %.1f s",
			   timeout_ms / 1000.0);
		return AI_CALL_FAIL;
	case CURLE_ABORTED_BY_CALLBACK:
		errbuf_set(err, errlen, "the worker is shutting down");
		return AI_CALL_FAIL;
	case CURLE_WRITE_ERROR:
		errbuf_set(err, errlen, "the AI provider's answer is larger than %d KiB",
			   AI_RESPONSE_MAX / 1024);
		return AI_CALL_FAIL;
	case CURLE_PARTIAL_FILE:
		/* the provider was reached and began its answer: the connection closed before the
		 * end its Content-Length (or its chunked encoding) announced. Like a broken chunked
		 * body, another attempt may well get the whole answer. */
		if (announced >= 0)
			errbuf_set(err, errlen,
				   "the AI provider's answer was cut off: the connection closed after "
				   "%lld of its %lld bytes",
				   got, announced);
		else
			errbuf_set(err, errlen,
				   "the AI provider's answer was cut off: the connection closed after "
				   "%lld bytes, before its end",
				   got);
		return AI_CALL_RETRY;
	default:
		break;
	}
	/* curl's generic phrase for the code, never its detailed message: that one names the
	 * host (and the worker's log has it, ai_http.c) */
	if (status > 0)
		errbuf_set(err, errlen, "the AI provider's answer broke off: %s",
			   curl_easy_strerror(rc));
	else
		errbuf_set(err, errlen, "could not reach the AI provider: %s", curl_easy_strerror(rc));
	return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
		       rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR
		   ? AI_CALL_RETRY
		   : AI_CALL_FAIL;
}

char *ai_completions_url(const char *base, char *err, size_t errlen)
{
	return url_with_path(base, "/chat/completions", "AI_BASE_URL", err, errlen);
}

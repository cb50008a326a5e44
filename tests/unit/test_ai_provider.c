/* The AI provider's pure parts (queue-worker/ai_openai.c, ai_text.c): the request body
 * sent, an HTTP answer mapped to what the job does next (answer, retry, fail) and the
 * message its owner reads, and the cleaning of untrusted text. */
#include "../../queue-worker/ai_openai.h"
#include "../../queue-worker/ai_text.h"
#include "../../queue-worker/prompts.h"
#include "../../queue-worker/worker_metrics.h"
#include "unit.h"
#include "url.h"
#include "utf8.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

static const char *const ok_body =
	"{\"id\":\"c1\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	"\"content\":\"Line 2 reads x before it is set.\"},\"finish_reason\":\"stop\"}]}";

struct mapped {
	enum ai_call o;
	char *text;
	int cut;
	long wait;
	char err[256];
};

static struct mapped map(long status, const char *body, const char *retry_after)
{
	struct mapped m;
	m.err[0] = '\0';
	m.o = ai_openai_map(status, body, body ? strlen(body) : 0, retry_after, 1700000000,
			    &m.text, &m.cut, &m.wait, m.err, sizeof m.err);
	return m;
}

static void test_request_body(void)
{
	struct ai_request rq;
	char err[256];
	CHECK(ai_request_parse("{\"kind\":\"hint\",\"provider\":\"openai\",\"model\":\"m-2\","
			       "\"language\":\"python\",\"code\":\"print(x)\\nx = 1\\n\","
			       "\"question\":\"why?\",\"first_line\":7}",
			       &rq, err, sizeof err) == 0);
	char *body = ai_openai_body(&rq);
	cJSON *o = body ? cJSON_Parse(body) : NULL;
	CHECK(cJSON_IsObject(o));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "model")), "m-2");
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(o, "stream")));
	CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "temperature")) == 0.2);
	CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "max_tokens")) == 1024);
	const cJSON *msgs = cJSON_GetObjectItem(o, "messages");
	CHECK(cJSON_GetArraySize(msgs) == 2);
	const cJSON *sys = cJSON_GetArrayItem(msgs, 0), *user = cJSON_GetArrayItem(msgs, 1);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(sys, "role")), "system");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(sys, "content")), prompts_system("hint"));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(user, "role")), "user");
	const char *u = cJSON_GetStringValue(cJSON_GetObjectItem(user, "content"));
	/* the code with the document's line numbers, the language and the question */
	CHECK(u && strstr(u, "   7 | print(x)\n   8 | x = 1\n"));
	CHECK(u && strstr(u, "Language: python\n"));
	CHECK(u && strstr(u, "why?"));
	cJSON_Delete(o);
	free(body);
	ai_request_free(&rq);
}

static void test_answer_ok(void)
{
	struct mapped m = map(200, ok_body, NULL);
	CHECK(m.o == AI_CALL_OK);
	CHECK_STR(m.text, "Line 2 reads x before it is set.");
	CHECK(m.cut == 0 && m.wait == -1);
	free(m.text);
	/* any 2xx; an answer cut by the token limit says so */
	m = map(201, "{\"choices\":[{\"message\":{\"content\":\"Half of it\"},"
		     "\"finish_reason\":\"length\"}]}", NULL);
	CHECK(m.o == AI_CALL_OK && m.cut == AI_CUT_LENGTH);
	CHECK_STR(m.text, "Half of it");
	free(m.text);
	/* a provider that ignores max_tokens: "stop", but longer than we keep. The text is cut
	 * to AI_TEXT_MAX and says so, however little is lost; what fits whole is not flagged */
	const size_t sizes[] = {40000, AI_TEXT_MAX + 1, AI_TEXT_MAX};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t n = sizes[i];
		char *long_body = malloc(n + 128);
		CHECK(long_body != NULL);
		if (!long_body)
			return;
		int k = snprintf(long_body, 128, "{\"choices\":[{\"message\":{\"content\":\"");
		memset(long_body + k, 'x', n);
		strcpy(long_body + k + n, "\"},\"finish_reason\":\"stop\"}]}");
		m = map(200, long_body, NULL);
		CHECK(m.o == AI_CALL_OK);
		CHECK(m.text && strlen(m.text) == (n > AI_TEXT_MAX ? AI_TEXT_MAX : n));
		CHECK(m.cut == (n > AI_TEXT_MAX ? AI_CUT_TEXT : 0));
		free(m.text);
		free(long_body);
	}
	/* a cut that only drops what cleaning removes anyway (controls past the bound) loses
	 * nothing: not flagged */
	char *ctl = malloc(AI_TEXT_MAX + 128);
	CHECK(ctl != NULL);
	if (!ctl)
		return;
	int k = snprintf(ctl, 128, "{\"choices\":[{\"message\":{\"content\":\"");
	memset(ctl + k, 'y', AI_TEXT_MAX);
	strcpy(ctl + k + AI_TEXT_MAX, "\\u0007\\u0007\"},\"finish_reason\":\"stop\"}]}");
	m = map(200, ctl, NULL);
	CHECK(m.o == AI_CALL_OK && m.cut == 0);
	CHECK(m.text && strlen(m.text) == AI_TEXT_MAX);
	free(m.text);
	free(ctl);
}

/* A NUL byte in the body (JSON allows it only escaped): U+FFFD, the text goes on after it,
 * as for \u0000; after the answer's value it is junk like any other. Whitespace after the
 * value is fine. */
static void test_answer_raw_nul(void)
{
	static const char nul_in[] = "{\"choices\":[{\"message\":{\"content\":\"a\0b\"}}]}";
	static const char nul_after[] = "{\"choices\":[{\"message\":{\"content\":\"a\"}}]}\0";
	static const char ws_after[] = "{\"choices\":[{\"message\":{\"content\":\"a\"}}]} \r\n\t";
	struct mapped m;
	m.err[0] = '\0';
	m.o = ai_openai_map(200, nul_in, sizeof nul_in - 1, NULL, 1700000000, &m.text, &m.cut,
			    &m.wait, m.err, sizeof m.err);
	CHECK(m.o == AI_CALL_OK && m.cut == 0);
	CHECK_STR(m.text, "a\xEF\xBF\xBD" "b");
	free(m.text);
	m.o = ai_openai_map(200, nul_after, sizeof nul_after - 1, NULL, 1700000000, &m.text,
			    &m.cut, &m.wait, m.err, sizeof m.err);
	CHECK(m.o == AI_CALL_FAIL && m.text == NULL);
	CHECK_STR(m.err, "the AI provider's answer is not valid JSON");
	m = map(200, ws_after, NULL);
	CHECK(m.o == AI_CALL_OK);
	CHECK_STR(m.text, "a");
	free(m.text);
}

static void test_answer_broken(void)
{
	/* a 200 without an answer fails the job (another attempt would get the same) */
	static const struct {
		const char *body, *why;
	} cases[] = {
		{"", "the AI provider's answer is not valid JSON"},
		{"{\"choices\":[{\"message\":{\"content\":\"x\"}}]", "the AI provider's answer is not valid JSON"},
		{"<html>oops</html>", "the AI provider's answer is not valid JSON"},
		{"{\"choices\":[]}", "the AI provider's answer is malformed: it has no choices[0].message.content"},
		{"{\"object\":\"chat.completion\"}", "the AI provider's answer is malformed: it has no choices[0].message.content"},
		{"{\"choices\":[{\"message\":{}}]}", "the AI provider's answer is malformed: it has no choices[0].message.content"},
		{"{\"choices\":[{\"message\":{\"content\":\"\\n \\t\"}}]}", "the AI provider gave an empty answer"},
		/* one JSON value and nothing after it but whitespace: not its first value read */
		{"{\"choices\":[{\"message\":{\"content\":\"x\"}}]} {\"choices\":[]}", "the AI provider's answer is not valid JSON"},
		{"{\"choices\":[{\"message\":{\"content\":\"x\"}}]}garbage", "the AI provider's answer is not valid JSON"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct mapped m = map(200, cases[i].body, NULL);
		CHECK(m.o == AI_CALL_FAIL && m.text == NULL);
		CHECK_STR(m.err, cases[i].why);
	}
}

static void test_answer_retry(void)
{
	const char *slow = "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"tokens\"}}";
	/* 429 with Retry-After in seconds: retried after what it asks */
	struct mapped m = map(429, slow, " 7\r\n");
	CHECK(m.o == AI_CALL_RETRY && m.wait == 7000 && m.text == NULL);
	CHECK_STR(m.err, "the AI provider answered HTTP 429: Rate limit reached");
	/* ... or as a date (1700000000 is Tue, 14 Nov 2023 22:13:20 GMT) */
	m = map(429, slow, "Tue, 14 Nov 2023 22:13:32 GMT");
	CHECK(m.o == AI_CALL_RETRY && m.wait == 12000);
	/* without one (or unreadable): the back-off decides */
	m = map(429, slow, NULL);
	CHECK(m.o == AI_CALL_RETRY && m.wait == -1);
	m = map(429, slow, "soon");
	CHECK(m.o == AI_CALL_RETRY && m.wait == -1);
	/* 5xx: retried; only a 503 has its Retry-After honoured */
	m = map(503, "{\"error\":\"overloaded\"}", "2");
	CHECK(m.o == AI_CALL_RETRY && m.wait == 2000);
	CHECK_STR(m.err, "the AI provider answered HTTP 503: overloaded");
	m = map(500, "", "2");
	CHECK(m.o == AI_CALL_RETRY && m.wait == -1);
	CHECK_STR(m.err, "the AI provider answered HTTP 500");
	m = map(502, "<html>\r\n502 Bad Gateway\r\n</html>", NULL);
	CHECK(m.o == AI_CALL_RETRY);
	CHECK_STR(m.err, "the AI provider answered HTTP 502: <html> 502 Bad Gateway </html>");
}

static void test_answer_fail(void)
{
	/* other statuses: another attempt would not help */
	struct mapped m = map(401, "{\"error\":{\"message\":\"Invalid API Key\"}}", "5");
	CHECK(m.o == AI_CALL_FAIL && m.wait == -1 && m.text == NULL);
	CHECK_STR(m.err, "the AI provider answered HTTP 401: Invalid API Key");
	m = map(404, "{\"message\":\"model m-2 not found\"}", NULL);
	CHECK(m.o == AI_CALL_FAIL);
	CHECK_STR(m.err, "the AI provider answered HTTP 404: model m-2 not found");
	m = map(400, NULL, NULL);
	CHECK(m.o == AI_CALL_FAIL);
	CHECK_STR(m.err, "the AI provider answered HTTP 400");
	m = map(302, "", NULL);
	CHECK(m.o == AI_CALL_FAIL);
	/* the provider's message is cleaned and kept on one line; an escaped NUL or lone
	 * surrogate is U+FFFD in it, as in an answer (it used to end the message, or to leave
	 * the whole body shown as the message) */
	m = map(400, "{\"error\":\"bad\\u001b[31m\\nrequest\\u0000x\"}", NULL);
	CHECK_STR(m.err, "the AI provider answered HTTP 400: bad[31m request\xEF\xBF\xBDx");
	m = map(404, "{\"error\":{\"message\":\"model \\ud800 gone\"}}", NULL);
	CHECK_STR(m.err, "the AI provider answered HTTP 404: model \xEF\xBF\xBD gone");
	/* a 2xx that is an error rather than an answer: its message */
	m = map(200, "{\"error\":{\"message\":\"Model overloaded\\n\",\"code\":503}}", NULL);
	CHECK(m.o == AI_CALL_FAIL && m.text == NULL);
	CHECK_STR(m.err, "the AI provider answered an error instead of an answer: Model overloaded");
	m = map(200, "{\"error\":\"\",\"choices\":[]}", NULL);
	CHECK_STR(m.err, "the AI provider's answer is malformed: it has no choices[0].message.content");
}

/* A transfer libcurl could not complete: what the job's owner reads, and whether another
 * attempt follows. */
static void test_transport(void)
{
	char err[256];
	/* the body shorter than its Content-Length: cut off, and tried again (it read "could not
	 * reach the AI provider at <AI_BASE_URL>: transfer closed with 470 bytes remaining to
	 * read", and was not) */
	CHECK(ai_openai_transport(CURLE_PARTIAL_FILE, 200, 30, 500, 4000, err, sizeof err) ==
	      AI_CALL_RETRY);
	CHECK_STR(err, "the AI provider's answer was cut off: the connection closed after 30 of "
		       "its 500 bytes");
	/* chunked, so no length was announced */
	CHECK(ai_openai_transport(CURLE_PARTIAL_FILE, 200, 12, -1, 4000, err, sizeof err) ==
	      AI_CALL_RETRY);
	CHECK_STR(err, "the AI provider's answer was cut off: the connection closed after 12 "
		       "bytes, before its end");
	/* a broken chunked encoding: the answer had begun, so it broke off; tried again */
	CHECK(ai_openai_transport(CURLE_RECV_ERROR, 200, 0, -1, 4000, err, sizeof err) ==
	      AI_CALL_RETRY);
	CHECK(strncmp(err, "the AI provider's answer broke off: ", 36) == 0);
	/* nothing came: the provider was not reached, in curl's generic words only */
	CHECK(ai_openai_transport(CURLE_COULDNT_CONNECT, 0, 0, -1, 4000, err, sizeof err) ==
	      AI_CALL_RETRY);
	CHECK_STR(err, "could not reach the AI provider: Couldn't connect to server");
	CHECK(ai_openai_transport(CURLE_GOT_NOTHING, 0, 0, -1, 4000, err, sizeof err) ==
	      AI_CALL_RETRY);
	CHECK(ai_openai_transport(CURLE_PEER_FAILED_VERIFICATION, 0, 0, -1, 4000, err,
				  sizeof err) == AI_CALL_FAIL);
	CHECK(strncmp(err, "could not reach the AI provider: ", 33) == 0);
	/* bounds of ours: no other attempt */
	CHECK(ai_openai_transport(CURLE_OPERATION_TIMEDOUT, 200, 5, -1, 4000, err, sizeof err) ==
	      AI_CALL_FAIL);
	CHECK_STR(err, "the AI provider did not answer within 4.0 s");
	CHECK(ai_openai_transport(CURLE_WRITE_ERROR, 200, AI_RESPONSE_MAX, -1, 4000, err,
				  sizeof err) == AI_CALL_FAIL);
	CHECK_STR(err, "the AI provider's answer is larger than 1024 KiB");
	CHECK(ai_openai_transport(CURLE_ABORTED_BY_CALLBACK, 0, 0, -1, 4000, err, sizeof err) ==
	      AI_CALL_FAIL);
}

/* What one request came to, as the requests counter tells it: a whole 2xx is one
 * completion (length when cut at max_tokens, whatever else cut it), a 2xx whose body broke
 * is a completion lost, another status or no head at all as a rule none. */
static void test_spent(void)
{
	CHECK(ai_openai_spent(1, 200, 0) == AI_SPENT_ANSWERED);
	CHECK(ai_openai_spent(1, 201, AI_CUT_TEXT) == AI_SPENT_ANSWERED);
	CHECK(ai_openai_spent(1, 200, AI_CUT_LENGTH) == AI_SPENT_LENGTH);
	CHECK(ai_openai_spent(1, 200, AI_CUT_LENGTH | AI_CUT_TEXT) == AI_SPENT_LENGTH);
	/* an unreadable 2xx was read whole all the same */
	CHECK(ai_openai_spent(1, 299, 0) == AI_SPENT_ANSWERED);
	/* cut in transfer, broken, too large or too slow after a 2xx head */
	CHECK(ai_openai_spent(0, 200, 0) == AI_SPENT_LOST);
	CHECK(ai_openai_spent(0, 200, AI_CUT_LENGTH) == AI_SPENT_LOST);
	CHECK(ai_openai_spent(1, 429, 0) == AI_SPENT_REFUSED);
	CHECK(ai_openai_spent(1, 503, 0) == AI_SPENT_REFUSED);
	CHECK(ai_openai_spent(0, 500, 0) == AI_SPENT_REFUSED);
	CHECK(ai_openai_spent(1, 199, 0) == AI_SPENT_REFUSED);
	CHECK(ai_openai_spent(0, 0, 0) == AI_SPENT_UNANSWERED);
	/* the counter's labels are in the enum's order */
	CHECK(worker_metrics[WM_AI_REQUESTS].label[0].n == 5);
	CHECK_STR(worker_metrics[WM_AI_REQUESTS].label[0].values[AI_SPENT_ANSWERED], "answered");
	CHECK_STR(worker_metrics[WM_AI_REQUESTS].label[0].values[AI_SPENT_LENGTH], "length");
	CHECK_STR(worker_metrics[WM_AI_REQUESTS].label[0].values[AI_SPENT_LOST], "lost");
	CHECK_STR(worker_metrics[WM_AI_REQUESTS].label[0].values[AI_SPENT_REFUSED], "refused");
	CHECK_STR(worker_metrics[WM_AI_REQUESTS].label[0].values[AI_SPENT_UNANSWERED],
		  "unanswered");
}

/* The URL asked, and the one the worker's log names */
static void test_urls(void)
{
	char err[256] = "", out[512];
	static const char *const joined[][2] = {
		{"https://api.groq.com/openai/v1", "https://api.groq.com/openai/v1/chat/completions"},
		{"http://127.0.0.1:8080/v1//", "http://127.0.0.1:8080/v1/chat/completions"},
		{"http://h", "http://h/chat/completions"},
		/* the query stays a query: it used to have the path glued to its end
		 * ("…/v1?api-key=k/chat/completions") */
		{"https://h/openai/v1/?api-version=2024-02&key=s3cret",
		 "https://h/openai/v1/chat/completions?api-version=2024-02&key=s3cret"},
		{"http://u:p@h:81/v1#frag", "http://u:p@h:81/v1/chat/completions"},
	};
	for (size_t i = 0; i < sizeof joined / sizeof joined[0]; i++) {
		char *u = ai_completions_url(joined[i][0], err, sizeof err);
		CHECK_STR(u, joined[i][1]);
		free(u);
	}
	/* not a URL: the message does not quote it */
	char *u = ai_completions_url("http://[::1/v1?key=s3cret", err, sizeof err);
	CHECK(u == NULL && strstr(err, "AI_BASE_URL") && !strstr(err, "s3cret"));
	free(u);
	/* Piston's paths the same way, its message naming its own setting */
	u = url_with_path("http://127.0.0.1:2000/?token=s3cret", "/api/v2/execute", "PISTON_URL", err,
			  sizeof err);
	CHECK_STR(u, "http://127.0.0.1:2000/api/v2/execute?token=s3cret");
	free(u);
	err[0] = '\0';
	u = url_with_path("http://u:s3cret@[::1:2000/", "/api/v2/runtimes", "PISTON_URL", err,
			  sizeof err);
	CHECK(u == NULL);
	CHECK_STR(err, "PISTON_URL must be an http:// or https:// URL");
	free(u);

	/* for the log: no userinfo, no login options, no query, no fragment */
#define NS "(AI_BASE_URL, not shown)"
	url_for_log("https://user:s3cret@api.example:8443/v1/chat/completions?key=s3cret#x", NS,
		       out, sizeof out);
	CHECK_STR(out, "https://api.example:8443/v1/chat/completions");
	url_for_log("http://sk-s3cret@127.0.0.1:9/chat/completions", NS, out, sizeof out);
	CHECK_STR(out, "http://127.0.0.1:9/chat/completions");
	url_for_log("http://u;AUTH=s3cret@h/", NS, out, sizeof out);
	CHECK(!strstr(out, "s3cret") && strstr(out, "http://h/"));
	url_for_log("not a url s3cret", NS, out, sizeof out);
	CHECK(!strstr(out, "s3cret") && strcmp(out, NS) == 0);
	url_for_log("http://h/v1", NS, out, 8);
	CHECK_STR(out, "http://");
#undef NS
	/* a setting requests can be made to: http or https (any case), read by libcurl; the
	 * message shows it only as a log line would */
	CHECK(url_http_check("https://api.example/v1?key=s3cret", "AI_BASE_URL", err, sizeof err) == 0);
	CHECK(url_http_check("HTTP://127.0.0.1:2000", "PISTON_URL", err, sizeof err) == 0);
	CHECK(url_http_check("127.0.0.1:2000", "PISTON_URL", err, sizeof err) < 0);
	CHECK_STR(err, "PISTON_URL must be an http:// or https:// URL (got a text libcurl does not "
		       "read as a URL)");
	CHECK(url_http_check("ftp://u:s3cret@h/?k=s3cret", "PISTON_URL", err, sizeof err) < 0);
	CHECK_STR(err, "PISTON_URL must be an http:// or https:// URL (got ftp://h/)");
	CHECK(url_http_check(" http://h/", "AI_BASE_URL", err, sizeof err) < 0);
	CHECK(url_http_check("http://h/ s3cret", "AI_BASE_URL", err, sizeof err) < 0 &&
	      !strstr(err, "s3cret"));
}

static void test_clean_text(void)
{
	/* bad UTF-8: each byte that starts no character becomes U+FFFD */
	char *t = ai_clean_text("a\xff" "b\xc3(\xed\xa0\x80" "c", 9, 100, NULL);
	CHECK_STR(t, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD(\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "c");
	free(t);
	/* NUL and the other controls go; \n and \t stay; \r\n becomes \n */
	t = ai_clean_text("x\0y\r\nz\tw\x1b\x7f\xc2\x85!", 13, 100, NULL);
	CHECK_STR(t, "xy\nz\tw!");
	free(t);
	/* oversized: cut within the bound, never inside a character */
	char big[3000];
	for (size_t i = 0; i < sizeof big; i += 3)
		memcpy(big + i, "\xe2\x82\xac", 3); /* 1000 euro signs */
	t = ai_clean_text(big, sizeof big, 100, NULL);
	CHECK(t && strlen(t) == 99 && utf8_validate(t, 99, NULL, NULL) == UTF8_OK);
	free(t);
	t = ai_clean_text(big, sizeof big, 2, NULL);
	CHECK_STR(t, "");
	free(t);
	/* a replacement counts against the bound like any character */
	t = ai_clean_text("ab\xff\xff", 4, 5, NULL);
	CHECK_STR(t, "ab\xEF\xBF\xBD");
	free(t);
}

int main(void)
{
	test_request_body();
	test_answer_ok();
	test_answer_broken();
	test_answer_raw_nul();
	test_answer_retry();
	test_answer_fail();
	test_transport();
	test_spent();
	test_urls();
	test_clean_text();
	return unit_summary("ai_provider");
}

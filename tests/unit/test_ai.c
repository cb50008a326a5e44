/* The AI copilot's pure parts: settings, the cache key, prompts, the provider's answers
 * (hostile ones included), Retry-After, and the checkers' diagnostics. */
#include "aicfg.h"
#include "../../queue-worker/ai.h"
#include "../../queue-worker/prompts.h"
#include "unit.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#define FFFD "\xEF\xBF\xBD"

static void clear_env(void)
{
	unsetenv("AI_PROVIDER");
	unsetenv("AI_API_KEY");
	unsetenv("AI_BASE_URL");
	unsetenv("AI_MODEL");
	unsetenv("AI_TIMEOUT_MS");
}

static void test_config(void)
{
	struct aicfg c;
	char err[256];
	clear_env();
	CHECK(aicfg_load(&c, err, sizeof err) == 0);
	CHECK(c.provider == AICFG_LOCAL);
	CHECK_STR(c.model, AICFG_LOCAL_MODEL);
	CHECK_STR(c.base_url, "https://api.groq.com/openai/v1");
	CHECK(c.timeout_ms == 30000);
	setenv("AI_API_KEY", "k-123", 1);
	CHECK(aicfg_load(&c, err, sizeof err) == 0);
	CHECK(c.provider == AICFG_OPENAI);
	CHECK_STR(c.model, "llama-3.3-70b-versatile");
	CHECK_STR(c.api_key, "k-123");
	setenv("AI_PROVIDER", "off", 1);
	CHECK(aicfg_load(&c, err, sizeof err) == 0 && c.provider == AICFG_OFF);
	setenv("AI_PROVIDER", "local", 1);
	CHECK(aicfg_load(&c, err, sizeof err) == 0 && c.provider == AICFG_LOCAL);
	setenv("AI_PROVIDER", "OpenAI", 1); /* a typo stops the program */
	CHECK(aicfg_load(&c, err, sizeof err) < 0 && strstr(err, "AI_PROVIDER"));
	setenv("AI_PROVIDER", "openai", 1);
	setenv("AI_MODEL", "m-7", 1);
	setenv("AI_TIMEOUT_MS", "1500", 1);
	CHECK(aicfg_load(&c, err, sizeof err) == 0 && c.timeout_ms == 1500);
	CHECK_STR(c.model, "m-7");
	setenv("AI_TIMEOUT_MS", "soon", 1);
	CHECK(aicfg_load(&c, err, sizeof err) < 0 && strstr(err, "AI_TIMEOUT_MS"));
	unsetenv("AI_TIMEOUT_MS");
	setenv("AI_BASE_URL", "file:///etc/passwd", 1);
	CHECK(aicfg_load(&c, err, sizeof err) < 0 && strstr(err, "AI_BASE_URL"));
	clear_env();
	enum aicfg_provider p;
	CHECK(aicfg_provider_parse("openai", &p) == 0 && p == AICFG_OPENAI);
	CHECK(aicfg_provider_parse("", &p) < 0);
	CHECK(aicfg_provider_parse(NULL, &p) < 0);
	CHECK_STR(aicfg_provider_name(AICFG_LOCAL), "local");
}

static void key_of(const char *provider, const char *kind, const char *model, const char *lang,
		   long line, const char *code, const char *q, char out[AICFG_KEY_HEX + 1])
{
	struct aicfg_key_fields f = {provider, kind, model, lang, line, code, strlen(code), q};
	if (aicfg_cache_key(&f, out) < 0)
		strcpy(out, "failed");
}

static void test_cache_key(void)
{
	char a[AICFG_KEY_HEX + 1], b[AICFG_KEY_HEX + 1];
	/* the framing "<len>:<bytes>," of each field, checked against Python's hashlib */
	key_of("openai", "hint", "m1", "c", 1, "int main(){}\n", "why?", a);
	CHECK_STR(a, "f530f6c4ba121e13e095973fcf7d0ea0b39e42d77914bffadca81457f5cce06e");
	key_of("openai", "hint", "m1", "c", 1, "int main(){}\n", "why?", b);
	CHECK_STR(a, b);
	/* fields cannot run together */
	key_of("openai", "hint", "ab", "c", 1, "x", "", a);
	key_of("openai", "hint", "a", "bc", 1, "x", "", b);
	CHECK(strcmp(a, b) != 0);
	key_of("openai", "hint", "m", "c", 1, "x?", "", a);
	key_of("openai", "hint", "m", "c", 1, "x", "?", b);
	CHECK(strcmp(a, b) != 0);
	/* every field counts */
	key_of("openai", "hint", "m", "c", 1, "x", "", a);
	key_of("openai", "review", "m", "c", 1, "x", "", b);
	CHECK(strcmp(a, b) != 0);
	key_of("local", "hint", "m", "c", 1, "x", "", b);
	CHECK(strcmp(a, b) != 0);
	key_of("openai", "hint", "m", "c", 2, "x", "", b);
	CHECK(strcmp(a, b) != 0);
	key_of("openai", "hint", "m", "python", 1, "x", "", b);
	CHECK(strcmp(a, b) != 0);
	/* NULL question is the empty one; the code's bytes count, not its C string */
	struct aicfg_key_fields f = {"openai", "hint", "m", "c", 1, "x\0y", 3, NULL};
	CHECK(aicfg_cache_key(&f, b) == 0 && strcmp(a, b) != 0);
	f.code_len = 1;
	CHECK(aicfg_cache_key(&f, b) == 0);
	CHECK_STR(a, b);
	CHECK(strlen(a) == AICFG_KEY_HEX && strspn(a, "0123456789abcdef") == AICFG_KEY_HEX);
}

static void test_prompts(void)
{
	CHECK(prompts_system("hint") && strstr(prompts_system("hint"), "do not solve"));
	CHECK(prompts_system("review") && strstr(prompts_system("review"), "Security"));
	CHECK(strstr(prompts_system("review"), "line N"));
	CHECK(prompts_system("poem") == NULL);
	CHECK(prompts_system(NULL) == NULL);
	const char code[] = "int main(void)\n{\n\treturn 0;\n}";
	char *u = prompts_user("review", "c", code, strlen(code), 1, "is it fine?");
	CHECK(u != NULL);
	if (u) {
		CHECK(strstr(u, "Review this code.") != NULL);
		CHECK(strstr(u, "Language: c\n") != NULL);
		CHECK(strstr(u, "Question from the user: is it fine?\n") != NULL);
		CHECK(strstr(u, "   1 | int main(void)\n   2 | {\n   3 | \treturn 0;\n   4 | }\nCODE>>>") != NULL);
		free(u);
	}
	u = prompts_user("hint", "python", "a\nb\n", 4, 41, "");
	CHECK(u && strstr(u, "Give a hint") && strstr(u, "starts at line 41"));
	CHECK(u && strstr(u, "  41 | a\n  42 | b\nCODE>>>") && !strstr(u, "Question"));
	free(u);
	u = prompts_user("hint", "python", "", 0, 1, NULL);
	CHECK(u && strstr(u, "<<<CODE\nCODE>>>"));
	free(u);
	CHECK(strstr(prompts_local_label, "No AI provider is configured") == prompts_local_label);
}

static const char *req_json =
	"{\"kind\":\"review\",\"provider\":\"openai\",\"model\":\"m-1\",\"language\":\"c\","
	"\"code\":\"int x = 1;\\n\",\"question\":\"\",\"first_line\":3,"
	"\"cache_key\":\"f530f6c4ba121e13e095973fcf7d0ea0b39e42d77914bffadca81457f5cce06e\"}";

static void test_request(void)
{
	struct ai_request rq;
	char err[256];
	CHECK(ai_request_parse(req_json, &rq, err, sizeof err) == 0);
	CHECK_STR(rq.kind, "review");
	CHECK(rq.provider == AICFG_OPENAI && rq.first_line == 3 && rq.code_len == 11);
	CHECK(rq.cache_key != NULL);
	char *body = ai_openai_body(&rq);
	cJSON *o = body ? cJSON_Parse(body) : NULL;
	CHECK(o != NULL);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "model")), "m-1");
	cJSON *msgs = cJSON_GetObjectItem(o, "messages");
	CHECK(cJSON_GetArraySize(msgs) == 2);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "role")), "system");
	const char *user = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "content"));
	CHECK(user && strstr(user, "   3 | int x = 1;\n"));
	CHECK(cJSON_IsNumber(cJSON_GetObjectItem(o, "temperature")));
	CHECK(cJSON_IsNumber(cJSON_GetObjectItem(o, "max_tokens")));
	cJSON_Delete(o);
	free(body);
	ai_request_free(&rq);

	/* hostile or broken requests are refused with a message, never crash */
	const char *bad[] = {
		NULL, "", "[]", "{", "\"hint\"", "{\"kind\":\"poem\"}",
		"{\"kind\":\"hint\",\"provider\":\"off\",\"model\":\"m\",\"language\":\"c\",\"code\":\"x\"}",
		"{\"kind\":\"hint\",\"provider\":\"openai\",\"model\":\"m\",\"language\":\"c\"}",
		"{\"kind\":\"hint\",\"provider\":\"openai\",\"model\":1,\"language\":\"c\",\"code\":\"x\"}",
		"{\"kind\":[],\"provider\":\"openai\",\"model\":\"m\",\"language\":\"c\",\"code\":\"x\"}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		CHECK(ai_request_parse(bad[i], &rq, err, sizeof err) < 0 && err[0]);
		CHECK(rq.root == NULL);
	}
	/* a cache key that is not 64 hex characters is ignored, a silly first_line is 1 */
	CHECK(ai_request_parse("{\"kind\":\"hint\",\"provider\":\"local\",\"model\":\"m\","
			       "\"language\":\"c\",\"code\":\"x\",\"first_line\":-5,"
			       "\"cache_key\":\"../../etc\"}",
			       &rq, err, sizeof err) == 0);
	CHECK(rq.cache_key == NULL && rq.first_line == 1 && rq.question && !rq.question[0]);
	ai_request_free(&rq);

	char kind[16];
	ai_request_kind(req_json, kind, sizeof kind);
	CHECK_STR(kind, "review");
	ai_request_kind("{\"kind\":\"<script>\"}", kind, sizeof kind);
	CHECK_STR(kind, "");
	ai_request_kind(NULL, kind, sizeof kind);
	CHECK_STR(kind, "");
}

static int answer(const char *body, char **text, int *cut, char *err, size_t errlen)
{
	return ai_openai_answer(body, strlen(body), text, cut, err, errlen);
}

static void test_answers(void)
{
	char *t = NULL, err[256];
	int cut = 0;
	CHECK(answer("{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"Look at line 3.\"},"
		     "\"finish_reason\":\"stop\"}]}", &t, &cut, err, sizeof err) == 0);
	CHECK_STR(t, "Look at line 3.");
	CHECK(cut == 0);
	free(t);
	CHECK(answer("{\"choices\":[{\"message\":{\"content\":\"Half\"},\"finish_reason\":\"length\"}]}",
		     &t, &cut, err, sizeof err) == 0 && cut == 1);
	free(t);
	/* hostile text: bad UTF-8, escapes, controls; it stays text */
	CHECK(answer("{\"choices\":[{\"message\":{\"content\":\"a\xff\xc0\xafz \\u001b[31mred\\r\\n"
		     "<script>alert(1)</script>\\u0085\"}}]}", &t, &cut, err, sizeof err) == 0);
	CHECK_STR(t, "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz [31mred\n<script>alert(1)</script>");
	free(t);
	/* \u0000 and lone surrogate escapes are U+FFFD; the text goes on after them (cJSON
	 * ended the string at the NUL and refused a lone surrogate, losing the answer) */
	CHECK(answer("{\"choices\":[{\"message\":{\"content\":\"\\u0000hidden\\u0000 and \\\\u0000 "
		     "x\\ud800y \\udc00z \\uD83D\\uDE00 \\ud83d\\u0041 end\"}}]}",
		     &t, &cut, err, sizeof err) == 0);
	CHECK_STR(t, FFFD "hidden" FFFD " and \\u0000 x" FFFD "y " FFFD "z \xF0\x9F\x98\x80 " FFFD "A end");
	CHECK(cut == 0);
	free(t);
	struct {
		const char *body, *why;
	} bad[] = {
		{"", "not valid JSON"},
		{"<html>502 Bad Gateway</html>", "not valid JSON"},
		{"{\"choices\":[{\"message\":{\"content\":\"x\"}}", "not valid JSON"},
		{"[1,2]", "not valid JSON"},
		{"{}", "malformed"},
		{"{\"choices\":{}}", "malformed"},
		{"{\"choices\":[]}", "malformed"},
		{"{\"choices\":[1]}", "malformed"},
		{"{\"choices\":[{\"message\":\"hi\"}]}", "malformed"},
		{"{\"choices\":[{\"message\":{\"content\":42}}]}", "malformed"},
		{"{\"choices\":[{\"message\":{\"content\":null}}]}", "empty"},
		{"{\"choices\":[{\"message\":{\"content\":\" \\n\\t \"}}]}", "empty"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t = (char *)1;
		err[0] = '\0';
		CHECK(answer(bad[i].body, &t, &cut, err, sizeof err) < 0);
		CHECK(t == NULL);
		if (!strstr(err, bad[i].why))
			fprintf(stderr, "case %zu: %s\n", i, err);
		CHECK(strstr(err, bad[i].why) != NULL);
	}
	/* deep nesting and a huge answer are bounded */
	char *deep = malloc(200001);
	memset(deep, '[', 100000);
	memset(deep + 100000, ']', 100000);
	deep[200000] = '\0';
	CHECK(answer(deep, &t, &cut, err, sizeof err) < 0 && strstr(err, "not valid JSON"));
	free(deep);
	size_t big = 3 * AI_TEXT_MAX;
	char *huge = malloc(big + 100);
	strcpy(huge, "{\"choices\":[{\"message\":{\"content\":\"");
	size_t at = strlen(huge);
	memset(huge + at, 'x', big);
	strcpy(huge + at + big, "\"}}]}");
	CHECK(answer(huge, &t, &cut, err, sizeof err) == 0 && strlen(t) == AI_TEXT_MAX && cut);
	free(t);
	free(huge);
}

static void test_provider_error(void)
{
	char m[128];
	const char *b = "{\"error\":{\"message\":\"Invalid API Key\",\"type\":\"invalid_request_error\"}}";
	ai_provider_error(b, strlen(b), m, sizeof m);
	CHECK_STR(m, "Invalid API Key");
	b = "{\"error\":\"model not found\"}";
	ai_provider_error(b, strlen(b), m, sizeof m);
	CHECK_STR(m, "model not found");
	b = "{\"message\":\"slow down\"}";
	ai_provider_error(b, strlen(b), m, sizeof m);
	CHECK_STR(m, "slow down");
	b = "upstream\nconnect error\x1b";
	ai_provider_error(b, strlen(b), m, sizeof m);
	CHECK_STR(m, "upstream connect error");
	ai_provider_error(NULL, 0, m, sizeof m);
	CHECK_STR(m, "");
	char longmsg[1000];
	memset(longmsg, 'e', sizeof longmsg - 1);
	longmsg[sizeof longmsg - 1] = '\0';
	ai_provider_error(longmsg, strlen(longmsg), m, sizeof m);
	CHECK(strlen(m) < sizeof m);
}

static void test_retry_after(void)
{
	CHECK(ai_retry_after("1", 0) == 1);
	CHECK(ai_retry_after(" 5\r\n", 0) == 5);
	CHECK(ai_retry_after("0", 0) == 0);
	CHECK(ai_retry_after("99999999999999999999", 0) == -1);
	CHECK(ai_retry_after("1000000", 0) == 86400);
	CHECK(ai_retry_after("soon", 0) == -1);
	CHECK(ai_retry_after("5s", 0) == -1);
	CHECK(ai_retry_after("", 0) == -1);
	CHECK(ai_retry_after(NULL, 0) == -1);
	CHECK(ai_retry_after("Tue, 14 Nov 2023 22:13:20 GMT", 1700000000 - 7) == 7);
	CHECK(ai_retry_after("Tue, 14 Nov 2023 22:13:20 GMT", 1700000000 + 60) == 0);
}

static void test_clean_text(void)
{
	char *t = ai_clean_text("ok\r\nline\t2\x7f", 12, 100, NULL);
	CHECK_STR(t, "ok\nline\t2");
	free(t);
	/* overlong "/", a surrogate, a cut sequence: U+FFFD each byte, never the bytes */
	t = ai_clean_text("\xc0\xaf|\xed\xa0\x80|\xe2\x82", 10, 100, NULL);
	CHECK(t && !strchr(t, '/') && strstr(t, "|") && !strstr(t, "\xed\xa0\x80"));
	free(t);
	/* a cut never splits a character */
	t = ai_clean_text("\xc3\xa9\xc3\xa9\xc3\xa9", 6, 5, NULL);
	CHECK_STR(t, "\xc3\xa9\xc3\xa9");
	free(t);
	t = ai_clean_text("", 0, 10, NULL);
	CHECK_STR(t, "");
	free(t);
}

static cJSON *diag(const char *lang, const char *out, long first)
{
	return ai_diag_parse(lang, out, first);
}

static long dnum(const cJSON *arr, int i, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(cJSON_GetArrayItem(arr, i), k);
	return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

static const char *dstr(const cJSON *arr, int i, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, i), k));
}

static void test_diagnostics(void)
{
	cJSON *a = diag("c",
			"main.c: In function 'main':\n"
			"main.c:4:3: error: expected ',' or ';' before 'printf'\n"
			"main.c:3:7: warning: unused variable 'x' [-Wunused-variable]\n"
			"/usr/include/stdio.h:10:1: note: declared here\n"
			"main.c:9: note: in expansion\n"
			"main.c:12:1: fatal error: nothing.h: No such file or directory\n"
			"compilation terminated.\n"
			"cc1: some warnings being treated as errors\n",
			1);
	CHECK(cJSON_GetArraySize(a) == 4);
	CHECK(dnum(a, 0, "line") == 4 && dnum(a, 0, "column") == 3);
	CHECK_STR(dstr(a, 0, "severity"), "error");
	CHECK_STR(dstr(a, 0, "message"), "expected ',' or ';' before 'printf'");
	CHECK_STR(dstr(a, 1, "severity"), "warning");
	CHECK(dnum(a, 2, "line") == 9 && dnum(a, 2, "column") == -1);
	CHECK_STR(dstr(a, 2, "severity"), "note");
	CHECK_STR(dstr(a, 3, "severity"), "error");
	cJSON_Delete(a);

	/* a selection starting at line 20 moves every line */
	a = diag("c++", "main.cpp:2:5: error: 'y' was not declared in this scope\n", 20);
	CHECK(cJSON_GetArraySize(a) == 1 && dnum(a, 0, "line") == 21);
	cJSON_Delete(a);

	a = diag("python", "main.py:2:15: error: SyntaxError: invalid syntax\n"
			   "main.py:5:0: warning: SyntaxWarning: \"is\" with a literal\n", 1);
	CHECK(cJSON_GetArraySize(a) == 2 && dnum(a, 0, "line") == 2 && dnum(a, 0, "column") == 15);
	CHECK_STR(dstr(a, 0, "message"), "SyntaxError: invalid syntax");
	CHECK(dnum(a, 1, "column") == -1);
	cJSON_Delete(a);

	a = diag("javascript",
		 "/tmp/work/main.js:2\n"
		 "  return x +;\n"
		 "            ^\n"
		 "\n"
		 "SyntaxError: Unexpected token ';'\n"
		 "    at wrapSafe (node:internal/modules/cjs/loader:1464:18)\n"
		 "\n"
		 "Node.js v20.20.2\n",
		 1);
	CHECK(cJSON_GetArraySize(a) == 1);
	CHECK(dnum(a, 0, "line") == 2 && dnum(a, 0, "column") == 13);
	CHECK_STR(dstr(a, 0, "message"), "SyntaxError: Unexpected token ';'");
	cJSON_Delete(a);

	a = diag("bash", "main.sh: line 4: syntax error: unexpected end of file\n"
			 "main.sh: line x: nonsense\n", 1);
	CHECK(cJSON_GetArraySize(a) == 1 && dnum(a, 0, "line") == 4);
	CHECK_STR(dstr(a, 0, "message"), "syntax error: unexpected end of file");
	cJSON_Delete(a);

	/* hostile output: other files, absurd numbers, missing parts, no newline at the end */
	a = diag("c",
		 "xmain.c:1:1: error: not ours\n"
		 "main.c:99999999999999999:1: error: absurd\n"
		 "main.c::: error: empty\n"
		 "main.c:1:: error: empty column\n"
		 "main.c:1:2 error: no colon\n"
		 "main.c:1:2: remark: unknown severity\n"
		 ":1:1: error: no file\n"
		 "main.c:7:1: error: \x1b[31mred\xff",
		 1);
	CHECK(cJSON_GetArraySize(a) == 1 && dnum(a, 0, "line") == 7);
	CHECK_STR(dstr(a, 0, "message"), "[31mred\xEF\xBF\xBD");
	cJSON_Delete(a);

	/* at most AI_DIAG_MAX items */
	char *many = malloc(200 * 64);
	many[0] = '\0';
	for (int i = 1; i <= 200; i++)
		sprintf(many + strlen(many), "main.c:%d:1: warning: w%d\n", i, i);
	a = diag("c", many, 1);
	CHECK(cJSON_GetArraySize(a) == AI_DIAG_MAX);
	cJSON_Delete(a);
	free(many);

	a = diag("rust", "main.rs:1:1: error: x\n", 1);
	CHECK(cJSON_IsArray(a) && cJSON_GetArraySize(a) == 0);
	cJSON_Delete(a);
	a = diag("c", NULL, 1);
	CHECK(cJSON_IsArray(a) && cJSON_GetArraySize(a) == 0);
	cJSON_Delete(a);

	const char *file, *label;
	CHECK(ai_checker("python", &file, &label) == 0);
	CHECK_STR(file, "main.py");
	CHECK(ai_checker("go", &file, &label) < 0);
}

static void test_event(void)
{
	struct queue_job j = {.id = "abc", .request = (char *)req_json};
	char *s = ai_event_data(&j, "finished", "{\"text\":\"hi\"}", NULL);
	cJSON *o = s ? cJSON_Parse(s) : NULL;
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "job_id")), "abc");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "kind")), "review");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "status")), "finished");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "result"), "text")), "hi");
	CHECK(cJSON_GetObjectItem(o, "error") == NULL);
	cJSON_Delete(o);
	free(s);
	s = ai_event_data(&j, "failed", NULL, "the AI provider answered HTTP 500");
	o = s ? cJSON_Parse(s) : NULL;
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "error")), "the AI provider answered HTTP 500");
	CHECK(cJSON_GetObjectItem(o, "result") == NULL);
	cJSON_Delete(o);
	free(s);
}

/* The API's mark of a pending AI job outlives the job's worst case at any AI_TIMEOUT_MS: it
 * was 300 s whatever the timeout, so with a 10-minute timeout an identical request made a
 * second job (and provider call) while the first still ran. */
static void test_pending_ttl(void)
{
	struct aicfg c = {.timeout_ms = 30000};
	CHECK(aicfg_pending_ttl_s(&c) == 300); /* the default: as before */
	long tos[] = {100, 1500, 30000, 30001, 120000, 600000};
	for (size_t i = 0; i < sizeof tos / sizeof tos[0]; i++) {
		c.timeout_ms = tos[i];
		long worst = AICFG_ATTEMPTS * tos[i] / 1000 + (AICFG_ATTEMPTS - 1) * AICFG_RETRY_AFTER_MAX_S;
		CHECK(aicfg_pending_ttl_s(&c) > worst);
	}
	c.timeout_ms = 600000; /* the largest AI_TIMEOUT_MS: 3 calls of 10 minutes */
	CHECK(aicfg_pending_ttl_s(&c) >= 3 * 600 + 2 * 30);
}

int main(void)
{
	test_config();
	test_pending_ttl();
	test_cache_key();
	test_prompts();
	test_request();
	test_answers();
	test_provider_error();
	test_retry_after();
	test_clean_text();
	test_diagnostics();
	test_event();
	return unit_summary("ai");
}

/* The worker's pure parts: event data, request checking, Piston answer mapping. The Redis
 * and sandbox sides are covered by tests/programs/worker.test.mjs and
 * tests/programs/test_sandbox.c. */
#include "../../queue-worker/execution.h"
#include "../../queue-worker/piston.h"
#include "../../queue-worker/queue.h"
#include "buf.h"
#include "unit.h"
#include "utf8.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static void test_event_json(void)
{
	char *s = jobstate_event_json("j1", NULL, "running", NULL, NULL);
	CHECK_STR(s, "{\"job_id\":\"j1\",\"status\":\"running\"}");
	free(s);
	s = jobstate_event_json("j1", NULL, "finished", "{\"stdout\":\"x\"}", NULL);
	CHECK_STR(s, "{\"job_id\":\"j1\",\"status\":\"finished\",\"result\":{\"stdout\":\"x\"}}");
	free(s);
	s = jobstate_event_json("j\"2", NULL, "failed", NULL, "no \"runtime\"");
	cJSON *o = cJSON_Parse(s);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "job_id")), "j\"2");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "error")), "no \"runtime\"");
	cJSON_Delete(o);
	free(s);
	/* ai events carry the request's kind after the job id (lib/jobstate.c builds both) */
	s = jobstate_event_json("j3", "hint", "queued", NULL, "");
	CHECK_STR(s, "{\"job_id\":\"j3\",\"kind\":\"hint\",\"status\":\"queued\"}");
	free(s);
	s = jobstate_event_json("j4", NULL, "finished", "not json", NULL);
	CHECK_STR(s, "{\"job_id\":\"j4\",\"status\":\"finished\",\"result\":null}");
	free(s);
}

static void test_parse(void)
{
	struct execution_request rq;
	char err[256];
	CHECK(execution_parse("{\"language\":\"py\",\"version\":\"3\",\"code\":\"print(1)\","
			      "\"stdin\":\"in\",\"args\":[\"a\",\"b\"]}", &rq, err, sizeof err) == 0);
	CHECK_STR(rq.language, "py");
	CHECK_STR(rq.version, "3");
	CHECK(rq.code_len == 8 && rq.stdin_len == 2 && rq.nargs == 2);
	CHECK_STR(rq.args[1], "b");
	execution_request_free(&rq);

	CHECK(execution_parse("{\"language\":\"c\",\"CODE\":\"x\"}", &rq, err, sizeof err) == 0);
	CHECK_STR(rq.code, ""); /* not "code" */
	CHECK_STR(rq.version, "");
	CHECK(rq.nargs == 0);
	execution_request_free(&rq);

	static const char *const bad[][2] = {
		{"", "not a JSON object"},
		{"[1]", "not a JSON object"},
		{"{\"code\":\"x\"}", "language is missing"},
		{"{\"language\":1}", "language must be a string"},
		{"{\"language\":\"c\",\"args\":\"x\"}", "args must be an array"},
		{"{\"language\":\"c\",\"args\":[1]}", "args must be strings"},
		{"{\"language\":\"c\",\"stdin\":{}}", "stdin must be a string"},
		/* member names are exact, as the API writes them */
		{"{\"Language\":\"c\"}", "language is missing"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(execution_parse(bad[i][0], &rq, err, sizeof err) == -1);
		CHECK(strstr(err, bad[i][1]) != NULL);
		execution_request_free(&rq);
	}
	/* sizes are bounded */
	size_t n = SANDBOX_CODE_MAX + 100;
	char *big = malloc(n + 64);
	int len = snprintf(big, 64, "{\"language\":\"c\",\"code\":\"");
	memset(big + len, 'x', n);
	strcpy(big + len + n, "\"}");
	CHECK(execution_parse(big, &rq, err, sizeof err) == -1);
	CHECK(strstr(err, "code must be a string of at most") != NULL);
	execution_request_free(&rq);
	free(big);
}

static cJSON *mapped(const char *answer, long long elapsed, size_t max)
{
	char *json = NULL, err[256] = "";
	if (piston_map_answer(answer, answer ? strlen(answer) : 0, elapsed, max, &json, err,
			      sizeof err) < 0) {
		fprintf(stderr, "  piston_map_answer: %s\n", err);
		return NULL;
	}
	cJSON *o = cJSON_Parse(json);
	free(json);
	return o;
}

static void test_piston_map(void)
{
	cJSON *o = mapped("{\"language\":\"python\",\"version\":\"3.10.0\",\"run\":{\"stdout\":\"hi\\n\","
			  "\"stderr\":\"\",\"output\":\"hi\\n\",\"code\":0,\"signal\":null}}", 77, 1024);
	CHECK(o != NULL);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "stdout")), "hi\n");
	CHECK(cJSON_GetObjectItem(o, "exit_code")->valueint == 0);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "signal")));
	CHECK(cJSON_GetObjectItem(o, "time_ms")->valueint == 77);
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(o, "truncated")));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "language")), "python");
	CHECK(cJSON_GetObjectItem(o, "compile") == NULL);
	cJSON_Delete(o);

	/* killed: a signal and no code; Piston's TO status is our time limit */
	o = mapped("{\"language\":\"c\",\"version\":\"10\",\"compile\":{\"stdout\":\"\",\"stderr\":\"\","
		   "\"code\":0,\"signal\":null},\"run\":{\"stdout\":\"abcdef\",\"stderr\":\"\",\"code\":null,"
		   "\"signal\":\"SIGKILL\",\"status\":\"TO\",\"wall_time\":3001}}", 5, 4);
	CHECK(o != NULL);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "exit_code")));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "signal")), "SIGKILL");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "status")), "time_limit_exceeded");
	CHECK(cJSON_GetObjectItem(o, "time_ms")->valueint == 3001);
	/* our output bound applies to Piston's answers too */
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "stdout")), "abcd");
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "truncated")));
	CHECK(cJSON_IsObject(cJSON_GetObjectItem(o, "compile")));
	cJSON_Delete(o);

	/* a failed compile: no run */
	o = mapped("{\"language\":\"c\",\"version\":\"10\",\"compile\":{\"stdout\":\"\",\"stderr\":\"e\","
		   "\"code\":1,\"signal\":null}}", 5, 100);
	CHECK(o != NULL);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "status")), "compile_error");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "compile"), "stderr")), "e");
	cJSON_Delete(o);

	/* Piston's language and version go into the result as valid UTF-8 that fits, never cut
	 * inside a character: bytes of another encoding become U+FFFD */
	o = mapped("{\"language\":\"c\xcf\",\"version\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		   "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\",\"run\":"
		   "{\"stdout\":\"\",\"stderr\":\"\",\"code\":0}}",
		   5, 100);
	CHECK(o != NULL);
	const char *lang = cJSON_GetStringValue(cJSON_GetObjectItem(o, "language"));
	const char *ver = cJSON_GetStringValue(cJSON_GetObjectItem(o, "version"));
	CHECK(lang && strcmp(lang, "c\xef\xbf\xbd") == 0);
	CHECK(ver && strlen(ver) == 30 && utf8_validate(ver, strlen(ver), NULL, NULL) == UTF8_OK);
	cJSON_Delete(o);

	/* output holding NULs (print("a\0b")) is not cut there: it comes out as the local
	 * sandbox's does (tests/programs/test_sandbox.c), NUL as U+FFFD and other control
	 * bytes kept, in both streams of both steps; an escaped backslash before "u0000" is
	 * text, and the output bound counts a NUL as the one byte it is */
	o = mapped("{\"language\":\"c\",\"version\":\"10\",\"compile\":{\"stdout\":\"\",\"stderr\":"
		   "\"w\\u0000x\",\"code\":0,\"signal\":null},\"run\":{\"stdout\":\"a\\u0000b\\u0001\\r\\u001b"
		   "\\\\u0000\\u0000\",\"stderr\":\"\\u0000\\u0000\\u0000\\u0000\",\"code\":0}}",
		   5, 100);
	CHECK(o != NULL);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "stdout")),
		  "a\xef\xbf\xbd" "b\x01\r\x1b\\u0000\xef\xbf\xbd");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "stderr")),
		  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(o, "truncated")));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "compile"), "stderr")),
		  "w\xef\xbf\xbdx");
	cJSON_Delete(o);
	o = mapped("{\"run\":{\"stdout\":\"\\u0000\\u0000\\u0000\\u0000\\u0000\",\"stderr\":\"\",\"code\":0}}",
		   5, 4);
	CHECK(o != NULL);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "stdout")),
		  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "truncated")));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "status")), "output_limit_exceeded");
	cJSON_Delete(o);

	/* a NUL byte itself in the answer (a program's \0 passed on raw; JSON allows it only
	 * escaped): U+FFFD, one byte against the bound, the text and the answer going on after
	 * it, as for \u0000 and as a local run shows it. Read up to the first NUL, the answer
	 * was cut there and the run failed as a malformed answer. */
	static const char raw[] = "{\"language\":\"c\",\"version\":\"10\",\"run\":{\"stdout\":"
				  "\"a\0b\0\",\"stderr\":\"\0\0\0\0\0\",\"code\":0,\"signal\":null}}";
	char *rj = NULL, rerr[256] = "";
	CHECK(piston_map_answer(raw, sizeof raw - 1, 5, 4, &rj, rerr, sizeof rerr) == 0);
	o = rj ? cJSON_Parse(rj) : NULL;
	free(rj);
	CHECK(o != NULL);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "stdout")), "a\xef\xbf\xbd" "b\xef\xbf\xbd");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "stderr")),
		  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "truncated")));
	CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "exit_code")) == 0);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "language")), "c");
	cJSON_Delete(o);

	/* a lone surrogate escape (high or low) is U+FFFD as well, in the output and in the
	 * language, and so is each byte that is not UTF-8; a pair is the character it stands
	 * for. The run is shown, not failed as a malformed answer. */
	o = mapped("{\"language\":\"py\\udc00\",\"version\":\"3\",\"run\":{\"stdout\":"
		   "\"a\\ud800b\\udc00c\\ud83d\\ude00d\\ud83d\",\"stderr\":\"x\xffy\xc3\",\"code\":0}}",
		   5, 100);
	CHECK(o != NULL);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "stdout")),
		  "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xf0\x9f\x98\x80" "d\xef\xbf\xbd");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "stderr")),
		  "x\xef\xbf\xbdy\xef\xbf\xbd");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "language")), "py\xef\xbf\xbd");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "status")));
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(o, "truncated")));
	cJSON_Delete(o);
	/* a lone surrogate counts one byte against the output bound, as a NUL does */
	o = mapped("{\"run\":{\"stdout\":\"\\ud800\\ud800\\ud800\\ud800\\ud800\",\"stderr\":\"\",\"code\":0}}",
		   5, 4);
	CHECK(o != NULL);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "stdout")),
		  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "truncated")));
	cJSON_Delete(o);

	/* a wall_time that is no time (negative, or past any long long: undefined to convert)
	 * gives way to the time we measured, as a missing one does */
	const char *walls[] = {"-5", "1e300", "-1e300", "9.3e18"};
	for (size_t i = 0; i < sizeof walls / sizeof walls[0]; i++) {
		char answer[160];
		snprintf(answer, sizeof answer,
			 "{\"run\":{\"stdout\":\"\",\"stderr\":\"\",\"code\":0,\"wall_time\":%s}}",
			 walls[i]);
		o = mapped(answer, 42, 100);
		CHECK(o != NULL && cJSON_GetObjectItem(o, "time_ms")->valueint == 42);
		cJSON_Delete(o);
	}

	char *json = NULL, err[256];
	static const char cut[] = "{\"run\": \"cut", msg[] = "{\"message\":\"x\"}";
	CHECK(piston_map_answer(cut, sizeof cut - 1, 1, 10, &json, err, sizeof err) == -1);
	CHECK(json == NULL && strstr(err, "malformed") != NULL);
	CHECK(piston_map_answer(msg, sizeof msg - 1, 1, 10, &json, err, sizeof err) == -1);
	CHECK(piston_map_answer(NULL, 0, 1, 10, &json, err, sizeof err) == -1);
}

/* How a Piston stage ended, from its code and signal: an exit code is a whole number from
 * 0 to 255, a signal Piston names wins, and a stage that tells neither fails the run with
 * a message saying so (a missing code read -1, and valueint made 1.5 into 1 and 1e300 into
 * INT_MAX, all shown as the program's exit code). */
static void test_piston_exit(void)
{
	static const struct {
		const char *members; /* of the run stage, after its outputs */
		int ok;
		double exit_code;    /* -1: null */
		const char *text;    /* ok: the signal (NULL: null); else the run's error */
	} cases[] = {
		{"\"code\":0,\"signal\":null", 1, 0, NULL},
		{"\"code\":255", 1, 255, NULL},
		{"\"code\":3.0", 1, 3, NULL},
		{"\"code\":null,\"signal\":\"SIGSEGV\"", 1, -1, "SIGSEGV"},
		/* the signal wins over a code */
		{"\"code\":139,\"signal\":\"SIGSEGV\"", 1, -1, "SIGSEGV"},
		/* a signal without a name of ours, or a stop Piston reports: killed */
		{"\"code\":null,\"signal\":\"SIGWHAT\"", 1, -1, "SIGKILL"},
		{"\"code\":null,\"signal\":null,\"status\":\"TO\"", 1, -1, "SIGKILL"},
		/* an unknown signal next to a good code: the code */
		{"\"code\":2,\"signal\":\"SIGWHAT\"", 1, 2, NULL},
		/* bash, which runs Piston's stages, reports its child's signal n as 128 + n:
		 * signal n, as bwrap's is read (sandbox_exit.c), when no signal is given and
		 * the status is none, RE, SG, TO, OL or EL */
		{"\"code\":137,\"signal\":null,\"status\":\"RE\",\"message\":\"Exited with error "
		 "status 137\"", 1, -1, "SIGKILL"},
		{"\"code\":139,\"signal\":null", 1, -1, "SIGSEGV"},
		{"\"code\":134", 1, -1, "SIGABRT"},
		{"\"code\":129,\"signal\":\"\"", 1, -1, "SIGHUP"},
		{"\"code\":159,\"signal\":null,\"status\":null", 1, -1, "SIGSYS"},
		{"\"code\":137,\"signal\":null,\"status\":\"SG\"", 1, -1, "SIGKILL"},
		{"\"code\":143,\"signal\":null,\"status\":\"TO\"", 1, -1, "SIGTERM"},
		{"\"code\":141,\"signal\":null,\"status\":\"OL\"", 1, -1, "SIGPIPE"},
		{"\"code\":137,\"signal\":null,\"status\":\"EL\"", 1, -1, "SIGKILL"},
		/* 128 itself and 128 + a number we name no signal for (the real-time ones,
		 * 32 to 64) stay exit codes, as in a local run */
		{"\"code\":128,\"signal\":null", 1, 128, NULL},
		{"\"code\":160,\"signal\":null", 1, 160, NULL},
		{"\"code\":192,\"signal\":null,\"status\":\"RE\"", 1, 192, NULL},
		/* isolate's own failure, a status we do not know, a signal Piston names that we
		 * do not: the code is not read as a signal */
		{"\"code\":137,\"signal\":null,\"status\":\"XX\"", 1, 137, NULL},
		{"\"code\":137,\"signal\":null,\"status\":\"ZZ\"", 1, 137, NULL},
		{"\"code\":137,\"status\":9", 1, 137, NULL},
		{"\"code\":137,\"signal\":\"SIGWHAT\"", 1, 137, NULL},
		{"\"signal\":null", 0, 0,
		 "piston: malformed answer (the run has neither an exit code nor a signal)"},
		{"\"code\":null,\"signal\":\"\"", 0, 0,
		 "piston: malformed answer (the run has neither an exit code nor a signal)"},
		{"\"code\":null,\"signal\":9", 0, 0,
		 "piston: malformed answer (the run has neither an exit code nor a signal)"},
		{"\"code\":\"0\"", 0, 0, "piston: malformed answer (the run's exit code is not a number)"},
		{"\"code\":1.5", 0, 0,
		 "piston: malformed answer (the run's exit code 1.5 is not a whole number from 0 to 255)"},
		{"\"code\":-1", 0, 0,
		 "piston: malformed answer (the run's exit code -1 is not a whole number from 0 to 255)"},
		{"\"code\":256", 0, 0,
		 "piston: malformed answer (the run's exit code 256 is not a whole number from 0 to 255)"},
		{"\"code\":1e300", 0, 0,
		 "piston: malformed answer (the run's exit code 1e+300 is not a whole number from 0 to 255)"},
		{"\"code\":4294967297", 0, 0,
		 "piston: malformed answer (the run's exit code 4294967297 is not a whole number from 0 to 255)"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char answer[256], err[256] = "", *json = NULL;
		int n = snprintf(answer, sizeof answer,
				 "{\"run\":{\"stdout\":\"out\",\"stderr\":\"\",%s}}", cases[i].members);
		int rc = piston_map_answer(answer, (size_t)n, 5, 100, &json, err, sizeof err);
		if (!cases[i].ok) {
			CHECK(rc == -1 && json == NULL);
			CHECK_STR(err, cases[i].text);
			free(json);
			continue;
		}
		cJSON *o = rc == 0 ? cJSON_Parse(json) : NULL;
		free(json);
		CHECK(o != NULL);
		const cJSON *ec = cJSON_GetObjectItem(o, "exit_code");
		const cJSON *sig = cJSON_GetObjectItem(o, "signal");
		if (cases[i].exit_code < 0)
			CHECK(cJSON_IsNull(ec));
		else
			CHECK(cJSON_IsNumber(ec) && ec->valuedouble == cases[i].exit_code);
		if (cases[i].text)
			CHECK_STR(cJSON_GetStringValue(sig), cases[i].text);
		else
			CHECK(cJSON_IsNull(sig));
		CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "stdout")), "out");
		cJSON_Delete(o);
	}
	/* the compile step is read the same, and named */
	static const char c[] = "{\"compile\":{\"stdout\":\"\",\"stderr\":\"\",\"code\":0.5},"
				"\"run\":{\"stdout\":\"\",\"stderr\":\"\",\"code\":0}}";
	char err[256] = "", *json = NULL;
	CHECK(piston_map_answer(c, sizeof c - 1, 5, 100, &json, err, sizeof err) == -1);
	CHECK_STR(err, "piston: malformed answer (the compile step's exit code 0.5 is not a whole "
		       "number from 0 to 255)");
	free(json);
	/* a compiler killed (bash's 128 + 9): a compile error whose step names the signal */
	cJSON *o = mapped("{\"compile\":{\"stdout\":\"\",\"stderr\":\"\",\"code\":137,\"signal\":null,"
			  "\"status\":\"RE\"}}", 5, 100);
	CHECK(o != NULL);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "status")), "compile_error");
	const cJSON *cs = cJSON_GetObjectItem(o, "compile");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cs, "signal")), "SIGKILL");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(cs, "exit_code")));
	cJSON_Delete(o);
	/* Piston's TO with the code of a killed child: the signal, and the time limit */
	o = mapped("{\"run\":{\"stdout\":\"\",\"stderr\":\"\",\"code\":137,\"signal\":null,"
		   "\"status\":\"TO\"}}", 5, 100);
	CHECK(o != NULL);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "signal")), "SIGKILL");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "status")), "time_limit_exceeded");
	cJSON_Delete(o);
}

/* Piston's runtimes list: a runtime whose language or version the worker could not take
 * back in a job's request (longer than a runtime name holds, so past the 32 bytes
 * execution_parse accepts at 33) or that is not clean text is not announced; the good
 * ones next to it are, and bad aliases go alone. */
static void test_piston_runtimes(void)
{
	char err[256] = "";
	struct piston_left_out lo;
	memset(&lo, 0x55, sizeof lo);
	char v31[32], v32[33], v40[41];
	memset(v31, '1', 31);
	v31[31] = '\0';
	memset(v32, '2', 32);
	v32[32] = '\0';
	memset(v40, '4', 40);
	v40[40] = '\0';
	char body[1024];
	snprintf(body, sizeof body,
		 "[{\"language\":\"python\",\"version\":\"3.10.0\",\"aliases\":[\"py\",\"p\\ty\","
		 "\"\xc3\x28\",%s,1]},"
		 "{\"language\":\"c\",\"version\":\"%s\",\"aliases\":[]},"
		 "{\"language\":\"d\",\"version\":\"%s\",\"aliases\":[]},"
		 "{\"language\":\"e\",\"version\":\"%s\",\"aliases\":[]},"
		 "{\"language\":\"bad\xff\",\"version\":\"1\"},"
		 "{\"language\":\"nul\\u0000x\",\"version\":\"1\"},"
		 "{\"language\":\"c1\xc2\x85\",\"version\":\"1\"},"
		 "{\"language\":\"ruby\",\"version\":\"\"},"
		 "{\"language\":\"go\"},"
		 "{\"language\":\"bash\",\"version\":\"5.2.0\"}]",
		 "\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" "\"", v31, v32, v40);
	char *json = piston_runtimes_map(body, &lo, err, sizeof err);
	CHECK(json != NULL);
	cJSON *o = json ? cJSON_Parse(json) : NULL;
	free(json);
	CHECK(cJSON_GetArraySize(o) == 3);
	const cJSON *py = cJSON_GetArrayItem(o, 0), *c = cJSON_GetArrayItem(o, 1);
	const cJSON *bash = cJSON_GetArrayItem(o, 2);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(py, "language")), "python");
	CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(py, "aliases")) == 1);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(py, "aliases"), 0)), "py");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(c, "version")), v31);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(bash, "language")), "bash");
	CHECK(cJSON_IsArray(cJSON_GetObjectItem(bash, "aliases")));
	cJSON_Delete(o);
	/* d (32 bytes), e (40), bad\xff, nul\0x, the C1 control, ruby's empty version, go's
	 * missing one; the first named by its place and field, not its bytes */
	CHECK(lo.skipped == 7);
	CHECK(lo.dropped == 0 && lo.over == 0);
	CHECK_STR(lo.why, "runtime 3 of Piston's list: its version is not 1 to 31 bytes of UTF-8 "
		       "text without control characters");

	/* aliases: the first PISTON_ALIASES_MAX good ones of a runtime, the rest counted;
	 * bad ones (a long one among them) are not counted against the bound */
	struct buf many;
	buf_init(&many, 1 << 20);
	int ok = buf_puts(&many, "[{\"language\":\"python\",\"version\":\"3\",\"aliases\":[") == 0;
	for (int i = 0; i < 1000 && ok; i++) {
		ok = buf_printf(&many, "%s\"%s%d\"", i ? "," : "", i % 2 ? "a" : "", i) == 0;
		if (i == 3)
			ok = ok && buf_puts(&many, ",\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"") == 0;
	}
	ok = ok && buf_puts(&many, "]},{\"language\":\"c\",\"version\":\"1\",\"aliases\":[\"gcc\"]}]") == 0;
	CHECK(ok);
	json = ok ? piston_runtimes_map(many.data, &lo, err, sizeof err) : NULL;
	buf_free(&many);
	CHECK(json != NULL);
	o = json ? cJSON_Parse(json) : NULL;
	free(json);
	const cJSON *al = cJSON_GetObjectItem(cJSON_GetArrayItem(o, 0), "aliases");
	CHECK(cJSON_GetArraySize(al) == PISTON_ALIASES_MAX);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(al, 0)), "0");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(al, 1)), "a1");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(al, PISTON_ALIASES_MAX - 1)), "a31");
	CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(o, 1), "aliases")) == 1);
	CHECK(lo.skipped == 0 && lo.dropped == 1000 - PISTON_ALIASES_MAX && lo.over == 0);
	cJSON_Delete(o);

	memset(&lo, 0x55, sizeof lo);
	json = piston_runtimes_map("[{\"language\":\"c\",\"version\":\"1\"}]", &lo, err, sizeof err);
	CHECK_STR(json, "[{\"language\":\"c\",\"version\":\"1\",\"aliases\":[]}]");
	CHECK(lo.skipped == 0 && lo.dropped == 0 && lo.over == 0 && lo.why[0] == '\0');
	free(json);
	CHECK(piston_runtimes_map("{\"message\":\"x\"}", &lo, err, sizeof err) == NULL);
	CHECK_STR(err, "piston: the runtimes answer is an object, not a list");
	CHECK(piston_runtimes_map("\"x\"", &lo, err, sizeof err) == NULL);
	CHECK_STR(err, "piston: the runtimes answer is a string, not a list");
	CHECK(piston_runtimes_map("<html>bad gateway</html>", &lo, err, sizeof err) == NULL);
	CHECK_STR(err, "piston: the runtimes answer is not JSON (24 bytes)");
	CHECK(piston_runtimes_map("[{\"language\":\"c\"", &lo, err, sizeof err) == NULL);
	CHECK(strstr(err, "not JSON") != NULL);
	CHECK(piston_runtimes_map("", &lo, err, sizeof err) == NULL);
	CHECK(piston_runtimes_map(NULL, &lo, err, sizeof err) == NULL);

	/* a lone surrogate (or a NUL) in a name leaves out that runtime, not the whole list;
	 * a pair is a character like any other */
	json = piston_runtimes_map("[{\"language\":\"a\\ud800\",\"version\":\"1\"},"
				   "{\"language\":\"b\",\"version\":\"\\udc00\"},"
				   "{\"language\":\"c\",\"version\":\"1\",\"aliases\":[\"\\ud83d\",\"g\"]},"
				   "{\"language\":\"d\\ud83d\\ude00\",\"version\":\"2\"}]",
				   &lo, err, sizeof err);
	CHECK_STR(json, "[{\"language\":\"c\",\"version\":\"1\",\"aliases\":[\"g\"]},"
			"{\"language\":\"d\xf0\x9f\x98\x80\",\"version\":\"2\",\"aliases\":[]}]");
	CHECK(lo.skipped == 2 && lo.over == 0);
	CHECK_STR(lo.why, "runtime 1 of Piston's list: its language is not 1 to 31 bytes of "
			  "UTF-8 text without control characters");
	free(json);

	/* 20,000 runtimes: the first PISTON_RUNTIMES_MAX, the rest counted; bad ones among the
	 * first do not count against the bound */
	struct buf huge;
	buf_init(&huge, 4 << 20);
	ok = buf_puts(&huge, "[{\"language\":\"\",\"version\":\"1\"}") == 0;
	for (int i = 0; i < 20000 && ok; i++)
		ok = buf_printf(&huge, ",{\"language\":\"l%d\",\"version\":\"1\",\"aliases\":[\"x\"]}",
				i) == 0;
	ok = ok && buf_puts(&huge, "]") == 0;
	CHECK(ok);
	json = ok ? piston_runtimes_map(huge.data, &lo, err, sizeof err) : NULL;
	buf_free(&huge);
	CHECK(json != NULL);
	o = json ? cJSON_Parse(json) : NULL;
	free(json);
	CHECK(cJSON_GetArraySize(o) == PISTON_RUNTIMES_MAX);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(o, 0), "language")), "l0");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(o, PISTON_RUNTIMES_MAX - 1),
							   "language")), "l499");
	CHECK(lo.skipped == 1 && lo.over == 20000 - PISTON_RUNTIMES_MAX);
	cJSON_Delete(o);

	/* fewer runtimes, each with 32 aliases of 31 bytes: the size bound ends the list first */
	buf_init(&huge, 4 << 20);
	ok = buf_puts(&huge, "[") == 0;
	for (int i = 0; i < PISTON_RUNTIMES_MAX && ok; i++) {
		ok = buf_printf(&huge, "%s{\"language\":\"l%d\",\"version\":\"%s\",\"aliases\":[",
				i ? "," : "", i, v31) == 0;
		for (int k = 0; k < PISTON_ALIASES_MAX && ok; k++)
			ok = buf_printf(&huge, "%s\"%s\"", k ? "," : "", v31) == 0;
		ok = ok && buf_puts(&huge, "]}") == 0;
	}
	ok = ok && buf_puts(&huge, "]") == 0;
	CHECK(ok);
	json = ok ? piston_runtimes_map(huge.data, &lo, err, sizeof err) : NULL;
	buf_free(&huge);
	CHECK(json != NULL && strlen(json) <= PISTON_RUNTIMES_TEXT_MAX);
	o = json ? cJSON_Parse(json) : NULL;
	free(json);
	int n = cJSON_GetArraySize(o);
	CHECK(n > 0 && n < PISTON_RUNTIMES_MAX);
	CHECK(lo.over == (size_t)(PISTON_RUNTIMES_MAX - n) && lo.skipped == 0);
	char last[16];
	snprintf(last, sizeof last, "l%d", n - 1); /* the start of the list, in order */
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(o, n - 1), "language")),
		  last);
	cJSON_Delete(o);
}

/* A delivered entry whose job is over is acknowledged unrun: cancelled counts as over, so a
 * job cancelled after its dispatch never runs. */
static void test_job_done(void)
{
	struct queue_job j = {0};
	const char *over[] = {"finished", "failed", "cancelled"};
	const char *live[] = {"queued", "running", ""};
	for (size_t i = 0; i < 3; i++) {
		snprintf(j.status, sizeof j.status, "%s", over[i]);
		CHECK(queue_job_done(&j) == 1);
		snprintf(j.status, sizeof j.status, "%s", live[i]);
		CHECK(queue_job_done(&j) == 0);
	}
}

/* A string reply as hiredis makes them (len bytes, NUL after). */
static redisReply str_reply(const char *s, size_t len)
{
	redisReply r = {.type = REDIS_REPLY_STRING, .str = (char *)s, .len = len};
	return r;
}

/* A stream entry's ids are taken whole or not at all: a job id cut to fit, or cut short by
 * a NUL, could name another job (found by tests/fuzz/fuzz_worker_redis.c). */
static void test_entry_parse(void)
{
	char long_job[100];
	memset(long_job, 'j', sizeof long_job - 1);
	long_job[sizeof long_job - 1] = '\0';
	redisReply id = str_reply("1764590000000-0", 15), name = str_reply("job", 3);
	redisReply job = str_reply("m2k0", 4);
	redisReply *fv[2] = {&name, &job};
	redisReply fields = {.type = REDIS_REPLY_ARRAY, .element = fv, .elements = 2};
	redisReply *ev[2] = {&id, &fields};
	redisReply entry = {.type = REDIS_REPLY_ARRAY, .element = ev, .elements = 2};
	struct queue_entry e;
	CHECK(queue_entry_parse(&entry, &e) == 0);
	CHECK_STR(e.entry, "1764590000000-0");
	CHECK_STR(e.job, "m2k0");
	/* too long for an id: no job (the entry is dropped), not the first 63 bytes of it */
	job = str_reply(long_job, strlen(long_job));
	CHECK(queue_entry_parse(&entry, &e) == 0);
	CHECK_STR(e.job, "");
	/* a NUL inside the value or the field's name */
	job = str_reply("m2\0k0", 5);
	CHECK(queue_entry_parse(&entry, &e) == 0);
	CHECK_STR(e.job, "");
	job = str_reply("m2k0", 4);
	name = str_reply("job\0x", 5);
	CHECK(queue_entry_parse(&entry, &e) == 0);
	CHECK_STR(e.job, "");
	/* an entry id that does not fit is no entry; nil is a deleted one */
	id = str_reply(long_job, strlen(long_job));
	CHECK(queue_entry_parse(&entry, &e) == -1);
	redisReply nil = {.type = REDIS_REPLY_NIL};
	CHECK(queue_entry_parse(&nil, &e) == -1);
}

int main(void)
{
	test_job_done();
	test_entry_parse();
	test_event_json();
	test_parse();
	test_piston_map();
	test_piston_exit();
	test_piston_runtimes();
	return unit_summary("worker");
}

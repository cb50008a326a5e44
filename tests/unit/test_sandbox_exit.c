/* How a sandbox step ends (queue-worker/sandbox_exit.c), and the result JSON made of it
 * (sandbox_out.c): plain values in, the status, signal, exit code and message a user
 * sees out. */
#include "../../queue-worker/sandbox_exit.h"
#include "jobstate.h"
#include "unit.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static struct sandbox_end end_of(int sig, int code, enum sandbox_kill why, long long ooms)
{
	return sandbox_exit_classify(sig, code, why, ooms);
}

#define IS(e, st, sg, code) ((e).status == (st) && (e).signal == (sg) && (e).exit_code == (code))

static void test_normal_ends(void)
{
	struct sandbox_end e = end_of(0, 0, SANDBOX_KILL_NONE, 0);
	CHECK(IS(e, SANDBOX_OK, 0, 0));
	e = end_of(0, 42, SANDBOX_KILL_NONE, 0);
	CHECK(IS(e, SANDBOX_OK, 0, 42));
	e = end_of(0, 1, SANDBOX_KILL_NONE, 0);
	CHECK(IS(e, SANDBOX_OK, 0, 1));
	/* 128 itself and 128 + a number that names no signal stay exit codes */
	e = end_of(0, 128, SANDBOX_KILL_NONE, 0);
	CHECK(IS(e, SANDBOX_OK, 0, 128));
	e = end_of(0, 128 + 100, SANDBOX_KILL_NONE, 0);
	CHECK(IS(e, SANDBOX_OK, 0, 228));
	e = end_of(0, 255, SANDBOX_KILL_NONE, 0);
	CHECK(IS(e, SANDBOX_OK, 0, 255));
}

static void test_signals(void)
{
	/* bwrap reports the program's signal n as exit status 128 + n */
	struct sandbox_end e = end_of(0, 128 + SIGSEGV, SANDBOX_KILL_NONE, 0);
	CHECK(IS(e, SANDBOX_OK, SIGSEGV, -1));
	e = end_of(0, 128 + SIGABRT, SANDBOX_KILL_NONE, 0);
	CHECK(IS(e, SANDBOX_OK, SIGABRT, -1));
	/* bwrap itself killed */
	e = end_of(SIGTERM, 0, SANDBOX_KILL_NONE, 0);
	CHECK(IS(e, SANDBOX_OK, SIGTERM, -1));
	/* a SIGKILL nobody here sent and no OOM kill: just a signal */
	e = end_of(0, 128 + SIGKILL, SANDBOX_KILL_NONE, 0);
	CHECK(IS(e, SANDBOX_OK, SIGKILL, -1));
}

static void test_limits(void)
{
	/* the CPU limit reached (RLIMIT_CPU's SIGXCPU) is a time limit */
	struct sandbox_end e = end_of(0, 128 + SIGXCPU, SANDBOX_KILL_NONE, 0);
	CHECK(IS(e, SANDBOX_TIME_LIMIT, SIGXCPU, -1));
	e = end_of(SIGXCPU, 0, SANDBOX_KILL_NONE, 0);
	CHECK(IS(e, SANDBOX_TIME_LIMIT, SIGXCPU, -1));
	/* killed by us at the wall deadline: a time limit, SIGKILL, whatever it exited with */
	e = end_of(0, 128 + SIGKILL, SANDBOX_KILL_TIME, 0);
	CHECK(IS(e, SANDBOX_TIME_LIMIT, SIGKILL, -1));
	e = end_of(0, 0, SANDBOX_KILL_TIME, 0);
	CHECK(IS(e, SANDBOX_TIME_LIMIT, SIGKILL, -1));
	/* output cut: killed for it */
	e = end_of(SIGKILL, 0, SANDBOX_KILL_OUTPUT, 0);
	CHECK(IS(e, SANDBOX_OUTPUT_LIMIT, SIGKILL, -1));
	/* the compiled program too large, or a file past RLIMIT_FSIZE */
	e = end_of(0, 1, SANDBOX_KILL_ARTIFACT, 0);
	CHECK(IS(e, SANDBOX_FILE_SIZE_LIMIT, SIGKILL, -1));
	e = end_of(0, 128 + SIGXFSZ, SANDBOX_KILL_NONE, 0);
	CHECK(IS(e, SANDBOX_FILE_SIZE_LIMIT, SIGXFSZ, -1));
	/* the memory limit: the cgroup counted an OOM kill, whatever the exit looked like */
	e = end_of(0, 128 + SIGKILL, SANDBOX_KILL_NONE, 1);
	CHECK(IS(e, SANDBOX_MEMORY_LIMIT, SIGKILL, -1));
	e = end_of(SIGKILL, 0, SANDBOX_KILL_NONE, 3);
	CHECK(IS(e, SANDBOX_MEMORY_LIMIT, SIGKILL, -1));
	e = end_of(0, 1, SANDBOX_KILL_NONE, 1); /* a child killed, the program exited 1 */
	CHECK(IS(e, SANDBOX_MEMORY_LIMIT, 0, 1));
	/* our own kill tells first */
	e = end_of(0, 128 + SIGKILL, SANDBOX_KILL_TIME, 1);
	CHECK(IS(e, SANDBOX_TIME_LIMIT, SIGKILL, -1));
	/* cancelled (the worker stops, or the owner cancelled the job) */
	e = end_of(0, 0, SANDBOX_KILL_CANCEL, 0);
	CHECK(IS(e, SANDBOX_CANCELLED, SIGKILL, -1));
}

static void test_watch_decisions(void)
{
	CHECK(sandbox_kill_due(0, 0, 999, 1000) == SANDBOX_KILL_NONE);
	CHECK(sandbox_kill_due(0, 0, 1000, 1000) == SANDBOX_KILL_TIME);
	CHECK(sandbox_kill_due(0, 0, 5000, 1000) == SANDBOX_KILL_TIME);
	CHECK(sandbox_kill_due(0, 1, 5000, 1000) == SANDBOX_KILL_NONE); /* it had exited */
	CHECK(sandbox_kill_due(1, 0, 10, 1000) == SANDBOX_KILL_CANCEL);
	CHECK(sandbox_kill_due(1, 1, 5000, 1000) == SANDBOX_KILL_CANCEL);

	/* a running program: until the deadline, in slices of at most 100 ms */
	CHECK(sandbox_poll_ms(SANDBOX_KILL_NONE, 0, 0, 5000, 1) == 100);
	CHECK(sandbox_poll_ms(SANDBOX_KILL_NONE, 0, 4970, 5000, 1) == 30);
	CHECK(sandbox_poll_ms(SANDBOX_KILL_NONE, 0, 6000, 5000, 1) == 0);
	/* without a pidfd its exit is only seen by looking: every 10 ms */
	CHECK(sandbox_poll_ms(SANDBOX_KILL_NONE, 0, 0, 5000, 0) == 10);
	CHECK(sandbox_poll_ms(SANDBOX_KILL_NONE, 0, 4995, 5000, 0) == 5);
	/* exited or killed: draining the pipes */
	CHECK(sandbox_poll_ms(SANDBOX_KILL_NONE, 1, 0, 5000, 1) == 50);
	CHECK(sandbox_poll_ms(SANDBOX_KILL_TIME, 0, 6000, 5000, 1) == 50);
	CHECK(sandbox_poll_ms(SANDBOX_KILL_OUTPUT, 0, 0, 5000, 0) == 10);
	CHECK(sandbox_poll_ms(SANDBOX_KILL_NONE, 1, 0, 5000, 0) == 50);
}

static void test_compile_verdict(void)
{
	struct sandbox_step c;
	memset(&c, 0, sizeof c);
	CHECK(sandbox_compile_verdict(&c) == SANDBOX_OK);
	c.exit_code = 1;
	CHECK(sandbox_compile_verdict(&c) == SANDBOX_COMPILE_ERROR);
	c.exit_code = -1;
	c.signal = SIGSEGV;
	CHECK(sandbox_compile_verdict(&c) == SANDBOX_COMPILE_ERROR);
	memset(&c, 0, sizeof c);
	c.status = SANDBOX_TIME_LIMIT;
	CHECK(sandbox_compile_verdict(&c) == SANDBOX_COMPILE_ERROR);
	c.status = SANDBOX_CANCELLED;
	c.signal = SIGKILL;
	CHECK(sandbox_compile_verdict(&c) == SANDBOX_CANCELLED);
}

static void test_names(void)
{
	CHECK(sandbox_status_message(SANDBOX_OK) == NULL && sandbox_status_code(SANDBOX_OK) == NULL);
	CHECK_STR(sandbox_status_message(SANDBOX_TIME_LIMIT), "time limit exceeded");
	CHECK_STR(sandbox_status_code(SANDBOX_TIME_LIMIT), "time_limit_exceeded");
	CHECK_STR(sandbox_status_message(SANDBOX_MEMORY_LIMIT), "memory limit exceeded");
	CHECK_STR(sandbox_status_code(SANDBOX_MEMORY_LIMIT), "memory_limit_exceeded");
	CHECK_STR(sandbox_status_message(SANDBOX_OUTPUT_LIMIT), "output limit exceeded");
	CHECK_STR(sandbox_status_code(SANDBOX_OUTPUT_LIMIT), "output_limit_exceeded");
	CHECK_STR(sandbox_status_message(SANDBOX_FILE_SIZE_LIMIT), "file size limit exceeded");
	CHECK_STR(sandbox_status_code(SANDBOX_FILE_SIZE_LIMIT), "file_size_limit_exceeded");
	CHECK_STR(sandbox_status_message(SANDBOX_CANCELLED), "cancelled: the worker is shutting down");
	CHECK_STR(sandbox_status_code(SANDBOX_CANCELLED), "cancelled");
	CHECK_STR(sandbox_status_message(SANDBOX_COMPILE_ERROR), "compilation failed");
	CHECK_STR(sandbox_status_code(SANDBOX_COMPILE_ERROR), "compile_error");
	CHECK_STR(sandbox_signal_name(SIGKILL), "SIGKILL");
	CHECK_STR(sandbox_signal_name(SIGXCPU), "SIGXCPU");
	CHECK(sandbox_signal_name(0) == NULL && sandbox_signal_name(-1) == NULL);
	CHECK(sandbox_signal_name(64) == NULL);
}

static void set_out(struct buf *b, const char *s, size_t n)
{
	buf_init(b, 0);
	if (buf_append(b, s, n) < 0)
		fprintf(stderr, "out of memory\n");
}

static cJSON *json_of(const struct sandbox_result *r)
{
	char *s = sandbox_result_json(r, NULL);
	cJSON *o = s ? cJSON_Parse(s) : NULL;
	free(s);
	return o;
}

static const char *str(const cJSON *o, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
}

static void test_result_json(void)
{
	struct sandbox_result r;
	memset(&r, 0, sizeof r);
	r.ran = 1;
	/* NUL and bad bytes become U+FFFD; an uncut stream keeps a cut character as U+FFFD */
	set_out(&r.run.out, "a\0b\xff" "c\xe2\x82", 7);
	set_out(&r.run.err, "e\xe2\x82\xac", 4);
	r.run.exit_code = 3;
	r.run.time_ms = 12;
	cJSON *o = json_of(&r);
	CHECK(o != NULL);
	CHECK_STR(str(o, "stdout"), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD");
	CHECK_STR(str(o, "stderr"), "e\xe2\x82\xac");
	CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "exit_code")) == 3);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "signal")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "status")));
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(o, "truncated")));
	CHECK(cJSON_GetObjectItem(o, "compile") == NULL);
	cJSON_Delete(o);
	sandbox_result_free(&r);

	/* output cut at the bound: the half character at the end is dropped */
	memset(&r, 0, sizeof r);
	r.ran = 1;
	set_out(&r.run.out, "xyz\xe2\x82", 5);
	r.run.truncated = 1;
	struct sandbox_end e = sandbox_exit_classify(SIGKILL, 0, SANDBOX_KILL_OUTPUT, 0);
	r.run.status = r.status = e.status;
	r.run.signal = e.signal;
	r.run.exit_code = e.exit_code;
	o = json_of(&r);
	CHECK_STR(str(o, "stdout"), "xyz");
	CHECK_STR(str(o, "stderr"), "");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "exit_code")));
	CHECK_STR(str(o, "signal"), "SIGKILL");
	CHECK_STR(str(o, "status"), "output_limit_exceeded");
	CHECK_STR(str(o, "message"), "output limit exceeded");
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "truncated")));
	cJSON_Delete(o);
	sandbox_result_free(&r);

	/* a compile error: no run, the compile step's output under "compile" */
	memset(&r, 0, sizeof r);
	r.compiled = 1;
	set_out(&r.compile.err, "main.c:1: error", 15);
	r.compile.exit_code = 1;
	r.status = sandbox_compile_verdict(&r.compile);
	o = json_of(&r);
	CHECK_STR(str(o, "status"), "compile_error");
	CHECK_STR(str(o, "message"), "compilation failed");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "exit_code")));
	CHECK_STR(str(o, "stdout"), "");
	const cJSON *c = cJSON_GetObjectItem(o, "compile");
	CHECK_STR(str(c, "stderr"), "main.c:1: error");
	CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(c, "exit_code")) == 1);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(c, "status")));
	cJSON_Delete(o);
	sandbox_result_free(&r);
}

/* A result that would pass the bound: outputs are cut to fit, at a character boundary, the
 * short ones kept whole, and the step says truncated. */
static void test_result_bound(void)
{
	struct sandbox_result r;
	memset(&r, 0, sizeof r);
	r.ran = r.compiled = 1;
	/* 3,000 control bytes print as 18,000 (\u0001 each); 2,000 euro signs as 6,000 */
	char ctl[3000], eur[6000];
	memset(ctl, 1, sizeof ctl);
	for (size_t i = 0; i < sizeof eur; i += 3)
		memcpy(eur + i, "\xe2\x82\xac", 3);
	set_out(&r.run.out, ctl, sizeof ctl);
	set_out(&r.run.err, eur, sizeof eur);
	set_out(&r.compile.out, "", 0);
	set_out(&r.compile.err, "warning\n", 8);
	r.run.exit_code = 0;
	char *whole = sandbox_result_json_within(&r, NULL, 1 << 20);
	CHECK(whole && strlen(whole) > 24000);
	cJSON *o = whole ? cJSON_Parse(whole) : NULL;
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(o, "truncated")));
	CHECK(strlen(str(o, "stdout")) == sizeof ctl);
	cJSON_Delete(o);
	free(whole);

	char *s = sandbox_result_json_within(&r, NULL, 10000);
	CHECK(s && strlen(s) <= 10000);
	CHECK(s && strlen(s) > 9000); /* the room is used, not thrown away */
	o = s ? cJSON_Parse(s) : NULL;
	free(s);
	CHECK(o != NULL);
	const char *out = str(o, "stdout"), *err = str(o, "stderr");
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "truncated")));
	/* both long outputs got about half the room; each is a start of what was printed */
	CHECK(out && strlen(out) > 500 && strlen(out) < sizeof ctl && out[0] == 1 &&
	      out[strlen(out) - 1] == 1);
	CHECK(err && strlen(err) > 1000 && strlen(err) < sizeof eur && strlen(err) % 3 == 0 &&
	      !memcmp(err, eur, strlen(err)));
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "status")));
	const cJSON *c = cJSON_GetObjectItem(o, "compile");
	CHECK_STR(str(c, "stderr"), "warning\n");
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(c, "truncated")));
	cJSON_Delete(o);

	/* JOB_RESULT_MAX itself: 4 MiB of control bytes on each of two streams (48 MiB of
	 * JSON) fit */
	sandbox_result_free(&r);
	memset(&r, 0, sizeof r);
	r.ran = 1;
	size_t big = (size_t)4 << 20;
	char *b = malloc(big);
	CHECK(b != NULL);
	if (b) {
		memset(b, 2, big);
		set_out(&r.run.out, b, big);
		set_out(&r.run.err, b, big);
		free(b);
		s = sandbox_result_json(&r, NULL);
		CHECK(s && strlen(s) <= JOB_RESULT_MAX && strlen(s) > JOB_RESULT_MAX - 4096);
		o = s ? cJSON_Parse(s) : NULL;
		CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "truncated")));
		cJSON_Delete(o);
		free(s);
	}
	sandbox_result_free(&r);
}

int main(void)
{
	test_normal_ends();
	test_signals();
	test_limits();
	test_watch_decisions();
	test_compile_verdict();
	test_names();
	test_result_json();
	test_result_bound();
	return unit_summary("sandbox_exit");
}

/* fuzz_sandbox_out: libFuzzer target for the execution result built from what a user's
 * program wrote (sandbox_result_json, queue-worker/sandbox_out.c; README.md; `make fuzz`).
 * A room member chooses every byte the program prints, so stdout and stderr here are
 * arbitrary: bytes that are not UTF-8, NULs, control characters, lines of any length.
 *
 * Input: byte 0 chooses the shape (a compile step, a run step, the job's status, a signal),
 * byte 1 the output bound (what OUTPUT_LIMIT_KB is to the worker: 16 to 4,096 bytes here),
 * then four streams (compile stdout, compile stderr, run stdout, run stderr), each a
 * two-byte little-endian length and that many bytes (cut to what is left). A stream is
 * kept up to the bound as the sandbox keeps a pipe's output, and a stream past it marks its
 * step truncated.
 *
 * Laws (a break aborts): the result is strict JSON (lib/jsoncheck.h) and valid UTF-8 with
 * no \u0000; each step's stdout and stderr are strings of valid UTF-8 of at most 3 bytes per
 * byte kept (a bad byte becomes U+FFFD), equal to what was kept when that was valid UTF-8
 * without NUL; its escaped form is at most 6 bytes per byte kept; `truncated` says whether
 * the step's output was cut; exit_code is null exactly when a signal ended the step or it
 * did not run, `signal` is its name, `status` and `message` are null exactly for a step
 * that ended normally; `compile` is there exactly when a compile step ran; `language` and
 * `version` are the runtime's; the job's event carries the same result. The same result
 * under a smaller bound on the whole (sandbox_result_json_within: JOB_RESULT_MAX's law) is
 * at most that long (or has no output left, when the fixed members alone pass it), strict
 * JSON, each output the start of the unbounded one, `truncated` where one got shorter, and
 * unchanged when it fit. */
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../queue-worker/runtimes.h"
#include "../../queue-worker/sandbox.h"
#include "buf.h"
#include "jobstate.h"
#include "jsoncheck.h"
#include "utf8.h"
#include "fuzz.h"

struct input {
	const uint8_t *p;
	size_t n;
};

/* The next stream of the input: its bytes and length. */
static const char *next_stream(struct input *in, size_t *len)
{
	size_t want = 0;
	if (in->n >= 2) {
		want = (size_t)in->p[0] | (size_t)in->p[1] << 8;
		in->p += 2;
		in->n -= 2;
	} else {
		in->p += in->n;
		in->n = 0;
	}
	*len = want < in->n ? want : in->n;
	const char *s = (const char *)in->p;
	in->p += *len;
	in->n -= *len;
	return s;
}

/* What the sandbox keeps of a pipe's output: at most bound bytes; more marks the step. */
static void keep_stream(struct buf *b, const char *s, size_t len, size_t bound, int *truncated)
{
	size_t keep = len < bound ? len : bound;
	buf_init(b, bound + 1);
	CHECK(buf_append(b, s, keep) == 0);
	if (len > bound)
		*truncated = 1;
}

/* The kept bytes as they must come out when they are valid UTF-8 without NUL. */
static int plain(const struct buf *b)
{
	return utf8_validate(b->data ? b->data : "", b->len, NULL, NULL) == UTF8_OK;
}

static void check_output(const cJSON *o, const char *name, const struct buf *kept)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, name);
	CHECK(cJSON_IsString(s));
	size_t n = strlen(s->valuestring);
	CHECK(utf8_validate(s->valuestring, n, NULL, NULL) == UTF8_OK);
	CHECK(n <= 3 * kept->len);
	if (plain(kept))
		CHECK(n == kept->len && !memcmp(s->valuestring, kept->data ? kept->data : "", n));
	/* the escaped string (quotes included) within 6 bytes per byte kept */
	char *printed = cJSON_PrintUnformatted(s);
	CHECK(printed);
	CHECK(strlen(printed) <= 6 * kept->len + 2);
	free(printed);
}

static void check_step(const cJSON *o, const struct sandbox_step *st, int ran)
{
	check_output(o, "stdout", &st->out);
	check_output(o, "stderr", &st->err);
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "exit_code");
	const cJSON *sig = cJSON_GetObjectItemCaseSensitive(o, "signal");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "time_ms");
	const cJSON *tr = cJSON_GetObjectItemCaseSensitive(o, "truncated");
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(o, "status");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "message");
	if (!ran || st->signal)
		CHECK(cJSON_IsNull(code));
	else
		CHECK(cJSON_IsNumber(code) && code->valuedouble == st->exit_code);
	const char *name = sandbox_signal_name(st->signal);
	if (name)
		CHECK(cJSON_IsString(sig) && !strcmp(sig->valuestring, name));
	else
		CHECK(cJSON_IsNull(sig));
	CHECK(cJSON_IsNumber(t) && t->valuedouble == (double)st->time_ms);
	CHECK(cJSON_IsBool(tr) && cJSON_IsTrue(tr) == !!st->truncated);
	if (st->status == SANDBOX_OK) {
		CHECK(cJSON_IsNull(status) && cJSON_IsNull(msg));
	} else {
		CHECK(cJSON_IsString(status) && cJSON_IsString(msg));
		CHECK(!strcmp(status->valuestring, sandbox_status_code(st->status)));
	}
}

/* 1 when JSON text holds the escape \u0000 (a backslash that is itself escaped does not
 * start one). */
static int has_nul_escape(const char *t)
{
	for (; *t; t++)
		if (*t == '\\') {
			if (t[1] == 'u' && !strncmp(t + 2, "0000", 4))
				return 1;
			if (t[1])
				t++;
		}
	return 0;
}

/* Signals a step may end with: none, the usual ones, and numbers without a name. */
static const int signals[8] = {0, SIGKILL, SIGSEGV, SIGXCPU, SIGXFSZ, SIGABRT, 0, 99};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	unsigned shape = data[0];
	size_t bound = ((size_t)data[1] + 1) * 16;
	struct input in = {data + 2, size - 2};
	struct sandbox_result res;
	memset(&res, 0, sizeof res);
	res.compiled = shape & 1;
	res.ran = (shape >> 1) & 1;
	res.status = (enum sandbox_status)((shape >> 2) % 7);
	struct sandbox_step *steps[2] = {&res.compile, &res.run};
	for (int i = 0; i < 2; i++) {
		struct sandbox_step *st = steps[i];
		size_t n;
		const char *s = next_stream(&in, &n);
		keep_stream(&st->out, s, n, bound, &st->truncated);
		s = next_stream(&in, &n);
		keep_stream(&st->err, s, n, bound, &st->truncated);
		st->signal = signals[(shape >> 5) & 7];
		st->exit_code = st->signal ? -1 : (int)(n % 256);
		st->time_ms = (long long)n * 3;
		st->status = st->truncated ? SANDBOX_OUTPUT_LIMIT : (i ? res.status : SANDBOX_OK);
		if (st->status == SANDBOX_COMPILE_ERROR)
			st->status = SANDBOX_OK;
	}
	struct runtime rt;
	memset(&rt, 0, sizeof rt);
	strcpy(rt.language, "python");
	strcpy(rt.version, "3.11.2");

	char *text = sandbox_result_json(&res, &rt);
	CHECK(text);
	size_t len = strlen(text);
	CHECK(jsoncheck_text(text, len, NULL) == JSONCHECK_OK);
	CHECK(utf8_validate(text, len, NULL, NULL) == UTF8_OK);
	CHECK(!has_nul_escape(text));
	/* four streams of at most 6 bytes each per byte kept, and the fixed members */
	CHECK(len <= 4 * (6 * bound + 2) + 1024);

	cJSON *o = cJSON_Parse(text);
	CHECK(cJSON_IsObject(o));
	if (res.ran) {
		check_step(o, &res.run, 1);
	} else {
		struct sandbox_step none;
		memset(&none, 0, sizeof none);
		none.status = res.status;
		check_step(o, &none, 0);
	}
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "compile");
	if (res.compiled) {
		CHECK(cJSON_IsObject(c));
		check_step(c, &res.compile, 1);
	} else {
		CHECK(!c);
	}
	const cJSON *lang = cJSON_GetObjectItemCaseSensitive(o, "language");
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(o, "version");
	CHECK(cJSON_IsString(lang) && !strcmp(lang->valuestring, rt.language));
	CHECK(cJSON_IsString(ver) && !strcmp(ver->valuestring, rt.version));

	/* the job's event carries the result as it is */
	char *ev = jobstate_event_json("m2k0", "execution", "finished", text, NULL);
	CHECK(ev);
	cJSON *e = cJSON_Parse(ev);
	CHECK(e && cJSON_Compare(cJSON_GetObjectItemCaseSensitive(e, "result"), o, 1));
	cJSON_Delete(e);
	free(ev);

	/* within a bound on the whole (JOB_RESULT_MAX's law at a size the input reaches, from
	 * the fixed members up to the result's whole length): at most that long, still strict
	 * JSON, each output the start of the unbounded one, and a step whose output got shorter
	 * says truncated; the rest is unchanged */
	size_t max = 400 + (size_t)shape * len / 255;
	char *cut = sandbox_result_json_within(&res, &rt, max);
	CHECK(cut);
	size_t cut_len = strlen(cut);
	CHECK(jsoncheck_text(cut, cut_len, NULL) == JSONCHECK_OK);
	CHECK(utf8_validate(cut, cut_len, NULL, NULL) == UTF8_OK);
	cJSON *co = cJSON_Parse(cut);
	CHECK(cJSON_IsObject(co));
	const char *names[2] = {"stdout", "stderr"};
	const cJSON *steps_of[2][2] = {{o, co}, {c, cJSON_GetObjectItemCaseSensitive(co, "compile")}};
	for (int k = 0; k < 2; k++) {
		const cJSON *whole = steps_of[k][0], *part = steps_of[k][1];
		CHECK(!whole == !part);
		if (!whole)
			continue;
		int shorter = 0;
		for (int i = 0; i < 2; i++) {
			const char *w = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(whole, names[i]));
			const char *q = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, names[i]));
			CHECK(w && q && strlen(q) <= strlen(w) && !strncmp(w, q, strlen(q)));
			shorter |= strlen(q) < strlen(w);
			/* past the bound only when the fixed members alone are: nothing left to cut */
			CHECK(cut_len <= max || !q[0]);
		}
		int was = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(whole, "truncated"));
		CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(part, "truncated")) == (was || shorter));
		CHECK(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(whole, "exit_code"),
				    cJSON_GetObjectItemCaseSensitive(part, "exit_code"), 1));
	}
	if (len <= max)
		CHECK(!strcmp(cut, text));
	cJSON_Delete(co);
	free(cut);

	cJSON_Delete(o);
	free(text);
	buf_free(&res.compile.out);
	buf_free(&res.compile.err);
	buf_free(&res.run.out);
	buf_free(&res.run.err);
	return 0;
}

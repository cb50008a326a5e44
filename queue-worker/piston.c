#include "piston.h"

#include "buf.h"
#include "sandbox.h"
#include "errbuf.h"
#include "clock.h"
#include "log.h"
#include "url.h"
#include "utf8.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
	struct buf *b = user;
	/* past the bound: returning less than given makes libcurl stop with a write error */
	return buf_append(b, data, size * n) < 0 ? 0 : size * n;
}

static int on_progress(void *user, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	const volatile sig_atomic_t *cancel = user;
	return cancel && *cancel ? 1 : 0;
}

/* One HTTP exchange. 0 with *status and body filled, -1 with err (transport failure),
 * 1 when cancelled. */
static int http(const char *url, const char *post_json, long timeout_ms,
		const volatile sig_atomic_t *cancel, long *status, struct buf *body, char *err,
		size_t errlen)
{
	CURL *c = curl_easy_init();
	if (!c) {
		errbuf_set(err, errlen, "piston: cannot start an HTTP request");
		return -1;
	}
	struct curl_slist *hdr = NULL;
	hdr = curl_slist_append(hdr, "Accept: application/json");
	if (post_json)
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)cancel);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "codecollab-worker");
	if (post_json)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, post_json);
	char curl_err[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
	CURLcode rc = curl_easy_perform(c);
	int out = 0;
	/* A job's error is shown to the room: it never names PISTON_URL, where an operator may
	 * have put a secret (user:password@, a key in the query), nor curl's detailed message,
	 * which names the host. The worker's log has both, the URL without its secrets. */
	if (rc == CURLE_ABORTED_BY_CALLBACK) {
		out = 1;
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		errbuf_set(err, errlen, "piston: no answer within %ld ms", timeout_ms);
		out = -1;
	} else if (rc == CURLE_WRITE_ERROR) {
		errbuf_set(err, errlen, "piston: answer larger than %d bytes", PISTON_ANSWER_MAX);
		out = -1;
	} else if (rc != CURLE_OK) {
		errbuf_set(err, errlen, "piston: could not reach Piston: %s", curl_easy_strerror(rc));
		out = -1;
	} else if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status) != CURLE_OK) {
		*status = 0;
	}
	if (out < 0) {
		char shown[512];
		url_for_log(url, "(PISTON_URL, not shown)", shown, sizeof shown);
		log_warn("piston: %s %s failed: %s", post_json ? "POST" : "GET", shown,
			 curl_err[0] ? curl_err : curl_easy_strerror(rc));
	}
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	return out;
}

/* Piston's answer body[0..len) with each \u0000 escape, each lone surrogate escape and each
 * NUL byte replaced by the byte FF (lib/utf8.c), or NULL when out of memory (caller frees);
 * its length in *out_len.
 *
 * cJSON decodes \u0000 into a NUL and gives back only a C string, so the output of a
 * program that printed a NUL ("a\u0000b") ended there, silently; and it refuses a lone
 * surrogate ("\ud800" without its pair), so a run whose output held one failed as a
 * malformed answer and its output was lost. The local sandbox turns a NUL of the output
 * into U+FFFD (sandbox_out.c); FF, a byte that never occurs in UTF-8, becomes U+FFFD there
 * as well, is one byte as the NUL was (the output bound counts the same bytes) and, like
 * the NUL, is no continuation byte, so the text around it is read the same. A NUL byte
 * itself (a program's \0 passed on raw: not JSON, yet what a server may send) becomes FF
 * too: read up to its first NUL, the answer was cut there and failed as a malformed one.
 * What is not valid JSON otherwise stays invalid for cJSON to refuse. */
static char *escapes_replaced(const char *body, size_t len, size_t *out_len)
{
	return utf8_json_escapes_replaced(body, len, UTF8_JSON_FIX_BYTE, out_len);
}

/* The most bytes of Piston's error message kept in a job's error: it is shown to people,
 * and a run's error text has room for a few hundred bytes (queue.c). */
#define PISTON_MESSAGE_MAX 300

/* Piston's error answer: {"message": …} when it is one, else the status. The message
 * becomes the job's error, stored and sent in the room's events, so it is taken as the
 * names are (answer_name): valid UTF-8 without control characters, bounded at a character
 * boundary; a lone surrogate escape in it no longer hides it behind the bare status. */
static void http_error(long status, const struct buf *body, char *err, size_t errlen)
{
	size_t n = 0;
	char *text = body->data ? escapes_replaced(body->data, body->len, &n) : NULL;
	cJSON *o = text ? cJSON_ParseWithLength(text, n) : NULL;
	free(text);
	const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(o, "message"));
	char *clean = msg ? utf8_sanitize(msg, strlen(msg), UTF8_SAN_NUL | UTF8_SAN_CONTROLS,
					  PISTON_MESSAGE_MAX, NULL, NULL)
			  : NULL;
	if (clean && *clean)
		errbuf_set(err, errlen, "piston: %s", clean);
	else
		errbuf_set(err, errlen, "piston: HTTP %ld", status);
	free(clean);
	cJSON_Delete(o);
}

/* the largest wall_time taken from Piston: a year, far past any run's time limit */
#define PISTON_WALL_MAX_MS (366.0 * 24 * 3600 * 1000)

static int signal_number(const char *name)
{
	for (int s = 1; name && s < 65; s++) {
		const char *n = sandbox_signal_name(s);
		if (n && !strcmp(n, name))
			return s;
	}
	return 0;
}

static void keep(struct buf *b, const char *s, size_t max, int *truncated)
{
	size_t n = s ? strlen(s) : 0;
	if (n > max) {
		n = max;
		*truncated = 1;
	}
	buf_init(b, max + 1);
	buf_append(b, s ? s : "", n);
}

/* A name from Piston's answer (language, version) into dst, as the result carries it: valid
 * UTF-8 without control characters (bytes of another encoding become U+FFFD), cut at a
 * character boundary to fit; snprintf alone copied any bytes and could cut a character. */
static void answer_name(char *dst, size_t cap, const char *s)
{
	char *t = utf8_sanitize(s ? s : "", s ? strlen(s) : 0, UTF8_SAN_NUL | UTF8_SAN_CONTROLS,
				cap - 1, NULL, NULL);
	snprintf(dst, cap, "%s", t ? t : "");
	free(t);
}

/* Is status one of Piston's (isolate's) for a program it stopped: TO timeout, OL/EL
 * stdout/stderr too long, SG signal? */
static int stopped_status(const char *status)
{
	return status && (!strcmp(status, "TO") || !strcmp(status, "OL") || !strcmp(status, "EL") ||
			  !strcmp(status, "SG"));
}

/* Does a stage of this status (the member itself: absent, null or a string) let an exit
 * code 128 + n stand for signal n? Piston runs each stage as a bash script (its package's
 * run or compile file), and bash reports a child killed by signal n as its own exit
 * status 128 + n: isolate then sees a script that exited with an error, and Piston answers
 * code 128 + n, signal null, status "RE" ("Exited with error status 137"). That is what a
 * stage with no status (the program's code, Piston before isolate), RE, SG (the script
 * itself killed) and TO, OL, EL (stopped by Piston) may carry; XX is isolate failing, where
 * the code is not the program's, and a status we do not know vouches for nothing. */
static int code_may_be_signal(const cJSON *status)
{
	static const char *const ok[] = {"RE", "SG", "TO", "OL", "EL"};
	if (!status || cJSON_IsNull(status))
		return 1;
	for (size_t i = 0; cJSON_IsString(status) && i < sizeof ok / sizeof ok[0]; i++)
		if (!strcmp(status->valuestring, ok[i]))
			return 1;
	return 0;
}

/* How a stage ended, from its code and signal: st->signal, or st->exit_code. A signal Piston
 * names wins over a code; an exit code is a whole number from 0 to 255, what a process's
 * exit status can be (a number's valueint alone took 1.5 for 1 and 1e300 for INT_MAX, and a
 * missing code read -1, shown to the user as the program's exit code). A code of 128 + n,
 * n a signal we name, with no signal given and a status that allows it
 * (code_may_be_signal), is signal n, as the local sandbox reads bwrap's exit status
 * (sandbox_exit.c): the same program ends the same way whichever backend ran it. A stage
 * with neither, or with a code that is no exit code, is a malformed answer: 0, or -1 with
 * why in err ("the run has neither an exit code nor a signal"). */
static int stage_end(const cJSON *o, const char *name, struct sandbox_step *st, char *err,
		     size_t errlen)
{
	const cJSON *code = cJSON_GetObjectItem(o, "code");
	const char *sig = cJSON_GetStringValue(cJSON_GetObjectItem(o, "signal"));
	const cJSON *status_item = cJSON_GetObjectItem(o, "status");
	const char *status = cJSON_GetStringValue(status_item);
	double d = cJSON_IsNumber(code) ? code->valuedouble : -1;
	int is_code = cJSON_IsNumber(code) && d >= 0 && d <= 255 && d == (double)(int)d;
	st->signal = signal_number(sig);
	st->exit_code = -1;
	if (st->signal)
		return 0;
	if (is_code) {
		int n = (int)d - 128;
		if (!(sig && *sig) && n > 0 && sandbox_signal_name(n) && code_may_be_signal(status_item))
			st->signal = n;
		else
			st->exit_code = (int)d;
		return 0;
	}
	/* a signal we have no name for, or a program Piston says it stopped: killed */
	if ((sig && *sig) || stopped_status(status)) {
		st->signal = SIGKILL;
		return 0;
	}
	if (cJSON_IsNumber(code))
		errbuf_set(err, errlen,
			   "piston: malformed answer (the %s's exit code %.15g is not a whole number "
			   "from 0 to 255)",
			   name, d);
	else if (code && !cJSON_IsNull(code))
		errbuf_set(err, errlen, "piston: malformed answer (the %s's exit code is not a number)",
			   name);
	else
		errbuf_set(err, errlen,
			   "piston: malformed answer (the %s has neither an exit code nor a signal)",
			   name);
	return -1;
}

/* One stage of Piston's answer (run or compile, named name) → our step. -1 with err when
 * it is not an object or tells no end (stage_end). */
static int map_stage(const cJSON *o, const char *name, long long elapsed_ms, size_t output_max,
		     struct sandbox_step *st, char *err, size_t errlen)
{
	memset(st, 0, sizeof *st);
	if (!cJSON_IsObject(o)) {
		errbuf_set(err, errlen, "piston: malformed answer (the %s is not an object)", name);
		return -1;
	}
	const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(o, "status"));
	const cJSON *wall = cJSON_GetObjectItem(o, "wall_time");
	keep(&st->out, cJSON_GetStringValue(cJSON_GetObjectItem(o, "stdout")), output_max,
	     &st->truncated);
	keep(&st->err, cJSON_GetStringValue(cJSON_GetObjectItem(o, "stderr")), output_max,
	     &st->truncated);
	if (stage_end(o, name, st, err, errlen) < 0)
		return -1;
	/* a wall_time that is no time (below 0, or past what a long long holds, where converting
	 * is undefined) counts as missing: the time we measured stands in */
	double w = cJSON_IsNumber(wall) ? wall->valuedouble : -1;
	st->time_ms = w >= 0 && w <= PISTON_WALL_MAX_MS ? (long long)w : elapsed_ms;
	/* Piston's (isolate's) status codes: TO timeout, OL/EL stdout/stderr too long,
	 * SG signal, RE runtime error, XX internal */
	if (status && !strcmp(status, "TO"))
		st->status = SANDBOX_TIME_LIMIT;
	else if (status && (!strcmp(status, "OL") || !strcmp(status, "EL"))) {
		st->status = SANDBOX_OUTPUT_LIMIT;
		st->truncated = 1;
	} else if (st->truncated)
		st->status = SANDBOX_OUTPUT_LIMIT;
	return 0;
}

int piston_map_answer(const char *body, size_t len, long long elapsed_ms, size_t output_max,
		      char **result_json, char *err, size_t errlen)
{
	*result_json = NULL;
	size_t n = 0;
	char *text = body ? escapes_replaced(body, len, &n) : NULL;
	if (body && !text) {
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	cJSON *o = text ? cJSON_ParseWithLength(text, n) : NULL;
	free(text);
	const cJSON *run = cJSON_GetObjectItem(o, "run");
	const cJSON *compile = cJSON_GetObjectItem(o, "compile");
	struct sandbox_result res;
	memset(&res, 0, sizeof res);
	int rc = -1;
	if (!cJSON_IsObject(o) || (!cJSON_IsObject(run) && !cJSON_IsObject(compile))) {
		errbuf_set(err, errlen, "piston: malformed answer (not JSON with run or compile)");
		goto out;
	}
	if (cJSON_IsObject(compile)) {
		res.compiled = 1;
		if (map_stage(compile, "compile step", elapsed_ms, output_max, &res.compile, err,
			      errlen) < 0)
			goto out;
		if (res.compile.signal || res.compile.exit_code != 0 ||
		    res.compile.status != SANDBOX_OK)
			res.status = SANDBOX_COMPILE_ERROR;
	}
	if (res.status != SANDBOX_COMPILE_ERROR && cJSON_IsObject(run)) {
		res.ran = 1;
		if (map_stage(run, "run", elapsed_ms, output_max, &res.run, err, errlen) < 0)
			goto out;
		res.status = res.run.status;
	} else if (res.status != SANDBOX_COMPILE_ERROR) {
		errbuf_set(err, errlen, "piston: malformed answer (no run)");
		goto out;
	}
	struct runtime rt;
	memset(&rt, 0, sizeof rt);
	answer_name(rt.language, sizeof rt.language,
		    cJSON_GetStringValue(cJSON_GetObjectItem(o, "language")));
	answer_name(rt.version, sizeof rt.version,
		    cJSON_GetStringValue(cJSON_GetObjectItem(o, "version")));
	*result_json = sandbox_result_json(&res, &rt);
	if (!*result_json) {
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	sandbox_result_free(&res);
	cJSON_Delete(o);
	return rc;
}

static char *execute_body(const struct piston_request *req, const struct piston_limits *lim)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "language", req->language);
	cJSON_AddStringToObject(o, "version", req->version && *req->version ? req->version : "*");
	cJSON *files = cJSON_AddArrayToObject(o, "files");
	cJSON *f = cJSON_CreateObject();
	cJSON_AddItemToArray(files, f);
	cJSON_AddStringToObject(f, "content", req->code ? req->code : "");
	cJSON_AddStringToObject(o, "stdin", req->stdin_data ? req->stdin_data : "");
	cJSON *args = cJSON_AddArrayToObject(o, "args");
	for (size_t i = 0; i < req->nargs; i++)
		cJSON_AddItemToArray(args, cJSON_CreateString(req->args[i]));
	if (lim->run_timeout_ms)
		cJSON_AddNumberToObject(o, "run_timeout", (double)lim->run_timeout_ms);
	if (lim->compile_timeout_ms)
		cJSON_AddNumberToObject(o, "compile_timeout", (double)lim->compile_timeout_ms);
	if (lim->run_memory)
		cJSON_AddNumberToObject(o, "run_memory_limit", (double)lim->run_memory);
	if (lim->compile_memory)
		cJSON_AddNumberToObject(o, "compile_memory_limit", (double)lim->compile_memory);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

enum piston_rc piston_execute(const char *url, const struct piston_request *req,
			      const struct piston_limits *lim, long timeout_ms, size_t output_max,
			      const volatile sig_atomic_t *cancel, char **result_json, char *err,
			      size_t errlen)
{
	*result_json = NULL;
	char *ep = url_with_path(url, "/api/v2/execute", "PISTON_URL", err, errlen);
	if (!ep)
		return PISTON_FAILED;
	char *body_json = execute_body(req, lim);
	if (!body_json) {
		free(ep);
		errbuf_set(err, errlen, "out of memory");
		return PISTON_FAILED;
	}
	struct buf body;
	buf_init(&body, PISTON_ANSWER_MAX);
	long status = 0;
	long long t0 = clock_mono_ms();
	int rc = http(ep, body_json, timeout_ms, cancel, &status, &body, err, errlen);
	long long elapsed = clock_mono_ms() - t0;
	free(body_json);
	free(ep);
	enum piston_rc out = PISTON_FAILED;
	if (rc == 1) {
		out = PISTON_CANCELLED;
	} else if (rc == 0 && status != 200) {
		http_error(status, &body, err, errlen);
	} else if (rc == 0 &&
		   piston_map_answer(body.data, body.len, elapsed, output_max, result_json, err,
				     errlen) == 0) {
		out = PISTON_OK;
	}
	buf_free(&body);
	return out;
}

/* Is s a name we can announce: 1 to PISTON_NAME_MAX bytes of valid UTF-8 without control
 * characters (C0, \n and \t included, DEL, C1)? */
static int clean_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > PISTON_NAME_MAX || utf8_validate(s, n, NULL, NULL) != UTF8_OK)
		return 0;
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n; i++) {
		/* valid UTF-8: C2 is always a lead byte, and C2 80..9F is U+0080..U+009F */
		if (p[i] < 0x20 || p[i] == 0x7f || (p[i] == 0xc2 && p[i + 1] < 0xa0))
			return 0;
	}
	return 1;
}

/* One runtime of Piston's list as ours: 0 with *out (caller frees), 1 when it is skipped
 * (*why names the field), -1 when out of memory. Good aliases past PISTON_ALIASES_MAX are
 * added to *dropped. */
static int map_runtime(const cJSON *r, cJSON **out, const char **why, size_t *dropped)
{
	const char *lang = cJSON_GetStringValue(cJSON_GetObjectItem(r, "language"));
	const char *ver = cJSON_GetStringValue(cJSON_GetObjectItem(r, "version"));
	*out = NULL;
	*why = !clean_name(lang) ? "its language" : !clean_name(ver) ? "its version" : NULL;
	if (*why)
		return 1;
	cJSON *o = cJSON_CreateObject();
	cJSON *aliases = NULL;
	if (!o || !cJSON_AddStringToObject(o, "language", lang) ||
	    !cJSON_AddStringToObject(o, "version", ver) ||
	    !(aliases = cJSON_AddArrayToObject(o, "aliases")))
		goto oom;
	const cJSON *a;
	int taken = 0;
	cJSON_ArrayForEach(a, cJSON_GetObjectItem(r, "aliases"))
	{
		/* an alias is only matched against requests; one we could not announce goes,
		 * the runtime stays */
		if (!cJSON_IsString(a) || !clean_name(a->valuestring))
			continue;
		if (taken == PISTON_ALIASES_MAX) {
			++*dropped;
			continue;
		}
		taken++;
		cJSON *s = cJSON_CreateString(a->valuestring);
		if (!s || !cJSON_AddItemToArray(aliases, s)) {
			cJSON_Delete(s);
			goto oom;
		}
	}
	*out = o;
	return 0;
oom:
	cJSON_Delete(o);
	return -1;
}

/* What a JSON value is, for saying what came instead of a list. */
static const char *json_kind(const cJSON *v)
{
	return cJSON_IsObject(v) ? "an object" : cJSON_IsString(v) ? "a string" :
	       cJSON_IsNumber(v) ? "a number" : cJSON_IsBool(v) ? "a boolean" : "null";
}

/* The printed size of a runtime, or 0 when out of memory. */
static size_t printed_size(const cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	size_t n = s ? strlen(s) : 0;
	free(s);
	return n;
}

char *piston_runtimes_map(const char *body, struct piston_left_out *lo, char *err,
			  size_t errlen)
{
	memset(lo, 0, sizeof *lo);
	char *out = NULL;
	cJSON *in = NULL, *arr = NULL;
	/* a \u0000 would end a name early in cJSON's C string, and a lone surrogate made cJSON
	 * refuse the whole list: as FF either makes its name unclean, the rest is read */
	char *text = escapes_replaced(body ? body : "", body ? strlen(body) : 0, NULL);
	if (!text) {
		errbuf_set(err, errlen, "out of memory");
		goto done;
	}
	in = cJSON_Parse(text);
	if (!in) {
		errbuf_set(err, errlen, "piston: the runtimes answer is not JSON (%zu bytes)",
			   strlen(text));
		goto done;
	}
	if (!cJSON_IsArray(in)) {
		errbuf_set(err, errlen, "piston: the runtimes answer is %s, not a list",
			   json_kind(in));
		goto done;
	}
	arr = cJSON_CreateArray();
	if (!arr) {
		errbuf_set(err, errlen, "out of memory");
		goto done;
	}
	const cJSON *r;
	int i = 0, taken = 0;
	size_t size = 2; /* the brackets */
	cJSON_ArrayForEach(r, in)
	{
		i++;
		if (taken == PISTON_RUNTIMES_MAX || size > PISTON_RUNTIMES_TEXT_MAX) {
			/* past the bounds: the rest are not looked at, only counted */
			lo->over++;
			continue;
		}
		const char *bad = NULL;
		cJSON *o = NULL;
		int st = map_runtime(r, &o, &bad, &lo->dropped);
		if (st < 0) {
			errbuf_set(err, errlen, "out of memory");
			goto done;
		}
		if (st == 1) {
			/* the name itself is not shown: it is what is not fit to print */
			if (!lo->skipped)
				errbuf_set(lo->why, sizeof lo->why,
					   "runtime %d of Piston's list: %s is not 1 to %d bytes of "
					   "UTF-8 text without control characters",
					   i, bad, PISTON_NAME_MAX);
			lo->skipped++;
			continue;
		}
		size_t n = printed_size(o);
		if (!n) {
			cJSON_Delete(o);
			errbuf_set(err, errlen, "out of memory");
			goto done;
		}
		if (size + n + (taken ? 1 : 0) > PISTON_RUNTIMES_TEXT_MAX) {
			/* this one would pass the size bound: it and all after it are left out, so
			 * what is announced is the start of Piston's list */
			cJSON_Delete(o);
			size = PISTON_RUNTIMES_TEXT_MAX + 1;
			lo->over++;
			continue;
		}
		if (!cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			errbuf_set(err, errlen, "out of memory");
			goto done;
		}
		size += n + (taken ? 1 : 0);
		taken++;
	}
	out = cJSON_PrintUnformatted(arr);
	if (!out)
		errbuf_set(err, errlen, "out of memory");
done:
	free(text);
	cJSON_Delete(in);
	cJSON_Delete(arr);
	return out;
}

char *piston_runtimes(const char *url, long timeout_ms, const volatile sig_atomic_t *cancel,
		      struct piston_left_out *lo, char *err, size_t errlen)
{
	memset(lo, 0, sizeof *lo);
	char *ep = url_with_path(url, "/api/v2/runtimes", "PISTON_URL", err, errlen);
	if (!ep)
		return NULL;
	struct buf body;
	buf_init(&body, PISTON_ANSWER_MAX);
	long status = 0;
	char *out = NULL;
	memset(lo, 0, sizeof *lo);
	int rc = http(ep, NULL, timeout_ms, cancel, &status, &body, err, errlen);
	free(ep);
	if (rc == 1)
		errbuf_set(err, errlen, "piston: runtimes request cancelled");
	if (rc != 0)
		goto done;
	if (status != 200) {
		http_error(status, &body, err, errlen);
		goto done;
	}
	out = piston_runtimes_map(body.data, lo, err, errlen);
done:
	buf_free(&body);
	return out;
}

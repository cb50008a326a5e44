#include "ai.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "prompts.h"
#include "rnd.h"
#include "utf8.h"
#include "rkeys.h"
#include "rscript.h"
#include "errbuf.h"

#define AI_TEMPERATURE 0.2
#define AI_MAX_TOKENS 1024
#define AI_CONNECT_TIMEOUT_MS 10000
#define AI_BACKOFF_FIRST_MS 500 /* then 1 s, 2 s, … with ±25 % jitter */
#define AI_BACKOFF_MAX_MS 8000
#define AI_CHECKER_OUTPUT_SHOWN 4096

static int cancelled(const volatile sig_atomic_t *cancel)
{
	return cancel && *cancel;
}

/* ---- text from outside ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (RFC 3629, 4), 0 when it is not one. */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
	size_t len = 0;
	if (p[0] < 0x80)
		len = 1;
	else if (p[0] >= 0xC2 && p[0] <= 0xDF)
		len = 2;
	else if (p[0] >= 0xE0 && p[0] <= 0xEF)
		len = 3;
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)
		len = 4;
	if (len == 0 || len > n)
		return 0;
	/* utf8_validate knows overlongs, surrogates and the U+10FFFF limit; NUL is ours to drop */
	enum utf8_status st = utf8_validate((const char *)p, len, NULL, NULL);
	return st == UTF8_OK || st == UTF8_NUL ? len : 0;
}

char *ai_clean_text(const char *s, size_t len, size_t max)
{
	struct buf b;
	buf_init(&b, max + 8);
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len(p + i, len - i);
		const char *put = (const char *)p + i;
		size_t put_len = n;
		if (n == 0) { /* a bad byte: U+FFFD, and on with the next one */
			put = "\xEF\xBF\xBD";
			put_len = 3;
			n = 1;
		} else if (n == 1 && (p[i] < 0x20 || p[i] == 0x7F) && p[i] != '\n' && p[i] != '\t') {
			put_len = 0; /* control characters go, \r included (\r\n becomes \n) */
		} else if (n == 2 && p[i] == 0xC2 && p[i + 1] < 0xA0) {
			put_len = 0; /* C1 controls */
		}
		if (b.len + put_len > max)
			break;
		if (put_len && buf_append(&b, put, put_len) < 0) {
			buf_free(&b);
			return NULL;
		}
		i += n;
	}
	return buf_detach(&b);
}

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

/* ---- the request ------------------------------------------------------------------------ */

static const char *str_field(const cJSON *o, const char *name)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

int ai_request_parse(const char *json, struct ai_request *rq, char *err, size_t errlen)
{
	memset(rq, 0, sizeof *rq);
	rq->root = json ? cJSON_Parse(json) : NULL;
	if (!cJSON_IsObject(rq->root)) {
		errbuf_set(err, errlen, "the job's request is not a JSON object");
		goto bad;
	}
	rq->kind = str_field(rq->root, "kind");
	rq->model = str_field(rq->root, "model");
	rq->language = str_field(rq->root, "language");
	rq->code = str_field(rq->root, "code");
	rq->question = str_field(rq->root, "question");
	rq->cache_key = str_field(rq->root, "cache_key");
	rq->scope = str_field(rq->root, "scope");
	const char *provider = str_field(rq->root, "provider");
	const cJSON *fl = cJSON_GetObjectItemCaseSensitive(rq->root, "first_line");
	if (!prompts_system(rq->kind)) {
		errbuf_set(err, errlen, "the job's request has no kind hint or review");
		goto bad;
	}
	if (!provider || aicfg_provider_parse(provider, &rq->provider) < 0 ||
	    rq->provider == AICFG_OFF) {
		errbuf_set(err, errlen, "the job's request names no AI provider");
		goto bad;
	}
	if (!rq->model || !rq->language || !rq->code) {
		errbuf_set(err, errlen, "the job's request lacks its model, language or code");
		goto bad;
	}
	if (!rq->question)
		rq->question = "";
	rq->code_len = strlen(rq->code);
	rq->first_line = 1;
	if (cJSON_IsNumber(fl) && fl->valuedouble >= 1 && fl->valuedouble < 1e9)
		rq->first_line = (long)fl->valuedouble;
	if (rq->cache_key) {
		size_t n = strspn(rq->cache_key, "0123456789abcdef");
		if (n != AICFG_KEY_HEX || rq->cache_key[n])
			rq->cache_key = NULL; /* nothing to cache under */
	}
	if (rq->scope) {
		/* a room id: it becomes part of Redis key names */
		size_t n = strspn(rq->scope, "abcdefghijklmnopqrstuvwxyz0123456789");
		if (n == 0 || n > 64 || rq->scope[n])
			rq->scope = NULL;
	}
	return 0;
bad:
	ai_request_free(rq);
	return -1;
}

void ai_request_free(struct ai_request *rq)
{
	cJSON_Delete(rq->root);
	memset(rq, 0, sizeof *rq);
}

void ai_request_kind(const char *request_json, char *out, size_t cap)
{
	cJSON *o = request_json ? cJSON_Parse(request_json) : NULL;
	const char *k = str_field(o, "kind");
	snprintf(out, cap, "%s", prompts_system(k) ? k : "");
	cJSON_Delete(o);
}

/* ---- OpenAI-compatible chat completions ------------------------------------------------ */

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

int ai_openai_answer(const char *body, size_t len, char **text, int *cut, char *err,
		     size_t errlen)
{
	*text = NULL;
	*cut = 0;
	int rc = -1;
	cJSON *o = body ? cJSON_ParseWithLength(body, len) : NULL;
	if (!cJSON_IsObject(o)) {
		errbuf_set(err, errlen, "the AI provider's answer is not valid JSON");
		goto out;
	}
	const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0);
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
	if (!cJSON_IsObject(choice) || !cJSON_IsObject(msg) ||
	    !(cJSON_IsString(content) || cJSON_IsNull(content))) {
		errbuf_set(err, errlen,
			"the AI provider's answer is malformed: it has no choices[0].message.content");
		goto out;
	}
	const char *s = cJSON_IsString(content) ? content->valuestring : "";
	char *t = ai_clean_text(s, strlen(s), AI_TEXT_MAX);
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
	const char *fin = str_field(choice, "finish_reason");
	*cut = (fin && strcmp(fin, "length") == 0) || strlen(s) > strlen(t) + AI_TEXT_MAX / 2;
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
	cJSON *o = body && len ? cJSON_ParseWithLength(body, len) : NULL;
	const char *m = NULL;
	if (cJSON_IsObject(o)) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
		m = cJSON_IsString(e) ? e->valuestring : str_field(e, "message");
		if (!m)
			m = str_field(o, "message");
	}
	const char *src = m ? m : (body ? body : "");
	size_t n = m ? strlen(m) : (body ? len : 0);
	char *t = ai_clean_text(src, n > 4096 ? 4096 : n, cap > 4 ? cap - 4 : 0);
	cJSON_Delete(o);
	if (!t)
		return;
	for (char *p = t; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	snprintf(out, cap, "%s", t);
	free(t);
}

struct http_answer {
	struct buf body;
	char retry_after[64];
	const volatile sig_atomic_t *cancel;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct http_answer *a = arg;
	if (buf_append(&a->body, data, size * n) < 0)
		return 0; /* past AI_RESPONSE_MAX: curl stops with CURLE_WRITE_ERROR */
	return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct http_answer *a = arg;
	size_t len = size * n;
	static const char name[] = "retry-after:";
	if (len > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
		size_t v = len - (sizeof name - 1);
		if (v >= sizeof a->retry_after)
			v = sizeof a->retry_after - 1;
		memcpy(a->retry_after, data + sizeof name - 1, v);
		a->retry_after[v] = '\0';
	}
	return len;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct http_answer *a = arg;
	return cancelled(a->cancel) ? 1 : 0;
}

/* Sleeps ms in slices, stopping early when the worker is told to stop. */
static void nap(const volatile sig_atomic_t *cancel, long ms)
{
	while (ms > 0 && !cancelled(cancel)) {
		long step = ms > 100 ? 100 : ms;
		struct timespec ts = {0, step * 1000000L};
		nanosleep(&ts, NULL);
		ms -= step;
	}
}

static long backoff_ms(int attempt)
{
	long ms = AI_BACKOFF_FIRST_MS;
	for (int i = 1; i < attempt && ms < AI_BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > AI_BACKOFF_MAX_MS)
		ms = AI_BACKOFF_MAX_MS;
	unsigned short r = 0;
	rnd_bytes(&r, sizeof r);
	return ms * 3 / 4 + (long)(r % (unsigned)(ms / 2 + 1));
}

enum call_outcome { CALL_OK, CALL_RETRY, CALL_FAIL };

/* One POST. Fills ans, *status; the outcome says whether another attempt may help. */
static enum call_outcome post_once(const struct aicfg *cfg, const char *url, const char *body,
				   struct http_answer *ans, long *status, long *wait_ms,
				   char *err, size_t errlen)
{
	enum call_outcome out = CALL_FAIL;
	char curl_err[CURL_ERROR_SIZE] = "", auth[1024];
	struct curl_slist *h = NULL;
	*status = 0;
	*wait_ms = -1;
	CURL *cu = curl_easy_init();
	if (!cu) {
		errbuf_set(err, errlen, "out of memory");
		return CALL_FAIL;
	}
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Accept: application/json");
	h = curl_slist_append(h, "Expect:");
	if (cfg->api_key[0]) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", cfg->api_key);
		h = curl_slist_append(h, auth);
	}
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(cu, CURLOPT_USERAGENT, "codecollab-worker");
	curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT_MS,
			 cfg->timeout_ms < AI_CONNECT_TIMEOUT_MS ? cfg->timeout_ms : AI_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, cfg->timeout_ms);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, ans);
	curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(cu, CURLOPT_HEADERDATA, ans);
	curl_easy_setopt(cu, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(cu, CURLOPT_XFERINFODATA, ans);
	curl_easy_setopt(cu, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(cu, CURLOPT_ERRORBUFFER, curl_err);
	CURLcode rc = curl_easy_perform(cu);
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, status);
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		errbuf_set(err, errlen, "the AI provider did not answer within %.1f s", cfg->timeout_ms / 1000.0);
	} else if (rc == CURLE_ABORTED_BY_CALLBACK) {
		errbuf_set(err, errlen, "the worker is shutting down");
	} else if (rc == CURLE_WRITE_ERROR) {
		errbuf_set(err, errlen, "the AI provider's answer is larger than %d KiB", AI_RESPONSE_MAX / 1024);
	} else if (rc != CURLE_OK) {
		errbuf_set(err, errlen, "could not reach the AI provider at %s: %s", cfg->base_url,
			curl_err[0] ? curl_err : curl_easy_strerror(rc));
		out = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
				      rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR ||
				      rc == CURLE_SEND_ERROR
			      ? CALL_RETRY
			      : CALL_FAIL;
	} else if (*status >= 200 && *status < 300) {
		out = CALL_OK;
	} else {
		char why[256];
		ai_provider_error(ans->body.data, ans->body.len, why, sizeof why);
		errbuf_set(err, errlen, "the AI provider answered HTTP %ld%s%s", *status,
			why[0] ? ": " : "", why);
		if (*status == 429 || *status >= 500) {
			out = CALL_RETRY;
			long ra = ai_retry_after(ans->retry_after, (long long)time(NULL));
			if (ra >= 0 && (*status == 429 || *status == 503))
				*wait_ms = ra * 1000;
		}
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(cu);
	return out;
}

/* The provider's answer text: 0 and *text (caller frees), or -1 and err. */
static int openai_call(const volatile sig_atomic_t *cancel, const struct aicfg *cfg,
		       const struct ai_request *rq, char **text, int *cut, char *err, size_t errlen)
{
	int rc = -1;
	char url[2048];
	size_t bl = strlen(cfg->base_url);
	while (bl > 0 && cfg->base_url[bl - 1] == '/')
		bl--;
	if (strpbrk(cfg->api_key, "\r\n")) {
		errbuf_set(err, errlen, "AI_API_KEY must be one line");
		return -1;
	}
	if (bl + sizeof "/chat/completions" > sizeof url) {
		errbuf_set(err, errlen, "AI_BASE_URL is too long");
		return -1;
	}
	snprintf(url, sizeof url, "%.*s/chat/completions", (int)bl, cfg->base_url);
	char *body = ai_openai_body(rq);
	if (!body) {
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	for (int attempt = 1; attempt <= AI_ATTEMPTS; attempt++) {
		struct http_answer ans = {.cancel = cancel};
		buf_init(&ans.body, AI_RESPONSE_MAX);
		long status = 0, wait = -1;
		enum call_outcome o = post_once(cfg, url, body, &ans, &status, &wait, err, errlen);
		if (o == CALL_OK)
			rc = ai_openai_answer(ans.body.data, ans.body.len, text, cut, err, errlen);
		buf_free(&ans.body);
		if (o == CALL_OK || o == CALL_FAIL || cancelled(cancel))
			break;
		if (wait > (long)AI_RETRY_AFTER_MAX_S * 1000) {
			size_t l = strlen(err);
			snprintf(err + l, errlen - l, " (it asks to wait %ld s)", wait / 1000);
			break;
		}
		if (attempt == AI_ATTEMPTS) {
			size_t l = strlen(err);
			snprintf(err + l, errlen - l, " (%d attempts)", AI_ATTEMPTS);
			break;
		}
		long ms = wait >= 0 ? wait : backoff_ms(attempt);
		log_info("ai: attempt %d failed (%s); retrying in %ld ms", attempt, err, ms);
		nap(cancel, ms);
	}
	free(body);
	return rc;
}

/* ---- the local provider: the language's own checker ------------------------------------ */

enum diag_style { DIAG_GCC, DIAG_NODE, DIAG_BASH };

/* Python's compile() with its warnings, printed the way gcc prints diagnostics. */
static const char python_check[] =
	"import sys, warnings\n"
	"src = open('main.py', 'rb').read()\n"
	"status = 0\n"
	"with warnings.catch_warnings(record=True) as caught:\n"
	"    warnings.simplefilter('always')\n"
	"    try:\n"
	"        compile(src, 'main.py', 'exec')\n"
	"    except (SyntaxError, ValueError) as e:\n"
	"        line = getattr(e, 'lineno', None) or 1\n"
	"        col = getattr(e, 'offset', None) or 0\n"
	"        print('main.py:%d:%d: error: %s: %s' % (line, col, type(e).__name__,\n"
	"              getattr(e, 'msg', None) or str(e)))\n"
	"        status = 1\n"
	"for w in caught:\n"
	"    print('main.py:%d:0: warning: %s: %s' % (w.lineno or 1, w.category.__name__,\n"
	"          w.message))\n"
	"sys.exit(status)\n";

struct checker {
	const char *language; /* canonical (lib/lang.c), also its runtimes.conf section */
	const char *file;
	const char *args[8]; /* after the runtime's binary */
	enum diag_style style;
	const char *label;
};

static const struct checker checkers[] = {
	{"c", "main.c",
	 {"-std=gnu17", "-fsyntax-only", "-Wall", "-Wextra", "-fdiagnostics-plain-output",
	  "-fno-diagnostics-color", "main.c", NULL},
	 DIAG_GCC, "gcc -fsyntax-only -Wall -Wextra"},
	{"c++", "main.cpp",
	 {"-std=gnu++17", "-fsyntax-only", "-Wall", "-Wextra", "-fdiagnostics-plain-output",
	  "-fno-diagnostics-color", "main.cpp", NULL},
	 DIAG_GCC, "g++ -fsyntax-only -Wall -Wextra"},
	{"python", "main.py", {"-B", "-I", "-c", python_check, NULL}, DIAG_GCC, "python3 compile()"},
	{"javascript", "main.js", {"--check", "main.js", NULL}, DIAG_NODE, "node --check"},
	{"bash", "main.sh", {"-n", "main.sh", NULL}, DIAG_BASH, "bash -n"},
};

static const struct checker *find_checker(const char *language)
{
	for (size_t i = 0; i < sizeof checkers / sizeof checkers[0]; i++)
		if (language && strcmp(checkers[i].language, language) == 0)
			return &checkers[i];
	return NULL;
}

int ai_checker(const char *language, const char **file, const char **label)
{
	const struct checker *ck = find_checker(language);
	if (!ck)
		return -1;
	*file = ck->file;
	*label = ck->label;
	return 0;
}

/* Does the path name our file ("main.c", "./main.c", "/tmp/work/main.c")? */
static int is_our_file(const char *path, size_t len, const char *file)
{
	size_t fl = strlen(file);
	return len >= fl && memcmp(path + len - fl, file, fl) == 0 &&
	       (len == fl || path[len - fl - 1] == '/');
}

static int add_diag(cJSON *arr, long line, long col, const char *severity, const char *msg,
		    size_t msg_len)
{
	if (cJSON_GetArraySize(arr) >= AI_DIAG_MAX)
		return -1;
	while (msg_len && (msg[msg_len - 1] == ' ' || msg[msg_len - 1] == '\r'))
		msg_len--;
	char *m = ai_clean_text(msg, msg_len, AI_DIAG_MESSAGE_MAX);
	if (!m)
		return -1;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "line", (double)line);
	if (col > 0)
		cJSON_AddNumberToObject(d, "column", (double)col);
	cJSON_AddStringToObject(d, "severity", severity);
	cJSON_AddStringToObject(d, "message", m);
	free(m);
	cJSON_AddItemToArray(arr, d);
	return 0;
}

/* Reads a decimal number at *p (advancing it); -1 when there is none or it is absurd. */
static long read_num(const char **p, const char *end)
{
	long v = 0;
	const char *s = *p;
	while (s < end && *s >= '0' && *s <= '9' && v < 100000000)
		v = v * 10 + (*s++ - '0');
	if (s == *p || (s < end && *s >= '0' && *s <= '9'))
		return -1;
	*p = s;
	return v;
}

/* "file:line[:col]: severity: message" (gcc, and our python check). */
static void parse_gcc_line(cJSON *arr, const char *s, const char *end, const char *file,
			   long shift)
{
	const char *colon = memchr(s, ':', (size_t)(end - s));
	if (!colon || !is_our_file(s, (size_t)(colon - s), file))
		return;
	const char *p = colon + 1;
	long line = read_num(&p, end), col = 0;
	if (line < 0 || p >= end || *p != ':')
		return;
	p++;
	if (p < end && *p >= '0' && *p <= '9') {
		col = read_num(&p, end);
		if (col < 0 || p >= end || *p != ':')
			return;
		p++;
	}
	while (p < end && *p == ' ')
		p++;
	static const struct {
		const char *word, *severity;
	} sev[] = {{"fatal error: ", "error"}, {"error: ", "error"}, {"warning: ", "warning"},
		   {"note: ", "note"}};
	for (size_t i = 0; i < sizeof sev / sizeof sev[0]; i++) {
		size_t wl = strlen(sev[i].word);
		if ((size_t)(end - p) >= wl && memcmp(p, sev[i].word, wl) == 0) {
			add_diag(arr, line + shift, col, sev[i].severity, p + wl,
				 (size_t)(end - p - (long)wl));
			return;
		}
	}
}

/* "main.sh: line N: message" (bash -n). */
static void parse_bash_line(cJSON *arr, const char *s, const char *end, const char *file,
			    long shift)
{
	static const char mid[] = ": line ";
	const char *m = memmem(s, (size_t)(end - s), mid, sizeof mid - 1);
	if (!m || !is_our_file(s, (size_t)(m - s), file))
		return;
	const char *p = m + sizeof mid - 1;
	long line = read_num(&p, end);
	if (line < 0 || end - p < 2 || p[0] != ':' || p[1] != ' ')
		return;
	add_diag(arr, line + shift, 0, "error", p + 2, (size_t)(end - p - 2));
}

cJSON *ai_diag_parse(const char *language, const char *output, long first_line)
{
	cJSON *arr = cJSON_CreateArray();
	const struct checker *ck = find_checker(language);
	if (!arr || !ck || !output)
		return arr;
	long shift = first_line > 1 ? first_line - 1 : 0;
	long node_line = -1, node_col = 0; /* node: "file:N", the code, a caret, "XError: msg" */
	const char *s = output;
	while (*s) {
		const char *end = strchr(s, '\n');
		if (!end)
			end = s + strlen(s);
		if (ck->style == DIAG_GCC) {
			parse_gcc_line(arr, s, end, ck->file, shift);
		} else if (ck->style == DIAG_BASH) {
			parse_bash_line(arr, s, end, ck->file, shift);
		} else {
			const char *colon = NULL;
			for (const char *q = s; q < end; q++)
				if (*q == ':')
					colon = q;
			const char *p = colon ? colon + 1 : NULL;
			long n = p ? read_num(&p, end) : -1;
			size_t blank = strspn(s, " \t");
			if (colon && n > 0 && (p == end || *p == '\r') &&
			    is_our_file(s, (size_t)(colon - s), ck->file)) {
				node_line = n;
				node_col = 0;
			} else if (node_line > 0 && s + blank < end && s[blank] == '^') {
				node_col = (long)blank + 1;
			} else if (node_line > 0) {
				const char *e = memmem(s, (size_t)(end - s), "Error: ", 7);
				int word = e != NULL;
				for (const char *q = s; word && q < e; q++)
					if (!((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z')))
						word = 0;
				if (word) {
					add_diag(arr, node_line + shift, node_col, "error", s,
						 (size_t)(end - s));
					node_line = -1;
				}
			}
		}
		s = *end ? end + 1 : end;
	}
	return arr;
}

/* The local provider's text: the label, the checker, then one line per diagnostic. */
static char *local_text(const char *label, const cJSON *diags, const char *note,
			const char *raw, size_t raw_len)
{
	struct buf b;
	buf_init(&b, AI_TEXT_MAX + 1024);
	int rc = buf_printf(&b, "%s\nChecked with: %s\n\n", prompts_local_label, label);
	const cJSON *d;
	cJSON_ArrayForEach(d, diags)
	{
		const cJSON *col = cJSON_GetObjectItemCaseSensitive(d, "column");
		rc |= buf_printf(&b, "line %ld", (long)cJSON_GetNumberValue(cJSON_GetObjectItem(d, "line")));
		if (cJSON_IsNumber(col))
			rc |= buf_printf(&b, ", column %ld", (long)col->valuedouble);
		rc |= buf_printf(&b, ": %s: %s\n", str_field(d, "severity"), str_field(d, "message"));
	}
	if (note)
		rc |= buf_printf(&b, "%s\n", note);
	if (raw_len) {
		char *t = ai_clean_text(raw, raw_len, AI_CHECKER_OUTPUT_SHOWN);
		rc |= t ? buf_printf(&b, "The checker said:\n%s\n", t) : -1;
		free(t);
	}
	if (rc) {
		buf_free(&b);
		return NULL;
	}
	return buf_detach(&b);
}

static cJSON *local_result(const struct ai_deps *d, const struct ai_request *rq,
			   const volatile sig_atomic_t *cancel, char *err, size_t errlen)
{
	const struct checker *ck = find_checker(rq->language);
	const struct runtime *rt = ck && d->rts ? runtimes_find(d->rts, ck->language, NULL) : NULL;
	cJSON *diags = cJSON_CreateArray(), *res = NULL;
	char *text = NULL;
	struct sandbox_result sr;
	memset(&sr, 0, sizeof sr);
	const char *note = NULL, *label = ck ? ck->label : "nothing";
	struct buf out;
	buf_init(&out, 0);
	if (!ck || !rt) {
		note = "There is no checker for this language on this server.";
	} else if (!d->sb) {
		note = "The sandbox that runs checkers is not available on this worker.";
	} else {
		/* the checker as a one-step runtime: its argv, our source file name (the
		 * sandbox only reads the argv strings) */
		struct runtime chk;
		memset(&chk, 0, sizeof chk);
		snprintf(chk.language, sizeof chk.language, "%s", rt->language);
		snprintf(chk.version, sizeof chk.version, "%s", rt->version);
		snprintf(chk.file, sizeof chk.file, "%s", ck->file);
		chk.run[0] = (char *)rt->binary;
		for (size_t i = 0; ck->args[i]; i++)
			chk.run[i + 1] = (char *)ck->args[i];
		struct sandbox_limits lim;
		if (d->lim)
			lim = *d->lim;
		else
			sandbox_limits_default(&lim);
		lim.run_ms = lim.compile_ms;
		lim.cpu_s = (lim.compile_ms + 999) / 1000;
		struct sandbox_request sreq = {.code = rq->code, .code_len = rq->code_len};
		if (sandbox_run(d->sb, &chk, &sreq, &lim, cancel, &sr, err, errlen) < 0)
			goto out;
		if (sr.status == SANDBOX_CANCELLED) {
			errbuf_set(err, errlen, "the worker is shutting down");
			goto out;
		}
		if (buf_append(&out, sr.run.out.data ? sr.run.out.data : "", sr.run.out.len) < 0 ||
		    buf_append(&out, sr.run.err.data ? sr.run.err.data : "", sr.run.err.len) < 0) {
			errbuf_set(err, errlen, "out of memory");
			goto out;
		}
		cJSON_Delete(diags);
		diags = ai_diag_parse(ck->language, out.data ? out.data : "", rq->first_line);
		if (sr.status != SANDBOX_OK)
			note = "The checker was stopped before it finished (a limit of the sandbox).";
		else if (cJSON_GetArraySize(diags) == 0 && sr.run.exit_code == 0 && !sr.run.signal)
			note = "The checker found no problems.";
	}
	int show_raw = ck && rt && d->sb && cJSON_GetArraySize(diags) == 0 && !note;
	text = local_text(label, diags, note, show_raw ? out.data : NULL, show_raw ? out.len : 0);
	res = cJSON_CreateObject();
	if (!text || !res || !diags) {
		cJSON_Delete(res);
		res = NULL;
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	cJSON_AddStringToObject(res, "kind", rq->kind);
	cJSON_AddStringToObject(res, "provider", "local");
	cJSON_AddStringToObject(res, "checker", label);
	cJSON_AddStringToObject(res, "text", text);
	cJSON_AddItemToObject(res, "diagnostics", diags);
	diags = NULL;
out:
	cJSON_Delete(diags);
	free(text);
	buf_free(&out);
	sandbox_result_free(&sr);
	return res;
}

/* ---- the job ---------------------------------------------------------------------------- */

int ai_deps_init(struct ai_deps *d, const struct sandbox *sb, const struct runtimes *rts,
		 const struct sandbox_limits *lim, char *err, size_t errlen)
{
	struct aicfg cfg;
	memset(d, 0, sizeof *d);
	d->sb = sb;
	d->rts = rts;
	d->lim = lim;
	if (aicfg_load(&cfg, err, errlen) < 0)
		return -1;
	if (strpbrk(cfg.api_key, "\r\n")) {
		errbuf_set(err, errlen, "AI_API_KEY must be one line");
		return -1;
	}
	return rds_parse_url(getenv("REDIS_URL"), &d->redis, err, errlen);
}

/* The cache keys of a request: the shared answer, and the scope's pending and asked marks
 * (the unscoped pending mark of jobs queued before scopes). */
struct ai_keys {
	struct rkey cache, pending, asked;
};

static void keys_of(const struct ai_request *rq, struct ai_keys *k)
{
	k->cache = rkey1(RK_AI_CACHE, rq->cache_key);
	if (rq->scope) {
		k->pending = rkey2(RK_ROOM_AI_PENDING, rq->scope, rq->cache_key);
		k->asked = rkey2(RK_ROOM_AI_ASKED, rq->scope, rq->cache_key);
	} else {
		k->pending = rkey1(RK_AI_PENDING_UNSCOPED, rq->cache_key);
		k->asked.s[0] = '\0';
	}
}

/* Stores the answer (entry: the answer with its provider time, when there is one), marks
 * the scope as having asked (when it got an answer) and clears the job's pending mark, in
 * one step. */
static void finish(redisContext *r, const struct ai_request *rq, const char *job_id,
		   const char *entry, int answered)
{
	if (!r || !rq->cache_key)
		return;
	struct ai_keys k;
	keys_of(rq, &k);
	char ttl[16];
	snprintf(ttl, sizeof ttl, "%d", AICFG_CACHE_TTL_S);
	const char *args[] = {k.cache.s, k.asked.s,	     k.pending.s,	  entry ? entry : "",
			      ttl,	 answered ? "1" : "0", job_id ? job_id : ""};
	char err[256];
	redisReply *rep = rds_script(r, &rs_ai_finish, 3, 7, args, NULL);
	if (rds_reply_failed(r, rep, err, sizeof err)) {
		log_warn("ai: could not store the answer of job %s: %s", job_id ? job_id : "?", err);
		return;
	}
	freeReplyObject(rep);
}

/* The shared answer cached under the request's key, or NULL: asked by another scope (or
 * a job delivered twice). It is given out as a fresh answer (cached false, without the
 * stored provider time), and *provider_ms says how long the provider took to make it.
 * Caller frees with free(). */
static char *cached_answer(redisContext *r, const struct ai_request *rq, long long *provider_ms)
{
	*provider_ms = 0;
	if (!r || !rq->cache_key)
		return NULL;
	struct rkey ck = rkey1(RK_AI_CACHE, rq->cache_key);
	redisReply *rep = redisCommand(r, "GET %s", ck.s);
	cJSON *o = rep && rep->type == REDIS_REPLY_STRING ? cJSON_Parse(rep->str) : NULL;
	if (rep)
		freeReplyObject(rep);
	char *s = NULL;
	const cJSON *ms = cJSON_GetObjectItemCaseSensitive(o, AICFG_CACHE_PROVIDER_MS);
	if (cJSON_IsObject(o) && cJSON_IsNumber(ms)) {
		*provider_ms = ms->valuedouble > 0 && ms->valuedouble < 3600e3
				       ? (long long)ms->valuedouble
				       : 0;
		cJSON_DeleteItemFromObjectCaseSensitive(o, AICFG_CACHE_PROVIDER_MS);
		cJSON_DeleteItemFromObjectCaseSensitive(o, "cached");
		cJSON_AddFalseToObject(o, "cached");
		s = cJSON_PrintUnformatted(o);
	}
	cJSON_Delete(o);
	return s;
}

/* The cache entry for a fresh answer: the answer and how long the provider took. Caller
 * frees; NULL when out of memory (the answer is then not cached). */
static char *cache_entry(const cJSON *res, long long provider_ms)
{
	cJSON *e = cJSON_Duplicate(res, 1);
	char *s = NULL;
	if (e && cJSON_AddNumberToObject(e, AICFG_CACHE_PROVIDER_MS, (double)provider_ms))
		s = cJSON_PrintUnformatted(e);
	cJSON_Delete(e);
	return s;
}

enum ai_status ai_job_run(const struct ai_deps *d, redisContext *r, const char *job_id,
			  const char *request_json, const volatile sig_atomic_t *cancel,
			  char **result_json, char *err, size_t errlen)
{
	struct ai_request rq;
	struct aicfg cfg;
	cJSON *res = NULL;
	char *text = NULL, *entry = NULL;
	int cut = 0, answered = 0;
	long long provider_ms = 0, t0 = clock_mono_ms();
	enum ai_status st = AI_FAILED;
	*result_json = NULL;
	if (ai_request_parse(request_json, &rq, err, errlen) < 0)
		return AI_FAILED;
	if ((*result_json = cached_answer(r, &rq, &provider_ms)) != NULL) {
		/* another scope's answer: no provider call, but no sooner than the call that
		 * made it took, so neither the answer nor its timing tells that anyone asked */
		nap(cancel, (long)(provider_ms - (clock_mono_ms() - t0)));
		if (cancelled(cancel)) {
			free(*result_json);
			*result_json = NULL;
			ai_request_free(&rq);
			return AI_CANCELLED; /* the mark stays: the job runs again */
		}
		st = AI_OK;
		answered = 1;
		goto out;
	}
	if (aicfg_load(&cfg, err, errlen) < 0)
		goto out;
	long long call_start = clock_mono_ms();
	if (rq.provider == AICFG_LOCAL) {
		res = local_result(d, &rq, cancel, err, errlen);
	} else if (openai_call(cancel, &cfg, &rq, &text, &cut, err, errlen) == 0) {
		res = cJSON_CreateObject();
		cJSON_AddStringToObject(res, "kind", rq.kind);
		cJSON_AddStringToObject(res, "provider", "openai");
		cJSON_AddStringToObject(res, "model", rq.model);
		cJSON_AddStringToObject(res, "text", text);
		if (cut)
			cJSON_AddTrueToObject(res, "truncated");
	}
	provider_ms = clock_mono_ms() - call_start;
	if (!res) {
		if (cancelled(cancel)) {
			free(*result_json);
			*result_json = NULL;
			ai_request_free(&rq);
			return AI_CANCELLED; /* the mark stays: the job runs again */
		}
		goto out;
	}
	cJSON_AddFalseToObject(res, "cached");
	*result_json = cJSON_PrintUnformatted(res);
	if (!*result_json) {
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	st = AI_OK;
	answered = 1;
	entry = cache_entry(res, provider_ms);
out:
	finish(r, &rq, job_id, entry, answered);
	cJSON_Delete(res);
	free(text);
	free(entry);
	ai_request_free(&rq);
	return st;
}

enum queue_outcome ai_queue_run(void *ctx, const struct queue_job *job,
				const volatile sig_atomic_t *cancel, char **result_json, char *err,
				size_t errlen)
{
	const struct ai_deps *d = ctx;
	char rerr[256];
	/* a connection of its own: queue handlers get none, and AI jobs are few and slow */
	redisContext *r = rds_connect(&d->redis, 2000, rerr, sizeof rerr);
	if (!r)
		log_warn("ai: job %s runs without the cache: %s", job->id, rerr);
	enum ai_status st =
		ai_job_run(d, r, job->id, job->request, cancel, result_json, err, errlen);
	if (r)
		redisFree(r);
	return st == AI_OK ? QUEUE_FINISHED : st == AI_CANCELLED ? QUEUE_REQUEUE : QUEUE_FAILED;
}

char *ai_event_data(const struct queue_job *job, const char *status, const char *result_json,
		    const char *error)
{
	char kind[16];
	ai_request_kind(job->request, kind, sizeof kind);
	return queue_event_json_kind(job->id, kind, status, result_json, error);
}

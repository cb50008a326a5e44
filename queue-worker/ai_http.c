/* ai_http: the call to an OpenAI-compatible provider (see ai_openai.h): one POST with
 * libcurl, bounded in time and size and stopped when the job is cancelled, retried with
 * lib/backoff.h (or after the provider's Retry-After) while ai_openai_map() (an answer) or
 * ai_openai_transport() (a transfer that failed) says another attempt may help. */
#include "ai_openai.h"

#include "backoff.h"
#include "buf.h"
#include "clock.h"
#include "errbuf.h"
#include "log.h"
#include "url.h"
#include "worker_metrics.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define AI_CONNECT_TIMEOUT_MS 10000
/* Provider retries: lib/backoff.h waits a random time in [d/2, d], d doubling from
 * AI_BACKOFF_FIRST_MS up to AI_BACKOFF_MAX_MS: the first retry comes after 375 to 750 ms,
 * never sooner than when the waits were 500 ms ± 25 % (doubling up to 8 s ± 25 %), and
 * no wait is longer than that scheme's longest, 10 s. */
#define AI_BACKOFF_FIRST_MS 750
#define AI_BACKOFF_MAX_MS 10000
#define AI_SLEEP_SLICE_MS 100	/* how soon a cancel ends a wait between attempts */

static int cancelled(const volatile sig_atomic_t *cancel)
{
	return cancel && *cancel;
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

/* The request's headers; NULL when out of memory. */
static struct curl_slist *request_headers(const struct aicfg *cfg)
{
	char auth[1024];
	const char *lines[4] = {"Content-Type: application/json", "Accept: application/json",
				"Expect:", NULL};
	if (cfg->api_key[0]) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", cfg->api_key);
		lines[3] = auth;
	}
	struct curl_slist *h = NULL;
	for (size_t i = 0; i < 4 && lines[i]; i++) {
		struct curl_slist *more = curl_slist_append(h, lines[i]);
		if (!more) {
			curl_slist_free_all(h);
			return NULL;
		}
		h = more;
	}
	return h;
}

/* One POST of body to url, its answer mapped by ai_openai_map() (or ai_openai_transport());
 * a failed transfer is logged with log_url, url without its secrets. */
static enum ai_call post_once(const struct aicfg *cfg, const char *url, const char *log_url,
			      const char *body, const volatile sig_atomic_t *cancel, char **text,
			      int *cut, long *wait_ms, char *err, size_t errlen)
{
	char curl_err[CURL_ERROR_SIZE] = "";
	struct http_answer ans = {.cancel = cancel};
	long status = 0;
	*text = NULL;
	*cut = 0;
	*wait_ms = -1;
	CURL *cu = curl_easy_init();
	struct curl_slist *h = cu ? request_headers(cfg) : NULL;
	if (!cu || !h) {
		curl_easy_cleanup(cu);
		errbuf_set(err, errlen, "out of memory");
		return AI_CALL_FAIL;
	}
	buf_init(&ans.body, AI_RESPONSE_MAX);
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
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, &ans);
	curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(cu, CURLOPT_HEADERDATA, &ans);
	curl_easy_setopt(cu, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(cu, CURLOPT_XFERINFODATA, &ans);
	curl_easy_setopt(cu, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(cu, CURLOPT_ERRORBUFFER, curl_err);
	CURLcode rc = curl_easy_perform(cu);
	if (curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
		status = 0;
	enum ai_call o;
	if (rc != CURLE_OK) {
		curl_off_t announced = -1;
		if (curl_easy_getinfo(cu, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced) != CURLE_OK)
			announced = -1;
		o = ai_openai_transport(rc, status, (long long)ans.body.len, (long long)announced,
					cfg->timeout_ms, err, errlen);
		/* the URL and curl's own words (they name the host) for the operator only */
		if (rc != CURLE_ABORTED_BY_CALLBACK)
			log_warn("ai: POST %s failed: %s", log_url,
				 curl_err[0] ? curl_err : curl_easy_strerror(rc));
	} else {
		o = ai_openai_map(status, ans.body.data, ans.body.len, ans.retry_after,
				  (long long)time(NULL), text, cut, wait_ms, err, errlen);
	}
	/* every request, retries too: what the provider may have billed (docs/OPERATIONS.md) */
	metric_inc(&worker_metrics[WM_AI_REQUESTS], ai_openai_spent(rc == CURLE_OK, status, *cut),
		   0);
	buf_free(&ans.body);
	curl_slist_free_all(h);
	curl_easy_cleanup(cu);
	return o;
}

/* The end of err, where more of the message goes, and the room left there. */
static char *err_end(char *err, size_t errlen, size_t *room)
{
	size_t l = strnlen(err, errlen);
	*room = errlen - l;
	return err + l;
}

int ai_openai_call(const volatile sig_atomic_t *cancel, const struct aicfg *cfg,
		   const struct ai_request *rq, char **text, int *cut, char *err, size_t errlen)
{
	if (strpbrk(cfg->api_key, "\r\n")) {
		errbuf_set(err, errlen, "AI_API_KEY must be one line");
		return -1;
	}
	char *url = ai_completions_url(cfg->base_url, err, errlen);
	if (!url)
		return -1;
	char log_url[512];
	url_for_log(url, "(AI_BASE_URL, not shown)", log_url, sizeof log_url);
	char *body = ai_openai_body(rq);
	if (!body) {
		free(url);
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	struct backoff bo = {.first_ms = AI_BACKOFF_FIRST_MS, .max_ms = AI_BACKOFF_MAX_MS};
	int rc = -1;
	for (int attempt = 1; attempt <= AI_ATTEMPTS; attempt++) {
		long wait = -1;
		enum ai_call o =
			post_once(cfg, url, log_url, body, cancel, text, cut, &wait, err, errlen);
		if (o == AI_CALL_OK)
			rc = 0;
		if (o != AI_CALL_RETRY || cancelled(cancel))
			break;
		if (wait > (long)AI_RETRY_AFTER_MAX_S * 1000) {
			size_t room;
			char *end = err_end(err, errlen, &room);
			if (room)
				snprintf(end, room, " (it asks to wait %ld s)", wait / 1000);
			break;
		}
		if (attempt == AI_ATTEMPTS) {
			size_t room;
			char *end = err_end(err, errlen, &room);
			if (room)
				snprintf(end, room, " (%d attempts)", AI_ATTEMPTS);
			break;
		}
		/* counted on every retry, so the back-off grows past a Retry-After too */
		long ms = backoff_next(&bo);
		if (wait >= 0)
			ms = wait;
		log_info("ai: attempt %d failed (%s); retrying in %ld ms", attempt, err, ms);
		clock_sleep_watching(ms, AI_SLEEP_SLICE_MS, cancel);
	}
	free(body);
	free(url);
	return rc;
}

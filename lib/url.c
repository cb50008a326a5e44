/* url: see url.h. */
#include "url.h"

#include "errbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

CURLU *url_parse(const char *url)
{
	CURLU *h = curl_url();
	if (h && curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK) {
		curl_url_cleanup(h);
		h = NULL;
	}
	return h;
}

char *url_string(CURLU *h)
{
	char *u = NULL;
	if (curl_url_get(h, CURLUPART_URL, &u, 0) != CURLUE_OK)
		return NULL;
	char *s = strdup(u);
	curl_free(u);
	return s;
}

/* h's path with tail after it (h is changed), as url_with_path says. */
static char *join_path(CURLU *h, const char *tail, int *bad)
{
	char *path = NULL, *joined = NULL, *out = NULL;
	*bad = 0;
	if (!h || curl_url_get(h, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		*bad = 1;
		goto out;
	}
	size_t n = strlen(path), t = strlen(tail);
	while (n > 0 && path[n - 1] == '/')
		n--;
	joined = malloc(n + t + 1);
	if (!joined)
		goto out;
	memcpy(joined, path, n);
	memcpy(joined + n, tail, t + 1);
	CURLUcode uc = curl_url_set(h, CURLUPART_PATH, joined, 0);
	if (uc == CURLUE_OK)
		uc = curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0);
	if (uc == CURLUE_OK)
		out = url_string(h); /* NULL: out of memory */
	else
		*bad = uc != CURLUE_OUT_OF_MEMORY;
out:
	free(joined);
	curl_free(path);
	return out;
}

/* The one message for a setting (name: "PISTON_URL") that is no URL requests can be made to.
 * shown: the URL as url_for_log shows it (url_http_check, whose message tells the operator
 * what was read); NULL: nothing of it (url_with_path, whose message may become a job's
 * error). */
static void not_http_url(char *err, size_t errlen, const char *name, const char *shown)
{
	if (shown)
		errbuf_set(err, errlen, "%s must be an http:// or https:// URL (got %s)", name, shown);
	else
		errbuf_set(err, errlen, "%s must be an http:// or https:// URL", name);
}

char *url_with_path(const char *base, const char *tail, const char *name, char *err,
		    size_t errlen)
{
	int bad = 0;
	CURLU *h = url_parse(base);
	char *out = join_path(h, tail, &bad);
	curl_url_cleanup(h);
	if (!out && bad)
		not_http_url(err, errlen, name, NULL);
	else if (!out)
		errbuf_set(err, errlen, "out of memory");
	return out;
}

int url_http_check(const char *url, const char *name, char *err, size_t errlen)
{
	CURLU *h = url_parse(url);
	char *scheme = NULL, *joined = NULL;
	int bad = 0, ok = h && curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
			  (!strcmp(scheme, "http") || !strcmp(scheme, "https")) &&
			  (joined = join_path(h, "/x", &bad)) != NULL;
	curl_free(scheme);
	curl_url_cleanup(h);
	free(joined);
	if (ok)
		return 0;
	char shown[256];
	url_for_log(url, "a text libcurl does not read as a URL", shown, sizeof shown);
	not_http_url(err, errlen, name, shown);
	return -1;
}

void url_for_log(const char *url, const char *unreadable, char *out, size_t cap)
{
	if (cap == 0)
		return;
	CURLU *h = url_parse(url);
	char *s = NULL;
	if (h && curl_url_set(h, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
	    curl_url_set(h, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
	    curl_url_set(h, CURLUPART_OPTIONS, NULL, 0) == CURLUE_OK &&
	    curl_url_set(h, CURLUPART_QUERY, NULL, 0) == CURLUE_OK &&
	    curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0) == CURLUE_OK)
		s = url_string(h);
	snprintf(out, cap, "%s", s ? s : unreadable);
	free(s);
	curl_url_cleanup(h);
}

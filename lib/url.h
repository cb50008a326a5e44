/* url: URLs read by libcurl's own parser (the one requests are made with), and a URL made
 * fit for a log line. */
#ifndef CC_URL_H
#define CC_URL_H

#include <curl/curl.h>
#include <stddef.h>

/* url parsed; NULL when it is not a URL libcurl takes, or out of memory (free the handle
 * with curl_url_cleanup()). */
CURLU *url_parse(const char *url);

/* h's whole URL as a string of ours (caller frees with free()); NULL when out of memory. */
char *url_string(CURLU *h);

/* base with tail ("/chat/completions") after its path, less the path's trailing slashes,
 * and before its query (a key an operator put there stays a query parameter); a fragment
 * is dropped (it is never sent). Caller frees with free(); NULL when base is not a URL
 * libcurl takes or out of memory, with a message in err: url_http_check's words ("PISTON_URL
 * must be an http:// or https:// URL"), naming base by its setting's name and showing
 * nothing of it (it may hold a secret, and the message may become a job's error). */
char *url_with_path(const char *base, const char *tail, const char *name, char *err,
		    size_t errlen);

/* Is url (the setting called name: "PISTON_URL") one requests can be made to: an http or
 * https URL that libcurl reads, with room for a path after its own? 0, or -1 with a message
 * in err for the operator's log, "PISTON_URL must be an http:// or https:// URL (got …)",
 * that shows url only as url_for_log does (it may hold a secret). */
int url_http_check(const char *url, const char *name, char *err, size_t errlen);

/* url for a log line: without its userinfo (user:password@), login options, query and
 * fragment, the parts where an operator may have put a secret. A url libcurl cannot read is
 * not shown at all: out gets unreadable instead (a name for it, e.g. "(AI_BASE_URL, not
 * shown)"). Always NUL-terminated in out[cap] (cap > 0). */
void url_for_log(const char *url, const char *unreadable, char *out, size_t cap);

#endif

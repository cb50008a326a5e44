#include "cors.h"

#include <stdio.h>
#include <string.h>

#include "errbuf.h"
#include "origin.h"

int cors_origin_parse(const char *in, char *out, size_t cap, char *err, size_t errlen)
{
	static const char usage[] = "write * or one origin such as https://app.example.com:8443";
	if (in && strcmp(in, "*") == 0) {
		if (cap >= 2) {
			memcpy(out, "*", 2);
			return 0;
		}
		errbuf_set(err, errlen, "does not fit: %s", usage);
		return -1;
	}
	char why[160];
	if (origin_parse(in, out, cap, why, sizeof why) < 0) {
		errbuf_set(err, errlen, "%s: %s", why, usage);
		return -1;
	}
	return 0;
}

int cors_headers(struct buf *out, const char *origin)
{
	/* A page of another origin reads only the CORS-safelisted response headers (Fetch
	 * Standard, "CORS-safelisted response-header name") and those the answer names: of the
	 * broker's own, a 401's challenge and the wait of a 429 or 503 (server.c conn_error) */
	return buf_printf(out,
			  "Access-Control-Allow-Origin: %s\r\n"
			  "Access-Control-Expose-Headers: WWW-Authenticate, Retry-After\r\n"
			  "X-Content-Type-Options: nosniff\r\n"
			  "Referrer-Policy: no-referrer\r\n",
			  origin);
}

int cors_preflight(struct buf *out, const char *common, int keep)
{
	/* RFC 9110 §15.3.5: a 204 has no body and no Content-Length */
	return buf_printf(out,
			  "HTTP/1.1 204 No Content\r\n"
			  "%s"
			  "Access-Control-Allow-Methods: GET\r\n"
			  "Access-Control-Allow-Headers: authorization, last-event-id\r\n"
			  "Access-Control-Max-Age: 600\r\n"
			  "%s"
			  "\r\n",
			  common, keep ? "" : "Connection: close\r\n");
}

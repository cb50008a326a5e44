#include "cors.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "errbuf.h"

/* RFC 3986 §3.2.2 reg-name, as DNS allows it: letters, digits, '-' and '.' */
static int host_char(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.';
}

/* the inside of "[...]": hex digits, ':' and '.' (an embedded IPv4), at least two colons */
static int ipv6_valid(const char *s, size_t n)
{
	size_t colons = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == ':')
			colons++;
		else if (!isxdigit(c) && c != '.')
			return 0;
	}
	return colons >= 2 && n <= 45;
}

int cors_origin_parse(const char *in, char *out, size_t cap, char *err, size_t errlen)
{
	static const char usage[] = "write * or one origin such as https://app.example.com:8443";
	if (!in || !*in) {
		errbuf_set(err, errlen, "is empty: %s", usage);
		return -1;
	}
	if (strcmp(in, "*") == 0) {
		if (cap < 2)
			goto too_long;
		memcpy(out, "*", 2);
		return 0;
	}
	size_t len = strlen(in);
	if (len > CORS_ORIGIN_MAX) {
		errbuf_set(err, errlen, "is longer than %d characters: %s", CORS_ORIGIN_MAX, usage);
		return -1;
	}
	const char *sep = strstr(in, "://");
	size_t slen = sep ? (size_t)(sep - in) : 0;
	int https;
	if (sep && slen == 4 && strncasecmp(in, "http", 4) == 0)
		https = 0;
	else if (sep && slen == 5 && strncasecmp(in, "https", 5) == 0)
		https = 1;
	else {
		errbuf_set(err, errlen, "\"%.60s\" is not * and does not start with http:// or "
			   "https://: %s", in, usage);
		return -1;
	}
	const char *host = sep + 3;
	const char *p = host;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		if (!close || !ipv6_valid(p + 1, (size_t)(close - p - 1))) {
			errbuf_set(err, errlen, "has a malformed IPv6 address: %s", usage);
			return -1;
		}
		p = close + 1;
	} else {
		while (host_char((unsigned char)*p))
			p++;
		size_t hlen = (size_t)(p - host);
		if (hlen == 0 || hlen > 253 || host[0] == '.' || host[0] == '-' ||
		    host[hlen - 1] == '.' || host[hlen - 1] == '-' ||
		    memmem(host, hlen, "..", 2) != NULL) {
			errbuf_set(err, errlen, "has no valid host name after the scheme: %s", usage);
			return -1;
		}
	}
	size_t hostlen = (size_t)(p - host);
	long port = -1;
	if (*p == ':') {
		const char *d = ++p;
		port = 0;
		while (isdigit((unsigned char)*p) && port <= 65535)
			port = port * 10 + (*p++ - '0');
		if (p == d || *d == '0' || port < 1 || port > 65535 || isdigit((unsigned char)*p)) {
			errbuf_set(err, errlen, "has a port that is not a number from 1 to 65535: %s",
				   usage);
			return -1;
		}
	}
	if (*p != '\0') {
		errbuf_set(err, errlen, "has more than an origin (a path, a query, a '/' or "
			   "spaces after the host and port): %s", usage);
		return -1;
	}
	/* the Origin header's form (RFC 6454 §6.2): lower case, no default port */
	if (port == (https ? 443 : 80))
		port = -1;
	int n = snprintf(out, cap, "%s://", https ? "https" : "http");
	if (n < 0 || (size_t)n + hostlen + 8 > cap)
		goto too_long;
	for (size_t i = 0; i < hostlen; i++)
		out[n++] = (char)tolower((unsigned char)host[i]);
	out[n] = '\0';
	if (port > 0)
		snprintf(out + n, cap - (size_t)n, ":%ld", port);
	return 0;
too_long:
	errbuf_set(err, errlen, "does not fit: %s", usage);
	return -1;
}

int cors_headers(struct buf *out, const char *origin)
{
	return buf_printf(out,
			  "Access-Control-Allow-Origin: %s\r\n"
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

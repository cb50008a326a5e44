#include "origin.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "errbuf.h"

/* a DNS name's characters: letters, digits, '-' and '.' */
static int name_char(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.';
}

/* the inside of "[...]": hex digits, ':' and '.' (an embedded IPv4), at least two colons */
static int ipv6_ok(const char *s, size_t n)
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

enum hp_error { HP_OK, HP_HOST, HP_V6, HP_PORT };

/* The host and port at the start of s; what follows them in *rest. */
static enum hp_error host_port(const char *s, size_t *hostlen, long *port, const char **rest)
{
	const char *p = s;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		if (!close || !ipv6_ok(p + 1, (size_t)(close - p - 1)))
			return HP_V6;
		p = close + 1;
	} else {
		while (name_char((unsigned char)*p))
			p++;
		size_t n = (size_t)(p - s);
		if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.' ||
		    s[n - 1] == '-' || memmem(s, n, "..", 2) != NULL)
			return HP_HOST;
	}
	*hostlen = (size_t)(p - s);
	*port = -1;
	if (*p == ':') {
		const char *d = ++p;
		long v = 0;
		while (isdigit((unsigned char)*p) && v <= 65535)
			v = v * 10 + (*p++ - '0');
		if (p == d || *d == '0' || v < 1 || v > 65535 || isdigit((unsigned char)*p))
			return HP_PORT;
		*port = v;
	}
	*rest = p;
	return HP_OK;
}

int origin_host_port(const char *s, size_t *hostlen, long *port)
{
	const char *rest;
	if (!s || strlen(s) > ORIGIN_MAX || host_port(s, hostlen, port, &rest) != HP_OK ||
	    *rest != '\0')
		return -1;
	return 0;
}

int origin_parse(const char *in, char *out, size_t cap, char *err, size_t errlen)
{
	if (!in || !*in) {
		errbuf_set(err, errlen, "is empty");
		return -1;
	}
	if (strlen(in) > ORIGIN_MAX) {
		errbuf_set(err, errlen, "is longer than %d characters", ORIGIN_MAX);
		return -1;
	}
	int https;
	const char *host;
	if (strncasecmp(in, "http://", 7) == 0) {
		https = 0;
		host = in + 7;
	} else if (strncasecmp(in, "https://", 8) == 0) {
		https = 1;
		host = in + 8;
	} else {
		errbuf_set(err, errlen, "\"%.60s\" does not start with http:// or https://", in);
		return -1;
	}
	size_t hostlen;
	long port;
	const char *rest = NULL;
	switch (host_port(host, &hostlen, &port, &rest)) {
	case HP_OK:
		break;
	case HP_V6:
		errbuf_set(err, errlen, "has a malformed IPv6 address");
		return -1;
	case HP_HOST:
		errbuf_set(err, errlen, "has no valid host name after the scheme");
		return -1;
	case HP_PORT:
	default:
		errbuf_set(err, errlen, "has a port that is not a number from 1 to 65535");
		return -1;
	}
	if (*rest != '\0') {
		errbuf_set(err, errlen, "has more than an origin (a path, a query, a '/' or spaces "
			   "after the host and port)");
		return -1;
	}
	if (port == (https ? 443 : 80))
		port = -1;
	int n = snprintf(out, cap, "%s://", https ? "https" : "http");
	if (n < 0 || (size_t)n + hostlen + 8 > cap) {
		errbuf_set(err, errlen, "does not fit in %zu bytes", cap);
		return -1;
	}
	for (size_t i = 0; i < hostlen; i++)
		out[n++] = (char)tolower((unsigned char)host[i]);
	out[n] = '\0';
	if (port > 0)
		snprintf(out + n, cap - (size_t)n, ":%ld", port);
	return 0;
}

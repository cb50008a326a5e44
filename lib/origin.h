/* origin: the grammar of a web origin ("scheme://host[:port]", RFC 6454) and of a Host
 * header's value, shared by the API (STREAM_ORIGIN, the Host a request came with) and the
 * broker (BROKER_ALLOW_ORIGIN), so both take and refuse the same strings.
 *
 * A host is a DNS name (letters, digits, '-' and '.', at most 253 characters, not starting
 * or ending with '.' or '-', no empty label), which covers IPv4 addresses, or an IPv6
 * address in brackets. A port is 1 to 65535 in decimal, without leading zeros. Written by
 * hand on purpose: a few lines of grammar, for which Debian has no library. */
#ifndef CC_ORIGIN_H
#define CC_ORIGIN_H

#include <stddef.h>

/* The longest origin taken: a scheme, "://", a DNS name (253) and a port. */
#define ORIGIN_MAX 300

/* s: a host, optionally ":port", and nothing else (a Host header's value). 0 with the
 * host's length (brackets included) in *hostlen and the port in *port (-1 when none);
 * -1 when s is anything else. */
int origin_host_port(const char *s, size_t *hostlen, long *port);

/* in: "http://" or "https://" (in any case), a host, an optional port and nothing after it
 * (no path, not even "/"). Written into out (cap bytes) the way a browser sends it in an
 * Origin header: scheme and host in lower case, the scheme's default port left out.
 * 0, or -1 with the reason in err (a phrase such as "has a path after the host"; the
 * caller says what it expected). */
int origin_parse(const char *in, char *out, size_t cap, char *err, size_t errlen);

#endif

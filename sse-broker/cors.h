/* cors: what the broker tells browsers about cross-origin reads (Fetch Standard, "CORS
 * protocol"), without sockets (docs/CONVENTIONS.md §5).
 *
 * Pages served by the front door may open their streams straight on the broker's port, a
 * different origin; every answer then carries Access-Control-Allow-Origin (and the security
 * headers the front door would have added), and a preflight (OPTIONS) is answered 204. The
 * allowed origin is `*` or one origin (BROKER_ALLOW_ORIGIN): streams are authorized by a
 * ticket or a bearer token, never by cookies, so any page may read what its token allows. */
#ifndef CC_BROKER_CORS_H
#define CC_BROKER_CORS_H

#include <stddef.h>

#include "buf.h"
#include "origin.h"

/* The longest origin taken (lib/origin.h). */
#define CORS_ORIGIN_MAX ORIGIN_MAX

/* Reads an allowed origin: "*", or one origin by lib/origin.h's grammar (http or https, a
 * host, an optional port, nothing after it), written into out (cap bytes) the way a browser
 * sends its Origin, which it must equal exactly: scheme and host lower-cased, the scheme's
 * default port left out. 0, or -1 with the reason in err (for people). */
int cors_origin_parse(const char *in, char *out, size_t cap, char *err, size_t errlen);

/* The header lines every answer carries (CRLF after each): the allowed origin, the headers
 * of ours its pages may read (Access-Control-Expose-Headers: WWW-Authenticate, Retry-After),
 * nosniff and the referrer policy. origin as cors_origin_parse() wrote it. 0 or -1 (out
 * full). */
int cors_headers(struct buf *out, const char *origin);

/* The whole answer to a preflight: 204 with the methods and request headers a stream may
 * use, the time a browser may keep the answer, and the common lines of cors_headers().
 * keep: the connection stays open for another request (else "Connection: close"). 0 or -1. */
int cors_preflight(struct buf *out, const char *common, int keep);

#endif

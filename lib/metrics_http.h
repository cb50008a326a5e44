/* metrics_http: the small HTTP listener that answers GET /metrics for the broker, the
 * worker and the snapshotter (the API answers through lighttpd, fcgi/).
 *
 * One thread with a blocking accept loop, one connection at a time: a scrape every few
 * seconds needs no more, and the program's own threads or event loop never wait for it. A
 * request head is read within METRICS_HTTP_TIMEOUT_MS and at most METRICS_HTTP_HEAD_MAX
 * bytes; GET /metrics (a query string is ignored) is answered 200 with what `collect`
 * writes, GET of any other path 404, another method 405, a malformed or too large head
 * 400 / 431. Every answer closes the connection. The thread blocks every signal: they stay
 * with the program's own handling. Bind it to a loopback address: nothing here
 * authenticates (docs/OPERATIONS.md). */
#ifndef CC_METRICS_HTTP_H
#define CC_METRICS_HTTP_H

#include <stddef.h>

#include "buf.h"

#define METRICS_HTTP_HEAD_MAX 4096
#define METRICS_HTTP_TIMEOUT_MS 2000
/* the largest body collect may write */
#define METRICS_HTTP_BODY_MAX (4u << 20)

/* Appends the exposition text to out; 0, or -1 for a 500. Runs on the listener's thread. */
typedef int (*metrics_collect_fn)(void *arg, struct buf *out);

struct metrics_http;

/* Listens on host (an IP address) and port (0: any free one) and starts the thread. NULL
 * with a message in err when the address cannot be bound. */
struct metrics_http *metrics_http_start(const char *host, int port, metrics_collect_fn collect,
					void *arg, char *err, size_t errlen);
/* The port it listens on. */
int metrics_http_port(const struct metrics_http *s);
/* Stops the thread (a scrape in progress finishes first) and frees everything. NULL is
 * fine. */
void metrics_http_stop(struct metrics_http *s);

/* What a request head (the bytes received so far) asks for: 0 when it is not complete yet,
 * 431 when no complete head fits in METRICS_HTTP_HEAD_MAX bytes, 400 when malformed, else
 * 200 (GET /metrics), 404 or 405. Pure: unit-tested. */
int metrics_http_classify(const char *p, size_t len);

#endif

/* api_metrics: what the API counts for operators (lib/metrics.h). Every API process maps
 * the same file (API_METRICS_FILE, lib/metrics_shm.h), so the numbers are those of all the
 * processes together, whichever one answers GET /metrics. That answer is given only to a
 * request the web server took on METRICS_PORT (lighttpd's or Apache's loopback listener,
 * see lighttpd.conf); docs/OPERATIONS.md "Metrics" lists the metrics. Without the file,
 * or with METRICS=off, every recording is a no-op. */
#ifndef CC_API_METRICS_H
#define CC_API_METRICS_H

#include "buf.h"
#include "store.h"

/* Builds the route labels from the route table and maps the file; 0, or -1 with a message
 * in err (the API then runs without metrics). */
int api_metrics_open(const char *path, char *err, size_t errlen);
void api_metrics_close(void);

/* A monotonic time in microseconds, for a request's latency; 0 when not recording. */
long long api_metrics_now_us(void);
/* One request answered: its route (-1: none matched), status and time. */
void api_metrics_request(int route, int status, long long us);
/* One commit attempt: committed or not, and the commits of others it raced with. */
void api_metrics_commit(int committed, int races);
/* One 503 of a store status (busy, a store down). */
void api_metrics_unavailable(enum store_status st);
/* An answer given because a room's stored operations are damaged: 0 a 500
 * document_damaged (a read, or a commit that needed the text), 1 a commit refused (503
 * document_unfoldable). */
void api_metrics_document_damaged(int commit);
/* Documents restored from PostgreSQL. */
void api_metrics_restores(int n);

#endif

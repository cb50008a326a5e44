/* broker_metrics: what the broker counts for operators (lib/metrics.h), served on its own
 * listener BROKER_METRICS_PORT (lib/metrics_http.h), never on the streams' port. The table
 * and the label values; docs/OPERATIONS.md "Metrics" says what each means. */
#ifndef CC_BROKER_METRICS_H
#define CC_BROKER_METRICS_H

#include "metrics.h"

enum broker_metric {
	BM_STREAMS_OPEN,     /* gauge {transport} */
	BM_STREAMS,	     /* counter {transport}: streams started */
	BM_EVENTS,	     /* counter {transport}: events written to clients */
	BM_DROPPED,	     /* counter {reason} */
	BM_RESYNCS,	     /* counter {reason}: resync events sent */
	BM_REDIS_RECONNECTS, /* counter */
	BM_RIGHTS_RECHECKS,  /* counter: streams (distinct subjects) asked about again */
	BM_GAPS,	     /* counter: streams caught up from the history after a lost message */
	BM_BATCHED,	     /* counter {transport}: events written in one call with the one before */
	BM_SEND_SUBMISSIONS, /* counter: io_uring submissions of stream sends */
	BM_SEND_BATCHED,     /* counter: stream sends made through those submissions */
	BM_N
};

/* transport label: the index is the server's enum route order */
enum bm_transport { BM_SSE, BM_LONGPOLL, BM_WS };

enum bm_drop {
	BM_DROP_SLOW,	      /* a live client's unsent output passed BROKER_CLIENT_BUFFER */
	BM_DROP_CATCHUP,      /* too many live events held during its catch-up */
	BM_DROP_REVOKED,      /* its rights were withdrawn (removed, room private, signed out) */
	BM_DROP_REDIS,	      /* Redis could not answer for it (catch-up or rights) */
	BM_DROP_FULL,	      /* refused at BROKER_MAX_CLIENTS */
	BM_DROP_ERROR,	      /* out of memory */
	BM_DROP_STALLED,      /* its socket took no byte for BROKER_WRITE_TIMEOUT_MS */
	BM_DROP_USER_FULL,    /* refused at BROKER_MAX_STREAMS_PER_USER (429) */
	BM_DROP_ADDRESS_FULL, /* refused at BROKER_MAX_HEADS_PER_ADDRESS (503) */
};

extern struct metric broker_metrics[BM_N];

/* Counts one event written to a client, and the resync (by its reason) it may be. */
struct room_event;
void broker_metrics_sent(enum bm_transport t, const struct room_event *ev);
/* The listener's collect function (metrics_http.h): the table as text. */
int broker_metrics_collect(void *arg, struct buf *out);

#endif

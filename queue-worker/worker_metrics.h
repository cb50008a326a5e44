/* worker_metrics: what the worker counts for operators (lib/metrics.h), served on
 * WORKER_METRICS_PORT by lib/metrics_http. The table, its label values and the recording
 * helpers the job code calls; docs/OPERATIONS.md "Metrics" says what each means. */
#ifndef CC_WORKER_METRICS_H
#define CC_WORKER_METRICS_H

#include "metrics.h"
#include "rds.h"

enum worker_metric {
	WM_JOBS,	    /* counter {kind, outcome} */
	WM_JOB_SECONDS,	    /* histogram {kind}: a handler's run time */
	WM_SANDBOX_SECONDS, /* histogram {step}: wall time of a sandbox step */
	WM_AI_CACHE,	    /* counter {result}: hit, miss */
	WM_AI_PROVIDER,	    /* histogram {provider, outcome}: a provider call's time */
	WM_AI_REQUESTS,	    /* counter {answer}: HTTP requests to the openai provider */
	WM_REDIS_RECONNECTS,
	WM_THREADS_BUSY,    /* gauge */
	WM_QUEUED,	    /* gauge, read from Redis at scrape time */
	WM_IN_FLIGHT,	    /* gauge, read from Redis at scrape time */
	WM_N
};

enum wm_outcome { WM_FINISHED, WM_FAILED, WM_REQUEUED, WM_STALE };
enum wm_step { WM_COMPILE, WM_RUN };
enum wm_cache { WM_HIT, WM_MISS };
enum wm_provider { WM_OPENAI, WM_LOCAL };
enum wm_call { WM_CALL_OK, WM_CALL_ERROR };

extern struct metric worker_metrics[WM_N];

/* One job's end: its kind ("execution", "ai", anything else counts as "other"). */
void worker_metrics_job(const char *kind, enum wm_outcome o);
void worker_metrics_job_time(const char *kind, long long ms);

/* The listener's collect function: reads the queue's depth from Redis (its own
 * connection, opened on demand, arg is a struct worker_scrape), then renders the table. */
struct worker_scrape {
	const struct rds_target *redis;
	struct rds *r; /* the listener thread's client; freed by worker_scrape_free */
};
int worker_metrics_collect(void *arg, struct buf *out);
void worker_scrape_free(struct worker_scrape *s);

#endif

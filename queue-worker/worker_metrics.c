#include "worker_metrics.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rkeys.h"

static const char *const kinds[] = {"execution", "ai", "other"};
static const char *const outcomes[] = {"finished", "failed", "requeued", "stale"};
static const char *const steps[] = {"compile", "run"};
static const char *const cache[] = {"hit", "miss"};
static const char *const providers[] = {"openai", "local"};
static const char *const calls[] = {"ok", "error"};
/* in the order of enum ai_spent (ai_openai.h) */
static const char *const answers[] = {"answered", "length", "lost", "refused", "unanswered"};

/* milliseconds, rendered in seconds */
static const long long job_ms[] = {10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000};
static const long long step_ms[] = {10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000};
static const long long provider_ms[] = {100, 250, 500, 1000, 2500, 5000, 10000, 20000, 60000};

#define KIND {"kind", kinds, 3}
#define MS(b) .bounds = b, .nbounds = sizeof b / sizeof b[0], .unit = 1000

struct metric worker_metrics[WM_N] = {
	[WM_JOBS] = {.name = "codecollab_worker_jobs_total",
		     .help = "Jobs this worker ended, by kind and outcome (stale: another worker "
			     "or the owner had moved the job on).",
		     .type = METRIC_COUNTER, .nlabels = 2,
		     .label = {KIND, {"outcome", outcomes, 4}}},
	[WM_JOB_SECONDS] = {.name = "codecollab_worker_job_seconds",
			    .help = "Time a job's handler ran, by kind.",
			    .type = METRIC_HISTOGRAM, .nlabels = 1, .label = {KIND}, MS(job_ms)},
	[WM_SANDBOX_SECONDS] = {.name = "codecollab_worker_sandbox_seconds",
				.help = "Wall time of a sandbox step, by step.",
				.type = METRIC_HISTOGRAM, .nlabels = 1,
				.label = {{"step", steps, 2}}, MS(step_ms)},
	[WM_AI_CACHE] = {.name = "codecollab_worker_ai_cache_total",
			 .help = "AI jobs answered from the shared cache (hit) or not (miss).",
			 .type = METRIC_COUNTER, .nlabels = 1, .label = {{"result", cache, 2}}},
	[WM_AI_PROVIDER] = {.name = "codecollab_worker_ai_provider_seconds",
			    .help = "Time an AI provider took to answer, by provider and outcome.",
			    .type = METRIC_HISTOGRAM, .nlabels = 2,
			    .label = {{"provider", providers, 2}, {"outcome", calls, 2}},
			    MS(provider_ms)},
	[WM_AI_REQUESTS] = {.name = "codecollab_worker_ai_provider_requests_total",
			    .help = "HTTP requests to the AI provider, retries included, by what came "
				    "back: a whole answer (answered, or length: cut at max_tokens), a "
				    "2xx whose body did not arrive whole (lost), another status "
				    "(refused), no answer (unanswered).",
			    .type = METRIC_COUNTER, .nlabels = 1, .label = {{"answer", answers, 5}}},
	[WM_REDIS_RECONNECTS] = {.name = "codecollab_worker_redis_reconnects_total",
				 .help = "Times a Redis connection of this worker was opened again "
					 "after it failed.",
				 .type = METRIC_COUNTER},
	[WM_THREADS_BUSY] = {.name = "codecollab_worker_threads_busy",
			     .help = "Job threads of this worker running a job now.",
			     .type = METRIC_GAUGE},
	[WM_QUEUED] = {.name = "codecollab_jobs_queued",
		       .help = "Jobs waiting in the rooms' lines, all workers together (read from "
			       "Redis when scraped).",
		       .type = METRIC_GAUGE},
	[WM_IN_FLIGHT] = {.name = "codecollab_jobs_in_flight",
			  .help = "Jobs dispatched to workers and not over, all workers together "
				  "(read from Redis when scraped).",
			  .type = METRIC_GAUGE},
};

static size_t kind_index(const char *kind)
{
	int i = metric_label_index(&worker_metrics[WM_JOBS].label[0], kind ? kind : "");
	return i < 0 || i == 2 ? 2 : (size_t)i;
}

void worker_metrics_job(const char *kind, enum wm_outcome o)
{
	metric_inc(&worker_metrics[WM_JOBS], kind_index(kind), o);
}

void worker_metrics_job_time(const char *kind, long long ms)
{
	metric_observe(&worker_metrics[WM_JOB_SECONDS], kind_index(kind), 0, ms);
}

/* The queue's depth from Redis; 0 or -1 (the connection is dropped, the gauges keep their
 * last values). */
static int read_depth(struct worker_scrape *s)
{
	char err[256];
	if (!s->r) {
		s->r = rds_new(s->redis, 1000);
		if (!s->r) {
			log_warn("metrics: out of memory");
			return -1;
		}
	}
	redisReply *rep = rds_cmd(s->r, rkey0(RK_FAIR_DEPTH), "GET %s", rkey0(RK_FAIR_DEPTH));
	if (rds_reply_failed(s->r, rep, err, sizeof err))
		goto fail;
	long long queued = rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : 0;
	freeReplyObject(rep);
	rep = rds_cmd(s->r, rkey0(RK_FAIR_INFLIGHT), "HLEN %s", rkey0(RK_FAIR_INFLIGHT));
	if (rds_reply_failed(s->r, rep, err, sizeof err))
		goto fail;
	long long inflight = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
	freeReplyObject(rep);
	metric_set(&worker_metrics[WM_QUEUED], 0, 0, queued);
	metric_set(&worker_metrics[WM_IN_FLIGHT], 0, 0, inflight);
	return 0;
fail:
	log_warn("metrics: %s", err);
	rds_free(s->r);
	s->r = NULL;
	return -1;
}

int worker_metrics_collect(void *arg, struct buf *out)
{
	read_depth(arg);
	return metrics_render(worker_metrics, WM_N, out);
}

void worker_scrape_free(struct worker_scrape *s)
{
	rds_free(s->r);
	s->r = NULL;
}

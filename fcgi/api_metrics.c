#include "api_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handlers.h"
#include "metrics.h"
#include "metrics_shm.h"
#include "route.h"

enum api_metric {
	AM_REQUESTS,
	AM_SECONDS,
	AM_COMMITS,
	AM_RACES,
	AM_UNAVAILABLE,
	AM_RESTORES,
	AM_DAMAGED,
	AM_N
};

/* "METHOD pattern" of every route, then "none" (no route matched: 404 or 405) */
#define ROUTES_MAX 64
static char route_text[ROUTES_MAX + 1][96];
static const char *route_labels[ROUTES_MAX + 1];

static const char *const statuses[] = {"200", "201", "202", "204", "304", "400", "401",
				       "403", "404", "405", "409", "410", "413", "415",
				       "429", "431", "500", "502", "503", "other"};
#define NSTATUS (sizeof statuses / sizeof statuses[0])
/* the same as numbers, in the same order ("other" last) */
static const int status_codes[NSTATUS - 1] = {200, 201, 202, 204, 304, 400, 401, 403, 404, 405,
					      409, 410, 413, 415, 429, 431, 500, 502, 503};
static const char *const commits[] = {"committed", "refused"};
static const char *const stores[] = {"busy", "database", "redis"};
static const char *const damaged_answers[] = {"read", "commit"};
/* microseconds, rendered in seconds */
static const long long request_us[] = {250,    500,    1000,   2500,    5000,    10000,  25000,
				       50000,  100000, 250000, 500000,  1000000, 2500000, 10000000};

static struct metric api_metrics[AM_N] = {
	[AM_REQUESTS] = {.name = "codecollab_api_requests_total",
			 .help = "Requests the API answered, by route and status (all API processes).",
			 .type = METRIC_COUNTER, .nlabels = 2,
			 .label = {{"route", route_labels, 0}, {"status", statuses, NSTATUS}}},
	[AM_SECONDS] = {.name = "codecollab_api_request_seconds",
			.help = "Time from reading a request to its answer written, by route.",
			.type = METRIC_HISTOGRAM, .nlabels = 1,
			.label = {{"route", route_labels, 0}},
			.bounds = request_us, .nbounds = sizeof request_us / sizeof request_us[0],
			.unit = 1000000},
	[AM_COMMITS] = {.name = "codecollab_api_operations_total",
			.help = "Operations sent to be committed: committed, or refused (conflict, "
				"invalid, too large, forbidden, a store down).",
			.type = METRIC_COUNTER, .nlabels = 1, .label = {{"result", commits, 2}}},
	[AM_RACES] = {.name = "codecollab_api_commit_races_total",
		      .help = "Times a commit lost the race to another commit of its room and "
			      "was transformed and tried again.",
		      .type = METRIC_COUNTER},
	[AM_UNAVAILABLE] = {.name = "codecollab_api_unavailable_total",
			    .help = "503 answers, by cause: busy (lost too many races), a store down.",
			    .type = METRIC_COUNTER, .nlabels = 1, .label = {{"cause", stores, 3}}},
	[AM_RESTORES] = {.name = "codecollab_api_document_restores_total",
			 .help = "Documents missing from Redis restored from PostgreSQL's history: "
				 "idle rooms the snapshotter took out, and documents Redis lost.",
			 .type = METRIC_COUNTER},
	[AM_DAMAGED] = {.name = "codecollab_api_document_damaged_total",
			.help = "Answers given because a room's stored operations are damaged (an "
				"operator must repair it): reads (500 document_damaged) and commits "
				"refused (503 document_unfoldable).",
			.type = METRIC_COUNTER, .nlabels = 1,
			.label = {{"answer", damaged_answers, 2}}},
};

static struct metrics_shm shm;

int api_metrics_open(const char *path, char *err, size_t errlen)
{
	size_t n = route_count();
	if (n > ROUTES_MAX) {
		snprintf(err, errlen, "metrics: more than %d routes", ROUTES_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(route_text[i], sizeof route_text[i], "%s %s", route_method(i), route_pattern(i));
		route_labels[i] = route_text[i];
	}
	route_labels[n] = "none";
	api_metrics[AM_REQUESTS].label[0].n = n + 1;
	api_metrics[AM_SECONDS].label[0].n = n + 1;
	return metrics_shm_open(&shm, path, api_metrics, AM_N, err, errlen);
}

void api_metrics_close(void)
{
	metrics_shm_close(&shm, api_metrics, AM_N);
}

long long api_metrics_now_us(void)
{
	if (!api_metrics[AM_SECONDS].cells)
		return 0; /* not recording: no clock read either */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void api_metrics_request(int route, int status, long long us)
{
	size_t r = route < 0 ? api_metrics[AM_REQUESTS].label[0].n - 1 : (size_t)route;
	size_t s = 0;
	while (s < NSTATUS - 1 && status_codes[s] != status)
		s++;
	metric_inc(&api_metrics[AM_REQUESTS], r, s);
	metric_observe(&api_metrics[AM_SECONDS], r, 0, us);
}

void api_metrics_commit(int committed, int races)
{
	metric_inc(&api_metrics[AM_COMMITS], committed ? 0 : 1, 0);
	if (races > 0)
		metric_add(&api_metrics[AM_RACES], 0, 0, races);
}

void api_metrics_unavailable(enum store_status st)
{
	size_t i = st == STORE_BUSY ? 0 : st == STORE_REDIS_UNAVAILABLE ? 2 : 1;
	metric_inc(&api_metrics[AM_UNAVAILABLE], i, 0);
}

void api_metrics_document_damaged(int commit)
{
	metric_inc(&api_metrics[AM_DAMAGED], commit ? 1 : 0, 0);
}

void api_metrics_restores(int n)
{
	if (n > 0)
		metric_add(&api_metrics[AM_RESTORES], 0, 0, n);
}

void h_metrics(struct api_ctx *c)
{
	/* only through the web server's metrics listener: the public port's requests never
	 * carry its port (lighttpd.conf also sends /metrics to the API from there only) */
	if (c->cfg->metrics_port <= 0 || c->req->server_port != c->cfg->metrics_port ||
	    !api_metrics[0].cells) {
		api_error(c, 404, "not_found", "no such endpoint: %s", c->req->path);
		return;
	}
	c->resp->status = 200;
	c->resp->content_type = METRICS_CONTENT_TYPE;
	buf_reset(&c->resp->body);
	if (metrics_render(api_metrics, AM_N, &c->resp->body) < 0)
		api_error(c, 500, "internal", "the metrics do not fit the answer");
}

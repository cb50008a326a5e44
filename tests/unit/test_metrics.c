/* lib/metrics: the arithmetic of counters, gauges and histograms, their text exposition,
 * and the /metrics listener (lib/metrics_http) over a real socket. */
#include "metrics.h"
#include "metrics_http.h"
#include "metrics_shm.h"
#include "unit.h"

#include "../../fcgi/api.h"
#include "../../fcgi/api_metrics.h"
#include "../../fcgi/handlers.h"
#include "../../fcgi/route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const kinds[] = {"execution", "ai"};
static const char *const outcomes[] = {"finished", "failed", "requeued"};
static const char *const steps[] = {"run"};
/* microseconds; rendered in seconds */
static const long long bounds_us[] = {5000, 100000, 1500000};

enum { M_JOBS, M_OPEN, M_PLAIN, M_LAT, M_N };

static struct metric table[M_N] = {
	[M_JOBS] = {.name = "codecollab_test_jobs_total",
		    .help = "Jobs by kind and outcome.",
		    .type = METRIC_COUNTER,
		    .nlabels = 2,
		    .label = {{"kind", kinds, 2}, {"outcome", outcomes, 3}}},
	[M_OPEN] = {.name = "codecollab_test_open",
		    .help = "Open things.",
		    .type = METRIC_GAUGE},
	[M_PLAIN] = {.name = "codecollab_test_plain_total",
		     .help = "A counter without labels.",
		     .type = METRIC_COUNTER},
	[M_LAT] = {.name = "codecollab_test_seconds",
		   .help = "Latency.",
		   .type = METRIC_HISTOGRAM,
		   .nlabels = 1,
		   .label = {{"step", steps, 1}},
		   .bounds = bounds_us,
		   .nbounds = 3,
		   .unit = 1000000},
};

static void test_arithmetic(void)
{
	/* unbound: every recording is a no-op, reading gives 0, rendering nothing */
	metric_inc(&table[M_JOBS], 0, 0);
	CHECK(metric_value(&table[M_JOBS], 0, 0) == 0);
	struct buf b;
	buf_init(&b, 0);
	CHECK(metrics_render(table, M_N, &b) == 0);
	CHECK(b.len == 0);

	size_t n = metrics_cells(table, M_N);
	/* 2×3 counters, 1 gauge, 1 counter, 1 histogram series of 3 bounds + Inf + sum */
	CHECK(n == 6 + 1 + 1 + 5);
	metric_cell *store = calloc(n, sizeof *store);
	CHECK(store != NULL);
	CHECK(metrics_bind(table, M_N, store, n - 1) == -1); /* too short */
	CHECK(metrics_bind(table, M_N, store, n) == 0);

	metric_inc(&table[M_JOBS], 1, 2);
	metric_add(&table[M_JOBS], 1, 2, 4);
	metric_inc(&table[M_JOBS], 0, 0);
	CHECK(metric_value(&table[M_JOBS], 1, 2) == 5);
	CHECK(metric_value(&table[M_JOBS], 0, 0) == 1);
	CHECK(metric_value(&table[M_JOBS], 0, 2) == 0);
	/* out of range: nothing recorded anywhere */
	metric_inc(&table[M_JOBS], 2, 0);
	metric_inc(&table[M_JOBS], 0, 3);
	long long total = 0;
	for (size_t a = 0; a < 2; a++)
		for (size_t o = 0; o < 3; o++)
			total += metric_value(&table[M_JOBS], a, o);
	CHECK(total == 6);

	/* a gauge goes up and down, and can be set */
	metric_add(&table[M_OPEN], 0, 0, 3);
	metric_add(&table[M_OPEN], 0, 0, -1);
	CHECK(metric_value(&table[M_OPEN], 0, 0) == 2);
	metric_set(&table[M_OPEN], 0, 0, 7);
	CHECK(metric_value(&table[M_OPEN], 0, 0) == 7);
	/* set is for gauges only */
	metric_set(&table[M_PLAIN], 0, 0, 9);
	CHECK(metric_value(&table[M_PLAIN], 0, 0) == 0);

	/* histogram: a value equal to a bound is in that bucket (le is "less or equal") */
	metric_observe(&table[M_LAT], 0, 0, 5000);
	metric_observe(&table[M_LAT], 0, 0, 5001);
	metric_observe(&table[M_LAT], 0, 0, 2000000);
	CHECK(metric_value(&table[M_LAT], 0, 0) == 3);
	CHECK(metric_sum(&table[M_LAT], 0, 0) == 2010001);
	/* add does not touch a histogram */
	metric_add(&table[M_LAT], 0, 0, 100);
	CHECK(metric_value(&table[M_LAT], 0, 0) == 3);

	CHECK(metric_label_index(&table[M_JOBS].label[1], "failed") == 1);
	CHECK(metric_label_index(&table[M_JOBS].label[1], "nope") == -1);

	CHECK(metrics_render(table, M_N, &b) == 0);
	CHECK_STR(b.data,
		  "# HELP codecollab_test_jobs_total Jobs by kind and outcome.\n"
		  "# TYPE codecollab_test_jobs_total counter\n"
		  "codecollab_test_jobs_total{kind=\"execution\",outcome=\"finished\"} 1\n"
		  "codecollab_test_jobs_total{kind=\"execution\",outcome=\"failed\"} 0\n"
		  "codecollab_test_jobs_total{kind=\"execution\",outcome=\"requeued\"} 0\n"
		  "codecollab_test_jobs_total{kind=\"ai\",outcome=\"finished\"} 0\n"
		  "codecollab_test_jobs_total{kind=\"ai\",outcome=\"failed\"} 0\n"
		  "codecollab_test_jobs_total{kind=\"ai\",outcome=\"requeued\"} 5\n"
		  "# HELP codecollab_test_open Open things.\n"
		  "# TYPE codecollab_test_open gauge\n"
		  "codecollab_test_open 7\n"
		  "# HELP codecollab_test_plain_total A counter without labels.\n"
		  "# TYPE codecollab_test_plain_total counter\n"
		  "codecollab_test_plain_total 0\n"
		  "# HELP codecollab_test_seconds Latency.\n"
		  "# TYPE codecollab_test_seconds histogram\n"
		  "codecollab_test_seconds_bucket{step=\"run\",le=\"0.005\"} 1\n"
		  "codecollab_test_seconds_bucket{step=\"run\",le=\"0.1\"} 2\n"
		  "codecollab_test_seconds_bucket{step=\"run\",le=\"1.5\"} 2\n"
		  "codecollab_test_seconds_bucket{step=\"run\",le=\"+Inf\"} 3\n"
		  "codecollab_test_seconds_sum{step=\"run\"} 2.010001\n"
		  "codecollab_test_seconds_count{step=\"run\"} 3\n");

	/* the buffer's bound is an error, not a truncated page */
	struct buf small;
	buf_init(&small, 64);
	CHECK(metrics_render(table, M_N, &small) == -1);
	buf_free(&small);
	buf_free(&b);

	metrics_unbind(table, M_N);
	metric_inc(&table[M_PLAIN], 0, 0);
	CHECK(store[6 + 1] == 0); /* the plain counter's cell: untouched once unbound */
	free(store);
}

/* Tables a program could get wrong are refused whole. */
static void test_malformed(void)
{
	static const long long down[] = {10, 5};
	metric_cell store[16] = {0};
	struct metric bad_unit = {.name = "x", .help = "x", .type = METRIC_HISTOGRAM,
				  .bounds = bounds_us, .nbounds = 3, .unit = 1500};
	CHECK(metrics_bind(&bad_unit, 1, store, 16) == -1);
	CHECK(bad_unit.cells == NULL);
	struct metric bad_bounds = {.name = "x", .help = "x", .type = METRIC_HISTOGRAM,
				    .bounds = down, .nbounds = 2};
	CHECK(metrics_bind(&bad_bounds, 1, store, 16) == -1);
	struct metric no_values = {.name = "x", .help = "x", .type = METRIC_COUNTER,
				   .nlabels = 1, .label = {{"l", NULL, 0}}};
	CHECK(metrics_bind(&no_values, 1, store, 16) == -1);
	/* negative gauges and sums are written with their sign, exactly */
	struct metric g = {.name = "g", .help = "h", .type = METRIC_HISTOGRAM, .bounds = down + 1,
			   .nbounds = 1, .unit = 1000};
	CHECK(metrics_bind(&g, 1, store, 16) == 0);
	metric_observe(&g, 0, 0, -1250);
	struct buf b;
	buf_init(&b, 0);
	CHECK(metrics_render(&g, 1, &b) == 0);
	CHECK(b.data && strstr(b.data, "g_sum -1.25\n") != NULL);
	CHECK(b.data && strstr(b.data, "g_bucket{le=\"0.005\"} 1\n") != NULL);
	buf_free(&b);
}

static void test_classify(void)
{
#define C(s) metrics_http_classify((s), strlen(s))
	CHECK(C("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") == 200);
	CHECK(C("GET /metrics?x=1 HTTP/1.0\r\n\r\n") == 200);
	CHECK(C("GET /metrics HTTP/1.1\n\n") == 200);
	CHECK(C("GET /metrics HTTP/1.1\r\nHost: x\r\n") == 0); /* not complete yet */
	CHECK(C("GET /metricsx HTTP/1.1\r\n\r\n") == 404);
	CHECK(C("GET / HTTP/1.1\r\n\r\n") == 404);
	CHECK(C("POST /metrics HTTP/1.1\r\n\r\n") == 405);
	CHECK(C("GET /metrics\r\n\r\n") == 400);
	CHECK(C("GET  HTTP/1.1\r\n\r\n") == 400);
	CHECK(C(" /metrics HTTP/1.1\r\n\r\n") == 400);
	char big[METRICS_HTTP_HEAD_MAX + 10];
	memset(big, 'a', sizeof big);
	CHECK(metrics_http_classify(big, sizeof big) == 431);
	CHECK(metrics_http_classify(big, 100) == 0);
#undef C
}

static int collect(void *arg, struct buf *out)
{
	return metrics_render(arg, M_N, out);
}

/* Sends req to 127.0.0.1:port and reads the whole answer into out. */
static int roundtrip(int port, const char *req, char *out, size_t cap)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	size_t len = strlen(req);
	if (send(fd, req, len, 0) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	size_t n = 0;
	ssize_t r;
	while (n + 1 < cap && (r = recv(fd, out + n, cap - 1 - n, 0)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(fd);
	return 0;
}

static void test_listener(void)
{
	size_t n = metrics_cells(table, M_N);
	metric_cell *store = calloc(n, sizeof *store);
	CHECK(store && metrics_bind(table, M_N, store, n) == 0);
	metric_add(&table[M_PLAIN], 0, 0, 41);
	metric_inc(&table[M_PLAIN], 0, 0);
	char err[256];
	struct metrics_http *s = metrics_http_start("127.0.0.1", 0, collect, table, err, sizeof err);
	CHECK(s != NULL);
	if (s) {
		int port = metrics_http_port(s);
		CHECK(port > 0);
		static char out[64 * 1024];
		CHECK(roundtrip(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", out, sizeof out) == 0);
		CHECK(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
		CHECK(strstr(out, "Content-Type: text/plain; version=0.0.4") != NULL);
		CHECK(strstr(out, "\r\n\r\n# HELP codecollab_test_jobs_total") != NULL);
		CHECK(strstr(out, "\ncodecollab_test_plain_total 42\n") != NULL);
		CHECK(roundtrip(port, "GET /other HTTP/1.1\r\n\r\n", out, sizeof out) == 0);
		CHECK(strncmp(out, "HTTP/1.1 404 ", 13) == 0);
		CHECK(strstr(out, "codecollab_") == NULL);
		CHECK(roundtrip(port, "DELETE /metrics HTTP/1.1\r\n\r\n", out, sizeof out) == 0);
		CHECK(strncmp(out, "HTTP/1.1 405 ", 13) == 0);
		static char big[METRICS_HTTP_HEAD_MAX + 100];
		memset(big, 'a', sizeof big - 1);
		memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
		CHECK(roundtrip(port, big, out, sizeof out) == 0);
		CHECK(strncmp(out, "HTTP/1.1 431 ", 13) == 0);
		/* a byte every 300 ms: cut off at the head's deadline, unanswered */
		{
			int fd = socket(AF_INET, SOCK_STREAM, 0);
			struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
			sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
			const char *slow = "GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaa";
			int cut = 0;
			for (size_t i = 0; i < strlen(slow) && !cut; i++) {
				cut = send(fd, slow + i, 1, MSG_NOSIGNAL) != 1;
				usleep(300 * 1000);
			}
			char c;
			struct timeval tv = {5, 0};
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
			ssize_t r = cut ? 0 : recv(fd, &c, 1, 0);
			/* closed (or reset), nothing answered; a timeout here means it still waited */
			CHECK(r == 0 || (r < 0 && errno == ECONNRESET));
			close(fd);
		}
		/* it still answers after all that */
		CHECK(roundtrip(port, "GET /metrics HTTP/1.0\r\n\r\n", out, sizeof out) == 0);
		CHECK(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
		metrics_http_stop(s);
		/* stopped: nothing listens any more */
		CHECK(roundtrip(port, "GET /metrics HTTP/1.0\r\n\r\n", out, sizeof out) == -1);
	}
	CHECK(metrics_http_start("not-an-ip", 0, collect, table, err, sizeof err) == NULL);
	CHECK(strstr(err, "not an IP address") != NULL);
	metrics_unbind(table, M_N);
	free(store);
}

/* Counting from several threads at once loses nothing. */
static void *hammer(void *arg)
{
	for (int i = 0; i < 100000; i++) {
		metric_inc(&table[M_PLAIN], 0, 0);
		metric_observe(&table[M_LAT], 0, 0, 1);
	}
	return arg;
}

static void test_threads(void)
{
	size_t n = metrics_cells(table, M_N);
	metric_cell *store = calloc(n, sizeof *store);
	CHECK(store && metrics_bind(table, M_N, store, n) == 0);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, hammer, NULL) == 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK(metric_value(&table[M_PLAIN], 0, 0) == 400000);
	CHECK(metric_value(&table[M_LAT], 0, 0) == 400000);
	CHECK(metric_sum(&table[M_LAT], 0, 0) == 400000);
	metrics_unbind(table, M_N);
	free(store);
}

/* Processes that map one file add up; a file of another layout is replaced, not misread. */
static void test_shm(void)
{
	char path[] = "/tmp/cc-test-metrics-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	unlink(path); /* metrics_shm creates it */
	char err[256] = "";
	struct metrics_shm s;
	CHECK(metrics_shm_open(&s, path, table, M_N, err, sizeof err) == 0);
	metric_add(&table[M_PLAIN], 0, 0, 5);
	metric_observe(&table[M_LAT], 0, 0, 7);
	pid_t pid = fork();
	if (pid == 0) {
		/* another process of the same binary: its own mapping of the same file */
		struct metrics_shm c;
		metrics_unbind(table, M_N);
		if (metrics_shm_open(&c, path, table, M_N, err, sizeof err) < 0)
			_exit(2);
		int ok = metric_value(&table[M_PLAIN], 0, 0) == 5; /* it sees what the parent counted */
		metric_add(&table[M_PLAIN], 0, 0, 10);
		metric_observe(&table[M_LAT], 0, 0, 9);
		metrics_shm_close(&c, table, M_N);
		_exit(ok ? 0 : 1);
	}
	int status = -1;
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(metric_value(&table[M_PLAIN], 0, 0) == 15);
	CHECK(metric_value(&table[M_LAT], 0, 0) == 2);
	CHECK(metric_sum(&table[M_LAT], 0, 0) == 16);

	/* a second mapping in this process sees the same cells */
	struct metrics_shm s2;
	struct metric again[M_N];
	memcpy(again, table, sizeof again);
	metrics_unbind(again, M_N);
	CHECK(metrics_shm_open(&s2, path, again, M_N, err, sizeof err) == 0);
	CHECK(metric_value(&again[M_PLAIN], 0, 0) == 15);
	metrics_shm_close(&s2, again, M_N);

	/* another layout (one metric fewer): the file is replaced, starting from zero, and the
	 * old mapping still counts on its own */
	struct metric other[M_N];
	memcpy(other, table, sizeof other);
	metrics_unbind(other, M_N);
	struct metrics_shm s3;
	CHECK(metrics_shm_open(&s3, path, other, M_N - 1, err, sizeof err) == 0);
	CHECK(metric_value(&other[M_PLAIN], 0, 0) == 0);
	metric_inc(&other[M_PLAIN], 0, 0);
	metric_inc(&table[M_PLAIN], 0, 0);
	CHECK(metric_value(&table[M_PLAIN], 0, 0) == 16);
	CHECK(metric_value(&other[M_PLAIN], 0, 0) == 1);
	CHECK(metrics_layout_hash(table, M_N) != metrics_layout_hash(table, M_N - 1));
	metrics_shm_close(&s3, other, M_N - 1);
	metrics_shm_close(&s, table, M_N);
	CHECK(metric_value(&table[M_PLAIN], 0, 0) == 0); /* unbound */
	CHECK(metrics_shm_open(&s, "/nonexistent-dir/x", table, M_N, err, sizeof err) == -1);
	CHECK(strstr(err, "cannot open") != NULL);
	unlink(path);
}

/* The API's GET /metrics: the counts of every process from the shared file, answered only to
 * a request the web server took on METRICS_PORT. */
static void test_api_endpoint(void)
{
	char path[] = "/tmp/cc-test-api-metrics-XXXXXX", err[256] = "";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	unlink(path);
	struct api_config cfg = {.metrics_port = 9180};
	struct http_req req = {.method = "GET", .path = "/metrics", .server_port = 9180};
	struct http_resp resp;
	struct api_ctx c = {.cfg = &cfg, .req = &req, .resp = &resp, .route = -1};
	/* not recording: no answer even on the right port */
	http_resp_init(&resp);
	h_metrics(&c);
	CHECK(resp.status == 404);
	http_resp_free(&resp);

	CHECK(api_metrics_open(path, err, sizeof err) == 0);
	int me = -1;
	for (size_t i = 0; i < route_count(); i++)
		if (!strcmp(route_method(i), "GET") && !strcmp(route_pattern(i), "/api/auth/me"))
			me = (int)i;
	CHECK(me >= 0);
	api_metrics_request(me, 200, 700);
	api_metrics_request(me, 200, 1200);
	api_metrics_request(me, 418, 10); /* a status outside the list: "other" */
	api_metrics_request(-1, 404, 10);
	api_metrics_commit(1, 2);
	api_metrics_commit(0, 0);
	api_metrics_unavailable(STORE_REDIS_UNAVAILABLE);
	api_metrics_restores(1);
	pid_t pid = fork();
	if (pid == 0) {
		/* another API process, counting into the same file */
		api_metrics_request(me, 200, 300);
		_exit(0);
	}
	CHECK(pid > 0 && waitpid(pid, NULL, 0) == pid);

	http_resp_init(&resp);
	h_metrics(&c);
	CHECK(resp.status == 200);
	CHECK_STR(resp.content_type, METRICS_CONTENT_TYPE);
	const char *body = resp.body.data ? resp.body.data : "";
	CHECK(strstr(body, "\ncodecollab_api_requests_total{route=\"GET /api/auth/me\",status=\"200\"} 3\n") != NULL);
	CHECK(strstr(body, "\ncodecollab_api_requests_total{route=\"GET /api/auth/me\",status=\"other\"} 1\n") != NULL);
	CHECK(strstr(body, "\ncodecollab_api_requests_total{route=\"none\",status=\"404\"} 1\n") != NULL);
	CHECK(strstr(body, "\ncodecollab_api_request_seconds_bucket{route=\"GET /api/auth/me\",le=\"0.001\"} 3\n") != NULL);
	CHECK(strstr(body, "\ncodecollab_api_request_seconds_sum{route=\"GET /api/auth/me\"} 0.00221\n") != NULL);
	CHECK(strstr(body, "\ncodecollab_api_operations_total{result=\"committed\"} 1\n") != NULL);
	CHECK(strstr(body, "\ncodecollab_api_operations_total{result=\"refused\"} 1\n") != NULL);
	CHECK(strstr(body, "\ncodecollab_api_commit_races_total 2\n") != NULL);
	CHECK(strstr(body, "\ncodecollab_api_unavailable_total{cause=\"redis\"} 1\n") != NULL);
	CHECK(strstr(body, "\ncodecollab_api_document_restores_total 1\n") != NULL);
	http_resp_free(&resp);

	/* the public port (or a request whose port is unknown) gets a 404 and no numbers */
	long ports[] = {8080, 0};
	for (size_t i = 0; i < 2; i++) {
		req.server_port = ports[i];
		http_resp_init(&resp);
		h_metrics(&c);
		CHECK(resp.status == 404);
		CHECK(resp.body.data && strstr(resp.body.data, "codecollab_") == NULL);
		http_resp_free(&resp);
	}
	/* METRICS_PORT unset: never */
	cfg.metrics_port = 0;
	req.server_port = 0;
	http_resp_init(&resp);
	h_metrics(&c);
	CHECK(resp.status == 404);
	http_resp_free(&resp);
	api_metrics_close();
	unlink(path);
}

/* --bench N: what the API's recording adds to a request (fcgi/main.c serve(): two clock
 * reads, the request's counter and its latency histogram), N times, in one process and in
 * two at once on the same cells (docs/BENCHMARKS.md, "Metrics"). Not part of `make test`. */
static long long bench_loop(long n, int route)
{
	long long t0 = api_metrics_now_us();
	for (long i = 0; i < n; i++) {
		long long t = api_metrics_now_us();
		api_metrics_request(route, 200, api_metrics_now_us() - t);
	}
	return api_metrics_now_us() - t0;
}

static int bench(long n)
{
	int route = -1;
	for (size_t i = 0; i < route_count(); i++)
		if (!strcmp(route_method(i), "GET") && !strcmp(route_pattern(i), "/api/auth/me"))
			route = (int)i;
	char path[] = "/tmp/cc-bench-metrics-XXXXXX", err[256];
	int fd = mkstemp(path);
	if (fd < 0 || route < 0)
		return 1;
	close(fd);
	unlink(path);
	/* not yet bound: the METRICS=off path (timed with the clock: api_metrics_now_us
	 * reads none then) */
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	bench_loop(n, route);
	clock_gettime(CLOCK_MONOTONIC, &b);
	long long off = (b.tv_sec - a.tv_sec) * 1000000LL + (b.tv_nsec - a.tv_nsec) / 1000;
	if (api_metrics_open(path, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	long long one = bench_loop(n, route);
	printf("metrics off: %.1f ns per request\n", off * 1000.0 / (double)n);
	printf("metrics on, one process: %.1f ns per request\n", one * 1000.0 / (double)n);
	fflush(stdout);
	pid_t kids[2];
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			long long t = bench_loop(n, route);
			printf("metrics on, two processes at once: %.1f ns per request\n", t * 1000.0 / (double)n);
			fflush(stdout);
			_exit(0);
		}
	}
	for (int k = 0; k < 2; k++)
		waitpid(kids[k], NULL, 0);
	api_metrics_close();
	unlink(path);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--bench") == 0)
		return bench(atol(argv[2]));
	test_arithmetic();
	test_malformed();
	test_classify();
	test_listener();
	test_threads();
	test_shm();
	test_api_endpoint();
	return unit_summary("test_metrics");
}

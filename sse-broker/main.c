/* codecollab-broker: streams room events to clients over SSE, long-poll and WebSocket.
 * Configuration comes from the environment (README lists every variable), read once here. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "broker_metrics.h"
#include "cfg.h"
#include "log.h"
#include "rds.h"
#include "server.h"
#include "token.h"

/* Every client is a descriptor: the soft limit goes up to want, or as far as the hard limit
 * allows; a process that may (root) raises the hard limit too. Says so when the limit stays
 * below want: past it, clients are refused by accept(2) instead of answered 503. */
static void raise_nofile(rlim_t want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("cannot read the open-files limit");
		return;
	}
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
		struct rlimit up = {want, want};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("cannot raise the open-files limit");
	if (rl.rlim_cur < want)
		log_warn("the open-files limit is %llu, below the %llu that BROKER_MAX_CLIENTS "
			 "needs: raise the hard limit (ulimit -Hn, LimitNOFILE=)",
			 (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

int main(void)
{
	log_init("broker");
	signal(SIGPIPE, SIG_IGN);

	static struct server_cfg cfg;
	long port, out_limit, ws_max_msg, max_held;
	const struct cfg_setting settings[] = {
		{"BROKER_PORT", 8081, 1, 65535, &port},
		{"BROKER_HEARTBEAT_MS", 15000, 50, 3600000, &cfg.heartbeat_ms},
		{"BROKER_POLL_TIMEOUT_MS", 25000, 10, 3600000, &cfg.poll_timeout_ms},
		{"BROKER_MAX_CLIENTS", 26000, 1, 10000000, &cfg.max_clients},
		{"BROKER_MAX_STREAMS", 25000, 1, 10000000, &cfg.max_streams},
		{"BROKER_CLIENT_BUFFER", SERVER_CLIENT_BUFFER_DEFAULT, 4096, 1L << 30, &out_limit},
		{"BROKER_HEAD_TIMEOUT_MS", 10000, 10, 3600000, &cfg.head_timeout_ms},
		{"BROKER_WS_TIMEOUT_MS", 45000, 100, 3600000, &cfg.ws_timeout_ms},
		{"BROKER_WS_MAX_MESSAGE", 64 * 1024, 128, 16L << 20, &ws_max_msg},
		{"BROKER_RETRY_MS", 3000, 0, 3600000, &cfg.retry_ms},
		{"BROKER_PRESENCE_TTL_MS", 0, 0, 3600000, &cfg.hub.presence_ttl_ms},
		{"BROKER_REDIS_BACKOFF_MAX_MS", 5000, 100, 600000, &cfg.hub.backoff_max_ms},
		{"BROKER_REDIS_CONNECT_TIMEOUT_MS", 3000, 100, 600000, &cfg.hub.connect_timeout_ms},
		{"BROKER_ROOM_LINGER_MS", 2000, 0, 3600000, &cfg.hub.room_linger_ms},
		{"BROKER_CATCHUP_HOLD", 10000, 16, 10000000, &max_held},
		{"BROKER_METRICS_PORT", 0, 0, 65535, &cfg.metrics_port},
	};
	char err[256];
	if (cfg_load(settings, sizeof settings / sizeof settings[0], err, sizeof err) < 0) {
		log_error("%s", err);
		return 2;
	}
	cfg.host = cfg_str("BROKER_HOST", "127.0.0.1");
	cfg.port = (int)port;
	cfg.out_limit = (size_t)out_limit;
	cfg.ws_max_msg = (size_t)ws_max_msg;
	cfg.hub.heartbeat_ms = cfg.heartbeat_ms;
	/* a record outlives three missed refreshes */
	if (cfg.hub.presence_ttl_ms == 0)
		cfg.hub.presence_ttl_ms = 3 * cfg.heartbeat_ms;
	cfg.hub.max_held = (size_t)max_held;
	if (rds_parse_url(cfg_str("REDIS_URL", "redis://127.0.0.1:6379"), &cfg.hub.redis, err,
			  sizeof err) < 0) {
		log_error("%s", err);
		return 2;
	}

	cfg.metrics_host = cfg_str("METRICS_HOST", "127.0.0.1");
	/* METRICS=off: nothing is counted and nothing listens (lib/metrics.h) */
	metric_cell *cells = NULL;
	if (metrics_disabled_by_env())
		cfg.metrics_port = 0;
	if (cfg.metrics_port > 0) {
		size_t n = metrics_cells(broker_metrics, BM_N);
		cells = calloc(n, sizeof *cells);
		if (!cells || metrics_bind(broker_metrics, BM_N, cells, n) < 0) {
			log_error("metrics: %s", cells ? "malformed table" : "out of memory");
			free(cells);
			return 2;
		}
	}

	struct token_key key;
	if (token_key_load(&key, err, sizeof err) < 0) {
		log_error("%s", err);
		free(cells);
		return 2;
	}
	/* the clients, those refused past the limit, Redis and the metrics listener */
	raise_nofile((rlim_t)cfg.max_clients + 256);
	int rc = server_run(&cfg, &key);
	token_key_free(&key);
	metrics_unbind(broker_metrics, BM_N);
	free(cells);
	log_info("stopped");
	return rc;
}

/* codecollab-broker: streams room events to clients over SSE, long-poll and WebSocket.
 * Configuration comes from the environment (README lists every variable), read once here. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alive.h"
#include "broker_metrics.h"
#include "cfg.h"
#include "clock.h"
#include "cors.h"
#include "log.h"
#include "metrics_http.h"
#include "presence.h"
#include "rds.h"
#include "rslot.h"
#include "server.h"
#include "token.h"

/* the most processes BROKER_PROCESSES may ask for */
#define BROKER_PROCESSES_MAX SERVER_PROCESSES_MAX

/* Descriptors a process keeps besides its clients: Redis, the listener, the metrics
 * listener, the log, the 503s past BROKER_MAX_CLIENTS (SERVER_OVERFLOW_SLACK). */
#define BROKER_FD_RESERVE 256

/* Every client is a descriptor: the soft limit goes up to want, or as far as the hard limit
 * allows; a process that may (root with CAP_SYS_RESOURCE) raises the hard limit too. The
 * limit reached. */
static rlim_t raise_nofile(rlim_t want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("cannot read the open-files limit");
		return 1024;
	}
	if (rl.rlim_cur >= want)
		return rl.rlim_cur;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
		struct rlimit up = {want, want};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return want;
	}
	struct rlimit soft = rl;
	soft.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &soft) < 0) {
		log_warn("cannot raise the open-files limit");
		return rl.rlim_cur;
	}
	return soft.rlim_cur;
}

/* Memory every process of the broker shares (MAP_SHARED before the fork). */
static void *shared_alloc(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* A token to check once in each process that serves streams, before its first client: the
 * first check pulls about 1.5 MiB of the crypto library's code into the process's memory, a
 * cost of the program, not of the first stream that happens to need it (and the first client
 * would wait for it). The token is signed before the fork and checked after it, in each
 * process: a child does not inherit its parent's pages of library code as resident, so a
 * check before the fork would warm only the parent, which serves no streams. NULL when it
 * could not be signed. */
static char *warm_token(const struct token_key *key)
{
	struct token_claims warm = {.user_id = 1, .kind = TOKEN_SESSION, .gen = 0};
	snprintf(warm.username, sizeof warm.username, "warm-up");
	snprintf(warm.sid, sizeof warm.sid, "%s", "startupcheck000000000000"); /* TOKEN_SID_LEN of [a-z0-9] */
	warm.iat = (long long)time(NULL);
	warm.exp = warm.iat + 60;
	return token_sign(key, &warm);
}

static void warm_token_check(const struct token_key *key, const char *tok)
{
	struct token_claims back;
	const char *why = "could not sign";
	if (!tok || token_verify(key, tok, (long long)time(NULL), &back, &why) < 0)
		log_warn("the start-up token check failed (%s); streams will be checked as usual", why);
}

/* BROKER_PROCESSES > 1: the parent forks the processes, each a whole broker with its own
 * event loop, Redis connections and listening socket (server_listen), and keeps the metrics
 * listener (the counters are shared). SIGTERM or SIGINT are passed on to every process and
 * their ends awaited; a process that ends by itself ends the others and the parent with 1,
 * so a supervisor starts the broker again as a whole. A process whose loop shows no sign of
 * life (cfg->shared->alive) for HANG_TIMEOUT_S is killed, which ends the broker the same way;
 * the parent's own signs of life go to the supervisor (lib/alive.h). Returns in the parent
 * with the exit status; in a child, *child is set, *index is its number (0 …) and the
 * caller runs the server. */
static int run_processes(long n, const struct server_cfg *cfg, int *child, long *index)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, &old) < 0) {
		log_error("sigprocmask: %s", strerror(errno));
		return 1;
	}
	pid_t pids[BROKER_PROCESSES_MAX];
	long started = 0;
	pid_t parent = getpid();
	for (; started < n; started++) {
		pid_t p = fork();
		if (p < 0) {
			log_error("fork: %s", strerror(errno));
			break;
		}
		if (p == 0) {
			/* the parent's death ends the process too (no broker left without its
			 * supervisor-facing parent) */
			if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
				_exit(1);
			sigprocmask(SIG_SETMASK, &old, NULL);
			*child = 1;
			*index = started;
			return 0;
		}
		pids[started] = p;
	}
	struct metrics_http *metrics = NULL;
	int rc = started == n ? 0 : 1;
	if (rc == 0 && cfg->metrics_port > 0) {
		char err[256];
		metrics = metrics_http_start(cfg->metrics_host, (int)cfg->metrics_port,
					     broker_metrics_collect, NULL, err, sizeof err);
		if (!metrics) {
			log_error("%s", err);
			rc = 1;
		} else {
			log_info("metrics on %s port %ld", cfg->metrics_host, cfg->metrics_port);
		}
	}
	log_info("%ld processes", started);
	long live = started;
	int stopping = rc != 0;
	if (stopping)
		for (long i = 0; i < started; i++)
			kill(pids[i], SIGTERM);
	/* each process's last count seen, and since when (monotonic ms) */
	unsigned long seen[BROKER_PROCESSES_MAX];
	long long seen_at[BROKER_PROCESSES_MAX];
	for (long i = 0; i < started; i++) {
		seen[i] = atomic_load(&cfg->shared->alive[i]);
		seen_at[i] = clock_mono_ms();
	}
	long hang_ms = alive_hang_ms();
	while (live > 0) {
		struct timespec tick = {.tv_sec = 0, .tv_nsec = SERVER_ALIVE_MS * 1000000L};
		int sig = stopping ? SIGCHLD : sigtimedwait(&set, NULL, &tick);
		if (sig < 0 && errno == EAGAIN) {
			alive_beat();
			long long now = clock_mono_ms();
			for (long i = 0; i < started; i++) {
				unsigned long v = atomic_load(&cfg->shared->alive[i]);
				if (pids[i] <= 0 || v != seen[i]) {
					seen[i] = v;
					seen_at[i] = now;
				} else if (hang_ms > 0 && now - seen_at[i] >= hang_ms) {
					log_error("process %d showed no sign of life for %lld ms "
						  "(HANG_TIMEOUT_S): killing it",
						  (int)pids[i], now - seen_at[i]);
					kill(pids[i], SIGKILL);
					seen_at[i] = now; /* once: its end comes as SIGCHLD */
				}
			}
			continue;
		}
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			log_error("sigtimedwait: %s", strerror(errno));
			sig = SIGTERM;
		}
		if (sig != SIGCHLD) {
			if (!stopping)
				log_info("signal %d: stopping", sig);
			stopping = 1;
			for (long i = 0; i < started; i++)
				if (pids[i] > 0)
					kill(pids[i], SIGTERM);
			continue;
		}
		for (;;) {
			int st;
			pid_t p = waitpid(-1, &st, stopping ? 0 : WNOHANG);
			if (p <= 0)
				break;
			for (long i = 0; i < started; i++) {
				if (pids[i] != p)
					continue;
				pids[i] = 0;
				live--;
				int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
				if (!ok)
					rc = 1;
				if (!stopping) {
					log_error("process %d ended (%s %d): stopping the others",
						  (int)p, WIFEXITED(st) ? "status" : "signal",
						  WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
					rc = 1;
					stopping = 1;
					for (long j = 0; j < started; j++)
						if (pids[j] > 0)
							kill(pids[j], SIGTERM);
				}
			}
			if (live == 0)
				break;
		}
	}
	metrics_http_stop(metrics);
	return rc;
}

int main(void)
{
	log_init("broker");
	signal(SIGPIPE, SIG_IGN);

	static struct server_cfg cfg;
	long port, out_limit, ws_max_msg, max_held, procs;
	const struct cfg_setting settings[] = {
		{"BROKER_PORT", 8081, 1, 65535, &port},
		{"BROKER_HEARTBEAT_MS", 15000, 50, 3600000, &cfg.heartbeat_ms},
		{"BROKER_POLL_TIMEOUT_MS", 25000, 10, 3600000, &cfg.poll_timeout_ms},
		{"BROKER_MAX_CLIENTS", 26000, 1, 10000000, &cfg.max_clients},
		{"BROKER_MAX_STREAMS", 25000, 1, USERCOUNT_MAX_USERS, &cfg.max_streams},
		/* the browser client keeps one stream per browser for all its tabs (docs/CLIENT.md):
		 * 64 leaves room for several browsers and devices of one person. No value turns it
		 * off; one at BROKER_MAX_STREAMS or above never bites. */
		{"BROKER_MAX_STREAMS_PER_USER", 64, 1, USERCOUNT_MAX_USERS, &cfg.max_streams_per_user},
		{"BROKER_PROCESSES", 1, 1, BROKER_PROCESSES_MAX, &procs},
		{"BROKER_CLIENT_BUFFER", SERVER_CLIENT_BUFFER_DEFAULT, 4096, 1L << 30, &out_limit},
		{"BROKER_HEAD_TIMEOUT_MS", 10000, 10, 3600000, &cfg.head_timeout_ms},
		/* a head takes an honest client one round trip or less: 64 at once from one
		 * address (per process) leaves a large NAT room; 0 turns the bound off */
		{"BROKER_MAX_HEADS_PER_ADDRESS", 64, 0, 10000000, &cfg.max_heads_per_address},
		{"BROKER_WS_TIMEOUT_MS", 45000, 100, 3600000, &cfg.ws_timeout_ms},
		{"BROKER_WRITE_TIMEOUT_MS", 60000, 100, 3600000, &cfg.write_timeout_ms},
		{"BROKER_WS_MAX_MESSAGE", 64 * 1024, 128, 16L << 20, &ws_max_msg},
		{"BROKER_RETRY_MS", 3000, 0, 3600000, &cfg.retry_ms},
		{"BROKER_PRESENCE_TTL_MS", 0, 0, 3600000, &cfg.hub.presence_ttl_ms},
		{"BROKER_REDIS_BACKOFF_MAX_MS", 5000, 100, 600000, &cfg.hub.backoff_max_ms},
		{"BROKER_REDIS_CONNECT_TIMEOUT_MS", 3000, 100, 600000, &cfg.hub.connect_timeout_ms},
		{"BROKER_ROOM_LINGER_MS", 2000, 0, 3600000, &cfg.hub.room_linger_ms},
		{"BROKER_CATCHUP_HOLD", 10000, 16, 10000000, &max_held},
		{"BROKER_METRICS_PORT", 0, 0, 65535, &cfg.metrics_port},
		{"BROKER_IO_URING", 1, 0, 1, &cfg.io_uring},
		{"PRESENCE_RATE_LIMIT", PRESENCE_RATE_LIMIT_DEFAULT, 1, 1000000,
		 &cfg.hub.presence_limit},
	};
	char err[256];
	if (cfg_load(settings, sizeof settings / sizeof settings[0], err, sizeof err) < 0 ||
	    alive_init(err, sizeof err) < 0) {
		log_error("%s", err);
		return 2;
	}
	cfg.host = cfg_str("BROKER_HOST", "127.0.0.1");
	/* BROKER_ALLOW_ORIGIN: who may read answers cross-origin (sse-broker/cors.h) */
	static char allow_origin[CORS_ORIGIN_MAX + 1];
	char why[200];
	if (cors_origin_parse(cfg_str("BROKER_ALLOW_ORIGIN", "*"), allow_origin,
			      sizeof allow_origin, why, sizeof why) < 0) {
		log_error("BROKER_ALLOW_ORIGIN %s", why);
		return 2;
	}
	cfg.allow_origin = allow_origin;
	/* BROKER_TRUSTED_PROXIES: the front doors' addresses, not counted per address
	 * (sse-broker/addrcap.h) */
	static struct addrcap_trusted trusted;
	if (addrcap_trusted_parse(cfg_str("BROKER_TRUSTED_PROXIES", ADDRCAP_TRUSTED_DEFAULT),
				  &trusted, why, sizeof why) < 0) {
		log_error("BROKER_TRUSTED_PROXIES %s", why);
		return 2;
	}
	cfg.trusted = &trusted;
	cfg.port = (int)port;
	cfg.out_limit = (size_t)out_limit;
	cfg.ws_max_msg = (size_t)ws_max_msg;
	cfg.hub.heartbeat_ms = cfg.heartbeat_ms;
	/* Settings fine alone and wrong together. A WebSocket client that sends nothing answers
	 * the ping of every heartbeat, so its last input is up to a heartbeat old (more on a
	 * busy loop) when the idle check looks; and the broker refreshes its presence records
	 * once per heartbeat. Below twice the heartbeat every quiet WebSocket would be closed
	 * as idle, or every presence record would lapse and come back (leave and join
	 * events for everyone, every heartbeat). */
	if (cfg.ws_timeout_ms < 2 * cfg.heartbeat_ms) {
		log_error("BROKER_WS_TIMEOUT_MS (%ld) must be at least twice BROKER_HEARTBEAT_MS "
			  "(%ld): quiet WebSocket clients answer one ping per heartbeat",
			  cfg.ws_timeout_ms, cfg.heartbeat_ms);
		return 2;
	}
	if (cfg.hub.presence_ttl_ms != 0 && cfg.hub.presence_ttl_ms < 2 * cfg.heartbeat_ms) {
		log_error("BROKER_PRESENCE_TTL_MS (%ld) must be at least twice BROKER_HEARTBEAT_MS "
			  "(%ld): presence records are refreshed once per heartbeat",
			  cfg.hub.presence_ttl_ms, cfg.heartbeat_ms);
		return 2;
	}
	/* a record outlives three missed refreshes */
	if (cfg.hub.presence_ttl_ms == 0)
		cfg.hub.presence_ttl_ms = 3 * cfg.heartbeat_ms;
	cfg.hub.max_held = (size_t)max_held;
	/* a replay pauses once a client's output is full (HUB_BUSY): half of it per read */
	cfg.hub.catchup_bytes = (size_t)out_limit / 2;
	if (rds_parse_url(cfg_str("REDIS_URL", "redis://127.0.0.1:6379"), &cfg.hub.redis, err,
			  sizeof err) < 0) {
		log_error("%s", err);
		return 2;
	}
	/* REDIS_CLUSTER=host:port[,...]: seed nodes of a Redis Cluster (the slot map is asked from
	 * them); empty or unset: the one server of REDIS_URL. The password: REDIS_PASSWORD, else
	 * the URL's. */
	struct rslot_node *seeds = NULL;
	const char *cluster = cfg_str("REDIS_CLUSTER", "");
	if (cluster[0] &&
	    rslot_parse_seeds(cluster, &seeds, &cfg.hub.nseeds, err, sizeof err) < 0) {
		log_error("%s", err);
		return 2;
	}
	cfg.hub.seeds = seeds;
	const char *password = cfg_str("REDIS_PASSWORD", "");
	if (password[0])
		snprintf(cfg.hub.redis.password, sizeof cfg.hub.redis.password, "%s", password);

	cfg.metrics_host = cfg_str("METRICS_HOST", "127.0.0.1");
	/* METRICS=off: nothing is counted and nothing listens (lib/metrics.h) */
	metric_cell *cells = NULL;
	size_t ncells = 0;
	if (metrics_disabled_by_env())
		cfg.metrics_port = 0;
	if (cfg.metrics_port > 0) {
		ncells = metrics_cells(broker_metrics, BM_N);
		/* shared, zeroed: every process counts into the same cells (atomics) */
		cells = shared_alloc(ncells * sizeof *cells);
		if (!cells || metrics_bind(broker_metrics, BM_N, cells, ncells) < 0) {
			log_error("metrics: %s", cells ? "malformed table" : "out of memory");
			if (cells)
				munmap(cells, ncells * sizeof *cells);
			free(seeds);
			return 2;
		}
	}
	cfg.shared = shared_alloc(sizeof *cfg.shared);
	/* Each user's streams (BROKER_MAX_STREAMS_PER_USER), shared as the slots are. Every user
	 * counted holds a place under BROKER_MAX_STREAMS, so that many users at most: about 32
	 * to 64 bytes per place, only the pages in use resident. No process rebuilds another's
	 * counts: a process that ends by itself stops the whole broker (run_processes), and the
	 * next one starts with a fresh table. */
	size_t users_bytes = usercount_size(cfg.max_streams);
	void *users_mem = users_bytes ? shared_alloc(users_bytes) : NULL;
	cfg.user_streams = users_mem ? usercount_init(users_mem, users_bytes, cfg.max_streams) : NULL;
	if (!cfg.shared || !cfg.user_streams) {
		log_error("out of memory");
		if (cfg.shared)
			munmap(cfg.shared, sizeof *cfg.shared);
		if (users_mem)
			munmap(users_mem, users_bytes);
		metrics_unbind(broker_metrics, BM_N);
		if (cells)
			munmap(cells, ncells * sizeof *cells);
		free(seeds);
		return 2;
	}

	struct token_key key;
	int rc = 2;
	int child = 0;
	int lfds[BROKER_PROCESSES_MAX];
	if (token_key_load(&key, err, sizeof err) < 0) {
		log_error("%s", err);
		goto out_metrics;
	}
	/* Each process's clients must fit its descriptors: past them accept(2) fails and a
	 * client waits unanswered instead of being refused with a 503. */
	rlim_t lim = raise_nofile((rlim_t)cfg.max_clients + BROKER_FD_RESERVE);
	long fit = lim > 2 * BROKER_FD_RESERVE ? (long)(lim - BROKER_FD_RESERVE) : BROKER_FD_RESERVE;
	if (cfg.max_clients > fit) {
		log_warn("the open-files limit (%llu) holds %ld clients per process, not "
			 "BROKER_MAX_CLIENTS %ld: %ld it is",
			 (unsigned long long)lim, fit, cfg.max_clients, fit);
		cfg.max_clients = fit;
	}
	if (cfg.max_streams > cfg.max_clients * procs)
		log_warn("BROKER_MAX_STREAMS %ld is more than %ld processes of %ld clients hold: "
			 "raise the open-files limit or BROKER_PROCESSES",
			 cfg.max_streams, procs, cfg.max_clients);
	char *wtok = warm_token(&key);
	if (server_listen(&cfg, lfds, procs) < 0) {
		rc = 1;
		goto out_key;
	}
	long mine = 0;
	if (procs > 1) {
		rc = run_processes(procs, &cfg, &child, &mine);
		/* each process keeps its own listening socket only */
		for (long i = 0; i < procs; i++)
			if (!child || i != mine)
				close(lfds[i]);
		if (!child)
			goto out_key;
		cfg.metrics_port = 0; /* the parent serves the shared counters */
		cfg.alive = &cfg.shared->alive[mine]; /* the parent watches it */
		alive_close(); /* the parent's own, not the child's */
	}
	warm_token_check(&key, wtok);
	rc = server_run(&cfg, &key, lfds[mine]);
out_key:
	free(wtok);
	token_key_free(&key);
out_metrics:
	metrics_unbind(broker_metrics, BM_N);
	if (cells)
		munmap(cells, ncells * sizeof *cells);
	munmap(cfg.shared, sizeof *cfg.shared);
	/* the lock is destroyed once, by the process that made it, after every other ended */
	if (!child)
		usercount_destroy(cfg.user_streams);
	munmap(users_mem, users_bytes);
	free(seeds);
	if (!child)
		alive_close();
	log_info("stopped");
	return rc;
}

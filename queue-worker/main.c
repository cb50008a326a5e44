/* codecollab-worker: runs the jobs of the Redis Stream cc:{jobs}:stream (docs/INTERNALS.md).
 *
 * WORKERS threads, each with its own Redis connection, read the consumer group "workers"
 * and hand each job to the handler of its kind (execution: the local bubblewrap sandbox
 * or Piston). The main thread owns signals and the timers: it keeps the entries of running
 * jobs fresh (so no other worker claims them), publishes the cc:runtimes a refresh thread
 * of its own fetched (Piston may be slow to answer), and on SIGTERM or
 * SIGINT stops taking jobs, lets running ones finish for SHUTDOWN_GRACE_MS, then cancels
 * them (they go back to the queue) and exits 0. */
#include "backoff.h"
#include "cfg.h"
#include "rkeys.h"
#include "log.h"
#include "rds.h"
#include "rnd.h"
#include "url.h"

#include "ai.h"
#include "alive.h"
#include "execution.h"
#include "piston.h"
#include "queue.h"
#include "runtimes.h"
#include "sandbox.h"
#include "clock.h"
#include "metrics_http.h"
#include "worker_metrics.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WORKERS_MAX 64
#define READ_BLOCK_MS 1000
#define REDIS_TIMEOUT_MS 5000
/* Redis reconnects: lib/backoff.h from 100 ms up to 5 s, the stop flag looked at every 50 */
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define BACKOFF_SLICE_MS 50
/* how often the main thread asks whether a running job was cancelled (DELETE /api/jobs) */
#define CANCEL_POLL_MS 250
/* the fair scheduler's registration (lib/jobstate.h): renewed every REGISTER_EVERY_MS, it
 * lapses REGISTER_LIFETIME_MS after a worker died, and its threads stop counting */
#define REGISTER_EVERY_MS 1000
#define REGISTER_LIFETIME_MS 5000
/* the liveness key (queue_alive): renewed every ALIVE_EVERY_MS for WORKER_LIVENESS_MS; a
 * job thread looks every CLAIM_ORPHANS_EVERY_MS for entries of workers whose key is gone,
 * idle at least ORPHAN_MIN_IDLE_MS (so one just handed to a worker is not snatched) */
#define ALIVE_EVERY_MS 1000
#define CLAIM_ORPHANS_EVERY_MS 1000
#define ORPHAN_MIN_IDLE_MS 1000
/* how often the names of gone workers are taken out of the consumer group (queue_sweep) */
#define SWEEP_EVERY_MS 60000
/* JOB_HANG_TIMEOUT_S when unset: the longest a job may take by the other settings plus this
 * much; and how long a job stopped for running too long may take to end before its thread
 * counts as stuck */
#define JOB_HANG_SLACK_S 60
#define JOB_STUCK_GRACE_MS 10000

/* Configuration, read once from the environment. */
struct config {
	struct rds_target redis;
	long workers;
	long claim_idle_ms;
	long liveness_ms;
	long max_attempts;
	long grace_ms;
	long refresh_s;
	long room_cap; /* JOB_ROOM_RUNNING_MAX: jobs of one room in flight at once, 0 none */
	long metrics_port; /* WORKER_METRICS_PORT: GET /metrics there, 0 none */
	long job_hang_s;   /* JOB_HANG_TIMEOUT_S: a job running longer is stopped, 0 never */
	long job_worst_s;  /* the longest a job may take by the other settings (longest_job_s()) */
	const char *metrics_host;
	const char *piston_url;
	long piston_timeout_ms;
	struct sandbox_limits limits;
	struct piston_limits piston_limits;
	struct sandbox_config sandbox;
	char runtimes_path[4096];
	const char *runtimes_extra; /* RUNTIMES_EXTRA: optional runtimes to offer */
};

struct worker;

/* One job thread. inflight and job (under lock) are the entry and job it is working on,
 * for heartbeats and cancel polls, and attempt the attempt it runs (0 until the job is
 * marked running); cancel stops that job (its owner cancelled it, the worker is out of
 * grace time, or QUEUE_TAKEN_OVER: another worker runs it now). */
struct slot {
	struct worker *w;
	pthread_t thread;
	pthread_mutex_t lock;
	char inflight[QUEUE_ID_MAX];
	char job[QUEUE_ID_MAX];
	volatile sig_atomic_t attempt;
	volatile sig_atomic_t cancel;
	volatile sig_atomic_t done;
	/* under lock: when the job began (clock_mono_ms), and the main thread's watch of it
	 * (watch_jobs): overran 1 once it stopped the job for running too long (at stopped_ms),
	 * 2 once it found the thread still in that job JOB_STUCK_GRACE_MS later */
	long long started_ms, stopped_ms;
	int overran;
};

struct worker {
	struct config cfg;
	char consumer[300];
	struct queue_handler handlers[4];
	size_t nhandlers;
	/* set by the main thread only, read by the job threads */
	volatile sig_atomic_t stop;
	volatile sig_atomic_t cancel;
	struct slot slots[WORKERS_MAX];
	/* the refresh thread's only (runtimes_text): what of Piston's list was left out last
	 * time, so each count is logged when it changes, not at every refresh */
	struct piston_left_out piston_left;
};

/* Reads a table of integer settings (lib/cfg.h), saying what is wrong with the first bad
 * one. */
static int load_table(const struct cfg_setting *t, size_t n)
{
	char err[256];
	if (cfg_load(t, n, err, sizeof err) < 0) {
		log_error("%s", err);
		return -1;
	}
	return 0;
}

#define LOAD(table) load_table((table), sizeof(table) / sizeof((table)[0]))

/* The longest a job may take by the settings that bound its steps, in seconds: a run, its
 * compile step and run step (or Piston's whole call), or an AI request, every attempt at
 * the provider taking the whole AI_TIMEOUT_MS with the longest wait between them
 * (aicfg_pending_ttl_s). The Redis calls around a job are bounded as well, well within
 * JOB_HANG_SLACK_S. */
static long longest_job_s(const struct config *c)
{
	long run_ms = c->piston_url ? c->piston_timeout_ms : c->limits.compile_ms + c->limits.run_ms;
	long worst = (run_ms + 999) / 1000;
	struct aicfg ai;
	char err[256];
	/* a wrong AI setting stops the program once the AI handler is set up, saying why */
	if (aicfg_load(&ai, err, sizeof err) == 0 && aicfg_pending_ttl_s(&ai) > worst)
		worst = aicfg_pending_ttl_s(&ai);
	return worst;
}

/* The limit variables; a Piston limit is sent only when the variable is set, so Piston's
 * own (often lower) maxima apply otherwise. */
static int load_limits(struct config *c)
{
	long run, compile, cpu, mem, procs, fsize, nofile, out, tmpfs;
	struct sandbox_limits *l = &c->limits;
	sandbox_limits_default(l);
	const struct cfg_setting timeouts[] = {
		{"RUN_TIMEOUT_MS", l->run_ms, 100, 600000, &run},
		{"COMPILE_TIMEOUT_MS", l->compile_ms, 100, 600000, &compile},
	};
	if (LOAD(timeouts) < 0)
		return -1;
	/* the CPU limit's default follows the run timeout just read */
	const struct cfg_setting limits[] = {
		{"CPU_LIMIT_S", (run + 999) / 1000, 1, 600, &cpu},
		{"MEMORY_LIMIT_MB", l->memory >> 20, 16, 65536, &mem},
		{"PROCESS_LIMIT", l->processes, 4, 4096, &procs},
		{"FILE_SIZE_LIMIT_MB", l->file_size >> 20, 1, 4096, &fsize},
		{"OPEN_FILES_LIMIT", l->open_files, 16, 65536, &nofile},
		{"OUTPUT_LIMIT_KB", (long)(l->output >> 10), 1, 65536, &out},
		{"TMPFS_LIMIT_MB", l->tmpfs >> 20, 1, 65536, &tmpfs},
	};
	if (LOAD(limits) < 0)
		return -1;
	l->run_ms = (int)run;
	l->compile_ms = (int)compile;
	l->cpu_s = (int)cpu;
	l->memory = (long long)mem << 20;
	l->processes = (int)procs;
	const char *cores = getenv("CPU_LIMIT");
	if (cores && *cores) {
		char err[256];
		if (sandbox_cpu_limit_parse(cores, &l->cpu_milli, err, sizeof err) < 0) {
			log_error("%s", err);
			return -1;
		}
	}
	l->file_size = (long long)fsize << 20;
	l->open_files = (int)nofile;
	l->output = (size_t)out << 10;
	l->tmpfs = (long long)tmpfs << 20;
	memset(&c->piston_limits, 0, sizeof c->piston_limits);
	if (getenv("RUN_TIMEOUT_MS"))
		c->piston_limits.run_timeout_ms = run;
	if (getenv("COMPILE_TIMEOUT_MS"))
		c->piston_limits.compile_timeout_ms = compile;
	if (getenv("MEMORY_LIMIT_MB"))
		c->piston_limits.run_memory = c->piston_limits.compile_memory = l->memory;
	return 0;
}

static int load_config(struct config *c)
{
	char err[512];
	memset(c, 0, sizeof *c);
	if (rds_config_env(&c->redis, "redis://127.0.0.1:6379", err, sizeof err) < 0) {
		log_error("%s", err);
		return -1;
	}
	const struct cfg_setting settings[] = {
		{"WORKERS", 2, 1, WORKERS_MAX, &c->workers},
		{"CLAIM_IDLE_MS", 30000, 300, 3600000, &c->claim_idle_ms},
		{"WORKER_LIVENESS_MS", 3000, 1500, 600000, &c->liveness_ms},
		{"JOB_MAX_ATTEMPTS", 3, 1, 100, &c->max_attempts},
		{"SHUTDOWN_GRACE_MS", 30000, 0, 3600000, &c->grace_ms},
		{"RUNTIMES_REFRESH_S", 60, 1, 86400, &c->refresh_s},
		{"JOB_ROOM_RUNNING_MAX", 0, 0, 100000, &c->room_cap},
		{"WORKER_METRICS_PORT", 0, 0, 65535, &c->metrics_port},
	};
	if (LOAD(settings) < 0 || load_limits(c) < 0)
		return -1;
	c->metrics_host = cfg_str("METRICS_HOST", "127.0.0.1");
	if (metrics_disabled_by_env())
		c->metrics_port = 0; /* METRICS=off: nothing counted, nothing listens */
	c->piston_url = cfg_str("PISTON_URL", NULL);
	if (c->piston_url && url_http_check(c->piston_url, "PISTON_URL", err, sizeof err) < 0) {
		log_error("%s", err);
		return -1;
	}
	/* Piston's timeout defaults to both steps' limits and some slack */
	const struct cfg_setting piston[] = {
		{"PISTON_TIMEOUT_MS", c->limits.run_ms + c->limits.compile_ms + 10000L, 100, 3600000,
		 &c->piston_timeout_ms},
	};
	if (LOAD(piston) < 0)
		return -1;
	c->job_worst_s = longest_job_s(c);
	const struct cfg_setting hang[] = {
		{"JOB_HANG_TIMEOUT_S", c->job_worst_s + JOB_HANG_SLACK_S, 0, 7 * 86400L, &c->job_hang_s},
	};
	if (LOAD(hang) < 0)
		return -1;
	if (sandbox_config_from_env(&c->sandbox, err, sizeof err) < 0) {
		log_error("%s", err);
		return -1;
	}
	runtimes_default_path(c->runtimes_path, sizeof c->runtimes_path);
	c->runtimes_extra = cfg_str("RUNTIMES_EXTRA", "");
	return 0;
}

/* Waits out the next back-off delay of b, returning early when the worker stops. */
static void backoff_wait(const struct worker *w, struct backoff *b)
{
	clock_sleep_watching(backoff_next(b), BACKOFF_SLICE_MS, &w->stop);
}

/* progress: the main thread's signs of life (alive_beat) through a long call; NULL for the
 * job threads (rds_on_progress) */
static struct rds *connect_redis(const struct worker *w, void (*progress)(void), char *err,
				 size_t errlen)
{
	/* one client per thread (lib/rds.h), opened here so a Redis that is down is found
	 * before the loop starts */
	struct rds *r = rds_new(&w->cfg.redis, REDIS_TIMEOUT_MS);
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rds_on_progress(r, progress);
	if (rds_ready(r) < 0) {
		snprintf(err, errlen, "%s", rds_error(r));
		rds_free(r);
		return NULL;
	}
	return r;
}

/* entry NULL: the slot is idle. A new job starts uncancelled, unless the worker is
 * cancelling everything. */
static void set_inflight(struct slot *s, const char *entry, const char *job)
{
	pthread_mutex_lock(&s->lock);
	snprintf(s->inflight, sizeof s->inflight, "%s", entry ? entry : "");
	snprintf(s->job, sizeof s->job, "%s", entry && job ? job : "");
	s->attempt = 0;
	s->cancel = s->w->cancel;
	s->started_ms = clock_mono_ms();
	s->overran = 0;
	metric_add(&worker_metrics[WM_THREADS_BUSY], 0, 0, entry ? 1 : -1);
	pthread_mutex_unlock(&s->lock);
}

static void *job_thread(void *arg)
{
	struct slot *s = arg;
	struct worker *w = s->w;
	struct rds *r = NULL;
	struct backoff failures = {.first_ms = BACKOFF_FIRST_MS, .max_ms = BACKOFF_MAX_MS};
	long long next_claim = 0, next_orphans = 0;
	/* where the scan for dead workers' entries goes on from (queue_claim_orphan) */
	char orphan_cursor[QUEUE_ID_MAX] = "";
	long claim_every = w->cfg.claim_idle_ms / 2 < 1000 ? w->cfg.claim_idle_ms / 2 : 1000;
	char err[512];
	int connected_once = 0;
	while (!w->stop) {
		if (!r) {
			r = connect_redis(w, NULL, err, sizeof err);
			if (!r) {
				log_warn("redis: %s (retrying)", err);
				backoff_wait(w, &failures);
				continue;
			}
			if (connected_once)
				metric_inc(&worker_metrics[WM_REDIS_RECONNECTS], 0, 0);
			connected_once = 1;
			backoff_reset(&failures);
		}
		struct queue_entry e;
		int got = 0;
		/* a dead worker's jobs first: they have waited longest. One killed outright is
		 * known by its lapsed liveness key within seconds; CLAIM_IDLE_MS catches the rest
		 * (a worker that stalled, one of a version without the key). */
		if (clock_mono_ms() >= next_orphans) {
			got = queue_claim_orphan(r, w->consumer, ORPHAN_MIN_IDLE_MS, orphan_cursor, &e,
						 err, sizeof err);
			next_orphans = clock_mono_ms() + CLAIM_ORPHANS_EVERY_MS;
		}
		if (got == 0 && clock_mono_ms() >= next_claim) {
			got = queue_claim(r, w->consumer, w->cfg.claim_idle_ms, &e, err, sizeof err);
			next_claim = clock_mono_ms() + claim_every;
			if (got == 1)
				log_info("claimed entry %s (job %s) from a stalled worker", e.entry, e.job);
		}
		if (got == 0)
			got = queue_read(r, w->consumer, READ_BLOCK_MS, &e, err, sizeof err);
		if (got == 1) {
			set_inflight(s, e.entry, e.job);
			if (queue_process(r, &e, w->handlers, w->nhandlers, w->consumer,
					  w->cfg.max_attempts, &s->cancel, &s->attempt, err,
					  sizeof err) < 0)
				got = -1;
			set_inflight(s, NULL, NULL);
		}
		if (got < 0) {
			log_warn("%s", err);
			rds_free(r);
			r = NULL;
			backoff_wait(w, &failures);
		}
	}
	if (r)
		rds_free(r);
	s->done = 1;
	return NULL;
}

/* Keeps the entries of running jobs from looking abandoned. */
static int heartbeat(struct worker *w, struct rds *r)
{
	char ids[WORKERS_MAX][QUEUE_ID_MAX];
	const char *p[WORKERS_MAX];
	size_t n = 0;
	for (long i = 0; i < w->cfg.workers; i++) {
		struct slot *s = &w->slots[i];
		pthread_mutex_lock(&s->lock);
		/* a stuck thread's entry is left to go idle: another worker claims it after
		 * CLAIM_IDLE_MS */
		if (s->inflight[0] && s->overran < 2) {
			snprintf(ids[n], sizeof ids[n], "%s", s->inflight);
			p[n] = ids[n];
			n++;
		}
		pthread_mutex_unlock(&s->lock);
	}
	return queue_touch(r, w->consumer, p, n);
}

/* Whether a running job is no longer this slot's, from its hash's status, attempts and
 * worker (an HMGET reply): 1 cancelled by its owner, QUEUE_TAKEN_OVER when a newer attempt
 * was counted since ours was marked running (attempt: ours, 0 when not yet running), or
 * another worker marked the job since (a requeue of its may put attempts back to ours), 0
 * when it is still ours (also while our own requeue, attempts - 1, is under way). A hash gone or
 * unreadable is not judged here: the run's outcome is fenced anyway. */
static int slot_lost(const redisReply *rep, const char *consumer, long attempt)
{
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
	    rep->element[0]->type != REDIS_REPLY_STRING)
		return 0;
	enum job_status st;
	if (job_status_parse(rep->element[0]->str, &st) == 0 && st == JOB_CANCELLED)
		return 1;
	if (attempt <= 0)
		return 0;
	const redisReply *n = rep->element[1], *who = rep->element[2];
	if (n->type == REDIS_REPLY_STRING && atol(n->str) > attempt)
		return QUEUE_TAKEN_OVER;
	if (who->type == REDIS_REPLY_STRING && strcmp(who->str, consumer))
		return QUEUE_TAKEN_OVER;
	return 0;
}

/* JOB_HANG_TIMEOUT_S: a job that has run longer is stopped, and fails (QUEUE_OVERRAN);
 * one whose thread is still in it JOB_STUCK_GRACE_MS later is in a call that does not end.
 * Its entry is then no longer kept fresh (heartbeat), so another worker claims it after
 * CLAIM_IDLE_MS, and 1 is returned: the worker stops showing life (alive_beat), so that
 * whoever supervises it ends it and starts it again with all its threads. */
static int watch_jobs(struct worker *w, long started)
{
	if (w->cfg.job_hang_s <= 0)
		return 0;
	long long now = clock_mono_ms(), bound = w->cfg.job_hang_s * 1000LL;
	int stuck = 0;
	for (long i = 0; i < started; i++) {
		struct slot *s = &w->slots[i];
		pthread_mutex_lock(&s->lock);
		long long ran = now - s->started_ms;
		if (s->job[0] && ran > bound && !s->overran) {
			s->overran = 1;
			s->stopped_ms = now;
			if (!s->cancel) /* one cancelled for another reason ends as that says */
				s->cancel = QUEUE_OVERRAN;
			log_error("job %s: has run for %lld s, past JOB_HANG_TIMEOUT_S (%ld s): "
				  "stopping it", s->job, ran / 1000, w->cfg.job_hang_s);
		} else if (s->job[0] && s->overran == 1 && now - s->stopped_ms > JOB_STUCK_GRACE_MS) {
			s->overran = 2;
			log_error("job %s: its thread has not come back %d s after the job was "
				  "stopped: it is stuck; the job is left for another worker, and this "
				  "worker stops showing life so that it is started again",
				  s->job, JOB_STUCK_GRACE_MS / 1000);
		}
		stuck |= s->job[0] && s->overran == 2;
		pthread_mutex_unlock(&s->lock);
	}
	return stuck;
}

/* Stops the running jobs that are no longer this worker's to run: their handler sees the
 * slot's cancel flag and kills the sandbox (or gives up the AI call). A job whose status
 * became cancelled (DELETE /api/jobs/{id}) ends as a cancel does (its requeue refused, the
 * entry acknowledged); one taken over by another worker (this one stalled past its liveness key, and that worker claimed
 * the entry and counted a newer attempt) is only dropped: the job and its entry are the
 * other worker's, and a stale run left going would hold this slot for nothing. One HMGET
 * per busy thread. */
static int poll_cancelled(struct worker *w, struct rds *r)
{
	for (long i = 0; i < w->cfg.workers; i++) {
		struct slot *s = &w->slots[i];
		char job[QUEUE_ID_MAX];
		pthread_mutex_lock(&s->lock);
		snprintf(job, sizeof job, "%s", s->cancel ? "" : s->job);
		long attempt = s->attempt;
		pthread_mutex_unlock(&s->lock);
		if (!job[0])
			continue;
		struct rkey jk = rkey1(RK_JOB, job);
		redisReply *rep = rds_cmd(r, jk.s, "HMGET %s status attempts worker", jk.s);
		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			if (rep)
				freeReplyObject(rep);
			return -1;
		}
		int lost = slot_lost(rep, w->consumer, attempt);
		char now[QUEUE_ID_MAX * 4] = "";
		if (lost == QUEUE_TAKEN_OVER && rep->element[2]->type == REDIS_REPLY_STRING)
			snprintf(now, sizeof now, "%s", rep->element[2]->str);
		freeReplyObject(rep);
		if (!lost)
			continue;
		pthread_mutex_lock(&s->lock);
		/* still that job at that attempt: the thread may have moved on */
		if (!strcmp(s->job, job) && s->attempt == attempt && !s->cancel) {
			s->cancel = lost;
			if (lost == QUEUE_TAKEN_OVER)
				log_info("job %s: taken over by another worker (%s): attempt %ld is "
					 "stale, stopping it", job, now[0] ? now : "?", attempt);
			else
				log_info("job %s: cancelled by its owner: stopping it", job);
		}
		pthread_mutex_unlock(&s->lock);
	}
	return 0;
}

/* The runtimes to announce: Piston's (asked each time, on the refresh thread only; given up
 * when the worker stops) or the local ones. Caller frees. Runtimes of Piston's left out,
 * and aliases past the bound, are logged once, not at every refresh: again only when their
 * number changes. */
static char *runtimes_text(struct worker *w, const struct runtimes *local)
{
	if (!w->cfg.piston_url)
		return runtimes_json(local);
	char err[512];
	struct piston_left_out lo;
	struct piston_left_out *last = &w->piston_left;
	char *s = piston_runtimes(w->cfg.piston_url, w->cfg.piston_timeout_ms < 10000 ? w->cfg.piston_timeout_ms : 10000,
				  &w->stop, &lo, err, sizeof err);
	if (!s) {
		if (!w->stop)
			log_warn("runtimes: %s; nothing new announced", err);
		return NULL;
	}
	if (lo.skipped != last->skipped && lo.skipped)
		log_warn("runtimes: %zu of Piston's runtimes left out, not announced (the first: %s)",
			 lo.skipped, lo.why);
	if (lo.dropped != last->dropped && lo.dropped)
		log_warn("runtimes: %zu of the aliases of Piston's runtimes left out, not announced "
			 "(at most %d per runtime)", lo.dropped, PISTON_ALIASES_MAX);
	if (lo.over != last->over && lo.over)
		log_warn("runtimes: %zu of Piston's runtimes left out past the first ones, not "
			 "announced (at most %d runtimes in %d KiB)", lo.over, PISTON_RUNTIMES_MAX,
			 PISTON_RUNTIMES_TEXT_MAX / 1024);
	*last = lo;
	return s;
}

/* The runtimes list is fetched on a thread of its own (docs/INTERNALS.md, "The worker's
 * threads"): Piston's /runtimes may take up to 10 s, and on the main thread that held up
 * the liveness key (renewed every second, gone after WORKER_LIVENESS_MS), the
 * registration, the cancel polls and the heartbeats, so another worker took over every
 * job this one was running. The thread leaves the newest text in pending; the main thread
 * publishes it on its next tick. */
struct refresh {
	struct worker *w;
	const struct runtimes *local; /* read-only after runtimes_load */
	pthread_t thread;
	pthread_mutex_t lock;
	char *pending; /* owned; under lock; NULL: nothing new to publish */
};

static void *refresh_thread(void *arg)
{
	struct refresh *f = arg;
	struct worker *w = f->w;
	/* Piston's list at once (the start does not wait for it); the local one was published
	 * at start */
	long wait_ms = w->cfg.piston_url ? 0 : w->cfg.refresh_s * 1000;
	while (!w->stop) {
		if (wait_ms > 0)
			clock_sleep_watching(wait_ms, BACKOFF_SLICE_MS, &w->stop);
		wait_ms = w->cfg.refresh_s * 1000;
		if (w->stop)
			break;
		char *s = runtimes_text(w, f->local);
		if (!s)
			continue;
		pthread_mutex_lock(&f->lock);
		free(f->pending);
		f->pending = s;
		pthread_mutex_unlock(&f->lock);
	}
	return NULL;
}

/* The text the refresh thread left, or NULL. Caller frees. */
static char *refresh_take(struct refresh *f)
{
	pthread_mutex_lock(&f->lock);
	char *s = f->pending;
	f->pending = NULL;
	pthread_mutex_unlock(&f->lock);
	return s;
}

int main(void)
{
	log_init("codecollab-worker");
	struct worker *w = calloc(1, sizeof *w);
	struct runtimes local = {0};
	struct sandbox *sb = NULL;
	struct execution_env exec;
	struct ai_deps ai;
	struct rds *r = NULL;
	metric_cell *cells = NULL;
	struct metrics_http *mh = NULL;
	struct worker_scrape scrape = {0};
	struct refresh rf = {.pending = NULL};
	int refreshing = 0;
	int rc = 1;
	long started = 0;
	if (!w || load_config(&w->cfg) < 0) {
		rc = 2;
		goto out;
	}
	/* the main thread's loop below is the worker's sign of life (lib/alive.h) */
	char aerr[512];
	if (alive_init(aerr, sizeof aerr) < 0) {
		log_error("%s", aerr);
		rc = 2;
		goto out;
	}
	/* signals: the main thread takes them with sigtimedwait; every thread inherits the
	 * mask, and the sandbox's child clears it again before exec */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);

	if (w->cfg.metrics_port > 0) {
		size_t ncells = metrics_cells(worker_metrics, WM_N);
		cells = calloc(ncells, sizeof *cells);
		if (!cells || metrics_bind(worker_metrics, WM_N, cells, ncells) < 0) {
			log_error("metrics: %s", cells ? "malformed table" : "out of memory");
			goto out;
		}
	}

	/* The consumer name: the host and pid say where the worker runs, and a random part makes
	 * it this process's alone. Host and pid are not enough: workers in pid namespaces of their
	 * own on one host (each pid 1, one hostname), or a container started again with its
	 * hostname and pid, would share one name, so one's liveness key and capacity would stand
	 * for the other's, and one's stop would delete both. */
	char host[200] = "worker", tag[9];
	if (gethostname(host, sizeof host - 1) < 0)
		snprintf(host, sizeof host, "worker");
	if (rnd_hex(tag, 4) < 0) {
		log_error("no name for the worker's consumer: getrandom failed");
		goto out;
	}
	snprintf(w->consumer, sizeof w->consumer, "%s-%d-%s", host, (int)getpid(), tag);

	memset(&exec, 0, sizeof exec);
	exec.limits = w->cfg.limits;
	char err[512];
	if (w->cfg.piston_url) {
		exec.piston_url = w->cfg.piston_url;
		exec.piston_timeout_ms = w->cfg.piston_timeout_ms;
		exec.piston_limits = w->cfg.piston_limits;
		char shown[512]; /* without the secrets an operator may have put in it */
		url_for_log(w->cfg.piston_url, "(PISTON_URL, not shown)", shown, sizeof shown);
		log_info("running code on Piston at %s", shown);
		if (*w->cfg.runtimes_extra)
			log_warn("RUNTIMES_EXTRA is for the local sandbox; Piston offers its own");
	} else {
		if (runtimes_load(&local, w->cfg.runtimes_path, w->cfg.runtimes_extra, err,
				  sizeof err) < 0) {
			log_error("runtimes: %s", err);
			goto out;
		}
		sb = sandbox_open(&w->cfg.sandbox, err, sizeof err);
		if (!sb) {
			log_error("%s", err);
			goto out;
		}
		exec.sandbox = sb;
		exec.runtimes = &local;
		log_info("running code in the local sandbox (%zu runtimes, cgroups %s, host uids %u "
			 "to %u)", local.n,
			 sandbox_cgroup_mode(sb) == SANDBOX_CG_V1   ? "v1"
			 : sandbox_cgroup_mode(sb) == SANDBOX_CG_V2 ? "v2"
								    : "unavailable",
			 w->cfg.sandbox.uid_base, w->cfg.sandbox.uid_base + (w->cfg.sandbox.uid_count - 1));
		/* every job thread may run a step at once, each needing a uid to itself */
		if ((long)w->cfg.sandbox.uid_count < w->cfg.workers)
			log_warn("SANDBOX_UID_COUNT (%u) is below WORKERS (%ld): a step finding every "
				 "uid held waits, then fails", w->cfg.sandbox.uid_count, w->cfg.workers);
	}
	w->handlers[w->nhandlers++] = (struct queue_handler){
		.kind = "execution", .event = EV_EXECUTION, .ctx = &exec, .run = execution_run};
	if (ai_deps_init(&ai, sb, &local, &exec.limits, err, sizeof err) < 0) {
		log_error("%s", err);
		goto out;
	}
	w->handlers[w->nhandlers++] = (struct queue_handler){.kind = "ai", .event = EV_AI, .ctx = &ai,
							     .run = ai_queue_run, .event_data = ai_event_data};
	/* more kinds are added here, each with its handler */

	if (w->cfg.metrics_port > 0) {
		scrape.redis = &w->cfg.redis;
		mh = metrics_http_start(w->cfg.metrics_host, (int)w->cfg.metrics_port,
					worker_metrics_collect, &scrape, err, sizeof err);
		if (!mh) {
			log_error("%s", err);
			goto out;
		}
		log_info("metrics on %s port %ld", w->cfg.metrics_host, w->cfg.metrics_port);
	}

	/* Redis and the group, before any thread reads */
	struct backoff failures = {.first_ms = BACKOFF_FIRST_MS, .max_ms = BACKOFF_MAX_MS};
	struct timespec tick = {.tv_sec = 0, .tv_nsec = 0};
	while (!r) {
		r = connect_redis(w, alive_beat, err, sizeof err);
		if (r && queue_ensure_group(r, err, sizeof err) < 0) {
			rds_free(r);
			r = NULL;
		}
		if (r)
			break;
		log_warn("redis: %s (retrying)", err);
		alive_beat();
		backoff_wait(w, &failures);
		alive_beat();
		if (sigtimedwait(&sigs, NULL, &tick) > 0) {
			rc = 0;
			goto out;
		}
	}
	/* alive before any thread reads, so no entry of ours is ever seen without the key */
	if (queue_alive(r, w->consumer, w->cfg.liveness_ms) < 0)
		log_warn("redis: could not write the liveness key");
	/* three refreshes, plus the longest a fetch from Piston may take (runtimes_text: 10 s),
	 * so a slow Piston does not leave the key missing between two answers */
	long ttl = w->cfg.refresh_s * 3 + 10;
	if (!w->cfg.piston_url) { /* at once: the local list costs nothing to make */
		char *rt_json = runtimes_text(w, &local);
		if (rt_json && queue_publish_runtimes(r, rt_json, ttl) < 0)
			log_warn("could not publish the runtimes");
		free(rt_json);
	}
	rf.w = w;
	rf.local = &local;
	pthread_mutex_init(&rf.lock, NULL);
	if (pthread_create(&rf.thread, NULL, refresh_thread, &rf) != 0) {
		log_error("cannot start the runtimes refresh thread");
		pthread_mutex_destroy(&rf.lock);
		goto out;
	}
	refreshing = 1;

	for (long i = 0; i < w->cfg.workers; i++) {
		struct slot *s = &w->slots[i];
		s->w = w;
		pthread_mutex_init(&s->lock, NULL);
		if (pthread_create(&s->thread, NULL, job_thread, s) != 0) {
			log_error("cannot start job thread %ld", i);
			pthread_mutex_destroy(&s->lock);
			w->stop = 1;
			break;
		}
		started++;
	}
	log_info("consumer %s: %ld job threads on %s (a dead worker's jobs taken over %ld ms "
		 "after its liveness lapsed, a stalled one's after %ld ms idle, %ld attempts)",
		 w->consumer, started, QUEUE_STREAM, w->cfg.liveness_ms, w->cfg.claim_idle_ms,
		 w->cfg.max_attempts);
	if (w->cfg.job_hang_s > 0 && w->cfg.job_hang_s < w->cfg.job_worst_s)
		log_warn("JOB_HANG_TIMEOUT_S (%ld s) is shorter than a job may take by the other "
			 "settings (%ld s: a run's COMPILE_TIMEOUT_MS and RUN_TIMEOUT_MS, or "
			 "PISTON_TIMEOUT_MS; an AI request's attempts at AI_TIMEOUT_MS): such a job "
			 "is stopped and fails",
			 w->cfg.job_hang_s, w->cfg.job_worst_s);

	long long next_beat = 0;
	long long next_poll = 0, next_register = 0, next_sweep = 0, next_alive = clock_mono_ms() + ALIVE_EVERY_MS;
	int registered = 0;
	long long stop_at = 0;
	long beat_every = w->cfg.claim_idle_ms / 3;
	int stuck = 0;
	for (;;) {
		stuck = watch_jobs(w, started);
		if (!stuck)
			alive_beat();
		if (r) /* the client shows life through its calls only while the loop does */
			rds_on_progress(r, stuck ? NULL : alive_beat);
		struct timespec wait = {.tv_sec = 0, .tv_nsec = 100 * 1000000L};
		int sig = sigtimedwait(&sigs, NULL, &wait);
		if (sig > 0 && !w->stop) {
			log_info("signal %d: taking no more jobs, finishing the running ones "
				 "(grace %ld ms)", sig, w->cfg.grace_ms);
			w->stop = 1;
			stop_at = clock_mono_ms();
		} else if (sig > 0 && !w->cancel) {
			log_info("second signal: cancelling running jobs");
			w->cancel = 1;
		}
		for (long i = 0; w->cancel && i < started; i++)
			if (!w->slots[i].cancel) /* one taken over stays so: it is not requeued */
				w->slots[i].cancel = 1;
		if (!w->stop && started < w->cfg.workers)
			w->stop = 1, stop_at = clock_mono_ms(); /* a thread failed to start: exit */
		int all_done = 1;
		for (long i = 0; i < started; i++)
			all_done &= w->slots[i].done != 0;
		if (w->stop && all_done)
			break;
		if (w->stop && !w->cancel && clock_mono_ms() - stop_at > w->cfg.grace_ms) {
			log_info("grace period over: cancelling running jobs, they go back to the queue");
			w->cancel = 1;
		}
		if (!r) {
			r = connect_redis(w, stuck ? NULL : alive_beat, err, sizeof err);
			if (!r)
				continue;
			metric_inc(&worker_metrics[WM_REDIS_RECONNECTS], 0, 0);
		}
		int bad = 0;
		/* the scheduler counts this worker's threads while it takes jobs; once it stops,
		 * they stop counting at once (its running jobs still do, until they end) */
		if (!w->stop && clock_mono_ms() >= next_register) {
			bad |= jobstate_worker(r, w->consumer, started, REGISTER_LIFETIME_MS,
					       w->cfg.room_cap, err, sizeof err) < 0;
			registered = 1;
			next_register = clock_mono_ms() + REGISTER_EVERY_MS;
		} else if (w->stop && registered) {
			bad |= jobstate_worker(r, w->consumer, 0, 0, w->cfg.room_cap, err, sizeof err) < 0;
			registered = 0;
		}
		/* alive while any job thread runs, stopping or not: its jobs are its own */
		if (clock_mono_ms() >= next_alive) {
			bad |= queue_alive(r, w->consumer, w->cfg.liveness_ms) < 0;
			next_alive = clock_mono_ms() + ALIVE_EVERY_MS;
		}
		if (clock_mono_ms() >= next_poll) {
			bad |= poll_cancelled(w, r) < 0;
			next_poll = clock_mono_ms() + CANCEL_POLL_MS;
		}
		/* the names of workers that are gone, out of the consumer group (at start, then
		 * once a minute) */
		if (!w->stop && clock_mono_ms() >= next_sweep) {
			long gone = queue_sweep(r, w->consumer, err, sizeof err);
			if (gone > 0)
				log_info("%ld gone worker(s) taken out of the consumer group", gone);
			bad |= gone < 0;
			next_sweep = clock_mono_ms() + SWEEP_EVERY_MS;
		}
		if (clock_mono_ms() >= next_beat) {
			bad |= heartbeat(w, r) < 0;
			next_beat = clock_mono_ms() + beat_every;
		}
		char *rt_json = w->stop ? NULL : refresh_take(&rf);
		if (rt_json)
			bad |= queue_publish_runtimes(r, rt_json, ttl) < 0;
		free(rt_json);
		if (bad) {
			log_warn("%s", rds_error(r));
			rds_free(r);
			r = NULL;
		}
	}
	for (long i = 0; i < started; i++) {
		pthread_join(w->slots[i].thread, NULL);
		pthread_mutex_destroy(&w->slots[i].lock);
	}
	/* every job thread has ended: nothing of ours is running any more */
	if (r && queue_alive(r, w->consumer, 0) < 0)
		log_warn("redis: could not delete the liveness key");
	if (r && queue_forget(r, w->consumer) < 0)
		log_warn("redis: could not take the consumer %s out of the group", w->consumer);
	log_info("stopped");
	rc = 0;
out:
	if (refreshing) {
		w->stop = 1; /* also ends a /runtimes request under way */
		pthread_join(rf.thread, NULL);
		pthread_mutex_destroy(&rf.lock);
		free(rf.pending);
	}
	metrics_http_stop(mh);
	worker_scrape_free(&scrape);
	metrics_unbind(worker_metrics, WM_N);
	free(cells);
	if (r)
		rds_free(r);
	sandbox_close(sb);
	runtimes_free(&local);
	free(w);
	alive_close();
	curl_global_cleanup();
	return rc;
}

/* codecollab-snapshotter: saves the rooms' documents to PostgreSQL's history while they
 * change, and thins that history (docs/INTERNALS.md, "Operations and snapshots" and
 * "History"). A program of its own on the store layer (lib/store_doc.h); any number may
 * run: each claims a due room before it saves it, with a lease on cc:snap:due
 * (store_doc_claim): a snapshotter that dies during a save leaves the room due again when
 * its lease ends, and one that saved ends the lease (store_doc_release).
 *
 * Settings: REDIS_URL, DATABASE_URL and the document settings of lib/store_doc.h
 * (DOCUMENT_MAX_BYTES, SNAPSHOT_INTERVAL_MS, HISTORY_*, OPS_LOG_MAX_BYTES, which also
 * bounds the ops list its folds trim); SNAPSHOT_LEASE_MS (how long a
 * claim holds a room; at least 3 × SNAPSHOT_INTERVAL_MS); SNAPSHOTTER_METRICS_PORT (on
 * METRICS_HOST) for GET /metrics (snap_metrics.h); SNAPSHOT_SWEEP_MS (how often a walk over
 * every room starts that marks due the rooms whose edits are not saved and that lost their
 * mark, store_doc_sweep, and takes the rooms idle for ROOM_UNLOAD_IDLE_S seconds, 86,400
 * by default, 0 never, out of Redis). SIGTERM or SIGINT: one more pass
 * that saves every room still marked due, whatever its time, then exit 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "start.h"
#include "alive.h"
#include "cfg.h"
#include "clock.h"
#include "log.h"
#include "metrics_http.h"
#include "rds.h"
#include "snap_metrics.h"
#include "store.h"
#include "store_doc.h"

#define SNAP_BATCH 500	    /* rooms taken per pass */
#define SNAP_IDLE_MS 200    /* between passes that found less than a batch */
#define SNAP_SLICE_MS 50    /* how soon a stop is noticed while idle */
#define SNAP_DRAIN_PASSES 20 /* passes at most after a stop */
#define SNAP_SPREAD_MAX_MS 500 /* a pass's saves spread over at most this */
#define SNAP_SWEEP_PAGE 500    /* rooms one page of the sweep looks at (one per pass) */

static volatile int snap_stop;

static void on_term(int sig)
{
	(void)sig;
	snap_stop = 1;
}

/* Saves the due rooms of one pass (all marked ones when draining); the number found.
 *
 * Rooms that started changing together come due together, every SNAPSHOT_INTERVAL_MS: saved
 * back to back, their reads of the history in Redis and their writes into PostgreSQL queue
 * every commit behind them for tens of milliseconds (docs/INTERNALS.md, "History";
 * docs/BENCHMARKS.md, "Write path at a fixed rate"). So a pass that holds everything due (fewer than a batch) spreads its saves over a
 * quarter of the interval, at most SNAP_SPREAD_MAX_MS; a full batch means a backlog and is
 * saved at full speed, as is everything when draining. */
static size_t pass(struct store *s, const struct store_doc_cfg *cfg, long lease_ms, int draining)
{
	redisReply *due;
	long long until = draining ? -1 : clock_wall_ms();
	if (store_doc_due(s, until, SNAP_BATCH, &due) != STORE_OK) {
		log_warn("snapshotter: %s", s->msg);
		return 0;
	}
	size_t n = due->elements;
	long long started = 0;
	long long spread = cfg->snapshot_interval_ms / 4;
	if (spread > SNAP_SPREAD_MAX_MS)
		spread = SNAP_SPREAD_MAX_MS;
	long long gap = !draining && n > 1 && n < SNAP_BATCH ? spread / (long long)n : 0;
	for (size_t i = 0; i < n; i++) {
		if (gap > 0 && i > 0 && !snap_stop) {
			long long wait = gap - (clock_mono_ms() - started);
			if (wait > 0)
				clock_sleep_watching(wait, SNAP_SLICE_MS, &snap_stop);
		}
		alive_beat();
		started = clock_mono_ms();
		const redisReply *room = due->element[i];
		if (room->type != REDIS_REPLY_STRING)
			continue;
		/* claim it; a failed connection ends the pass (the rooms left stay due for the
		 * next one, never claimed on a connection that is gone) */
		long long lease_end = clock_wall_ms() + lease_ms;
		enum store_status st = store_doc_claim(s, room->str, until, lease_end);
		if (st == STORE_CONFLICT)
			continue; /* another snapshotter took it */
		if (st != STORE_OK)
			break;
		long long t0 = clock_mono_ms();
		st = store_doc_snapshot(s, cfg, room->str);
		/* a Redis that had lost writes: counted (the save logged the room) */
		metric_add(&snap_metrics[SM_REDIS_LOSSES], SM_LOSS_RESTORED, 0, s->lost_restored);
		metric_add(&snap_metrics[SM_REDIS_LOSSES], SM_LOSS_RESTARTED, 0, s->lost_restarted);
		s->lost_restored = s->lost_restarted = 0;
		/* saved, nothing new, or the room is gone: the lease ends (a failure keeps it, the
		 * room is tried again) */
		if (st == STORE_OK || st == STORE_NOT_FOUND)
			store_doc_release(s, cfg, room->str, lease_end);
		if (st == STORE_OK)
			metric_observe(&snap_metrics[SM_SECONDS], 0, 0, clock_mono_ms() - t0);
		metric_inc(&snap_metrics[SM_SNAPSHOTS],
			   st == STORE_OK ? SM_SAVED : st == STORE_NOT_FOUND ? SM_GONE : SM_FAILED, 0);
		if (st != STORE_OK && st != STORE_NOT_FOUND)
			log_warn("room %s: no snapshot (%s): %s", room->str, store_status_name(st), s->msg);
		if (st == STORE_REDIS_UNAVAILABLE)
			break;
	}
	freeReplyObject(due);
	return n;
}

int main(void)
{
	struct store_doc_cfg cfg;
	struct rds_target redis;
	struct store s;
	char err[512];

	if (start_program("codecollab-snapshotter", on_term) < 0)
		return 1;
	if (rds_config_env(&redis, NULL, err, sizeof err) < 0 ||
	    store_doc_cfg_load(&cfg, err, (int)sizeof err) < 0 ||
	    store_cfg_load(err, (int)sizeof err) < 0) {
		log_error("configuration: %s", err);
		curl_global_cleanup();
		return 1;
	}
	long metrics_port = 0, lease_ms = 0, sweep_ms = 0, unload_idle_s = 0;
	const struct cfg_setting settings[] = {
		{"SNAPSHOTTER_METRICS_PORT", 0, 0, 65535, &metrics_port},
		{"SNAPSHOT_LEASE_MS", 60000, 150, 86400000, &lease_ms},
		{"SNAPSHOT_SWEEP_MS", 60000, 1000, 86400000, &sweep_ms},
		{"ROOM_UNLOAD_IDLE_S", 86400, 0, 86400L * 36500, &unload_idle_s},
	};
	if (cfg_load(settings, 4, err, (int)sizeof err) < 0 ||
	    alive_init(err, (int)sizeof err) < 0) {
		log_error("configuration: %s", err);
		curl_global_cleanup();
		return 1;
	}
	/* a commit's mark (its time + the interval) must be able to fall below a lease taken
	 * just before it, or the release would take the room off the schedule with that commit
	 * unsaved (store_doc_release keeps the last two intervals of a lease) */
	/* not set: 60 s, or three intervals when the interval is longer than 20 s */
	if (!getenv("SNAPSHOT_LEASE_MS") && lease_ms < 3 * cfg.snapshot_interval_ms)
		lease_ms = 3 * cfg.snapshot_interval_ms;
	if (lease_ms < 3 * cfg.snapshot_interval_ms) {
		log_error("configuration: SNAPSHOT_LEASE_MS (%ld) must be at least 3 x "
			  "SNAPSHOT_INTERVAL_MS (%ld)",
			  lease_ms, cfg.snapshot_interval_ms);
		curl_global_cleanup();
		return 1;
	}
	/* METRICS=off: nothing counted, nothing listens */
	metric_cell *cells = NULL;
	struct metrics_http *mh = NULL;
	if (metrics_port > 0 && !metrics_disabled_by_env()) {
		const char *host = cfg_str("METRICS_HOST", "127.0.0.1");
		size_t n = metrics_cells(snap_metrics, SM_N);
		cells = calloc(n, sizeof *cells);
		if (!cells || metrics_bind(snap_metrics, SM_N, cells, n) < 0 ||
		    !(mh = metrics_http_start(host, (int)metrics_port, snap_metrics_collect, NULL, err,
					      sizeof err))) {
			log_error("%s", cells ? err : "metrics: out of memory");
			free(cells);
			curl_global_cleanup();
			return 1;
		}
		log_info("metrics on %s port %ld", host, metrics_port);
	}
	store_init(&s, cfg_str("DATABASE_URL", "postgresql:///codecollab"), &redis);
	/* long work (thinning, a slow Redis) shows life as it goes (lib/alive.h) */
	store_on_progress(&s, alive_beat);
	log_info("snapshotter: writing room snapshots every %ld ms while rooms change",
		 cfg.snapshot_interval_ms);
	long long next_thin = 0; /* at start, then every HISTORY_THIN_INTERVAL_S */
	long long next_sweep = 0; /* at start, then every SNAPSHOT_SWEEP_MS */
	char sweep_after[256];	  /* the last room of the walk's previous page */
	int sweeping = 0, drains = 0;
	for (;;) {
		/* once stopped: passes that take everything due, whatever its time (rooms leased by
		 * others too: saves of a room wait for each other, one with nothing new writes
		 * nothing), until none is left (a room whose save keeps failing keeps its lease: a
		 * bounded number of passes) */
		alive_beat(); /* the loop turns: the sign of life (lib/alive.h) */
		int draining = snap_stop;
		size_t n = pass(&s, &cfg, lease_ms, draining);
		if (draining && (n == 0 || ++drains >= SNAP_DRAIN_PASSES))
			break;
		if (draining)
			continue;
		if (clock_wall_ms() >= next_thin) {
			metric_inc(&snap_metrics[SM_THINS],
				   store_doc_thin(&s, &cfg) < 0 ? SM_THIN_FAILED : SM_THIN_OK, 0);
			next_thin = clock_wall_ms() + cfg.history_thin_interval_s * 1000;
		}
		/* the backstop of the API's marks (store_doc_sweep): a walk over every room starts
		 * every SNAPSHOT_SWEEP_MS (or when the last ends, if it took longer), one page
		 * per pass of this loop; a failed page ends the walk, the next starts afresh */
		if (sweeping || clock_mono_ms() >= next_sweep) {
			if (!sweeping) {
				sweeping = 1;
				sweep_after[0] = '\0';
				next_sweep = clock_mono_ms() + sweep_ms;
			}
			long marked = 0, unloaded = 0;
			int more = store_doc_sweep(&s, &cfg, sweep_after, sizeof sweep_after,
						   SNAP_SWEEP_PAGE, unload_idle_s, &marked, &unloaded);
			metric_add(&snap_metrics[SM_SWEPT_MARKS], 0, 0, marked);
			metric_add(&snap_metrics[SM_UNLOADED], 0, 0, unloaded);
			if (more < 0)
				log_warn("snapshotter: the walk over the rooms (for lost snapshot marks) "
					 "failed; the next starts within %ld ms: %s",
					 sweep_ms, s.msg);
			if (more <= 0) {
				sweeping = 0;
				metric_inc(&snap_metrics[SM_SWEEPS],
					   more < 0 ? SM_SWEEP_FAILED : SM_SWEEP_DONE, 0);
			}
		}
		if (n < SNAP_BATCH)
			clock_sleep_watching(SNAP_IDLE_MS, SNAP_SLICE_MS, &snap_stop);
	}
	log_info("snapshotter: stopped");
	alive_close();
	metrics_http_stop(mh);
	metrics_unbind(snap_metrics, SM_N);
	free(cells);
	store_close(&s);
	curl_global_cleanup();
	return 0;
}

#include "snap_metrics.h"

static const char *const outcomes[] = {"saved", "gone", "failed"};
static const char *const thins[] = {"ok", "failed"};
static const char *const losses[] = {"restored", "restarted"};
static const char *const sweeps[] = {"done", "failed"};
/* milliseconds, rendered in seconds */
static const long long save_ms[] = {1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000};

struct metric snap_metrics[SM_N] = {
	[SM_SNAPSHOTS] = {.name = "codecollab_snapshotter_snapshots_total",
			  .help = "Due rooms handled: saved to the history, gone (deleted "
				  "meanwhile), or failed (the room is marked due again).",
			  .type = METRIC_COUNTER, .nlabels = 1, .label = {{"outcome", outcomes, 3}}},
	[SM_SECONDS] = {.name = "codecollab_snapshotter_snapshot_seconds",
			.help = "Time to save one room (fold, then write to PostgreSQL).",
			.type = METRIC_HISTOGRAM, .bounds = save_ms,
			.nbounds = sizeof save_ms / sizeof save_ms[0], .unit = 1000},
	[SM_THINS] = {.name = "codecollab_snapshotter_thin_runs_total",
		      .help = "Runs of the history's thinning, by outcome.",
		      .type = METRIC_COUNTER, .nlabels = 1, .label = {{"outcome", thins, 2}}},
	[SM_REDIS_LOSSES] = {.name = "codecollab_snapshotter_redis_losses_total",
			     .help = "Rooms found with writes their saved history holds lost from "
				     "Redis: put back to the saved revision (restored), or kept as "
				     "people went on editing and saved as a new start of the history "
				     "(restarted).",
			     .type = METRIC_COUNTER, .nlabels = 1,
			     .label = {{"handled", losses, 2}}},
	[SM_SWEEPS] = {.name = "codecollab_snapshotter_sweeps_total",
		       .help = "Walks over every room that mark the rooms whose saved revision "
			       "differs from Redis and that are not due: done, or failed (Redis or "
			       "PostgreSQL; the next walk starts SNAPSHOT_SWEEP_MS after this one did).",
		       .type = METRIC_COUNTER, .nlabels = 1, .label = {{"outcome", sweeps, 2}}},
	[SM_SWEPT_MARKS] = {.name = "codecollab_snapshotter_sweep_marked_total",
			    .help = "Rooms the walks found with unsaved edits (or a Redis behind "
				    "the saved history) and no snapshot mark, and marked due.",
			    .type = METRIC_COUNTER},
	[SM_UNLOADED] = {.name = "codecollab_snapshotter_rooms_unloaded_total",
			 .help = "Idle rooms the walks took out of Redis (nothing unsaved, no "
				 "stream open, idle ROOM_UNLOAD_IDLE_S); the next read restores "
				 "each from PostgreSQL.",
			 .type = METRIC_COUNTER},
};

int snap_metrics_collect(void *arg, struct buf *out)
{
	(void)arg;
	return metrics_render(snap_metrics, SM_N, out);
}

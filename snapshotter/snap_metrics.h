/* snap_metrics: what the snapshotter counts for operators (lib/metrics.h), served on
 * SNAPSHOTTER_METRICS_PORT by lib/metrics_http; docs/OPERATIONS.md "Metrics". */
#ifndef CC_SNAP_METRICS_H
#define CC_SNAP_METRICS_H

#include "metrics.h"

enum snap_metric { SM_SNAPSHOTS, SM_SECONDS, SM_THINS, SM_REDIS_LOSSES, SM_SWEEPS, SM_SWEPT_MARKS, SM_UNLOADED, SM_N };
enum sm_outcome { SM_SAVED, SM_GONE, SM_FAILED };
enum sm_thin { SM_THIN_OK, SM_THIN_FAILED };
enum sm_loss { SM_LOSS_RESTORED, SM_LOSS_RESTARTED };
enum sm_sweep { SM_SWEEP_DONE, SM_SWEEP_FAILED };

extern struct metric snap_metrics[SM_N];

int snap_metrics_collect(void *arg, struct buf *out);

#endif

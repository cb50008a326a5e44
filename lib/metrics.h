/* metrics: counters, gauges and histograms for operators, rendered in the Prometheus text
 * exposition format (docs/OPERATIONS.md "Metrics" lists every metric of every program).
 *
 * A program describes its metrics in one table of struct metric: name (prefixed
 * codecollab_), help text, type, at most METRIC_LABELS_MAX labels each with a fixed list of
 * values, and for a histogram its bucket bounds. Recording picks a series by the indices of
 * its label values, so no string is looked up or allocated on a hot path.
 *
 * Storage is one array of 64-bit atomic cells that the table is bound to
 * (metrics_bind): malloc'd memory in the broker and the worker, a file mapped MAP_SHARED by
 * every API process (lib/metrics_shm.h), where lock-free atomics work between processes
 * too. Until a table is bound every recording is a no-op: that is how METRICS=off switches
 * metrics off (and how the benchmark measures their cost).
 *
 * Histograms record integers in the table's unit (e.g. microseconds) and render them
 * divided by `unit` (a power of ten: 1000000 turns microseconds into seconds), exactly, with
 * no floating point. Each series keeps one cell per bucket (not cumulative) and the sum; the
 * count is the total of the buckets, so `_count` always equals the `+Inf` bucket. */
#ifndef CC_METRICS_H
#define CC_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

#include "buf.h"

#define METRIC_LABELS_MAX 2
#define METRIC_BOUNDS_MAX 24

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

/* One label and its values, in the order of the indices recording uses. The values are
 * written as they are: plain identifiers (no quote, backslash or line break). */
struct metric_label {
	const char *name;
	const char *const *values;
	size_t n;
};

typedef _Atomic long long metric_cell;

struct metric {
	const char *name;
	const char *help;
	enum metric_type type;
	size_t nlabels; /* 0, 1 or 2 */
	struct metric_label label[METRIC_LABELS_MAX];
	/* histograms: ascending upper bounds in the recorded unit; +Inf is implicit */
	const long long *bounds;
	size_t nbounds;
	long long unit; /* a power of ten: rendered values are recorded / unit; 0 means 1 */
	metric_cell *cells; /* set by metrics_bind; NULL: not recording */
};

/* The cells a table needs. */
size_t metrics_cells(const struct metric *m, size_t n);
/* Points every metric of the table at its part of store (ncells long, zeroed by the
 * caller or shared with other processes that bound the same table). -1 when a metric is
 * malformed (too many labels or bounds, a unit that is not a power of ten) or store is too
 * short; nothing is bound then. */
int metrics_bind(struct metric *m, size_t n, metric_cell *store, size_t ncells);
/* Unbinds the table (recording becomes a no-op again). */
void metrics_unbind(struct metric *m, size_t n);

/* The series of label value indices a (first label) and b (second label); unused indices
 * are 0. An index out of range records nothing. */
void metric_add(const struct metric *m, size_t a, size_t b, long long v);
static inline void metric_inc(const struct metric *m, size_t a, size_t b)
{
	metric_add(m, a, b, 1);
}
void metric_set(const struct metric *m, size_t a, size_t b, long long v);
void metric_observe(const struct metric *m, size_t a, size_t b, long long v);
/* A counter's or gauge's value, a histogram's count; 0 when not bound. */
long long metric_value(const struct metric *m, size_t a, size_t b);
/* A histogram's sum, in the recorded unit. */
long long metric_sum(const struct metric *m, size_t a, size_t b);

/* The index of value s among a label's values, or -1. */
int metric_label_index(const struct metric_label *l, const char *s);

/* Appends the table in the text exposition format (version 0.0.4): # HELP and # TYPE,
 * then every series (all combinations of label values, zeros included, so a rate() has a
 * starting point); histograms as _bucket{le=…} (cumulative), _sum and _count. 0 or -1
 * (the buffer's bound). An unbound table renders nothing. */
int metrics_render(const struct metric *m, size_t n, struct buf *out);

/* The content type of what metrics_render writes. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Whether METRICS in the environment switches metrics off ("off", "0", "no"). */
int metrics_disabled_by_env(void);

#endif

/* metrics_shm: one table of metrics (lib/metrics.h) shared by several processes through a
 * file mapped MAP_SHARED: every API process adds to the same cells, so any one of them
 * answers GET /metrics for all of them together, and a process that exits or is replaced
 * loses nothing it counted.
 *
 * The file is a header (a magic number, the layout's hash and its cell count) followed by
 * the cells. The first process creates and sizes it; the others map it when the header
 * matches their own table. A file of another layout (an older binary) is unlinked and
 * replaced: processes still running the old binary keep counting into the old inode, the
 * new ones share the new file. Creation is serialised with flock(2) on the file. */
#ifndef CC_METRICS_SHM_H
#define CC_METRICS_SHM_H

#include <stddef.h>

#include "metrics.h"

struct metrics_shm {
	void *map;
	size_t len;
};

/* Maps path (created 0600 when missing) and binds the table to it. 0, or -1 with a message
 * in err (nothing bound). */
int metrics_shm_open(struct metrics_shm *s, const char *path, struct metric *m, size_t n,
		     char *err, size_t errlen);
/* Unbinds the table and unmaps (the file stays). */
void metrics_shm_close(struct metrics_shm *s, struct metric *m, size_t n);

/* The layout's hash: names, types, labels, values, bounds and units. Two tables with the
 * same hash put the same series in the same cells. */
unsigned long long metrics_layout_hash(const struct metric *m, size_t n);

#endif

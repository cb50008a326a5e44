#include "metrics_shm.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"

#define SHM_MAGIC 0x636373686d657431ULL /* "ccshmet1" */

struct shm_head {
	unsigned long long magic;
	unsigned long long layout;
	unsigned long long ncells;
	unsigned long long pad; /* the cells start 32 bytes in: aligned for 64-bit atomics */
};

static unsigned long long fnv(unsigned long long h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static unsigned long long fnv_str(unsigned long long h, const char *s)
{
	return fnv(h, s, strlen(s) + 1);
}

unsigned long long metrics_layout_hash(const struct metric *m, size_t n)
{
	unsigned long long h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h = fnv_str(h, m[i].name);
		h = fnv(h, &m[i].type, sizeof m[i].type);
		for (size_t l = 0; l < m[i].nlabels; l++) {
			h = fnv_str(h, m[i].label[l].name);
			for (size_t v = 0; v < m[i].label[l].n; v++)
				h = fnv_str(h, m[i].label[l].values[v]);
		}
		for (size_t b = 0; b < m[i].nbounds; b++)
			h = fnv(h, &m[i].bounds[b], sizeof m[i].bounds[b]);
		h = fnv(h, &m[i].unit, sizeof m[i].unit);
	}
	return h;
}

/* Opens path and locks it, making sure the locked inode is still the one the path names
 * (another process may have replaced it meanwhile). The fd, or -1. */
static int open_locked(const char *path, char *err, size_t errlen)
{
	for (int tries = 0; tries < 20; tries++) {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			errbuf_set(err, errlen, "metrics: cannot open %s: %s", path, strerror(errno));
			return -1;
		}
		struct stat a, b;
		if (flock(fd, LOCK_EX) < 0 || fstat(fd, &a) < 0) {
			errbuf_set(err, errlen, "metrics: cannot lock %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			return fd;
		close(fd); /* replaced under us: open the new one */
	}
	errbuf_set(err, errlen, "metrics: %s keeps being replaced", path);
	return -1;
}

int metrics_shm_open(struct metrics_shm *s, const char *path, struct metric *m, size_t n,
		     char *err, size_t errlen)
{
	s->map = NULL;
	s->len = 0;
	size_t ncells = metrics_cells(m, n);
	size_t len = sizeof(struct shm_head) + ncells * sizeof(metric_cell);
	unsigned long long layout = metrics_layout_hash(m, n);
	int fd = -1;
	for (int round = 0; round < 2; round++) {
		fd = open_locked(path, err, errlen);
		if (fd < 0)
			return -1;
		struct stat st;
		if (fstat(fd, &st) < 0) {
			errbuf_set(err, errlen, "metrics: %s: %s", path, strerror(errno));
			goto fail;
		}
		if (st.st_size == 0) {
			/* new: sized (zero cells) and its header written while we hold the lock */
			struct shm_head h = {SHM_MAGIC, layout, ncells, 0};
			if (ftruncate(fd, (off_t)len) < 0 || pwrite(fd, &h, sizeof h, 0) != sizeof h) {
				errbuf_set(err, errlen, "metrics: cannot size %s: %s", path,
					   strerror(errno));
				goto fail;
			}
			break;
		}
		struct shm_head h;
		if ((size_t)st.st_size == len && pread(fd, &h, sizeof h, 0) == sizeof h &&
		    h.magic == SHM_MAGIC && h.layout == layout && h.ncells == ncells)
			break;
		/* another layout: this one goes, processes that mapped it keep their mapping */
		if (round == 1 || unlink(path) < 0) {
			errbuf_set(err, errlen, "metrics: %s holds another layout and cannot be replaced",
				   path);
			goto fail;
		}
		close(fd);
		fd = -1;
	}
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		errbuf_set(err, errlen, "metrics: cannot map %s: %s", path, strerror(errno));
		goto fail;
	}
	/* unlocked by hand: the mapping holds the open file, so closing would keep the lock */
	flock(fd, LOCK_UN);
	close(fd);
	if (metrics_bind(m, n, (metric_cell *)(void *)((char *)p + sizeof(struct shm_head)),
			 ncells) < 0) {
		munmap(p, len);
		errbuf_set(err, errlen, "metrics: malformed table");
		return -1;
	}
	s->map = p;
	s->len = len;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

void metrics_shm_close(struct metrics_shm *s, struct metric *m, size_t n)
{
	metrics_unbind(m, n);
	if (s->map)
		munmap(s->map, s->len);
	s->map = NULL;
	s->len = 0;
}

/* sandbox_uid: see sandbox_uid.h. */
#include "sandbox_uid.h"

#include "errbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* s as a decimal number of at most max: digits only (no sign, no space), -1 otherwise. */
static long long parse_id(const char *s, long long max)
{
	long long v = 0;
	if (!*s)
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
		if (v > max)
			return -1;
	}
	return v;
}

int sandbox_uid_range_parse(const char *base_s, const char *count_s, unsigned *base,
			    unsigned *count, char *err, size_t errlen)
{
	long long b = SANDBOX_UID_BASE_DEFAULT, n = SANDBOX_UID_COUNT_DEFAULT;
	if (base_s && *base_s && ((b = parse_id(base_s, SANDBOX_UID_LAST_MAX)) < 1)) {
		errbuf_set(err, errlen, "SANDBOX_UID_BASE must be an integer from 1 to %ld (got \"%s\")",
			   SANDBOX_UID_LAST_MAX, base_s);
		return -1;
	}
	if (count_s && *count_s && ((n = parse_id(count_s, SANDBOX_UID_COUNT_MAX)) < 1)) {
		errbuf_set(err, errlen, "SANDBOX_UID_COUNT must be an integer from 1 to %ld (got \"%s\")",
			   SANDBOX_UID_COUNT_MAX, count_s);
		return -1;
	}
	long long last = b + n - 1;
	if (last > SANDBOX_UID_LAST_MAX) {
		errbuf_set(err, errlen, "SANDBOX_UID_BASE + SANDBOX_UID_COUNT - 1 must be at most %ld "
					"(got %lld + %lld - 1)", SANDBOX_UID_LAST_MAX, b, n);
		return -1;
	}
	if (b <= 65535 && last >= 65534) {
		errbuf_set(err, errlen, "the sandbox's host uids, SANDBOX_UID_BASE %lld to %lld, must not "
					"include 65534 (nobody, which other services run as) or 65535", b, last);
		return -1;
	}
	*base = (unsigned)b;
	*count = (unsigned)n;
	return 0;
}

/* The field'th (from 0) colon-separated field of line [p, end) as an id; -1 when absent
 * or not a number. */
static long long field_id(const char *p, const char *end, int field)
{
	for (int f = 0; f < field; f++) {
		const char *c = memchr(p, ':', (size_t)(end - p));
		if (!c)
			return -1;
		p = c + 1;
	}
	const char *c = memchr(p, ':', (size_t)(end - p));
	const char *stop = c ? c : end;
	char num[16];
	size_t len = (size_t)(stop - p);
	if (len == 0 || len >= sizeof num)
		return -1;
	memcpy(num, p, len);
	num[len] = '\0';
	return parse_id(num, SANDBOX_UID_LAST_MAX + 1);
}

int sandbox_uid_range_used(const char *text, char kind, unsigned base, unsigned count,
			   char *who, size_t whosize)
{
	long long lo = base, hi = (long long)base + count; /* [lo, hi) */
	for (const char *p = text; *p;) {
		const char *end = strchr(p, '\n');
		if (!end)
			end = p + strlen(p);
		long long first = -1, n = 1;
		if (*p != '#') {
			if (kind == 'p') {
				first = field_id(p, end, 2);
			} else {
				first = field_id(p, end, 1);
				n = field_id(p, end, 2);
			}
		}
		if (first >= 0 && n > 0 && first < hi && first + n > lo) {
			const char *colon = memchr(p, ':', (size_t)(end - p));
			int len = (int)((colon ? colon : end) - p);
			snprintf(who, whosize, "%.*s", len, p);
			return 1;
		}
		p = *end ? end + 1 : end;
	}
	return 0;
}

int sandbox_uid_dir_open(const char *path, char *err, size_t errlen)
{
	if (path[0] != '/') {
		errbuf_set(err, errlen, "SANDBOX_UID_LOCK_DIR must be an absolute path (got \"%s\")",
			   path);
		return -1;
	}
	/* its parent: whoever may rename entries there could move the directory away and let
	 * the next worker make a new one, whose locks the workers still in the old one never
	 * see. So root's or the worker's, and not writable by others unless sticky (/tmp) */
	char parent[PATH_MAX];
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	while (n > 0 && path[n - 1] != '/')
		n--;
	while (n > 1 && path[n - 1] == '/')
		n--;
	if (n >= sizeof parent) {
		errbuf_set(err, errlen, "SANDBOX_UID_LOCK_DIR is too long");
		return -1;
	}
	memcpy(parent, path, n);
	parent[n] = '\0';
	struct stat ps;
	if (stat(parent, &ps) < 0) {
		errbuf_set(err, errlen, "%s (SANDBOX_UID_LOCK_DIR): its parent %s: %s", path, parent,
			   strerror(errno));
		return -1;
	}
	if ((ps.st_uid != 0 && ps.st_uid != geteuid()) ||
	    ((ps.st_mode & (S_IWGRP | S_IWOTH)) && !(ps.st_mode & S_ISVTX))) {
		errbuf_set(err, errlen, "%s (SANDBOX_UID_LOCK_DIR): its parent %s (uid %u, mode %04o) "
					"must belong to root or the worker's user and be writable by "
					"no one else unless sticky: another user could move the "
					"directory away", path, parent, (unsigned)ps.st_uid,
			   (unsigned)(ps.st_mode & 07777));
		return -1;
	}
	/* 0700 or less (the umask): the worker's user alone may look in or write */
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		errbuf_set(err, errlen, "%s (SANDBOX_UID_LOCK_DIR) cannot be made: %s", path,
			   strerror(errno));
		return -1;
	}
	struct stat ls, st;
	if (lstat(path, &ls) < 0) {
		errbuf_set(err, errlen, "%s (SANDBOX_UID_LOCK_DIR): %s", path, strerror(errno));
		return -1;
	}
	if (S_ISLNK(ls.st_mode)) {
		errbuf_set(err, errlen, "%s (SANDBOX_UID_LOCK_DIR) is a symbolic link: it must be a "
					"directory of its own", path);
		return -1;
	}
	if (!S_ISDIR(ls.st_mode)) {
		errbuf_set(err, errlen, "%s (SANDBOX_UID_LOCK_DIR) is not a directory", path);
		return -1;
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		errbuf_set(err, errlen, "%s (SANDBOX_UID_LOCK_DIR) cannot be opened: %s", path,
			   strerror(errno));
		return -1;
	}
	/* what was opened is what was looked at, and is judged by its descriptor */
	const char *why = NULL;
	if (fstat(fd, &st) < 0)
		why = strerror(errno);
	else if (st.st_dev != ls.st_dev || st.st_ino != ls.st_ino)
		why = "it was replaced while being opened";
	if (why) {
		errbuf_set(err, errlen, "%s (SANDBOX_UID_LOCK_DIR): %s", path, why);
		close(fd);
		return -1;
	}
	uid_t me = geteuid();
	if (st.st_uid != me) {
		errbuf_set(err, errlen, "%s (SANDBOX_UID_LOCK_DIR) is owned by uid %u, not by the "
					"worker's own (%u): whoever owns it could hold the sandbox's "
					"uids", path, (unsigned)st.st_uid, (unsigned)me);
		close(fd);
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		errbuf_set(err, errlen, "%s (SANDBOX_UID_LOCK_DIR) may be written by its group or "
					"others (mode %04o): only the worker's user may write there "
					"(chmod go-w, or 0700)", path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	return fd;
}

/* A process-wide turn, so that consecutive steps start looking at different uids. */
static unsigned next_turn;

int uid_lease_take(int dir_fd, unsigned base, unsigned count, struct uid_lease *l)
{
	l->fd = -1;
	/* and workers of one host at different places of the range, by their pids */
	unsigned turn = __atomic_fetch_add(&next_turn, 1, __ATOMIC_RELAXED);
	unsigned start = (turn + (unsigned)getpid() * 2654435761u) % count;
	for (unsigned i = 0; i < count; i++) {
		unsigned uid = base + (start + i) % count;
		char name[32];
		snprintf(name, sizeof name, "%u%s", uid, SANDBOX_UID_LOCK_SUFFIX);
		/* O_NONBLOCK: nothing but a regular file is expected, and no open may hang */
		int fd = openat(dir_fd, name,
				O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
		if (fd < 0)
			return -1;
		/* a lock of this open file alone: another open of it, in this process or any
		 * other, is refused until this descriptor (and any copy of it) is closed */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			l->fd = fd;
			l->uid = uid;
			return 0;
		}
		int e = errno;
		close(fd);
		if (e != EWOULDBLOCK) {
			errno = e;
			return -1;
		}
	}
	errno = EWOULDBLOCK;
	return -1;
}

void uid_lease_give(struct uid_lease *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

/* sandbox_uid: see sandbox_uid.h. */
#include "sandbox_uid.h"

#include "clock.h"
#include "errbuf.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

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

/* The value after "key:" in /proc/<pid>/status text (its first field for "Uid:", whose
 * four are real, effective, saved and file system uid); NULL when absent. */
static const char *status_field(const char *text, const char *key)
{
	size_t kl = strlen(key);
	for (const char *line = text; line && *line;) {
		if (!strncmp(line, key, kl) && line[kl] == ':')
			return line + kl + 1;
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return NULL;
}

/* The process of /proc/<name> when it runs as uid and is live: SIGKILL. Everything goes
 * through a descriptor of its /proc directory, which stays bound to that one process: if
 * it ends and its pid is handed to another, reads through it fail and a signal through it
 * (a pidfd, Linux 5.1) reaches nobody, so no other process is ever signalled. 1 when it
 * was live, 0 when not (gone meanwhile, a zombie, another uid), -1 with errno when it could
 * not be looked at or signalled (hidden or refused: a /proc mounted with hidepid, a worker
 * without CAP_SYS_PTRACE or CAP_KILL). */
static int kill_if_live(int proc_fd, const char *name, unsigned uid)
{
	int dfd = openat(proc_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) /* ended meanwhile; anything else (hidden, refused) is no answer */
		return errno == ENOENT || errno == ESRCH ? 0 : -1;
	int sfd = openat(dfd, "status", O_RDONLY | O_CLOEXEC);
	if (sfd < 0 && errno != ENOENT && errno != ESRCH) {
		int e = errno;
		close(dfd);
		errno = e;
		return -1;
	}
	char text[4096];
	size_t len = 0;
	if (sfd >= 0) {
		ssize_t n;
		while (len < sizeof text - 1 &&
		       ((n = read(sfd, text + len, sizeof text - 1 - len)) > 0 ||
			(n < 0 && errno == EINTR)))
			if (n > 0)
				len += (size_t)n;
		close(sfd);
	}
	text[len] = '\0';
	const char *state = status_field(text, "State");
	const char *ids = status_field(text, "Uid");
	const char *threads = status_field(text, "Threads");
	if (!state || !ids) {
		close(dfd); /* ended between the two opens */
		return 0;
	}
	int mine = 0;
	char *end;
	const char *p = ids;
	for (int i = 0; i < 4; i++) {
		unsigned long v = strtoul(p, &end, 10);
		if (end == p)
			break;
		if (v == uid)
			mine = 1;
		p = end;
	}
	while (*state == ' ' || *state == '\t')
		state++;
	/* a zombie is dead: it holds no memory, file or signal any more, only its pid until
	 * its parent reaps it (which may be an init that is slow to), so it is not waited for;
	 * but a thread group's leader that ended before its other threads is listed as a
	 * zombie while they run */
	int zombie = (*state == 'Z' || *state == 'X') && (!threads || atol(threads) <= 1);
	if (!mine || zombie) {
		close(dfd);
		return 0;
	}
	int rc = 1;
	if (syscall(SYS_pidfd_send_signal, dfd, SIGKILL, NULL, 0) < 0) {
		if (errno == ENOSYS) {
			/* a kernel older than 5.1: by number. The process is live and of a uid
			 * this process holds; only its own parent could reap it between the read
			 * and this */
			long pid = strtol(name, &end, 10);
			if (*end == '\0' && pid > 0 && pid <= INT_MAX && kill((pid_t)pid, SIGKILL) < 0 &&
			    errno != ESRCH)
				rc = -1;
		} else if (errno == ESRCH) {
			rc = 0; /* ended meanwhile */
		} else {
			rc = -1; /* not ours to signal (EPERM): no answer either */
		}
	}
	int e = errno;
	close(dfd);
	errno = e;
	return rc;
}

/* Hand-written on purpose: libprocps would read every process's files, where the owner of
 * each /proc directory (one fstatat) rules out all but the few of the uid. */
int uid_procs_kill(unsigned uid)
{
	int proc_fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (proc_fd < 0)
		return -1;
	DIR *d = fdopendir(proc_fd);
	if (!d) {
		int e = errno;
		close(proc_fd);
		errno = e;
		return -1;
	}
	int live = 0, rc;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			rc = errno ? -1 : live;
			break;
		}
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue; /* self, thread-self and the kernel's files */
		/* the owner of a process's /proc directory is its effective uid, even when it
		 * is not dumpable (its files are then root's). A step's processes cannot have
		 * a real uid other than their effective one: bwrap runs unprivileged, in a user
		 * namespace that maps only the step's uid, where no set-id program takes
		 * effect. So the owner alone picks the candidates, and the other processes of
		 * the host cost one fstatat each */
		struct stat st;
		if (fstatat(proc_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT || errno == ESRCH)
				continue; /* ended meanwhile */
			rc = -1;
			break;
		}
		if (st.st_uid != uid)
			continue;
		int k = kill_if_live(proc_fd, de->d_name, uid);
		if (k < 0) {
			rc = -1;
			break;
		}
		live += k;
	}
	int e = errno;
	closedir(d);
	errno = e;
	return rc;
}

int uid_procs_end(unsigned uid, int wait_ms)
{
	long long until = clock_mono_ms() + wait_ms;
	/* a killed process is usually gone within a millisecond: look again soon, then less
	 * and less often */
	long pause_us = 250;
	for (;;) {
		int live = uid_procs_kill(uid);
		if (live <= 0 || clock_mono_ms() >= until)
			return live;
		clock_sleep_us(pause_us);
		if (pause_us < 64000)
			pause_us *= 2;
	}
}

int sandbox_uid_procs_check(char *err, size_t errlen)
{
	/* /proc/self names this process's pid as that /proc sees it: the same as getpid() only
	 * in a /proc of this process's own pid namespace (one of a parent namespace, as a
	 * container given the host's, has /proc/<our pid> too, but as another process) */
	char self[32];
	ssize_t n = readlink("/proc/self", self, sizeof self - 1);
	if (n < 0) {
		errbuf_set(err, errlen, "/proc/self: %s: the sandbox looks through /proc for "
					"processes of a uid it gives back, and needs the /proc of its "
					"own pid namespace mounted", strerror(errno));
		return -1;
	}
	self[n] = '\0';
	char mine[32];
	snprintf(mine, sizeof mine, "%ld", (long)getpid());
	if (strcmp(self, mine) != 0) {
		errbuf_set(err, errlen, "/proc is not the one of the worker's own pid namespace "
					"(/proc/self is %s, the worker's pid %s): the sandbox looks through "
					"/proc for processes of a uid it gives back", self, mine);
		return -1;
	}
	char path[64];
	snprintf(path, sizeof path, "/proc/%s/status", mine);
	if (access(path, R_OK) < 0) {
		errbuf_set(err, errlen, "%s: %s: the sandbox looks through /proc for processes of "
					"a uid it gives back, and needs to read them", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* A process-wide turn, so that consecutive steps start looking at different uids. */
static unsigned next_turn;

/* The leases given back while processes of their uid would not die (uid_lease_give): each
 * keeps its lock, so no step of any worker runs as the uid, until a later take finds the
 * processes gone (stuck_recheck) and closes it. A process stuck in the kernel (a disk or a
 * FUSE server that does not answer) ends once the kernel lets it; the uid comes back then,
 * not at the worker's restart. Guarded by stuck_mu: the job threads give and take. */
struct stuck {
	struct stuck *next;
	int fd;
	unsigned uid;
};
static struct stuck *stuck_list;
static pthread_mutex_t stuck_mu = PTHREAD_MUTEX_INITIALIZER;

/* Keeps l's lock among the stuck ones; 0, or -1 when out of memory (the lock is then kept
 * for the worker's life: its descriptor is not closed). */
static int stuck_keep(const struct uid_lease *l)
{
	struct stuck *s = malloc(sizeof *s);
	if (!s)
		return -1;
	s->fd = l->fd;
	s->uid = l->uid;
	pthread_mutex_lock(&stuck_mu);
	s->next = stuck_list;
	stuck_list = s;
	pthread_mutex_unlock(&stuck_mu);
	return 0;
}

/* Gives back every stuck lease whose uid no live process runs as any more. */
static void stuck_recheck(void)
{
	pthread_mutex_lock(&stuck_mu);
	for (struct stuck **p = &stuck_list; *p;) {
		struct stuck *s = *p;
		if (uid_procs_kill(s->uid) != 0) {
			p = &s->next;
			continue;
		}
		log_info("sandbox: the processes of uid %u are gone: the uid is given back", s->uid);
		*p = s->next;
		close(s->fd);
		free(s);
	}
	pthread_mutex_unlock(&stuck_mu);
}

int uid_lease_take(int dir_fd, unsigned base, unsigned count, struct uid_lease *l)
{
	l->fd = -1;
	stuck_recheck();
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
			/* free, but a process may still run as it: one of a step whose worker died
			 * (the kernel drops its locks at once, and ends its steps a moment
			 * later). Killed, and left for a later take; one that cannot be looked
			 * for (-1) does not keep every uid from being handed out */
			int live = uid_procs_kill(uid);
			if (live <= 0) {
				l->fd = fd;
				l->uid = uid;
				return 0;
			}
			log_warn("sandbox: uid %u was free but %d process(es) still ran as it (a "
				 "step of a worker that died?): killed, another uid taken", uid, live);
			close(fd);
			continue;
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

int uid_lease_give(struct uid_lease *l)
{
	if (l->fd < 0)
		return 0;
	/* bwrap is reaped, but without cgroups the processes of its pid namespace are still
	 * being killed by the kernel (and any that left it would run on): a step handed the uid
	 * now could be signalled or traced by them, and share the kernel's per-user counts */
	int live = uid_procs_end(l->uid, SANDBOX_UID_END_WAIT_MS);
	if (live > 0) {
		/* the lock is kept on purpose: nothing else can hold the uid until the later take
		 * that finds them gone (stuck_recheck), or the worker's restart (the take then
		 * checks again) */
		int kept = stuck_keep(l);
		log_warn("sandbox: %d process(es) of uid %u still live %d ms after SIGKILL: the "
			 "uid stays held, unused, until they are gone%s",
			 live, l->uid, SANDBOX_UID_END_WAIT_MS,
			 kept < 0 ? " (out of memory: until the worker restarts)" : "");
		l->fd = -1;
		return -1;
	}
	if (live < 0)
		log_warn("sandbox: cannot look through /proc for processes of uid %u (%s): given "
			 "back unchecked", l->uid, strerror(errno));
	close(l->fd);
	l->fd = -1;
	return 0;
}

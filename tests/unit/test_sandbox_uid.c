/* The steps' host uids (queue-worker/sandbox_uid.c, sandbox_config.c): SANDBOX_UID_BASE and
 * SANDBOX_UID_COUNT read (malformed, out of range, a range past the last uid or holding
 * nobody's), the passwd and subuid lines that give a uid of the range away, the lock
 * directory (made when missing; refused when a symbolic link, no directory, someone
 * else's or writable by others) and the leases: every uid of a range once, the next one
 * refused while they are held, one given back taken again, a lock file planted as a
 * symbolic link never followed. The leases are lock files in a directory of this test's
 * own, so that a worker or another run of the test beside it holds none of them. As root,
 * the processes of a uid: children of the test running as a uid of its own are found and
 * killed by uid_procs_kill, a zombie is not waited for but a zombie leader whose other
 * thread runs is, a lease is given back only once they are gone, and a free uid as which
 * one still runs is not handed out until it is gone. */
#include "../../queue-worker/sandbox.h"
#include "../../queue-worker/sandbox_uid.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A directory of this run's own, made by main() */
static char tmp[64];

static void test_range_parse(void)
{
	char err[256];
	unsigned base = 7, count = 7;
	CHECK(sandbox_uid_range_parse(NULL, NULL, &base, &count, err, sizeof err) == 0);
	CHECK(base == 2147418112u && count == 1024);
	CHECK(sandbox_uid_range_parse("", "", &base, &count, err, sizeof err) == 0);
	CHECK(base == 2147418112u && count == 1024);
	CHECK(sandbox_uid_range_parse("100000", "64", &base, &count, err, sizeof err) == 0);
	CHECK(base == 100000 && count == 64);
	/* the ends: uid 1; the last uid 4294967294; 65536 uids; just below nobody */
	CHECK(sandbox_uid_range_parse("1", "1", &base, &count, err, sizeof err) == 0);
	CHECK(base == 1 && count == 1);
	CHECK(sandbox_uid_range_parse("4294967294", "1", &base, &count, err, sizeof err) == 0);
	CHECK(base == 4294967294u && count == 1);
	CHECK(sandbox_uid_range_parse("4294901759", "65536", &base, &count, err, sizeof err) == 0);
	CHECK(base == 4294901759u && count == 65536);
	CHECK(sandbox_uid_range_parse("65500", "34", &base, &count, err, sizeof err) == 0);
	CHECK(sandbox_uid_range_parse("65536", "10", &base, &count, err, sizeof err) == 0);

	const struct {
		const char *base, *count, *names;
	} bad[] = {
		{"0", NULL, "SANDBOX_UID_BASE"},
		{"-5", NULL, "SANDBOX_UID_BASE"},
		{"+5", NULL, "SANDBOX_UID_BASE"},
		{" 5", NULL, "SANDBOX_UID_BASE"},
		{"5 ", NULL, "SANDBOX_UID_BASE"},
		{"1e6", NULL, "SANDBOX_UID_BASE"},
		{"0x10000", NULL, "SANDBOX_UID_BASE"},
		{"abc", NULL, "SANDBOX_UID_BASE"},
		{"4294967295", "1", "SANDBOX_UID_BASE"},
		{"99999999999999999999999", NULL, "SANDBOX_UID_BASE"},
		{NULL, "0", "SANDBOX_UID_COUNT"},
		{NULL, "-1", "SANDBOX_UID_COUNT"},
		{NULL, "65537", "SANDBOX_UID_COUNT"},
		{NULL, "1.5", "SANDBOX_UID_COUNT"},
		{NULL, "ten", "SANDBOX_UID_COUNT"},
		{"100000", "18446744073709551617", "SANDBOX_UID_COUNT"},
		/* past the last uid */
		{"4294967294", "2", "SANDBOX_UID_BASE + SANDBOX_UID_COUNT - 1"},
		{"4294967000", "65536", "SANDBOX_UID_BASE + SANDBOX_UID_COUNT - 1"},
		/* nobody (65534) or 65535 in the range */
		{"65534", "1", "65534"},
		{"65535", "1", "65534"},
		{"65000", "535", "65534"},
		{"60000", "10000", "65534"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		base = count = 7;
		err[0] = '\0';
		int rc = sandbox_uid_range_parse(bad[i].base, bad[i].count, &base, &count, err, sizeof err);
		CHECK(rc == -1);
		CHECK(base == 7 && count == 7);
		if (rc != -1 || !strstr(err, bad[i].names))
			fprintf(stderr, "  base \"%s\" count \"%s\": rc %d, message \"%s\"\n",
				bad[i].base ? bad[i].base : "", bad[i].count ? bad[i].count : "", rc, err);
		CHECK(strstr(err, bad[i].names) != NULL);
	}
}

/* sandbox_config_from_env: the variables, and SANDBOX_UID refused */
static void test_config_env(void)
{
	struct sandbox_config c;
	char err[512];
	unsetenv("SANDBOX_UID");
	unsetenv("SANDBOX_UID_BASE");
	unsetenv("SANDBOX_UID_COUNT");
	unsetenv("SANDBOX_GID");
	unsetenv("SANDBOX_UID_LOCK_DIR");
	CHECK(sandbox_config_from_env(&c, err, sizeof err) == 0);
	CHECK(c.uid_base == 2147418112u && c.uid_count == 1024 && c.gid == 65534);
	CHECK_STR(c.uid_lock_dir, "/run/codecollab-sandbox-uids");
	setenv("SANDBOX_UID_LOCK_DIR", "/var/lib/cc-uids", 1);
	CHECK(sandbox_config_from_env(&c, err, sizeof err) == 0);
	CHECK_STR(c.uid_lock_dir, "/var/lib/cc-uids");
	unsetenv("SANDBOX_UID_LOCK_DIR");
	setenv("SANDBOX_UID_BASE", "300000", 1);
	setenv("SANDBOX_UID_COUNT", "16", 1);
	CHECK(sandbox_config_from_env(&c, err, sizeof err) == 0);
	CHECK(c.uid_base == 300000 && c.uid_count == 16);
	setenv("SANDBOX_UID_COUNT", "16x", 1);
	CHECK(sandbox_config_from_env(&c, err, sizeof err) == -1);
	CHECK(strstr(err, "SANDBOX_UID_COUNT") != NULL);
	setenv("SANDBOX_UID_COUNT", "16", 1);
	setenv("SANDBOX_UID", "65534", 1);
	CHECK(sandbox_config_from_env(&c, err, sizeof err) == -1);
	CHECK(strstr(err, "SANDBOX_UID is no longer read") != NULL);
	setenv("SANDBOX_UID", "", 1); /* empty is unset, as for every setting */
	CHECK(sandbox_config_from_env(&c, err, sizeof err) == 0);
	unsetenv("SANDBOX_UID");
	unsetenv("SANDBOX_UID_BASE");
	unsetenv("SANDBOX_UID_COUNT");
}

static void test_range_used(void)
{
	char who[64];
	const char *passwd = "root:x:0:0:root:/root:/bin/bash\n"
			     "# a comment:x:150000:\n"
			     "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
			     "broken line\n"
			     "short:x:\n"
			     "alice:x:150010:150010::/home/alice:/bin/sh\n"
			     "last:x:160000:1:";
	CHECK(sandbox_uid_range_used(passwd, 'p', 150000, 10, who, sizeof who) == 0);
	CHECK(sandbox_uid_range_used(passwd, 'p', 150000, 11, who, sizeof who) == 1);
	CHECK_STR(who, "alice");
	CHECK(sandbox_uid_range_used(passwd, 'p', 150011, 100, who, sizeof who) == 0);
	CHECK(sandbox_uid_range_used(passwd, 'p', 160000, 1, who, sizeof who) == 1); /* no newline */
	CHECK_STR(who, "last");
	CHECK(sandbox_uid_range_used(passwd, 'p', 2147418112u, 1024, who, sizeof who) == 0);
	CHECK(sandbox_uid_range_used("", 'p', 1, 100, who, sizeof who) == 0);

	const char *subuid = "bob:100000:65536\n"
			     "carol:165536:65536\n"
			     "bad:x:1\n"
			     "zero:900000:0\n";
	CHECK(sandbox_uid_range_used(subuid, 's', 231072, 1000, who, sizeof who) == 0);
	CHECK(sandbox_uid_range_used(subuid, 's', 231071, 1, who, sizeof who) == 1);
	CHECK_STR(who, "carol");
	CHECK(sandbox_uid_range_used(subuid, 's', 50000, 50001, who, sizeof who) == 1);
	CHECK_STR(who, "bob");
	CHECK(sandbox_uid_range_used(subuid, 's', 50000, 50000, who, sizeof who) == 0);
	CHECK(sandbox_uid_range_used(subuid, 's', 900000, 10, who, sizeof who) == 0);
	/* a range wholly inside someone's */
	CHECK(sandbox_uid_range_used(subuid, 's', 120000, 4, who, sizeof who) == 1);
	CHECK_STR(who, "bob");
}

/* path's opening as the lock directory fails and its message holds want */
static void check_dir_refused(const char *path, const char *want)
{
	char err[512] = "";
	int fd = sandbox_uid_dir_open(path, err, sizeof err);
	CHECK(fd == -1);
	if (fd >= 0)
		close(fd);
	if (!strstr(err, want) || !strstr(err, "SANDBOX_UID_LOCK_DIR"))
		fprintf(stderr, "FAIL: %s: \"%s\" does not say \"%s\"\n", path, err, want);
	CHECK(strstr(err, want) != NULL && strstr(err, "SANDBOX_UID_LOCK_DIR") != NULL);
}

static void test_lock_dir(void)
{
	char path[128], err[512];
	struct stat st;
	/* missing: made, 0700, the process's own */
	snprintf(path, sizeof path, "%s/made", tmp);
	int fd = sandbox_uid_dir_open(path, err, sizeof err);
	CHECK(fd >= 0);
	CHECK(lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700 &&
	      st.st_uid == geteuid());
	if (fd >= 0)
		close(fd);
	/* there already: taken as it is */
	fd = sandbox_uid_dir_open(path, err, sizeof err);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	/* readable by others is fine, writable is not */
	CHECK(chmod(path, 0755) == 0);
	fd = sandbox_uid_dir_open(path, err, sizeof err);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK(chmod(path, 0777) == 0);
	check_dir_refused(path, "may be written by its group or others (mode 0777)");
	CHECK(chmod(path, 01733) == 0); /* sticky does not help: others may still add files */
	check_dir_refused(path, "(mode 1733)");
	CHECK(chmod(path, 0720) == 0);
	check_dir_refused(path, "(mode 0720)");
	CHECK(chmod(path, 0700) == 0);
	/* a symbolic link to a good directory */
	char link[128];
	snprintf(link, sizeof link, "%s/link", tmp);
	CHECK(symlink(path, link) == 0);
	check_dir_refused(link, "is a symbolic link");
	/* and a dangling one: not followed to make a directory where it points */
	char dangling[128], target[128];
	snprintf(target, sizeof target, "%s/target", tmp);
	snprintf(dangling, sizeof dangling, "%s/dangling", tmp);
	CHECK(symlink(target, dangling) == 0);
	check_dir_refused(dangling, "is a symbolic link");
	CHECK(access(target, F_OK) == -1 && errno == ENOENT);
	/* a file */
	char file[128];
	snprintf(file, sizeof file, "%s/file", tmp);
	int ffd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(ffd >= 0);
	if (ffd >= 0)
		close(ffd);
	check_dir_refused(file, "is not a directory");
	/* no parent: not made (only the last part is) */
	char deep[160];
	snprintf(deep, sizeof deep, "%s/no/such", tmp);
	check_dir_refused(deep, "/no: No such file or directory");
	check_dir_refused("run/codecollab-sandbox-uids", "must be an absolute path");
	/* someone else's (needs root to give it away) */
	char other[128];
	snprintf(other, sizeof other, "%s/other", tmp);
	CHECK(mkdir(other, 0700) == 0);
	if (geteuid() == 0) {
		CHECK(chown(other, 65534, 65534) == 0);
		check_dir_refused(other, "is owned by uid 65534, not by the worker's own (0)");
	} else {
		printf("  (not root: a directory of another owner is not tried)\n");
	}
	/* under a parent others may write to (not sticky): refused, and not made */
	char open_parent[128], under[160];
	snprintf(open_parent, sizeof open_parent, "%s/open", tmp);
	snprintf(under, sizeof under, "%s/locks/", open_parent);
	CHECK(mkdir(open_parent, 0700) == 0 && chmod(open_parent, 0777) == 0);
	check_dir_refused(under, "/open (uid");
	check_dir_refused(under, "mode 0777) must belong to root or the worker's user");
	CHECK(access(under, F_OK) == -1 && errno == ENOENT);
	/* sticky (as /tmp is): others cannot move what is not theirs */
	CHECK(chmod(open_parent, 01777) == 0);
	fd = sandbox_uid_dir_open(under, err, sizeof err);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	if (geteuid() == 0) {
		/* a parent of another user's */
		CHECK(chmod(open_parent, 0755) == 0 && chown(open_parent, 65534, 65534) == 0);
		check_dir_refused(under, "(uid 65534, mode 0755)");
	}
	snprintf(under, sizeof under, "%s/locks", open_parent);
	rmdir(under);
	rmdir(open_parent);
	unlink(link);
	unlink(dangling);
	unlink(file);
	rmdir(other);
	rmdir(path);
}

static void test_leases(void)
{
	/* a range of this test's own, as well as the directory: taking a free lock kills
	 * whatever process still runs as its uid, so a range that another lock directory hands
	 * out (the worker's default one, 2147418112 up) would kill the steps of a worker
	 * running on this host. 71000 up is no other test's (worker-uids.test.mjs takes 60000
	 * to 63999, test_procs below 70000 to 70999, tests/programs/test_sandbox.c 1024 to
	 * 33023, all above 2147418112) */
	unsigned base = 2147418112u + 71000u + (unsigned)(getpid() % 1000) * 8u, count = 4;
	char err[512], path[128];
	snprintf(path, sizeof path, "%s/locks", tmp);
	int dir = sandbox_uid_dir_open(path, err, sizeof err);
	CHECK(dir >= 0);
	if (dir < 0) {
		fprintf(stderr, "sandbox_uid_dir_open: %s\n", err);
		return;
	}
	struct uid_lease l[4], extra;
	int seen[4] = {0};
	for (int i = 0; i < 4; i++) {
		CHECK(uid_lease_take(dir, base, count, &l[i]) == 0);
		CHECK(l[i].fd >= 0 && l[i].uid >= base && l[i].uid < base + count);
		if (l[i].uid >= base && l[i].uid < base + count)
			seen[l[i].uid - base]++;
	}
	for (int i = 0; i < 4; i++)
		CHECK(seen[i] == 1);
	/* each a file of its uid, 0600, the process's own, locked by the lease */
	char lock[160];
	struct stat st;
	snprintf(lock, sizeof lock, "%s/%u.lock", path, base + 1);
	CHECK(lstat(lock, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600 &&
	      st.st_uid == geteuid());
	int probe = open(lock, O_RDONLY | O_CLOEXEC);
	CHECK(probe >= 0 && flock(probe, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK);
	if (probe >= 0)
		close(probe);
	errno = 0;
	CHECK(uid_lease_take(dir, base, count, &extra) == -1);
	CHECK(errno == EWOULDBLOCK && extra.fd == -1);
	uid_lease_give(&extra); /* nothing held: nothing done */
	unsigned freed = l[2].uid;
	uid_lease_give(&l[2]);
	CHECK(l[2].fd == -1);
	uid_lease_give(&l[2]); /* twice: nothing more */
	CHECK(uid_lease_take(dir, base, count, &extra) == 0);
	CHECK(extra.uid == freed);
	uid_lease_give(&extra);
	/* consecutive takes of a free range start at different uids */
	struct uid_lease a, b;
	CHECK(uid_lease_take(dir, base + 4, count, &a) == 0);
	unsigned first = a.uid;
	uid_lease_give(&a);
	CHECK(uid_lease_take(dir, base + 4, count, &b) == 0);
	CHECK(b.uid != first);
	uid_lease_give(&b);
	for (int i = 0; i < 4; i++)
		uid_lease_give(&l[i]);
	/* and a range of one uid */
	CHECK(uid_lease_take(dir, base, 1, &a) == 0 && a.uid == base);
	CHECK(uid_lease_take(dir, base, 1, &b) == -1 && errno == EWOULDBLOCK);
	uid_lease_give(&a);
	CHECK(uid_lease_take(dir, base, 1, &b) == 0 && b.uid == base);
	uid_lease_give(&b);
	/* a lock file that is a symbolic link (only the directory's owner could plant one) is
	 * not followed: the take fails rather than lock or make what it points at */
	char planted[160], target[160];
	snprintf(planted, sizeof planted, "%s/%u.lock", path, base + 100);
	snprintf(target, sizeof target, "%s/elsewhere", tmp);
	CHECK(symlink(target, planted) == 0);
	errno = 0;
	CHECK(uid_lease_take(dir, base + 100, 1, &a) == -1 && errno == ELOOP && a.fd == -1);
	CHECK(access(target, F_OK) == -1);
	unlink(planted);
	for (unsigned u = base; u < base + 8; u++) {
		snprintf(lock, sizeof lock, "%s/%u.lock", path, u);
		unlink(lock);
	}
	close(dir);
	rmdir(path);
}

static void *pause_forever(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* A child running as uid (and gid) that says so on a pipe and then pauses; with
 * leader_exits its first thread then ends alone while a second one pauses, which /proc
 * lists as a zombie of two threads. Its pid, or -1. */
static pid_t start_as(unsigned uid, int leader_exits)
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		if (setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
			_exit(1);
		pthread_t t;
		if (leader_exits && pthread_create(&t, NULL, pause_forever, NULL) != 0)
			_exit(1);
		if (write(p[1], "r", 1) != 1)
			_exit(1);
		if (leader_exits)
			syscall(SYS_exit, 0); /* this thread alone */
		pause_forever(NULL);
	}
	close(p[1]);
	char c;
	ssize_t n;
	while ((n = read(p[0], &c, 1)) < 0 && errno == EINTR)
		;
	close(p[0]);
	if (n != 1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	return pid;
}

/* The state letter /proc/<pid>/status gives, waiting up to 5 s for it to be want; 0 when
 * it cannot be read. */
static char wait_state(pid_t pid, char want)
{
	char path[64], text[4096], got = 0;
	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	for (int i = 0; i < 500 && got != want; i++) {
		if (i)
			nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000L}, NULL);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return 0;
		ssize_t n = read(fd, text, sizeof text - 1);
		close(fd);
		text[n > 0 ? n : 0] = '\0';
		const char *st = strstr(text, "\nState:\t");
		got = st ? st[8] : 0;
	}
	return got;
}

/* 1 when pid, a child, has ended by SIGKILL within ms (0: already); it is left unreaped
 * (a zombie) */
static int killed_within(pid_t pid, int ms)
{
	for (int waited = 0;; waited += 10) {
		siginfo_t si;
		memset(&si, 0, sizeof si);
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno != EINTR)
			return 0;
		if (si.si_pid == pid)
			return si.si_code == CLD_KILLED && si.si_status == SIGKILL;
		if (waited >= ms)
			return 0;
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000L}, NULL);
	}
}

/* Reaps pid, killing it first when it still runs (a failed check must not hang the test) */
static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static void test_procs(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "skipping the processes of a uid: not root\n");
		return;
	}
	/* a uid of this run's own: past the ones test_sandbox.c and worker-uids.test.mjs take */
	unsigned uid = 2147418112u + 70000u + (unsigned)(getpid() % 1000);
	CHECK(uid_procs_kill(uid) == 0);

	/* a live process is found and killed; dead, a zombie is not waited for */
	pid_t a = start_as(uid, 0);
	CHECK(a > 0);
	if (a > 0) {
		CHECK(uid_procs_kill(uid) == 1);
		CHECK(killed_within(a, 5000));
		CHECK(wait_state(a, 'Z') == 'Z');
		CHECK(uid_procs_kill(uid) == 0);
		CHECK(uid_procs_end(uid, 1000) == 0);
		reap(a);
	}
	/* a leader that ended while another thread of it runs: listed as a zombie, but live */
	pid_t b = start_as(uid, 1);
	CHECK(b > 0);
	if (b > 0) {
		CHECK(wait_state(b, 'Z') == 'Z');
		CHECK(uid_procs_end(uid, 5000) == 0);
		CHECK(killed_within(b, 0)); /* uid_procs_end waited */
		reap(b);
	}

	char err[512], path[128], lock[160];
	snprintf(path, sizeof path, "%s/procs", tmp);
	int dir = sandbox_uid_dir_open(path, err, sizeof err);
	CHECK(dir >= 0);
	if (dir < 0) {
		fprintf(stderr, "sandbox_uid_dir_open: %s\n", err);
		return;
	}
	/* given back only once the process running as the uid is gone */
	struct uid_lease l;
	CHECK(uid_lease_take(dir, uid, 1, &l) == 0 && l.uid == uid);
	pid_t c = start_as(uid, 0);
	CHECK(c > 0);
	CHECK(uid_lease_give(&l) == 0 && l.fd == -1);
	if (c > 0) {
		CHECK(killed_within(c, 0)); /* the give waited for it */
		reap(c);
	}
	/* a free uid as which a process still runs is not handed out: the process is killed,
	 * and the uid is taken once it is gone */
	pid_t d = start_as(uid, 0);
	CHECK(d > 0);
	if (d > 0) {
		CHECK(uid_lease_take(dir, uid, 1, &l) == -1 && errno == EWOULDBLOCK && l.fd == -1);
		CHECK(killed_within(d, 5000));
		reap(d);
	}
	CHECK(uid_lease_take(dir, uid, 1, &l) == 0 && l.uid == uid);
	CHECK(uid_lease_give(&l) == 0);
	snprintf(lock, sizeof lock, "%s/%u.lock", path, uid);
	unlink(lock);
	close(dir);
	rmdir(path);
}

int main(void)
{
	snprintf(tmp, sizeof tmp, "/tmp/cc-test-uid-locks.XXXXXX");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	test_range_parse();
	test_config_env();
	test_range_used();
	test_lock_dir();
	test_leases();
	test_procs();
	if (rmdir(tmp) < 0)
		fprintf(stderr, "FAIL: %s is left behind: %s\n", tmp, strerror(errno));
	CHECK(access(tmp, F_OK) == -1);
	return unit_summary("sandbox_uid");
}

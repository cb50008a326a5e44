#include "sandbox.h"

#include "cfg.h"
#include "log.h"
#include "rnd.h"
#include "errbuf.h"
#include "clock.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Fixed descriptor numbers the bwrap process gets; bwrap's --file reads FD_FILE, the
 * compile step's wrapper writes the compiled program to FD_ARTIFACT. */
#define FD_ARTIFACT 3
#define FD_FILE 4
#define FD_SECCOMP 5
#define FD_FIRST_FREE 6
#define SECCOMP_MAX 96

#if defined(__x86_64__)
#define SECCOMP_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_ARCH AUDIT_ARCH_AARCH64
#endif

#define WORK_DIR "/tmp/work"
#define ARGV_MAX 256
#define ARENA_MAX 8192
/* After the program exits, how long its pipes may stay open (a descendant holding them)
 * before the group is killed; then how long we wait for the kill to take effect. */
#define EXIT_DRAIN_MS 300
#define KILL_WAIT_MS 5000

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE 2
#endif

struct sandbox {
	char bwrap[256];
	unsigned uid, gid;
	enum sandbox_cgroup mode;
	/* parents of the per-step groups: v1 memory, pids, freezer ("" when not mounted);
	 * v2 uses v2 only */
	char mem[320], pids[320], frz[320], v2[320];
	/* how /bin, /lib, … look on this host: symlinks into /usr or real directories */
	char roots[8][2][64];
	size_t nroots;
	/* the seccomp filter handed to bwrap --seccomp; n == 0 on unknown architectures */
	struct sock_filter filter[SECCOMP_MAX];
	size_t nfilter;
};

/* One step's cgroup(s); empty strings for what the mode does not use. */
struct cg {
	char mem[400], pids[400], frz[400], v2[400];
};

void sandbox_limits_default(struct sandbox_limits *l)
{
	l->run_ms = 5000;
	l->compile_ms = 10000;
	l->cpu_s = 5;
	l->memory = 256LL << 20;
	l->processes = 64;
	l->file_size = 16LL << 20;
	l->open_files = 256;
	l->output = 64 * 1024;
	l->tmpfs = 64LL << 20;
}

long long sandbox_shm_size(const struct sandbox_limits *l)
{
	long long q = l->tmpfs / 4;
	return q < (1LL << 20) ? 1LL << 20 : q;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int sandbox_config_from_env(struct sandbox_config *c, char *err, size_t errlen)
{
	long uid, gid;
	char e[200];
	c->bwrap = cfg_str("SANDBOX_BWRAP", "/usr/bin/bwrap");
	c->cgroup = cfg_str("SANDBOX_CGROUP", "auto");
	c->cgroup_root = "/sys/fs/cgroup";
	c->cgroup_group = "codecollab";
	if (cfg_long("SANDBOX_UID", 65534, 1, 4294967294L, &uid, e, sizeof e) < 0 ||
	    cfg_long("SANDBOX_GID", 65534, 1, 4294967294L, &gid, e, sizeof e) < 0) {
		errbuf_set(err, errlen, "%s", e);
		return -1;
	}
	c->uid = (unsigned)uid;
	c->gid = (unsigned)gid;
	if (strcmp(c->cgroup, "auto") && strcmp(c->cgroup, "v1") && strcmp(c->cgroup, "v2") &&
	    strcmp(c->cgroup, "none")) {
		errbuf_set(err, errlen, "SANDBOX_CGROUP must be auto, v1, v2 or none");
		return -1;
	}
	return 0;
}

/* ---- cgroup files: the host only ever writes cgroupfs and its own descriptors ---- */

static int write_str(const char *dir, const char *file, const char *val)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, val, strlen(val));
	int saved = errno;
	close(fd);
	errno = saved;
	return n == (ssize_t)strlen(val) ? 0 : -1;
}

static ssize_t read_str(const char *dir, const char *file, char *out, size_t cap)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	ssize_t n;
	while (len < cap - 1 && (n = read(fd, out + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	out[len] = '\0';
	return (ssize_t)len;
}

/* The value of "key N" lines (memory.oom_control, memory.events); 0 when absent. */
static long long read_keyed(const char *dir, const char *file, const char *key)
{
	char text[2048];
	if (read_str(dir, file, text, sizeof text) < 0)
		return 0;
	size_t kl = strlen(key);
	for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (!strncmp(line, key, kl) && line[kl] == ' ')
			return atoll(line + kl + 1);
	return 0;
}

static int file_exists(const char *dir, const char *file)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	return access(path, F_OK) == 0;
}

static int make_dir(const char *path)
{
	return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

static int v2_enable(const char *dir)
{
	/* both at once; a controller the parent lacks makes the write fail */
	return write_str(dir, "cgroup.subtree_control", "+memory +pids");
}

/* Chooses the cgroup layout and creates the parent groups. On failure the sandbox still
 * works with rlimits and the pid namespace, and says so once. */
static void cgroup_setup(struct sandbox *sb, const struct sandbox_config *c)
{
	char why[600] = "";
	const char *want = c->cgroup;
	sb->mode = SANDBOX_CG_NONE;
	if (!strcmp(want, "none")) {
		log_warn("sandbox: cgroups disabled (SANDBOX_CGROUP=none): limits fall back to "
			 "rlimits and the pid namespace");
		return;
	}
	if (strcmp(want, "v1") && file_exists(c->cgroup_root, "cgroup.controllers")) {
		char ctl[512];
		snprintf(sb->v2, sizeof sb->v2, "%s/%s", c->cgroup_root, c->cgroup_group);
		if (read_str(c->cgroup_root, "cgroup.controllers", ctl, sizeof ctl) < 0 ||
		    !strstr(ctl, "memory") || !strstr(ctl, "pids"))
			snprintf(why, sizeof why, "cgroup v2 lacks the memory or pids controller");
		else if ((v2_enable(c->cgroup_root) < 0 && errno != EBUSY) ||
			 make_dir(sb->v2) < 0 || v2_enable(sb->v2) < 0)
			snprintf(why, sizeof why, "cannot prepare %s: %s", sb->v2, strerror(errno));
		else {
			sb->mode = SANDBOX_CG_V2;
			return;
		}
		sb->v2[0] = '\0';
	} else if (strcmp(want, "v2")) {
		char m[300], p[300], f[300];
		snprintf(m, sizeof m, "%s/memory", c->cgroup_root);
		snprintf(p, sizeof p, "%s/pids", c->cgroup_root);
		snprintf(f, sizeof f, "%s/freezer", c->cgroup_root);
		if (!file_exists(m, "memory.limit_in_bytes") || !file_exists(p, "cgroup.procs")) {
			snprintf(why, sizeof why, "no cgroup v1 memory and pids hierarchies under %s",
				 c->cgroup_root);
		} else {
			snprintf(sb->mem, sizeof sb->mem, "%s/%s", m, c->cgroup_group);
			snprintf(sb->pids, sizeof sb->pids, "%s/%s", p, c->cgroup_group);
			if (file_exists(f, "cgroup.procs"))
				snprintf(sb->frz, sizeof sb->frz, "%s/%s", f, c->cgroup_group);
			if (make_dir(sb->mem) < 0 || make_dir(sb->pids) < 0 ||
			    (sb->frz[0] && make_dir(sb->frz) < 0)) {
				snprintf(why, sizeof why, "cannot create %s groups: %s",
					 c->cgroup_group, strerror(errno));
				sb->mem[0] = sb->pids[0] = sb->frz[0] = '\0';
			} else {
				sb->mode = SANDBOX_CG_V1;
				return;
			}
		}
	} else {
		snprintf(why, sizeof why, "SANDBOX_CGROUP=v2 but %s is not a cgroup v2 mount",
			 c->cgroup_root);
	}
	log_warn("sandbox: no cgroups (%s): limits fall back to rlimits and the pid namespace; "
		 "memory and process counts are only loosely bounded", why);
}

static int cg_create(const struct sandbox *sb, struct cg *g, const struct sandbox_limits *lim,
		     char *err, size_t errlen)
{
	memset(g, 0, sizeof *g);
	if (sb->mode == SANDBOX_CG_NONE)
		return 0;
	char name[48], mem[32], pids[32];
	char hex[13];
	if (rnd_hex(hex, 6) < 0) {
		errbuf_set(err, errlen, "getrandom failed");
		return -1;
	}
	snprintf(name, sizeof name, "%d-%s", (int)getpid(), hex);
	snprintf(mem, sizeof mem, "%lld", lim->memory);
	snprintf(pids, sizeof pids, "%d", lim->processes);
	if (sb->mode == SANDBOX_CG_V2) {
		snprintf(g->v2, sizeof g->v2, "%s/%s", sb->v2, name);
		if (mkdir(g->v2, 0755) < 0) {
			g->v2[0] = '\0';
			goto fail;
		}
		if (write_str(g->v2, "memory.max", mem) < 0 || write_str(g->v2, "pids.max", pids) < 0)
			goto fail;
		write_str(g->v2, "memory.swap.max", "0"); /* absent without swap accounting */
		return 0;
	}
	snprintf(g->mem, sizeof g->mem, "%s/%s", sb->mem, name);
	snprintf(g->pids, sizeof g->pids, "%s/%s", sb->pids, name);
	if (mkdir(g->mem, 0755) < 0) {
		g->mem[0] = g->pids[0] = '\0';
		goto fail;
	}
	if (mkdir(g->pids, 0755) < 0) {
		g->pids[0] = '\0';
		goto fail;
	}
	if (sb->frz[0]) {
		snprintf(g->frz, sizeof g->frz, "%s/%s", sb->frz, name);
		if (mkdir(g->frz, 0755) < 0) {
			g->frz[0] = '\0';
			goto fail;
		}
	}
	if (write_str(g->mem, "memory.limit_in_bytes", mem) < 0 ||
	    write_str(g->pids, "pids.max", pids) < 0)
		goto fail;
	/* memory + swap: absent when the kernel does not account swap */
	if (file_exists(g->mem, "memory.memsw.limit_in_bytes") &&
	    write_str(g->mem, "memory.memsw.limit_in_bytes", mem) < 0)
		goto fail;
	return 0;
fail:
	errbuf_set(err, errlen, "cgroup setup failed: %s", strerror(errno));
	return -1;
}

/* Descriptors of the cgroup.procs files the child writes itself into ("0" = the writer).
 * Opened before fork, so the child only does write(2). -1 where unused. */
static int cg_open_procs(const struct cg *g, int fds[3])
{
	const char *dirs[3] = {g->v2[0] ? g->v2 : g->mem, g->pids, g->frz};
	for (int i = 0; i < 3; i++) {
		fds[i] = -1;
		if (!dirs[i][0])
			continue;
		char path[512];
		snprintf(path, sizeof path, "%s/cgroup.procs", dirs[i]);
		fds[i] = open(path, O_WRONLY | O_CLOEXEC);
		if (fds[i] < 0) {
			for (int j = 0; j < i; j++)
				if (fds[j] >= 0)
					close(fds[j]);
			return -1;
		}
	}
	return 0;
}

static const char *cg_procs_dir(const struct cg *g)
{
	return g->v2[0] ? g->v2 : g->pids[0] ? g->pids : NULL;
}

/* Kills every process of the group until it is empty. v2 with cgroup.kill does it in one
 * write; otherwise the group is frozen (so nothing forks between reading the list and the
 * kills), every listed pid gets SIGKILL, and it is thawed, until the list is empty. */
static int cg_kill(const struct cg *g)
{
	const char *dir = cg_procs_dir(g);
	if (!dir)
		return 0;
	if (g->v2[0] && file_exists(g->v2, "cgroup.kill"))
		write_str(g->v2, "cgroup.kill", "1");
	const char *frz = g->frz[0] ? g->frz : NULL;
	int v2frz = g->v2[0] && file_exists(g->v2, "cgroup.freeze");
	long long deadline = clock_mono_ms() + KILL_WAIT_MS;
	while (clock_mono_ms() < deadline) {
		if (frz)
			write_str(frz, "freezer.state", "FROZEN");
		else if (v2frz)
			write_str(g->v2, "cgroup.freeze", "1");
		char list[8192];
		if (read_str(dir, "cgroup.procs", list, sizeof list) < 0)
			return -1;
		int any = 0;
		for (char *p = list; *p;) {
			char *end;
			long pid = strtol(p, &end, 10);
			if (end == p)
				break;
			if (pid > 0) {
				kill((pid_t)pid, SIGKILL);
				any = 1;
			}
			p = end;
			while (*p == '\n')
				p++;
		}
		if (frz)
			write_str(frz, "freezer.state", "THAWED");
		else if (v2frz)
			write_str(g->v2, "cgroup.freeze", "0");
		if (!any)
			return 0;
		sleep_ms(2);
	}
	return -1;
}

static long long cg_oom_kills(const struct cg *g)
{
	if (g->v2[0])
		return read_keyed(g->v2, "memory.events", "oom_kill");
	if (g->mem[0])
		return read_keyed(g->mem, "memory.oom_control", "oom_kill");
	return 0;
}

static void cg_destroy(const struct cg *g)
{
	const char *dirs[4] = {g->v2, g->mem, g->pids, g->frz};
	for (int i = 0; i < 4; i++) {
		if (!dirs[i][0])
			continue;
		/* a group empties a moment after its last task is reaped */
		for (int tries = 0; rmdir(dirs[i]) < 0 && errno == EBUSY && tries < 500; tries++)
			sleep_ms(2);
		if (access(dirs[i], F_OK) == 0)
			log_warn("sandbox: cannot remove cgroup %s: %s", dirs[i], strerror(errno));
	}
}

/* Groups left by a worker that died (SIGKILL gives it no chance to remove them): those
 * named after a pid that no longer runs are emptied and removed. */
static void cgroup_sweep(const struct sandbox *sb)
{
	const char *parents[4] = {sb->v2, sb->mem, sb->pids, sb->frz};
	for (int i = 0; i < 4; i++) {
		if (!parents[i][0])
			continue;
		DIR *d = opendir(parents[i]);
		if (!d)
			continue;
		struct dirent *de;
		while ((de = readdir(d))) {
			char *end;
			long pid = strtol(de->d_name, &end, 10);
			if (de->d_name[0] == '.' || end == de->d_name || *end != '-' || pid <= 0 ||
			    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
				continue;
			struct cg g;
			memset(&g, 0, sizeof g);
			char *slot = i == 0 ? g.v2 : i == 1 ? g.mem : i == 2 ? g.pids : g.frz;
			snprintf(slot, sizeof g.v2, "%s/%s", parents[i], de->d_name);
			if (i == 1) /* a memory group alone has its procs there */
				snprintf(g.pids, sizeof g.pids, "%s", g.mem);
			cg_kill(&g);
			if (i == 1)
				g.pids[0] = '\0';
			cg_destroy(&g);
		}
		closedir(d);
	}
}

/* ---- argv of bwrap ---- */

struct argv_builder {
	const char *v[ARGV_MAX + 1];
	size_t n;
	char arena[ARENA_MAX];
	size_t used;
	int overflow;
};

static void arg(struct argv_builder *a, const char *s)
{
	if (a->n >= ARGV_MAX) {
		a->overflow = 1;
		return;
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void argf(struct argv_builder *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void argf(struct argv_builder *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(a->arena + a->used, sizeof a->arena - a->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof a->arena - a->used) {
		a->overflow = 1;
		return;
	}
	arg(a, a->arena + a->used);
	a->used += (size_t)n + 1;
}

struct step_spec {
	const char *const *cmd;	    /* argv inside the sandbox */
	const char *const *extra;   /* appended to cmd (the request's args); may be NULL */
	size_t nextra;
	int file_fd;		    /* copied to file_dest with file_perms; -1 for none */
	const char *file_dest;
	const char *file_perms;
	int stdin_fd;		    /* -1: empty stdin */
	struct buf *artifact;	    /* non-NULL: collect what the step writes to fd 3 */
	int wall_ms;
	int cpu_s;
};

static void build_argv(const struct sandbox *sb, const struct step_spec *sp,
		       const struct sandbox_limits *lim, struct argv_builder *a)
{
	memset(a, 0, sizeof *a);
	arg(a, sb->bwrap);
	/* bwrap runs unprivileged (see child_exec), so --unshare-user is a real mapping of
	 * one uid: the sandbox's 65534 is the host's 65534, not host root */
	arg(a, "--unshare-user");
	arg(a, "--disable-userns");
	arg(a, "--unshare-pid");
	arg(a, "--unshare-net");
	arg(a, "--unshare-ipc");
	arg(a, "--unshare-uts");
	arg(a, "--unshare-cgroup-try");
	arg(a, "--uid");
	argf(a, "%u", sb->uid);
	arg(a, "--gid");
	argf(a, "%u", sb->gid);
	arg(a, "--hostname");
	arg(a, "sandbox");
	arg(a, "--die-with-parent");
	arg(a, "--new-session");
	if (sb->nfilter) {
		arg(a, "--seccomp");
		argf(a, "%d", FD_SECCOMP);
	}
	arg(a, "--ro-bind");
	arg(a, "/usr");
	arg(a, "/usr");
	for (size_t i = 0; i < sb->nroots; i++) {
		/* a symlink (merged /usr) is recreated; a real directory is bound read-only */
		if (sb->roots[i][1][0]) {
			arg(a, "--symlink");
			arg(a, sb->roots[i][1]);
			arg(a, sb->roots[i][0]);
		} else {
			arg(a, "--ro-bind");
			arg(a, sb->roots[i][0]);
			arg(a, sb->roots[i][0]);
		}
	}
	/* /etc: only what dynamic linking and the Debian alternatives symlinks need */
	arg(a, "--ro-bind-try");
	arg(a, "/etc/alternatives");
	arg(a, "/etc/alternatives");
	arg(a, "--ro-bind-try");
	arg(a, "/etc/ld.so.cache");
	arg(a, "/etc/ld.so.cache");
	arg(a, "--proc");
	arg(a, "/proc");
	arg(a, "--dev");
	arg(a, "/dev");
	/* --dev mounts /dev as an unsized tmpfs the job may write to, and --remount-ro / below
	 * does not reach it (a mount of its own): without a memory cgroup nothing stopped a job
	 * filling the host's memory with /dev/x. Read-only, its device nodes still work
	 * (writing /dev/null is writing to a device, not to the tmpfs). */
	arg(a, "--remount-ro");
	arg(a, "/dev");
	/* /dev/shm: a sized tmpfs of its own, a quarter of the work directory's (at least
	 * 1 MiB): POSIX semaphores and shared memory (Python's multiprocessing) need little */
	arg(a, "--size");
	argf(a, "%lld", sandbox_shm_size(lim));
	arg(a, "--tmpfs");
	arg(a, "/dev/shm");
	arg(a, "--size");
	argf(a, "%lld", lim->tmpfs);
	arg(a, "--tmpfs");
	arg(a, "/tmp");
	arg(a, "--dir");
	arg(a, WORK_DIR);
	if (sp->file_fd >= 0) {
		arg(a, "--perms");
		arg(a, sp->file_perms);
		arg(a, "--file");
		argf(a, "%d", FD_FILE);
		argf(a, "%s/%s", WORK_DIR, sp->file_dest);
	}
	arg(a, "--remount-ro");
	arg(a, "/");
	arg(a, "--chdir");
	arg(a, WORK_DIR);
	arg(a, "--clearenv");
	arg(a, "--setenv");
	arg(a, "PATH");
	arg(a, "/usr/local/bin:/usr/bin:/bin");
	arg(a, "--setenv");
	arg(a, "HOME");
	arg(a, WORK_DIR);
	arg(a, "--setenv");
	arg(a, "TMPDIR");
	arg(a, "/tmp");
	arg(a, "--setenv");
	arg(a, "LANG");
	arg(a, "C.UTF-8");
	arg(a, "--");
	for (size_t i = 0; sp->cmd[i]; i++)
		arg(a, sp->cmd[i]);
	for (size_t i = 0; i < sp->nextra; i++)
		arg(a, sp->extra[i]);
}

/* ---- the child between fork and exec: async-signal-safe calls only ---- */

struct child_plan {
	const char *const *argv;
	int procs_fds[3];
	int in_fd, out_fd, err_fd, art_fd, file_fd, seccomp_fd; /* the last three may be -1 */
	unsigned uid, gid;
	int cpu_s;
	long long file_size, as_bytes; /* as_bytes 0: no RLIMIT_AS */
	int nproc;		       /* 0: no RLIMIT_NPROC */
	int open_files;
};

static void child_fail(const char *what)
{
	static const char pre[] = "sandbox: child setup failed: ";
	if (write(2, pre, sizeof pre - 1) < 0 || write(2, what, strlen(what)) < 0 ||
	    write(2, "\n", 1) < 0)
		_exit(126);
	_exit(126);
}

static void set_limit(int res, rlim_t soft, rlim_t hard)
{
	struct rlimit rl = {.rlim_cur = soft, .rlim_max = hard};
	if (setrlimit(res, &rl) < 0)
		child_fail("setrlimit");
}

static void child_exec(const struct child_plan *p)
{
	/* dispositions and mask the worker set (ignored SIGPIPE, blocked SIGTERM) survive
	 * exec: start the sandbox from the defaults */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL);
	if (setsid() < 0)
		child_fail("setsid");
	for (int i = 0; i < 3; i++)
		if (p->procs_fds[i] >= 0 && write(p->procs_fds[i], "0", 1) != 1)
			child_fail("joining the cgroup");
	/* move every source above the targets first, so dup2 never clobbers one */
	int src[6] = {p->in_fd, p->out_fd, p->err_fd, p->art_fd, p->file_fd, p->seccomp_fd};
	for (int i = 0; i < 6; i++)
		if (src[i] >= 0 && (src[i] = fcntl(src[i], F_DUPFD, 16)) < 0)
			child_fail("fcntl");
	for (int i = 0; i < 6; i++)
		if (src[i] >= 0 && dup2(src[i], i) < 0)
			child_fail("dup2");
	/* hiredis sockets and other threads' descriptors are not CLOEXEC: close them all */
	if (syscall(SYS_close_range, FD_FIRST_FREE, ~0U, 0) < 0)
		for (int fd = FD_FIRST_FREE; fd < 65536; fd++)
			close(fd);
	if (p->art_fd < 0)
		close(FD_ARTIFACT);
	if (p->file_fd < 0)
		close(FD_FILE);
	if (p->seccomp_fd < 0)
		close(FD_SECCOMP);
	set_limit(RLIMIT_CPU, (rlim_t)p->cpu_s, (rlim_t)p->cpu_s + 1);
	set_limit(RLIMIT_FSIZE, (rlim_t)p->file_size, (rlim_t)p->file_size);
	set_limit(RLIMIT_NOFILE, (rlim_t)p->open_files, (rlim_t)p->open_files);
	set_limit(RLIMIT_CORE, 0, 0);
	if (p->as_bytes)
		set_limit(RLIMIT_AS, (rlim_t)p->as_bytes, (rlim_t)p->as_bytes);
	if (p->nproc)
		set_limit(RLIMIT_NPROC, (rlim_t)p->nproc, (rlim_t)p->nproc);
	/* raw syscalls: only this thread exists, glibc's setxid broadcast is not needed */
	if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0 ||
	    syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0)
		child_fail("dropping privileges");
	/* after the uid change, which clears it; the parent is the forking thread */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail("prctl");
	char *const envp[] = {NULL};
	execve(p->argv[0], (char *const *)p->argv, envp);
	child_fail("exec bwrap");
}

static int sealed_memfd(const char *name, const char *data, size_t len);

/* ---- one step ---- */

enum { KILL_NONE, KILL_TIME, KILL_OUTPUT, KILL_CANCEL, KILL_ARTIFACT };

static void kill_all(pid_t pid, const struct cg *g)
{
	kill(pid, SIGKILL); /* bwrap; --die-with-parent and the pid namespace take the rest */
	cg_kill(g);
}

/* Appends what fits under the bound; 1 when something had to be dropped. */
static int take(struct buf *b, const char *data, size_t n, size_t bound)
{
	size_t room = bound > b->len ? bound - b->len : 0;
	size_t keep = n < room ? n : room;
	if (keep && buf_append(b, data, keep) < 0)
		return 1;
	return keep < n;
}

static int run_step(const struct sandbox *sb, const struct step_spec *sp,
		    const struct sandbox_limits *lim, const volatile sig_atomic_t *cancel,
		    struct sandbox_step *st, char *err, size_t errlen)
{
	int out[2] = {-1, -1}, errp[2] = {-1, -1}, art[2] = {-1, -1}, procs[3] = {-1, -1, -1};
	int pidfd = -1, null_fd = -1, seccomp_fd = -1, rc = -1;
	pid_t pid = -1;
	struct cg g;
	struct argv_builder a;
	memset(&g, 0, sizeof g);
	buf_init(&st->out, lim->output + 1);
	buf_init(&st->err, lim->output + 1);
	st->exit_code = 0;
	st->signal = 0;
	st->time_ms = 0;
	st->truncated = 0;
	st->status = SANDBOX_OK;

	build_argv(sb, sp, lim, &a);
	if (a.overflow) {
		errbuf_set(err, errlen, "too many arguments");
		goto out;
	}
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    (sp->artifact && pipe2(art, O_CLOEXEC) < 0)) {
		errbuf_set(err, errlen, "pipe: %s", strerror(errno));
		goto out;
	}
	if (sp->stdin_fd < 0 && (null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		errbuf_set(err, errlen, "/dev/null: %s", strerror(errno));
		goto out;
	}
	if (sb->nfilter && (seccomp_fd = sealed_memfd("seccomp", (const char *)sb->filter,
						  sb->nfilter * sizeof sb->filter[0])) < 0) {
		errbuf_set(err, errlen, "memfd: %s", strerror(errno));
		goto out;
	}
	if (cg_create(sb, &g, lim, err, errlen) < 0)
		goto out;
	if (cg_open_procs(&g, procs) < 0) {
		errbuf_set(err, errlen, "cgroup.procs: %s", strerror(errno));
		goto out;
	}
	struct child_plan plan = {
		.argv = a.v,
		.procs_fds = {procs[0], procs[1], procs[2]},
		.in_fd = sp->stdin_fd >= 0 ? sp->stdin_fd : null_fd,
		.out_fd = out[1],
		.err_fd = errp[1],
		.art_fd = art[1],
		.file_fd = sp->file_fd,
		.seccomp_fd = seccomp_fd,
		.uid = sb->uid,
		.gid = sb->gid,
		.cpu_s = sp->cpu_s,
		.file_size = lim->file_size,
		/* without a memory cgroup the address space is the only memory bound left;
		 * generous, because runtimes such as node reserve far more than they use */
		.as_bytes = sb->mode == SANDBOX_CG_NONE ? lim->memory * 16 : 0,
		.open_files = lim->open_files,
		/* without a pids cgroup: RLIMIT_NPROC counts every process of the sandbox uid,
		 * those of concurrent jobs too, hence the headroom */
		.nproc = sb->mode == SANDBOX_CG_NONE ? lim->processes * 2 : 0,
	};
	long long start = clock_mono_ms();
	pid = fork();
	if (pid < 0) {
		errbuf_set(err, errlen, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		child_exec(&plan);
	close(out[1]);
	close(errp[1]);
	out[1] = errp[1] = -1;
	if (art[1] >= 0) {
		close(art[1]);
		art[1] = -1;
	}
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

	long long deadline = start + sp->wall_ms, exited_at = 0, killed_at = 0;
	int exited = 0, wstatus = 0, why = KILL_NONE;
	int open_fd[3] = {out[0], errp[0], art[0]};
	struct buf *dest[3] = {&st->out, &st->err, sp->artifact};
	size_t bound[3] = {lim->output, lim->output, (size_t)lim->file_size};
	char chunk[65536];
	for (;;) {
		if (!exited) {
			pid_t w = waitpid(pid, &wstatus, WNOHANG);
			if (w == pid) {
				exited = 1;
				exited_at = clock_mono_ms();
			}
		}
		if (exited && open_fd[0] < 0 && open_fd[1] < 0 && open_fd[2] < 0)
			break;
		long long now = clock_mono_ms();
		if (why == KILL_NONE) {
			if (cancel && *cancel)
				why = KILL_CANCEL;
			else if (!exited && now >= deadline)
				why = KILL_TIME;
			if (why != KILL_NONE) {
				killed_at = now;
				kill_all(pid, &g);
			}
		}
		/* the program is gone but something it started still holds a pipe */
		if (exited && now - exited_at > EXIT_DRAIN_MS && !killed_at) {
			killed_at = now;
			kill_all(pid, &g);
		}
		if (killed_at && now - killed_at > KILL_WAIT_MS) {
			log_warn("sandbox: step did not die %d ms after SIGKILL", KILL_WAIT_MS);
			break;
		}
		struct pollfd pfd[4];
		int idx[4], n = 0;
		for (int i = 0; i < 3; i++)
			if (open_fd[i] >= 0) {
				pfd[n] = (struct pollfd){.fd = open_fd[i], .events = POLLIN};
				idx[n++] = i;
			}
		int pid_slot = -1;
		if (!exited && pidfd >= 0) {
			pid_slot = n;
			pfd[n] = (struct pollfd){.fd = pidfd, .events = POLLIN};
			idx[n++] = -1;
		}
		long long wait = why == KILL_NONE && !exited ? deadline - now : 50;
		if (wait > 100)
			wait = 100; /* cancel is a flag, not a descriptor: look at it often */
		if (pidfd < 0 && !exited && wait > 10)
			wait = 10;
		if (wait < 0)
			wait = 0;
		int pr = poll(pfd, (nfds_t)n, (int)wait);
		if (pr < 0 && errno != EINTR) {
			errbuf_set(err, errlen, "poll: %s", strerror(errno));
			kill_all(pid, &g);
			goto out;
		}
		for (int k = 0; pr > 0 && k < n; k++) {
			if (k == pid_slot || !(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			int i = idx[k];
			ssize_t got = read(open_fd[i], chunk, sizeof chunk);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				close(open_fd[i]);
				open_fd[i] = -1;
				if (i == 0)
					out[0] = -1;
				else if (i == 1)
					errp[0] = -1;
				else
					art[0] = -1;
				continue;
			}
			if (take(dest[i], chunk, (size_t)got, bound[i])) {
				if (i < 2)
					st->truncated = 1;
				if (why == KILL_NONE) {
					why = i < 2 ? KILL_OUTPUT : KILL_ARTIFACT;
					killed_at = clock_mono_ms();
					kill_all(pid, &g);
				}
			}
		}
	}
	/* whatever happened, nothing of the step survives it */
	kill_all(pid, &g);
	if (!exited) {
		while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
			;
		exited_at = clock_mono_ms();
	}
	pid = -1;
	st->time_ms = exited_at - start;

	int sig = 0, code = 0;
	if (WIFSIGNALED(wstatus)) {
		sig = WTERMSIG(wstatus); /* bwrap itself (the OOM killer may pick it) */
	} else {
		code = WEXITSTATUS(wstatus);
		/* bwrap reports a program killed by signal n as exit status 128 + n, the way
		 * shells do; a program that exits 128 + n itself reads the same */
		if (code > 128 && sandbox_signal_name(code - 128))
			sig = code - 128;
	}
	long long ooms = cg_oom_kills(&g);
	if (why == KILL_CANCEL) {
		st->status = SANDBOX_CANCELLED;
		sig = SIGKILL;
	} else if (why == KILL_TIME) {
		st->status = SANDBOX_TIME_LIMIT;
		sig = SIGKILL;
	} else if (why == KILL_OUTPUT) {
		st->status = SANDBOX_OUTPUT_LIMIT;
		sig = SIGKILL;
	} else if (why == KILL_ARTIFACT) {
		st->status = SANDBOX_FILE_SIZE_LIMIT;
		sig = SIGKILL;
	} else if (ooms > 0) {
		st->status = SANDBOX_MEMORY_LIMIT;
	} else if (sig == SIGXCPU) {
		st->status = SANDBOX_TIME_LIMIT;
	} else if (sig == SIGXFSZ) {
		st->status = SANDBOX_FILE_SIZE_LIMIT;
	}
	st->signal = sig;
	st->exit_code = sig ? -1 : code;
	rc = 0;
out:
	if (pid > 0) {
		kill_all(pid, &g);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	int fds[] = {out[0], out[1], errp[0], errp[1], art[0], art[1], pidfd, null_fd,
		     seccomp_fd, procs[0], procs[1], procs[2]};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	cg_destroy(&g);
	return rc;
}

/* A sealed memfd holding data: the sandbox can read it but nobody can change it. */
static int sealed_memfd(const char *name, const char *data, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The seccomp filter (classic BPF, kernel Documentation/userspace-api/seccomp_filter.rst):
 * a foreign architecture (i386 through int 0x80, x32) is refused, and the calls that
 * reach into other processes or into kernel surfaces a program has no business with fail
 * with EPERM: ptrace (the bwrap init is the same uid and would be traceable), cross-process
 * memory, keyrings, bpf, perf, userfaultfd, io_uring, mounts and namespaces, modules. */
static void build_filter(struct sandbox *sb)
{
#ifdef SECCOMP_ARCH
	static const long denied[] = {
		SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_kexec_load,
		SYS_add_key, SYS_keyctl, SYS_request_key, SYS_bpf, SYS_perf_event_open,
		SYS_userfaultfd, SYS_mount, SYS_umount2, SYS_pivot_root, SYS_setns, SYS_unshare,
		SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
		SYS_open_by_handle_at, SYS_name_to_handle_at, SYS_init_module, SYS_finit_module,
		SYS_delete_module, SYS_reboot, SYS_swapon, SYS_swapoff, SYS_acct, SYS_syslog,
		SYS_fanotify_init, SYS_kcmp,
	};
	struct sock_filter *f = sb->filter;
	size_t n = 0;
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, arch));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, 1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
					      offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
	/* x32 system calls share the architecture value and carry this bit */
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
#endif
	for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)denied[i], 0, 1);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
	}
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	sb->nfilter = n;
#else
	sb->nfilter = 0;
	log_warn("sandbox: no seccomp filter for this architecture");
#endif
}

static const char *const true_cmd[] = {"/bin/true", NULL};

struct sandbox *sandbox_open(const struct sandbox_config *c, char *err, size_t errlen)
{
	struct sandbox *sb = calloc(1, sizeof *sb);
	if (!sb) {
		errbuf_set(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(sb->bwrap, sizeof sb->bwrap, "%s", c->bwrap);
	sb->uid = c->uid;
	sb->gid = c->gid;
	if (access(sb->bwrap, X_OK) < 0) {
		errbuf_set(err, errlen, "bubblewrap not found at %s (install the bubblewrap package)",
			sb->bwrap);
		goto fail;
	}
	static const char *const roots[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
	for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
		struct stat st;
		if (lstat(roots[i], &st) < 0)
			continue;
		char *name = sb->roots[sb->nroots][0], *target = sb->roots[sb->nroots][1];
		snprintf(name, 64, "%s", roots[i]);
		target[0] = '\0';
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlink(roots[i], target, 63);
			if (n <= 0)
				continue;
			target[n] = '\0';
		} else if (!S_ISDIR(st.st_mode)) {
			continue;
		}
		sb->nroots++;
	}
	cgroup_setup(sb, c);
	cgroup_sweep(sb);
	build_filter(sb);

	/* prove it works now rather than fail every job later */
	struct sandbox_limits lim;
	sandbox_limits_default(&lim);
	struct step_spec sp = {.cmd = true_cmd, .file_fd = -1, .stdin_fd = -1, .wall_ms = 10000, .cpu_s = 10};
	struct sandbox_step st;
	char why[256];
	int rc = run_step(sb, &sp, &lim, NULL, &st, why, sizeof why);
	if (rc == 0 && (st.signal || st.exit_code != 0))
		snprintf(why, sizeof why, "exit %d, signal %d: %.150s", st.exit_code, st.signal,
			 st.err.data ? st.err.data : "");
	int ok = rc == 0 && !st.signal && st.exit_code == 0;
	buf_free(&st.out);
	buf_free(&st.err);
	if (!ok) {
		errbuf_set(err, errlen, "sandbox self-test failed: %s", why);
		goto fail;
	}
	return sb;
fail:
	free(sb);
	return NULL;
}

void sandbox_close(struct sandbox *sb)
{
	free(sb);
}

enum sandbox_cgroup sandbox_cgroup_mode(const struct sandbox *sb)
{
	return sb->mode;
}

static const char *const compile_wrapper[] = {
	"/bin/sh", "-c",
	/* run the compiler; on success hand the artifact back through fd 3 */
	"a=$1; shift; \"$@\" || exit $?; exec cat -- \"$a\" >&3", "sh", NULL};

int sandbox_run(const struct sandbox *sb, const struct runtime *rt,
		const struct sandbox_request *req, const struct sandbox_limits *lim,
		const volatile sig_atomic_t *cancel, struct sandbox_result *res, char *err,
		size_t errlen)
{
	int code_fd = -1, in_fd = -1, bin_fd = -1, rc = -1;
	struct buf artifact;
	buf_init(&artifact, (size_t)lim->file_size + 1);
	memset(res, 0, sizeof *res);
	if (req->code_len > SANDBOX_CODE_MAX || req->stdin_len > SANDBOX_STDIN_MAX ||
	    req->nargs > SANDBOX_ARGS_MAX) {
		errbuf_set(err, errlen, "request too large");
		goto out;
	}
	code_fd = sealed_memfd("code", req->code ? req->code : "", req->code_len);
	if (req->stdin_len)
		in_fd = sealed_memfd("stdin", req->stdin_data, req->stdin_len);
	if (code_fd < 0 || (req->stdin_len && in_fd < 0)) {
		errbuf_set(err, errlen, "memfd: %s", strerror(errno));
		goto out;
	}
	const char *run_file_perms = "0444";
	int run_file_fd = code_fd;
	const char *run_file = rt->file;
	if (rt->compile[0]) {
		const char *cmd[RUNTIMES_ARGV_MAX + 8];
		size_t n = 0;
		for (size_t i = 0; compile_wrapper[i]; i++)
			cmd[n++] = compile_wrapper[i];
		cmd[n++] = rt->artifact;
		for (size_t i = 0; rt->compile[i]; i++)
			cmd[n++] = rt->compile[i];
		cmd[n] = NULL;
		struct step_spec sp = {
			.cmd = cmd,
			.file_fd = code_fd,
			.file_dest = rt->file,
			.file_perms = "0644",
			.stdin_fd = -1,
			.artifact = &artifact,
			.wall_ms = lim->compile_ms,
			.cpu_s = (lim->compile_ms + 999) / 1000,
		};
		res->compiled = 1;
		if (run_step(sb, &sp, lim, cancel, &res->compile, err, errlen) < 0)
			goto out;
		const struct sandbox_step *c = &res->compile;
		if (c->status != SANDBOX_OK || c->signal || c->exit_code != 0) {
			res->status = c->status == SANDBOX_CANCELLED ? SANDBOX_CANCELLED
								     : SANDBOX_COMPILE_ERROR;
			rc = 0;
			goto out;
		}
		bin_fd = sealed_memfd("program", artifact.data ? artifact.data : "", artifact.len);
		if (bin_fd < 0) {
			errbuf_set(err, errlen, "memfd: %s", strerror(errno));
			goto out;
		}
		run_file_fd = bin_fd;
		run_file_perms = "0555";
		run_file = rt->artifact;
	}
	struct step_spec sp = {
		.cmd = (const char *const *)rt->run,
		.extra = req->args,
		.nextra = req->nargs,
		.file_fd = run_file_fd,
		.file_dest = run_file,
		.file_perms = run_file_perms,
		.stdin_fd = in_fd,
		.wall_ms = lim->run_ms,
		.cpu_s = lim->cpu_s,
	};
	res->ran = 1;
	if (run_step(sb, &sp, lim, cancel, &res->run, err, errlen) < 0)
		goto out;
	res->status = res->run.status;
	rc = 0;
out:
	buf_free(&artifact);
	if (code_fd >= 0)
		close(code_fd);
	if (in_fd >= 0)
		close(in_fd);
	if (bin_fd >= 0)
		close(bin_fd);
	return rc;
}

void sandbox_result_free(struct sandbox_result *res)
{
	buf_free(&res->compile.out);
	buf_free(&res->compile.err);
	buf_free(&res->run.out);
	buf_free(&res->run.err);
}

const char *sandbox_status_message(enum sandbox_status s)
{
	switch (s) {
	case SANDBOX_OK:
		return NULL;
	case SANDBOX_TIME_LIMIT:
		return "time limit exceeded";
	case SANDBOX_MEMORY_LIMIT:
		return "memory limit exceeded";
	case SANDBOX_OUTPUT_LIMIT:
		return "output limit exceeded";
	case SANDBOX_FILE_SIZE_LIMIT:
		return "file size limit exceeded";
	case SANDBOX_CANCELLED:
		return "cancelled: the worker is shutting down";
	case SANDBOX_COMPILE_ERROR:
		return "compilation failed";
	}
	return NULL;
}

const char *sandbox_status_code(enum sandbox_status s)
{
	switch (s) {
	case SANDBOX_OK:
		return NULL;
	case SANDBOX_TIME_LIMIT:
		return "time_limit_exceeded";
	case SANDBOX_MEMORY_LIMIT:
		return "memory_limit_exceeded";
	case SANDBOX_OUTPUT_LIMIT:
		return "output_limit_exceeded";
	case SANDBOX_FILE_SIZE_LIMIT:
		return "file_size_limit_exceeded";
	case SANDBOX_CANCELLED:
		return "cancelled";
	case SANDBOX_COMPILE_ERROR:
		return "compile_error";
	}
	return NULL;
}

const char *sandbox_signal_name(int sig)
{
	static const char *const names[] = {
		[SIGHUP] = "SIGHUP",   [SIGINT] = "SIGINT",	[SIGQUIT] = "SIGQUIT",
		[SIGILL] = "SIGILL",   [SIGTRAP] = "SIGTRAP",	[SIGABRT] = "SIGABRT",
		[SIGBUS] = "SIGBUS",   [SIGFPE] = "SIGFPE",	[SIGKILL] = "SIGKILL",
		[SIGUSR1] = "SIGUSR1", [SIGSEGV] = "SIGSEGV",	[SIGUSR2] = "SIGUSR2",
		[SIGPIPE] = "SIGPIPE", [SIGALRM] = "SIGALRM",	[SIGTERM] = "SIGTERM",
		[SIGSTKFLT] = "SIGSTKFLT", [SIGCHLD] = "SIGCHLD", [SIGCONT] = "SIGCONT",
		[SIGSTOP] = "SIGSTOP", [SIGTSTP] = "SIGTSTP",	[SIGTTIN] = "SIGTTIN",
		[SIGTTOU] = "SIGTTOU", [SIGURG] = "SIGURG",	[SIGXCPU] = "SIGXCPU",
		[SIGXFSZ] = "SIGXFSZ", [SIGVTALRM] = "SIGVTALRM", [SIGPROF] = "SIGPROF",
		[SIGWINCH] = "SIGWINCH", [SIGIO] = "SIGIO",	[SIGPWR] = "SIGPWR",
		[SIGSYS] = "SIGSYS",
	};
	if (sig <= 0 || (size_t)sig >= sizeof names / sizeof names[0])
		return NULL;
	return names[sig];
}

/* ---- JSON ---- */

/* Length of the valid UTF-8 sequence (RFC 3629 §4) at p, or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	if (p[0] < 0x80)
		return p[0] ? 1 : 0;
	size_t len;
	unsigned cp;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* A JSON string of output bytes: valid UTF-8 kept, anything else (and NUL) becomes
 * U+FFFD. When the output was cut, a sequence cut in half at the end is dropped. */
static cJSON *output_string(const struct buf *b, int truncated)
{
	const unsigned char *p = (const unsigned char *)(b->data ? b->data : "");
	size_t n = b->len;
	struct buf s;
	buf_init(&s, n * 3 + 1);
	for (size_t i = 0; i < n;) {
		size_t len = utf8_seq(p + i, n - i);
		if (len) {
			buf_append(&s, p + i, len);
			i += len;
			continue;
		}
		if (truncated && n - i < 4 && p[i] >= 0xc2 && p[i] <= 0xf4)
			break; /* cut in the middle of a character */
		buf_append(&s, "\xef\xbf\xbd", 3);
		i++;
	}
	cJSON *str = cJSON_CreateString(s.data ? s.data : "");
	buf_free(&s);
	return str;
}

static void add_step(cJSON *o, const struct sandbox_step *st)
{
	cJSON_AddItemToObject(o, "stdout", output_string(&st->out, st->truncated));
	cJSON_AddItemToObject(o, "stderr", output_string(&st->err, st->truncated));
	if (st->signal)
		cJSON_AddNullToObject(o, "exit_code");
	else
		cJSON_AddNumberToObject(o, "exit_code", st->exit_code);
	const char *sig = sandbox_signal_name(st->signal);
	if (sig)
		cJSON_AddStringToObject(o, "signal", sig);
	else
		cJSON_AddNullToObject(o, "signal");
	cJSON_AddNumberToObject(o, "time_ms", (double)st->time_ms);
	cJSON_AddBoolToObject(o, "truncated", st->truncated);
	const char *code = sandbox_status_code(st->status);
	const char *msg = sandbox_status_message(st->status);
	if (code) {
		cJSON_AddStringToObject(o, "status", code);
		cJSON_AddStringToObject(o, "message", msg);
	} else {
		cJSON_AddNullToObject(o, "status");
		cJSON_AddNullToObject(o, "message");
	}
}

char *sandbox_result_json(const struct sandbox_result *res, const struct runtime *rt)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	if (res->ran) {
		add_step(o, &res->run);
	} else {
		/* not run (compile failed or cancelled): an empty run, saying why */
		struct sandbox_step none;
		memset(&none, 0, sizeof none);
		none.status = res->status;
		none.exit_code = 0;
		add_step(o, &none);
		cJSON_ReplaceItemInObject(o, "exit_code", cJSON_CreateNull());
	}
	if (rt) {
		cJSON_AddStringToObject(o, "language", rt->language);
		cJSON_AddStringToObject(o, "version", rt->version);
	}
	if (res->compiled) {
		cJSON *c = cJSON_CreateObject();
		if (c) {
			add_step(c, &res->compile);
			cJSON_AddItemToObject(o, "compile", c);
		}
	}
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* sandbox_cgroup: see sandbox_cgroup.h. v1 uses the memory and pids hierarchies (and the
 * freezer and cpu ones when mounted), v2 one group with all the controllers. */
#include "sandbox_cgroup.h"

#include "clock.h"
#include "errbuf.h"
#include "log.h"
#include "rnd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

long long cg_cpu_quota_us(int milli)
{
	return (long long)milli * CG_CPU_PERIOD_US / 1000;
}

/* Whether the word w is one of the space-separated words of list (cgroup.controllers:
 * "cpu" must not match "cpuset"). */
static int has_word(const char *list, const char *w)
{
	size_t n = strlen(w);
	for (const char *p = strstr(list, w); p; p = strstr(p + 1, w))
		if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
			return 1;
	return 0;
}

/* v2: the cpu controller for the step groups too, when the root offers it. A failure only
 * costs the CPU limit, like a missing controller. */
static int v2_enable_cpu(const char *root, const char *group, const char *ctl)
{
	if (!has_word(ctl, "cpu"))
		return 0;
	if (write_str(root, "cgroup.subtree_control", "+cpu") < 0 && errno != EBUSY)
		return 0;
	return write_str(group, "cgroup.subtree_control", "+cpu") == 0;
}

/* Chooses the layout and creates the parent groups (see cg_setup in the header). */
void cg_setup(struct cg_parents *par, const struct sandbox_config *c)
{
	char why[600] = "";
	const char *want = c->cgroup;
	par->mode = SANDBOX_CG_NONE;
	par->pidns = cg_pidns();
	if (!par->pidns)
		log_warn("sandbox: /proc/self/ns/pid cannot be read: the step groups of workers "
			 "that died are not swept at start");
	if (!strcmp(want, "none")) {
		log_warn("sandbox: cgroups disabled (SANDBOX_CGROUP=none): limits fall back to "
			 "rlimits and the pid namespace; runs have no CPU limit (CPU_LIMIT)");
		return;
	}
	if (strcmp(want, "v1") && file_exists(c->cgroup_root, "cgroup.controllers")) {
		char ctl[512];
		snprintf(par->v2, sizeof par->v2, "%s/%s", c->cgroup_root, c->cgroup_group);
		if (read_str(c->cgroup_root, "cgroup.controllers", ctl, sizeof ctl) < 0 ||
		    !strstr(ctl, "memory") || !strstr(ctl, "pids"))
			snprintf(why, sizeof why, "cgroup v2 lacks the memory or pids controller");
		else if ((v2_enable(c->cgroup_root) < 0 && errno != EBUSY) ||
			 make_dir(par->v2) < 0 || v2_enable(par->v2) < 0)
			snprintf(why, sizeof why, "cannot prepare %s: %s", par->v2, strerror(errno));
		else {
			par->mode = SANDBOX_CG_V2;
			par->v2_cpu = v2_enable_cpu(c->cgroup_root, par->v2, ctl);
			if (!par->v2_cpu)
				log_warn("sandbox: cgroup v2 without the cpu controller for %s: runs "
					 "have no CPU limit (CPU_LIMIT)", par->v2);
			return;
		}
		par->v2[0] = '\0';
	} else if (strcmp(want, "v2")) {
		char m[300], p[300], f[300], u[300];
		snprintf(m, sizeof m, "%s/memory", c->cgroup_root);
		snprintf(p, sizeof p, "%s/pids", c->cgroup_root);
		snprintf(f, sizeof f, "%s/freezer", c->cgroup_root);
		snprintf(u, sizeof u, "%s/cpu", c->cgroup_root);
		if (!file_exists(m, "memory.limit_in_bytes") || !file_exists(p, "cgroup.procs")) {
			snprintf(why, sizeof why, "no cgroup v1 memory and pids hierarchies under %s",
				 c->cgroup_root);
		} else {
			snprintf(par->mem, sizeof par->mem, "%s/%s", m, c->cgroup_group);
			snprintf(par->pids, sizeof par->pids, "%s/%s", p, c->cgroup_group);
			if (file_exists(f, "cgroup.procs"))
				snprintf(par->frz, sizeof par->frz, "%s/%s", f, c->cgroup_group);
			if (make_dir(par->mem) < 0 || make_dir(par->pids) < 0 ||
			    (par->frz[0] && make_dir(par->frz) < 0)) {
				snprintf(why, sizeof why, "cannot create %s groups: %s",
					 c->cgroup_group, strerror(errno));
				par->mem[0] = par->pids[0] = par->frz[0] = '\0';
			} else {
				par->mode = SANDBOX_CG_V1;
				if (!file_exists(par->mem, CG_V1_SOCKET_LIMIT))
					log_warn("sandbox: cgroup v1 without %s: the socket buffers of "
						 "runs are not bounded by MEMORY_LIMIT_MB",
						 CG_V1_SOCKET_LIMIT);
				/* the cpu hierarchy is optional: without it runs have no CPU limit */
				if (file_exists(u, "cpu.cfs_quota_us")) {
					snprintf(par->cpu, sizeof par->cpu, "%s/%s", u,
						 c->cgroup_group);
					if (make_dir(par->cpu) < 0) {
						log_warn("sandbox: cannot create %s: %s: runs have no "
							 "CPU limit (CPU_LIMIT)", par->cpu, strerror(errno));
						par->cpu[0] = '\0';
					}
				} else {
					log_warn("sandbox: no cgroup v1 cpu hierarchy with CFS bandwidth "
						 "under %s: runs have no CPU limit (CPU_LIMIT)",
						 c->cgroup_root);
				}
				return;
			}
		}
	} else {
		snprintf(why, sizeof why, "SANDBOX_CGROUP=v2 but %s is not a cgroup v2 mount",
			 c->cgroup_root);
	}
	log_warn("sandbox: no cgroups (%s): limits fall back to rlimits and the pid namespace; "
		 "memory and process counts are only loosely bounded, CPU use not at all", why);
}

unsigned long long cg_pidns(void)
{
	struct stat st;
	return stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

int cg_group_name(const struct cg_parents *p, char *out, size_t n)
{
	char hex[13];
	if (rnd_hex(hex, 6) < 0)
		return -1;
	int w = snprintf(out, n, "%d.%llu-%s", (int)getpid(), p->pidns, hex);
	return w > 0 && (size_t)w < n ? 0 : -1;
}

int cg_create(const struct cg_parents *par, struct cg *g, const struct sandbox_limits *lim,
	      char *err, size_t errlen)
{
	memset(g, 0, sizeof *g);
	if (par->mode == SANDBOX_CG_NONE)
		return 0;
	char name[80], mem[32], pids[32], quota[48];
	if (cg_group_name(par, name, sizeof name) < 0) {
		errbuf_set(err, errlen, "no name for the step's cgroup: getrandom failed");
		return -1;
	}
	snprintf(mem, sizeof mem, "%lld", lim->memory);
	snprintf(pids, sizeof pids, "%d", lim->processes);
	long long q = cg_cpu_quota_us(lim->cpu_milli);
	if (par->mode == SANDBOX_CG_V2) {
		snprintf(g->v2, sizeof g->v2, "%s/%s", par->v2, name);
		if (mkdir(g->v2, 0755) < 0) {
			g->v2[0] = '\0';
			goto fail;
		}
		if (write_str(g->v2, "memory.max", mem) < 0 || write_str(g->v2, "pids.max", pids) < 0)
			goto fail;
		write_str(g->v2, "memory.swap.max", "0"); /* absent without swap accounting */
		if (par->v2_cpu) {
			snprintf(quota, sizeof quota, "%lld %d", q, CG_CPU_PERIOD_US);
			if (write_str(g->v2, "cpu.max", quota) < 0)
				goto fail;
		}
		return 0;
	}
	snprintf(g->mem, sizeof g->mem, "%s/%s", par->mem, name);
	snprintf(g->pids, sizeof g->pids, "%s/%s", par->pids, name);
	if (mkdir(g->mem, 0755) < 0) {
		g->mem[0] = g->pids[0] = '\0';
		goto fail;
	}
	if (mkdir(g->pids, 0755) < 0) {
		g->pids[0] = '\0';
		goto fail;
	}
	if (par->frz[0]) {
		snprintf(g->frz, sizeof g->frz, "%s/%s", par->frz, name);
		if (mkdir(g->frz, 0755) < 0) {
			g->frz[0] = '\0';
			goto fail;
		}
	}
	if (par->cpu[0]) {
		snprintf(g->cpu, sizeof g->cpu, "%s/%s", par->cpu, name);
		if (mkdir(g->cpu, 0755) < 0) {
			g->cpu[0] = '\0';
			goto fail;
		}
		/* the period first: the quota is per period */
		char period[16];
		snprintf(period, sizeof period, "%d", CG_CPU_PERIOD_US);
		snprintf(quota, sizeof quota, "%lld", q);
		if (write_str(g->cpu, "cpu.cfs_period_us", period) < 0 ||
		    write_str(g->cpu, "cpu.cfs_quota_us", quota) < 0)
			goto fail;
	}
	if (write_str(g->mem, "memory.limit_in_bytes", mem) < 0 ||
	    write_str(g->pids, "pids.max", pids) < 0)
		goto fail;
	/* memory + swap: absent when the kernel does not account swap */
	if (file_exists(g->mem, "memory.memsw.limit_in_bytes") &&
	    write_str(g->mem, "memory.memsw.limit_in_bytes", mem) < 0)
		goto fail;
	/* socket buffers: v1 charges them to no group until a group's TCP limit is set (v2
	 * counts them in memory.max), so a step's loopback TCP and UDP sockets that nobody
	 * reads held host memory past the limit, and the host's TCP and UDP memory (tcp_mem,
	 * udp_mem) is one pool for every socket of the host. Set before the child joins: only
	 * sockets made after it are charged. Absent on a kernel without it (cg_setup warns). */
	if (file_exists(g->mem, CG_V1_SOCKET_LIMIT) && write_str(g->mem, CG_V1_SOCKET_LIMIT, mem) < 0)
		goto fail;
	return 0;
fail:
	errbuf_set(err, errlen, "cgroup setup failed: %s", strerror(errno));
	return -1;
}

int cg_open_procs(const struct cg *g, int fds[CG_PROCS_FDS])
{
	const char *dirs[CG_PROCS_FDS] = {g->v2[0] ? g->v2 : g->mem, g->pids, g->frz, g->cpu};
	for (int i = 0; i < CG_PROCS_FDS; i++)
		fds[i] = -1;
	for (int i = 0; i < CG_PROCS_FDS; i++) {
		if (!dirs[i][0])
			continue;
		char path[512];
		snprintf(path, sizeof path, "%s/cgroup.procs", dirs[i]);
		fds[i] = open(path, O_WRONLY | O_CLOEXEC);
		if (fds[i] < 0) {
			/* and forgotten: the caller closes whatever fds holds once the step ends,
			 * and by then another thread may own the number */
			int saved = errno;
			for (int j = 0; j < i; j++)
				if (fds[j] >= 0) {
					close(fds[j]);
					fds[j] = -1;
				}
			errno = saved;
			return -1;
		}
	}
	return 0;
}

static const char *cg_procs_dir(const struct cg *g)
{
	return g->v2[0] ? g->v2 : g->pids[0] ? g->pids : NULL;
}

/* The longest line cgroup.procs can hold a pid in: pid_max is at most 2^22 (7 digits);
 * the rest is headroom. A longer line is no pid and is skipped whole. */
#define CG_PID_DIGITS_MAX 19

/* Streams dir's cgroup.procs in chunks, however long the list (a group may hold
 * PROCESS_LIMIT = 4096 processes and more): nothing grows, and only a line that ended in
 * its newline names a pid, so a read that stops inside a number never yields a prefix of
 * it (a cut "12345" read as 12 would signal an unrelated host process). */
int cg_procs_each(const char *dir, int (*fn)(long pid, void *arg), void *arg)
{
	char path[512];
	snprintf(path, sizeof path, "%s/cgroup.procs", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char chunk[4096];
	char line[CG_PID_DIGITS_MAX + 1];
	size_t len = 0;
	int bad = 0, listed = 0, rc = 0;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -1;
			goto out;
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			char c = chunk[i];
			if (c != '\n') {
				if (c < '0' || c > '9' || len == CG_PID_DIGITS_MAX)
					bad = 1;
				else
					line[len++] = c;
				continue;
			}
			if (len || bad)
				listed++;
			if (len && !bad) {
				line[len] = '\0';
				long pid = strtol(line, NULL, 10);
				if (pid > 0 && fn && fn(pid, arg) < 0) {
					rc = -1;
					goto out;
				}
			}
			len = 0;
			bad = 0;
		}
	}
	if (len || bad)
		listed++; /* a last line without its newline: listed, but no pid to trust */
	rc = listed;
out:
	close(fd);
	return rc;
}

static int kill_pid(long pid, void *arg)
{
	(void)arg;
	if (pid <= 0 || pid > INT_MAX)
		return 0;
	kill((pid_t)pid, SIGKILL);
	return 0;
}

/* Kills every process of the group until it is empty. v2 with cgroup.kill (Linux >= 5.14)
 * does it in one write that also catches whatever forks meanwhile, so no pid is signalled
 * one by one; it is written again each round until the list is empty. Otherwise (v1, an
 * older kernel, the write refused) the group is frozen (so nothing forks between reading
 * the list and the kills), every listed pid gets SIGKILL, and it is thawed, until the list
 * is empty. */
int cg_kill(const struct cg *g)
{
	const char *dir = cg_procs_dir(g);
	if (!dir)
		return 0;
	int group_kill = g->v2[0] && file_exists(g->v2, "cgroup.kill");
	const char *frz = g->frz[0] ? g->frz : NULL;
	int v2frz = g->v2[0] && file_exists(g->v2, "cgroup.freeze");
	long long deadline = clock_mono_ms() + CG_KILL_WAIT_MS;
	while (clock_mono_ms() < deadline) {
		if (group_kill && write_str(g->v2, "cgroup.kill", "1") < 0)
			group_kill = 0; /* refused: one pid at a time from now on */
		int listed;
		if (group_kill) {
			listed = cg_procs_each(dir, NULL, NULL);
		} else {
			if (frz)
				write_str(frz, "freezer.state", "FROZEN");
			else if (v2frz)
				write_str(g->v2, "cgroup.freeze", "1");
			listed = cg_procs_each(dir, kill_pid, NULL);
			if (frz)
				write_str(frz, "freezer.state", "THAWED");
			else if (v2frz)
				write_str(g->v2, "cgroup.freeze", "0");
		}
		if (listed < 0)
			return -1;
		if (listed == 0)
			return 0;
		clock_sleep_ms(2);
	}
	return -1;
}

long long cg_oom_kills(const struct cg *g)
{
	if (g->v2[0])
		return read_keyed(g->v2, "memory.events", "oom_kill");
	if (g->mem[0])
		return read_keyed(g->mem, "memory.oom_control", "oom_kill");
	return 0;
}

void cg_destroy(const struct cg *g)
{
	const char *dirs[5] = {g->v2, g->mem, g->pids, g->frz, g->cpu};
	for (int i = 0; i < 5; i++) {
		if (!dirs[i][0])
			continue;
		/* a group empties a moment after its last task is reaped */
		for (int tries = 0; rmdir(dirs[i]) < 0 && errno == EBUSY && tries < 500; tries++)
			clock_sleep_ms(2);
		if (access(dirs[i], F_OK) == 0)
			log_warn("sandbox: cannot remove cgroup %s: %s", dirs[i], strerror(errno));
	}
}

/* Whether the group name is a step group of a worker of this pid namespace (pidns) that
 * no longer runs: "<pid>.<pidns>-…", or "<pid>-…" as older workers named them, which only
 * a worker of the host's own pid namespace judges (older workers ran there, as a rule).
 * Nothing, when this namespace is not known (pidns 0). */
static int sweepable(const char *name, unsigned long long pidns)
{
	if (!pidns)
		return 0;
	if (name[0] < '1' || name[0] > '9')
		return 0;
	char *end;
	errno = 0;
	long pid = strtol(name, &end, 10);
	if (errno || pid <= 0 || pid > INT_MAX)
		return 0;
	if (*end == '.') {
		char *end2;
		if (end[1] < '0' || end[1] > '9')
			return 0;
		errno = 0;
		unsigned long long ns = strtoull(end + 1, &end2, 10);
		if (errno || *end2 != '-' || ns != pidns)
			return 0;
	} else if (*end != '-' || pidns != CG_PIDNS_INIT) {
		return 0;
	}
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

void cg_sweep(const struct cg_parents *par)
{
	const char *parents[5] = {par->v2, par->mem, par->pids, par->frz, par->cpu};
	for (int i = 0; i < 5; i++) {
		if (!parents[i][0])
			continue;
		DIR *d = opendir(parents[i]);
		if (!d)
			continue;
		struct dirent *de;
		while ((de = readdir(d))) {
			if (!sweepable(de->d_name, par->pidns))
				continue;
			struct cg g;
			memset(&g, 0, sizeof g);
			char *slots[5] = {g.v2, g.mem, g.pids, g.frz, g.cpu};
			snprintf(slots[i], sizeof g.v2, "%s/%s", parents[i], de->d_name);
			/* a memory, freezer or cpu group alone: its procs are listed there */
			int alone = i == 1 || i == 3 || i == 4;
			if (alone)
				snprintf(g.pids, sizeof g.pids, "%s", slots[i]);
			/* v1: a worker that died between a kill round's FROZEN and THAWED left the
			 * group frozen, and a frozen task takes no SIGKILL until it is thawed: with
			 * the freezer group named, cg_kill freezes, signals and thaws it */
			if ((i == 1 || i == 2) && par->frz[0]) {
				char frz[sizeof g.frz];
				int n = snprintf(frz, sizeof frz, "%s/%s", par->frz, de->d_name);
				if (n > 0 && (size_t)n < sizeof frz && access(frz, F_OK) == 0)
					snprintf(g.frz, sizeof g.frz, "%s", frz);
			}
			cg_kill(&g);
			if (alone)
				g.pids[0] = '\0';
			cg_destroy(&g);
		}
		closedir(d);
	}
}


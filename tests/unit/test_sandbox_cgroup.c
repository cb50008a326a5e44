/* The sandbox's cgroup list (queue-worker/sandbox_cgroup.c): which pids a kill round may
 * signal, read from a cgroup.procs this test writes under /tmp (no cgroupfs, no signal
 * sent: the pids go to a recorder). The worker runs as root, so a pid read wrong is an
 * unrelated host process killed. Also the CPU limit: CPU_LIMIT read, and its CFS quota. */
#include "../../queue-worker/sandbox_cgroup.h"
#include "unit.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/cc-test-cgroup-XXXXXX";

#define REC_MAX 4096

struct rec {
	long pids[REC_MAX];
	size_t n;
	int overflow;
};

static int record(long pid, void *arg)
{
	struct rec *r = arg;
	if (r->n == REC_MAX) {
		r->overflow = 1;
		return 0;
	}
	r->pids[r->n++] = pid;
	return 0;
}

static int put(const char *file, const char *text, size_t len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

/* The first line of dir/rel into got (cap bytes); "" when it cannot be read. */
static void first_line(const char *rel, char *got, size_t cap)
{
	char path[512];
	got[0] = '\0';
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	FILE *f = fopen(path, "r");
	CHECK(f != NULL);
	if (f) {
		CHECK(fgets(got, (int)cap, f) != NULL);
		fclose(f);
	}
}

static void test_long_list(void)
{
	/* 1300 pids of 7 bytes a line ("1000000\n" is 8; these are 6 digits + newline): 9100
	 * bytes, past the 8 KiB a single buffer held. At byte 8191 the 1171st pid, 101170, was
	 * cut after its first digit and read as pid 1. */
	enum { N = 1300 };
	char *text = malloc(N * 8 + 1);
	CHECK(text != NULL);
	if (!text)
		return;
	size_t len = 0;
	for (int i = 0; i < N; i++)
		len += (size_t)sprintf(text + len, "%d\n", 100000 + i);
	CHECK(len > 8192);
	CHECK(put("cgroup.procs", text, len) == 0);
	free(text);
	struct rec *r = calloc(1, sizeof *r);
	CHECK(r != NULL);
	if (!r)
		return;
	CHECK(cg_procs_each(dir, record, r) == N);
	CHECK(!r->overflow);
	CHECK(r->n == N);
	int exact = 1;
	for (size_t i = 0; i < r->n; i++)
		if (r->pids[i] != 100000 + (long)i) {
			fprintf(stderr, "  pid %zu read as %ld\n", i, r->pids[i]);
			exact = 0;
		}
	CHECK(exact);
	free(r);
}

static void test_incomplete_lines(void)
{
	struct rec r = {0};
	/* a last line without its newline is listed (the group is not empty) but not trusted */
	const char *t = "42\n43";
	CHECK(put("cgroup.procs", t, strlen(t)) == 0);
	CHECK(cg_procs_each(dir, record, &r) == 2);
	CHECK(r.n == 1 && r.pids[0] == 42);
	/* a line that is no pid, a number too long for one, 0: skipped, the rest read */
	memset(&r, 0, sizeof r);
	t = "7\nabc\n12345678901234567890123\n0\n\n9\n";
	CHECK(put("cgroup.procs", t, strlen(t)) == 0);
	CHECK(cg_procs_each(dir, record, &r) == 5);
	CHECK(r.n == 2 && r.pids[0] == 7 && r.pids[1] == 9);
	/* empty: nothing listed */
	memset(&r, 0, sizeof r);
	CHECK(put("cgroup.procs", "", 0) == 0);
	CHECK(cg_procs_each(dir, record, &r) == 0);
	CHECK(r.n == 0);
}

static void test_group_kill(void)
{
	/* v2 with cgroup.kill: one write for the whole group; an empty list ends it at once */
	struct cg g;
	memset(&g, 0, sizeof g);
	snprintf(g.v2, sizeof g.v2, "%s", dir);
	CHECK(put("cgroup.procs", "", 0) == 0);
	CHECK(put("cgroup.kill", "", 0) == 0);
	CHECK(cg_kill(&g) == 0);
	char got[8];
	first_line("cgroup.kill", got, sizeof got);
	CHECK_STR(got, "1");
	/* no such group: an error, not an empty one */
	memset(&g, 0, sizeof g);
	snprintf(g.v2, sizeof g.v2, "%s/gone", dir);
	CHECK(cg_kill(&g) == -1);
}

static void test_open_procs_partial(void)
{
	/* cgroup v1: the memory group's cgroup.procs opens, the pids group's does not. The one
	 * opened is closed and its number forgotten: the step's clean-up closes every number
	 * left in fds, and another job thread may have been given it meanwhile. */
	struct cg g;
	memset(&g, 0, sizeof g);
	snprintf(g.mem, sizeof g.mem, "%s", dir);
	snprintf(g.pids, sizeof g.pids, "%s/gone", dir);
	CHECK(put("cgroup.procs", "", 0) == 0);
	int fds[CG_PROCS_FDS] = {7, 7, 7, 7};
	CHECK(cg_open_procs(&g, fds) == -1);
	CHECK(fds[0] == -1 && fds[1] == -1 && fds[2] == -1 && fds[3] == -1);
	/* the cpu group, the last one opened, missing: the three before it closed too */
	snprintf(g.pids, sizeof g.pids, "%s", dir);
	snprintf(g.frz, sizeof g.frz, "%s", dir);
	snprintf(g.cpu, sizeof g.cpu, "%s/gone", dir);
	CHECK(cg_open_procs(&g, fds) == -1);
	CHECK(fds[0] == -1 && fds[1] == -1 && fds[2] == -1 && fds[3] == -1);
	/* no cpu group (no cpu hierarchy): three descriptors and -1 for it */
	g.cpu[0] = '\0';
	CHECK(cg_open_procs(&g, fds) == 0);
	CHECK(fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0 && fds[3] == -1);
	for (int i = 0; i < CG_PROCS_FDS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	/* all four there: four descriptors */
	snprintf(g.cpu, sizeof g.cpu, "%s", dir);
	CHECK(cg_open_procs(&g, fds) == 0);
	CHECK(fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0 && fds[3] >= 0);
	for (int i = 0; i < CG_PROCS_FDS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void test_cpu_quota(void)
{
	/* CFS bandwidth: cores times the 100 ms period, in microseconds per period */
	CHECK(CG_CPU_PERIOD_US == 100000);
	CHECK(cg_cpu_quota_us(1000) == 100000); /* one core */
	CHECK(cg_cpu_quota_us(500) == 50000);
	CHECK(cg_cpu_quota_us(100) == 10000);	/* the least CPU_LIMIT allows */
	CHECK(cg_cpu_quota_us(2250) == 225000);
	CHECK(cg_cpu_quota_us(64000) == 6400000); /* the most */
	/* the kernel takes no quota under 1 ms */
	CHECK(cg_cpu_quota_us(SANDBOX_CPU_MILLI_MIN) >= 1000);
}

static void test_cpu_limit_parse(void)
{
	const struct {
		const char *s;
		int milli;
	} ok[] = {{"1", 1000}, {"0.5", 500}, {"0.1", 100}, {"2.25", 2250}, {"64", 64000},
		  {"64.000", 64000}, {"1.5", 1500}, {"0.125", 125}, {"03", 3000}};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		int m = -1;
		char err[200] = "";
		CHECK(sandbox_cpu_limit_parse(ok[i].s, &m, err, sizeof err) == 0);
		if (m != ok[i].milli)
			fprintf(stderr, "  CPU_LIMIT=%s read as %d\n", ok[i].s, m);
		CHECK(m == ok[i].milli);
	}
	/* refused (the worker does not start) and the value left as it was */
	const char *bad[] = {"0",    "0.05", "0.09",  "64.001", "65",  "1000000000000000000000",
			     "-1",   "1.",   ".5",    "1.2345", "1e3", "inf",
			     "nan",  " 1",   "1 ",    "1,5",    "0x1", "1..5",
			     "abc",  "",     "0.0001"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int m = 777;
		char err[200] = "";
		CHECK(sandbox_cpu_limit_parse(bad[i], &m, err, sizeof err) == -1);
		CHECK(m == 777);
		if (!strstr(err, "CPU_LIMIT"))
			fprintf(stderr, "  CPU_LIMIT=\"%s\": message \"%s\"\n", bad[i], err);
		CHECK(strstr(err, "CPU_LIMIT") != NULL);
	}
	/* the default is one core */
	struct sandbox_limits l;
	sandbox_limits_default(&l);
	CHECK(l.cpu_milli == 1000);
}

static int mkdir_in(const char *sub)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, sub);
	return mkdir(path, 0755);
}

static void test_sweep_frozen_v1(void)
{
	/* cgroup v1: a worker killed between a kill round's FROZEN and THAWED left its step's
	 * groups behind with the freezer group frozen (its tasks take no SIGKILL until thawed).
	 * The next start's sweep thaws it; it used to kill into the frozen group for 5 s per
	 * hierarchy and leave it frozen for ever. 4194304 is pid_max's highest setting (pids stay
	 * below it): a dead worker of this pid namespace. */
	struct cg_parents par;
	memset(&par, 0, sizeof par);
	par.mode = SANDBOX_CG_V1;
	par.pidns = cg_pidns();
	snprintf(par.mem, sizeof par.mem, "%s/mem", dir);
	snprintf(par.frz, sizeof par.frz, "%s/frz", dir);
	char g[64], mem[96], frz[96], f[128];
	snprintf(g, sizeof g, "4194304.%llu-1", par.pidns);
	snprintf(mem, sizeof mem, "mem/%s", g);
	snprintf(frz, sizeof frz, "frz/%s", g);
	CHECK(mkdir_in("mem") == 0 && mkdir_in("frz") == 0);
	CHECK(mkdir_in(mem) == 0 && mkdir_in(frz) == 0);
	snprintf(f, sizeof f, "%s/cgroup.procs", mem);
	CHECK(put(f, "", 0) == 0);
	snprintf(f, sizeof f, "%s/cgroup.procs", frz);
	CHECK(put(f, "", 0) == 0);
	snprintf(f, sizeof f, "%s/freezer.state", frz);
	CHECK(put(f, "FROZEN", 6) == 0);
	cg_sweep(&par);
	char path[512], got[16];
	first_line(f, got, sizeof got);
	CHECK_STR(got, "THAWED");
	const char *files[] = {"cgroup.procs", "freezer.state"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/%s/%s", dir, mem, files[i]);
		unlink(path);
		snprintf(path, sizeof path, "%s/%s/%s", dir, frz, files[i]);
		unlink(path);
	}
	const char *dirs[] = {mem, frz, "mem", "frz"};
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, dirs[i]);
		rmdir(path);
	}
}

static int dir_exists(const char *sub)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", dir, sub);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void rm_in(const char *sub)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, sub);
	rmdir(path);
}

static void test_sweep_other_pidns(void)
{
	/* A worker started in a pid namespace of its own sees none of the other workers' pids:
	 * their groups must not look like a dead worker's to its sweep. This process stands
	 * for a live worker: a group named as cg_create names its groups, and one of a dead
	 * worker of this namespace (4194304: pid_max's highest setting, never a pid). The
	 * sweep runs in a child in a new pid namespace (needs root): both stay, it cannot
	 * tell. Then this namespace's sweep removes the dead worker's group only. v1 memory
	 * groups alone, as in test_sweep_frozen_v1: an empty directory whose group is swept is
	 * removed. */
	struct cg_parents par;
	memset(&par, 0, sizeof par);
	par.mode = SANDBOX_CG_V1;
	par.pidns = cg_pidns();
	CHECK(par.pidns != 0);
	snprintf(par.mem, sizeof par.mem, "%s/mem", dir);
	char live[80], dead[80];
	CHECK(cg_group_name(&par, live, sizeof live) == 0);
	snprintf(dead, sizeof dead, "4194304.%llu-000000000000", par.pidns);
	char live_sub[120], dead_sub[120];
	snprintf(live_sub, sizeof live_sub, "mem/%s", live);
	snprintf(dead_sub, sizeof dead_sub, "mem/%s", dead);
	CHECK(mkdir_in("mem") == 0);
	CHECK(mkdir_in(live_sub) == 0);
	CHECK(mkdir_in(dead_sub) == 0);
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) {
		/* the grandchild is the first process of the new namespace */
		if (unshare(CLONE_NEWPID) < 0)
			_exit(77);
		pid_t inner = fork();
		if (inner < 0)
			_exit(2);
		if (inner == 0) {
			struct cg_parents in = par;
			in.pidns = cg_pidns();
			if (!in.pidns || in.pidns == par.pidns || getpid() != 1)
				_exit(3);
			cg_sweep(&in);
			_exit(0);
		}
		int st;
		if (waitpid(inner, &st, 0) < 0 || !WIFEXITED(st))
			_exit(4);
		_exit(WEXITSTATUS(st));
	}
	int st = -1;
	CHECK(waitpid(child, &st, 0) == child);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
		printf("  (skipped the sweep from another pid namespace: unshare(CLONE_NEWPID) needs root)\n");
	} else {
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		CHECK(dir_exists(live_sub));
		CHECK(dir_exists(dead_sub));
	}
	cg_sweep(&par);
	CHECK(dir_exists(live_sub));
	CHECK(!dir_exists(dead_sub));
	/* the older name, "<pid>-<hex>": judged by its pid, in the host's own pid namespace
	 * only */
	CHECK(mkdir_in("mem/4194304-000000000001") == 0);
	CHECK(mkdir_in("mem/1-000000000001") == 0);
	struct cg_parents other = par;
	other.pidns = par.pidns + 1;
	cg_sweep(&other);
	CHECK(dir_exists("mem/4194304-000000000001"));
	cg_sweep(&par);
	CHECK(dir_exists("mem/1-000000000001"));
	CHECK(dir_exists("mem/4194304-000000000001") == (par.pidns != CG_PIDNS_INIT));
	/* an unknown namespace (0) sweeps nothing */
	CHECK(mkdir_in(dead_sub) == 0);
	struct cg_parents unknown = par;
	unknown.pidns = 0;
	cg_sweep(&unknown);
	CHECK(dir_exists(dead_sub));
	rm_in(dead_sub);
	/* names the sweep must not read as a dead worker's pid in this namespace: left alone */
	char odd[6][120];
	snprintf(odd[0], sizeof odd[0], "mem/04194304.%llu-0", par.pidns);
	snprintf(odd[1], sizeof odd[1], "mem/4194304.%llux-0", par.pidns);
	snprintf(odd[2], sizeof odd[2], "mem/+4194304.%llu-0", par.pidns);
	snprintf(odd[3], sizeof odd[3], "mem/4194304.-%llu-0", par.pidns);
	snprintf(odd[4], sizeof odd[4], "mem/99999999999999999999.%llu-0", par.pidns);
	snprintf(odd[5], sizeof odd[5], "mem/4194304.%llu0-0", par.pidns);
	for (size_t i = 0; i < 6; i++)
		CHECK(mkdir_in(odd[i]) == 0);
	cg_sweep(&par);
	for (size_t i = 0; i < 6; i++) {
		CHECK(dir_exists(odd[i]));
		rm_in(odd[i]);
	}
	rm_in(live_sub);
	rm_in("mem/1-000000000001");
	rm_in("mem/4194304-000000000001");
	char path[512];
	snprintf(path, sizeof path, "%s/mem", dir);
	CHECK(rmdir(path) == 0);
}

int main(void)
{
	CHECK(mkdtemp(dir) != NULL);
	test_long_list();
	test_incomplete_lines();
	test_group_kill();
	test_open_procs_partial();
	test_cpu_quota();
	test_cpu_limit_parse();
	test_sweep_frozen_v1();
	test_sweep_other_pidns();
	char path[512];
	const char *files[] = {"cgroup.procs", "cgroup.kill"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
	return unit_summary("sandbox_cgroup");
}

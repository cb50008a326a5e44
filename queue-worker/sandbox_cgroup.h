/* sandbox_cgroup: the cgroups of the sandbox (v1 or v2): choosing the layout and creating
 * the parent groups at start, one group per job step with its memory, pids and CPU limits,
 * killing everything in a group, reading its OOM kills, removing it, and sweeping the
 * groups a dead worker left behind. The host only ever writes cgroupfs files here. */
#ifndef CC_SANDBOX_CGROUP_H
#define CC_SANDBOX_CGROUP_H

#include "sandbox.h"

#include <stddef.h>

/* How long cg_kill() keeps killing a group that does not empty. */
#define CG_KILL_WAIT_MS 5000

/* The CFS bandwidth period of a step's cpu group: its quota is the cores allowed times
 * this, in microseconds, per period. */
#define CG_CPU_PERIOD_US 100000

/* The cgroup.procs files a child joins: the memory (or the v2) group, pids, freezer, cpu. */
#define CG_PROCS_FDS 4

/* cgroup v1: the bound of a memory group's socket buffers (TCP, and UDP and the rest once it
 * is set: the group's sockets are then charged), set to the memory limit. */
#define CG_V1_SOCKET_LIMIT "memory.kmem.tcp.limit_in_bytes"

/* The parents of the per-step groups: v1 memory, pids, freezer, cpu ("" when not
 * mounted); v2 uses v2 only, with v2_cpu set when its groups get the cpu controller.
 * Read-only after cg_setup(). */
struct cg_parents {
	enum sandbox_cgroup mode;
	int v2_cpu;
	/* the inode of the worker's pid namespace (cg_pidns), in its groups' names */
	unsigned long long pidns;
	char mem[320], pids[320], frz[320], cpu[320], v2[320];
};

/* One step's group(s); empty strings for what the mode does not use. */
struct cg {
	char mem[400], pids[400], frz[400], cpu[400], v2[400];
};

/* The CFS quota per CG_CPU_PERIOD_US of milli thousandths of a core, in microseconds. */
long long cg_cpu_quota_us(int milli);

/* Chooses the cgroup layout c asks for and creates the parent groups. On failure the
 * sandbox still works with rlimits and the pid namespace (mode SANDBOX_CG_NONE), and
 * says so once in the log. */
void cg_setup(struct cg_parents *p, const struct sandbox_config *c);

/* The inode of this process's pid namespace (/proc/self/ns/pid); 0 when it cannot be
 * read. */
unsigned long long cg_pidns(void);

/* The inode of the host's own (initial) pid namespace: fixed by the kernel
 * (PROC_PID_INIT_INO). */
#define CG_PIDNS_INIT 0xEFFFFFFCULL

/* A new step group's name into out (of n bytes): "<pid>.<pidns>-<12 hex digits>", the
 * worker's pid, the inode of its pid namespace (p->pidns) and a random part. -1 when no
 * random bytes could be had or n is too small. */
int cg_group_name(const struct cg_parents *p, char *out, size_t n);

/* Groups left by a worker that died (SIGKILL gives it no chance to remove them): those
 * named after a pid that no longer runs in this worker's pid namespace are emptied and
 * removed. A group of another pid namespace is left alone: its worker's pid means nothing
 * here (a worker in a namespace of its own once took every other worker's groups for a dead
 * one's and killed the steps in them). A group named the older way, "<pid>-<hex>", is
 * judged by its pid only by a worker of the host's own pid namespace (CG_PIDNS_INIT).
 * Nothing is swept when p->pidns is 0. */
void cg_sweep(const struct cg_parents *p);

/* A new group for one step with lim's memory, pids and (where the cpu controller is
 * there) CPU limits; nothing (0, g all empty)
 * without cgroups. -1 and a message in err; g then holds what to cg_destroy(). */
int cg_create(const struct cg_parents *p, struct cg *g, const struct sandbox_limits *lim,
	      char *err, size_t errlen);

/* Descriptors of the cgroup.procs files the child writes itself into ("0" = the writer).
 * Opened before fork, so the child only does write(2). -1 where unused; on failure (-1,
 * errno set) all of them are -1, whatever was opened before the failure closed. */
int cg_open_procs(const struct cg *g, int fds[CG_PROCS_FDS]);

/* Kills every process of the group until it is empty (at most CG_KILL_WAIT_MS):
 * cgroup.kill where the kernel has it, else SIGKILL to each listed pid in a frozen group. */
int cg_kill(const struct cg *g);

/* Calls fn(pid, arg) (fn may be NULL) for every pid of dir/cgroup.procs, read to its end in
 * fixed chunks; a line that is not a whole number ended by its newline is counted but
 * never handed to fn. The number of lines listed (0: the group is empty), or -1 when the
 * file cannot be read or fn returned -1. */
int cg_procs_each(const char *dir, int (*fn)(long pid, void *arg), void *arg);

/* Processes of the group the kernel's OOM killer killed. */
long long cg_oom_kills(const struct cg *g);

/* Removes the group's directories (waiting a little for them to empty). */
void cg_destroy(const struct cg *g);

#endif

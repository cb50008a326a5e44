/* sandbox_child: the child between fork() and exec() of bwrap: it joins the step's
 * cgroups, puts its descriptors where sandbox_bwrap.h says, closes every other one, sets
 * the rlimits, drops to the sandbox's host uid and gid, and executes bwrap with an empty
 * environment. Only async-signal-safe calls happen there (the worker has threads). */
#ifndef CC_SANDBOX_CHILD_H
#define CC_SANDBOX_CHILD_H

#include "sandbox_cgroup.h"

struct child_plan {
	const char *const *argv; /* bwrap's */
	int procs_fds[CG_PROCS_FDS]; /* cgroup.procs files to join (cg_open_procs); -1 unused */
	/* the last four may be -1 */
	int in_fd, out_fd, err_fd, art_fd, file_fd, seccomp_fd, hosts_fd;
	unsigned uid, gid;					/* host ids bwrap runs as */
	int cpu_s;
	long long file_size, as_bytes; /* as_bytes 0: no RLIMIT_AS */
	int nproc;		       /* 0: no RLIMIT_NPROC */
	int open_files;
};

/* Never returns: bwrap runs, or the child exits 126 with a line on its stderr. */
void sandbox_child_exec(const struct child_plan *p) __attribute__((noreturn));

#endif

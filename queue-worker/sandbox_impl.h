/* sandbox_impl: what the sandbox's own modules share and the rest of the worker does not
 * see: the contents of struct sandbox (read-only after sandbox_open) and one step.
 *   sandbox.c         opening the sandbox, a job's compile and run steps
 *   sandbox_step.c    one step: bwrap forked, watched, killed, reaped, classified
 *   sandbox_config.c  limits and settings; sandbox_cgroup.c cgroups; sandbox_bwrap.c the
 *   argument list; sandbox_child.c between fork and exec; sandbox_seccomp.c the filter;
 *   sandbox_uid.c the host uid each step holds; sandbox_exit.c the pure decisions;
 *   sandbox_out.c the result JSON. */
#ifndef CC_SANDBOX_IMPL_H
#define CC_SANDBOX_IMPL_H

#include "buf.h"
#include "sandbox.h"
#include "sandbox_bwrap.h"
#include "sandbox_cgroup.h"
#include "sandbox_seccomp.h"

#include <signal.h>
#include <stddef.h>

struct sandbox {
	char bwrap[256];
	unsigned uid_base, uid_count; /* the steps' host uids (sandbox_uid.h) */
	int uid_dir_fd;		      /* their lock files' directory (sandbox_uid_dir_open) */
	unsigned gid;
	struct cg_parents cg;
	/* how /bin, /lib, … look on this host: symlinks into /usr or real directories */
	struct bwrap_root roots[BWRAP_ROOTS_MAX];
	size_t nroots;
	/* the seccomp filter handed to bwrap --seccomp; n == 0 on unknown architectures */
	struct sock_filter filter[SECCOMP_FILTER_MAX];
	size_t nfilter;
};

/* One step: what runs in the sandbox and with which bounds. */
struct step_spec {
	const char *const *cmd;	    /* argv inside the sandbox */
	const char *const *extra;   /* appended to cmd (the request's args); may be NULL */
	size_t nextra;
	const struct runtime *rt;   /* its env and binds; NULL for none */
	int file_fd;		    /* copied to file_dest with file_perms; -1 for none */
	const char *file_dest;
	const char *file_perms;
	int stdin_fd;		    /* -1: empty stdin */
	struct buf *artifact;	    /* non-NULL: collect what the step writes to fd 3 */
	int wall_ms;
	int cpu_s;
};

/* Runs one step to its end under lim. 0 and st filled (whatever the program did; st's
 * buffers need buf_free), or -1 and a message in err when the sandbox itself failed. */
int sandbox_step_run(const struct sandbox *sb, const struct step_spec *sp,
		     const struct sandbox_limits *lim, const volatile sig_atomic_t *cancel,
		     struct sandbox_step *st, char *err, size_t errlen);

/* A sealed memfd holding data: the sandbox can read it but nobody can change it. -1 on
 * failure (errno set). */
int sandbox_sealed_memfd(const char *name, const char *data, size_t len);

#endif

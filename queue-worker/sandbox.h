/* sandbox: runs untrusted code under bubblewrap, with a cgroup per job.
 *
 * A job is one or two steps (compile, then run), each its own bwrap invocation:
 *   - no network (new net namespace: loopback only, and it is not the host's), new pid,
 *     ipc, uts and user namespaces; bwrap is started as an unprivileged host uid of the
 *     step's own, held for its life (sandbox_uid.h: no two steps of the host share one, so
 *     no step takes what the kernel counts per user from another), and gid 65534; inside,
 *     programs are uid and gid 65534; sandbox "root" is nobody outside and no host uid 0
 *     runs untrusted code; nested user namespaces are disabled;
 *   - read-only /usr and the /bin, /lib* links, /etc reduced to ld.so.cache and
 *     alternatives plus a hosts file of our own (localhost, the hostname), fresh /proc
 *     and /dev, and a size-capped tmpfs at /tmp whose
 *     /tmp/work is the cwd and HOME, and another at /dev/shm (sandbox_shm_size); / itself
 *     is read-only; no environment of ours;
 *   - code goes in through sealed memfds (bwrap --file), stdin is a sealed memfd, stdout
 *     and stderr come back through pipes, and a compiled program comes back out of the
 *     compile step through a pipe. The host never opens, writes or chowns a path inside
 *     the sandbox, so a symlink planted there points at nothing we touch.
 * Limits: a memory + pids (+ cpu where offered) cgroup per step (v1 or v2, detected at
 * open; v1 also uses the freezer when mounted, and bounds socket buffers by the memory
 * limit too), killed as a whole at the wall limit and removed afterwards; with or without
 * cgroups a step's uid is given back only once no process runs as it any more (the rest of
 * a pid namespace dies after bwrap, and a sandbox can be made to outlive it: sandbox_uid.h);
 * rlimits (CPU, file size, open files, no core; address space only without cgroups) are
 * set before exec. Output beyond the per-stream bound kills the step and is flagged.
 * The implementation is queue-worker/sandbox*.c; sandbox_impl.h says which file does what. */
#ifndef CC_SANDBOX_H
#define CC_SANDBOX_H

#include "buf.h"
#include "runtimes.h"

#include <signal.h>
#include <stddef.h>

struct sandbox_limits {
	int run_ms;	      /* wall time of the run step (5000) */
	int compile_ms;	      /* wall time of the compile step (10000) */
	int cpu_s;	      /* RLIMIT_CPU of every process of the run step (5); compile
				 steps get compile_ms rounded up */
	long long memory;     /* bytes, per step, cgroup (256 MiB) */
	int processes;	      /* tasks (processes and threads) per step, cgroup (64) */
	int cpu_milli;	      /* CPU bandwidth per step in thousandths of a core, cgroup
				 (1000: one core); no bound without cgroups */
	long long file_size;  /* RLIMIT_FSIZE (16 MiB) */
	int open_files;	      /* RLIMIT_NOFILE (256) */
	size_t output;	      /* bytes kept per stream (64 KiB); more kills the step */
	long long tmpfs;      /* size of the /tmp tmpfs holding the work dir (64 MiB) */
};

void sandbox_limits_default(struct sandbox_limits *l);

/* Bounds of CPU_LIMIT, in thousandths of a core. */
#define SANDBOX_CPU_MILLI_MIN 100
#define SANDBOX_CPU_MILLI_MAX 64000

/* CPU_LIMIT's value s ("1", "0.5", "2.25": cores, at most three decimals) in thousandths
 * of a core into *milli; -1 and a message naming the variable in err when it is no such
 * number or outside 0.1..64. */
int sandbox_cpu_limit_parse(const char *s, int *milli, char *err, size_t errlen);

/* The size of the /dev/shm tmpfs: a quarter of l->tmpfs, at least 1 MiB. Writes beyond
 * fail with ENOSPC whether or not a memory cgroup exists. */
long long sandbox_shm_size(const struct sandbox_limits *l);

enum sandbox_cgroup { SANDBOX_CG_NONE, SANDBOX_CG_V1, SANDBOX_CG_V2 };

struct sandbox_config {
	const char *bwrap;	  /* "/usr/bin/bwrap" */
	unsigned uid_base;	  /* host uids of the steps, one of its own per running step: */
	unsigned uid_count;	  /* uid_base .. uid_base + uid_count - 1 (sandbox_uid.h) */
	const char *uid_lock_dir; /* their lock files ("/run/codecollab-sandbox-uids") */
	unsigned gid;		  /* host gid every step runs as (65534) */
	const char *cgroup;	  /* "auto", "v1", "v2" or "none" */
	const char *cgroup_root;  /* "/sys/fs/cgroup" */
	const char *cgroup_group; /* parent group of the per-step groups ("codecollab") */
};

/* Defaults, then SANDBOX_BWRAP, SANDBOX_UID_BASE, SANDBOX_UID_COUNT, SANDBOX_UID_LOCK_DIR,
 * SANDBOX_GID, SANDBOX_CGROUP from the environment (strings borrowed from the
 * environment). SANDBOX_UID, the one host uid of earlier versions, is refused with a
 * message saying what replaced it. */
int sandbox_config_from_env(struct sandbox_config *c, char *err, size_t errlen);

/* Read-only after sandbox_open(); shared by every job thread. */
struct sandbox;

/* Opens (making it when missing) and checks the uids' lock directory, detects the cgroup
 * layout, prepares the parent groups, and runs a trivial program in the sandbox to prove
 * it works. Caller frees with sandbox_close(). NULL and a message in err
 * when bwrap is missing or does not work (a worker must not run code unsandboxed). */
struct sandbox *sandbox_open(const struct sandbox_config *c, char *err, size_t errlen);
void sandbox_close(struct sandbox *sb);
enum sandbox_cgroup sandbox_cgroup_mode(const struct sandbox *sb);

enum sandbox_status {
	SANDBOX_OK,		/* ran to its end (whatever the exit code) */
	SANDBOX_TIME_LIMIT,	/* wall or CPU limit */
	SANDBOX_MEMORY_LIMIT,	/* killed by the cgroup's OOM killer */
	SANDBOX_OUTPUT_LIMIT,	/* a stream went past limits.output */
	SANDBOX_FILE_SIZE_LIMIT, /* SIGXFSZ */
	SANDBOX_CANCELLED,	/* *cancel became non-zero (worker shutting down) */
	SANDBOX_COMPILE_ERROR,	/* only in sandbox_result.status: compile step failed */
};

/* "time limit exceeded", …; NULL for SANDBOX_OK. Static strings. */
const char *sandbox_status_message(enum sandbox_status s);
/* "time_limit_exceeded", …; NULL for SANDBOX_OK. Static strings. */
const char *sandbox_status_code(enum sandbox_status s);

struct sandbox_step {
	struct buf out, err;   /* owned, at most limits.output bytes each */
	int exit_code;	       /* valid when signal == 0 */
	int signal;	       /* the signal that ended the program, or 0 */
	long long time_ms;     /* wall time, from fork of bwrap to its exit */
	int truncated;	       /* some output was dropped */
	enum sandbox_status status;
};

struct sandbox_result {
	int compiled; /* a compile step ran; compile is valid */
	struct sandbox_step compile;
	int ran; /* the run step ran; run is valid */
	struct sandbox_step run;
	enum sandbox_status status; /* of the job as a whole */
};

struct sandbox_request {
	const char *code;
	size_t code_len;
	const char *stdin_data; /* may be NULL */
	size_t stdin_len;
	const char *const *args; /* appended to the runtime's run argv */
	size_t nargs;
};

#define SANDBOX_ARGS_MAX 64
#define SANDBOX_CODE_MAX (1024 * 1024)
#define SANDBOX_STDIN_MAX (1024 * 1024)

/* Runs the request's code with runtime rt: compile step (if the runtime has one), then the
 * run step unless compiling failed. cancel may be NULL; when it becomes non-zero the
 * running step is killed and the result says SANDBOX_CANCELLED. Returns 0 when the steps
 * ran, whatever the program did (see res), or -1 and a message in err when the sandbox
 * itself failed. res is filled either way; free it with sandbox_result_free(). */
int sandbox_run(const struct sandbox *sb, const struct runtime *rt,
		const struct sandbox_request *req, const struct sandbox_limits *lim,
		const volatile sig_atomic_t *cancel, struct sandbox_result *res, char *err,
		size_t errlen);

void sandbox_result_free(struct sandbox_result *res);

/* The execution result JSON (docs/API.md): {stdout, stderr, exit_code, signal, time_ms,
 * truncated, status, message, language, version, compile?:{…}}. Output is made valid UTF-8
 * (bad bytes and NULs become U+FFFD). The whole is at most JOB_RESULT_MAX bytes
 * (lib/jobstate.h), what the API can answer: outputs that would take it past that are cut
 * further, at a character boundary, and their step says truncated (an output that needs
 * less than an even share keeps all of it). Caller frees with free(); NULL when out of
 * memory. */
char *sandbox_result_json(const struct sandbox_result *res, const struct runtime *rt);

/* sandbox_result_json with max in place of JOB_RESULT_MAX (for the tests). */
char *sandbox_result_json_within(const struct sandbox_result *res, const struct runtime *rt,
				 size_t max);

/* "SIGKILL" for SIGKILL, …; "SIG<n>" style for unknown ones is not produced: NULL. */
const char *sandbox_signal_name(int sig);

#endif

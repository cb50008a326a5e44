/* sandbox_exit: the pure decisions about a running step and its end, on plain values:
 * when to kill it (cancelled, past its wall deadline), how long to wait for its output
 * meanwhile, and how it ended (exit code or signal, and which limit, if any, it hit);
 * what the statuses and signals are called in results. */
#ifndef CC_SANDBOX_EXIT_H
#define CC_SANDBOX_EXIT_H

#include "sandbox.h"

/* Why the worker killed a step. */
enum sandbox_kill {
	SANDBOX_KILL_NONE,
	SANDBOX_KILL_TIME,     /* past its wall deadline */
	SANDBOX_KILL_OUTPUT,   /* stdout or stderr went past limits.output */
	SANDBOX_KILL_CANCEL,   /* the cancel flag was set */
	SANDBOX_KILL_ARTIFACT, /* the compiled program went past limits.file_size */
};

/* How a step ended, as results tell it. */
struct sandbox_end {
	enum sandbox_status status;
	int signal;    /* 0 when it exited */
	int exit_code; /* -1 when signal != 0 */
};

/* term_sig: the signal that ended bwrap (WTERMSIG), 0 when it exited with exit_status
 * (WEXITSTATUS); why: the worker's reason for killing it; oom_kills: OOM kills in its
 * cgroup. A kill of ours decides the status (and the signal is SIGKILL); otherwise an OOM
 * kill is the memory limit, SIGXCPU the CPU limit, SIGXFSZ the file size limit. bwrap
 * reports a program killed by signal n as exit status 128 + n, so such a status is that
 * signal. */
struct sandbox_end sandbox_exit_classify(int term_sig, int exit_status, enum sandbox_kill why,
					 long long oom_kills);

/* Whether to kill a step not yet killed, at now (ms): SANDBOX_KILL_CANCEL when cancelled,
 * SANDBOX_KILL_TIME when its program still runs at or after deadline, else NONE. */
enum sandbox_kill sandbox_kill_due(int cancelled, int exited, long long now, long long deadline);

/* How long one poll for output may wait: up to the deadline while the program runs
 * unkilled, else 50 ms; at most 100 (the cancel flag is looked at between polls), at most
 * 10 while it runs and no pidfd tells its exit; never negative. */
int sandbox_poll_ms(enum sandbox_kill why, int exited, long long now, long long deadline,
		    int have_pidfd);

/* After a compile step: SANDBOX_OK when the run step follows, else the job's status
 * (SANDBOX_CANCELLED, or SANDBOX_COMPILE_ERROR for a failure, a signal or a limit). */
enum sandbox_status sandbox_compile_verdict(const struct sandbox_step *compile);

#endif

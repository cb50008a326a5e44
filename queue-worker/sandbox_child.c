/* sandbox_child: see sandbox_child.h. */
#include "sandbox_child.h"

#include "sandbox_bwrap.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static void child_fail(const char *what) __attribute__((noreturn));

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

void sandbox_child_exec(const struct child_plan *p)
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
	for (int i = 0; i < CG_PROCS_FDS; i++)
		if (p->procs_fds[i] >= 0 && write(p->procs_fds[i], "0", 1) != 1)
			child_fail("joining the cgroup");
	/* move every source above the targets first, so dup2 never clobbers one */
	int src[7] = {p->in_fd,	  p->out_fd,	 p->err_fd,  p->art_fd,
		      p->file_fd, p->seccomp_fd, p->hosts_fd};
	for (int i = 0; i < 7; i++)
		if (src[i] >= 0 && (src[i] = fcntl(src[i], F_DUPFD, 16)) < 0)
			child_fail("fcntl");
	for (int i = 0; i < 7; i++)
		if (src[i] >= 0 && dup2(src[i], i) < 0)
			child_fail("dup2");
	/* hiredis sockets and other threads' descriptors are not CLOEXEC: close them all */
	if (syscall(SYS_close_range, BWRAP_FD_FIRST_FREE, ~0U, 0) < 0)
		for (int fd = BWRAP_FD_FIRST_FREE; fd < 65536; fd++)
			close(fd);
	if (p->art_fd < 0)
		close(BWRAP_FD_ARTIFACT);
	if (p->file_fd < 0)
		close(BWRAP_FD_FILE);
	if (p->seccomp_fd < 0)
		close(BWRAP_FD_SECCOMP);
	if (p->hosts_fd < 0)
		close(BWRAP_FD_HOSTS);
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

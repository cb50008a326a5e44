/* sandbox_bwrap: see sandbox_bwrap.h. */
#include "sandbox_bwrap.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void arg(struct bwrap_argv *a, const char *s)
{
	if (a->n >= BWRAP_ARGV_MAX) {
		a->overflow = 1;
		return;
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void argf(struct bwrap_argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void argf(struct bwrap_argv *a, const char *fmt, ...)
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

static void args3(struct bwrap_argv *a, const char *x, const char *y, const char *z)
{
	arg(a, x);
	arg(a, y);
	arg(a, z);
}

/* The namespaces and who runs inside. */
static void namespaces(const struct bwrap_spec *s, struct bwrap_argv *a)
{
	/* bwrap runs unprivileged (see sandbox_child.c), so --unshare-user is a real mapping
	 * of one uid: the sandbox's 65534 is the step's own host uid (sandbox_uid.h), not
	 * host root */
	arg(a, "--unshare-user");
	arg(a, "--disable-userns");
	arg(a, "--unshare-pid");
	arg(a, "--unshare-net");
	arg(a, "--unshare-ipc");
	arg(a, "--unshare-uts");
	arg(a, "--unshare-cgroup-try");
	arg(a, "--uid");
	argf(a, "%u", s->uid);
	arg(a, "--gid");
	argf(a, "%u", s->gid);
	arg(a, "--hostname");
	arg(a, BWRAP_HOSTNAME);
	arg(a, "--die-with-parent");
	arg(a, "--new-session");
	if (s->seccomp) {
		arg(a, "--seccomp");
		argf(a, "%d", BWRAP_FD_SECCOMP);
	}
}

/* The file systems: the host's read-only, ours sized. */
static void mounts(const struct bwrap_spec *s, struct bwrap_argv *a)
{
	args3(a, "--ro-bind", "/usr", "/usr");
	for (size_t i = 0; i < s->nroots; i++) {
		/* a symlink (merged /usr) is recreated; a real directory is bound read-only */
		if (s->roots[i].target[0])
			args3(a, "--symlink", s->roots[i].target, s->roots[i].path);
		else
			args3(a, "--ro-bind", s->roots[i].path, s->roots[i].path);
	}
	/* /etc: only what dynamic linking and the Debian alternatives symlinks need */
	args3(a, "--ro-bind-try", "/etc/alternatives", "/etc/alternatives");
	args3(a, "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache");
	/* and our own hosts file, not the host's: localhost and the sandbox's hostname
	 * (copied into the root tmpfs, made read-only with it by --remount-ro / below) */
	if (s->hosts) {
		arg(a, "--perms");
		arg(a, "0444");
		arg(a, "--file");
		argf(a, "%d", BWRAP_FD_HOSTS);
		arg(a, "/etc/hosts");
	}
	arg(a, "--proc");
	arg(a, "/proc");
	/* pid 1 of the step's namespace is bwrap's init, of the step's uid and dumpable: a
	 * program could write into it through its mem file (ptrace and process_vm_writev are
	 * refused, that file is not) and make it clear its parent-death signal, so that killing
	 * bwrap no longer ended the namespace. Its two mem files are covered by /dev/null, whose
	 * mount is nodev: opening either fails with EACCES (the mounts cannot be undone: the
	 * filter refuses mount and umount2, and the newer mount calls need capabilities the
	 * step's processes do not have) */
	args3(a, "--ro-bind", "/dev/null", "/proc/1/mem");
	args3(a, "--ro-bind", "/dev/null", "/proc/1/task/1/mem");
	arg(a, "--dev");
	arg(a, "/dev");
	/* --dev mounts /dev as an unsized tmpfs the job may write to, and --remount-ro / below
	 * does not reach it (a mount of its own): without a memory cgroup nothing stopped a job
	 * filling the host's memory with /dev/x. Read-only, its device nodes still work
	 * (writing /dev/null is writing to a device, not to the tmpfs). */
	arg(a, "--remount-ro");
	arg(a, "/dev");
	/* --dev also mounts a devpts instance at /dev/pts (/dev/ptmx leads there), and every
	 * devpts instance of the host draws on one count (kernel.pty.max): a step's 64
	 * processes of 256 descriptors could hold all of it while it ran. Output goes through
	 * pipes and a job has no use for a terminal: an empty read-only tmpfs covers it, so
	 * opening /dev/ptmx fails with ENOENT */
	arg(a, "--size");
	arg(a, "4096");
	arg(a, "--tmpfs");
	arg(a, "/dev/pts");
	arg(a, "--remount-ro");
	arg(a, "/dev/pts");
	/* /dev/shm: a sized tmpfs of its own, a quarter of the work directory's (at least
	 * 1 MiB): POSIX semaphores and shared memory (Python's multiprocessing) need little */
	arg(a, "--size");
	argf(a, "%lld", s->shm);
	arg(a, "--tmpfs");
	arg(a, "/dev/shm");
	arg(a, "--size");
	argf(a, "%lld", s->tmpfs);
	arg(a, "--tmpfs");
	arg(a, "/tmp");
	arg(a, "--dir");
	arg(a, BWRAP_WORK_DIR);
	/* the runtime's read-only extras (a JDK's /etc directory, type declarations) */
	for (size_t i = 0; i < s->nbinds; i++)
		args3(a, "--ro-bind", s->binds[2 * i], s->binds[2 * i + 1]);
	if (s->file_dest) {
		arg(a, "--perms");
		arg(a, s->file_perms);
		arg(a, "--file");
		argf(a, "%d", BWRAP_FD_FILE);
		argf(a, "%s/%s", BWRAP_WORK_DIR, s->file_dest);
	}
	arg(a, "--remount-ro");
	arg(a, "/");
}

/* Where and with what environment the command runs, then the command. */
static void command(const struct bwrap_spec *s, struct bwrap_argv *a)
{
	arg(a, "--chdir");
	arg(a, BWRAP_WORK_DIR);
	arg(a, "--clearenv");
	args3(a, "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin");
	args3(a, "--setenv", "HOME", BWRAP_WORK_DIR);
	args3(a, "--setenv", "TMPDIR", "/tmp");
	args3(a, "--setenv", "LANG", "C.UTF-8");
	for (size_t i = 0; i < s->nenv; i++)
		args3(a, "--setenv", s->env[2 * i], s->env[2 * i + 1]);
	arg(a, "--");
	for (size_t i = 0; s->cmd[i]; i++)
		arg(a, s->cmd[i]);
	for (size_t i = 0; i < s->nextra; i++)
		arg(a, s->extra[i]);
}

int bwrap_args_build(const struct bwrap_spec *s, struct bwrap_argv *a)
{
	memset(a, 0, sizeof *a);
	arg(a, s->bwrap);
	namespaces(s, a);
	mounts(s, a);
	command(s, a);
	return a->overflow ? -1 : 0;
}

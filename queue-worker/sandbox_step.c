/* sandbox_step: one step (compile or run) of a job: its descriptors and cgroup prepared,
 * bwrap forked (sandbox_child.c), its output collected within the bounds while the wall
 * deadline, the cancel flag and the output limits are watched, then everything it
 * started killed and reaped, and its end classified (sandbox_exit.c decides). */
#include "sandbox_impl.h"

#include "clock.h"
#include "errbuf.h"
#include "log.h"
#include "sandbox_child.h"
#include "sandbox_exit.h"
#include "sandbox_uid.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* After the program exits, how long its pipes may stay open (a descendant holding them)
 * before the group is killed. */
#define EXIT_DRAIN_MS 300

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* The step's descriptors, process and cgroup; -1 (or empty) where there is none. */
struct step_io {
	int rd[3], wr[3]; /* stdout, stderr, artifact pipes; rd[i] -1 once read to its end */
	int procs[CG_PROCS_FDS]; /* cgroup.procs for the child */
	int pidfd, null_fd, seccomp_fd, hosts_fd;
	pid_t pid;
	struct cg g;
	struct uid_lease lease; /* the host uid the step runs as, held until it is over */
};

/* What the watch has seen so far. */
struct step_watch {
	long long start, deadline, exited_at, killed_at;
	int exited, wstatus;
	enum sandbox_kill why;
};

static void io_init(struct step_io *io)
{
	memset(io, 0, sizeof *io);
	for (int i = 0; i < 3; i++)
		io->rd[i] = io->wr[i] = -1;
	for (int i = 0; i < CG_PROCS_FDS; i++)
		io->procs[i] = -1;
	io->pidfd = io->null_fd = io->seccomp_fd = io->hosts_fd = -1;
	io->pid = -1;
	io->lease.fd = -1;
}

/* bwrap's pid is reaped only in finish() or release(), after the last kill_all(): until
 * then it is our child (a zombie at worst), so the pid cannot have been given to another
 * process, and the root worker never signals a stranger. */
static void kill_all(const struct step_io *io)
{
	if (io->pid > 0)
		kill(io->pid, SIGKILL); /* bwrap; --die-with-parent and the pid namespace take the rest */
	cg_kill(&io->g);
}

static void kill_step(const struct step_io *io, struct step_watch *w, long long now)
{
	w->killed_at = now;
	kill_all(io);
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

static int build_args(const struct sandbox *sb, const struct step_spec *sp,
		      const struct sandbox_limits *lim, struct bwrap_argv *a)
{
	struct bwrap_spec s = {
		.bwrap = sb->bwrap,
		/* what programs see; outside it is the step's own uid and sb->gid */
		.uid = SANDBOX_INNER_ID,
		.gid = SANDBOX_INNER_ID,
		.seccomp = sb->nfilter > 0,
		.hosts = 1,
		.roots = sb->roots,
		.nroots = sb->nroots,
		.tmpfs = lim->tmpfs,
		.shm = sandbox_shm_size(lim),
		.file_dest = sp->file_fd >= 0 ? sp->file_dest : NULL,
		.file_perms = sp->file_perms,
		.env = sp->rt ? (const char *const *)sp->rt->env : NULL,
		.nenv = sp->rt ? sp->rt->nenv : 0,
		.binds = sp->rt ? (const char *const *)sp->rt->binds : NULL,
		.nbinds = sp->rt ? sp->rt->nbinds : 0,
		.cmd = sp->cmd,
		.extra = sp->extra,
		.nextra = sp->nextra,
	};
	return bwrap_args_build(&s, a);
}

/* A host uid of the step's own (sandbox_uid.h), waiting up to SANDBOX_UID_WAIT_MS while
 * every uid of the range is held by steps running on the host: 0 when held, 1 when *cancel
 * was set meanwhile, -1 and a message in err when none came free or a lock file could not
 * be opened. */
static int hold_uid(const struct sandbox *sb, struct step_io *io,
		    const volatile sig_atomic_t *cancel, char *err, size_t errlen)
{
	long long until = clock_mono_ms() + SANDBOX_UID_WAIT_MS;
	for (;;) {
		if (uid_lease_take(sb->uid_dir_fd, sb->uid_base, sb->uid_count, &io->lease) == 0)
			return 0;
		if (errno != EWOULDBLOCK) {
			errbuf_set(err, errlen, "holding a sandbox uid: %s", strerror(errno));
			return -1;
		}
		if (cancel && *cancel)
			return 1;
		if (clock_mono_ms() >= until) {
			errbuf_set(err, errlen, "no host uid free for the sandbox: all %u of %u to %u "
						"(SANDBOX_UID_BASE, SANDBOX_UID_COUNT) are held by steps "
						"running on this host",
				   sb->uid_count, sb->uid_base, sb->uid_base + (sb->uid_count - 1));
			return -1;
		}
		clock_sleep_ms(SANDBOX_UID_RETRY_MS);
	}
}

/* Pipes, stdin, the seccomp filter, /etc/hosts and the cgroup, before fork. */
static int prepare(const struct sandbox *sb, const struct step_spec *sp,
		   const struct sandbox_limits *lim, struct step_io *io, char *err, size_t errlen)
{
	for (int i = 0; i < 3; i++) {
		int p[2];
		if (i == 2 && !sp->artifact)
			break;
		if (pipe2(p, O_CLOEXEC) < 0) {
			errbuf_set(err, errlen, "pipe: %s", strerror(errno));
			return -1;
		}
		io->rd[i] = p[0];
		io->wr[i] = p[1];
	}
	if (sp->stdin_fd < 0 && (io->null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		errbuf_set(err, errlen, "/dev/null: %s", strerror(errno));
		return -1;
	}
	if (sb->nfilter &&
	    (io->seccomp_fd = sandbox_sealed_memfd("seccomp", (const char *)sb->filter,
						   sb->nfilter * sizeof sb->filter[0])) < 0) {
		errbuf_set(err, errlen, "memfd: %s", strerror(errno));
		return -1;
	}
	/* one of the step's own: bwrap reads it to its end, and a descriptor shared by steps
	 * would share its offset */
	if ((io->hosts_fd = sandbox_sealed_memfd("hosts", BWRAP_HOSTS_TEXT,
						 sizeof BWRAP_HOSTS_TEXT - 1)) < 0) {
		errbuf_set(err, errlen, "memfd: %s", strerror(errno));
		return -1;
	}
	if (cg_create(&sb->cg, &io->g, lim, err, errlen) < 0)
		return -1;
	if (cg_open_procs(&io->g, io->procs) < 0) {
		errbuf_set(err, errlen, "cgroup.procs: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Forks the child that becomes bwrap; the parent keeps the read ends. */
static int spawn(const struct sandbox *sb, const struct step_spec *sp,
		 const struct sandbox_limits *lim, const struct bwrap_argv *a, struct step_io *io,
		 char *err, size_t errlen)
{
	int no_cg = sb->cg.mode == SANDBOX_CG_NONE;
	struct child_plan plan = {
		.argv = a->v,
		.procs_fds = {io->procs[0], io->procs[1], io->procs[2], io->procs[3]},
		.in_fd = sp->stdin_fd >= 0 ? sp->stdin_fd : io->null_fd,
		.out_fd = io->wr[0],
		.err_fd = io->wr[1],
		.art_fd = io->wr[2],
		.file_fd = sp->file_fd,
		.seccomp_fd = io->seccomp_fd,
		.hosts_fd = io->hosts_fd,
		.uid = io->lease.uid,
		.gid = sb->gid,
		.cpu_s = sp->cpu_s,
		.file_size = lim->file_size,
		/* without a memory cgroup the address space is the only memory bound left;
		 * generous, because runtimes such as node reserve far more than they use */
		.as_bytes = no_cg ? lim->memory * 16 : 0,
		.open_files = lim->open_files,
		/* without a pids cgroup: RLIMIT_NPROC counts every task of the step's host uid,
		 * which no other step has at the same time (sandbox_uid.h): this step's alone,
		 * bwrap's two processes included as the pids cgroup would count them */
		.nproc = no_cg ? lim->processes : 0,
	};
	io->pid = fork();
	if (io->pid < 0) {
		errbuf_set(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (io->pid == 0)
		sandbox_child_exec(&plan);
	for (int i = 0; i < 3; i++)
		if (io->wr[i] >= 0) {
			close(io->wr[i]);
			io->wr[i] = -1;
		}
	io->pidfd = (int)syscall(SYS_pidfd_open, io->pid, 0);
	return 0;
}

/* Reads what pipe i has; at its end the pipe is closed. Output past its bound is
 * dropped and kills the step. */
static void read_pipe(struct step_io *io, int i, struct buf *dest, size_t bound,
		      struct sandbox_step *st, struct step_watch *w)
{
	char chunk[65536] BUF_SCRATCH;
	ssize_t got = read(io->rd[i], chunk, sizeof chunk);
	if (got < 0 && errno == EINTR)
		return;
	if (got <= 0) {
		close(io->rd[i]);
		io->rd[i] = -1;
		return;
	}
	if (!take(dest, chunk, (size_t)got, bound))
		return;
	if (i < 2)
		st->truncated = 1;
	if (w->why == SANDBOX_KILL_NONE) {
		w->why = i < 2 ? SANDBOX_KILL_OUTPUT : SANDBOX_KILL_ARTIFACT;
		kill_step(io, w, clock_mono_ms());
	}
}

/* One wait for output or the program's exit, then the reads. -1 when poll failed. */
static int poll_once(struct step_io *io, const struct step_spec *sp,
		     const struct sandbox_limits *lim, struct sandbox_step *st,
		     struct step_watch *w, int wait_ms, char *err, size_t errlen)
{
	struct buf *dest[3] = {&st->out, &st->err, sp->artifact};
	size_t bound[3] = {lim->output, lim->output, (size_t)lim->file_size};
	struct pollfd pfd[4];
	int idx[4], n = 0;
	for (int i = 0; i < 3; i++)
		if (io->rd[i] >= 0) {
			pfd[n] = (struct pollfd){.fd = io->rd[i], .events = POLLIN};
			idx[n++] = i;
		}
	if (!w->exited && io->pidfd >= 0) {
		pfd[n] = (struct pollfd){.fd = io->pidfd, .events = POLLIN};
		idx[n++] = -1; /* only wakes us up: waitpid tells */
	}
	int pr = poll(pfd, (nfds_t)n, wait_ms);
	if (pr < 0 && errno != EINTR) {
		errbuf_set(err, errlen, "poll: %s", strerror(errno));
		return -1;
	}
	for (int k = 0; pr > 0 && k < n; k++)
		if (idx[k] >= 0 && (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
			read_pipe(io, idx[k], dest[idx[k]], bound[idx[k]], st, w);
	return 0;
}

/* Until the program has exited and its pipes are read to their end, or it does not die
 * after being killed. -1 when poll failed (the step is killed). */
static int watch(struct step_io *io, const struct step_spec *sp,
		 const struct sandbox_limits *lim, const volatile sig_atomic_t *cancel,
		 struct sandbox_step *st, struct step_watch *w, char *err, size_t errlen)
{
	for (;;) {
		/* WNOWAIT: seen to have exited but left unreaped (see kill_all) */
		siginfo_t si;
		memset(&si, 0, sizeof si);
		if (!w->exited &&
		    waitid(P_PID, (id_t)io->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == io->pid) {
			w->exited = 1;
			w->exited_at = clock_mono_ms();
		}
		if (w->exited && io->rd[0] < 0 && io->rd[1] < 0 && io->rd[2] < 0)
			return 0;
		long long now = clock_mono_ms();
		if (w->why == SANDBOX_KILL_NONE) {
			w->why = sandbox_kill_due(cancel && *cancel, w->exited, now, w->deadline);
			if (w->why != SANDBOX_KILL_NONE)
				kill_step(io, w, now);
		}
		/* the program is gone but something it started still holds a pipe */
		if (w->exited && now - w->exited_at > EXIT_DRAIN_MS && !w->killed_at)
			kill_step(io, w, now);
		if (w->killed_at && now - w->killed_at > CG_KILL_WAIT_MS) {
			log_warn("sandbox: step did not die %d ms after SIGKILL", CG_KILL_WAIT_MS);
			return 0;
		}
		int wait_ms = sandbox_poll_ms(w->why, w->exited, now, w->deadline, io->pidfd >= 0);
		if (poll_once(io, sp, lim, st, w, wait_ms, err, errlen) < 0) {
			kill_all(io);
			return -1;
		}
	}
}

/* Nothing of the step survives it; its end goes into st. */
static void finish(struct step_io *io, struct step_watch *w, struct sandbox_step *st)
{
	kill_all(io);
	/* reaped only now, after the last signal to it */
	while (waitpid(io->pid, &w->wstatus, 0) < 0 && errno == EINTR)
		;
	if (!w->exited)
		w->exited_at = clock_mono_ms();
	io->pid = -1;
	st->time_ms = w->exited_at - w->start;
	/* a signal that ended bwrap itself (the OOM killer may pick it) */
	int sig = WIFSIGNALED(w->wstatus) ? WTERMSIG(w->wstatus) : 0;
	struct sandbox_end e = sandbox_exit_classify(sig, sig ? 0 : WEXITSTATUS(w->wstatus), w->why,
						     cg_oom_kills(&io->g));
	st->status = e.status;
	st->signal = e.signal;
	st->exit_code = e.exit_code;
}

static void release(struct step_io *io)
{
	if (io->pid > 0) {
		kill_all(io);
		while (waitpid(io->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	int fds[] = {io->rd[0], io->rd[1], io->rd[2], io->wr[0], io->wr[1], io->wr[2],
		     io->pidfd, io->null_fd, io->seccomp_fd, io->hosts_fd, io->procs[0], io->procs[1],
		     io->procs[2], io->procs[3]};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	cg_destroy(&io->g);
	/* last, and once no process runs as the uid any more: bwrap is reaped and the group
	 * emptied, but without cgroups (or when the group would not empty) processes of the
	 * step may still be ending; uid_lease_give kills and waits for them */
	uid_lease_give(&io->lease);
}

int sandbox_step_run(const struct sandbox *sb, const struct step_spec *sp,
		     const struct sandbox_limits *lim, const volatile sig_atomic_t *cancel,
		     struct sandbox_step *st, char *err, size_t errlen)
{
	struct step_io io;
	struct step_watch w = {.why = SANDBOX_KILL_NONE};
	struct bwrap_argv a;
	int rc = -1;
	io_init(&io);
	memset(st, 0, sizeof *st);
	buf_init(&st->out, lim->output + 1);
	buf_init(&st->err, lim->output + 1);
	st->status = SANDBOX_OK;
	if (build_args(sb, sp, lim, &a) < 0) {
		errbuf_set(err, errlen, "too many arguments");
		goto out;
	}
	int held = hold_uid(sb, &io, cancel, err, errlen);
	if (held < 0)
		goto out;
	if (held > 0) { /* cancelled before it could start */
		st->status = SANDBOX_CANCELLED;
		rc = 0;
		goto out;
	}
	if (prepare(sb, sp, lim, &io, err, errlen) < 0)
		goto out;
	w.start = clock_mono_ms();
	w.deadline = w.start + sp->wall_ms;
	if (spawn(sb, sp, lim, &a, &io, err, errlen) < 0 ||
	    watch(&io, sp, lim, cancel, st, &w, err, errlen) < 0)
		goto out;
	finish(&io, &w, st);
	rc = 0;
out:
	release(&io);
	return rc;
}

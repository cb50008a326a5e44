/* sandbox: opening the sandbox (bwrap found, the host's roots looked at, cgroups set up,
 * the seccomp filter built, a trivial program run to prove it all works) and running a
 * job: its code handed in through sealed memfds, a compile step when the runtime has one
 * (its program coming back out through a pipe), then the run step. One step is
 * sandbox_step.c's; the other parts are listed in sandbox_impl.h. */
#include "sandbox_impl.h"

#include "errbuf.h"
#include "sandbox_exit.h"
#include "sandbox_uid.h"
#include "worker_metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int sandbox_sealed_memfd(const char *name, const char *data, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* How /bin, /sbin and the /lib directories look on this host. */
static void probe_roots(struct sandbox *sb)
{
	static const char *const roots[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
	for (size_t i = 0; i < sizeof roots / sizeof roots[0] && sb->nroots < BWRAP_ROOTS_MAX; i++) {
		struct stat st;
		if (lstat(roots[i], &st) < 0)
			continue;
		struct bwrap_root *r = &sb->roots[sb->nroots];
		snprintf(r->path, sizeof r->path, "%s", roots[i]);
		r->target[0] = '\0';
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlink(roots[i], r->target, sizeof r->target - 1);
			if (n <= 0)
				continue;
			r->target[n] = '\0';
		} else if (!S_ISDIR(st.st_mode)) {
			continue;
		}
		sb->nroots++;
	}
}

/* /etc/passwd and /etc/subuid may be this large at most. */
#define ID_FILE_MAX (64 << 20)

/* -1 and a message when /etc/passwd or /etc/subuid gives a uid of the steps' range to
 * someone: a host process of a step's uid could signal or trace the step's processes and
 * would share its per-user counts. A file that does not exist gives nobody anything. */
static int check_range_unused(const struct sandbox *sb, char *err, size_t errlen)
{
	static const struct {
		const char *path;
		char kind;
	} files[] = {{"/etc/passwd", 'p'}, {"/etc/subuid", 's'}};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		struct buf b;
		buf_init(&b, ID_FILE_MAX);
		if (buf_read_file(&b, files[i].path) < 0) {
			int e = errno;
			buf_free(&b);
			if (e == ENOENT)
				continue;
			errbuf_set(err, errlen, "%s: cannot be read whole: %s", files[i].path,
				   strerror(e));
			return -1;
		}
		char who[64];
		int used = b.data && sandbox_uid_range_used(b.data, files[i].kind, sb->uid_base,
							    sb->uid_count, who, sizeof who);
		buf_free(&b);
		if (used) {
			errbuf_set(err, errlen, "the sandbox's host uids %u to %u (SANDBOX_UID_BASE, "
						"SANDBOX_UID_COUNT) must be used by nobody else, and %s gives "
						"some to %s",
				   sb->uid_base, sb->uid_base + (sb->uid_count - 1), files[i].path, who);
			return -1;
		}
	}
	return 0;
}

static const char *const true_cmd[] = {"/bin/true", NULL};

/* Runs /bin/true in the sandbox: 0, or -1 and why. */
static int self_test(const struct sandbox *sb, char *why, size_t whylen)
{
	struct sandbox_limits lim;
	sandbox_limits_default(&lim);
	struct step_spec sp = {.cmd = true_cmd, .file_fd = -1, .stdin_fd = -1, .wall_ms = 10000, .cpu_s = 10};
	struct sandbox_step st;
	int rc = sandbox_step_run(sb, &sp, &lim, NULL, &st, why, whylen);
	if (rc == 0 && (st.signal || st.exit_code != 0))
		snprintf(why, whylen, "exit %d, signal %d: %.150s", st.exit_code, st.signal,
			 st.err.data ? st.err.data : "");
	int ok = rc == 0 && !st.signal && st.exit_code == 0;
	buf_free(&st.out);
	buf_free(&st.err);
	return ok ? 0 : -1;
}

struct sandbox *sandbox_open(const struct sandbox_config *c, char *err, size_t errlen)
{
	struct sandbox *sb = calloc(1, sizeof *sb);
	if (!sb) {
		errbuf_set(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(sb->bwrap, sizeof sb->bwrap, "%s", c->bwrap);
	sb->uid_base = c->uid_base;
	sb->uid_count = c->uid_count;
	sb->gid = c->gid;
	sb->uid_dir_fd = -1;
	if (access(sb->bwrap, X_OK) < 0) {
		errbuf_set(err, errlen, "bubblewrap not found at %s (install the bubblewrap package)",
			sb->bwrap);
		goto fail;
	}
	if (check_range_unused(sb, err, errlen) < 0)
		goto fail;
	if ((sb->uid_dir_fd = sandbox_uid_dir_open(c->uid_lock_dir, err, errlen)) < 0)
		goto fail;
	if (sandbox_uid_procs_check(err, errlen) < 0)
		goto fail;
	probe_roots(sb);
	cg_setup(&sb->cg, c);
	cg_sweep(&sb->cg);
	sb->nfilter = seccomp_filter_build(sb->filter);

	/* prove it works now rather than fail every job later */
	char why[256];
	if (self_test(sb, why, sizeof why) < 0) {
		errbuf_set(err, errlen, "sandbox self-test failed: %s", why);
		goto fail;
	}
	return sb;
fail:
	sandbox_close(sb);
	return NULL;
}

void sandbox_close(struct sandbox *sb)
{
	if (!sb)
		return;
	if (sb->uid_dir_fd >= 0)
		close(sb->uid_dir_fd);
	free(sb);
}

enum sandbox_cgroup sandbox_cgroup_mode(const struct sandbox *sb)
{
	return sb->cg.mode;
}

/* Bytes of the compile step's script (runtimes_compile_script). */
#define COMPILE_SCRIPT_MAX 4096

/* The compile step: the source from code_fd, the program into artifact. 0 with
 * res->compile filled, -1 when the sandbox failed. */
static int compile_step(const struct sandbox *sb, const struct runtime *rt, int code_fd,
			const struct sandbox_limits *lim, const volatile sig_atomic_t *cancel,
			struct buf *artifact, struct sandbox_result *res, char *err, size_t errlen)
{
	/* run the compiler's commands; on success hand the artifact back through fd 3 */
	char script[COMPILE_SCRIPT_MAX];
	if (runtimes_compile_script(rt, script, sizeof script) < 0) {
		errbuf_set(err, errlen, "the compile command of %s is too long", rt->language);
		return -1;
	}
	const char *cmd[] = {"/bin/sh", "-c", script, NULL};
	struct step_spec sp = {
		.cmd = cmd,
		.rt = rt,
		.file_fd = code_fd,
		.file_dest = rt->file,
		.file_perms = "0644",
		.stdin_fd = -1,
		.artifact = artifact,
		.wall_ms = lim->compile_ms,
		.cpu_s = (lim->compile_ms + 999) / 1000,
	};
	res->compiled = 1;
	if (sandbox_step_run(sb, &sp, lim, cancel, &res->compile, err, errlen) < 0)
		return -1;
	metric_observe(&worker_metrics[WM_SANDBOX_SECONDS], WM_COMPILE, 0, res->compile.time_ms);
	return 0;
}

/* The run step: the program (source or compiled) from file_fd as file_dest. */
static int run_step(const struct sandbox *sb, const struct runtime *rt,
		    const struct sandbox_request *req, const struct sandbox_limits *lim,
		    const volatile sig_atomic_t *cancel, int file_fd, const char *file_dest,
		    const char *file_perms, int in_fd, struct sandbox_result *res, char *err,
		    size_t errlen)
{
	struct step_spec sp = {
		.cmd = (const char *const *)rt->run,
		.rt = rt,
		.extra = req->args,
		.nextra = req->nargs,
		.file_fd = file_fd,
		.file_dest = file_dest,
		.file_perms = file_perms,
		.stdin_fd = in_fd,
		.wall_ms = lim->run_ms,
		.cpu_s = lim->cpu_s,
	};
	res->ran = 1;
	if (sandbox_step_run(sb, &sp, lim, cancel, &res->run, err, errlen) < 0)
		return -1;
	metric_observe(&worker_metrics[WM_SANDBOX_SECONDS], WM_RUN, 0, res->run.time_ms);
	res->status = res->run.status;
	return 0;
}

int sandbox_run(const struct sandbox *sb, const struct runtime *rt,
		const struct sandbox_request *req, const struct sandbox_limits *lim,
		const volatile sig_atomic_t *cancel, struct sandbox_result *res, char *err,
		size_t errlen)
{
	int code_fd = -1, in_fd = -1, bin_fd = -1, rc = -1;
	struct buf artifact;
	buf_init(&artifact, (size_t)lim->file_size + 1);
	memset(res, 0, sizeof *res);
	if (req->code_len > SANDBOX_CODE_MAX || req->stdin_len > SANDBOX_STDIN_MAX ||
	    req->nargs > SANDBOX_ARGS_MAX) {
		errbuf_set(err, errlen, "request too large");
		goto out;
	}
	code_fd = sandbox_sealed_memfd("code", req->code ? req->code : "", req->code_len);
	if (req->stdin_len)
		in_fd = sandbox_sealed_memfd("stdin", req->stdin_data, req->stdin_len);
	if (code_fd < 0 || (req->stdin_len && in_fd < 0)) {
		errbuf_set(err, errlen, "memfd: %s", strerror(errno));
		goto out;
	}
	if (!rt->compile[0]) {
		rc = run_step(sb, rt, req, lim, cancel, code_fd, rt->file, "0444", in_fd, res, err,
			      errlen);
		goto out;
	}
	if (compile_step(sb, rt, code_fd, lim, cancel, &artifact, res, err, errlen) < 0)
		goto out;
	enum sandbox_status verdict = sandbox_compile_verdict(&res->compile);
	if (verdict != SANDBOX_OK) {
		res->status = verdict;
		rc = 0;
		goto out;
	}
	bin_fd = sandbox_sealed_memfd("program", artifact.data ? artifact.data : "", artifact.len);
	if (bin_fd < 0) {
		errbuf_set(err, errlen, "memfd: %s", strerror(errno));
		goto out;
	}
	rc = run_step(sb, rt, req, lim, cancel, bin_fd, rt->artifact, "0555", in_fd, res, err,
		      errlen);
out:
	buf_free(&artifact);
	if (code_fd >= 0)
		close(code_fd);
	if (in_fd >= 0)
		close(in_fd);
	if (bin_fd >= 0)
		close(bin_fd);
	return rc;
}

void sandbox_result_free(struct sandbox_result *res)
{
	buf_free(&res->compile.out);
	buf_free(&res->compile.err);
	buf_free(&res->run.out);
	buf_free(&res->run.err);
}

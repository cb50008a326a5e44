/* The sandbox against the real thing: bubblewrap, cgroups, the installed runtimes.
 * Needs root (cgroups, dropping to the sandbox uid); says so and fails without it.
 * Limits are lowered so the hostile programs end quickly. */
#include "log.h"
#include "../../queue-worker/runtimes.h"
#include "../../queue-worker/sandbox.h"
#include "unit.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct sandbox *sb;
static struct runtimes rts;
static struct sandbox_limits lim;

static long long ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs code; res must be freed by the caller. Returns sandbox_run's status. */
static int run_args(const char *lang, const char *code, const char *in, const char *const *args,
		    size_t nargs, struct sandbox_result *res)
{
	const struct runtime *rt = runtimes_find(&rts, lang, NULL);
	if (!rt) {
		fprintf(stderr, "runtime %s is not installed\n", lang);
		memset(res, 0, sizeof *res);
		return -1;
	}
	struct sandbox_request req = {
		.code = code,
		.code_len = strlen(code),
		.stdin_data = in,
		.stdin_len = in ? strlen(in) : 0,
		.args = args,
		.nargs = nargs,
	};
	char err[256] = "";
	int rc = sandbox_run(sb, rt, &req, &lim, NULL, res, err, sizeof err);
	if (rc < 0)
		fprintf(stderr, "sandbox_run(%s): %s\n", lang, err);
	return rc;
}

static int run(const char *lang, const char *code, struct sandbox_result *res)
{
	return run_args(lang, code, NULL, NULL, 0, res);
}

static const char *out_of(const struct sandbox_result *r)
{
	return r->run.out.data ? r->run.out.data : "";
}

static const char *err_of(const struct sandbox_result *r)
{
	return r->run.err.data ? r->run.err.data : "";
}

/* After a hostile job, an ordinary one still works. */
static void check_still_works(const char *after)
{
	struct sandbox_result r;
	int rc = run("bash", "echo alive", &r);
	CHECK(rc == 0);
	if (rc != 0 || strcmp(out_of(&r), "alive\n") != 0)
		fprintf(stderr, "FAIL: the sandbox no longer works after %s: \"%s\" \"%s\"\n", after,
			out_of(&r), err_of(&r));
	CHECK_STR(out_of(&r), "alive\n");
	sandbox_result_free(&r);
}

static void test_hello(void)
{
	static const struct {
		const char *lang, *code;
	} hello[] = {
		{"c", "#include <stdio.h>\nint main(void){puts(\"hello\");return 0;}\n"},
		{"cpp", "#include <iostream>\nint main(){std::cout<<\"hello\"<<std::endl;}\n"},
		{"python", "print('hello')\n"},
		{"js", "console.log('hello')\n"},
		{"sh", "echo hello\n"},
	};
	for (size_t i = 0; i < sizeof hello / sizeof hello[0]; i++) {
		struct sandbox_result r;
		long long t0 = ms_now();
		CHECK(run(hello[i].lang, hello[i].code, &r) == 0);
		CHECK(r.ran);
		CHECK_STR(out_of(&r), "hello\n");
		CHECK(r.run.exit_code == 0 && r.run.signal == 0);
		CHECK(r.status == SANDBOX_OK);
		if (strcmp(out_of(&r), "hello\n"))
			fprintf(stderr, "  %s stderr: %s compile: %s\n", hello[i].lang, err_of(&r),
				r.compile.err.data ? r.compile.err.data : "");
		printf("  hello %-4s run %lld ms, whole job %lld ms\n", hello[i].lang, r.run.time_ms,
		       ms_now() - t0);
		sandbox_result_free(&r);
	}
}

int main(void)
{
	log_init("test_sandbox");
	if (geteuid() != 0) {
		fprintf(stderr, "test_sandbox: MUST RUN AS ROOT (cgroups, sandbox uid); failing\n");
		CHECK(geteuid() == 0);
		return unit_summary("sandbox");
	}
	char err[512];
	char path[4096];
	runtimes_default_path(path, sizeof path);
	if (runtimes_load(&rts, path, err, sizeof err) < 0) {
		fprintf(stderr, "runtimes: %s\n", err);
		CHECK(0);
		return unit_summary("sandbox");
	}
	struct sandbox_config cfg;
	CHECK(sandbox_config_from_env(&cfg, err, sizeof err) == 0);
	sb = sandbox_open(&cfg, err, sizeof err);
	if (!sb) {
		fprintf(stderr, "sandbox_open: %s\n", err);
		CHECK(sb != NULL);
		return unit_summary("sandbox");
	}
	if (sandbox_cgroup_mode(sb) == SANDBOX_CG_NONE) {
		fprintf(stderr, "test_sandbox: NO CGROUPS on this host: the memory, fork and "
				"kill tests cannot be trusted; failing\n");
		CHECK(sandbox_cgroup_mode(sb) != SANDBOX_CG_NONE);
	}
	sandbox_limits_default(&lim);
	lim.run_ms = 2000;
	lim.compile_ms = 4000;
	lim.cpu_s = 2;
	lim.memory = 128LL << 20;
	lim.processes = 32;
	lim.file_size = 4LL << 20;
	lim.tmpfs = 16LL << 20;
	lim.output = 16 * 1024;

	test_hello();
	check_still_works("hello");

	sandbox_close(sb);
	runtimes_free(&rts);
	return unit_summary("sandbox");
}

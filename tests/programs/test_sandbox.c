/* The sandbox against the real thing: bubblewrap, cgroups, the installed runtimes.
 * Needs root (cgroups, dropping to the sandbox uids); says so and fails without it.
 * Limits are lowered so the hostile programs end quickly. */
#include "log.h"
#include "../../queue-worker/runtimes.h"
#include "../../queue-worker/sandbox.h"
#include "../../queue-worker/sandbox_uid.h"
#include "../unit/unit.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct sandbox *sb;
static struct runtimes rts;
static struct sandbox_limits lim;
/* the worker's lock directory of the uids (SANDBOX_UID_LOCK_DIR), for holding some here */
static int uid_dir_fd = -1;

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


/* The host uids the sandbox's steps run as in this test: TEST_UIDS of its own per run, not
 * the worker's default range (2147418112 + 1024 + pid % 8000 * TEST_UIDS: in the block the
 * default starts, past it), so that workers of stacks running beside it and this test
 * running at the same time in another checkout are never counted as our survivors.
 * SANDBOX_UID_BASE and SANDBOX_UID_COUNT are read by sandbox_config_from_env(). */
#define TEST_UIDS 4
static unsigned test_uid;
static char test_uid_s[16];

/* Processes of the sandbox uids still alive on the host: there must be none between jobs. */
static int sandbox_procs_left(void)
{
	int n = 0;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "ps -u %u,%u,%u,%u -o stat= 2>/dev/null", test_uid, test_uid + 1,
		 test_uid + 2, test_uid + 3);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	char line[64];
	while (fgets(line, sizeof line, p))
		if (line[0] != 'Z') /* zombies of earlier, unrelated runs are not running */
			n++;
	pclose(p);
	return n;
}

static void check_contained(const char *what)
{
	int left = sandbox_procs_left();
	if (left != 0)
		fprintf(stderr, "FAIL: %d sandbox processes survive %s\n", left, what);
	CHECK(left == 0);
	check_still_works(what);
}

static void test_io(void)
{
	struct sandbox_result r;
	static const char *const args[] = {"one", "two words", "--flag"};
	CHECK(run_args("py", "import sys\nprint(sys.stdin.read().upper(), end='')\nprint(sys.argv[1:])\n",
		       "some input\nline two\n", args, 3, &r) == 0);
	CHECK_STR(out_of(&r), "SOME INPUT\nLINE TWO\n['one', 'two words', '--flag']\n");
	sandbox_result_free(&r);

	CHECK(run_args("c", "#include <stdio.h>\nint main(int c,char**v){char b[64];"
			    "if(fgets(b,sizeof b,stdin))printf(\"%s|%s|%d\",b,v[1],c);return 0;}\n",
		       "x", args, 1, &r) == 0);
	CHECK_STR(out_of(&r), "x|one|2");
	sandbox_result_free(&r);

	CHECK(run("bash", "echo out; echo err >&2; exit 42", &r) == 0);
	CHECK_STR(out_of(&r), "out\n");
	CHECK_STR(err_of(&r), "err\n");
	CHECK(r.run.exit_code == 42 && r.run.signal == 0 && r.status == SANDBOX_OK);
	sandbox_result_free(&r);

	CHECK(run("js", "process.stderr.write('e'); process.exit(3)", &r) == 0);
	CHECK(r.run.exit_code == 3);
	CHECK_STR(err_of(&r), "e");
	sandbox_result_free(&r);

	/* a crash is a signal, not an exit code */
	CHECK(run("c", "int main(void){volatile int *p=0; return *p;}\n", &r) == 0);
	CHECK(r.run.signal == SIGSEGV);
	char *json = sandbox_result_json(&r, runtimes_find(&rts, "c", NULL));
	CHECK(json && strstr(json, "\"signal\":\"SIGSEGV\"") && strstr(json, "\"exit_code\":null"));
	free(json);
	sandbox_result_free(&r);

	/* invalid UTF-8 and NUL bytes still make valid JSON */
	CHECK(run("bash", "printf 'a\\0b\\377c\\xe2\\x82\\xac'", &r) == 0);
	json = sandbox_result_json(&r, NULL);
	cJSON *o = json ? cJSON_Parse(json) : NULL;
	CHECK(o != NULL);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "stdout")),
		  "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xe2\x82\xac");
	cJSON_Delete(o);
	free(json);
	sandbox_result_free(&r);
}

static void test_compile_error(void)
{
	struct sandbox_result r;
	CHECK(run("c", "int main(void) { return nope; }\n", &r) == 0);
	CHECK(r.compiled && !r.ran);
	CHECK(r.status == SANDBOX_COMPILE_ERROR);
	CHECK(r.compile.exit_code != 0);
	CHECK(r.compile.err.data && strstr(r.compile.err.data, "nope"));
	char *json = sandbox_result_json(&r, runtimes_find(&rts, "c", NULL));
	cJSON *o = json ? cJSON_Parse(json) : NULL;
	CHECK(o && cJSON_IsObject(cJSON_GetObjectItem(o, "compile")));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "status")), "compile_error");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "exit_code")));
	cJSON_Delete(o);
	free(json);
	sandbox_result_free(&r);
}

static void test_bombs(void)
{
	struct sandbox_result r;
	long long t0 = ms_now();
	CHECK(run("bash", ":(){ :|:& };:\nwait\n", &r) == 0);
	printf("  fork bomb (bash): status %d, %lld ms\n", r.status, ms_now() - t0);
	CHECK(ms_now() - t0 < lim.run_ms + 2000);
	sandbox_result_free(&r);
	check_contained("a bash fork bomb");

	t0 = ms_now();
	CHECK(run("c", "#include <unistd.h>\nint main(void){for(;;)fork();}\n", &r) == 0);
	CHECK(r.status == SANDBOX_TIME_LIMIT);
	printf("  fork bomb (C): status %d, %lld ms\n", r.status, ms_now() - t0);
	sandbox_result_free(&r);
	check_contained("a C fork bomb");

	/* threads count against the pids limit too: creation fails well before 1000 */
	CHECK(run("c", "#include <pthread.h>\n#include <stdio.h>\n#include <unistd.h>\n"
		       "static void *f(void *a){(void)a;pause();return 0;}\n"
		       "int main(void){int n=0;pthread_t t;while(n<1000&&pthread_create(&t,0,f,0)==0)n++;"
		       "printf(\"%d\\n\",n);return 0;}\n", &r) == 0);
	int threads = atoi(out_of(&r));
	printf("  thread bomb: %d threads created (limit %d tasks)\n", threads, lim.processes);
	CHECK(threads > 0 && threads < lim.processes);
	sandbox_result_free(&r);
	check_contained("a thread bomb");

	t0 = ms_now();
	CHECK(run("py", "a = []\nwhile True:\n    a.append(bytearray(1 << 20))\n", &r) == 0);
	CHECK(r.status == SANDBOX_MEMORY_LIMIT);
	CHECK(r.run.signal == SIGKILL);
	printf("  memory bomb (python): status %d, %lld ms\n", r.status, ms_now() - t0);
	sandbox_result_free(&r);
	check_contained("a python memory bomb");

	CHECK(run("c", "#include <stdlib.h>\n#include <string.h>\nint main(void){for(;;){char *p=malloc(1<<20);"
		       "if(!p)return 9;memset(p,1,1<<20);}}\n", &r) == 0);
	CHECK(r.status == SANDBOX_MEMORY_LIMIT);
	sandbox_result_free(&r);
	check_contained("a C memory bomb");
}

static void test_time(void)
{
	struct sandbox_result r;
	long long t0 = ms_now();
	CHECK(run("c", "int main(void){for(;;);}\n", &r) == 0);
	CHECK(r.status == SANDBOX_TIME_LIMIT);
	CHECK(r.run.time_ms >= lim.cpu_s * 1000 - 100 && r.run.time_ms < lim.run_ms + 1000);
	printf("  infinite loop: %lld ms (signal %s)\n", r.run.time_ms,
	       sandbox_signal_name(r.run.signal));
	sandbox_result_free(&r);
	check_contained("an infinite loop");

	CHECK(run("bash", "echo before; sleep 30; echo after", &r) == 0);
	CHECK(r.status == SANDBOX_TIME_LIMIT && r.run.signal == SIGKILL);
	CHECK_STR(out_of(&r), "before\n");
	CHECK(r.run.time_ms >= lim.run_ms && r.run.time_ms < lim.run_ms + 1000);
	sandbox_result_free(&r);
	check_contained("a sleeper");

	/* a child left behind (in its own session, without our pipes) dies with the job */
	t0 = ms_now();
	CHECK(run("bash", "setsid sleep 30 </dev/null >/dev/null 2>&1 &\n"
			  "(sleep 31 &)\necho started\n", &r) == 0);
	CHECK_STR(out_of(&r), "started\n");
	CHECK(r.status == SANDBOX_OK && r.run.exit_code == 0);
	CHECK(ms_now() - t0 < 1500);
	sandbox_result_free(&r);
	check_contained("children sleeping past the end");

	/* ... and one that outlives the main program's timeout too */
	CHECK(run("py", "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
			"time.sleep(60)\n", &r) == 0);
	CHECK(r.status == SANDBOX_TIME_LIMIT);
	sandbox_result_free(&r);
	check_contained("a setsid child past the timeout");

	t0 = ms_now();
	CHECK(run("py", "import os, signal\nprint('stopping', flush=True)\nos.killpg(0, signal.SIGSTOP)\n", &r) == 0);
	CHECK(r.status == SANDBOX_TIME_LIMIT);
	CHECK_STR(out_of(&r), "stopping\n");
	CHECK(ms_now() - t0 < lim.run_ms + 1500);
	sandbox_result_free(&r);
	check_contained("SIGSTOP to its own group");
}

static void test_output_and_disk(void)
{
	struct sandbox_result r;
	long long t0 = ms_now();
	CHECK(run("py", "import sys\nb = 'x' * (1 << 20)\nfor i in range(100):\n    sys.stdout.write(b)\n", &r) == 0);
	CHECK(r.status == SANDBOX_OUTPUT_LIMIT);
	CHECK(r.run.truncated);
	CHECK(r.run.out.len == lim.output);
	CHECK(ms_now() - t0 < 2000);
	printf("  100 MB of output: stopped after %lld ms, kept %zu bytes\n", ms_now() - t0,
	       r.run.out.len);
	sandbox_result_free(&r);
	check_contained("100 MB of output");

	CHECK(run("bash", "i=0; while head -c 1000000 /dev/zero > f$i 2>/dev/null; do i=$((i+1)); done\n"
			  "echo files $i; dd if=/dev/zero of=big bs=1M count=100 2>/dev/null; echo dd $?\n"
			  "df -k . | tail -1\n", &r) == 0);
	int files = -1;
	sscanf(out_of(&r), "files %d", &files);
	printf("  disk fill: %d files of 1 MB before the %lld MiB tmpfs was full\n", files,
	       lim.tmpfs >> 20);
	CHECK(files >= 0 && files <= (int)(lim.tmpfs >> 20));
	CHECK(strstr(out_of(&r), "dd 153") != NULL || strstr(out_of(&r), "dd 1") != NULL);
	CHECK(r.status == SANDBOX_OK);
	sandbox_result_free(&r);
	check_contained("a disk fill");
}

static void test_secrets(void)
{
	struct sandbox_result r;
	setenv("CC_TEST_CANARY", "s3cret-canary", 1);
	CHECK(run("bash", "cat /etc/shadow; cat /etc/passwd; ls /work /work/main/var /root /home /var;"
			  "cat /proc/1/environ; echo; env; ls /sys; echo done", &r) == 0);
	CHECK(strstr(out_of(&r), "root:") == NULL);
	CHECK(strstr(out_of(&r), "s3cret-canary") == NULL);
	CHECK(strstr(out_of(&r), "REDIS") == NULL);
	CHECK(strstr(out_of(&r), "PATH=/usr/local/bin:/usr/bin:/bin") != NULL);
	CHECK(strstr(err_of(&r), "/etc/shadow: No such file") != NULL);
	CHECK(strstr(err_of(&r), "/work") != NULL);
	CHECK(strstr(out_of(&r), "done") != NULL);
	sandbox_result_free(&r);

	/* nothing can be written outside the work dir, and nothing reaches the host */
	CHECK(run("bash", "for f in /usr/pwned /etc/pwned /pwned /bin/pwned /proc/pwned "
			  "/work/main/pwned /root/pwned; do echo x > $f 2>/dev/null && echo wrote $f; done;"
			  "echo x > /tmp/work/ok && echo wrote work", &r) == 0);
	CHECK_STR(out_of(&r), "wrote work\n");
	sandbox_result_free(&r);
	CHECK(access("/usr/pwned", F_OK) < 0 && access("/work/main/pwned", F_OK) < 0 &&
	      access("/pwned", F_OK) < 0);

	/* a symlink planted where a host might write: the host writes nothing in there, so
	 * the canary it points at stays as it was; the next job gets a fresh directory */
	char canary[64]; /* one per run: this test may run in another checkout at once */
	snprintf(canary, sizeof canary, "/tmp/cc-sandbox-canary-%d", (int)getpid());
	FILE *f = fopen(canary, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("original", f);
		fclose(f);
	}
	chmod(canary, 0600);
	char plant[512];
	snprintf(plant, sizeof plant,
		 "#include <unistd.h>\n#include <stdio.h>\nint main(void){"
		 "unlink(\"main\");unlink(\"main.c\");symlink(\"%s\",\"main\");"
		 "symlink(\"%s\",\"main.c\");symlink(\"/etc/shadow\",\"out\");"
		 "puts(\"planted\");return 0;}\n",
		 canary, canary);
	CHECK(run("c", plant, &r) == 0);
	CHECK_STR(out_of(&r), "planted\n");
	sandbox_result_free(&r);
	CHECK(run("c", plant, &r) == 0);
	CHECK_STR(out_of(&r), "planted\n");
	sandbox_result_free(&r);
	struct stat st;
	char text[32] = "";
	f = fopen(canary, "r");
	if (f) {
		if (!fgets(text, sizeof text, f))
			text[0] = '\0';
		fclose(f);
	}
	CHECK_STR(text, "original");
	CHECK(stat(canary, &st) == 0 && st.st_uid == 0 && (st.st_mode & 0777) == 0600);
	unlink(canary);
}

static void test_network(void)
{
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	CHECK(ls >= 0 && bind(ls, (struct sockaddr *)&a, sizeof a) == 0 && listen(ls, 8) == 0);
	CHECK(getsockname(ls, (struct sockaddr *)&a, &al) == 0);
	char code[1024];
	snprintf(code, sizeof code,
		 "import socket\n"
		 "for host, port in (('127.0.0.1', %d), ('1.1.1.1', 53), ('8.8.8.8', 443)):\n"
		 "    try:\n"
		 "        socket.create_connection((host, port), timeout=1)\n"
		 "        print('connected', host)\n"
		 "    except OSError as e:\n"
		 "        print('refused', host, e.errno)\n",
		 ntohs(a.sin_port));
	struct sandbox_result r;
	CHECK(run("py", code, &r) == 0);
	CHECK(strstr(out_of(&r), "connected") == NULL);
	CHECK(strstr(out_of(&r), "refused 127.0.0.1") != NULL);
	CHECK(strstr(out_of(&r), "refused 1.1.1.1") != NULL);
	sandbox_result_free(&r);
	int c = accept(ls, NULL, NULL);
	CHECK(c < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)); /* nobody got through */
	if (c >= 0)
		close(c);
	close(ls);
}

static void test_privilege(void)
{
	/* a host process of the uid the sandbox runs as (one of each uid of the range, since
	 * the step may have any), as a process a step left behind would be: the worker kills
	 * it before a step runs as its uid (sandbox_uid.c: every uid here has one, so the take
	 * looks at each), and the program could not have reached it anyway: host pids are
	 * nobody in its pid namespace */
	pid_t victims[TEST_UIDS];
	for (int i = 0; i < TEST_UIDS; i++) {
		int ready[2];
		victims[i] = -1;
		if (pipe(ready) < 0)
			continue;
		victims[i] = fork();
		if (victims[i] == 0) {
			close(ready[0]);
			if (setgid((gid_t)test_uid) < 0 || setuid((uid_t)(test_uid + (unsigned)i)) < 0 ||
			    write(ready[1], "r", 1) != 1)
				_exit(1);
			execl("/bin/sleep", "sleep", "30", (char *)NULL);
			_exit(1);
		}
		close(ready[1]);
		char c;
		CHECK(victims[i] > 0 && read(ready[0], &c, 1) == 1); /* it runs as the uid */
		close(ready[0]);
	}
	char code[768];
	snprintf(code, sizeof code,
		 "#include <signal.h>\n#include <stdio.h>\n#include <unistd.h>\nint main(void){"
		 "int v[]={%d,%d,%d,%d};int a=0;for(int i=0;i<4;i++)a|=kill(v[i],SIGKILL);"
		 "int b=kill(1,SIGKILL);int c=kill(-1,SIGKILL);"
		 "printf(\"%%d %%d %%d\\n\",a,b,c);return 0;}\n",
		 (int)victims[0], (int)victims[1], (int)victims[2], (int)victims[3]);
	struct sandbox_result r;
	CHECK(run("c", code, &r) == 0);
	/* none of the program's kills reached a victim; the worker's did, before it ran */
	CHECK(strncmp(out_of(&r), "-1 ", 3) == 0);
	for (int i = 0; i < TEST_UIDS; i++) {
		int st = 0;
		CHECK(victims[i] > 0 && waitpid(victims[i], &st, WNOHANG) == victims[i] &&
		      WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		if (victims[i] > 0) {
			kill(victims[i], SIGKILL);
			waitpid(victims[i], &st, 0);
		}
	}
	sandbox_result_free(&r);
	check_contained("kill(-1, SIGKILL)");

	CHECK(run("c", "#include <stdio.h>\n#include <unistd.h>\n#include <errno.h>\n#include <sys/ptrace.h>\n"
		       "int main(void){int a=setuid(0);long b=ptrace(PTRACE_ATTACH,1,0,0);int eb=errno;"
		       "long c=ptrace(PTRACE_TRACEME,0,0,0);"
		       "printf(\"setuid %d ptrace %ld %d traceme %ld uid %d\\n\",a,b,eb,c,(int)getuid());return 0;}\n",
		  &r) == 0);
	/* inside, the uid is 65534 whatever the host uid */
	CHECK_STR(out_of(&r), "setuid -1 ptrace -1 1 traceme -1 uid 65534\n");
	sandbox_result_free(&r);
	check_contained("setuid and ptrace attempts");
}

/* A step run on a thread of its own while the host's processes are looked at. */
struct watched_step {
	const struct runtime *rt;
	const struct sandbox_request *req;
	struct sandbox_result r;
	int rc;
	volatile int done;
};

static void *watched_step_run(void *arg)
{
	struct watched_step *w = arg;
	char err[256];
	w->rc = sandbox_run(sb, w->rt, w->req, &lim, NULL, &w->r, err, sizeof err);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Runs req and, while it runs, reads which host uids of the test's range the host's
 * processes have (from outside: inside, every step is 65534): a bit per uid, 1 << (uid -
 * test_uid). *out gets what the step printed (the caller frees it). */
static unsigned host_uids_of_step(const struct runtime *rt, const struct sandbox_request *req,
				  struct sandbox_result *out)
{
	struct watched_step w = {.rt = rt, .req = req, .rc = -1};
	pthread_t t;
	unsigned seen = 0;
	if (pthread_create(&t, NULL, watched_step_run, &w) != 0) {
		CHECK(0);
		memset(out, 0, sizeof *out);
		return 0;
	}
	while (!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE)) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "ps -o uid=,stat= -u %u,%u,%u,%u 2>/dev/null", test_uid,
			 test_uid + 1, test_uid + 2, test_uid + 3);
		FILE *p = popen(cmd, "r");
		if (p) {
			unsigned u;
			char stat[16];
			/* zombies of earlier steps (bwrap's, left to the host's init) ran before */
			while (fscanf(p, "%u %15s", &u, stat) == 2)
				if (stat[0] != 'Z' && u >= test_uid && u < test_uid + TEST_UIDS)
					seen |= 1u << (u - test_uid);
			pclose(p);
		}
		usleep(50000);
	}
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(w.rc == 0);
	*out = w.r;
	return seen;
}

/* Each step runs as a host uid of its own from the range, held while it runs (inside it is
 * 65534): a uid held elsewhere, here by this test as another worker would, is never given
 * to a step; with every one held the step waits SANDBOX_UID_WAIT_MS, then fails saying
 * why; cancelled while it waits, it is cancelled. */
static void test_host_uids(void)
{
	static const char code[] = "sleep 0.5; id -u\n";
	const struct runtime *rt = runtimes_find(&rts, "bash", NULL);
	CHECK(rt != NULL);
	if (!rt)
		return;
	struct sandbox_request req = {.code = code, .code_len = sizeof code - 1};
	struct sandbox_result r;
	char err[256];
	unsigned seen;
	struct uid_lease held[TEST_UIDS];
	unsigned free_uid = 0;
	for (int i = 0; i < TEST_UIDS; i++)
		held[i].fd = -1;
	for (int i = 0; i < TEST_UIDS - 1; i++)
		CHECK(uid_lease_take(uid_dir_fd, test_uid, TEST_UIDS, &held[i]) == 0);
	for (unsigned u = test_uid; u < test_uid + TEST_UIDS; u++) {
		int taken = 0;
		for (int i = 0; i < TEST_UIDS - 1; i++)
			taken |= held[i].fd >= 0 && held[i].uid == u;
		if (!taken)
			free_uid = u;
	}
	for (int k = 0; k < 3; k++) {
		seen = host_uids_of_step(rt, &req, &r);
		if (seen != 1u << (free_uid - test_uid))
			fprintf(stderr, "  host uids seen %#x, expected only %u\n", seen, free_uid);
		CHECK(seen == 1u << (free_uid - test_uid));
		CHECK_STR(out_of(&r), "65534\n");
		sandbox_result_free(&r);
	}
	/* all held */
	CHECK(uid_lease_take(uid_dir_fd, test_uid, TEST_UIDS, &held[TEST_UIDS - 1]) == 0);
	long long t0 = ms_now();
	err[0] = '\0';
	CHECK(sandbox_run(sb, rt, &req, &lim, NULL, &r, err, sizeof err) == -1);
	long long waited = ms_now() - t0;
	CHECK(strstr(err, "no host uid free for the sandbox") != NULL);
	CHECK(waited >= SANDBOX_UID_WAIT_MS - 50 && waited < SANDBOX_UID_WAIT_MS + 2000);
	printf("  every host uid held: \"%s\" after %lld ms\n", err, waited);
	sandbox_result_free(&r);
	volatile sig_atomic_t cancel = 1;
	t0 = ms_now();
	CHECK(sandbox_run(sb, rt, &req, &lim, &cancel, &r, err, sizeof err) == 0);
	CHECK(r.status == SANDBOX_CANCELLED && ms_now() - t0 < 1000);
	sandbox_result_free(&r);
	/* one given back: a step runs again, as that uid */
	unsigned back = held[1].uid;
	uid_lease_give(&held[1]);
	seen = host_uids_of_step(rt, &req, &r);
	CHECK(seen == 1u << (back - test_uid));
	CHECK_STR(out_of(&r), "65534\n");
	sandbox_result_free(&r);
	for (int i = 0; i < TEST_UIDS; i++)
		uid_lease_give(&held[i]);
	check_contained("steps waiting for a host uid");
}

static void test_compile_bomb(void)
{
	struct sandbox_result r;
	long long t0 = ms_now();
	CHECK(run("c", "#include \"/dev/random\"\nint main(void){return 0;}\n", &r) == 0);
	CHECK(r.compiled && !r.ran);
	CHECK(r.compile.status != SANDBOX_OK || r.compile.exit_code != 0);
	CHECK(ms_now() - t0 < lim.compile_ms + 2000);
	printf("  compile bomb: compile status %d, exit %d, signal %d, %lld ms\n", r.compile.status,
	       r.compile.exit_code, r.compile.signal, ms_now() - t0);
	sandbox_result_free(&r);
	check_contained("a compile bomb");
}

static void test_runtimes(void)
{
	struct runtimes t;
	char err[200];
	CHECK(runtimes_parse(&t, "[x]\nbinary = /bin/x\nversion = 1.2\nfile = m\nrun = ./m a\n"
				 "aliases = y z\n\n[c#]  # a comment\nbinary=/bin/c\nversion=auto\n"
				 "version_cmd=/bin/c -v\nfile=a.cs\ncompile=/bin/c a.cs\nartifact=a\nrun=./a\n",
			     err, sizeof err) == 0);
	CHECK(t.n == 2);
	CHECK(runtimes_find(&t, "z", NULL) == &t.v[0]);
	CHECK(runtimes_find(&t, "x", "1") == &t.v[0]);
	CHECK(runtimes_find(&t, "x", "1.2") == &t.v[0]);
	CHECK(runtimes_find(&t, "x", "1.3") == NULL);
	CHECK(runtimes_find(&t, "x", "1.") == NULL);
	CHECK(runtimes_find(&t, "c#", "*") == &t.v[1]);
	CHECK_STR(t.v[0].run[1], "a");
	CHECK(t.v[0].run[2] == NULL);
	runtimes_free(&t);
	CHECK(runtimes_parse(&t, "[x]\nbinary = /bin/x\n\nnonsense\n", err, sizeof err) == -1);
	CHECK_STR(err, "line 4: expected [language] or key = value");
	CHECK(runtimes_parse(&t, "[x]\nfile = ../escape\n", err, sizeof err) == -1);
	CHECK(runtimes_parse(&t, "[x]\nbinary=/b\nversion=1\nfile=f\nrun=r\ncompile=c\n", err, sizeof err) == -1);

	char v[32];
	CHECK(runtimes_extract_version("Python 3.11.2\n", v, sizeof v) == 0);
	CHECK_STR(v, "3.11.2");
	CHECK(runtimes_extract_version("GNU bash, version 5.2.15(1)-release", v, sizeof v) == 0);
	CHECK_STR(v, "5.2.15");
	CHECK(runtimes_extract_version("v20.1.0", v, sizeof v) == 0);
	CHECK_STR(v, "20.1.0");
	CHECK(runtimes_extract_version("no version 12", v, sizeof v) == -1);

	/* the installed ones, as the worker publishes them */
	static const char *const want[] = {"c", "c++", "python", "javascript", "bash"};
	for (size_t i = 0; i < 5; i++)
		CHECK(runtimes_find(&rts, want[i], NULL) != NULL);
	char *json = runtimes_json(&rts);
	CHECK(json && strstr(json, "\"language\":\"python\"") && strstr(json, "\"py\""));
	printf("  runtimes: %s\n", json ? json : "(null)");
	free(json);
}

/* The optional runtimes (RUNTIMES_EXTRA) under the limits every job gets (the defaults,
 * not this file's lowered ones): a hello world that reads stdin, and for the compiled ones
 * a compile error that stops before the run. */
static void test_optional_runtimes(void)
{
	static const struct {
		const char *lang, *hello, *broken, *why;
	} cases[] = {
		{"java",
		 "import java.util.Scanner;\npublic class Main {\n  public static void main(String[] a) {\n"
		 "    Scanner in = new Scanner(System.in);\n    System.out.println(\"hello \" + in.nextLine());\n"
		 "    Runnable r = new Runnable() { public void run() { System.out.println(\"inner\"); } };\n"
		 "    r.run();\n  }\n}\n",
		 "public class Main { public static void main(String[] a) { int x = \"no\"; } }\n",
		 "incompatible types"},
		{"golang",
		 "package main\nimport (\"bufio\"; \"fmt\"; \"os\")\nfunc main() {\n  s := bufio.NewScanner(os.Stdin)\n"
		 "  s.Scan()\n  fmt.Println(\"hello \" + s.Text())\n  fmt.Println(\"inner\")\n}\n",
		 "package main\nfunc main() { var x int = \"no\" }\n", "cannot use"},
		{"rs",
		 "use std::io::Read;\nfn main() {\n  let mut s = String::new();\n"
		 "  std::io::stdin().read_to_string(&mut s).unwrap();\n  println!(\"hello {}\", s.trim());\n"
		 "  println!(\"inner\");\n}\n",
		 "fn main() { let x: i32 = \"no\"; }\n", "mismatched types"},
		{"ts",
		 "const fs = require('fs');\nconst name: string = fs.readFileSync(0, 'utf8').trim();\n"
		 "console.log(`hello ${name}`);\nconsole.log(process.argv.length > 1 ? 'inner' : '?');\n",
		 "const x: number = 'no';\nconsole.log(x);\n", "TS2322"},
		{"ruby", "puts \"hello #{STDIN.read.strip}\"\nputs 'inner'\n", NULL, NULL},
		{"php", "<?php\necho 'hello ' . trim(stream_get_contents(STDIN)) . \"\\n\";\necho \"inner\\n\";\n",
		 NULL, NULL},
	};
	struct sandbox_limits saved = lim;
	sandbox_limits_default(&lim);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sandbox_result r;
		long long t0 = ms_now();
		CHECK(run_args(cases[i].lang, cases[i].hello, "world\n", NULL, 0, &r) == 0);
		CHECK(r.status == SANDBOX_OK && r.ran);
		CHECK_STR(out_of(&r), "hello world\ninner\n");
		CHECK(r.run.exit_code == 0 && r.run.signal == 0);
		if (strcmp(out_of(&r), "hello world\ninner\n") != 0)
			fprintf(stderr, "  %s: status %d stdout \"%s\" stderr \"%s\" compile \"%s\"\n",
				cases[i].lang, r.status, out_of(&r), err_of(&r),
				r.compile.err.data ? r.compile.err.data : "");
		printf("  hello %-6s compile %lld ms, run %lld ms, whole job %lld ms\n", cases[i].lang,
		       r.compiled ? r.compile.time_ms : 0, r.run.time_ms, ms_now() - t0);
		sandbox_result_free(&r);
		if (!cases[i].broken)
			continue;
		CHECK(run(cases[i].lang, cases[i].broken, &r) == 0);
		CHECK(r.compiled && !r.ran);
		CHECK(r.status == SANDBOX_COMPILE_ERROR);
		CHECK(r.compile.exit_code != 0 && r.compile.signal == 0);
		/* the compiler's message, whichever stream it chose */
		const char *cout = r.compile.out.data ? r.compile.out.data : "";
		const char *cerr = r.compile.err.data ? r.compile.err.data : "";
		CHECK(strstr(cout, cases[i].why) || strstr(cerr, cases[i].why));
		if (!strstr(cout, cases[i].why) && !strstr(cerr, cases[i].why))
			fprintf(stderr, "  %s compile error: status %d out \"%s\" err \"%s\"\n",
				cases[i].lang, r.status, cout, cerr);
		sandbox_result_free(&r);
	}
	lim = saved;
	check_contained("the optional runtimes");
}

/* Four busy loops for about a second; the CPU seconds they took (their user + sys as
 * `times` reports them once reaped) and the seconds they ran, -1 when unreadable. */
static void busy_loops(double *cpu, double *wall)
{
	struct sandbox_result r;
	*cpu = *wall = -1;
	CHECK(run("bash", "t0=$EPOCHREALTIME\n"
			  "for i in 1 2 3 4; do while :; do :; done & done\n"
			  "sleep 1\nkill $(jobs -p)\nwait\n"
			  "echo \"wall $t0 $EPOCHREALTIME\"\ntimes\n", &r) == 0);
	CHECK(r.status == SANDBOX_OK);
	const char *out = out_of(&r);
	double t0, t1, us, ss;
	int um, sm;
	const char *kids = strchr(out, '\n');
	kids = kids ? strchr(kids + 1, '\n') : NULL; /* `times`: the shell, then its children */
	if (sscanf(out, "wall %lf %lf", &t0, &t1) == 2 && kids &&
	    sscanf(kids + 1, "%dm%lfs %dm%lfs", &um, &us, &sm, &ss) == 4) {
		*wall = t1 - t0;
		*cpu = um * 60 + us + sm * 60 + ss;
	} else {
		fprintf(stderr, "busy loops: \"%s\" \"%s\"\n", out, err_of(&r));
	}
	sandbox_result_free(&r);
}

/* CPU_LIMIT: a step's processes together get no more than their share of the host's
 * cores however many threads they run (CFS bandwidth of the step's cpu group). Loops
 * that could take every core for the whole second get about half of one under 0.5. A
 * busy machine only gives them less, so only the upper bound is asserted: half a core
 * over the time they ran, 1.5 times over, and 50 ms for the periods a kill and a reap
 * straddle. */
static void test_cpu_limit(void)
{
	struct sandbox_limits saved = lim;
	lim.run_ms = 5000; /* throttled, the shell itself waits for its turn */
	lim.cpu_milli = 500;
	double cpu, wall;
	busy_loops(&cpu, &wall);
	printf("  4 busy loops under CPU_LIMIT=0.5: %.3f s of CPU in %.3f s\n", cpu, wall);
	CHECK(cpu >= 0 && wall >= 1);
	CHECK(cpu <= 0.5 * wall * 1.5 + 0.05);
	/* for comparison only (the machine's load decides it): two cores' worth */
	lim.cpu_milli = 2000;
	busy_loops(&cpu, &wall);
	printf("  the same under CPU_LIMIT=2: %.3f s of CPU in %.3f s\n", cpu, wall);
	lim = saved;
	check_contained("busy loops under a CPU limit");
}

static void test_cgroups_cleaned(void)
{
	/* every per-step group is removed: the parents have no children of ours left (groups
	 * are named "<pid>.<pid namespace>-<random>"; workers of stacks running beside us
	 * have theirs) */
	const char *parents[] = {"/sys/fs/cgroup/memory/codecollab", "/sys/fs/cgroup/pids/codecollab",
				 "/sys/fs/cgroup/freezer/codecollab", "/sys/fs/cgroup/cpu/codecollab",
				 "/sys/fs/cgroup/codecollab"};
	for (size_t i = 0; i < sizeof parents / sizeof parents[0]; i++) {
		char cmd[320];
		snprintf(cmd, sizeof cmd,
			 "find %s -mindepth 1 -maxdepth 1 -type d -name '%d[.-]*' 2>/dev/null | wc -l",
			 parents[i], (int)getpid());
		FILE *p = popen(cmd, "r");
		int n = -1;
		if (p) {
			if (fscanf(p, "%d", &n) != 1)
				n = -1;
			pclose(p);
		}
		CHECK(n == 0);
	}
}

/* Every writable tmpfs is bounded by its own size, without a memory cgroup (as on a host
 * without cgroups, SANDBOX_CGROUP=none): /dev/shm was an unsized tmpfs, where 152 MiB were
 * written with TMPFS_LIMIT_MB=64. Files may be as large as they like here, so only the
 * tmpfs sizes can stop the writes. */
static void test_tmpfs_bounds(void)
{
	struct sandbox_config cfg;
	char err[512];
	CHECK(sandbox_config_from_env(&cfg, err, sizeof err) == 0);
	cfg.cgroup = "none";
	struct sandbox *nocg = sandbox_open(&cfg, err, sizeof err);
	CHECK(nocg != NULL);
	if (!nocg) {
		fprintf(stderr, "sandbox_open without cgroups: %s\n", err);
		return;
	}
	CHECK(sandbox_cgroup_mode(nocg) == SANDBOX_CG_NONE);
	struct sandbox *saved = sb;
	struct sandbox_limits saved_lim = lim;
	sb = nocg;
	lim.tmpfs = 64LL << 20;
	lim.file_size = 1LL << 30;
	lim.memory = 1LL << 30; /* address space: tmpfs pages are not counted there anyway */
	lim.run_ms = 10000;
	lim.cpu_s = 10;

	struct sandbox_result r;
	CHECK(run("bash", "for d in /dev/shm /tmp /tmp/work; do\n"
			  "  dd if=/dev/zero of=$d/big bs=1M count=100 2>/dev/null; rc=$?\n"
			  "  echo \"$d $rc $(du -k $d/big | cut -f1)\"; rm -f $d/big\n"
			  "done\n", &r) == 0);
	CHECK(r.status == SANDBOX_OK);
	const char *out = out_of(&r);
	printf("  100 MiB writes with TMPFS_LIMIT_MB=64 and no cgroup:\n%s", out);
	const struct {
		const char *dir;
		long long bound;
	} dirs[] = {{"/dev/shm", sandbox_shm_size(&lim)}, {"/tmp", lim.tmpfs}, {"/tmp/work", lim.tmpfs}};
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		char want[32];
		int rc = -1;
		long long kb = -1;
		snprintf(want, sizeof want, "%s ", dirs[i].dir);
		const char *line = strstr(out, want);
		/* "/tmp " must not match inside "/tmp/work " and the other way round */
		while (line && line != out && line[-1] != '\n')
			line = strstr(line + 1, want);
		CHECK(line && sscanf(line + strlen(want), "%d %lld", &rc, &kb) == 2);
		CHECK(rc != 0);			      /* dd failed: ENOSPC */
		CHECK(kb >= 0 && kb <= dirs[i].bound >> 10); /* and no more than the bound was kept */
	}
	sandbox_result_free(&r);

	/* /dev itself (bwrap's --dev tmpfs, unsized) takes no file; its devices still work */
	CHECK(run("bash", "if echo x > /dev/big 2>/dev/null; then echo wrote; else echo refused; fi\n"
			  "echo null > /dev/null && head -c 4 /dev/zero | wc -c\n", &r) == 0);
	CHECK(r.status == SANDBOX_OK);
	CHECK_STR(out_of(&r), "refused\n4\n");
	sandbox_result_free(&r);

	/* small shared memory works: a multiprocessing lock (a POSIX semaphore) and 1 MiB of
	 * shared memory, both in /dev/shm */
	CHECK(run("py", "import multiprocessing as mp\nfrom multiprocessing import shared_memory\n"
			"lock = mp.Lock()\nwith lock:\n    m = shared_memory.SharedMemory(create=True, "
			"size=1 << 20)\n    m.buf[0:2] = b'ok'\n    print(bytes(m.buf[0:2]).decode())\n"
			"    m.close()\n    m.unlink()\n", &r) == 0);
	CHECK(r.status == SANDBOX_OK);
	CHECK_STR(out_of(&r), "ok\n");
	if (strcmp(out_of(&r), "ok\n") != 0)
		fprintf(stderr, "shared memory: \"%s\" \"%s\"\n", out_of(&r), err_of(&r));
	sandbox_result_free(&r);

	/* no pids cgroup: RLIMIT_NPROC bounds the step's tasks, bwrap's two and the program
	 * included, and counts only them (the host uid is the step's own, sandbox_uid.h) */
	lim = saved_lim;
	CHECK(run("py", "import os, time\nn = 0\ntry:\n    while n < 500:\n        if os.fork() == 0:\n"
			"            time.sleep(30)\n            os._exit(0)\n        n += 1\n"
			"except OSError:\n    pass\nprint(n)\n", &r) == 0);
	int forked = atoi(out_of(&r));
	printf("  without cgroups, %d forks of %d tasks\n", forked, lim.processes);
	CHECK(forked >= lim.processes - 6 && forked < lim.processes);
	sandbox_result_free(&r);
	check_contained("a fork loop without cgroups");

	sb = saved;
	lim = saved_lim;
	sandbox_close(nocg);
}

int main(void)
{
	log_init("test_sandbox");
	test_uid = 2147418112u + 1024u + (unsigned)(getpid() % 8000) * TEST_UIDS;
	snprintf(test_uid_s, sizeof test_uid_s, "%u", test_uid);
	unsetenv("SANDBOX_UID");
	setenv("SANDBOX_UID_BASE", test_uid_s, 1);
	setenv("SANDBOX_UID_COUNT", "4", 1);
	setenv("SANDBOX_GID", test_uid_s, 1);
	if (geteuid() != 0) {
		fprintf(stderr, "test_sandbox: MUST RUN AS ROOT (cgroups, sandbox uid); failing\n");
		CHECK(geteuid() == 0);
		return unit_summary("sandbox");
	}
	char err[512];
	char path[4096];
	runtimes_default_path(path, sizeof path);
	/* every runtime of the file: scripts/deps.sh test installs them all */
	if (runtimes_load(&rts, path, "all", err, sizeof err) < 0) {
		fprintf(stderr, "runtimes: %s\n", err);
		CHECK(0);
		return unit_summary("sandbox");
	}
	struct sandbox_config cfg;
	CHECK(sandbox_config_from_env(&cfg, err, sizeof err) == 0);
	uid_dir_fd = sandbox_uid_dir_open(cfg.uid_lock_dir, err, sizeof err);
	if (uid_dir_fd < 0) {
		fprintf(stderr, "sandbox_uid_dir_open: %s\n", err);
		CHECK(uid_dir_fd >= 0);
		return unit_summary("sandbox");
	}
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

	long long t0 = ms_now();
	test_runtimes();
	test_hello();
	check_still_works("hello");
	test_io();
	test_compile_error();
	test_optional_runtimes();
	test_secrets();
	test_network();
	test_privilege();
	test_host_uids();
	test_output_and_disk();
	test_tmpfs_bounds();
	test_time();
	test_cpu_limit();
	test_bombs();
	test_compile_bomb();
	test_cgroups_cleaned();
	printf("  all sandbox tests: %lld ms\n", ms_now() - t0);

	sandbox_close(sb);
	runtimes_free(&rts);
	close(uid_dir_fd);
	return unit_summary("sandbox");
}

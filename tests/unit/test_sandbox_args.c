/* The sandbox's bwrap argument list (queue-worker/sandbox_bwrap.c), built from plain
 * values: what each step is allowed to see and do is decided here, so the tests read the
 * list the way bwrap would. */
#include "../../queue-worker/sandbox_bwrap.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct bwrap_root roots[] = {
	{"/bin", "usr/bin"}, /* merged /usr: a symlink */
	{"/lib64", ""},	     /* a real directory */
};
static const char *const cmd[] = {"/usr/bin/python3", "main.py", NULL};
static const char *const extra[] = {"one", "two words"};

static struct bwrap_spec spec(void)
{
	struct bwrap_spec s = {
		.bwrap = "/usr/bin/bwrap",
		.uid = 65534,
		.gid = 65533,
		.seccomp = 1,
		.hosts = 1,
		.roots = roots,
		.nroots = 2,
		.tmpfs = 64LL << 20,
		.shm = 16LL << 20,
		.file_dest = "main.py",
		.file_perms = "0444",
		.cmd = cmd,
		.extra = extra,
		.nextra = 2,
	};
	return s;
}

/* Index of the first place where the n strings follow each other in a, or -1. */
static long find_seq(const struct bwrap_argv *a, const char *const *seq, size_t n)
{
	for (size_t i = 0; i + n <= a->n; i++) {
		size_t k = 0;
		while (k < n && strcmp(a->v[i + k], seq[k]) == 0)
			k++;
		if (k == n)
			return (long)i;
	}
	return -1;
}

#define AT(a, ...)                                                                       \
	find_seq(a, (const char *const[]){__VA_ARGS__},                                   \
		 sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* Index of the "--" that ends bwrap's options. */
static long options_end(const struct bwrap_argv *a)
{
	return AT(a, "--");
}

static void test_shape(void)
{
	struct bwrap_spec s = spec();
	struct bwrap_argv a;
	CHECK(bwrap_args_build(&s, &a) == 0);
	CHECK(a.n > 10 && a.v[a.n] == NULL);
	CHECK_STR(a.v[0], "/usr/bin/bwrap");
	/* after "--": the command, then the request's arguments, nothing else */
	long dd = options_end(&a);
	CHECK(dd > 0 && (size_t)dd + 5 == a.n);
	CHECK(AT(&a, "--", "/usr/bin/python3", "main.py", "one", "two words") == dd);
	/* the ids inside, the hostname */
	CHECK(AT(&a, "--uid", "65534") > 0 && AT(&a, "--uid", "65534") < dd);
	CHECK(AT(&a, "--gid", "65533") > 0 && AT(&a, "--gid", "65533") < dd);
	CHECK(AT(&a, "--hostname", "sandbox") > 0);
	CHECK(AT(&a, "--die-with-parent") > 0 && AT(&a, "--new-session") > 0);
}

static void test_isolation(void)
{
	struct bwrap_spec s = spec();
	struct bwrap_argv a;
	CHECK(bwrap_args_build(&s, &a) == 0);
	long dd = options_end(&a);
	/* every namespace is new: no network (only a loopback of its own), no host pids */
	static const char *const ns[] = {"--unshare-user", "--disable-userns", "--unshare-pid",
					 "--unshare-net", "--unshare-ipc", "--unshare-uts",
					 "--unshare-cgroup-try"};
	for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
		long at = AT(&a, ns[i]);
		CHECK(at > 0 && at < dd);
	}
	/* there is no way to ask for the network: nothing in the list shares it */
	CHECK(AT(&a, "--share-net") < 0);
	CHECK(AT(&a, "--unshare-all") < 0);
	/* no environment of ours: cleared, then only these four */
	long env = AT(&a, "--clearenv");
	CHECK(env > 0 && env < dd);
	CHECK(AT(&a, "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin") > env);
	CHECK(AT(&a, "--setenv", "HOME", "/tmp/work") > env);
	CHECK(AT(&a, "--setenv", "TMPDIR", "/tmp") > env);
	CHECK(AT(&a, "--setenv", "LANG", "C.UTF-8") > env);
	int setenvs = 0;
	for (size_t i = 0; i < (size_t)dd; i++)
		setenvs += strcmp(a.v[i], "--setenv") == 0;
	CHECK(setenvs == 4);
	CHECK(AT(&a, "--chdir", "/tmp/work") > 0);
	/* the seccomp filter on its descriptor, when there is one */
	CHECK(AT(&a, "--seccomp", "5") > 0);
	s.seccomp = 0;
	CHECK(bwrap_args_build(&s, &a) == 0);
	CHECK(AT(&a, "--seccomp") < 0);
}

static void test_file_systems(void)
{
	struct bwrap_spec s = spec();
	struct bwrap_argv a;
	CHECK(bwrap_args_build(&s, &a) == 0);
	/* the host's programs and libraries: read-only binds, symlinks recreated */
	CHECK(AT(&a, "--ro-bind", "/usr", "/usr") > 0);
	CHECK(AT(&a, "--symlink", "usr/bin", "/bin") > 0);
	CHECK(AT(&a, "--ro-bind", "/lib64", "/lib64") > 0);
	CHECK(AT(&a, "--bind") < 0 && AT(&a, "--bind-try") < 0); /* nothing writable of the host */
	CHECK(AT(&a, "--ro-bind-try", "/etc/alternatives", "/etc/alternatives") > 0);
	CHECK(AT(&a, "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache") > 0);
	CHECK(AT(&a, "--ro-bind", "/etc", "/etc") < 0 && AT(&a, "--ro-bind-try", "/etc", "/etc") < 0);
	/* /etc/hosts: ours, from its descriptor (never the host's), read-only */
	long hosts = AT(&a, "--perms", "0444", "--file", "6", "/etc/hosts");
	CHECK(hosts > 0);
	CHECK(AT(&a, "--ro-bind", "/etc/hosts", "/etc/hosts") < 0 &&
	      AT(&a, "--ro-bind-try", "/etc/hosts", "/etc/hosts") < 0);
	CHECK(strcmp(BWRAP_HOSTS_TEXT, "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.0.1\tsandbox\n") == 0);
	/* /dev read-only right after it is made; / read-only once everything is mounted */
	long dev = AT(&a, "--dev", "/dev");
	CHECK(dev > 0 && AT(&a, "--remount-ro", "/dev") == dev + 2);
	long root_ro = AT(&a, "--remount-ro", "/");
	CHECK(root_ro > AT(&a, "--file") && root_ro > AT(&a, "--dir", "/tmp/work"));
	CHECK(root_ro > hosts);
	CHECK(root_ro < AT(&a, "--chdir"));
	long proc = AT(&a, "--proc", "/proc");
	CHECK(proc > 0);
	/* the init's memory files covered once /proc is mounted */
	CHECK(AT(&a, "--ro-bind", "/dev/null", "/proc/1/mem") > proc);
	CHECK(AT(&a, "--ro-bind", "/dev/null", "/proc/1/task/1/mem") > proc);
	/* no pseudo-terminals: --dev's devpts instance covered by a small read-only tmpfs */
	long pts = AT(&a, "--size", "4096", "--tmpfs", "/dev/pts");
	CHECK(pts > dev && AT(&a, "--remount-ro", "/dev/pts") == pts + 4);
	/* the sizes given: /dev/shm and /tmp are tmpfs mounts of exactly these bytes */
	CHECK(AT(&a, "--size", "16777216", "--tmpfs", "/dev/shm") > dev);
	CHECK(AT(&a, "--size", "67108864", "--tmpfs", "/tmp") > 0);
	CHECK(AT(&a, "--dir", "/tmp/work") > AT(&a, "--tmpfs", "/tmp"));
	/* the code: read from descriptor 4 into the work directory, with its permissions */
	CHECK(AT(&a, "--perms", "0444", "--file", "4", "/tmp/work/main.py") > 0);

	s.file_dest = NULL; /* a step without a file (the self-test) */
	s.tmpfs = 1LL << 20;
	s.shm = 1LL << 20;
	CHECK(bwrap_args_build(&s, &a) == 0);
	CHECK(AT(&a, "--file", "4") < 0 && AT(&a, "--perms", "0444", "--file", "4") < 0);
	CHECK(AT(&a, "--perms", "0444", "--file", "6", "/etc/hosts") > 0);
	s.hosts = 0;
	CHECK(bwrap_args_build(&s, &a) == 0);
	CHECK(AT(&a, "--file") < 0 && AT(&a, "--perms") < 0);
	CHECK(AT(&a, "--size", "1048576", "--tmpfs", "/tmp") > 0);
	CHECK(AT(&a, "--size", "1048576", "--tmpfs", "/dev/shm") > 0);
}

/* A runtime's own environment and read-only binds (runtimes.conf env, bind): set after the
 * sandbox's variables, bound read-only before / is made read-only, nothing writable. */
static void test_runtime_extras(void)
{
	static const char *const env[] = {"GOCACHE", "/tmp/go-cache", "HOME", "/tmp/h"};
	static const char *const binds[] = {"/etc/java-17-openjdk", "/etc/java-17-openjdk",
					    "/srv/cc/queue-worker/runtimes.d", "/opt/codecollab"};
	struct bwrap_spec s = spec();
	s.env = env;
	s.nenv = 2;
	s.binds = binds;
	s.nbinds = 2;
	struct bwrap_argv a;
	CHECK(bwrap_args_build(&s, &a) == 0);
	long dd = options_end(&a);
	long go = AT(&a, "--setenv", "GOCACHE", "/tmp/go-cache");
	long home = AT(&a, "--setenv", "HOME", "/tmp/h");
	CHECK(go > AT(&a, "--setenv", "LANG", "C.UTF-8") && go < dd);
	CHECK(home > AT(&a, "--setenv", "HOME", "/tmp/work") && home < dd); /* the later one wins */
	long jdk = AT(&a, "--ro-bind", "/etc/java-17-openjdk", "/etc/java-17-openjdk");
	long types = AT(&a, "--ro-bind", "/srv/cc/queue-worker/runtimes.d", "/opt/codecollab");
	long root_ro = AT(&a, "--remount-ro", "/");
	CHECK(jdk > 0 && types > jdk && types < root_ro);
	CHECK(AT(&a, "--bind") < 0 && AT(&a, "--bind-try") < 0);
	/* none: the list is as before */
	s = spec();
	CHECK(bwrap_args_build(&s, &a) == 0);
	int setenvs = 0, robinds = 0;
	for (size_t i = 0; i < a.n; i++) {
		setenvs += strcmp(a.v[i], "--setenv") == 0;
		robinds += strcmp(a.v[i], "--ro-bind") == 0;
	}
	CHECK(setenvs == 4);
	CHECK(robinds == 4); /* /usr and /lib64 of spec(), and /dev/null over the init's two mem files */
}

static void test_bounds(void)
{
	struct bwrap_spec s = spec();
	struct bwrap_argv a;
	/* more arguments than the list holds: refused, never cut short silently */
	const char **many = malloc(BWRAP_ARGV_MAX * sizeof *many);
	CHECK(many != NULL);
	if (!many)
		return;
	for (size_t i = 0; i < BWRAP_ARGV_MAX; i++)
		many[i] = "x";
	s.extra = many;
	s.nextra = BWRAP_ARGV_MAX;
	CHECK(bwrap_args_build(&s, &a) == -1);
	free(many);
	/* a file name that does not fit the formatted strings' room */
	s = spec();
	char *name = malloc(BWRAP_ARENA_MAX + 1);
	CHECK(name != NULL);
	if (!name)
		return;
	memset(name, 'n', BWRAP_ARENA_MAX);
	name[BWRAP_ARENA_MAX] = '\0';
	s.file_dest = name;
	CHECK(bwrap_args_build(&s, &a) == -1);
	free(name);
	/* a request's 64 arguments fit */
	static const char *const args64[64] = {
		"a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a",
		"a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a",
		"a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a",
		"a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "z"};
	s = spec();
	s.extra = args64;
	s.nextra = 64;
	CHECK(bwrap_args_build(&s, &a) == 0);
	CHECK_STR(a.v[a.n - 1], "z");
}

int main(void)
{
	test_shape();
	test_isolation();
	test_file_systems();
	test_runtime_extras();
	test_bounds();
	return unit_summary("sandbox_args");
}

/* sandbox_bwrap: the argument list of one bwrap invocation, built from plain values (no
 * system call, nothing read from the host): the namespaces, the read-only binds of /usr
 * and the host's /bin, /lib… roots, the sized tmpfs mounts, the file handed in, the
 * environment, and the command. Which descriptor carries what is fixed here too, since
 * the arguments name them (sandbox_child.c puts them there). */
#ifndef CC_SANDBOX_BWRAP_H
#define CC_SANDBOX_BWRAP_H

#include <stddef.h>

/* Fixed descriptor numbers the bwrap process gets: --file reads BWRAP_FD_FILE (the code)
 * and BWRAP_FD_HOSTS (/etc/hosts), --seccomp BWRAP_FD_SECCOMP; the compile step's wrapper
 * writes the program to BWRAP_FD_ARTIFACT. */
#define BWRAP_FD_ARTIFACT 3
#define BWRAP_FD_FILE 4
#define BWRAP_FD_SECCOMP 5
#define BWRAP_FD_HOSTS 6
#define BWRAP_FD_FIRST_FREE 7

/* The sandbox's hostname (its own uts namespace), and the /etc/hosts it gets: the host's
 * is none of its business, and without one not even "localhost" resolves (glibc reads no
 * name from anywhere else in there: no DNS server answers inside). Read-only. */
#define BWRAP_HOSTNAME "sandbox"
#define BWRAP_HOSTS_TEXT                                                                 \
	"127.0.0.1\tlocalhost\n"                                                         \
	"::1\tlocalhost\n"                                                               \
	"127.0.0.1\t" BWRAP_HOSTNAME "\n"

#define BWRAP_WORK_DIR "/tmp/work"
#define BWRAP_ARGV_MAX 256
#define BWRAP_ARENA_MAX 8192
#define BWRAP_ROOTS_MAX 8

/* A top-level directory of the host (/bin, /lib64, …) as the sandbox sees it. */
struct bwrap_root {
	char path[64];	 /* "/bin" */
	char target[64]; /* a symlink's target ("usr/bin"), recreated; "" for a real
			    directory, bound read-only */
};

struct bwrap_spec {
	const char *bwrap; /* argv[0] */
	unsigned uid, gid; /* ids inside the sandbox */
	int seccomp;	   /* a filter comes on BWRAP_FD_SECCOMP */
	int hosts;	   /* BWRAP_HOSTS_TEXT comes on BWRAP_FD_HOSTS, for /etc/hosts */
	const struct bwrap_root *roots;
	size_t nroots;
	long long tmpfs; /* bytes of the /tmp tmpfs (holding the work directory) */
	long long shm;	 /* bytes of the /dev/shm tmpfs */
	const char *file_dest;	/* NULL: no file; else its name in the work directory, read */
	const char *file_perms; /* from BWRAP_FD_FILE, with these octal permissions */
	/* the runtime's own: env[2i] = env[2i+1] set after the sandbox's variables (it may
	 * replace them), and binds[2i] bound read-only at binds[2i+1] */
	const char *const *env;
	size_t nenv;
	const char *const *binds;
	size_t nbinds;
	const char *const *cmd;	  /* argv inside the sandbox, NULL-terminated */
	const char *const *extra; /* appended to cmd; may be NULL when nextra is 0 */
	size_t nextra;
};

/* The argument list; v is NULL-terminated, its formatted strings live in arena. */
struct bwrap_argv {
	const char *v[BWRAP_ARGV_MAX + 1];
	size_t n;
	char arena[BWRAP_ARENA_MAX];
	size_t used;
	int overflow;
};

/* Fills a from s: 0, or -1 when the list does not fit (too many or too long arguments). */
int bwrap_args_build(const struct bwrap_spec *s, struct bwrap_argv *a);

#endif

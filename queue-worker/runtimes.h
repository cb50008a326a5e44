/* runtimes: the languages the local sandbox can run, read from runtimes.conf.
 *
 * The file is read once at start. A section marked optional (Java, Go, Rust, …) is kept
 * only when RUNTIMES_EXTRA names it, and then its binary must be installed (the worker
 * refuses to start otherwise); any other section is kept when its binary is installed.
 * Versions are taken from the file or detected by running version_cmd. After
 * runtimes_load() the set is read-only configuration, shared by every job thread.
 * Names follow Piston's; aliases come from lib/lang.c (the one table the API uses too),
 * plus a section's own "aliases" for a language lib/lang.c does not know. */
#ifndef CC_RUNTIMES_H
#define CC_RUNTIMES_H

#include <stddef.h>

#define RUNTIMES_NAME_MAX 32
#define RUNTIMES_ALIASES_MAX 8
#define RUNTIMES_ARGV_MAX 32
#define RUNTIMES_ENV_MAX 8
#define RUNTIMES_BINDS_MAX 4

struct runtime {
	char language[RUNTIMES_NAME_MAX];
	char version[RUNTIMES_NAME_MAX];
	char aliases[RUNTIMES_ALIASES_MAX][RUNTIMES_NAME_MAX];
	size_t naliases;
	char binary[256];
	char version_cmd[256]; /* empty when version is fixed */
	char file[64];	       /* source file name in the work dir */
	char artifact[64];     /* compiled program; empty when there is no compile step */
	/* NULL-terminated argv arrays; the strings point into the owned line copies below */
	char *compile[RUNTIMES_ARGV_MAX + 1]; /* compile[0] == NULL: no compile step */
	char *run[RUNTIMES_ARGV_MAX + 1];
	char *compile_line; /* owned */
	char *run_line;	    /* owned */
	/* environment of both steps on top of the sandbox's own (PATH, HOME, TMPDIR, LANG):
	 * env[2i] = env[2i+1], each string owned */
	char *env[2 * RUNTIMES_ENV_MAX];
	size_t nenv;
	/* host paths bound read-only into both steps: binds[2i] (absolute after
	 * runtimes_load) at binds[2i+1], each string owned */
	char *binds[2 * RUNTIMES_BINDS_MAX];
	size_t nbinds;
	char packages[256]; /* the Debian packages that bring it (scripts/deps.sh) */
	int optional;	    /* offered only when RUNTIMES_EXTRA names it */
};

struct runtimes {
	struct runtime *v; /* owned; runtimes_free() */
	size_t n;
};

/* Parses the text of a runtimes.conf (see the file for the format) into rt, keeping every
 * section, installed or not, with versions as written ("auto" left as is). 0 or -1 with
 * "line N: why" in err. rt is empty and needs no free on failure. */
int runtimes_parse(struct runtimes *rt, const char *text, char *err, size_t errlen);

/* Checks a RUNTIMES_EXTRA value against the parsed sections of rt: words separated by
 * spaces or commas, each an optional section's language or alias, or "all" (every
 * optional one); a runtime that is always offered may be named too. Marks the chosen
 * sections in chosen[] (rt->n entries, set to 1). NULL or "" chooses none. 0, or -1 with a
 * message for the operator in err (an unknown name, a malformed or too long value). */
int runtimes_choose(const struct runtimes *rt, const char *extra, unsigned char *chosen,
		    char *err, size_t errlen);

/* Reads the file at path, parses it, keeps the optional runtimes extra names (see
 * runtimes_choose) and the others, drops a runtime that is not optional when its binary
 * is missing, resolves relative bind sources against the file's directory, detects "auto"
 * versions (a runtime whose version cannot be found is dropped with a warning). A chosen
 * optional runtime that cannot be offered (binary, bind source or version missing) is an
 * error naming the Debian packages to install. 0 or -1 with a message in err. */
int runtimes_load(struct runtimes *rt, const char *path, const char *extra, char *err,
		  size_t errlen);

/* The default path: RUNTIMES_CONF, else queue-worker/runtimes.conf in the working
 * directory, else the same path relative to the executable (build/<variant>/bin/../../..).
 * Writes into out (cap bytes). */
void runtimes_default_path(char *out, size_t cap);

/* A runtime by language name or alias (lib/lang.c's, case-insensitive, or the section's
 * own aliases, case-sensitive) whose version matches
 * want: NULL, "", "*" and "latest" match any; otherwise want must equal the version or be
 * a prefix of it ending at a dot ("3" and "3.11" match "3.11.2"). Borrowed from rt. */
const struct runtime *runtimes_find(const struct runtimes *rt, const char *language,
				    const char *want);

/* [{"language","version","aliases":[…]}] as JSON text; aliases are lib/lang.c's, then the
 * section's own. Caller frees with free(). */
char *runtimes_json(const struct runtimes *rt);

/* First x.y or x.y.z in text (e.g. "Python 3.11.2" → "3.11.2", "v20.1.0" → "20.1.0").
 * 0, or -1 when there is none. */
int runtimes_extract_version(const char *text, char *out, size_t cap);

/* The compile step's shell script: each command of r->compile (commands separated by
 * "&&" tokens) with every argument single-quoted, joined by " && ", then
 * " && exec cat -- 'ARTIFACT' >&3" (the program handed back on descriptor 3). 0, or -1
 * when it does not fit in cap bytes or r has no compile step. */
int runtimes_compile_script(const struct runtime *r, char *out, size_t cap);

void runtimes_free(struct runtimes *rt);

#endif

/* runtimes: the languages the local sandbox can run, read from runtimes.conf.
 *
 * The file is read once at start; only runtimes whose binary is installed are kept, and
 * their version is taken from the file or detected by running version_cmd. After
 * runtimes_load() the set is read-only configuration, shared by every job thread.
 * Names and aliases follow Piston's (c, c++, python, javascript, bash; cpp, py, js, sh). */
#ifndef CC_RUNTIMES_H
#define CC_RUNTIMES_H

#include <stddef.h>

#define RUNTIMES_NAME_MAX 32
#define RUNTIMES_ALIASES_MAX 8
#define RUNTIMES_ARGV_MAX 32

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
};

struct runtimes {
	struct runtime *v; /* owned; runtimes_free() */
	size_t n;
};

/* Parses the text of a runtimes.conf (see the file for the format) into rt, keeping every
 * section, installed or not, with versions as written ("auto" left as is). 0 or -1 with
 * "line N: why" in err. rt is empty and needs no free on failure. */
int runtimes_parse(struct runtimes *rt, const char *text, char *err, size_t errlen);

/* Reads the file at path, parses it, drops runtimes whose binary is missing, detects
 * "auto" versions (a runtime whose version cannot be found is dropped with a warning).
 * 0 or -1 with a message in err. */
int runtimes_load(struct runtimes *rt, const char *path, char *err, size_t errlen);

/* The default path: RUNTIMES_CONF, else queue-worker/runtimes.conf in the working
 * directory, else the same path relative to the executable (build/<variant>/bin/../../..).
 * Writes into out (cap bytes). */
void runtimes_default_path(char *out, size_t cap);

/* A runtime by language name or alias (case-sensitive, as Piston) whose version matches
 * want: NULL, "", "*" and "latest" match any; otherwise want must equal the version or be
 * a prefix of it ending at a dot ("3" and "3.11" match "3.11.2"). Borrowed from rt. */
const struct runtime *runtimes_find(const struct runtimes *rt, const char *language,
				    const char *want);

/* [{"language","version","aliases":[…]}] as JSON text. Caller frees with free(). */
char *runtimes_json(const struct runtimes *rt);

/* First x.y or x.y.z in text (e.g. "Python 3.11.2" → "3.11.2", "v20.1.0" → "20.1.0").
 * 0, or -1 when there is none. */
int runtimes_extract_version(const char *text, char *out, size_t cap);

void runtimes_free(struct runtimes *rt);

#endif

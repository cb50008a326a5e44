/* piston: running jobs on a Piston server (v2 API) instead of the local sandbox.
 *
 *   POST {url}/api/v2/execute  {language, version, files:[{name, content}], stdin, args,
 *                               compile_timeout?, run_timeout?, compile_memory_limit?,
 *                               run_memory_limit?}
 *        → 200 {language, version, run:{stdout, stderr, output, code, signal, message?,
 *               status?, wall_time?}, compile?:{…}}, or 400 {"message"}
 *   GET  {url}/api/v2/runtimes → [{language, version, aliases, runtime?}]
 * Answers are mapped to our execution result (sandbox_result_json), so a client cannot
 * tell which backend ran its code. Every request is bounded in time and answer size. */
#ifndef CC_PISTON_H
#define CC_PISTON_H

#include "runtimes.h"

#include <signal.h>
#include <stddef.h>

#define PISTON_ANSWER_MAX (8 * 1024 * 1024)
/* The longest language, version or alias announced: what a struct runtime holds, so a
 * Piston runtime is named as a local one can be; within the 32 bytes the worker accepts
 * in a job's request (execution.c), which the API copies from the announcement. */
#define PISTON_NAME_MAX (RUNTIMES_NAME_MAX - 1)
/* The most aliases announced for one runtime, the first ones of Piston's list; the rest are
 * left out. The API reads the whole announcement at every run request, so a runtime listing
 * thousands of aliases must not be taken whole; this is well above what the runtimes of
 * Piston's own packages list. */
#define PISTON_ALIASES_MAX 32

struct piston_request {
	const char *language;
	const char *version; /* NULL or "": "*" */
	const char *code;
	const char *stdin_data;
	const char *const *args;
	size_t nargs;
};

/* Limits sent to Piston; 0 leaves a field out, so Piston's own defaults (and maxima) apply. */
struct piston_limits {
	long run_timeout_ms;
	long compile_timeout_ms;
	long long run_memory;
	long long compile_memory;
};

enum piston_rc { PISTON_OK = 0, PISTON_FAILED = -1, PISTON_CANCELLED = 1 };

/* Runs a request. PISTON_OK with *result_json (caller frees with free()); PISTON_FAILED
 * with a message for people in err (HTTP error, Piston's 400 message, timeout, malformed
 * answer); PISTON_CANCELLED when *cancel became non-zero. output_max bounds each stream
 * of the result as the local sandbox does (truncated is set). */
enum piston_rc piston_execute(const char *url, const struct piston_request *req,
			      const struct piston_limits *lim, long timeout_ms, size_t output_max,
			      const volatile sig_atomic_t *cancel, char **result_json, char *err,
			      size_t errlen);

/* Maps Piston's execute answer (body[0..len), which may hold NUL bytes) to our result JSON;
 * elapsed_ms stands in for time_ms when Piston does not report wall_time. The output comes
 * out as the local sandbox's would: a NUL, escaped (\u0000) or as the byte itself (which
 * JSON does not allow, but a server may pass a program's \0 on so), becomes U+FFFD, not
 * the end of the text or of the answer, and so do a lone surrogate escape and each byte
 * that is not UTF-8 (not a malformed answer); each counts one byte against output_max, as
 * the NUL did. A stage's exit code is a whole number from 0 to 255 (a signal Piston names
 * wins over it); a stage with neither, or with a code that is no exit code, makes the answer
 * malformed (err says which stage and why) instead of showing a made-up exit code. 0 with
 * *result_json (caller frees), or -1 with err. */
int piston_map_answer(const char *body, size_t len, long long elapsed_ms, size_t output_max,
		      char **result_json, char *err, size_t errlen);

/* The most runtimes announced: the first ones of Piston's list; the rest are left out. Every
 * client reads the announcement (GET /api/runtimes), and the API at every run request, so a
 * Piston listing 100,000 runtimes must not be taken whole. Piston's own package index has
 * a few hundred at most, and a server installs far fewer. */
#define PISTON_RUNTIMES_MAX 500
/* The most bytes of announcement (cc:runtimes): a bound of its own, as 500 runtimes of 32
 * long aliases each could come to over 1 MB. A usual list is a few KB. */
#define PISTON_RUNTIMES_TEXT_MAX (256 * 1024)

/* What was left out of Piston's runtimes list, for the log. */
struct piston_left_out {
	size_t skipped; /* runtimes whose language or version is no name we can announce */
	size_t dropped; /* aliases past PISTON_ALIASES_MAX of their runtime */
	size_t over;    /* runtimes past PISTON_RUNTIMES_MAX or PISTON_RUNTIMES_TEXT_MAX */
	char why[256];  /* the first skipped runtime: its place and field; "" when none */
};

/* Piston's runtimes answer (body text) as our cc:runtimes JSON [{language, version,
 * aliases}]. A runtime whose language or version is not a name we can announce (1 to
 * PISTON_NAME_MAX bytes of valid UTF-8 without control characters; an escaped NUL or lone
 * surrogate makes it not one) is left out and counted in lo->skipped, the first one
 * described in lo->why; an alias that is not such a name is left out of its runtime, and
 * so is every alias past the first PISTON_ALIASES_MAX good ones of a runtime (counted in
 * lo->dropped). Good runtimes past the first PISTON_RUNTIMES_MAX, or past what fits in
 * PISTON_RUNTIMES_TEXT_MAX bytes, are left out too (lo->over). Caller frees with free();
 * NULL with err (not JSON, not a list, out of memory). */
char *piston_runtimes_map(const char *body, struct piston_left_out *lo, char *err,
			  size_t errlen);

/* GET {url}/api/v2/runtimes mapped by piston_runtimes_map(). Caller frees with free();
 * NULL with err (also when *cancel became non-zero; cancel may be NULL). */
char *piston_runtimes(const char *url, long timeout_ms, const volatile sig_atomic_t *cancel,
		      struct piston_left_out *lo, char *err, size_t errlen);

#endif

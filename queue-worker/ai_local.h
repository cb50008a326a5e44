/* ai_local: the local provider: no AI, the language's own checker (gcc -fsyntax-only,
 * python's compile(), node --check, bash -n) run in the sandbox, and its diagnostics
 * parsed into items (the parsing is pure). */
#ifndef CC_AI_LOCAL_H
#define CC_AI_LOCAL_H

#include "ai_request.h"
#include "runtimes.h"
#include "sandbox.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stddef.h>

#define AI_DIAG_MAX 50		/* diagnostics kept */
#define AI_DIAG_MESSAGE_MAX 400 /* bytes of one diagnostic's message */

/* The checker's output for language parsed into [{line, column?, severity, message}] (new
 * array, caller frees), lines moved by first_line - 1, at most AI_DIAG_MAX items. */
cJSON *ai_diag_parse(const char *language, const char *output, long first_line);

/* The checker of a language: its source file name and a printable command; -1 for none. */
int ai_checker(const char *language, const char **file, const char **label);

/* The local provider's answer to rq: {kind, provider "local", checker, text, diagnostics}
 * (caller frees), or NULL and a message in err (out of memory, the sandbox failed, or
 * cancelled: *cancel non-zero). sb NULL: the answer says the checker is not available;
 * lim NULL: sandbox_limits_default(). *cacheable is set to 1 when the answer is the
 * checker's verdict on the code, and to 0 when it only says what this worker could not
 * do at this moment (no checker or sandbox here, the checker stopped by a limit): such an
 * answer must not go into the cache shared by every room (ai.c). */
cJSON *ai_local_result(const struct sandbox *sb, const struct runtimes *rts,
		       const struct sandbox_limits *lim, const struct ai_request *rq,
		       const volatile sig_atomic_t *cancel, int *cacheable, char *err,
		       size_t errlen);

#endif

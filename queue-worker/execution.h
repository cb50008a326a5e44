/* execution: the "execution" job kind: a request {language, version, code, stdin, args}
 * run on the local sandbox or, when a Piston URL is configured, on Piston. */
#ifndef CC_EXECUTION_H
#define CC_EXECUTION_H

#include "piston.h"
#include "queue.h"
#include "runtimes.h"
#include "sandbox.h"

#include <signal.h>
#include <stddef.h>

/* Parsed and checked request; every string is owned (execution_request_free). */
struct execution_request {
	char *language;
	char *version; /* "" when absent */
	char *code;
	size_t code_len;
	char *stdin_data;
	size_t stdin_len;
	char **args;
	size_t nargs;
};

/* Checks the request JSON against its table of fields (types, sizes). 0, or -1 with a
 * message for people in err; req needs execution_request_free() either way. */
int execution_parse(const char *json, struct execution_request *req, char *err, size_t errlen);
void execution_request_free(struct execution_request *req);

/* What an execution needs; read-only configuration shared by the job threads. */
struct execution_env {
	const struct sandbox *sandbox;	 /* local backend; NULL with Piston */
	const struct runtimes *runtimes; /* local backend */
	struct sandbox_limits limits;
	const char *piston_url;		 /* non-NULL: Piston backend */
	long piston_timeout_ms;
	struct piston_limits piston_limits;
};

/* A queue_handler's run function for kind "execution"; ctx is a struct execution_env. */
enum queue_outcome execution_run(void *ctx, struct rds *r, const struct queue_job *job,
				 const volatile sig_atomic_t *cancel, char **result_json,
				 char *err, size_t errlen);

#endif

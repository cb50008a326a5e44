/* fuzz_execution: libFuzzer target for an execution job's request as the worker reads it
 * from the queue (execution_parse, queue-worker/execution.c; README.md; `make fuzz`). The
 * API checks the request first, but anything that can write Redis can enqueue, so the worker
 * checks again.
 *
 * Laws (a break aborts): a refusal says why; an accepted request has a language of at most
 * 32 bytes, a version of at most 32, code and stdin within the sandbox's bounds with their
 * lengths right, at most SANDBOX_ARGS_MAX arguments of at most 4096 bytes each, and a
 * NULL after the last; either way everything is freed (the leak check). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../queue-worker/execution.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *json = fuzz_str(data, size);
	if (!json)
		return 0;
	struct execution_request req;
	char err[256] = "";
	if (execution_parse(json, &req, err, sizeof err) < 0) {
		if (!err[0])
			__builtin_trap();
	} else {
		if (!req.language || strlen(req.language) > 32 || !req.version ||
		    strlen(req.version) > 32 || !req.code || strlen(req.code) != req.code_len ||
		    req.code_len > SANDBOX_CODE_MAX || !req.stdin_data ||
		    strlen(req.stdin_data) != req.stdin_len || req.stdin_len > SANDBOX_STDIN_MAX ||
		    req.nargs > SANDBOX_ARGS_MAX || (req.nargs && !req.args) ||
		    (req.args && req.args[req.nargs]))
			__builtin_trap();
		for (size_t i = 0; i < req.nargs; i++)
			if (!req.args[i] || strlen(req.args[i]) > 4096)
				__builtin_trap();
	}
	execution_request_free(&req);
	free(json);
	return 0;
}

#include "execution.h"

#include "log.h"
#include "errbuf.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARG_MAX_BYTES 4096

enum field_type { F_STRING, F_STRINGS };

/* The request's fields: the API checks them already; the worker checks again because the
 * queue is an edge too (anything that can write Redis can enqueue). */
static const struct field {
	const char *name;
	enum field_type type;
	int required;
	size_t max; /* bytes of a string; items of an array */
	size_t offset;
} fields[] = {
	{"language", F_STRING, 1, 32, offsetof(struct execution_request, language)},
	{"version", F_STRING, 0, 32, offsetof(struct execution_request, version)},
	{"code", F_STRING, 0, SANDBOX_CODE_MAX, offsetof(struct execution_request, code)},
	{"stdin", F_STRING, 0, SANDBOX_STDIN_MAX, offsetof(struct execution_request, stdin_data)},
	{"args", F_STRINGS, 0, SANDBOX_ARGS_MAX, offsetof(struct execution_request, args)},
};

int execution_parse(const char *json, struct execution_request *req, char *err, size_t errlen)
{
	memset(req, 0, sizeof *req);
	cJSON *o = cJSON_Parse(json ? json : "");
	int rc = -1;
	if (!cJSON_IsObject(o)) {
		errbuf_set(err, errlen, "invalid request: not a JSON object");
		goto out;
	}
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		const struct field *f = &fields[i];
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->name);
		if (!v || cJSON_IsNull(v)) {
			if (f->required) {
				errbuf_set(err, errlen, "invalid request: %s is missing", f->name);
				goto out;
			}
			continue;
		}
		if (f->type == F_STRING) {
			if (!cJSON_IsString(v) || strlen(v->valuestring) > f->max) {
				errbuf_set(err, errlen, "invalid request: %s must be a string of at most %zu bytes",
					f->name, f->max);
				goto out;
			}
			char *s = strdup(v->valuestring);
			if (!s)
				goto oom;
			*(char **)((char *)req + f->offset) = s;
			continue;
		}
		size_t n = cJSON_IsArray(v) ? (size_t)cJSON_GetArraySize(v) : 0;
		if (!cJSON_IsArray(v) || n > f->max) {
			errbuf_set(err, errlen, "invalid request: %s must be an array of at most %zu strings",
				f->name, f->max);
			goto out;
		}
		req->args = calloc(n + 1, sizeof *req->args);
		if (!req->args)
			goto oom;
		const cJSON *a;
		cJSON_ArrayForEach(a, v)
		{
			if (!cJSON_IsString(a) || strlen(a->valuestring) > ARG_MAX_BYTES) {
				errbuf_set(err, errlen, "invalid request: args must be strings of at most %d bytes",
					ARG_MAX_BYTES);
				goto out;
			}
			if (!(req->args[req->nargs++] = strdup(a->valuestring)))
				goto oom;
		}
	}
	if ((!req->version && !(req->version = strdup(""))) || (!req->code && !(req->code = strdup(""))) ||
	    (!req->stdin_data && !(req->stdin_data = strdup(""))))
		goto oom;
	req->code_len = strlen(req->code);
	req->stdin_len = strlen(req->stdin_data);
	rc = 0;
	goto out;
oom:
	errbuf_set(err, errlen, "out of memory");
out:
	cJSON_Delete(o);
	return rc;
}

void execution_request_free(struct execution_request *req)
{
	free(req->language);
	free(req->version);
	free(req->code);
	free(req->stdin_data);
	for (size_t i = 0; i < req->nargs; i++)
		free(req->args[i]);
	free(req->args);
	memset(req, 0, sizeof *req);
}

static enum queue_outcome run_local(const struct execution_env *env,
				    const struct execution_request *rq,
				    const volatile sig_atomic_t *cancel, char **result_json,
				    char *err, size_t errlen)
{
	const struct runtime *rt = runtimes_find(env->runtimes, rq->language, rq->version);
	if (!rt) {
		const struct runtime *any = runtimes_find(env->runtimes, rq->language, NULL);
		if (any)
			errbuf_set(err, errlen, "%s %s is not installed (this worker has %s %s)",
				rq->language, rq->version, any->language, any->version);
		else
			errbuf_set(err, errlen, "no runtime for \"%s\" is installed", rq->language);
		return QUEUE_FAILED;
	}
	struct sandbox_request sr = {
		.code = rq->code,
		.code_len = rq->code_len,
		.stdin_data = rq->stdin_data,
		.stdin_len = rq->stdin_len,
		.args = (const char *const *)rq->args,
		.nargs = rq->nargs,
	};
	struct sandbox_result res;
	char why[256];
	if (sandbox_run(env->sandbox, rt, &sr, &env->limits, cancel, &res, why, sizeof why) < 0) {
		log_error("sandbox: %s", why);
		errbuf_set(err, errlen, "the sandbox failed: %s", why);
		sandbox_result_free(&res);
		return QUEUE_FAILED;
	}
	enum queue_outcome o = QUEUE_FINISHED;
	if (res.status == SANDBOX_CANCELLED) {
		o = QUEUE_REQUEUE;
	} else if (!(*result_json = sandbox_result_json(&res, rt))) {
		errbuf_set(err, errlen, "out of memory");
		o = QUEUE_FAILED;
	}
	sandbox_result_free(&res);
	return o;
}

static enum queue_outcome run_piston(const struct execution_env *env,
				     const struct execution_request *rq,
				     const volatile sig_atomic_t *cancel, char **result_json,
				     char *err, size_t errlen)
{
	struct piston_request pr = {
		.language = rq->language,
		.version = rq->version,
		.code = rq->code,
		.stdin_data = rq->stdin_data,
		.args = (const char *const *)rq->args,
		.nargs = rq->nargs,
	};
	switch (piston_execute(env->piston_url, &pr, &env->piston_limits, env->piston_timeout_ms,
			       env->limits.output, cancel, result_json, err, errlen)) {
	case PISTON_OK:
		return QUEUE_FINISHED;
	case PISTON_CANCELLED:
		return QUEUE_REQUEUE;
	case PISTON_FAILED:
		break;
	}
	return QUEUE_FAILED;
}

enum queue_outcome execution_run(void *ctx, struct rds *r, const struct queue_job *job,
				 const volatile sig_atomic_t *cancel, char **result_json,
				 char *err, size_t errlen)
{
	const struct execution_env *env = ctx;
	struct execution_request rq;
	enum queue_outcome o = QUEUE_FAILED;
	if (execution_parse(job->request, &rq, err, errlen) == 0)
		o = env->piston_url ? run_piston(env, &rq, cancel, result_json, err, errlen)
				    : run_local(env, &rq, cancel, result_json, err, errlen);
	execution_request_free(&rq);
	return o;
}

/* Executions and jobs: the API's side of the queue (docs/INTERNALS.md). A job is a hash
 * cc:{jobs}:job:{id} in its room's line of the fair scheduler, admitted (or refused with 429) and
 * created with its `queued` room event in one step (lib/jobstate.h); the scheduler hands it
 * to a worker through the stream cc:{jobs}:stream. DELETE /api/jobs/{id} cancels it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "cfg.h"
#include "handlers.h"
#include "jobstate.h"
#include "store_job.h"
#include "store_room.h"
#include "lang.h"
#include "log.h"
#include "ratelimit.h"
#include "rnd.h"
#include "query.h"
#include "valid.h"

#define JOB_ID_LEN 16
#define JOB_TTL_S (7 * 86400)
/* code and stdin are bounded in bytes (docs/API.md: "code and stdin 64 KiB each"), checked
 * after the fields' own checks: code over it is 413 code_too_large whether the body gave it
 * or it came from the room's document, stdin over it 400 invalid_request. The fields' bound
 * in code points is only the body's (1 MiB): every over-long text is counted in bytes. */
#define CODE_MAX (64 * 1024)
#define STDIN_MAX (64 * 1024)
#define TEXT_FIELD_MAX (1024 * 1024)
#define ARGS_MAX 32
#define ARG_MAX_LEN 1024
/* admission defaults (README.md: JOB_ROOM_BACKLOG_MAX, JOB_USER_BACKLOG_MAX, JOB_QUEUE_MAX) */
/* the Retry-After of a full queue: a backlog drains at the workers' pace, a few jobs a
 * second per worker thread */
#define JOBS_RETRY_AFTER_S 5
#define STR_(x) #x
#define STR(x) STR_(x)
#define RUNS_KEEP_TEXT STR(JOBSTATE_RUNS_KEEP)

/* a run's request_id names its job this long (docs/API.md, "Sending a run again is safe") */
#define REQUEST_ID_TTL_S 600
#define REQUEST_ID_MAX 64

enum { F_LANGUAGE, F_VERSION, F_CODE, F_STDIN, F_ARGS, F_REQUEST_ID, F_COUNT };
static const struct valid_field exec_fields[F_COUNT] = {
	{"language", VALID_STRING, VALID_SINGLE_LINE, 1, 32, NULL, NULL},
	{"version", VALID_STRING, VALID_SINGLE_LINE, 1, 32, NULL, NULL},
	/* any character (a form feed in C or Python source, bytes a program reads): the
	 * sandbox takes them as they are, as it does from the room's document; NUL is refused
	 * with the JSON (\u0000) */
	{"code", VALID_STRING, 0, 0, TEXT_FIELD_MAX, NULL, NULL},
	{"stdin", VALID_STRING, 0, 0, TEXT_FIELD_MAX, NULL, NULL},
	{"args", VALID_ANY, 0, 0, 0, NULL, NULL},
	/* part of a Redis key's name (RK_JOB_REQUEST) */
	{"request_id", VALID_STRING, VALID_SINGLE_LINE, 1, REQUEST_ID_MAX, NULL, valid_plain_name},
};

static void add_extra(cJSON *o, const char *event_extra);
static void add_created(cJSON *o, const char *created_at);

/* The runtime {language, version} the worker announced for a name or alias, as a new
 * cJSON object (caller frees), or NULL. `want` may be NULL (any version). */
static cJSON *find_runtime(cJSON *runtimes, const char *name, const char *want)
{
	cJSON *rt;
	cJSON_ArrayForEach(rt, runtimes)
	{
		const char *lang = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rt, "language"));
		const char *ver = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rt, "version"));
		if (!lang || !ver)
			continue;
		int match = strcmp(lang, name) == 0;
		cJSON *al;
		cJSON_ArrayForEach(al, cJSON_GetObjectItemCaseSensitive(rt, "aliases"))
		{
			if (cJSON_IsString(al) && strcmp(al->valuestring, name) == 0)
				match = 1;
		}
		if (!match)
			continue;
		size_t wl = want ? strlen(want) : 0;
		if (want && strcmp(want, "*") != 0 && strcmp(want, "latest") != 0 &&
		    !(strncmp(ver, want, wl) == 0 && (ver[wl] == '\0' || ver[wl] == '.')))
			continue;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "language", lang);
		cJSON_AddStringToObject(o, "version", ver);
		return o;
	}
	return NULL;
}

/* The installed runtimes as the worker announced them (caller frees), or NULL answered. */
static cJSON *load_runtimes(struct api_ctx *c)
{
	cJSON *arr;
	enum store_status st = store_runtimes(c->store, &arr);
	if (st == STORE_NOT_FOUND)
		api_fail(c, STORE_UNAVAILABLE, "no_worker", "%s", c->store->msg);
	else if (st != STORE_OK)
		api_fail_why(c, st);
	return st == STORE_OK ? arr : NULL;
}

void h_runtimes(struct api_ctx *c)
{
	cJSON *arr = load_runtimes(c);
	if (!arr)
		return;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "runtimes", arr);
	api_json(c, 200, o);
}

/* A string member of the request, "" when it has none. */
static const char *lang_or(const cJSON *request, const char *name)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(request, name));
	return v ? v : "";
}

/* 409: the request id names a run made for another request (rq->first). */
static void request_id_reused(struct api_ctx *c, const struct jobs_request *rq)
{
	api_error(c, 409, "request_id_reused",
		  "request_id %s already named another run in this room (job %s) in the "
		  "last %d minutes; send a new request_id for a new run",
		  rq->id, rq->first.id, REQUEST_ID_TTL_S / 60);
}

/* Admission bounds: JOB_ROOM_BACKLOG_MAX, JOB_USER_BACKLOG_MAX, JOB_QUEUE_MAX (README.md),
 * read and checked once at start (api_config_load). */
int jobs_enqueue(struct api_ctx *c, const char *room, const char *kind, const char *event_kind,
		 cJSON *request, char id_out[JOB_ID_LEN + 1], struct jobs_request *rq,
		 const char *run_right)
{
	char *req = cJSON_PrintUnformatted(request);
	char *data = NULL, *extra = NULL;
	int is_run = !strcmp(kind, "execution");
	/* who started it (and a run's stdin, bounded), carried by every event of the job */
	const char *stdin_text =
		is_run ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(request, "stdin")) : NULL;
	if (is_run && !stdin_text)
		stdin_text = "";
	int rc = -1;
	enum event_type ev;
	if (event_type_parse(kind, &ev) < 0) { /* a job kind is the type of its events */
		api_error(c, 500, "internal", "job kind %s has no events", kind);
		goto out;
	}
	if (!req || !(extra = jobstate_event_extra(c->user.user_id, c->user.username, stdin_text)) ||
	    (!id_out[0] && rnd_id(id_out, JOB_ID_LEN) < 0) ||
	    !(data = jobstate_event_json(id_out, event_kind, job_status_name(JOB_QUEUED), NULL,
					 NULL))) {
		api_error(c, 500, "internal", "out of memory");
		goto out;
	}
	struct rds *rd;
	enum store_status st = store_redis(c->store, &rd);
	if (st != STORE_OK) {
		api_fail(c, st, NULL, NULL);
		goto out;
	}
	char uid[32], now[32], err[256];
	snprintf(uid, sizeof uid, "%lld", c->user.user_id);
	snprintf(now, sizeof now, "%lld", (long long)time(NULL));
	/* event_kind is kept so the scheduler's place-in-line events carry it like this one */
	const char *fields[] = {"kind",	    kind, "room",     room, "user",	  uid,
				"username", c->user.username, "request", req, "attempts", "0",
				"created_at", now, "event_kind", event_kind ? event_kind : "",
				"event_extra", extra,
				/* a run's runtime, for the room's list of runs */
				"language", is_run ? lang_or(request, "language") : "",
				"version", is_run ? lang_or(request, "version") : ""};
	struct jobstate_new n = {
		.job_id = id_out,
		.room = room,
		.user = uid,
		.event_type = ev,
		.event_data = data,
		.fields = fields,
		.nfields = sizeof fields / sizeof fields[0] / 2,
		.ttl_s = JOB_TTL_S,
		.room_max = c->cfg->job_room_backlog_max,
		.user_max = c->cfg->job_user_backlog_max,
		.queue_max = c->cfg->job_queue_max,
		.request_id = rq ? rq->id : NULL,
		.request_digest = rq ? rq->digest : NULL,
		.request_ttl_s = REQUEST_ID_TTL_S,
		.first = rq ? &rq->first : NULL,
		.run_right = run_right,
	};
	long pos = 0, backlog = 0;
	/* admission, the hash, the room's queued event, then the job in its room's line (and
	 * in the stream when a worker is free), in one script: no worker can take the job
	 * (and announce running) before the room has heard queued */
	int admitted = jobstate_create(rd, &n, &pos, &backlog, err, sizeof err);
	switch (admitted) {
	case JOBSTATE_ADMITTED:
		rc = 0;
		break;
	case JOBSTATE_REPEATED:
		rc = 1;
		break;
	/* the script wrote nothing for these: JOBS_REFUSED, so that what the caller counted
	 * against the user's per-minute limit is given back (told to try again in a few
	 * seconds, a user must not run out of runs having run nothing) */
	case JOBSTATE_REUSED:
		request_id_reused(c, rq);
		rc = JOBS_REFUSED;
		break;
	case JOBSTATE_ROOM_FULL:
		api_too_many(c, JOBS_RETRY_AFTER_S, "room_queue_full",
			     "this room has %ld jobs waiting (at most %ld)", backlog, n.room_max);
		rc = JOBS_REFUSED;
		break;
	case JOBSTATE_USER_FULL:
		api_too_many(c, JOBS_RETRY_AFTER_S, "user_queue_full",
			     "you have %ld jobs waiting (at most %ld)", backlog, n.user_max);
		rc = JOBS_REFUSED;
		break;
	case JOBSTATE_RIGHT_CHANGED: /* nothing written, nothing answered: the caller looks */
		rc = JOBS_RIGHT_CHANGED;
		break;
	case JOBSTATE_QUEUE_FULL:
		api_too_many(c, JOBS_RETRY_AFTER_S, "queue_full",
			     "the server has %ld jobs waiting (at most %ld)", backlog, n.queue_max);
		rc = JOBS_REFUSED;
		break;
	default:
		log_warn("job %s: %s", id_out, err);
		api_fail(c, store_redis_failed(c->store), NULL, "the queue is unavailable");
		break;
	}
out:
	free(extra);
	free(data);
	free(req);
	return rc;
}

/* The digest a request_id's mark keeps (hex, 32 digits): the SHA-256 (first 16 bytes) of
 * the run's fields as the body gave them, in a fixed order, so a repeat compares equal
 * whatever its JSON spacing or member order. Fields left out count as left out: a body
 * without code is the same request again even if the room's document changed meanwhile.
 * 0, or -1 out of memory. */
static int request_digest(const struct valid_value *v, char hex[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	cJSON *o = cJSON_CreateObject();
	int whole = o != NULL; /* a field lost to memory would change the digest */
	for (int i = F_LANGUAGE; whole && i <= F_ARGS; i++) {
		if (!v[i].present)
			continue;
		cJSON *dup = cJSON_Duplicate(v[i].item, 1);
		whole = dup && cJSON_AddItemToObject(o, exec_fields[i].name, dup);
		if (dup && !whole)
			cJSON_Delete(dup);
	}
	char *text = whole ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	int ok = text && EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL) == 1 &&
		 mdlen >= 16;
	free(text);
	if (!ok)
		return -1;
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* 202 {job:{id, status, language, version}, repeated?} with its Location. */
static void answer_run(struct api_ctx *c, const char *id, const char *status, const char *lang,
		       const char *ver, int repeated)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *job = cJSON_AddObjectToObject(o, "job");
	cJSON_AddStringToObject(job, "id", id);
	cJSON_AddStringToObject(job, "status", status);
	cJSON_AddStringToObject(job, "language", lang);
	cJSON_AddStringToObject(job, "version", ver);
	if (repeated)
		cJSON_AddTrueToObject(o, "repeated");
	api_job_accepted(c, id, o);
}

/* 413: the code (the body's or the room's document) is over CODE_MAX bytes. */
static void code_too_large(struct api_ctx *c, size_t bytes)
{
	api_error(c, 413, "code_too_large", "the code is over %d KiB (it has %zu bytes)",
		  CODE_MAX / 1024, bytes);
}

/* The caller's run-right mark in the room (lib/jobstate.h), read before the right itself:
 * 0, or -1 answered (503). */
static int run_right_read(struct api_ctx *c, const char *room, char out[JOBSTATE_RUN_RIGHT_LEN + 2])
{
	struct rds *rd;
	char uid[32], err[256];
	snprintf(uid, sizeof uid, "%lld", c->user.user_id);
	enum store_status st = store_redis(c->store, &rd);
	if (st == STORE_OK && jobstate_run_right_read(rd, room, uid, out, err, sizeof err) == 0)
		return 0;
	if (st == STORE_OK) {
		log_warn("room %s: the run-right mark of user %s could not be read: %s", room, uid,
			 err);
		st = store_redis_failed(c->store);
	}
	api_fail(c, st, NULL, "the queue is unavailable");
	return -1;
}

/* How often a run is tried again when a change of someone's right to run code in the room
 * came between its reads and its creation (JOBS_RIGHT_CHANGED) and the right, read again,
 * still holds (the member was let back in meanwhile) */
#define RUN_RIGHT_TRIES 3

void h_execution_create(struct api_ctx *c)
{
	struct valid_value v[F_COUNT];
	char role[16] = "", lang[33] = "", digest[33] = "";
	if (api_require_user(c) < 0 || api_body_fields(c, 1, exec_fields, F_COUNT, v) < 0)
		return;
	if (v[F_CODE].present && v[F_CODE].len > CODE_MAX) {
		code_too_large(c, v[F_CODE].len);
		return;
	}
	if (v[F_STDIN].present && v[F_STDIN].len > STDIN_MAX) {
		api_error(c, 400, "invalid_request", "stdin is over %d KiB (it has %zu bytes)",
			  STDIN_MAX / 1024, v[F_STDIN].len);
		return;
	}
	const cJSON *args = v[F_ARGS].item;
	if (v[F_ARGS].present) {
		if (!cJSON_IsArray(args) || cJSON_GetArraySize(args) > ARGS_MAX) {
			api_error(c, 400, "invalid_request", "args must be an array of at most %d strings",
				  ARGS_MAX);
			return;
		}
		const cJSON *a;
		cJSON_ArrayForEach(a, args)
		{
			const char *why;
			if (!cJSON_IsString(a) ||
			    valid_text(a->valuestring, strlen(a->valuestring), 0, ARG_MAX_LEN,
				       VALID_SINGLE_LINE, &why) < 0) {
				api_error(c, 400, "invalid_request",
					  "args must be strings of at most %d characters, one line",
					  ARG_MAX_LEN);
				return;
			}
		}
	}
	struct jobs_request rq = {.id = v[F_REQUEST_ID].present ? v[F_REQUEST_ID].s : NULL,
				  .digest = digest};
	if (rq.id && request_digest(v, digest) < 0) {
		api_error(c, 500, "internal", "out of memory");
		return;
	}
	/* the mark before the right (lib/jobstate.h): the right is read from PostgreSQL (the
	 * language asks for it: no cache), where a change that takes it away is made before its
	 * new mark */
	char right[JOBSTATE_RUN_RIGHT_LEN + 2];
	if (run_right_read(c, c->params[0], right) < 0 ||
	    room_access_edit(c, c->params[0], role, lang) < 0)
		return;
	/* a repeat is answered before anything else is looked at: as the first request was,
	 * whatever changed since (the runtimes, the document's size), and not counted as a
	 * new run. Copies racing past this look are settled by the job's creation script,
	 * which claims the id atomically; a run counted there that turns out to be a repeat
	 * is taken back below. */
	char counted[RATELIMIT_MEMBER_LEN + 1] = "", uid[32], err[256];
	snprintf(uid, sizeof uid, "%lld", c->user.user_id);
	struct rds *rd;
	if (rq.id && store_redis(c->store, &rd) == STORE_OK) {
		int prior = jobstate_request_repeat(rd, c->params[0], uid, rq.id, rq.digest,
						    &rq.first, err, sizeof err);
		if (prior == JOBSTATE_REPEATED) {
			answer_run(c, rq.first.id, rq.first.status, rq.first.language,
				   rq.first.version, 1);
			return;
		}
		if (prior == JOBSTATE_REUSED) {
			request_id_reused(c, &rq);
			return;
		}
		if (prior < 0) /* the creation script still decides */
			log_warn("request id of user %s: %s", uid, err);
	}
	cJSON *runtimes = load_runtimes(c);
	if (!runtimes)
		return;
	const char *ver_want = v[F_VERSION].present ? v[F_VERSION].s : NULL;
	const char *want_lang = v[F_LANGUAGE].present ? v[F_LANGUAGE].s : lang;
	cJSON *rt = find_runtime(runtimes, want_lang, ver_want);
	if (!rt && lang_canonical(want_lang)) /* "py" for a runtime announced as "python" */
		rt = find_runtime(runtimes, lang_canonical(want_lang), ver_want);
	cJSON_Delete(runtimes);
	if (!rt) {
		api_error(c, 400, "unknown_runtime",
			  "no installed runtime for %s%s%s; GET /api/runtimes lists them", want_lang,
			  ver_want ? " " : "", ver_want ? ver_want : "");
		return;
	}
	/* the code defaults to the room's document */
	struct doc_state d = {0};
	if (!v[F_CODE].present && doc_read(c, c->params[0], &d) < 0) {
		cJSON_Delete(rt);
		return;
	}
	if (!v[F_CODE].present && d.content_len > CODE_MAX) {
		code_too_large(c, d.content_len);
		doc_state_free(&d);
		cJSON_Delete(rt);
		return;
	}
	if (api_user_quota_reserve(c, "exec", c->cfg->exec_limit, "runs", counted) < 0) {
		doc_state_free(&d);
		cJSON_Delete(rt);
		return;
	}
	cJSON_AddStringToObject(rt, "code", v[F_CODE].present ? v[F_CODE].s : d.content);
	cJSON_AddStringToObject(rt, "stdin", v[F_STDIN].present ? v[F_STDIN].s : "");
	cJSON_AddItemToObject(rt, "args",
			      v[F_ARGS].present ? cJSON_Duplicate(args, 1) : cJSON_CreateArray());
	doc_state_free(&d);
	char id[JOB_ID_LEN + 1] = "";
	int rc;
	for (int tries = 1;; tries++) {
		rc = jobs_enqueue(c, c->params[0], "execution", NULL, rt, id, rq.id ? &rq : NULL,
				  right);
		if (rc != JOBS_RIGHT_CHANGED)
			break;
		/* the right may be gone: read again (mark, then right), and a refusal is
		 * answered as a request a moment later would be. Nothing was made. */
		char role2[16], lang2[33];
		rc = JOBS_REFUSED;
		if (run_right_read(c, c->params[0], right) < 0 ||
		    room_access_edit(c, c->params[0], role2, lang2) < 0)
			break;
		if (tries == RUN_RIGHT_TRIES) {
			/* neither store failed: not counted as an outage (api_fail) */
			api_error(c, 503, "busy",
				  "your right to run code in this room kept changing while the run "
				  "was being made; send it again");
			break;
		}
	}
	/* a repeat made nothing new, nor did a refusal; a failure (-1) keeps its count: the
	 * job may exist (a failed WAIT) */
	if ((rc == 1 || rc == JOBS_REFUSED) && counted[0])
		api_user_quota_release(c, "exec", counted);
	if (rc == 0)
		answer_run(c, id, job_status_name(JOB_QUEUED),
			   cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rt, "language")),
			   cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rt, "version")), 0);
	else if (rc == 1)
		answer_run(c, rq.first.id, rq.first.status, rq.first.language, rq.first.version, 1);
	cJSON_Delete(rt);
}

/* 404 job_not_found for the job named by c->params[0]. */
static void job_not_found(struct api_ctx *c)
{
	api_error(c, 404, "job_not_found", "no job %s (jobs are kept for 7 days)", c->params[0]);
}

/* The job named by c->params[0] (caller store_job_free()s): 0, or -1 answered (503 when
 * Redis failed, 404 when there is no such job). */
static int job_load(struct api_ctx *c, struct store_job *j)
{
	enum store_status st = store_job_load(c->store, c->params[0], j);
	if (st == STORE_OK)
		return 0;
	if (st == STORE_NOT_FOUND)
		job_not_found(c);
	else
		api_fail_why(c, st);
	return -1;
}

/* The caller's role in the job's room: 0, or -1 answered. A job is visible to whoever may
 * read its room; anyone else (a stranger to a private room, a removed member; the room gone)
 * gets 404 job_not_found like for an unknown job, so that a job id confirms nothing to them
 * (docs/API.md). */
static int job_room_access(struct api_ctx *c, const char *room, char role[16])
{
	enum store_refusal why;
	enum store_status st =
		store_room_access(c->store, room, c->user.user_id, 0, role, NULL, &why);
	if (st == STORE_OK)
		return 0;
	if (st == STORE_NOT_FOUND || st == STORE_FORBIDDEN)
		job_not_found(c);
	else
		api_fail_why(c, st);
	return -1;
}

/* A stored result and the job's other fields (a few KiB: stdin's first 1,024 bytes, the
 * error, the user) must fit one answer. */
_Static_assert(JOB_RESULT_MAX + 1024 * 1024 <= HTTP_RESP_BODY_MAX,
	       "a job's largest result does not fit GET /api/jobs/{id}'s answer");

void h_job_get(struct api_ctx *c)
{
	struct store_job j;
	if (api_require_user(c) < 0 || job_load(c, &j) < 0)
		return;
	char room[API_ID_MAX + 1], role[16];
	snprintf(room, sizeof room, "%s", j.room);
	if (job_room_access(c, room, role) < 0) {
		store_job_free(&j);
		return;
	}
	cJSON *job = cJSON_CreateObject();
	cJSON_AddStringToObject(job, "id", c->params[0]);
	cJSON_AddStringToObject(job, "status", j.status);
	if (j.kind)
		cJSON_AddStringToObject(job, "kind", j.kind);
	cJSON_AddStringToObject(job, "room", room);
	if (j.result && strlen(j.result) > JOB_RESULT_MAX) {
		/* a worker stores at most JOB_RESULT_MAX; a bigger result (stored by a worker
		 * from before that bound) might not fit the answer: the job is answered without
		 * it, as the list of runs does, rather than with a 500 */
		cJSON_AddTrueToObject(job, "result_omitted");
	} else if (j.result) {
		cJSON *res = cJSON_Parse(j.result);
		if (res)
			cJSON_AddItemToObject(job, "result", res);
	}
	if (j.error && j.error[0])
		cJSON_AddStringToObject(job, "error", j.error);
	add_created(job, j.created_at);
	add_extra(job, j.event_extra); /* who started it; a run's stdin, bounded */
	/* a job waiting in its room's line: its place, as its queued events give it */
	long pos;
	char err[256];
	enum job_status js;
	struct rds *rd;
	if (job_status_parse(j.status, &js) == 0 && js == JOB_QUEUED &&
	    store_redis(c->store, &rd) == STORE_OK &&
	    jobstate_position(rd, c->params[0], room, &pos, err, sizeof err) == 1)
		cJSON_AddNumberToObject(job, "position", (double)pos);
	store_job_free(&j);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "job", job);
	api_json(c, 200, o);
}

void h_job_cancel(struct api_ctx *c)
{
	struct store_job j;
	if (api_require_user(c) < 0 || api_body_none(c) < 0 || job_load(c, &j) < 0)
		return;
	char room[API_ID_MAX + 1], role[16], kind[32] = "execution", ekind[32] = "", uid[32];
	snprintf(room, sizeof room, "%s", j.room);
	if (j.kind && j.kind[0])
		snprintf(kind, sizeof kind, "%s", j.kind);
	if (j.event_kind)
		snprintf(ekind, sizeof ekind, "%s", j.event_kind);
	snprintf(uid, sizeof uid, "%lld", c->user.user_id);
	int mine = j.user && !strcmp(j.user, uid);
	store_job_free(&j);
	struct rds *rd;
	/* who cannot read the room learns nothing: 404 job_not_found, as for no such job */
	if (job_room_access(c, room, role) < 0)
		return;
	if (!mine && strcmp(role, "owner") != 0) {
		api_error(c, 403, "forbidden", "only who started a job or the room's owner may cancel it");
		return;
	}
	char why[128], cur[16], err[256];
	snprintf(why, sizeof why, "cancelled by %s", c->user.username);
	enum event_type ev = EV_EXECUTION; /* a job's events have its kind as their type */
	if (event_type_parse(kind, &ev) < 0)
		log_warn("job %s: kind %s is no event type; its events go out as execution",
			 c->params[0], kind);
	char *data = jobstate_event_json(c->params[0], ekind[0] ? ekind : NULL,
					 job_status_name(JOB_CANCELLED), NULL, why);
	if (!data) {
		api_error(c, 500, "internal", "out of memory");
		return;
	}
	/* the access check may have reopened the connection: ask the store for the live one */
	int rc = -1;
	snprintf(err, sizeof err, "%s", "redis: no connection");
	if (store_redis(c->store, &rd) == STORE_OK)
		rc = jobstate_cancel(rd, c->params[0], room, ev, data, why, cur, sizeof cur, err,
				     sizeof err);
	free(data);
	if (rc < 0) {
		log_warn("job %s: %s", c->params[0], err);
		api_fail(c, store_redis_failed(c->store), NULL, "the queue is unavailable");
		return;
	}
	if (rc == 0 && !cur[0]) {
		job_not_found(c);
		return;
	}
	if (rc == 0) {
		api_error(c, 409, "job_over", "job %s is already %s", c->params[0], cur);
		return;
	}
	log_info("job %s (%s, room %s): cancelled by user %s while %s", c->params[0], kind, room,
		 uid, cur);
	cJSON *job = cJSON_CreateObject();
	cJSON_AddStringToObject(job, "id", c->params[0]);
	cJSON_AddStringToObject(job, "status", job_status_name(JOB_CANCELLED));
	cJSON_AddStringToObject(job, "kind", kind);
	cJSON_AddStringToObject(job, "room", room);
	cJSON_AddStringToObject(job, "error", why);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "job", job);
	api_json(c, 200, o);
}

/* GET /api/rooms/{id}/executions?limit=N: the limit, from 1 to JOBSTATE_RUNS_KEEP, default
 * RUNS_LIMIT_DEFAULT. Only digits are taken: a sign, a space, an escape, an empty or a
 * repeated `limit` is refused (the value is not decoded; the name is, query_find, and a name
 * with a malformed escape is refused too). 0 with *limit, or -1 (why in *why). Other
 * parameters are ignored. */
#define RUNS_LIMIT_DEFAULT 10
int jobs_parse_limit(const char *query, int *limit, const char **why)
{
	const char *v;
	size_t vn, i;
	int count;
	long val = 0;
	*limit = RUNS_LIMIT_DEFAULT;
	/* names are compared percent-decoded (query_find): `li%6Dit=5` is the limit too */
	if (query_find(query, "limit", &v, &vn, &count, why) < 0)
		return -1;
	if (count == 0)
		return 0;
	if (count > 1) {
		*why = "limit is given twice";
		return -1;
	}
	for (i = 0; i < vn && v[i] >= '0' && v[i] <= '9' && val <= JOBSTATE_RUNS_KEEP; i++)
		val = val * 10 + (v[i] - '0');
	if (vn == 0 || i < vn || val < 1 || val > JOBSTATE_RUNS_KEEP) {
		*why = "limit must be a whole number from 1 to " RUNS_KEEP_TEXT;
		return -1;
	}
	*limit = (int)val;
	return 0;
}

/* Who started a job (user, and for a run stdin_given, stdin, stdin_truncated: the members
 * every event of the job carries) added to o; nothing for a job from before they were kept. */
/* A job's created_at (Unix seconds, as stored) for the clients that read it, and
 * submitted_at: the same moment in the API's one timestamp format (docs/API.md
 * "Timestamps"). Nothing when the job has no time. */
static void add_created(cJSON *o, const char *created_at)
{
	if (!created_at || !created_at[0])
		return;
	cJSON_AddNumberToObject(o, "created_at", strtod(created_at, NULL));
	char iso[40];
	if (api_iso_time(strtoll(created_at, NULL, 10) * 1000, iso) == 0)
		cJSON_AddStringToObject(o, "submitted_at", iso);
}

static void add_extra(cJSON *o, const char *event_extra)
{
	cJSON *extra = jobstate_event_extra_parse(event_extra), *m;
	cJSON_ArrayForEach(m, extra)
	{
		if (m->string && !cJSON_GetObjectItemCaseSensitive(o, m->string))
			cJSON_AddItemToObject(o, m->string, cJSON_Duplicate(m, 1));
	}
	cJSON_Delete(extra);
}

/* One run of the room's list: the job's answer of GET /api/jobs/{id} plus who started it,
 * the stdin (bounded) and its runtime and times. */
static cJSON *run_json(const struct store_job *j)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "id", j->id);
	cJSON_AddStringToObject(o, "status", j->status);
	cJSON_AddStringToObject(o, "kind", j->kind ? j->kind : "execution");
	cJSON_AddStringToObject(o, "room", j->room);
	if (j->language && j->language[0])
		cJSON_AddStringToObject(o, "language", j->language);
	if (j->version && j->version[0])
		cJSON_AddStringToObject(o, "version", j->version);
	add_extra(o, j->event_extra);
	if (j->result) {
		cJSON *res = cJSON_Parse(j->result);
		if (res)
			cJSON_AddItemToObject(o, "result", res);
	}
	if (j->error && j->error[0])
		cJSON_AddStringToObject(o, "error", j->error);
	add_created(o, j->created_at); /* as GET /api/jobs/{id} gives them */
	const char *times[][2] = {{"started_at", j->started_at}, {"finished_at", j->finished_at}};
	for (size_t i = 0; i < sizeof times / sizeof times[0]; i++)
		if (times[i][1] && times[i][1][0])
			cJSON_AddNumberToObject(o, times[i][0], strtod(times[i][1], NULL));
	return o;
}

/* The bytes a room's list of runs may take (docs/API.md): well under the response buffer
 * (fcgi/http.c, 8 MiB), whatever the room's 20 runs printed (with the default output
 * limit, a result of control bytes is about 790 KB of JSON once escaped). */
#define RUNS_LIST_BUDGET (4 * 1024 * 1024)

/* Keeps the list of runs within RUNS_LIST_BUDGET: run r (with a comma before it when
 * `comma`) is counted in *used; a run whose result would take the list past the budget
 * loses its `result` and gets `"result_omitted": true` instead (GET /api/jobs/{id} has it).
 * So the list is always answered, newest first, with every run the limit asked for; the
 * results that fit are given, the newest first. 0, or -1 out of memory. */
static int run_within_budget(cJSON *r, size_t *used, int comma)
{
	char *text = cJSON_PrintUnformatted(r);
	if (!text)
		return -1;
	size_t len = strlen(text) + (comma ? 1 : 0);
	free(text);
	if (*used + len <= RUNS_LIST_BUDGET || !cJSON_HasObjectItem(r, "result")) {
		*used += len;
		return 0;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(r, "result");
	if (!cJSON_AddTrueToObject(r, "result_omitted") || !(text = cJSON_PrintUnformatted(r)))
		return -1;
	*used += strlen(text) + (comma ? 1 : 0);
	free(text);
	return 0;
}

void h_room_executions(struct api_ctx *c)
{
	int limit;
	const char *why = NULL;
	char role[16];
	if (api_require_user(c) < 0)
		return;
	if (jobs_parse_limit(c->req->query, &limit, &why) < 0) {
		api_error(c, 400, "invalid_request", "%s", why);
		return;
	}
	if (room_access_read(c, c->params[0], role) < 0)
		return;
	struct store_job *runs = NULL;
	int n = 0;
	enum store_status st = store_job_recent(c->store, c->params[0], limit, &runs, &n);
	if (st != STORE_OK) {
		api_fail_why(c, st);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = o ? cJSON_AddArrayToObject(o, "executions") : NULL;
	/* the answer's bytes so far: {"executions":[ and ]} */
	size_t used = strlen("{\"executions\":[]}");
	int ok = arr != NULL;
	for (int i = 0; i < n; i++) {
		cJSON *r = ok ? run_json(&runs[i]) : NULL;
		ok = r && run_within_budget(r, &used, i > 0) == 0 && cJSON_AddItemToArray(arr, r);
		if (!ok)
			cJSON_Delete(r);
		store_job_free(&runs[i]);
	}
	free(runs);
	if (!ok) {
		cJSON_Delete(o);
		api_error(c, 500, "internal", "out of memory");
		return;
	}
	api_json(c, 200, o);
}

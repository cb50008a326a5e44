/* The AI copilot's side in the API: POST /api/rooms/{id}/ai/hint and /ai/review.
 *
 * The API never calls a provider. It answers from the cache when it can (200, cached), joins
 * a job already under way for the same request (202, the same job id), or puts a new job of
 * kind "ai" on the queue (202); the worker (queue-worker/ai.c) answers it, fills the cache
 * and clears the pending mark. Redis keys (docs/INTERNALS.md):
 *   cc:ai:cache:{key}               the answer JSON, AICFG_CACHE_TTL_S, shared by all rooms
 *   cc:ai:asked:{room}:{key}        set by the worker when a job of that room got the answer
 *   cc:ai:pending:{room}:{key}      the id of the room's job answering it, while under way:
 *                                   the claimer picks the id first and claims with it, so a
 *                                   second identical request learns the id at once; it joins
 *                                   once that job exists (see ask()).
 * The scope is the room: its members see each other's `ai` events anyway, so telling them
 * "cached" reveals nothing, while another room must not learn that anyone asked. A request
 * whose answer only another room asked for is answered like a miss (202, a new job); the
 * worker serves the shared answer without a provider call, no sooner than that call took. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aicfg.h"
#include "clock.h"
#include "events.h"
#include "jobstate.h"
#include "store_ai.h"
#include "store_job.h"
#include "handlers.h"
#include "lang.h"
#include "log.h"
#include "ratelimit.h"
#include "rnd.h"
#include "utf8.h"
#include "valid.h"

#define AI_CODE_MAX (64 * 1024)	  /* bytes of code sent to the provider */
#define AI_QUESTION_MAX 2000	  /* characters */
#define AI_CLAIM_TTL_MS 10000	  /* a claim whose job was never created, should its writer die */
#define AI_CLAIM_ROUNDS 10	  /* marks of jobs that are over taken over at most this often */
#define AI_JOIN_WAIT_MS 1000	  /* the longest wait for a claimed job to be created: short, it
				   * holds an API process (normally a few ms) */
#define AI_JOIN_NAP_MS 50	  /* the longest pause between two looks at such a claim */
#define AI_CACHED_LIMIT_FACTOR 10 /* cached answers: a separate, looser per-minute bound */
#define AI_JOB_ID_LEN 16

enum { F_CODE, F_LANGUAGE, F_QUESTION, F_SELECTION, F_COUNT };

/* Lengths are checked by hand below, for messages that state the limit (and 413 for code). */
static const struct valid_field ai_fields[F_COUNT] = {
	[F_CODE] = {"code", VALID_STRING, VALID_TEXT, 0, 1 << 20, NULL, NULL},
	[F_LANGUAGE] = {"language", VALID_STRING, VALID_SINGLE_LINE, 1, 32, NULL, NULL},
	[F_QUESTION] = {"question", VALID_STRING, VALID_TEXT, 0, 1 << 20, NULL, NULL},
	[F_SELECTION] = {"selection", VALID_ANY, 0, 0, 0, NULL, NULL},
};

/* One request's settled values; freed by ai_ask_free(). */
struct ai_ask {
	const char *kind; /* "hint" or "review" */
	struct aicfg cfg;
	char language[33];
	char *code; /* owned */
	size_t code_len;
	long first_line;
	const char *question; /* borrowed from the body */
	long long sel_from, sel_to;
	int has_selection;
	char key[AICFG_KEY_HEX + 1];
};

static void ai_ask_free(struct ai_ask *a)
{
	free(a->code);
	a->code = NULL;
}

static int whole(double d)
{
	return d >= 0 && d <= 1e9 && d == (double)(long long)d;
}

int ai_selection_parse(struct api_ctx *c, const cJSON *sel, long long *from, long long *to)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(sel, "from");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(sel, "to");
	if (!cJSON_IsObject(sel) || !cJSON_IsNumber(f) || !cJSON_IsNumber(t) ||
	    !whole(f->valuedouble) || !whole(t->valuedouble) || f->valuedouble >= t->valuedouble) {
		api_error(c, 400, "invalid_request",
			  "selection must be {from, to}: character offsets with 0 <= from < to");
		return -1;
	}
	*from = (long long)f->valuedouble;
	*to = (long long)t->valuedouble;
	return 0;
}

int ai_selection_apply(struct api_ctx *c, char *code, size_t *len, long long sel_from,
		       long long sel_to, long *first_line)
{
	size_t from = 0, to = 0;
	*first_line = 1;
	if (utf8_offset(code, *len, (size_t)sel_from, &from) < 0 ||
	    utf8_offset(code, *len, (size_t)sel_to, &to) < 0) {
		api_error(c, 400, "invalid_selection",
			  "the selection %lld..%lld is outside the code (%zu characters)",
			  sel_from, sel_to, utf8_count(code, *len));
		return -1;
	}
	for (size_t i = 0; i < from; i++)
		if (code[i] == '\n')
			(*first_line)++;
	memmove(code, code + from, to - from);
	*len = to - from;
	code[*len] = '\0';
	return 0;
}

/* The room's language (the read access check does not fetch it). 0 or -1 answered. */
static int room_language(struct api_ctx *c, const char *room, char out[33])
{
	enum store_status st = store_room_language(c->store, room, out);
	if (st == STORE_OK)
		return 0;
	if (st == STORE_NOT_FOUND)
		api_error(c, 404, "room_not_found", "no room with id %s", room);
	else
		api_fail_why(c, st);
	return -1;
}

/* Answers a failed AI store call (lib/store_ai.h): its Redis is "the AI cache". */
static void ai_failed(struct api_ctx *c, enum store_status st)
{
	api_fail(c, st, NULL, "the AI cache is unavailable");
}

/* Emits the room's `ai` event; a failure is logged (the answer stands either way). */
static void emit_ai(struct api_ctx *c, const char *room, const char *job_id, const char *kind,
		    const char *status, cJSON *result)
{
	cJSON *d = cJSON_CreateObject();
	if (job_id)
		cJSON_AddStringToObject(d, "job_id", job_id);
	else
		cJSON_AddNullToObject(d, "job_id");
	cJSON_AddStringToObject(d, "kind", kind);
	cJSON_AddStringToObject(d, "status", status);
	if (result)
		cJSON_AddItemReferenceToObject(d, "result", result);
	char *s = cJSON_PrintUnformatted(d);
	cJSON_Delete(d);
	struct rds *rd;
	if (!s || store_redis(c->store, &rd) != STORE_OK || events_emit(rd, room, EV_AI, s, NULL, 0) < 0)
		log_warn("could not emit the %s ai event of room %s", status, room);
	free(s);
}

static void answer_job(struct api_ctx *c, const char *id, const char *status, int joined)
{
	cJSON *job = cJSON_CreateObject();
	cJSON_AddStringToObject(job, "id", id);
	cJSON_AddStringToObject(job, "status", status);
	cJSON_AddStringToObject(job, "kind", "ai");
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "job", job);
	if (joined)
		cJSON_AddTrueToObject(o, "joined");
	api_job_accepted(c, id, o);
}

/* Takes ownership of res. */
static void answer_cached(struct api_ctx *c, const char *room, const struct ai_ask *a, cJSON *res)
{
	cJSON_DeleteItemFromObjectCaseSensitive(res, "cached");
	cJSON_AddTrueToObject(res, "cached");
	emit_ai(c, room, NULL, a->kind, job_status_name(JOB_FINISHED), res);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "result", res);
	cJSON_AddTrueToObject(o, "cached");
	api_json(c, 200, o);
}


/* Drops a claim on the pending key, only if it still holds `value`; a failure is left to
 * the claim's expiry (AI_CLAIM_TTL_MS). */
static void release_claim(struct api_ctx *c, const char *room, const struct ai_ask *a,
			  const char *value)
{
	store_ai_release(c->store, room, a->key, value);
}

/* The job's request (caller frees with cJSON_Delete). */
static cJSON *build_request(const struct ai_ask *a, const char *room)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "scope", room);
	cJSON_AddStringToObject(r, "kind", a->kind);
	cJSON_AddStringToObject(r, "provider", aicfg_provider_name(a->cfg.provider));
	cJSON_AddStringToObject(r, "model", a->cfg.model);
	cJSON_AddStringToObject(r, "language", a->language);
	cJSON_AddStringToObject(r, "code", a->code);
	cJSON_AddStringToObject(r, "question", a->question);
	cJSON_AddNumberToObject(r, "first_line", (double)a->first_line);
	if (a->has_selection) {
		cJSON *s = cJSON_AddObjectToObject(r, "selection");
		cJSON_AddNumberToObject(s, "from", (double)a->sel_from);
		cJSON_AddNumberToObject(s, "to", (double)a->sel_to);
	}
	cJSON_AddStringToObject(r, "cache_key", a->key);
	return r;
}

/* 503 ai_busy: the same request's claim stayed without a job (or its marks kept changing). */
static void answer_busy(struct api_ctx *c)
{
	api_error(c, 503, "ai_busy", "the same request is being queued by someone else; try again");
	http_resp_header(c->resp, "Retry-After", "1");
}

/* Once the request is settled: the cache, a job under way, or a new job.
 *
 * Identical requests race on the pending key. The claimer picks its job's id first and
 * claims the key with that id (SET NX), so whoever loses the race reads the id of the job
 * it may join. The claimer creates the job only after the claim, its rate limit and the
 * queue's admission (jobs_enqueue), and any of these may refuse it (429) or fail (Redis): it
 * then gives the claim back, and that id never names a job. So a request joins only a job
 * that exists (its hash does; the job's creation writes it in the same script as its
 * admission, so a job whose hash exists was admitted). A mark naming an id without a job
 * is a claimer between its claim and its job, normally for a few milliseconds: the request
 * looks again after a short pause (1, 2, 4 … at most AI_JOIN_NAP_MS), and then joins the
 * job once created, or claims the request itself once the claim is given back (or expires,
 * AI_CLAIM_TTL_MS, should its claimer have died); after AI_JOIN_WAIT_MS in all it answers
 * 503 ai_busy rather than hand out an id whose job may never come. A mark whose job is over
 * is taken over. */
static void ask(struct api_ctx *c, const char *room, struct ai_ask *a)
{
	struct rds *rd;
	enum store_status st = store_redis(c->store, &rd);
	if (st != STORE_OK) {
		api_fail(c, st, NULL, NULL);
		return;
	}
	char id[AI_JOB_ID_LEN + 1];
	if (rnd_id(id, AI_JOB_ID_LEN) < 0) {
		api_error(c, 500, "internal", "no randomness");
		return;
	}
	long long deadline = clock_mono_ms() + AI_JOIN_WAIT_MS;
	long nap = 1;
	for (int takeovers = 0;;) {
		cJSON *hit;
		if ((st = store_ai_cached(c->store, room, a->key, &hit)) != STORE_OK) {
			ai_failed(c, st);
			return;
		}
		if (hit) {
			if (api_user_quota(c, "ai-cached", c->cfg->ai_limit * AI_CACHED_LIMIT_FACTOR, "cached AI answers") < 0) {
				cJSON_Delete(hit);
				return;
			}
			answer_cached(c, room, a, hit);
			return;
		}
		char other[AI_JOB_ID_LEN + 1], status[16];
		st = store_ai_claim(c->store, room, a->key, id, AI_CLAIM_TTL_MS, other);
		if (st == STORE_OK)
			break;
		if (st != STORE_CONFLICT) {
			ai_failed(c, st);
			return;
		}
		if (other[0]) {
			if ((st = store_job_status(c->store, other, status)) != STORE_OK) {
				ai_failed(c, st);
				return;
			}
			if (status[0]) { /* the job exists */
				enum job_status js = JOB_QUEUED;
				/* a cancelled job is over too: a new request must not join it */
				if (job_status_parse(status, &js) == 0 && !job_status_over(js)) {
					answer_job(c, other, job_status_name(js), 1);
					return;
				}
				/* the job is over but its mark stayed: take the mark over */
				if (++takeovers > AI_CLAIM_ROUNDS) {
					answer_busy(c);
					return;
				}
				release_claim(c, room, a, other);
				continue;
			}
		}
		/* a claim without its job yet, or a mark gone meanwhile (or of another shape):
		 * look again shortly */
		long long left = deadline - clock_mono_ms();
		if (left <= 0) {
			log_warn("room %s: the AI request's claim %s got no job in %d ms", room,
				 other[0] ? other : "(none)", AI_JOIN_WAIT_MS);
			answer_busy(c);
			return;
		}
		clock_sleep_ms(nap < left ? nap : (long)left);
		nap = nap * 2 < AI_JOIN_NAP_MS ? nap * 2 : AI_JOIN_NAP_MS;
	}
	/* Ours until the job exists: whatever ends the request before that gives it back (a
	 * failed release leaves it to AI_CLAIM_TTL_MS), and waiting requests never join it. */
	char counted[RATELIMIT_MEMBER_LEN + 1] = "";
	if (api_user_quota_reserve(c, "ai", c->cfg->ai_limit, "AI requests", counted) < 0) {
		release_claim(c, room, a, id);
		return;
	}
	cJSON *req = build_request(a, room);
	int rc = jobs_enqueue(c, room, "ai", a->kind, req, id, NULL, NULL); /* with its queued event */
	cJSON_Delete(req);
	if (rc < 0) {
		/* a refused request made no job: it does not count against the user's limit (a
		 * failure does, its job may exist) */
		if (rc == JOBS_REFUSED && counted[0])
			api_user_quota_release(c, "ai", counted);
		release_claim(c, room, a, id);
		return;
	}
	/* the mark lives as long as the job may (AI_TIMEOUT_MS counted): the worker deletes it
	 * when the job ends */
	if (store_ai_mark(c->store, room, a->key, id, aicfg_pending_ttl_s(&a->cfg)) != STORE_OK)
		log_warn("could not mark job %s as pending", id);
	answer_job(c, id, job_status_name(JOB_QUEUED), 0);
}

static void h_ai(struct api_ctx *c, const char *kind)
{
	struct valid_value v[F_COUNT];
	struct ai_ask a = {.kind = kind, .question = ""};
	char err[256], role[16] = "";
	const char *room = c->params[0];
	if (api_require_user(c) < 0 || api_body_fields(c, 1, ai_fields, F_COUNT, v) < 0)
		return;
	if (v[F_QUESTION].present) {
		size_t n = utf8_count(v[F_QUESTION].s, v[F_QUESTION].len);
		if (n > AI_QUESTION_MAX) {
			api_error(c, 400, "question_too_long",
				  "question is too long: at most %d characters (it has %zu)",
				  AI_QUESTION_MAX, n);
			return;
		}
		a.question = v[F_QUESTION].s;
	}
	/* with a selection, only the selected part counts (checked below) */
	if (v[F_CODE].present && v[F_CODE].len > AI_CODE_MAX && !v[F_SELECTION].present) {
		api_error(c, 413, "code_too_large", "code is over %d KiB (it has %zu bytes)",
			  AI_CODE_MAX / 1024, v[F_CODE].len);
		return;
	}
	if (v[F_SELECTION].present && !cJSON_IsNull(v[F_SELECTION].item)) {
		if (ai_selection_parse(c, v[F_SELECTION].item, &a.sel_from, &a.sel_to) < 0)
			return;
		a.has_selection = 1;
	}
	if (v[F_LANGUAGE].present) {
		const char *canon = lang_canonical(v[F_LANGUAGE].s);
		if (!canon) {
			api_error(c, 400, "invalid_request", "language %s is not one we know",
				  v[F_LANGUAGE].s);
			return;
		}
		snprintf(a.language, sizeof a.language, "%s", canon);
	}
	if (aicfg_load(&a.cfg, err, sizeof err) < 0) {
		log_error("%s", err);
		api_error(c, 500, "ai_misconfigured", "the AI assistant is misconfigured: %s", err);
		return;
	}
	if (room_access_read(c, room, role) < 0)
		return;
	if (a.cfg.provider == AICFG_OFF) {
		api_error(c, 503, "ai_disabled", "the AI assistant is turned off on this server");
		return;
	}
	if (!a.language[0] && room_language(c, room, a.language) < 0)
		return;
	if (v[F_CODE].present) {
		a.code = strdup(v[F_CODE].s);
		a.code_len = v[F_CODE].len;
	} else {
		struct doc_state d = {0};
		if (doc_read(c, room, &d) < 0)
			return;
		a.code = d.content;
		a.code_len = d.content_len;
		d.content = NULL;
		doc_state_free(&d);
	}
	if (!a.code) {
		api_error(c, 500, "internal", "out of memory");
		return;
	}
	a.first_line = 1;
	if (a.has_selection && ai_selection_apply(c, a.code, &a.code_len, a.sel_from, a.sel_to,
						  &a.first_line) < 0)
		goto out;
	if (a.code_len > AI_CODE_MAX) {
		api_error(c, 413, "code_too_large",
			  "the code is over %d KiB (it has %zu bytes); select a part of it",
			  AI_CODE_MAX / 1024, a.code_len);
		goto out;
	}
	if (a.code_len == 0 && !a.question[0]) {
		api_error(c, 400, "no_code", "there is no code to look at and no question");
		goto out;
	}
	struct aicfg_key_fields kf = {
		.provider = aicfg_provider_name(a.cfg.provider),
		.kind = a.kind,
		.model = a.cfg.model,
		.language = a.language,
		.first_line = a.first_line,
		.code = a.code,
		.code_len = a.code_len,
		.question = a.question,
	};
	if (aicfg_cache_key(&kf, a.key) < 0) {
		api_error(c, 500, "internal", "could not hash the request");
		goto out;
	}
	ask(c, room, &a);
out:
	ai_ask_free(&a);
}

void h_ai_hint(struct api_ctx *c)
{
	h_ai(c, "hint");
}

void h_ai_review(struct api_ctx *c)
{
	h_ai(c, "review");
}

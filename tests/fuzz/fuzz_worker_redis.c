/* fuzz_worker_redis: libFuzzer target for what the worker and the document store read back
 * from Redis (README.md; `make fuzz`): a job stream's entry (queue_entry_parse,
 * queue-worker/queue.c), an entry of a room's operation log (store_doc_log_entry_parse,
 * lib/store_doc.c) and a job's `event_extra` (jobstate_event_extra_parse, lib/jobstate.c).
 * We write them all, but from what clients sent, and Redis hands back whatever its keys
 * hold: fields missing, repeated, of another type, or far longer than we would write.
 *
 * Byte 0 chooses; the rest is, for the stream entry and the first log entry mode, a reply
 * built from the bytes (below: strings of any length, arrays, nil, integers, statuses,
 * errors, nested); for the second log mode one string reply holding the bytes; for
 * event_extra the text itself, then username and stdin for the round trip.
 *
 * Laws (a break aborts): an entry taken has an id that is exactly its first element's
 * string, and a job that is "" or exactly the value of a `job` field, both shorter than
 * QUEUE_ID_MAX; a log entry refused says why and leaves nothing set; one taken is an
 * operation that prints and parses back to the same text, with an author exactly when it
 * is an object, whose user id is within 2^53; event_extra parses to nothing or an object,
 * and what jobstate_event_extra writes parses back to the same user, name and stdin (cut
 * to JOBSTATE_STDIN_SHOWN bytes at a character boundary, flagged when cut). */
#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../queue-worker/queue.h"
#include "events.h"
#include "jobstate.h"
#include "ot.h"
#include "store_doc.h"
#include "utf8.h"
#include "fuzz.h"
#include "fuzz_reply.h"

static int is_string(const redisReply *r, const char *s)
{
	return r->type == REDIS_REPLY_STRING && r->len == strlen(s) && !memcmp(r->str, s, r->len);
}

static void check_entry(const redisReply *x)
{
	struct queue_entry e;
	memset(&e, 'x', sizeof e);
	if (queue_entry_parse(x, &e) < 0) {
		CHECK(!e.entry[0] && !e.job[0]);
		return;
	}
	CHECK(x->type == REDIS_REPLY_ARRAY && x->elements >= 2);
	CHECK(strlen(e.entry) < QUEUE_ID_MAX && strlen(e.job) < QUEUE_ID_MAX);
	CHECK(e.entry[0] && is_string(x->element[0], e.entry));
	if (!e.job[0])
		return;
	const redisReply *f = x->element[1];
	int found = 0;
	for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2)
		if (is_string(f->element[i], "job") && is_string(f->element[i + 1], e.job))
			found = 1;
	CHECK(found);
}

static void check_log_entry(const redisReply *x)
{
	struct ot_op *op = NULL;
	char *site = NULL, err[256] = "";
	long long user = 0;
	int known = -1;
	if (store_doc_log_entry_parse(x, &op, &user, &site, &known, err, sizeof err) < 0) {
		CHECK(err[0] && !op && !site);
		return;
	}
	CHECK(op && x->type == REDIS_REPLY_STRING);
	int object = x->len > 0 && x->str[0] == '{';
	CHECK(known == object && !!site == object);
	if (known)
		CHECK(user >= -(1LL << 53) && user <= 1LL << 53);
	char *text = ot_to_json(op);
	CHECK(text);
	struct ot_op *back = NULL;
	/* printed, it reads back with the bounds it was read with (those of stored data) */
	CHECK(ot_parse_json_max(text, strlen(text), EVENTS_DATA_MAX, OT_MAX_STORED_COMPONENTS, &back,
				err, sizeof err) == 0);
	char *again = ot_to_json(back);
	CHECK(again && !strcmp(text, again));
	free(again);
	free(text);
	ot_free(back);
	ot_free(op);
	free(site);
}

/* The input as a job's event_extra, then split at its first newline into a username and a
 * stdin (made valid UTF-8 as the API takes them) for a round trip. */
static void check_event_extra(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	CHECK(s);
	memcpy(s, p, n);
	s[n] = '\0';
	cJSON *o = jobstate_event_extra_parse(s);
	CHECK(!o || cJSON_IsObject(o));
	cJSON_Delete(o);
	free(s);

	const uint8_t *nl = memchr(p, '\n', n);
	size_t ulen = nl ? (size_t)(nl - p) : n;
	const char *rest = nl ? (const char *)nl + 1 : "";
	size_t rlen = nl ? n - ulen - 1 : 0;
	size_t name_len = 0, in_len = 0;
	char *name = utf8_sanitize((const char *)p, ulen, UTF8_SAN_NUL, 64, &name_len, NULL);
	char *in = utf8_sanitize(rest, rlen, UTF8_SAN_NUL, SIZE_MAX, &in_len, NULL);
	CHECK(name && in);
	long long id = (long long)n * 7919;
	char *extra = jobstate_event_extra(id, name, ulen % 2 ? NULL : in);
	CHECK(extra);
	o = jobstate_event_extra_parse(extra);
	CHECK(cJSON_IsObject(o));
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "user");
	const cJSON *uid = cJSON_GetObjectItemCaseSensitive(u, "id");
	const cJSON *uname = cJSON_GetObjectItemCaseSensitive(u, "username");
	CHECK(cJSON_IsNumber(uid) && uid->valuedouble == (double)id);
	CHECK(cJSON_IsString(uname) && !strcmp(uname->valuestring, name));
	const cJSON *given = cJSON_GetObjectItemCaseSensitive(o, "stdin_given");
	const cJSON *shown = cJSON_GetObjectItemCaseSensitive(o, "stdin");
	const cJSON *cut = cJSON_GetObjectItemCaseSensitive(o, "stdin_truncated");
	if (ulen % 2) {
		CHECK(!given && !shown && !cut);
	} else {
		CHECK(cJSON_IsBool(given) && cJSON_IsTrue(given) == (in_len > 0));
		CHECK(cJSON_IsString(shown) && cJSON_IsBool(cut));
		size_t k = strlen(shown->valuestring);
		CHECK(k <= JOBSTATE_STDIN_SHOWN && !memcmp(shown->valuestring, in, k));
		CHECK(utf8_validate(shown->valuestring, k, NULL, NULL) == UTF8_OK || k == 0);
		CHECK(cJSON_IsTrue(cut) == (k < in_len));
		if (k < in_len)
			CHECK(k + 3 >= JOBSTATE_STDIN_SHOWN);
	}
	cJSON_Delete(o);
	free(extra);
	free(name);
	free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct input in = {data + 1, size - 1};
	switch (data[0] % 4) {
	case 0: {
		redisReply *x = build(&in, 3);
		check_entry(x);
		freeReplyObject(x);
		break;
	}
	case 1: {
		redisReply *x = build(&in, 1);
		check_log_entry(x);
		freeReplyObject(x);
		break;
	}
	case 2: {
		redisReply *x = string_reply(REDIS_REPLY_STRING, &in, in.n);
		check_log_entry(x);
		freeReplyObject(x);
		break;
	}
	default:
		check_event_extra(data + 1, size - 1);
		break;
	}
	return 0;
}

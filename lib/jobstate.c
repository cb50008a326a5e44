#include "jobstate.h"

#include "errbuf.h"
#include "events.h"
#include "rds.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Both scripts call emit(KEYS, ARGV): events_emit_script wrapped as a local function whose
 * parameters shadow the script's own KEYS and ARGV, so the one emit script is composed,
 * not copied. compose() puts the prefix, that script and the suffix together. */
static const char emit_prefix[] = "local function emit(KEYS, ARGV) ";
static const char emit_suffix[] = " end\n";

/* KEYS: job hash, room history, room channel, cc:jobs.
 * ARGV: 1 attempt ("" any), 2 statuses it may leave (" a b "), 3 new status, 4 event type
 * ("" none), 5 event data, 6 history bound, 7 requeue entry ("" none), 8 group, 9 job id,
 * 10… field/value pairs. Returns {1, new status} or {0, current status or ""}. */
static const char change_body[] =
	"local cur = redis.call('HMGET', KEYS[1], 'status', 'attempts') "
	"if not cur[1] then return {0, ''} end "
	"if not string.find(ARGV[2], ' ' .. cur[1] .. ' ', 1, true) "
	"or (ARGV[1] ~= '' and (cur[2] or '0') ~= ARGV[1]) then return {0, cur[1]} end "
	"local f = {'status', ARGV[3]} "
	"for i = 10, #ARGV do f[#f + 1] = ARGV[i] end "
	"redis.call('HSET', KEYS[1], unpack(f)) "
	"if ARGV[7] ~= '' then "
	"redis.call('HINCRBY', KEYS[1], 'attempts', -1) "
	"redis.call('XADD', KEYS[4], '*', 'job', ARGV[9]) "
	"redis.call('XACK', KEYS[4], ARGV[8], ARGV[7]) "
	"end "
	"if ARGV[4] ~= '' then emit({KEYS[2], KEYS[3]}, {ARGV[4], ARGV[5], ARGV[6]}) end "
	"return {1, ARGV[3]}";

/* KEYS: job hash, room history, room channel, cc:jobs.
 * ARGV: 1 ttl, 2 event type, 3 event data, 4 history bound, 5 stream bound, 6 job id,
 * 7… field/value pairs. The event before the XADD: the entry is what workers read. */
static const char create_body[] =
	"if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "
	"local f = {'status', 'queued'} "
	"for i = 7, #ARGV do f[#f + 1] = ARGV[i] end "
	"redis.call('HSET', KEYS[1], unpack(f)) "
	"redis.call('EXPIRE', KEYS[1], ARGV[1]) "
	"emit({KEYS[2], KEYS[3]}, {ARGV[2], ARGV[3], ARGV[4]}) "
	"redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'job', ARGV[6]) "
	"return 1";

/* The script text (caller frees), NULL when out of memory. Built per call: a few hundred
 * bytes, and rds_eval sends only its SHA-1 once Redis knows it. */
static char *compose(const char *body)
{
	size_t n = sizeof emit_prefix + strlen(events_emit_script) + sizeof emit_suffix + strlen(body);
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s%s%s%s", emit_prefix, events_emit_script, emit_suffix, body);
	return s;
}

/* Keys of a job's room; a job without a room still needs names for KEYS (never touched). */
static void room_keys(const char *room, char *hkey, char *chan, size_t cap)
{
	events_history_key(hkey, cap, room && *room ? room : "-");
	events_channel(chan, cap, room && *room ? room : "-");
}

static int reply_failed(redisContext *r, redisReply *rep, char *err, size_t errlen)
{
	if (!rep) {
		errbuf_set(err, errlen, "redis: %s", r->errstr[0] ? r->errstr : "no reply");
		return 1;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		errbuf_set(err, errlen, "redis: %.*s", (int)rep->len, rep->str);
		freeReplyObject(rep);
		return 1;
	}
	return 0;
}

int jobstate_change(redisContext *r, const struct jobstate_change *c, char *cur, size_t curcap,
		    char *err, size_t errlen)
{
	enum { KEYS = 4, FIXED = 9 };
	const char *args[KEYS + FIXED + 2 * JOBSTATE_FIELDS_MAX];
	char key[128], hkey[160], chan[160], attempt[24], from[128], max[16];
	int argc = 0, rc = -1;
	char *script = NULL;
	redisReply *rep = NULL;
	if (cur && curcap)
		cur[0] = '\0';
	if (c->nfields > JOBSTATE_FIELDS_MAX) {
		errbuf_set(err, errlen, "jobstate: %zu fields, at most %d", c->nfields,
			   JOBSTATE_FIELDS_MAX);
		return -1;
	}
	int has_event = c->room && *c->room && c->event_type && c->event_data;
	if (has_event && strlen(c->event_data) > EVENTS_DATA_MAX) {
		errbuf_set(err, errlen, "jobstate: event data over %zu bytes", EVENTS_DATA_MAX);
		return -1;
	}
	snprintf(key, sizeof key, "cc:job:%s", c->job_id);
	room_keys(c->room, hkey, chan, sizeof hkey);
	if (c->attempt >= 0)
		snprintf(attempt, sizeof attempt, "%ld", c->attempt);
	else
		attempt[0] = '\0';
	/* padded with spaces so a status is found only as a whole word */
	snprintf(from, sizeof from, " %s ", c->from);
	snprintf(max, sizeof max, "%d", EVENTS_HISTORY_MAX);
	args[argc++] = key;
	args[argc++] = hkey;
	args[argc++] = chan;
	args[argc++] = JOBSTATE_STREAM;
	args[argc++] = attempt;
	args[argc++] = from;
	args[argc++] = c->status;
	args[argc++] = has_event ? c->event_type : "";
	args[argc++] = has_event ? c->event_data : "";
	args[argc++] = max;
	args[argc++] = c->requeue_entry ? c->requeue_entry : "";
	args[argc++] = JOBSTATE_GROUP;
	args[argc++] = c->job_id;
	for (size_t i = 0; i < 2 * c->nfields; i++)
		args[argc++] = c->fields[i];
	if (!(script = compose(change_body))) {
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	rep = rds_eval(r, script, KEYS, argc, args, NULL);
	if (reply_failed(r, rep, err, errlen)) {
		rep = NULL;
		goto out;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER ||
	    rep->element[1]->type != REDIS_REPLY_STRING) {
		errbuf_set(err, errlen, "redis: unexpected reply to a job change");
		goto out;
	}
	rc = rep->element[0]->integer == 1;
	if (cur && curcap)
		snprintf(cur, curcap, "%s", rep->element[1]->str);
out:
	if (rep)
		freeReplyObject(rep);
	free(script);
	return rc;
}

int jobstate_create(redisContext *r, const char *job_id, const char *room,
		    const char *event_type, const char *event_data, const char *const *fields,
		    size_t nfields, long ttl_s, char *err, size_t errlen)
{
	enum { KEYS = 4, FIXED = 6 };
	const char *args[KEYS + FIXED + 2 * JOBSTATE_FIELDS_MAX];
	char key[128], hkey[160], chan[160], ttl[24], max[16], smax[16];
	int argc = 0, rc = -1;
	char *script = NULL;
	redisReply *rep = NULL;
	if (nfields > JOBSTATE_FIELDS_MAX || strlen(event_data) > EVENTS_DATA_MAX) {
		errbuf_set(err, errlen, "jobstate: too many fields or too large an event");
		return -1;
	}
	snprintf(key, sizeof key, "cc:job:%s", job_id);
	room_keys(room, hkey, chan, sizeof hkey);
	snprintf(ttl, sizeof ttl, "%ld", ttl_s);
	snprintf(max, sizeof max, "%d", EVENTS_HISTORY_MAX);
	snprintf(smax, sizeof smax, "%d", JOBSTATE_STREAM_MAX);
	args[argc++] = key;
	args[argc++] = hkey;
	args[argc++] = chan;
	args[argc++] = JOBSTATE_STREAM;
	args[argc++] = ttl;
	args[argc++] = event_type;
	args[argc++] = event_data;
	args[argc++] = max;
	args[argc++] = smax;
	args[argc++] = job_id;
	for (size_t i = 0; i < 2 * nfields; i++)
		args[argc++] = fields[i];
	if (!(script = compose(create_body))) {
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	rep = rds_eval(r, script, KEYS, argc, args, NULL);
	if (reply_failed(r, rep, err, errlen)) {
		rep = NULL;
		goto out;
	}
	if (rep->type != REDIS_REPLY_INTEGER || rep->integer != 1) {
		errbuf_set(err, errlen, "jobstate: job %s exists already", job_id);
		goto out;
	}
	rc = 0;
out:
	if (rep)
		freeReplyObject(rep);
	free(script);
	return rc;
}

char *jobstate_event_json(const char *job_id, const char *kind, const char *status,
			  const char *result_json, const char *error)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "job_id", job_id);
	if (kind)
		cJSON_AddStringToObject(o, "kind", kind);
	cJSON_AddStringToObject(o, "status", status);
	if (result_json) {
		cJSON *res = cJSON_Parse(result_json);
		cJSON_AddItemToObject(o, "result", res ? res : cJSON_CreateNull());
	}
	if (error && *error)
		cJSON_AddStringToObject(o, "error", error);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

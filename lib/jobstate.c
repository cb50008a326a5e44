#include "jobstate.h"

#include "errbuf.h"
#include "events.h"
#include "rds.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/* Both scripts call emit(KEYS, ARGV): events_emit_script wrapped as a local function whose
 * parameters shadow the script's own KEYS and ARGV, so the one emit script is composed,
 * not copied. compose() puts the prefix, that script and the suffix together. */
static const char emit_prefix[] = "local function emit(KEYS, ARGV) ";
static const char emit_suffix[] = " end\n";

/* The fair scheduler (docs/INTERNALS.md, "Fair scheduling"): Lua functions every script
 * below is composed with, after emit. A job is first queued in its room's line; dispatch()
 * moves jobs into cc:jobs, where workers read them, while fewer are in flight than the live
 * workers have threads, always from the room with the fewest jobs in flight (ties: the
 * room served longest ago). Keys are named here, not in KEYS: which rooms a dispatch
 * touches is only known inside the script (one Redis, not a cluster, holds them all). */
static const char fair_lib[] =
	/* A room's score: jobs in flight, then its last turn, then the length of its line
	 * (capped at LW - 1), as one number: running * FS + turn * LW + waiting. Rooms that
	 * never had a turn (turn 0) tie on the first two, and the shorter line goes first: a
	 * room with one run is not put behind every other room that has not been served yet
	 * (ten noisy rooms would otherwise each get a turn before it). Exact in a double while
	 * turn < FS / LW (10^9 dispatches) and running < 9,000. */
	"local FS, LW = 1e12, 1e3 "
	"local function fair_tail(turn, waiting) "
	"return turn * LW + math.min(waiting, LW - 1) end "
	/* a room's turn: it was served now (the sequence number is kept while the room has
	 * jobs waiting or running, so a room coming back soon is not new) */
	"local function fair_score(room, running, waiting) "
	"local seq = redis.call('INCR', '" JOBSTATE_FAIR_PREFIX "seq') "
	"redis.call('HSET', '" JOBSTATE_FAIR_PREFIX "turn', room, seq) "
	"return running * FS + fair_tail(seq, waiting) end "
	/* the job left the line (dispatched or cancelled): the backlog counters */
	"local function fair_unqueue(job) "
	"redis.call('DECR', '" JOBSTATE_FAIR_PREFIX "depth') "
	"local uid = redis.call('HGET', 'cc:job:' .. job, 'user') "
	"if uid and redis.call('HINCRBY', '" JOBSTATE_FAIR_PREFIX "users', uid, -1) <= 0 then "
	"redis.call('HDEL', '" JOBSTATE_FAIR_PREFIX "users', uid) end end "
	/* places in line of the first few queued jobs of a room, as queued events */
	"local function fair_announce(room, hist_max, limit) "
	"local rank = redis.call('ZRANK', '" JOBSTATE_FAIR_PREFIX "rooms', room) or 0 "
	"local ids = redis.call('LRANGE', '" JOBSTATE_FAIR_PREFIX "room:' .. room, 0, limit - 1) "
	"for i, job in ipairs(ids) do "
	"local h = redis.call('HMGET', 'cc:job:' .. job, 'kind', 'event_kind') "
	"local d = {job_id = job, status = 'queued', position = i - 1 + rank} "
	"if h[2] and h[2] ~= '' then d.kind = h[2] end "
	"emit({'cc:room:' .. room .. ':events', 'cc:room:' .. room}, "
	"{h[1] or 'execution', cjson.encode(d), hist_max}) end end "
	/* the job is over (or cancelled): its slot is free */
	"local function fair_release(job) "
	"local room = redis.call('HGET', '" JOBSTATE_FAIR_PREFIX "inflight', job) "
	"if not room then return end "
	"redis.call('HDEL', '" JOBSTATE_FAIR_PREFIX "inflight', job) "
	"local n = redis.call('HINCRBY', '" JOBSTATE_FAIR_PREFIX "running', room, -1) "
	"if n <= 0 then redis.call('HDEL', '" JOBSTATE_FAIR_PREFIX "running', room) n = 0 end "
	"local sc = redis.call('ZSCORE', '" JOBSTATE_FAIR_PREFIX "rooms', room) "
	"if sc then redis.call('ZADD', '" JOBSTATE_FAIR_PREFIX "rooms', "
	"n * FS + math.fmod(tonumber(sc), FS), room) "
	"elseif n == 0 then redis.call('HDEL', '" JOBSTATE_FAIR_PREFIX "turn', room) end end "
	"local function fair_dispatch(hist_max, stream_max, limit) "
	"local t = redis.call('TIME') "
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
	"local cap = 0 "
	"local w = redis.call('HGETALL', '" JOBSTATE_FAIR_PREFIX "workers') "
	"for i = 1, #w, 2 do "
	"local exp, n = string.match(w[i + 1], '^(%d+) (%d+)$') "
	"if exp and tonumber(exp) > now then cap = cap + tonumber(n) "
	"else redis.call('HDEL', '" JOBSTATE_FAIR_PREFIX "workers', w[i]) end end "
	"local roomcap = tonumber(redis.call('GET', '" JOBSTATE_FAIR_PREFIX "room_cap') or '0') or 0 "
	/* jobs in flight; a job that ended without telling (its hash expired) frees its slot */
	"local inf = redis.call('HGETALL', '" JOBSTATE_FAIR_PREFIX "inflight') "
	"local busy = 0 "
	"for i = 1, #inf, 2 do "
	"local st = redis.call('HGET', 'cc:job:' .. inf[i], 'status') "
	"if st == 'queued' or st == 'running' then busy = busy + 1 else fair_release(inf[i]) end end "
	"while busy < cap do "
	"local top = redis.call('ZRANGE', '" JOBSTATE_FAIR_PREFIX "rooms', 0, 0) "
	"if #top == 0 then break end "
	"local room = top[1] "
	"local running = tonumber(redis.call('HGET', '" JOBSTATE_FAIR_PREFIX "running', room) or '0') "
	/* the fewest in flight first: when this room is at the cap, every room is */
	"if roomcap > 0 and running >= roomcap then break end "
	"local line = '" JOBSTATE_FAIR_PREFIX "room:' .. room "
	"local job = redis.call('LPOP', line) "
	"if job then "
	"local st = redis.call('HGET', 'cc:job:' .. job, 'status') "
	"if st then fair_unqueue(job) end "
	"if st == 'queued' then "
	"redis.call('HSET', '" JOBSTATE_FAIR_PREFIX "inflight', job, room) "
	"running = redis.call('HINCRBY', '" JOBSTATE_FAIR_PREFIX "running', room, 1) "
	"redis.call('XADD', '" JOBSTATE_STREAM "', 'MAXLEN', '~', stream_max, '*', 'job', job) "
	"busy = busy + 1 end end "
	"local left = redis.call('LLEN', line) "
	"local score = fair_score(room, running, left) "
	"if left == 0 then redis.call('ZREM', '" JOBSTATE_FAIR_PREFIX "rooms', room) "
	"if running == 0 then redis.call('HDEL', '" JOBSTATE_FAIR_PREFIX "turn', room) end "
	"else redis.call('ZADD', '" JOBSTATE_FAIR_PREFIX "rooms', score, room) "
	"fair_announce(room, hist_max, limit) end "
	"end end ";

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
	/* an outcome frees the job's slot in the fair scheduler: the next job goes in */
	"if ARGV[3] == 'finished' or ARGV[3] == 'failed' then fair_release(ARGV[9]) "
	"fair_dispatch(ARGV[6], " STR(JOBSTATE_STREAM_MAX) ", " STR(JOBSTATE_POSITION_UPDATES) ") end "
	"return {1, ARGV[3]}";

/* KEYS: job hash, room history, room channel.
 * ARGV: 1 ttl, 2 event type, 3 event data, 4 history bound, 5 stream bound, 6 job id,
 * 7 room, 8 user, 9 room backlog bound, 10 user backlog bound, 11 queue bound,
 * 12… field/value pairs. Admission first (nothing is written for a job refused), then the
 * hash, the job at the end of its room's line, the queued event with its place in line,
 * and a dispatch (the job goes straight into cc:jobs when a worker is free).
 * Returns {1, position} or {0, what is full ("room", "user", "queue", "exists"), backlog}. */
static const char create_body[] =
	"if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 'exists', 0} end "
	"local line = '" JOBSTATE_FAIR_PREFIX "room:' .. ARGV[7] "
	"local n = redis.call('LLEN', line) "
	"if n >= tonumber(ARGV[9]) then return {0, 'room', n} end "
	"n = tonumber(redis.call('HGET', '" JOBSTATE_FAIR_PREFIX "users', ARGV[8]) or '0') "
	"if n >= tonumber(ARGV[10]) then return {0, 'user', n} end "
	"n = tonumber(redis.call('GET', '" JOBSTATE_FAIR_PREFIX "depth') or '0') "
	"if n >= tonumber(ARGV[11]) then return {0, 'queue', n} end "
	"local f = {'status', 'queued'} "
	"for i = 12, #ARGV do f[#f + 1] = ARGV[i] end "
	"redis.call('HSET', KEYS[1], unpack(f)) "
	"redis.call('EXPIRE', KEYS[1], ARGV[1]) "
	"local ahead = redis.call('RPUSH', line, ARGV[6]) - 1 "
	"redis.call('INCR', '" JOBSTATE_FAIR_PREFIX "depth') "
	"redis.call('HINCRBY', '" JOBSTATE_FAIR_PREFIX "users', ARGV[8], 1) "
	/* a room joining the ring keeps its last turn: one served long ago (or never: 0) goes
	 * before the rooms served since; its line's new length is its last tie-break */
	"local running = tonumber(redis.call('HGET', '" JOBSTATE_FAIR_PREFIX "running', ARGV[7]) or '0') "
	"local turn = tonumber(redis.call('HGET', '" JOBSTATE_FAIR_PREFIX "turn', ARGV[7]) or '0') "
	"redis.call('ZADD', '" JOBSTATE_FAIR_PREFIX "rooms', running * FS + fair_tail(turn, ahead + 1), ARGV[7]) "
	"local pos = ahead + redis.call('ZRANK', '" JOBSTATE_FAIR_PREFIX "rooms', ARGV[7]) "
	"local d = cjson.decode(ARGV[3]) "
	"d.position = pos "
	"emit({KEYS[2], KEYS[3]}, {ARGV[2], cjson.encode(d), ARGV[4]}) "
	"fair_dispatch(ARGV[4], ARGV[5], " STR(JOBSTATE_POSITION_UPDATES) ") "
	"return {1, pos}";

/* KEYS: job hash, room history, room channel.
 * ARGV: 1 event type, 2 event data, 3 history bound, 4 job id, 5 error, 6 now.
 * A queued job leaves its room's line (it never runs), a dispatched or running one its slot
 * (the worker notices the status and kills its sandbox). Returns {1, status it left} or
 * {0, current status or ""}. */
static const char cancel_body[] =
	"local st = redis.call('HGET', KEYS[1], 'status') "
	"if not st then return {0, ''} end "
	"if st ~= 'queued' and st ~= 'running' then return {0, st} end "
	"local room = redis.call('HGET', KEYS[1], 'room') or '' "
	"local line = '" JOBSTATE_FAIR_PREFIX "room:' .. room "
	"local left = st == 'queued' and redis.call('LREM', line, 1, ARGV[4]) == 1 "
	"if left then fair_unqueue(ARGV[4]) end "
	"redis.call('HSET', KEYS[1], 'status', 'cancelled', 'error', ARGV[5], 'finished_at', ARGV[6]) "
	"emit({KEYS[2], KEYS[3]}, {ARGV[1], ARGV[2], ARGV[3]}) "
	"if left then "
	"if redis.call('LLEN', line) == 0 then redis.call('ZREM', '" JOBSTATE_FAIR_PREFIX "rooms', room) "
	"if not redis.call('HGET', '" JOBSTATE_FAIR_PREFIX "running', room) then "
	"redis.call('HDEL', '" JOBSTATE_FAIR_PREFIX "turn', room) end "
	"else fair_announce(room, ARGV[3], " STR(JOBSTATE_POSITION_UPDATES) ") end end "
	"fair_release(ARGV[4]) "
	"fair_dispatch(ARGV[3], " STR(JOBSTATE_STREAM_MAX) ", " STR(JOBSTATE_POSITION_UPDATES) ") "
	"return {1, st}";

/* ARGV: 1 consumer, 2 threads ("0": it stops), 3 registration lifetime ms, 4 room cap.
 * A worker's capacity, renewed while it lives, then a dispatch. Returns 1. */
static const char workers_body[] =
	"local t = redis.call('TIME') "
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
	"if ARGV[2] == '0' then redis.call('HDEL', '" JOBSTATE_FAIR_PREFIX "workers', ARGV[1]) "
	"else redis.call('HSET', '" JOBSTATE_FAIR_PREFIX "workers', ARGV[1], "
	"string.format('%d %s', now + tonumber(ARGV[3]), ARGV[2])) end "
	"redis.call('SET', '" JOBSTATE_FAIR_PREFIX "room_cap', ARGV[4]) "
	"fair_dispatch(" STR(EVENTS_HISTORY_MAX) ", " STR(JOBSTATE_STREAM_MAX) ", "
	STR(JOBSTATE_POSITION_UPDATES) ") "
	"return 1";

/* The script text (caller frees), NULL when out of memory. Built per call: a few hundred
 * bytes, and rds_eval sends only its SHA-1 once Redis knows it. */
static char *compose(const char *body)
{
	size_t n = sizeof emit_prefix + strlen(events_emit_script) + sizeof emit_suffix +
		   sizeof fair_lib + strlen(body);
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s%s%s%s%s", emit_prefix, events_emit_script, emit_suffix, fair_lib,
			 body);
	return s;
}

/* Keys of a job's room; a job without a room still needs names for KEYS (never touched). */
static void room_keys(const char *room, char *hkey, char *chan, size_t cap)
{
	events_history_key(hkey, cap, room && *room ? room : "-");
	events_channel(chan, cap, room && *room ? room : "-");
}

/* Runs body (composed with emit and the scheduler) and reads its {1|0, status} answer:
 * 1 done, 0 refused (cur, when given, receives the status it found), -1 failed (err says
 * what, naming the request as `what`). */
static int eval_verdict(redisContext *r, const char *body, int nkeys, int argc,
			const char *const *args, const char *what, char *cur, size_t curcap,
			char *err, size_t errlen)
{
	int rc = -1;
	redisReply *rep = NULL;
	char *script = compose(body);
	if (!script) {
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	rep = rds_eval(r, script, nkeys, argc, args, NULL);
	if (rds_reply_failed(r, rep, err, errlen)) {
		rep = NULL;
		goto out;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER ||
	    rep->element[1]->type != REDIS_REPLY_STRING) {
		errbuf_set(err, errlen, "redis: unexpected reply to %s", what);
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

int jobstate_change(redisContext *r, const struct jobstate_change *c, char *cur, size_t curcap,
		    char *err, size_t errlen)
{
	enum { KEYS = 4, FIXED = 9 };
	const char *args[KEYS + FIXED + 2 * JOBSTATE_FIELDS_MAX];
	char key[128], hkey[160], chan[160], attempt[24], from[128], max[16];
	int argc = 0;
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
	return eval_verdict(r, change_body, KEYS, argc, args, "a job change", cur, curcap, err,
			    errlen);
}

int jobstate_create(redisContext *r, const struct jobstate_new *n, long *position,
		    long *backlog, char *err, size_t errlen)
{
	enum { KEYS = 3, FIXED = 11 };
	const char *args[KEYS + FIXED + 2 * JOBSTATE_FIELDS_MAX];
	char key[128], hkey[160], chan[160], ttl[24], max[16], smax[16], rmax[24], umax[24],
		qmax[24];
	int argc = 0, rc = -1;
	char *script = NULL;
	redisReply *rep = NULL;
	if (n->nfields > JOBSTATE_FIELDS_MAX || strlen(n->event_data) > EVENTS_DATA_MAX) {
		errbuf_set(err, errlen, "jobstate: too many fields or too large an event");
		return -1;
	}
	snprintf(key, sizeof key, "cc:job:%s", n->job_id);
	room_keys(n->room, hkey, chan, sizeof hkey);
	snprintf(ttl, sizeof ttl, "%ld", n->ttl_s);
	snprintf(max, sizeof max, "%d", EVENTS_HISTORY_MAX);
	snprintf(smax, sizeof smax, "%d", JOBSTATE_STREAM_MAX);
	snprintf(rmax, sizeof rmax, "%ld", n->room_max);
	snprintf(umax, sizeof umax, "%ld", n->user_max);
	snprintf(qmax, sizeof qmax, "%ld", n->queue_max);
	args[argc++] = key;
	args[argc++] = hkey;
	args[argc++] = chan;
	args[argc++] = ttl;
	args[argc++] = n->event_type;
	args[argc++] = n->event_data;
	args[argc++] = max;
	args[argc++] = smax;
	args[argc++] = n->job_id;
	args[argc++] = n->room;
	args[argc++] = n->user;
	args[argc++] = rmax;
	args[argc++] = umax;
	args[argc++] = qmax;
	for (size_t i = 0; i < 2 * n->nfields; i++)
		args[argc++] = n->fields[i];
	if (!(script = compose(create_body))) {
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	rep = rds_eval(r, script, KEYS, argc, args, NULL);
	if (rds_reply_failed(r, rep, err, errlen)) {
		rep = NULL;
		goto out;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER) {
		errbuf_set(err, errlen, "redis: unexpected reply to a new job");
		goto out;
	}
	if (rep->element[0]->integer == 1) {
		if (position)
			*position = rep->element[1]->type == REDIS_REPLY_INTEGER
					    ? (long)rep->element[1]->integer
					    : 0;
		rc = JOBSTATE_ADMITTED;
		goto out;
	}
	const char *what = rep->element[1]->type == REDIS_REPLY_STRING ? rep->element[1]->str : "";
	if (backlog)
		*backlog = rep->elements > 2 && rep->element[2]->type == REDIS_REPLY_INTEGER
				   ? (long)rep->element[2]->integer
				   : 0;
	if (!strcmp(what, "room"))
		rc = JOBSTATE_ROOM_FULL;
	else if (!strcmp(what, "user"))
		rc = JOBSTATE_USER_FULL;
	else if (!strcmp(what, "queue"))
		rc = JOBSTATE_QUEUE_FULL;
	else
		errbuf_set(err, errlen, "jobstate: job %s exists already", n->job_id);
out:
	if (rep)
		freeReplyObject(rep);
	free(script);
	return rc;
}

int jobstate_cancel(redisContext *r, const char *job_id, const char *room,
		    const char *event_type, const char *event_data, const char *error,
		    char *cur, size_t curcap, char *err, size_t errlen)
{
	char key[128], hkey[160], chan[160], max[16], now[24];
	if (cur && curcap)
		cur[0] = '\0';
	if (strlen(event_data) > EVENTS_DATA_MAX) {
		errbuf_set(err, errlen, "jobstate: event data over %zu bytes", EVENTS_DATA_MAX);
		return -1;
	}
	snprintf(key, sizeof key, "cc:job:%s", job_id);
	room_keys(room, hkey, chan, sizeof hkey);
	snprintf(max, sizeof max, "%d", EVENTS_HISTORY_MAX);
	snprintf(now, sizeof now, "%lld", (long long)time(NULL));
	const char *args[] = {key, hkey, chan, event_type, event_data, max, job_id, error, now};
	return eval_verdict(r, cancel_body, 3, (int)(sizeof args / sizeof args[0]), args,
			    "a cancel", cur, curcap, err, errlen);
}

int jobstate_worker(redisContext *r, const char *consumer, long threads, long lifetime_ms,
		    long room_cap, char *err, size_t errlen)
{
	char n[24], life[24], cap[24];
	char *script = NULL;
	redisReply *rep = NULL;
	int rc = -1;
	snprintf(n, sizeof n, "%ld", threads);
	snprintf(life, sizeof life, "%ld", lifetime_ms);
	snprintf(cap, sizeof cap, "%ld", room_cap);
	const char *args[] = {consumer, n, life, cap};
	if (!(script = compose(workers_body))) {
		errbuf_set(err, errlen, "out of memory");
		goto out;
	}
	rep = rds_eval(r, script, 0, 4, args, NULL);
	if (rds_reply_failed(r, rep, err, errlen)) {
		rep = NULL;
		goto out;
	}
	rc = 0;
out:
	if (rep)
		freeReplyObject(rep);
	free(script);
	return rc;
}

int jobstate_position(redisContext *r, const char *job_id, const char *room, long *position,
		      char *err, size_t errlen)
{
	redisReply *a = redisCommand(r, "LPOS " JOBSTATE_FAIR_PREFIX "room:%s %s", room, job_id);
	if (rds_reply_failed(r, a, err, errlen))
		return -1;
	if (a->type != REDIS_REPLY_INTEGER) {
		freeReplyObject(a);
		return 0;
	}
	long idx = (long)a->integer;
	freeReplyObject(a);
	redisReply *b = redisCommand(r, "ZRANK " JOBSTATE_FAIR_PREFIX "rooms %s", room);
	if (rds_reply_failed(r, b, err, errlen))
		return -1;
	*position = idx + (b->type == REDIS_REPLY_INTEGER ? (long)b->integer : 0);
	freeReplyObject(b);
	return 1;
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

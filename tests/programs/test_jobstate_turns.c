/* The fair scheduler's turns within a room (lib/lua/_fair.lua, docs/INTERNALS.md "Fair
 * scheduling"), through lib/jobstate.c against a real redis-server started here on a free
 * port: jobs of several people in one room are lined up by round (each person's next round,
 * never before the round the room has reached), one person's own jobs stay in the order they
 * came, the place each create answers is its place in that line, a dispatch takes the head
 * and moves the room's round on, a job queued by an older version (no round) stays ahead,
 * cancels keep the order and cost their user no turns, and once nothing of the room waits
 * or runs its rounds are gone; a run is made only while its user's run-right mark is the
 * one its creator read.
 * Nothing is dispatched unless the test registers a worker (capacity 0 otherwise), so every
 * line is exactly as the scripts left it.
 * Needs redis-server (Debian's redis-server). */
#include "jobstate.h"
#include "rds.h"
#include "rkeys.h"
#include "../unit/unit.h"
#include "redis_server.h"
#include "job_fixture.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static struct rds *rd;
static redisContext *admin;

/* A queued execution of user in room, made against the run-right mark right (NULL: not
 * checked): the jobstate_create answer (JOBSTATE_*, -1 logged), its place in line in *pos. */
static int create_with(const char *room, const char *user, const char *job, const char *right,
		       long *pos)
{
	const char *f[6] = {"kind", "execution", "user", user, "room", room};
	struct jobstate_new n = test_job(room, user, job, f, 3, right);
	char err[256] = "";
	int rc = jobstate_create(rd, &n, pos, NULL, err, sizeof err);
	if (rc < 0)
		fprintf(stderr, "create %s: %s\n", job, err);
	return rc;
}

/* A queued execution of user in room; its place in line (-1: refused or an error). */
static long create(const char *room, const char *user, const char *job)
{
	long pos = -1;
	int rc = create_with(room, user, job, NULL, &pos);
	if (rc != JOBSTATE_ADMITTED) {
		fprintf(stderr, "create %s: refused (%d)\n", job, rc);
		return -1;
	}
	return pos;
}

/* A run made against the run-right mark right: the jobstate_create answer. */
static int create_run(const char *room, const char *user, const char *job, const char *right)
{
	long pos = -1;
	return create_with(room, user, job, right, &pos);
}

/* The room's line, ids joined by ' ' ("" when empty, "?" on an error). */
static const char *line_of(const char *room)
{
	static char out[1024];
	struct rkey k = rkey1(RK_FAIR_ROOM, room);
	redisReply *r = redisCommand(admin, "LRANGE %s 0 -1", k.s);
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		if (r)
			freeReplyObject(r);
		return "?";
	}
	out[0] = '\0';
	for (size_t i = 0; i < r->elements; i++) {
		if (i)
			strncat(out, " ", sizeof out - strlen(out) - 1);
		strncat(out, r->element[i]->str, sizeof out - strlen(out) - 1);
	}
	freeReplyObject(r);
	return out;
}

/* The integer reply of a command, or a string reply read as one (-1000000 on anything
 * else). */
static long long num(const char *fmt, const char *a, const char *b)
{
	redisReply *r = b ? redisCommand(admin, fmt, a, b) : redisCommand(admin, fmt, a);
	long long v = -1000000;
	if (r && r->type == REDIS_REPLY_INTEGER)
		v = r->integer;
	else if (r && r->type == REDIS_REPLY_STRING)
		v = atoll(r->str);
	if (r)
		freeReplyObject(r);
	return v;
}

static long position(const char *room, const char *job)
{
	long pos = -1;
	char err[256];
	return jobstate_position(rd, job, room, &pos, err, sizeof err) == 1 ? pos : -1;
}

static int cancel(const char *room, const char *job)
{
	char cur[16], err[256];
	return jobstate_cancel(rd, job, room, EV_EXECUTION, "{\"status\":\"cancelled\"}", "test",
			       cur, sizeof cur, err, sizeof err);
}

/* The job ends (finished), as its worker would say: its slot is free, and a dispatch follows.
 * 1 done. */
static int finish(const char *room, const char *job)
{
	const char *const done[] = {"exit_code", "0"};
	struct jobstate_change ch = {
		.job_id = job,
		.room = room,
		.event_type = EV_EXECUTION,
		.event_data = "{\"status\":\"finished\"}",
		.attempt = -1,
		.from = JOB_BIT(JOB_QUEUED) | JOB_BIT(JOB_RUNNING),
		.status = JOB_FINISHED,
		.fields = done,
		.nfields = 1,
	};
	char cur[16], err[256];
	return jobstate_change(rd, &ch, cur, sizeof cur, err, sizeof err);
}

static void test_turns(void)
{
	const char *room = "turnsroom1";
	/* a queues three, then b two, then c one */
	CHECK(create(room, "ua", "a0") == 0);
	CHECK(create(room, "ua", "a1") == 1);
	CHECK(create(room, "ua", "a2") == 2);
	CHECK(create(room, "ub", "b0") == 1); /* round 0: after a0, before a1 */
	CHECK(create(room, "ub", "b1") == 3); /* round 1: after a1, before a2 */
	CHECK(create(room, "uc", "c0") == 2); /* round 0: after b0 */
	CHECK_STR(line_of(room), "a0 b0 c0 a1 b1 a2");
	/* the place GET /api/jobs/{id} reads is the same line */
	CHECK(position(room, "c0") == 2);
	CHECK(position(room, "a2") == 5);
	/* a's next one: round 3, the end of the line */
	CHECK(create(room, "ua", "a3") == 6);
	CHECK_STR(line_of(room), "a0 b0 c0 a1 b1 a2 a3");

	/* a cancel anywhere keeps the order of the rest */
	CHECK(cancel(room, "b0") == 1);
	CHECK_STR(line_of(room), "a0 c0 a1 b1 a2 a3");

	/* one worker thread: the head is dispatched, and the room reaches its round (0) */
	char err[256];
	CHECK(jobstate_worker(rd, "w1", 1, 60000, 0, err, sizeof err) == 0);
	CHECK_STR(line_of(room), "c0 a1 b1 a2 a3");
	/* someone new now starts at round 0: after c0, before a1 */
	CHECK(create(room, "ud", "d0") == 1);
	CHECK_STR(line_of(room), "c0 d0 a1 b1 a2 a3");
	/* the thread is busy: nothing more goes until a0 ends; then c0 (round 0) */
	CHECK(finish(room, "a0") == 1);
	CHECK_STR(line_of(room), "d0 a1 b1 a2 a3");
	CHECK(finish(room, "c0") == 1);
	CHECK_STR(line_of(room), "a1 b1 a2 a3");
	/* d0 is in flight; a1 ends round 0, and the room is at round 1 once it goes */
	CHECK(finish(room, "d0") == 1);
	CHECK_STR(line_of(room), "b1 a2 a3");
	const char *rk = rkey0(RK_FAIR_ROUND);
	CHECK(num("HGET %s %s", rk, room) == 1);
	/* e comes now: round 1 (the room's), so after b1 and before a2 */
	CHECK(create(room, "ue", "e0") == 1);
	CHECK_STR(line_of(room), "b1 e0 a2 a3");
	/* c, whose last was round 0, comes back: round 1 as well, behind e */
	CHECK(create(room, "uc", "c1") == 2);
	CHECK_STR(line_of(room), "b1 e0 c1 a2 a3");

	/* everything ends: the room's rounds are forgotten with its turn */
	CHECK(jobstate_worker(rd, "w1", 0, 60000, 0, err, sizeof err) == 0);
	const char *left[] = {"b1", "e0", "c1", "a2", "a3"};
	for (size_t i = 0; i < sizeof left / sizeof left[0]; i++)
		CHECK(cancel(room, left[i]) == 1);
	CHECK(finish(room, "a1") == 1);
	CHECK_STR(line_of(room), "");
	struct rkey urk = rkey1(RK_FAIR_UROUND, room);
	CHECK(num("HEXISTS %s %s", rk, room) == 0);
	CHECK(num("EXISTS %s", urk.s, NULL) == 0);
	CHECK(num("HEXISTS %s %s", rkey0(RK_FAIR_TURN), room) == 0);
	/* and a new job starts from round 0 again */
	CHECK(create(room, "ua", "a9") == 0);
	struct rkey a9 = rkey1(RK_JOB, "a9");
	CHECK(num("HGET %s fair_round", a9.s, NULL) == 0);
	CHECK(cancel(room, "a9") == 1);
}

static long long round_of(const char *job)
{
	struct rkey k = rkey1(RK_JOB, job);
	return num("HGET %s fair_round", k.s, NULL);
}

/* Cancelled jobs cost no turns: a user whose waiting jobs were all cancelled is back at
 * their last dispatched round (or a newcomer), and one whose latest was cancelled one round
 * back. */
static void test_cancelled_turns(void)
{
	const char *room = "turnsroom3";
	char err[256];
	CHECK(jobstate_worker(rd, "w2", 1, 60000, 0, err, sizeof err) == 0);
	CHECK(create(room, "ub", "x_b0") == 0); /* dispatched at once: the one thread is busy */
	CHECK_STR(line_of(room), "");
	const char *as[] = {"x_a0", "x_a1", "x_a2", "x_a3", "x_a4"};
	for (size_t i = 0; i < 5; i++)
		CHECK(create(room, "ua", as[i]) == (long)i);
	for (size_t i = 0; i < 5; i++)
		CHECK(cancel(room, as[i]) == 1);
	const char *cs[] = {"x_c0", "x_c1", "x_c2", "x_c3"};
	for (size_t i = 0; i < 4; i++)
		CHECK(create(room, "uc", cs[i]) == (long)i);
	/* a, whose five were cancelled, comes back as a newcomer: second, not fifth */
	CHECK(create(room, "ua", "x_a5") == 1);
	CHECK_STR(line_of(room), "x_c0 x_a5 x_c1 x_c2 x_c3");
	CHECK(round_of("x_a5") == 0);
	/* c's latest cancelled: the next one takes its round */
	CHECK(cancel(room, "x_c3") == 1);
	CHECK(create(room, "uc", "x_c4") == 4);
	CHECK(round_of("x_c4") == 3);
	/* b's run ends; c0 goes (round 0): c's last dispatched round */
	CHECK(finish(room, "x_b0") == 1);
	CHECK_STR(line_of(room), "x_a5 x_c1 x_c2 x_c4");
	/* c's waiting ones all cancelled: back at round 0, the one dispatched, so the next is 1 */
	CHECK(cancel(room, "x_c1") == 1);
	CHECK(cancel(room, "x_c2") == 1);
	CHECK(cancel(room, "x_c4") == 1);
	CHECK(create(room, "uc", "x_c5") == 1);
	CHECK(round_of("x_c5") == 1);
	CHECK_STR(line_of(room), "x_a5 x_c5");
	/* all gone */
	CHECK(jobstate_worker(rd, "w2", 0, 60000, 0, err, sizeof err) == 0);
	CHECK(cancel(room, "x_a5") == 1);
	CHECK(cancel(room, "x_c5") == 1);
	CHECK(finish(room, "x_c0") == 1);
	struct rkey urk = rkey1(RK_FAIR_UROUND, room);
	CHECK(num("EXISTS %s", urk.s, NULL) == 0);
}

/* Jobs an older version queued have no round: they stay ahead of every new one. */
static void test_older_jobs(void)
{
	const char *room = "turnsroom2";
	struct rkey line = rkey1(RK_FAIR_ROOM, room);
	const char *old[] = {"o0", "o1"};
	for (size_t i = 0; i < 2; i++) {
		struct rkey jk = rkey1(RK_JOB, old[i]);
		redisReply *r = redisCommand(admin, "HSET %s status queued user uo room %s", jk.s,
					     room);
		CHECK(r && r->type == REDIS_REPLY_INTEGER);
		if (r)
			freeReplyObject(r);
		r = redisCommand(admin, "RPUSH %s %s", line.s, old[i]);
		CHECK(r && r->type == REDIS_REPLY_INTEGER);
		if (r)
			freeReplyObject(r);
	}
	CHECK(create(room, "ua", "n0") == 2);
	CHECK(create(room, "ub", "m0") == 3);
	CHECK(create(room, "ua", "n1") == 4);
	CHECK(create(room, "uc", "k0") == 4);
	CHECK_STR(line_of(room), "o0 o1 n0 m0 k0 n1");
	/* a job whose hash is gone (expired) reads as round -1 and does not stop the search */
	struct rkey m0 = rkey1(RK_JOB, "m0");
	redisReply *r = redisCommand(admin, "DEL %s", m0.s);
	if (r)
		freeReplyObject(r);
	CHECK(create(room, "ud", "q0") == 5);
	CHECK_STR(line_of(room), "o0 o1 n0 m0 k0 q0 n1");
}

/* The run-right mark (lib/jobstate.h): a run is made only while its user's mark in the room
 * is the one read before the right was; a change's new mark refuses a creation that read the
 * old one, and writes nothing; other users and rooms are not touched by it. */
static void test_run_right(void)
{
	const char *room = "rightroom", *other = "rightroom2";
	char err[256], before[JOBSTATE_RUN_RIGHT_LEN + 2], after[JOBSTATE_RUN_RIGHT_LEN + 2];
	char theirs[JOBSTATE_RUN_RIGHT_LEN + 2], again[JOBSTATE_RUN_RIGHT_LEN + 2];
	CHECK(jobstate_run_right_read(rd, room, "ra", before, err, sizeof err) == 0);
	CHECK_STR(before, "="); /* never taken: no mark */
	CHECK(jobstate_run_right_read(rd, room, "rb", theirs, err, sizeof err) == 0);
	CHECK(create_run(room, "ra", "r0", before) == JOBSTATE_ADMITTED);
	/* the change: a new mark for ra, then its look for ra's runs (r0 is there to find) */
	CHECK(jobstate_run_right_taken(rd, room, "ra", err, sizeof err) == 0);
	CHECK(jobstate_run_right_read(rd, room, "ra", after, err, sizeof err) == 0);
	CHECK(strlen(after) == JOBSTATE_RUN_RIGHT_LEN + 1 && after[0] == '=');
	/* a creation that read the right before the change: refused, nothing written */
	CHECK(create_run(room, "ra", "r1", before) == JOBSTATE_RIGHT_CHANGED);
	struct rkey r1 = rkey1(RK_JOB, "r1");
	CHECK(num("EXISTS %s", r1.s, NULL) == 0);
	CHECK_STR(line_of(room), "r0");
	/* the mark read after the change lets runs through again (the member let back in) */
	CHECK(create_run(room, "ra", "r2", after) == JOBSTATE_ADMITTED);
	/* another user of the room, and the same user in another room, are not concerned */
	CHECK(create_run(room, "rb", "r3", theirs) == JOBSTATE_ADMITTED);
	CHECK(create_run(other, "ra", "r4", "=") == JOBSTATE_ADMITTED);
	/* an AI job checks no mark */
	CHECK(create_run(room, "ra", "r5", NULL) == JOBSTATE_ADMITTED);
	/* a second change: a new mark every time, so the one read after the first is stale */
	CHECK(jobstate_run_right_taken(rd, room, "ra", err, sizeof err) == 0);
	CHECK(jobstate_run_right_read(rd, room, "ra", again, err, sizeof err) == 0);
	CHECK(strcmp(again, after) != 0);
	CHECK(create_run(room, "ra", "r6", after) == JOBSTATE_RIGHT_CHANGED);
	CHECK_STR(line_of(room), "r0 r3 r2 r5");
	/* the mark lives a day, far longer than a request between its two steps */
	struct rkey mk = rkey2(RK_RUN_RIGHT, room, "ra");
	long long ttl = num("TTL %s", mk.s, NULL);
	CHECK(ttl > JOBSTATE_RUN_RIGHT_TTL_S - 60 && ttl <= JOBSTATE_RUN_RIGHT_TTL_S);
	/* a value that is no mark of ours is an error to the reader, not a silent refusal */
	redisReply *r = redisCommand(admin, "SET %s junk", mk.s);
	if (r)
		freeReplyObject(r);
	CHECK(jobstate_run_right_read(rd, room, "ra", again, err, sizeof err) == -1);
	CHECK(strstr(err, "no run-right mark") != NULL);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (redis_server_start("/tmp/cc-turns.XXXXXX") < 0) {
		CHECK(!"redis-server started");
		return unit_summary("jobstate_turns");
	}
	char url[64], err[256];
	struct rds_target t;
	memset(&t, 0, sizeof t);
	snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
	CHECK(rds_parse_url(url, &t, err, sizeof err) == 0);
	rd = rds_new(&t, 5000);
	admin = redis_direct(redis_port);
	CHECK(rd != NULL && admin != NULL);
	if (rd && admin) {
		test_turns();
		test_cancelled_turns();
		test_older_jobs();
		test_run_right();
	}
	if (admin)
		redisFree(admin);
	if (rd)
		rds_free(rd);
	return unit_summary("jobstate_turns");
}

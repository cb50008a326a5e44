/* A WAIT after a job change whose drain stopped (lib/jobstate.c, jobstate_drain): the drain
 * runs outbox_apply in the room's slot, and when the first entry of a batch fails there, no
 * XDEL in the queue's slot follows. rds_wait(job key) after the change must still be sent on
 * the connection that carried the change, not refused as if that connection were gone.
 * Against a real redis-server started here, without a replica: a WAIT that is sent answers
 * "0 of 1 replicas acknowledged", one that is refused before it is sent says "cannot WAIT".
 * The room's entry is made to fail by a wrong type at its outbox mark (GET answers
 * WRONGTYPE inside the script). Needs redis-server (Debian's redis-server). */
#include "jobstate.h"
#include "rds.h"
#include "rkeys.h"
#include "../unit/unit.h"
#include "redis_server.h"
#include "job_fixture.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static struct rds *plain, *waiting;
static redisContext *admin;

static struct rds *client(long wait_replicas)
{
	char url[64], err[256];
	struct rds_target t;
	memset(&t, 0, sizeof t);
	snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
	if (rds_parse_url(url, &t, err, sizeof err) < 0)
		return NULL;
	t.wait_replicas = wait_replicas;
	t.wait_ms = 50;
	return rds_new(&t, 5000);
}

/* A queued execution of user 1 in room (made without WAIT); 1 when admitted. */
static int create(const char *room, const char *job)
{
	const char *f[6] = {"kind", "execution", "user", "1", "room", room};
	struct jobstate_new n = test_job(room, "1", job, f, 3, NULL);
	char err[256] = "";
	int rc = jobstate_create(plain, &n, NULL, NULL, err, sizeof err);
	if (rc != JOBSTATE_ADMITTED)
		fprintf(stderr, "create %s: %d %s\n", job, rc, err);
	return rc == JOBSTATE_ADMITTED;
}

static long long outbox_len(void)
{
	redisReply *r = redisCommand(admin, "XLEN %s", rkey0(RK_JOBS_OUTBOX));
	long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
	if (r)
		freeReplyObject(r);
	return n;
}

static int admin_ok(const char *fmt, const char *a)
{
	redisReply *r = redisCommand(admin, fmt, a);
	int ok = r && r->type != REDIS_REPLY_ERROR;
	if (r)
		freeReplyObject(r);
	return ok;
}

/* Cancels job of room on `waiting`, then WAITs on the job's key: the WAIT's message. */
static const char *cancel_then_wait(const char *room, const char *job)
{
	static char err[256];
	char cur[16], cerr[256] = "";
	struct rkey jk = rkey1(RK_JOB, job);
	int rc = jobstate_cancel(waiting, job, room, EV_EXECUTION, "{\"status\":\"cancelled\"}",
				 "cancelled", cur, sizeof cur, cerr, sizeof cerr);
	CHECK(rc == 1);
	if (rc != 1)
		fprintf(stderr, "cancel %s: %d %s\n", job, rc, cerr);
	err[0] = '\0';
	CHECK(rds_wait(waiting, jk.s, err, sizeof err) < 0); /* no replica: never enough */
	return err;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (redis_server_start("/tmp/cc-drainwait.XXXXXX") < 0) {
		CHECK(!"redis-server started");
		return unit_summary("jobstate_drain_wait");
	}
	plain = client(0);
	waiting = client(1);
	admin = redis_direct(redis_port);
	CHECK(plain && waiting && admin);
	if (!plain || !waiting || !admin)
		return unit_summary("jobstate_drain_wait");

	/* the drain goes through: its XDEL in the queue's slot comes last, the WAIT is sent */
	CHECK(create("roomok0001", "job-ok-1"));
	CHECK(outbox_len() == 0);
	const char *why = cancel_then_wait("roomok0001", "job-ok-1");
	CHECK(outbox_len() == 0);
	CHECK(strstr(why, "0 of 1 replicas acknowledged") != NULL);

	/* the room's entry fails, first of its batch: nothing is deleted, and the WAIT is
	 * still sent on the connection of the cancel */
	CHECK(create("roombad001", "job-bad-1"));
	CHECK(outbox_len() == 0);
	struct rkey mark = rkey1(RK_ROOM_OUTBOX, "roombad001");
	CHECK(admin_ok("DEL %s", mark.s) && admin_ok("HSET %s x y", mark.s));
	why = cancel_then_wait("roombad001", "job-bad-1");
	CHECK(outbox_len() == 1); /* the cancelled event waits for the next drain */
	CHECK(strstr(why, "0 of 1 replicas acknowledged") != NULL);
	if (!strstr(why, "0 of 1 replicas acknowledged"))
		fprintf(stderr, "WAIT after a stopped drain: %s\n", why);

	/* the same once the room takes entries again: the waiting entry goes first */
	CHECK(admin_ok("DEL %s", mark.s));
	CHECK(create("roombad001", "job-bad-2"));
	CHECK(outbox_len() == 0);

	/* a WAIT after a write and reads (cancel_member_runs: the run-right mark, then the
	 * room's line): sent when every command since went on the connection that wrote */
	struct rkey line = rkey1(RK_FAIR_ROOM, "roomrr0001"), rr = rkey2(RK_RUN_RIGHT, "roomrr0001", "1");
	char werr[256] = "";
	CHECK(jobstate_run_right_taken(waiting, "roomrr0001", "1", werr, sizeof werr) == 0);
	struct rds_mark written = rds_mark_get(waiting);
	redisReply *lr = rds_cmd(waiting, line.s, "LRANGE %s 0 -1", line.s);
	CHECK(lr && lr->type == REDIS_REPLY_ARRAY);
	if (lr)
		freeReplyObject(lr);
	CHECK(rds_wait_since(waiting, written, rr.s, werr, sizeof werr) < 0);
	CHECK(strstr(werr, "0 of 1 replicas acknowledged") != NULL);
	/* and refused when the read was sent again on a reopened connection: a WAIT there
	 * would count nothing of the mark */
	CHECK(jobstate_run_right_taken(waiting, "roomrr0001", "1", werr, sizeof werr) == 0);
	written = rds_mark_get(waiting);
	CHECK(admin_ok("CLIENT KILL TYPE %s SKIPME yes", "normal"));
	lr = rds_cmd(waiting, line.s, "LRANGE %s 0 -1", line.s);
	CHECK(lr && lr->type == REDIS_REPLY_ARRAY); /* a read: sent again on a new connection */
	if (lr)
		freeReplyObject(lr);
	werr[0] = '\0';
	CHECK(rds_wait_since(waiting, written, rr.s, werr, sizeof werr) < 0);
	CHECK(strstr(werr, "cannot WAIT") != NULL);
	if (!strstr(werr, "cannot WAIT"))
		fprintf(stderr, "WAIT after a reopened connection: %s\n", werr);

	redisFree(admin);
	rds_free(plain);
	rds_free(waiting);
	return unit_summary("jobstate_drain_wait");
}

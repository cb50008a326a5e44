/* The broker's hub (sse-broker/hub.c) against a real redis-server, started here on a free
 * port: an answer to a catch-up read sent before the subscriber's room was lost must not count
 * for the catch-up that starts once the room is subscribed again.
 *
 * How such an answer comes late: a read Redis refused for the moment (here MASTERDOWN: the
 * server was made a replica of a master that is not there, with replica-serve-stale-data no)
 * waits in the hub to be sent again, and a timer outlives the loss of the connection. The
 * server is then made a master again, the hub's connections are killed, and every write-class
 * command (a script is one) is held with CLIENT PAUSE WRITE, so that both the old read (its
 * timer sends it once the hub is connected again) and the new catch-up's first read wait at
 * the server; CLIENT UNPAUSE lets both be answered. The history holds three events and a read
 * takes one (catchup_bytes 1): the stream must get all three, in order, once, before it is
 * caught up. With the old read's answer counted as a page of the new catch-up, one of the two
 * pages from the start moves nothing on and the stream goes live after the first event,
 * skipping the other two.
 * Needs redis-server (Debian's redis-server). */
#include "../../sse-broker/hub.h"
#include "rkeys.h"
#include "../unit/unit.h"
#include "redis_server.h"

#include <event2/event.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_GOT 16
#define ROOM "stale-read"

/* The test's own connection: commands that set the stage. */
static redisContext *admin;

/* One command on the test's connection; 0 when Redis answered without an error. */
static int cmd(int argc, const char **argv)
{
	redisReply *r = redisCommandArgv(admin, argc, argv, NULL);
	int ok = r && r->type != REDIS_REPLY_ERROR;
	if (!ok)
		fprintf(stderr, "redis %s: %s\n", argv[0], r ? r->str : admin->errstr);
	if (r)
		freeReplyObject(r);
	return ok ? 0 : -1;
}

/* How many commands Redis refused with MASTERDOWN (INFO errorstats, Redis 7). */
static long masterdown_count(void)
{
	redisReply *r = redisCommand(admin, "INFO errorstats");
	long n = 0;
	if (r && r->type == REDIS_REPLY_STRING) {
		const char *at = strstr(r->str, "errorstat_MASTERDOWN:count=");
		if (at)
			n = strtol(at + strlen("errorstat_MASTERDOWN:count="), NULL, 10);
	}
	if (r)
		freeReplyObject(r);
	return n;
}

/* A subscriber that records what it takes. */
struct probe {
	struct hub_sub sub; /* first: the hub's callbacks get &sub */
	char got[MAX_GOT][96]; /* "type id" of each event taken */
	int n;
	int n_at_caught_up;
	int caught_up, failed, revoked, refs;
};

static struct event_base *base;

static int probe_deliver(struct hub_sub *s, struct room_event *ev)
{
	struct probe *p = (struct probe *)s;
	if (p->n < MAX_GOT)
		snprintf(p->got[p->n], sizeof p->got[0], "%s %s", ev->type, ev->idstr);
	p->n++;
	return 0;
}

static void probe_caught_up(struct hub_sub *s)
{
	struct probe *p = (struct probe *)s;
	if (p->caught_up++ == 0)
		p->n_at_caught_up = p->n;
}

static void probe_fail(struct hub_sub *s, const char *why)
{
	fprintf(stderr, "subscriber failed: %s\n", why);
	((struct probe *)s)->failed++;
}

static void probe_revoked(struct hub_sub *s, const char *why)
{
	fprintf(stderr, "subscriber revoked: %s\n", why);
	((struct probe *)s)->revoked++;
}

static void probe_reserve(struct hub_sub *s)
{
	((struct probe *)s)->refs++;
}

static void probe_release(struct hub_sub *s)
{
	((struct probe *)s)->refs--;
}

static const struct hub_sub_ops probe_ops = {
	.deliver = probe_deliver,
	.caught_up = probe_caught_up,
	.fail = probe_fail,
	.revoked = probe_revoked,
	.reserve = probe_reserve,
	.release = probe_release,
};

/* The stages, each entered once its condition holds (the step timer looks every 20 ms). */
enum stage {
	S_CONNECT,    /* the hub connects; `live` joins from now on (the room gets subscribed) */
	S_LIVE,	      /* `live` caught up: the server stops serving (MASTERDOWN) */
	S_REFUSING,   /* scripts refused: `late` joins from the start, its read is refused */
	S_REFUSED,    /* its read was refused (waits to be sent again): the connections go */
	S_LOST,	      /* the room is lost, then subscribed again: new reads are sent (held) */
	S_HELD,	      /* time for the old read's timer to send it (held too): both answered */
	S_DONE,
};

static struct {
	struct hub *h;
	struct probe live, late;
	enum stage stage;
	long long since; /* when the stage was entered */
	struct event *step;
	int dead_port;
	long refusals; /* MASTERDOWN answers before `late` joined */
	int error;
} t;

static void enter(enum stage s)
{
	t.stage = s;
	t.since = now_ms();
}

static void step_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	char port[16];
	switch (t.stage) {
	case S_CONNECT:
		if (!hub_redis_up(t.h))
			break;
		if (hub_join(t.h, &t.live.sub, ROOM, NULL) < 0) {
			t.error = 1;
			break;
		}
		enter(S_LIVE);
		break;
	case S_LIVE: {
		if (!t.live.caught_up)
			break;
		snprintf(port, sizeof port, "%d", t.dead_port);
		const char *stale[] = {"CONFIG", "SET", "replica-serve-stale-data", "no"};
		const char *of[] = {"REPLICAOF", "127.0.0.1", port};
		if (cmd(4, stale) < 0 || cmd(3, of) < 0)
			t.error = 1;
		enter(S_REFUSING);
		break;
	}
	case S_REFUSING: {
		/* the server refuses scripts once it knows it has no master */
		redisReply *r = redisCommand(admin, "EVAL %s 0", "return 1");
		int refused = r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MASTERDOWN", 10) == 0;
		if (r)
			freeReplyObject(r);
		if (!refused)
			break;
		struct room_evid start = {0, 0};
		t.refusals = masterdown_count();
		if (hub_join(t.h, &t.late.sub, ROOM, &start) < 0) {
			t.error = 1;
			break;
		}
		enter(S_REFUSED);
		break;
	}
	case S_REFUSED: {
		if (masterdown_count() <= t.refusals)
			break; /* its read not answered yet */
		/* serving again, but no script runs until CLIENT UNPAUSE; the hub's connections
		 * go (not this one), so its room is lost and subscribed again */
		const char *master[] = {"REPLICAOF", "NO", "ONE"};
		const char *pause[] = {"CLIENT", "PAUSE", "60000", "WRITE"};
		const char *kn[] = {"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"};
		const char *kp[] = {"CLIENT", "KILL", "TYPE", "pubsub"};
		if (cmd(3, master) < 0 || cmd(4, pause) < 0 || cmd(6, kn) < 0 || cmd(4, kp) < 0)
			t.error = 1;
		enter(S_LOST);
		break;
	}
	case S_LOST:
		/* `live` was live: it reads the history again only once its room was lost and
		 * subscribed again, and that read waits at the server; `late`'s new one was sent
		 * with it */
		if (t.live.sub.state == HUB_SUB_REPLAY)
			enter(S_HELD);
		break;
	case S_HELD: {
		/* the old read is tried again every 150 ms (HUB_RETRY_MS) while the hub is
		 * connected: after a second it has long been sent, and waits at the server */
		if (now_ms() - t.since < 1000)
			break;
		const char *unpause[] = {"CLIENT", "UNPAUSE"};
		if (cmd(2, unpause) < 0)
			t.error = 1;
		enter(S_DONE);
		break;
	}
	case S_DONE:
		if (t.late.caught_up || t.late.failed) {
			event_base_loopbreak(base);
			return;
		}
		break;
	}
	if (t.error || now_ms() - t.since > 20000) { /* generous: a loaded machine */
		fprintf(stderr, "stage %d: %s\n", (int)t.stage, t.error ? "a command failed"
									 : "no progress in 20 s");
		t.error = 1;
		event_base_loopbreak(base);
		return;
	}
	struct timeval tv = {0, 20000};
	evtimer_add(t.step, &tv);
}

/* A public room whose history holds 3000-0, 3001-0 and 3002-0. */
static int make_room(void)
{
	struct rkey ek = rkey1(RK_ROOM_EVENTS, ROOM), vk = rkey1(RK_ROOM_VISIBILITY, ROOM);
	const char *vis[] = {"SET", vk.s, "public"};
	int rc = cmd(3, vis);
	for (int i = 0; i < 3 && rc == 0; i++) {
		char id[32], data[32];
		snprintf(id, sizeof id, "%d-0", 3000 + i);
		snprintf(data, sizeof data, "{\"n\":%d}", i);
		const char *add[] = {"XADD", ek.s, id, "type", "operation", "data", data};
		rc |= cmd(7, add);
	}
	return rc;
}

static void test_stale_read_ignored(void)
{
	fprintf(stderr, "a catch-up read answered after its room was lost and subscribed again\n");
	CHECK(make_room() == 0);
	t.live.sub.ops = &probe_ops;
	t.late.sub.ops = &probe_ops;
	t.dead_port = free_port(); /* nothing listens there: the master never answers */
	base = event_base_new();
	CHECK(base != NULL);
	if (!base)
		return;
	struct hub_cfg cfg = {
		.heartbeat_ms = 15000,
		.presence_ttl_ms = 45000,
		.backoff_max_ms = 1000,
		.connect_timeout_ms = 3000,
		.room_linger_ms = 0,
		.max_held = 1000,
		.catchup_bytes = 1, /* one entry per read */
	};
	snprintf(cfg.redis.host, sizeof cfg.redis.host, "127.0.0.1");
	cfg.redis.port = redis_port;
	t.h = hub_new(base, &cfg);
	t.step = evtimer_new(base, step_cb, NULL);
	CHECK(t.h && t.step && t.dead_port > 0);
	if (t.h && t.step && t.dead_port > 0) {
		struct timeval now = {0, 0};
		enter(S_CONNECT);
		evtimer_add(t.step, &now);
		CHECK(event_base_dispatch(base) == 0);
	}
	CHECK(!t.error);
	CHECK(t.stage == S_DONE);
	/* every event of the history, in order, once, then caught up; never failed */
	CHECK(t.late.failed == 0);
	CHECK(t.late.revoked == 0);
	CHECK(t.late.caught_up == 1);
	CHECK(t.late.n_at_caught_up == 3);
	CHECK(t.late.n == 3);
	CHECK_STR(t.late.got[0], "operation 3000-0");
	CHECK_STR(t.late.got[1], "operation 3001-0");
	CHECK_STR(t.late.got[2], "operation 3002-0");
	CHECK(t.live.failed == 0);
	if (t.h) {
		hub_leave(t.h, &t.live.sub);
		hub_leave(t.h, &t.late.sub);
		hub_free(t.h);
	}
	/* every reply the hub waited for was answered (or let go) */
	CHECK(t.live.refs == 0);
	CHECK(t.late.refs == 0);
	if (t.step)
		event_free(t.step);
	event_base_free(base);
	/* the server as it was, whatever happened */
	const char *unpause[] = {"CLIENT", "UNPAUSE"};
	const char *master[] = {"REPLICAOF", "NO", "ONE"};
	cmd(2, unpause);
	cmd(3, master);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (redis_server_start("/tmp/cc-hub-stale.XXXXXX") < 0) {
		CHECK(!"redis-server started");
		return unit_summary("broker_hub_stale");
	}
	admin = redis_direct(redis_port);
	CHECK(admin != NULL);
	if (admin) {
		test_stale_read_ignored();
		redisFree(admin);
	}
	return unit_summary("broker_hub_stale");
}

/* The broker's hub (sse-broker/hub.c) catching a subscriber up against a real redis-server,
 * started here on a free port, when the subscriber's output is full: its deliver answers
 * HUB_BUSY to the `resync` the catch-up starts with. The two resyncs of a catch-up are
 *  - history_trimmed: the history no longer reaches back to the subscriber's position;
 *  - unknown_position: the position lies past everything the history holds.
 * Either one, refused once, must come again after hub_resume() (the owner's "my output
 * drained"), exactly once and before any event, and the catch-up must then end (caught_up),
 * never fail or stop. A catch-up read in several pages, paused by a full output in the middle
 * while the history is trimmed past the subscriber, must say so (history_trimmed) before the
 * first entry after the gap, and must not when nothing it lacks was trimmed. The catch-up
 * runs in the hub's Redis reply callback, so it cannot be driven without a server: this is a
 * program test, not a unit test.
 * Needs redis-server (Debian's redis-server). */
#include "../../sse-broker/hub.h"
#include "rkeys.h"
#include "../unit/unit.h"
#include "redis_server.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_GOT 40

/* One command, 0 when Redis answered without an error. */
static int cmd(redisContext *c, int argc, const char **argv)
{
	redisReply *r = redisCommandArgv(c, argc, argv, NULL);
	int ok = r && r->type != REDIS_REPLY_ERROR;
	if (!ok)
		fprintf(stderr, "redis: %s\n", r ? r->str : c->errstr);
	if (r)
		freeReplyObject(r);
	return ok ? 0 : -1;
}

/* A public room whose history holds the entries ids[0..n) (ms-0 each), of which the first
 * `trim` are then trimmed away (XDEL keeps the stream's count of entries added). */
static int make_room(const char *room, const long *ids, int n, int trim)
{
	redisContext *c = redis_direct(redis_port);
	if (!c)
		return -1;
	struct rkey ek = rkey1(RK_ROOM_EVENTS, room), vk = rkey1(RK_ROOM_VISIBILITY, room);
	int rc = 0;
	const char *vis[] = {"SET", vk.s, "public"};
	rc |= cmd(c, 3, vis);
	for (int i = 0; i < n && rc == 0; i++) {
		char id[32], data[32];
		snprintf(id, sizeof id, "%ld-0", ids[i]);
		snprintf(data, sizeof data, "{\"n\":%d}", i);
		const char *add[] = {"XADD", ek.s, id, "type", "operation", "data", data};
		rc |= cmd(c, 7, add);
	}
	if (trim > 0 && rc == 0) {
		char keep[16];
		snprintf(keep, sizeof keep, "%d", n - trim);
		const char *xt[] = {"XTRIM", ek.s, "MAXLEN", "=", keep};
		rc |= cmd(c, 5, xt);
	}
	redisFree(c);
	return rc;
}

/* A subscriber whose output is full for its first `busy` deliveries. */
struct probe {
	struct hub_sub sub; /* first: the hub's callbacks get &sub */
	struct hub *h;
	struct event_base *base;
	struct event *resume, *poll, *deadline;
	const char *room;
	struct room_evid start;
	int busy;
	int busy_at;	      /* also refused: the busy_at-th event offered (1-based; 0: none) */
	const char *trim_min; /* XTRIM MINID to this id while the replay waits (NULL: none) */
	int offered;
	int busy_answers;
	int resumes;
	char got[MAX_GOT][96]; /* "type id data" of each event taken */
	int n;
	int caught_up, failed, revoked, refs;
};

static int probe_deliver(struct hub_sub *s, struct room_event *ev)
{
	struct probe *p = (struct probe *)s;
	int refuse = ++p->offered == p->busy_at;
	if (!refuse && p->busy > 0) {
		p->busy--;
		refuse = 1;
	}
	if (refuse) {
		p->busy_answers++;
		/* the output drains later, as a connection's would: never from inside deliver */
		struct timeval tv = {0, 20000};
		evtimer_add(p->resume, &tv);
		return HUB_BUSY;
	}
	if (p->n < MAX_GOT)
		snprintf(p->got[p->n], sizeof p->got[0], "%s %s %.*s", ev->type, ev->idstr,
			 (int)ev->data_len, ev->data);
	p->n++;
	return 0;
}

static void probe_caught_up(struct hub_sub *s)
{
	struct probe *p = (struct probe *)s;
	p->caught_up++;
	event_base_loopbreak(p->base);
}

static void probe_fail(struct hub_sub *s, const char *why)
{
	struct probe *p = (struct probe *)s;
	fprintf(stderr, "subscriber failed: %s\n", why);
	p->failed++;
	event_base_loopbreak(p->base);
}

static void probe_revoked(struct hub_sub *s, const char *why)
{
	struct probe *p = (struct probe *)s;
	fprintf(stderr, "subscriber revoked: %s\n", why);
	p->revoked++;
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

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct probe *p = arg;
	p->resumes++;
	if (p->trim_min) {
		/* the room moves on while this reader waits: its history turns over */
		redisContext *c = redis_direct(redis_port);
		struct rkey ek = rkey1(RK_ROOM_EVENTS, p->room);
		const char *xt[] = {"XTRIM", ek.s, "MINID", p->trim_min};
		if (!c || cmd(c, 4, xt) < 0)
			p->failed++;
		if (c)
			redisFree(c);
		p->trim_min = NULL;
	}
	hub_resume(p->h, &p->sub);
}

/* Joins once the hub is connected (a join before that is tested elsewhere). */
static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct probe *p = arg;
	if (!hub_redis_up(p->h)) {
		struct timeval tv = {0, 20000};
		evtimer_add(p->poll, &tv);
		return;
	}
	if (hub_join(p->h, &p->sub, p->room, &p->start) < 0) {
		p->failed++;
		event_base_loopbreak(p->base);
	}
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct probe *p = arg;
	fprintf(stderr, "no end of the catch-up within the deadline\n");
	event_base_loopbreak(p->base);
}

/* Runs one catch-up of room from start (after `busy` refusals, and one of the busy_at-th
 * event, before whose resumption the history is trimmed to trim_min when that is given),
 * reading at most `bytes` of history a page (0: the hub's default); fills p. 0 or -1. */
static int catch_up_paged(struct probe *p, const char *room, struct room_evid start, int busy,
			  size_t bytes, int busy_at, const char *trim_min)
{
	memset(p, 0, sizeof *p);
	p->sub.ops = &probe_ops;
	p->sub.catchup_bytes = bytes;
	p->room = room;
	p->start = start;
	p->busy = busy;
	p->busy_at = busy_at;
	p->trim_min = trim_min;
	int rc = -1;
	p->base = event_base_new();
	if (!p->base)
		return -1;
	struct hub_cfg cfg = {
		.heartbeat_ms = 15000,
		.presence_ttl_ms = 45000,
		.backoff_max_ms = 1000,
		.connect_timeout_ms = 3000,
		.room_linger_ms = 0,
		.max_held = 1000,
	};
	snprintf(cfg.redis.host, sizeof cfg.redis.host, "127.0.0.1");
	cfg.redis.port = redis_port;
	p->h = hub_new(p->base, &cfg);
	p->resume = evtimer_new(p->base, resume_cb, p);
	p->poll = evtimer_new(p->base, poll_cb, p);
	p->deadline = evtimer_new(p->base, deadline_cb, p);
	if (!p->h || !p->resume || !p->poll || !p->deadline)
		goto out;
	struct timeval now = {0, 0}, limit = {20, 0}; /* generous: a loaded machine */
	evtimer_add(p->poll, &now);
	evtimer_add(p->deadline, &limit);
	if (event_base_dispatch(p->base) < 0)
		goto out;
	rc = 0;
out:
	if (p->h) {
		hub_leave(p->h, &p->sub);
		hub_free(p->h);
	}
	if (p->resume)
		event_free(p->resume);
	if (p->poll)
		event_free(p->poll);
	if (p->deadline)
		event_free(p->deadline);
	event_base_free(p->base);
	return rc;
}

static int catch_up(struct probe *p, const char *room, struct room_evid start, int busy)
{
	return catch_up_paged(p, room, start, busy, 0, 0, NULL);
}

/* The catch-up met a full output `busy` times, resumed after each, and ended caught up:
 * neither failed nor revoked, no reference left. */
static void check_settled(const struct probe *p, int busy)
{
	CHECK(p->busy_answers == busy);
	CHECK(p->resumes == busy);
	CHECK(p->failed == 0);
	CHECK(p->revoked == 0);
	CHECK(p->caught_up == 1);
	CHECK(p->refs == 0);
}

/* history_trimmed: 1000..1009 written, 1000..1004 trimmed away; the client was at 1001. */
static void test_trimmed_busy(int busy)
{
	fprintf(stderr, "history_trimmed, output full %d time(s)\n", busy);
	char room[32];
	snprintf(room, sizeof room, "trimmed-%d", busy);
	long ids[10];
	for (int i = 0; i < 10; i++)
		ids[i] = 1000 + i;
	CHECK(make_room(room, ids, 10, 5) == 0);
	struct probe p;
	struct room_evid start = {1001, 0};
	CHECK(catch_up(&p, room, start, busy) == 0);
	check_settled(&p, busy);
	/* the resync first, once, then every entry kept, in order */
	CHECK(p.n == 6);
	CHECK_STR(p.got[0], "resync 1001-0 {\"reason\":\"history_trimmed\"}");
	for (int i = 1; i < 6 && i < p.n; i++) {
		char want[96];
		snprintf(want, sizeof want, "operation %d-0 {\"n\":%d}", 1004 + i, 4 + i);
		CHECK_STR(p.got[i], want);
	}
}

/* unknown_position: 2000..2002 written; the client says it was at 5000. */
static void test_unknown_busy(int busy)
{
	fprintf(stderr, "unknown_position, output full %d time(s)\n", busy);
	char room[32];
	snprintf(room, sizeof room, "unknown-%d", busy);
	long ids[3] = {2000, 2001, 2002};
	CHECK(make_room(room, ids, 3, 0) == 0);
	struct probe p;
	struct room_evid start = {5000, 0};
	CHECK(catch_up(&p, room, start, busy) == 0);
	check_settled(&p, busy);
	/* told once to start over from the newest event, and nothing else */
	CHECK(p.n == 1);
	CHECK_STR(p.got[0], "resync 2002-0 {\"reason\":\"unknown_position\"}");
}

/* A catch-up of 20 entries (4000-0..4020-0; the client was at 4000-0) read a few entries a
 * page, whose output is full at the 3rd entry. While it waits, the history is trimmed up to
 * (not including) trim_min. Returns the probe's events in got, checked settled. */
static void paged(struct probe *p, const char *room, const char *trim_min)
{
	long ids[21];
	for (int i = 0; i <= 20; i++)
		ids[i] = 4000 + i;
	CHECK(make_room(room, ids, 21, 0) == 0);
	struct room_evid start = {4000, 0};
	/* an entry is about 30 bytes: two or three a page, so 20 take several pages and the
	 * trimming falls between two of them */
	CHECK(catch_up_paged(p, room, start, 0, 100, 3, trim_min) == 0);
	check_settled(p, 1);
}

/* Entries 3..10 trimmed while the replay waited at entry 3: after entries 1 and 2, the
 * client is told that the history no longer reaches back to it, then gets 11..20 in order,
 * never 11 straight after 2 as if nothing were missing. */
static void test_paged_trimmed(void)
{
	fprintf(stderr, "catch-up over several pages, history trimmed between two of them\n");
	struct probe p;
	paged(&p, "paged-trimmed", "4011-0");
	CHECK(p.n == 13);
	CHECK_STR(p.got[0], "operation 4001-0 {\"n\":1}");
	CHECK_STR(p.got[1], "operation 4002-0 {\"n\":2}");
	CHECK_STR(p.got[2], "resync 4002-0 {\"reason\":\"history_trimmed\"}");
	for (int i = 3; i < 13 && i < p.n; i++) {
		char want[96];
		snprintf(want, sizeof want, "operation %d-0 {\"n\":%d}", 4008 + i, 8 + i);
		CHECK_STR(p.got[i], want);
	}
}

/* The same catch-up with nothing trimmed, or only entries the client already has (up to and
 * including entry 2, its last): no resync, every entry once and in order. */
static void test_paged_intact(const char *room, const char *trim_min)
{
	fprintf(stderr, "catch-up over several pages, %s trimmed between two of them\n",
		trim_min ? "only delivered entries" : "nothing");
	struct probe p;
	paged(&p, room, trim_min);
	CHECK(p.n == 20);
	for (int i = 0; i < 20 && i < p.n; i++) {
		char want[96];
		snprintf(want, sizeof want, "operation %d-0 {\"n\":%d}", 4001 + i, 1 + i);
		CHECK_STR(p.got[i], want);
	}
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (redis_server_start("/tmp/cc-hub-busy.XXXXXX") < 0) {
		CHECK(!"redis-server started");
		return unit_summary("broker_hub_busy");
	}
	for (int busy = 0; busy <= 2; busy++) {
		test_trimmed_busy(busy);
		test_unknown_busy(busy);
	}
	test_paged_trimmed();
	test_paged_intact("paged-intact", NULL);
	test_paged_intact("paged-delivered-trimmed", "4003-0");
	return unit_summary("broker_hub_busy");
}

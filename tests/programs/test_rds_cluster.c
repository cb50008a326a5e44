/* lib/rds against real Redis servers, started here on free ports (no mocks):
 *  - one server over TCP and over a unix socket (REDIS_URL): commands, scripts by SHA,
 *    pipelines, WAIT with no replica, and a write whose answer is lost is not sent twice;
 *  - a Redis Cluster of three masters and three replicas (redis-server --cluster-enabled,
 *    redis-cli --cluster create): keys of many rooms spread over the three masters and read
 *    back; a stale slot map followed through MOVED; ASK during a slot migration (a key not
 *    migrated yet and one migrated); WAIT with a replica; kill -9 of a master: its replica
 *    takes over and the same client carries on within seconds; a slot with no node left
 *    fails clearly, without hanging.
 * Needs redis-server and redis-cli (Debian's redis-server and redis-tools). */
#include "rds.h"
#include "rscript.h"
#include "rslot.h"
#include "../unit/unit.h"
#include "redis_direct.h"
#include "waits.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NODES 6
/* how long the cluster client keeps trying while the cluster reconfigures: the default
 * (5 s) with room for a loaded test machine; the figure each failover took is printed */
#define RETRY_MS 8000
#define MAX_PIDS 16

static char dir[256];
static pid_t pids[MAX_PIDS];
static int npids;

/* A TCP port free now, whose cluster bus port (+10000) is free too. */
static int free_port(void)
{
	for (int tries = 0; tries < 50; tries++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t l = sizeof a;
		if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
		    getsockname(s, (struct sockaddr *)&a, &l) < 0) {
			if (s >= 0)
				close(s);
			continue;
		}
		int port = ntohs(a.sin_port);
		close(s);
		if (port + 10000 > 65535)
			continue;
		int b = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in bb = {.sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
					 .sin_port = htons((uint16_t)(port + 10000))};
		int ok = b >= 0 && bind(b, (struct sockaddr *)&bb, sizeof bb) == 0;
		if (b >= 0)
			close(b);
		if (ok)
			return port;
	}
	return -1;
}

static pid_t spawn(const char *log, char *const argv[])
{
	pid_t p = fork();
	if (p == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (p > 0 && npids < MAX_PIDS)
		pids[npids++] = p;
	return p;
}

static void kill9(pid_t p)
{
	if (p <= 0)
		return;
	kill(p, SIGKILL);
	waitpid(p, NULL, 0);
	for (int i = 0; i < npids; i++)
		if (pids[i] == p)
			pids[i] = 0;
}

static void cleanup(void)
{
	for (int i = 0; i < npids; i++)
		kill9(pids[i]);
	if (dir[0]) {
		char cmd[300];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
}

static int wait_ping(int port, const char *sock, long ms)
{
	long long end = now_ms() + ms;
	while (now_ms() < end) {
		struct timeval tv = {1, 0};
		redisContext *c = sock ? redisConnectUnixWithTimeout(sock, tv) : redis_direct(port);
		if (c && !c->err) {
			redisReply *r = redisCommand(c, "PING");
			int ok = r && r->type == REDIS_REPLY_STATUS;
			if (r)
				freeReplyObject(r);
			redisFree(c);
			if (ok)
				return 0;
		} else if (c) {
			redisFree(c);
		}
		sleep_ms(50);
	}
	return -1;
}

static pid_t start_redis(int port, const char *sock, int cluster)
{
	char p[16], log[300], conf[300], d[300];
	snprintf(p, sizeof p, "%d", port);
	snprintf(log, sizeof log, "%s/redis-%d.log", dir, port);
	snprintf(conf, sizeof conf, "nodes-%d.conf", port);
	snprintf(d, sizeof d, "%s", dir);
	char *argv[32];
	int n = 0;
	argv[n++] = "redis-server";
	argv[n++] = "--port";
	argv[n++] = p;
	argv[n++] = "--bind";
	argv[n++] = "127.0.0.1";
	argv[n++] = "--save";
	argv[n++] = "";
	argv[n++] = "--appendonly";
	argv[n++] = "no";
	argv[n++] = "--dir";
	argv[n++] = d;
	if (sock) {
		argv[n++] = "--unixsocket";
		argv[n++] = (char *)sock;
	}
	if (cluster) {
		argv[n++] = "--cluster-enabled";
		argv[n++] = "yes";
		argv[n++] = "--cluster-config-file";
		argv[n++] = conf;
		argv[n++] = "--cluster-node-timeout";
		argv[n++] = "1000";
		/* a replica's first sync at once (the default waits 5 s for more replicas) */
		argv[n++] = "--repl-diskless-sync-delay";
		argv[n++] = "0";
	}
	argv[n] = NULL;
	pid_t pid = spawn(log, argv);
	if (pid < 0 || wait_ping(port, NULL, 10000) < 0) {
		fprintf(stderr, "redis-server on port %d did not start (see %s)\n", port, log);
		return -1;
	}
	return pid;
}

static struct rds *client(const char *url, const char *cluster, long retry_ms, long wait_replicas,
			  int timeout_ms)
{
	struct rds_target t;
	char err[256];
	if (rds_parse_url(url, &t, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return NULL;
	}
	if (cluster)
		snprintf(t.cluster, sizeof t.cluster, "%s", cluster);
	t.retry_ms = retry_ms;
	t.wait_replicas = wait_replicas;
	t.wait_ms = 200;
	return rds_new(&t, timeout_ms);
}

static int reply_is(redisReply *r, const char *s)
{
	int ok = r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
		 strcmp(r->str, s) == 0;
	if (r)
		freeReplyObject(r);
	return ok;
}

static long long reply_int(redisReply *r)
{
	long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -999;
	if (r)
		freeReplyObject(r);
	return v;
}

/* A script of the test's own, with its SHA-1 worked out here. */
static char test_sha[41];
static const struct rscript test_script = {
	.name = "test_get_set",
	.text = "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])",
	.sha = test_sha,
};

static void init_script(void)
{
	unsigned char md[SHA_DIGEST_LENGTH];
	SHA1((const unsigned char *)test_script.text, strlen(test_script.text), md);
	for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
		snprintf(test_sha + 2 * i, 3, "%02x", md[i]);
}

/* ---- one server ---- */

static void single_basics(struct rds *d, const char *label)
{
	fprintf(stderr, "single server (%s)\n", label);
	CHECK(rds_ready(d) == 0);
	CHECK(!rds_is_cluster(d));
	CHECK(reply_is(rds_cmd(d, "cc:room:{a}:doc", "SET %s %s", "cc:room:{a}:doc", "hello"), "OK"));
	CHECK(reply_is(rds_cmd(d, "cc:room:{a}:doc", "GET %s", "cc:room:{a}:doc"), "hello"));
	CHECK(reply_is(rds_cmd(d, NULL, "PING"), "PONG"));
	/* a script: NOSCRIPT the first time (the text is sent), by SHA after */
	const char *args[] = {"cc:room:{a}:x", "v1"};
	CHECK(reply_is(rds_script(d, &test_script, 1, 2, args, NULL), "v1"));
	args[1] = "v2";
	CHECK(reply_is(rds_script(d, &test_script, 1, 2, args, NULL), "v2"));
	/* a pipeline: answers in order */
	struct rds_pipe *p = rds_pipe_new(d);
	CHECK(p != NULL);
	if (p) {
		const char *g1[] = {"GET", "cc:room:{a}:doc"}, *g2[] = {"GET", "cc:room:{a}:x"},
			   *g3[] = {"GET", "cc:none"};
		CHECK(rds_pipe_add(p, g1[1], 2, g1, NULL) == 0);
		CHECK(rds_pipe_add(p, g2[1], 2, g2, NULL) == 0);
		CHECK(rds_pipe_add(p, g3[1], 2, g3, NULL) == 0);
		CHECK(reply_is(rds_pipe_reply(p), "hello"));
		CHECK(reply_is(rds_pipe_reply(p), "v2"));
		redisReply *nil = rds_pipe_reply(p);
		CHECK(nil && nil->type == REDIS_REPLY_NIL);
		if (nil)
			freeReplyObject(nil);
		CHECK(rds_pipe_reply(p) == NULL); /* no fourth */
		rds_pipe_free(p);
	}
	/* a pipeline dropped unread leaves the connection clean for the next command */
	p = rds_pipe_new(d);
	if (p) {
		const char *g[] = {"GET", "cc:room:{a}:doc"};
		CHECK(rds_pipe_add(p, g[1], 2, g, NULL) == 0);
		rds_pipe_free(p);
	}
	CHECK(reply_is(rds_cmd(d, "cc:room:{a}:x", "GET %s", "cc:room:{a}:x"), "v2"));
	/* an error answer is handed back as it is */
	redisReply *e = rds_cmd(d, "cc:room:{a}:doc", "INCR %s", "cc:room:{a}:doc");
	CHECK(e && e->type == REDIS_REPLY_ERROR);
	/* and is the reason rds_error gives, for a caller that only learns it failed */
	CHECK(strstr(rds_error(d), "not an integer") != NULL);
	char err[256];
	CHECK(rds_reply_failed(d, e, err, sizeof err) == 1 && strstr(err, "not an integer"));
}

static void test_single(void)
{
	int port = free_port();
	char sock[300], url[340];
	snprintf(sock, sizeof sock, "%s/redis.sock", dir);
	pid_t pid = start_redis(port, sock, 0);
	CHECK(pid > 0);
	if (pid <= 0)
		return;

	snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
	struct rds *d = client(url, NULL, 0, 0, 2000);
	CHECK(d != NULL);
	if (d)
		single_basics(d, "tcp");
	/* WAIT: nothing asked, nothing to wait for */
	char err[256];
	CHECK(d && rds_wait(d, "cc:room:{a}:x", err, sizeof err) == 0);
	rds_free(d);

	snprintf(url, sizeof url, "unix://%s", sock);
	d = client(url, NULL, 0, 1, 2000);
	CHECK(d != NULL);
	if (d) {
		single_basics(d, "unix socket");
		/* one replica asked for, none exists: WAIT says so within its time */
		CHECK(reply_is(rds_cmd(d, "cc:room:{b}:doc", "SET %s 1", "cc:room:{b}:doc"), "OK"));
		long long t0 = now_ms();
		CHECK(rds_wait(d, "cc:room:{b}:doc", err, sizeof err) == -1);
		CHECK(strstr(err, "0 of 1 replicas") != NULL);
		CHECK(now_ms() - t0 < 2000);
		/* WAIT must follow the write it covers, on its connection and slot */
		CHECK(rds_wait(d, "cc:room:{other}:doc", err, sizeof err) == -1);
	}
	rds_free(d);

	/* a write whose answer never came is not sent again, even with retries allowed: the
	 * server is stopped, the INCR times out, the server goes on and runs it once */
	snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
	d = client(url, NULL, 3000, 0, 300);
	if (d) {
		CHECK(reply_is(rds_cmd(d, "cc:once", "SET %s 0", "cc:once"), "OK"));
		kill(pid, SIGSTOP);
		long long t0 = now_ms();
		redisReply *r = rds_cmd(d, "cc:once", "INCR %s", "cc:once");
		long long took = now_ms() - t0;
		CHECK(r == NULL);
		if (r)
			freeReplyObject(r);
		CHECK(took < 1500); /* one timeout, no retry loop */
		fprintf(stderr, "  lost answer: failed after %lld ms: %s\n", took, rds_error(d));
		/* the server goes on: it ran the INCR once */
		kill(pid, SIGCONT);
		CHECK(reply_is(rds_cmd(d, "cc:once", "GET %s", "cc:once"), "1"));
		rds_free(d);
	}

	/* nothing listens: a clear failure at once */
	d = client("redis://127.0.0.1:1", NULL, 0, 0, 500);
	if (d) {
		CHECK(rds_ready(d) == -1);
		CHECK(rds_cmd(d, "k", "GET %s", "k") == NULL);
		CHECK(strstr(rds_error(d), "redis:") != NULL);
		rds_free(d);
	}
	kill9(pid);
}

/* ---- a cluster ---- */

struct node {
	int port;
	pid_t pid;
	char id[64];
	char master[64]; /* its master's id; "" for a master */
};
static struct node nodes[NODES];

/* Reads who is master of whom from CLUSTER NODES as seen by a live node. */
static int read_topology(void)
{
	for (int i = 0; i < NODES; i++) {
		if (!nodes[i].pid)
			continue;
		redisContext *c = redis_direct(nodes[i].port);
		redisReply *r = c ? redisCommand(c, "CLUSTER NODES") : NULL;
		if (!r || r->type != REDIS_REPLY_STRING) {
			if (r)
				freeReplyObject(r);
			if (c)
				redisFree(c);
			continue;
		}
		char *save = NULL;
		for (char *line = strtok_r(r->str, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			char id[64], addr[128], flags[128], master[64];
			if (sscanf(line, "%63s %127s %127s %63s", id, addr, flags, master) != 4)
				continue;
			int port = atoi(strchr(addr, ':') ? strchr(addr, ':') + 1 : "0");
			for (int k = 0; k < NODES; k++)
				if (nodes[k].port == port) {
					snprintf(nodes[k].id, sizeof nodes[k].id, "%s", id);
					snprintf(nodes[k].master, sizeof nodes[k].master, "%s",
						 strstr(flags, "master") ? "" : master);
				}
		}
		freeReplyObject(r);
		redisFree(c);
		return 0;
	}
	return -1;
}

/* The live node that serves slot as master, as CLUSTER SLOTS on a live node says. */
static struct node *owner_of(unsigned slot)
{
	for (int i = 0; i < NODES; i++) {
		if (!nodes[i].pid)
			continue;
		redisContext *c = redis_direct(nodes[i].port);
		redisReply *r = c ? redisCommand(c, "CLUSTER SLOTS") : NULL;
		struct rslot_map m;
		char err[128];
		struct node *res = NULL;
		if (r && rslot_map_parse(&m, r, "127.0.0.1", err, sizeof err) == 0) {
			const struct rslot_node *n = rslot_map_node(&m, slot);
			for (int k = 0; n && k < NODES; k++)
				if (nodes[k].port == n->port)
					res = &nodes[k];
			rslot_map_free(&m);
		}
		if (r)
			freeReplyObject(r);
		if (c)
			redisFree(c);
		if (res)
			return res;
	}
	return NULL;
}

static int cluster_ok(int port)
{
	redisContext *c = redis_direct(port);
	redisReply *r = c ? redisCommand(c, "CLUSTER INFO") : NULL;
	int ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok");
	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	return ok;
}

static int wait_cluster_ok(long ms)
{
	long long end = now_ms() + ms;
	while (now_ms() < end) {
		int all = 1;
		for (int i = 0; i < NODES && all; i++)
			if (nodes[i].pid && !cluster_ok(nodes[i].port))
				all = 0;
		if (all)
			return 0;
		sleep_ms(100);
	}
	return -1;
}

/* Every master has its replica in sync (state=online): WAIT and failovers need it. */
static int replicas_online(void)
{
	for (int i = 0; i < NODES; i++) {
		if (!nodes[i].pid || nodes[i].master[0])
			continue;
		redisContext *c = redis_direct(nodes[i].port);
		redisReply *r = c ? redisCommand(c, "INFO replication") : NULL;
		int ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "state=online");
		if (r)
			freeReplyObject(r);
		if (c)
			redisFree(c);
		if (!ok)
			return 0;
	}
	return 1;
}

static int start_cluster(void)
{
	char *argv[NODES + 8];
	char addrs[NODES][32];
	int n = 0;
	argv[n++] = "redis-cli";
	argv[n++] = "--cluster";
	argv[n++] = "create";
	for (int i = 0; i < NODES; i++) {
		nodes[i].port = free_port();
		if (nodes[i].port < 0 || (nodes[i].pid = start_redis(nodes[i].port, NULL, 1)) < 0)
			return -1;
		snprintf(addrs[i], sizeof addrs[i], "127.0.0.1:%d", nodes[i].port);
		argv[n++] = addrs[i];
	}
	argv[n++] = "--cluster-replicas";
	argv[n++] = "1";
	argv[n++] = "--cluster-yes";
	argv[n] = NULL;
	char log[300];
	snprintf(log, sizeof log, "%s/create.log", dir);
	pid_t p = spawn(log, argv);
	int status = 0;
	if (p < 0 || waitpid(p, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "redis-cli --cluster create failed (see %s)\n", log);
		return -1;
	}
	for (int i = 0; i < npids; i++)
		if (pids[i] == p)
			pids[i] = 0;
	if (wait_cluster_ok(20000) < 0) {
		fprintf(stderr, "the cluster did not reach cluster_state:ok\n");
		return -1;
	}
	/* every replica known to be one: the failover test needs it */
	long long end = now_ms() + 20000;
	while (now_ms() < end) {
		int masters = 0;
		if (read_topology() == 0)
			for (int i = 0; i < NODES; i++)
				masters += nodes[i].master[0] == '\0';
		if (masters == 3 && replicas_online())
			return 0;
		sleep_ms(100);
	}
	fprintf(stderr, "the replicas did not come in sync\n");
	return -1;
}

/* The node's id for CLUSTER SETSLOT. */
static int cmd_ok(int port, const char *fmt, ...)
{
	redisContext *c = redis_direct(port);
	if (!c)
		return 0;
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	int ok = r && r->type != REDIS_REPLY_ERROR;
	if (r && !ok)
		fprintf(stderr, "  port %d: %s\n", port, r->str);
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return ok;
}

static void key_in_slot_of(char *out, size_t cap, const char *room, const char *what)
{
	snprintf(out, cap, "cc:room:{%s}:%s", room, what);
}

static void test_spread(struct rds *d)
{
	fprintf(stderr, "cluster: keys of 300 rooms\n");
	char key[64], val[32];
	int bad = 0;
	for (int i = 0; i < 300; i++) {
		char room[16];
		snprintf(room, sizeof room, "r%d", i);
		key_in_slot_of(key, sizeof key, room, "doc");
		snprintf(val, sizeof val, "v%d", i);
		if (!reply_is(rds_cmd(d, key, "SET %s %s", key, val), "OK"))
			bad++;
	}
	CHECK(bad == 0);
	/* each master holds some of them */
	int masters_with_keys = 0;
	for (int i = 0; i < NODES; i++) {
		if (nodes[i].master[0])
			continue;
		redisContext *c = redis_direct(nodes[i].port);
		long long n = c ? reply_int(redisCommand(c, "DBSIZE")) : -1;
		if (c)
			redisFree(c);
		masters_with_keys += n > 0;
	}
	CHECK(masters_with_keys == 3);
	/* and everything reads back */
	bad = 0;
	for (int i = 0; i < 300; i++) {
		char room[16];
		snprintf(room, sizeof room, "r%d", i);
		key_in_slot_of(key, sizeof key, room, "doc");
		snprintf(val, sizeof val, "v%d", i);
		if (!reply_is(rds_cmd(d, key, "GET %s", key), val))
			bad++;
	}
	CHECK(bad == 0);
	/* a pipeline over rooms of several nodes answers in order */
	struct rds_pipe *p = rds_pipe_new(d);
	char keys[40][64];
	for (int i = 0; p && i < 40; i++) {
		char room[16];
		snprintf(room, sizeof room, "r%d", i);
		key_in_slot_of(keys[i], sizeof keys[i], room, "doc");
		const char *argv[] = {"GET", keys[i]};
		CHECK(rds_pipe_add(p, keys[i], 2, argv, NULL) == 0);
	}
	bad = 0;
	for (int i = 0; p && i < 40; i++) {
		snprintf(val, sizeof val, "v%d", i);
		if (!reply_is(rds_pipe_reply(p), val))
			bad++;
	}
	CHECK(bad == 0);
	rds_pipe_free(p);
	/* a script runs where its first key lives */
	const char *args[] = {"cc:room:{r7}:x", "scripted"};
	CHECK(reply_is(rds_script(d, &test_script, 1, 2, args, NULL), "scripted"));
	CHECK(reply_is(rds_cmd(d, args[0], "GET %s", args[0]), "scripted"));
}

/* Moves slot (with its keys) from one master to another, as redis-cli --cluster reshard
 * would, then tells every master. */
static int move_slot(unsigned slot, struct node *from, struct node *to, const char *const *keys,
		     int nkeys)
{
	if (!cmd_ok(to->port, "CLUSTER SETSLOT %u IMPORTING %s", slot, from->id) ||
	    !cmd_ok(from->port, "CLUSTER SETSLOT %u MIGRATING %s", slot, to->id))
		return -1;
	for (int i = 0; i < nkeys; i++)
		if (!cmd_ok(from->port, "MIGRATE 127.0.0.1 %d %s 0 5000", to->port, keys[i]))
			return -1;
	for (int i = 0; i < NODES; i++)
		if (nodes[i].pid && !nodes[i].master[0] &&
		    !cmd_ok(nodes[i].port, "CLUSTER SETSLOT %u NODE %s", slot, to->id))
			return -1;
	return 0;
}

static struct node *other_master(const struct node *not)
{
	for (int i = 0; i < NODES; i++)
		if (nodes[i].pid && !nodes[i].master[0] && &nodes[i] != not)
			return &nodes[i];
	return NULL;
}

static void test_moved(struct rds *d)
{
	fprintf(stderr, "cluster: a stale map meets MOVED\n");
	const char *key = "cc:room:{moving}:doc";
	unsigned slot = rslot_of(key, strlen(key));
	CHECK(reply_is(rds_cmd(d, key, "SET %s before", key), "OK"));
	struct node *from = owner_of(slot), *to = other_master(from);
	CHECK(from && to);
	if (!from || !to)
		return;
	CHECK(move_slot(slot, from, to, &key, 1) == 0);
	struct rds_stats a, b;
	rds_stats(d, &a);
	/* the client still thinks `from` owns the slot */
	CHECK(reply_is(rds_cmd(d, key, "GET %s", key), "before"));
	CHECK(reply_is(rds_cmd(d, key, "SET %s after", key), "OK"));
	rds_stats(d, &b);
	CHECK(b.moved == a.moved + 1); /* once: the slot was updated at once */
	CHECK(b.refreshes >= a.refreshes + 1);
	redisContext *c = redis_direct(to->port);
	CHECK(c && reply_is(redisCommand(c, "GET %s", key), "after"));
	if (c)
		redisFree(c);
	/* a pipeline with a stale entry: move it back and read through a pipeline */
	CHECK(move_slot(slot, to, from, &key, 1) == 0);
	struct rds_pipe *p = rds_pipe_new(d);
	const char *g[] = {"GET", key}, *g2[] = {"GET", "cc:room:{r1}:doc"};
	CHECK(p && rds_pipe_add(p, key, 2, g, NULL) == 0 && rds_pipe_add(p, g2[1], 2, g2, NULL) == 0);
	CHECK(p && reply_is(rds_pipe_reply(p), "after"));
	CHECK(p && reply_is(rds_pipe_reply(p), "v1"));
	rds_pipe_free(p);
	rds_stats(d, &a);
	CHECK(a.moved == b.moved + 1);
}

static void test_ask(struct rds *d)
{
	fprintf(stderr, "cluster: ASK during a migration\n");
	const char *k1 = "cc:room:{migr}:doc", *k2 = "cc:room:{migr}:ops", *k3 = "cc:room:{migr}:new";
	unsigned slot = rslot_of(k1, strlen(k1));
	CHECK(reply_is(rds_cmd(d, k1, "SET %s one", k1), "OK"));
	CHECK(reply_is(rds_cmd(d, k2, "SET %s two", k2), "OK"));
	struct node *from = owner_of(slot), *to = other_master(from);
	CHECK(from && to);
	if (!from || !to)
		return;
	CHECK(cmd_ok(to->port, "CLUSTER SETSLOT %u IMPORTING %s", slot, from->id));
	CHECK(cmd_ok(from->port, "CLUSTER SETSLOT %u MIGRATING %s", slot, to->id));
	CHECK(cmd_ok(from->port, "MIGRATE 127.0.0.1 %d %s 0 5000", to->port, k2));
	struct rds_stats a, b;
	rds_stats(d, &a);
	/* k1 is still on the old owner: answered there, no redirection */
	CHECK(reply_is(rds_cmd(d, k1, "GET %s", k1), "one"));
	rds_stats(d, &b);
	CHECK(b.asked == a.asked && b.moved == a.moved);
	/* k2 has moved: ASK, then ASKING + GET on the new node */
	CHECK(reply_is(rds_cmd(d, k2, "GET %s", k2), "two"));
	rds_stats(d, &b);
	CHECK(b.asked == a.asked + 1);
	/* a new key of the slot is created on the importing node */
	CHECK(reply_is(rds_cmd(d, k3, "SET %s three", k3), "OK"));
	rds_stats(d, &a);
	CHECK(a.asked == b.asked + 1);
	/* the map did not change for an ASK: k1 is still asked of the old owner */
	CHECK(a.moved == b.moved);
	/* finish the migration; the client follows with one MOVED */
	CHECK(cmd_ok(from->port, "MIGRATE 127.0.0.1 %d %s 0 5000", to->port, k1));
	for (int i = 0; i < NODES; i++)
		if (nodes[i].pid && !nodes[i].master[0])
			CHECK(cmd_ok(nodes[i].port, "CLUSTER SETSLOT %u NODE %s", slot, to->id));
	CHECK(reply_is(rds_cmd(d, k1, "GET %s", k1), "one"));
	CHECK(reply_is(rds_cmd(d, k3, "GET %s", k3), "three"));
	rds_stats(d, &b);
	CHECK(b.moved == a.moved + 1);
}

static struct node *replica_of(const struct node *m)
{
	for (int i = 0; i < NODES; i++)
		if (nodes[i].pid && !strcmp(nodes[i].master, m->id))
			return &nodes[i];
	return NULL;
}

static void test_failover(struct rds *d)
{
	char err[256];
	fprintf(stderr, "cluster: WAIT with a replica\n");
	const char *key = "cc:room:{fail}:doc";
	unsigned slot = rslot_of(key, strlen(key));
	CHECK(reply_is(rds_cmd(d, key, "SET %s kept", key), "OK"));
	int waited = rds_wait(d, key, err, sizeof err);
	CHECK(waited == 0);
	struct node *m = owner_of(slot);
	if (waited != 0 && m) {
		fprintf(stderr, "  WAIT: %s\n", err);
		redisContext *ic = redis_direct(m->port);
		redisReply *ir = ic ? redisCommand(ic, "INFO replication") : NULL;
		if (ir && ir->type == REDIS_REPLY_STRING)
			fprintf(stderr, "%s\n", ir->str);
		if (ir)
			freeReplyObject(ir);
		if (ic)
			redisFree(ic);
	}
	CHECK(m != NULL);
	if (!m)
		return;
	struct node *r = replica_of(m);
	CHECK(r != NULL);
	if (!r)
		return;
	/* the replica holds it: WAIT said so */
	redisContext *c = redis_direct(r->port);
	if (c) {
		CHECK(reply_is(redisCommand(c, "READONLY"), "OK"));
		CHECK(reply_is(redisCommand(c, "GET %s", key), "kept"));
		redisFree(c);
	}

	fprintf(stderr, "cluster: kill -9 of the master of the slot (port %d)\n", m->port);
	kill9(m->pid);
	m->pid = 0;
	long long t0 = now_ms();
	redisReply *got = rds_cmd(d, key, "GET %s", key);
	long long took = now_ms() - t0;
	fprintf(stderr, "  read after the failover: %lld ms (%s)\n", took,
		got ? "answered" : rds_error(d));
	CHECK(reply_is(got, "kept"));
	CHECK(took < RETRY_MS);
	CHECK(reply_is(rds_cmd(d, key, "SET %s written-after", key), "OK"));
	CHECK(owner_of(slot) == r);
	/* the new master has no replica: WAIT says the write is not safe */
	t0 = now_ms();
	CHECK(rds_wait(d, key, err, sizeof err) == -1);
	CHECK(strstr(err, "0 of 1") != NULL);
	CHECK(now_ms() - t0 < 2000);
	/* other slots never stopped */
	CHECK(reply_is(rds_cmd(d, "cc:room:{r3}:doc", "GET %s", "cc:room:{r3}:doc"), "v3"));

	fprintf(stderr, "cluster: the slot loses its last node\n");
	if (wait_cluster_ok(10000) < 0)
		fprintf(stderr, "  (the cluster is not ok yet)\n");
	kill9(r->pid);
	r->pid = 0;
	t0 = now_ms();
	got = rds_cmd(d, key, "GET %s", key);
	took = now_ms() - t0;
	CHECK(got == NULL);
	if (got)
		freeReplyObject(got);
	fprintf(stderr, "  failed after %lld ms: %s\n", took, rds_error(d));
	CHECK(took < RETRY_MS + 3000); /* the retry bound and one connect, no hang */
	CHECK(strncmp(rds_error(d), "redis:", 6) == 0);
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

/* RDS_BENCH=N: what WAIT costs a commit-like write on this cluster. One client sends N
 * scripts in turn (each: HINCRBY of a revision, RPUSH of an op and LTRIM, in one room's
 * slot, rooms spread over the three masters), without WAIT and with WAIT 1 after each;
 * prints writes per second and p50/p99 in microseconds. Figures in docs/BENCHMARKS.md. */
static const struct rscript bench_script = {
	.name = "bench_commit",
	.text = "local r = redis.call('HINCRBY', KEYS[1], 'revision', 1) "
		"redis.call('RPUSH', KEYS[2], ARGV[1]) redis.call('LTRIM', KEYS[2], -100, -1) "
		"return r",
	.sha = "",
};

static void bench_wait(struct rds *d, int n)
{
	static char sha[41];
	unsigned char md[SHA_DIGEST_LENGTH];
	SHA1((const unsigned char *)bench_script.text, strlen(bench_script.text), md);
	for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
		snprintf(sha + 2 * i, 3, "%02x", md[i]);
	struct rscript sc = bench_script;
	sc.sha = sha;
	long long *lat = calloc((size_t)n, sizeof *lat);
	if (!lat)
		return;
	for (int with_wait = 0; with_wait < 2; with_wait++) {
		int fails = 0;
		long long t0 = now_ms();
		for (int i = 0; i < n; i++) {
			char dk[64], ok[64], err[256];
			snprintf(dk, sizeof dk, "cc:room:{bench%d}:doc", i % 64);
			snprintf(ok, sizeof ok, "cc:room:{bench%d}:ops", i % 64);
			const char *args[] = {dk, ok, "{\"op\":[1,\"x\"]}"};
			struct timespec a, b;
			clock_gettime(CLOCK_MONOTONIC, &a);
			redisReply *r = rds_script(d, &sc, 2, 3, args, NULL);
			int good = r && r->type == REDIS_REPLY_INTEGER;
			if (r)
				freeReplyObject(r);
			if (good && with_wait && rds_wait(d, dk, err, sizeof err) < 0)
				good = 0;
			clock_gettime(CLOCK_MONOTONIC, &b);
			fails += !good;
			lat[i] = (b.tv_sec - a.tv_sec) * 1000000LL + (b.tv_nsec - a.tv_nsec) / 1000;
		}
		long long ms = now_ms() - t0;
		qsort(lat, (size_t)n, sizeof *lat, cmp_ll);
		printf("bench: %s: %d writes in %lld ms: %.0f/s, p50 %lld us, p99 %lld us, %d failed\n",
		       with_wait ? "WAIT 1 200 after each" : "no WAIT              ", n, ms,
		       ms ? n * 1000.0 / (double)ms : 0.0, lat[n / 2], lat[n * 99 / 100], fails);
	}
	free(lat);
}

/* A client of one server (REDIS_URL, no REDIS_CLUSTER) pointed at a master of the cluster:
 * its own slots work; a key of another master's slot fails at once (NULL, also inside a
 * pipeline and for a script) with a reason that says to set REDIS_CLUSTER, never an error
 * reply the caller would take for the answer. */
static void test_single_on_node(void)
{
	fprintf(stderr, "cluster: a one-server client given one of its nodes\n");
	struct node *m = NULL;
	for (int i = 0; i < NODES && !m; i++)
		if (!nodes[i].master[0])
			m = &nodes[i];
	CHECK(m != NULL);
	if (!m)
		return;
	/* a key this master serves and one it does not */
	char mine[64] = "", other[64] = "";
	for (int i = 0; i < 1000 && (!mine[0] || !other[0]); i++) {
		char k[64];
		snprintf(k, sizeof k, "cc:room:{n%d}:doc", i);
		struct node *o = owner_of(rslot_of(k, strlen(k)));
		if (o == m && !mine[0])
			snprintf(mine, sizeof mine, "%s", k);
		else if (o && o != m && !other[0])
			snprintf(other, sizeof other, "%s", k);
	}
	CHECK(mine[0] && other[0]);
	char url[64];
	snprintf(url, sizeof url, "redis://127.0.0.1:%d", m->port);
	struct rds *d = client(url, NULL, 0, 0, 1000);
	CHECK(d != NULL);
	if (!d)
		return;
	CHECK(reply_is(rds_cmd(d, mine, "SET %s %s", mine, "here"), "OK"));
	redisReply *r = rds_cmd(d, other, "SET %s %s", other, "there");
	CHECK(r == NULL);
	if (r)
		freeReplyObject(r);
	CHECK(strstr(rds_error(d), "REDIS_CLUSTER") != NULL);
	CHECK(strstr(rds_error(d), "MOVED") != NULL);
	fprintf(stderr, "  %s\n", rds_error(d));
	/* a pipeline over both, the foreign key first (as the session check's two GETs) */
	struct rds_pipe *p = rds_pipe_new(d);
	CHECK(p != NULL);
	if (p) {
		const char *g1[] = {"GET", other}, *g2[] = {"GET", mine};
		CHECK(rds_pipe_add(p, other, 2, g1, NULL) == 0);
		CHECK(rds_pipe_add(p, mine, 2, g2, NULL) == 0);
		r = rds_pipe_reply(p);
		CHECK(r == NULL);
		if (r)
			freeReplyObject(r);
		CHECK(strstr(rds_error(d), "REDIS_CLUSTER") != NULL);
		CHECK(reply_is(rds_pipe_reply(p), "here"));
		rds_pipe_free(p);
	}
	const char *args[] = {other, "scripted"};
	r = rds_script(d, &test_script, 1, 2, args, NULL);
	CHECK(r == NULL);
	if (r)
		freeReplyObject(r);
	CHECK(strstr(rds_error(d), "REDIS_CLUSTER") != NULL);
	/* the node's own slots still answer */
	CHECK(reply_is(rds_cmd(d, mine, "GET %s", mine), "here"));
	rds_free(d);
}

static void test_cluster(void)
{
	if (start_cluster() < 0) {
		CHECK(!"the cluster started");
		return;
	}
	char seeds[128];
	/* one seed that is a replica and one that is down: the map is found anyway */
	snprintf(seeds, sizeof seeds, "127.0.0.1:1,127.0.0.1:%d", nodes[NODES - 1].port);
	struct rds *d = client(NULL, seeds, RETRY_MS, 1, 1000);
	CHECK(d != NULL);
	if (!d)
		return;
	CHECK(rds_is_cluster(d));
	CHECK(rds_ready(d) == 0);
	test_spread(d);
	test_single_on_node();
	const char *bench = getenv("RDS_BENCH");
	if (bench && atoi(bench) > 0)
		bench_wait(d, atoi(bench));
	test_moved(d);
	test_ask(d);
	test_failover(d);
	struct rds_stats st;
	rds_stats(d, &st);
	fprintf(stderr, "  client: %lu MOVED, %lu ASK, %lu retries, %lu maps read, %lu connects\n",
		st.moved, st.asked, st.retries, st.refreshes, st.connects);
	rds_free(d);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof dir, "/tmp/cc-rds-test.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	atexit(cleanup);
	init_script();
	test_single();
	test_cluster();
	return unit_summary("rds_cluster");
}

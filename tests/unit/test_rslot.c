/* Redis Cluster slots (lib/rslot.h): a key's slot against what a real cluster node answered
 * to CLUSTER KEYSLOT, the slot map read from a CLUSTER SLOTS answer (parsed from protocol
 * text by hiredis's own reader, as a connection would), MOVED/ASK redirections and the
 * REDIS_CLUSTER seed list, with malformed, oversized and hostile input for each. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rslot.h"
#include "unit.h"

static unsigned slot(const char *k) { return rslot_of(k, strlen(k)); }

static void test_slots(void)
{
	/* each figure is what `redis-cli cluster keyslot KEY` answered on redis-server 7.0 */
	CHECK(slot("foo") == 12182);
	CHECK(slot("bar") == 5061);
	CHECK(slot("123456789") == 12739);
	CHECK(slot("{user1000}.following") == 3443);
	CHECK(slot("foo{}{bar}") == 8363);     /* an empty first tag: the whole key */
	CHECK(slot("foo{{bar}}zap") == 4015);  /* the tag is "{bar" */
	CHECK(slot("foo{bar}{zap}") == 5061);  /* the first tag only: "bar" */
	CHECK(slot("{}") == 15257);
	CHECK(slot("cc:room:{abc}:doc") == 7638);
	CHECK(slot("cc:access") == 14002);
	CHECK(slot("") == 0);
	CHECK(slot("a{b") == 13340);	       /* no closing brace */
	CHECK(slot("x}{y}") == slot("y"));
	CHECK(slot("cc:room:{abc}:doc") == slot("cc:room:{abc}:ops"));
	CHECK(slot("cc:room:{abc}") == slot("abc"));
	/* binary-safe: a NUL inside the key counts */
	CHECK(rslot_of("a\0b", 3) != rslot_of("a", 1));
	/* a long key stays in range */
	char *big = malloc(1 << 20);
	CHECK(big != NULL);
	if (big) {
		memset(big, 'k', 1 << 20);
		CHECK(rslot_of(big, 1 << 20) < RSLOT_COUNT);
		free(big);
	}
}

/* len bytes of protocol text (they may hold NULs) read by hiredis's reader */
static redisReply *parse_n(const char *resp, size_t len)
{
	redisReader *r = redisReaderCreate();
	void *rep = NULL;
	if (!r)
		return NULL;
	if (redisReaderFeed(r, resp, len) != REDIS_OK ||
	    redisReaderGetReply(r, &rep) != REDIS_OK)
		rep = NULL;
	redisReaderFree(r);
	return rep;
}

static redisReply *parse(const char *resp) { return parse_n(resp, strlen(resp)); }

/* three masters, each with a replica; the third master does not know its address */
static const char *SLOTS3 =
	"*3\r\n"
	"*4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n"
	"*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nid\r\n"
	"*4\r\n:5461\r\n:10922\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n"
	"*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$2\r\nid\r\n"
	"*3\r\n:10923\r\n:16383\r\n*3\r\n$1\r\n?\r\n:7002\r\n$2\r\nid\r\n";

static void test_map(void)
{
	struct rslot_map m;
	char err[128];
	redisReply *rep = parse(SLOTS3);
	CHECK(rep != NULL);
	CHECK(rslot_map_parse(&m, rep, "10.0.0.9", err, sizeof err) == 0);
	CHECK(m.nnodes == 3);
	CHECK(m.covered == RSLOT_COUNT);
	const struct rslot_node *n = rslot_map_node(&m, 0);
	CHECK(n && n->port == 7000 && strcmp(n->host, "127.0.0.1") == 0);
	n = rslot_map_node(&m, 5461);
	CHECK(n && n->port == 7001);
	n = rslot_map_node(&m, slot("foo")); /* 12182 */
	CHECK(n && n->port == 7002 && strcmp(n->host, "10.0.0.9") == 0);
	CHECK(rslot_map_node(&m, RSLOT_COUNT) == NULL);
	rslot_map_free(&m);
	freeReplyObject(rep);

	/* a cluster with a hole: slots 100..199 have no owner */
	rep = parse("*2\r\n*3\r\n:0\r\n:99\r\n*2\r\n$1\r\nh\r\n:1\r\n"
		    "*3\r\n:200\r\n:16383\r\n*2\r\n$1\r\nh\r\n:1\r\n");
	CHECK(rslot_map_parse(&m, rep, NULL, err, sizeof err) == 0);
	CHECK(m.nnodes == 1); /* the same node twice counts once */
	CHECK(m.covered == RSLOT_COUNT - 100);
	CHECK(rslot_map_node(&m, 150) == NULL);
	CHECK(rslot_map_node(&m, 99) != NULL);
	rslot_map_free(&m);
	freeReplyObject(rep);

	/* an empty answer: a node that is not part of a cluster yet */
	rep = parse("*0\r\n");
	CHECK(rslot_map_parse(&m, rep, NULL, err, sizeof err) == 0);
	CHECK(m.covered == 0 && m.nnodes == 0);
	rslot_map_free(&m);
	freeReplyObject(rep);

	static const char *bad[] = {
		"+OK\r\n",
		"-ERR This instance has cluster support disabled\r\n",
		"*1\r\n:1\r\n",
		"*1\r\n*2\r\n:0\r\n:1\r\n",
		"*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\nh\r\n:1\r\n",     /* from > to */
		"*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n", /* past the last slot */
		"*1\r\n*3\r\n:-1\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n",
		"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:0\r\n",     /* port 0 */
		"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:70000\r\n",
		"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n:1\r\n:1\r\n",	       /* host not a string */
		"*1\r\n*3\r\n:0\r\n:5\r\n*1\r\n$1\r\nh\r\n",	       /* no port */
		"*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$0\r\n\r\n:1\r\n",      /* no host, no fallback */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		rep = parse(bad[i]);
		err[0] = '\0';
		CHECK(rslot_map_parse(&m, rep, NULL, err, sizeof err) == -1);
		CHECK(err[0] != '\0');
		CHECK(m.nodes == NULL && m.covered == 0);
		if (rep)
			freeReplyObject(rep);
	}
	CHECK(rslot_map_parse(&m, NULL, NULL, err, sizeof err) == -1);

	/* a host with a NUL inside is refused: it used to be taken as the name before the NUL
	 * ("h"), a node the answer did not name, and never the same node twice (found by
	 * tests/fuzz/fuzz_rslot.c) */
	static const char nul_host[] = "*2\r\n*3\r\n:0\r\n:99\r\n*2\r\n$3\r\nh\0x\r\n:1\r\n"
				       "*3\r\n:100\r\n:199\r\n*2\r\n$3\r\nh\0y\r\n:1\r\n";
	rep = parse_n(nul_host, sizeof nul_host - 1);
	CHECK(rep != NULL && rep->elements == 2);
	err[0] = '\0';
	CHECK(rslot_map_parse(&m, rep, NULL, err, sizeof err) == -1);
	CHECK(err[0] != '\0' && m.nodes == NULL && m.nnodes == 0 && m.covered == 0);
	if (rep)
		freeReplyObject(rep);

	/* a host name longer than a node can hold */
	char *resp = malloc(1200);
	CHECK(resp != NULL);
	if (resp) {
		char host[400];
		memset(host, 'h', sizeof host - 1);
		host[sizeof host - 1] = '\0';
		snprintf(resp, 1200, "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$%zu\r\n%s\r\n:1\r\n",
			 strlen(host), host);
		rep = parse(resp);
		CHECK(rep != NULL);
		CHECK(rslot_map_parse(&m, rep, NULL, err, sizeof err) == -1);
		if (rep)
			freeReplyObject(rep);
		free(resp);
	}

	CHECK(rslot_map_single(&m, "/run/redis.sock", 0) == 0);
	CHECK(m.covered == RSLOT_COUNT && m.nnodes == 1);
	CHECK(rslot_map_node(&m, 16383) == &m.nodes[0]);
	rslot_map_free(&m);
}

static int redirect(const char *s, int *ask, unsigned *sl, struct rslot_node *to)
{
	return rslot_redirect(s, strlen(s), ask, sl, to);
}

static void test_redirect(void)
{
	int ask = -1;
	unsigned sl = 0;
	struct rslot_node to;
	CHECK(redirect("MOVED 3999 127.0.0.1:6381", &ask, &sl, &to) == 1);
	CHECK(ask == 0 && sl == 3999 && to.port == 6381 && strcmp(to.host, "127.0.0.1") == 0);
	CHECK(redirect("ASK 12182 ::1:7002", &ask, &sl, &to) == 1);
	CHECK(ask == 1 && sl == 12182 && to.port == 7002 && strcmp(to.host, "::1") == 0);
	CHECK(redirect("MOVED 0 :7000", &ask, &sl, &to) == 1); /* the answering node's host */
	CHECK(to.host[0] == '\0' && to.port == 7000);
	static const char *no[] = {
		"ERR unknown command",
		"MOVED",
		"MOVED ",
		"MOVED x 1.2.3.4:5",
		"MOVED 16384 h:1",
		"MOVED 5 h",
		"MOVED 5 h:0",
		"MOVED 5 h:65536",
		"MOVED 5 h:12x",
		"MOVED 5 h:",
		"MOVED 5 h:1 extra",
		"MOVED -1 h:1",
		"moved 5 h:1",
		/* decimal digits only, as Redis writes them: strtoul and strtol took a sign and
		 * white space, and read a large negative slot as a small one (found by
		 * tests/fuzz/fuzz_rslot.c) */
		"MOVED +5 h:1",
		"MOVED  5 h:1",
		"MOVED -0 h:1",
		"MOVED -18446744073709551615 h:1",
		"ASK 5 h:+7000",
		"ASK 5 h:\t7000",
		"ASK 5 h:-0",
		"ASKING",
		"CROSSSLOT Keys in request don't hash to the same slot",
	};
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		CHECK(redirect(no[i], &ask, &sl, &to) == 0);
	CHECK(rslot_redirect(NULL, 0, &ask, &sl, &to) == 0);
	/* a NUL inside the text ends the address there, and a huge text is not read */
	CHECK(rslot_redirect("MOVED 5 h:1\0junk", 16, &ask, &sl, &to) == 1 && to.port == 1);
	char *huge = malloc(100000);
	CHECK(huge != NULL);
	if (huge) {
		memset(huge, '1', 100000);
		memcpy(huge, "MOVED 5 h:", 10);
		CHECK(rslot_redirect(huge, 100000, &ask, &sl, &to) == 0);
		free(huge);
	}
	char longhost[400];
	snprintf(longhost, sizeof longhost, "MOVED 5 %0300d:1", 7);
	CHECK(redirect(longhost, &ask, &sl, &to) == 0);
}

static void test_seeds(void)
{
	struct rslot_node *v;
	int n;
	char err[160];
	CHECK(rslot_parse_seeds("127.0.0.1:7000,127.0.0.1:7001, localhost:7002 ,[::1]:7003", &v,
				&n, err, sizeof err) == 0);
	CHECK(n == 4);
	if (n == 4) {
		CHECK(strcmp(v[0].host, "127.0.0.1") == 0 && v[0].port == 7000);
		CHECK(v[1].port == 7001);
		CHECK(strcmp(v[2].host, "localhost") == 0 && v[2].port == 7002);
		CHECK(strcmp(v[3].host, "::1") == 0 && v[3].port == 7003);
	}
	free(v);
	static const char *bad[] = {"", "host", "host:", ":7000", "h:0", "h:99999", "h:7000,",
				    "h:70a0", "h:7000,,h:7001", "h:1234567"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		CHECK(rslot_parse_seeds(bad[i], &v, &n, err, sizeof err) == -1);
		CHECK(v == NULL && n == 0 && err[0] != '\0');
	}
	CHECK(rslot_parse_seeds(NULL, &v, &n, err, sizeof err) == -1);
	/* 65 nodes is past the bound; 64 is fine */
	char list[65 * 12 + 1];
	size_t o = 0;
	for (int i = 0; i < 65; i++)
		o += (size_t)snprintf(list + o, sizeof list - o, "%sh:%d", i ? "," : "", 7000 + i);
	CHECK(rslot_parse_seeds(list, &v, &n, err, sizeof err) == -1);
	*strrchr(list, ',') = '\0';
	CHECK(rslot_parse_seeds(list, &v, &n, err, sizeof err) == 0 && n == 64);
	free(v);
	char host[600];
	memset(host, 'a', 300);
	strcpy(host + 300, ":7000");
	CHECK(rslot_parse_seeds(host, &v, &n, err, sizeof err) == -1);
}

int main(void)
{
	test_slots();
	test_map();
	test_redirect();
	test_seeds();
	return unit_summary("rslot");
}

/* The sharded pub/sub protocol layer (sse-broker/rsub.h) without a socket: the server's bytes
 * go in as Redis 7 sends them (RESP2), classified messages come out. What hiredis 0.14's async
 * dispatcher gets wrong is checked here: every ssubscribe confirmation of a multi-channel
 * subscription, smessage with nothing pending, our SUNSUBSCRIBE's answer told from the one
 * the server pushes when a slot moves. Then malformed, oversized and hostile input: each is
 * refused as a broken stream (the caller closes the connection), never a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../sse-broker/rsub.h"
#include "unit.h"

struct seen {
	int n;
	enum rsub_kind kind[16];
	enum rsub_cmd cmd[16];
	char channel[16][64];
	char data[16][128];
	int stop_at; /* the callback answers -1 at this message (1-based); 0 never */
};

static int collect(void *arg, const struct rsub_event *ev)
{
	struct seen *s = arg;
	if (s->n < 16) {
		s->kind[s->n] = ev->kind;
		s->cmd[s->n] = ev->cmd;
		snprintf(s->channel[s->n], sizeof s->channel[0], "%.*s", (int)ev->channel_len,
			 ev->channel ? ev->channel : "");
		snprintf(s->data[s->n], sizeof s->data[0], "%.*s", (int)ev->len,
			 ev->data ? ev->data : "");
	}
	s->n++;
	return s->stop_at && s->n == s->stop_at ? -1 : 0;
}

static int feed(struct rsub_proto *p, struct seen *s, const char *bytes)
{
	return rsub_proto_feed(p, bytes, strlen(bytes), collect, s);
}

#define SSUB(ch, n) "*3\r\n$10\r\nssubscribe\r\n$" #n "\r\n" ch "\r\n:1\r\n"

static void test_subscribe_and_messages(void)
{
	struct rsub_proto p;
	struct seen s = {0};
	CHECK(rsub_proto_init(&p) == 0);
	CHECK(rsub_proto_sent(&p, RSUB_CMD_AUTH, NULL) == 0);
	CHECK(rsub_proto_sent(&p, RSUB_CMD_SSUB, "cc:room:{a}") == 0);
	CHECK(rsub_proto_sent(&p, RSUB_CMD_SSUB, "cc:access") == 0);
	CHECK(p.npending == 3);
	/* AUTH's +OK, both confirmations, then a message: in one read, split anywhere */
	const char *all = "+OK\r\n" SSUB("cc:room:{a}", 11) SSUB("cc:access", 9)
		"*3\r\n$8\r\nsmessage\r\n$11\r\ncc:room:{a}\r\n$5\r\nhello\r\n";
	size_t len = strlen(all);
	for (size_t i = 0; i < len; i++)
		CHECK(rsub_proto_feed(&p, all + i, 1, collect, &s) == 0); /* byte by byte */
	CHECK(s.n == 4);
	CHECK(s.kind[0] == RSUB_OK && s.cmd[0] == RSUB_CMD_AUTH);
	CHECK(s.kind[1] == RSUB_SUBSCRIBED);
	CHECK_STR(s.channel[1], "cc:room:{a}");
	CHECK(s.kind[2] == RSUB_SUBSCRIBED);
	CHECK_STR(s.channel[2], "cc:access");
	CHECK(s.kind[3] == RSUB_MESSAGE && s.cmd[3] == RSUB_CMD_NONE);
	CHECK_STR(s.channel[3], "cc:room:{a}");
	CHECK_STR(s.data[3], "hello");
	CHECK(p.npending == 0);

	/* messages with nothing pending, a binary payload, then PING answered in subscribed mode */
	s.n = 0;
	CHECK(feed(&p, &s, "*3\r\n$8\r\nsmessage\r\n$9\r\ncc:access\r\n$0\r\n\r\n") == 0);
	CHECK(rsub_proto_sent(&p, RSUB_CMD_PING, NULL) == 0);
	CHECK(feed(&p, &s, "*2\r\n$4\r\npong\r\n$0\r\n\r\n") == 0);
	CHECK(s.n == 2 && s.kind[0] == RSUB_MESSAGE && s.data[0][0] == '\0');
	CHECK(s.kind[1] == RSUB_PONG);
	/* and before any subscription: +PONG */
	CHECK(rsub_proto_sent(&p, RSUB_CMD_PING, NULL) == 0);
	CHECK(feed(&p, &s, "+PONG\r\n") == 0);
	CHECK(s.n == 3 && s.kind[2] == RSUB_PONG);
	rsub_proto_clear(&p);
}

static void test_unsubscribe_ours_and_pushed(void)
{
	struct rsub_proto p;
	struct seen s = {0};
	CHECK(rsub_proto_init(&p) == 0);
	/* the server unsubscribes a channel on its own (its slot moved): nothing was pending */
	CHECK(feed(&p, &s, "*3\r\n$12\r\nsunsubscribe\r\n$5\r\nroom1\r\n:0\r\n") == 0);
	CHECK(s.n == 1 && s.kind[0] == RSUB_PUSHED_OUT);
	CHECK_STR(s.channel[0], "room1");
	/* ours: the answer when it is the one due */
	CHECK(rsub_proto_sent(&p, RSUB_CMD_SUNSUB, "room2") == 0);
	CHECK(feed(&p, &s, "*3\r\n$12\r\nsunsubscribe\r\n$5\r\nroom2\r\n:0\r\n") == 0);
	CHECK(s.n == 2 && s.kind[1] == RSUB_UNSUBSCRIBED && s.cmd[1] == RSUB_CMD_SUNSUB);
	/* a push for another channel while ours is due is a push, and ours stays due */
	CHECK(rsub_proto_sent(&p, RSUB_CMD_SUNSUB, "room3") == 0);
	CHECK(feed(&p, &s, "*3\r\n$12\r\nsunsubscribe\r\n$5\r\nroom4\r\n:0\r\n") == 0);
	CHECK(s.n == 3 && s.kind[2] == RSUB_PUSHED_OUT);
	CHECK(p.npending == 1);
	CHECK(feed(&p, &s, "*3\r\n$12\r\nsunsubscribe\r\n$5\r\nroom3\r\n:0\r\n") == 0);
	CHECK(s.n == 4 && s.kind[3] == RSUB_UNSUBSCRIBED && p.npending == 0);
	rsub_proto_clear(&p);
}

static void test_errors_go_to_their_command(void)
{
	struct rsub_proto p;
	struct seen s = {0};
	CHECK(rsub_proto_init(&p) == 0);
	CHECK(rsub_proto_sent(&p, RSUB_CMD_SSUB, "cc:room:{x}") == 0);
	CHECK(rsub_proto_sent(&p, RSUB_CMD_SSUB, "cc:room:{y}") == 0);
	CHECK(feed(&p, &s, "-MOVED 1234 127.0.0.1:7001\r\n" SSUB("cc:room:{y}", 11)) == 0);
	CHECK(s.n == 2);
	CHECK(s.kind[0] == RSUB_ERROR && s.cmd[0] == RSUB_CMD_SSUB);
	CHECK_STR(s.channel[0], "cc:room:{x}");
	CHECK_STR(s.data[0], "MOVED 1234 127.0.0.1:7001");
	CHECK(s.kind[1] == RSUB_SUBSCRIBED);
	CHECK_STR(s.channel[1], "cc:room:{y}");
	/* AUTH refused */
	CHECK(rsub_proto_sent(&p, RSUB_CMD_AUTH, NULL) == 0);
	CHECK(feed(&p, &s, "-WRONGPASS invalid username-password pair\r\n") == 0);
	CHECK(s.n == 3 && s.kind[2] == RSUB_ERROR && s.cmd[2] == RSUB_CMD_AUTH);
	/* the callback stops the stream: the rest is not read */
	s.stop_at = 4;
	CHECK(feed(&p, &s, "*3\r\n$8\r\nsmessage\r\n$1\r\na\r\n$1\r\n1\r\n"
			   "*3\r\n$8\r\nsmessage\r\n$1\r\na\r\n$1\r\n2\r\n") == -1);
	CHECK(s.n == 4);
	rsub_proto_clear(&p);
}

/* Each input alone on a fresh stream (with one SSUBSCRIBE of "c" pending): -1, no crash. */
static void test_hostile(void)
{
	static const char *bad[] = {
		"?what\r\n",					       /* not RESP */
		"$-5\r\n",					       /* bad length */
		"*2\r\n$3\r\nabc\r\n:x\r\n",			       /* bad integer */
		"-ERR max number of clients reached\r\n-ERR again\r\n", /* errors nobody asked */
		"+OK\r\n",					       /* status for nothing */
		":42\r\n",					       /* a lone integer */
		"$5\r\nhello\r\n",				       /* a lone string */
		"*0\r\n",					       /* an empty array */
		"*-1\r\n",					       /* a nil array */
		"*1\r\n$10\r\nssubscribe\r\n",			       /* too short */
		"*3\r\n:1\r\n$1\r\nc\r\n:1\r\n",		       /* kind not a string */
		"*3\r\n$10\r\nssubscribe\r\n:5\r\n:1\r\n",	       /* channel not a string */
		"*3\r\n$10\r\nssubscribe\r\n$1\r\nd\r\n:1\r\n",	       /* not the channel asked */
		"*3\r\n$10\r\nssubscribe\r\n$1\r\nc\r\n$1\r\n1\r\n",   /* count not an integer */
		"*4\r\n$10\r\nssubscribe\r\n$1\r\nc\r\n:1\r\n:2\r\n",  /* one element too many */
		"*3\r\n$8\r\nsmessage\r\n$1\r\nc\r\n:7\r\n",	       /* message not a string */
		"*3\r\n$8\r\nsmessage\r\n$1\r\nc\r\n*1\r\n:7\r\n",     /* message an array */
		"*3\r\n$8\r\nsmessage\r\n$-1\r\n$1\r\nx\r\n",	       /* nil channel */
		"*2\r\n$4\r\npong\r\n$0\r\n\r\n",		       /* pong for no ping */
		"*99999999\r\n",				       /* a huge array */
		"*2147483647\r\n",				       /* larger */
		"*17\r\n",					       /* over RSUB_ARRAY_MAX */
		"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", /* deep */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct rsub_proto p;
		struct seen s = {0};
		CHECK(rsub_proto_init(&p) == 0);
		CHECK(rsub_proto_sent(&p, RSUB_CMD_SSUB, "c") == 0);
		int rc = feed(&p, &s, bad[i]);
		if (rc != -1)
			fprintf(stderr, "accepted hostile input %zu\n", i);
		CHECK(rc == -1);
		CHECK(p.err[0] != '\0');
		rsub_proto_clear(&p);
	}
	/* a push kind we do not use is ignored, the stream goes on */
	struct rsub_proto p;
	struct seen s = {0};
	CHECK(rsub_proto_init(&p) == 0);
	CHECK(feed(&p, &s, "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n"
			   "*3\r\n$8\r\nsmessage\r\n$1\r\nc\r\n$1\r\ny\r\n") == 0);
	CHECK(s.n == 1 && s.kind[0] == RSUB_MESSAGE);
	CHECK_STR(s.data[0], "y");
	rsub_proto_clear(&p);
}

static void test_oversized(void)
{
	/* a bulk that announces more than RSUB_INPUT_MAX is refused once that much is buffered,
	 * not waited for without end */
	struct rsub_proto p;
	struct seen s = {0};
	CHECK(rsub_proto_init(&p) == 0);
	CHECK(feed(&p, &s, "*3\r\n$8\r\nsmessage\r\n$1\r\nc\r\n$999999999\r\n") == 0);
	size_t chunk = 1 << 20;
	char *junk = malloc(chunk);
	CHECK(junk != NULL);
	if (!junk)
		return;
	memset(junk, 'x', chunk);
	int rc = 0;
	size_t fed = 0;
	while (rc == 0 && fed <= RSUB_INPUT_MAX + chunk) {
		rc = rsub_proto_feed(&p, junk, chunk, collect, &s);
		fed += chunk;
	}
	CHECK(rc == -1);
	CHECK(fed <= (size_t)RSUB_INPUT_MAX + 2 * chunk);
	CHECK(s.n == 0);
	free(junk);
	rsub_proto_clear(&p);

	/* an event at the events' bound (2 MiB) goes through */
	CHECK(rsub_proto_init(&p) == 0);
	size_t big = 2u << 20;
	char head[64];
	snprintf(head, sizeof head, "*3\r\n$8\r\nsmessage\r\n$1\r\nc\r\n$%zu\r\n", big);
	char *body = malloc(big + 2);
	CHECK(body != NULL);
	if (!body)
		return;
	memset(body, 'y', big);
	memcpy(body + big, "\r\n", 2);
	CHECK(feed(&p, &s, head) == 0);
	CHECK(rsub_proto_feed(&p, body, big + 2, collect, &s) == 0);
	CHECK(s.n == 1 && s.kind[0] == RSUB_MESSAGE);
	free(body);
	rsub_proto_clear(&p);
}

int main(void)
{
	test_subscribe_and_messages();
	test_unsubscribe_ours_and_pushed();
	test_errors_go_to_their_command();
	test_hostile();
	test_oversized();
	return unit_summary("broker_rsub");
}

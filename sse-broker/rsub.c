#include "rsub.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"

#define RSUB_CHANNEL_MAX 512

struct rsub_pending {
	struct rsub_pending *next;
	enum rsub_cmd cmd;
	size_t len;
	char channel[]; /* len bytes and a NUL */
};

/* ---- the protocol, without a socket ---- */

static void *bounded_array(const redisReadTask *task, int elements)
{
	struct rsub_proto *p = task->privdata;
	if (elements > RSUB_ARRAY_MAX)
		return NULL; /* the reader reports it as out of memory: a broken stream */
	return p->array_orig(task, elements);
}

int rsub_proto_init(struct rsub_proto *p)
{
	memset(p, 0, sizeof *p);
	p->reader = redisReaderCreate();
	if (!p->reader)
		return -1;
	p->fn = *p->reader->fn;
	p->array_orig = p->fn.createArray;
	p->fn.createArray = bounded_array;
	p->reader->fn = &p->fn;
	p->reader->privdata = p;
	return 0;
}

void rsub_proto_clear(struct rsub_proto *p)
{
	if (p->reader)
		redisReaderFree(p->reader);
	p->reader = NULL;
	while (p->head) {
		struct rsub_pending *x = p->head;
		p->head = x->next;
		free(x);
	}
	p->tail = NULL;
	p->npending = 0;
}

int rsub_proto_sent(struct rsub_proto *p, enum rsub_cmd cmd, const char *channel)
{
	size_t n = channel ? strlen(channel) : 0;
	struct rsub_pending *x = malloc(sizeof *x + n + 1);
	if (!x)
		return -1;
	x->next = NULL;
	x->cmd = cmd;
	x->len = n;
	if (n)
		memcpy(x->channel, channel, n);
	x->channel[n] = '\0';
	if (p->tail)
		p->tail->next = x;
	else
		p->head = x;
	p->tail = x;
	p->npending++;
	return 0;
}

static void pop(struct rsub_proto *p)
{
	struct rsub_pending *x = p->head;
	p->head = x->next;
	if (!p->head)
		p->tail = NULL;
	p->npending--;
	free(x);
}

static int is_text(const redisReply *r)
{
	return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

static int head_is(const struct rsub_proto *p, enum rsub_cmd cmd, const redisReply *chan)
{
	const struct rsub_pending *h = p->head;
	if (!h || h->cmd != cmd)
		return 0;
	if (!chan)
		return 1;
	return h->len == chan->len && memcmp(h->channel, chan->str, chan->len) == 0;
}

/* One reply: 0 handled (or ignored), -1 the stream cannot be trusted any more. */
static int classify(struct rsub_proto *p, const redisReply *r, rsub_event_fn cb, void *arg)
{
	struct rsub_event ev = {0};
	if (r->type == REDIS_REPLY_ERROR) {
		if (!p->head) {
			/* an error nobody asked for (the server refusing the connection, say) */
			snprintf(p->err, sizeof p->err, "unexpected error from the server: %.100s",
				 r->str);
			return -1;
		}
		ev.kind = RSUB_ERROR;
		ev.cmd = p->head->cmd;
		ev.channel = p->head->channel;
		ev.channel_len = p->head->len;
		ev.data = r->str;
		ev.len = r->len;
		/* the entry stays valid during the callback, then goes */
		int rc = cb(arg, &ev);
		pop(p);
		return rc;
	}
	if (r->type == REDIS_REPLY_STATUS) {
		if (head_is(p, RSUB_CMD_AUTH, NULL) && strcmp(r->str, "OK") == 0) {
			pop(p);
			ev.kind = RSUB_OK;
			ev.cmd = RSUB_CMD_AUTH;
			return cb(arg, &ev);
		}
		if (head_is(p, RSUB_CMD_PING, NULL) && strcasecmp(r->str, "PONG") == 0) {
			pop(p);
			ev.kind = RSUB_PONG;
			ev.cmd = RSUB_CMD_PING;
			return cb(arg, &ev);
		}
		snprintf(p->err, sizeof p->err, "unexpected status \"%.60s\"", r->str);
		return -1;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !is_text(r->element[0])) {
		snprintf(p->err, sizeof p->err, "unexpected reply of type %d", r->type);
		return -1;
	}
	const char *kind = r->element[0]->str;
	const redisReply *chan = r->element[1];
	if (strcasecmp(kind, "pong") == 0) {
		if (!head_is(p, RSUB_CMD_PING, NULL)) {
			snprintf(p->err, sizeof p->err, "a pong nobody asked for");
			return -1;
		}
		pop(p);
		ev.kind = RSUB_PONG;
		ev.cmd = RSUB_CMD_PING;
		return cb(arg, &ev);
	}
	int known = strcasecmp(kind, "smessage") == 0 || strcasecmp(kind, "ssubscribe") == 0 ||
		    strcasecmp(kind, "sunsubscribe") == 0;
	if (!known)
		return 0; /* a push kind we do not use: nothing depends on it */
	if (chan->type != REDIS_REPLY_STRING || r->elements != 3) {
		snprintf(p->err, sizeof p->err, "a malformed %s", kind);
		return -1;
	}
	ev.channel = chan->str;
	ev.channel_len = chan->len;
	if (strcasecmp(kind, "smessage") == 0) {
		if (r->element[2]->type != REDIS_REPLY_STRING) {
			snprintf(p->err, sizeof p->err, "a message without a text");
			return -1;
		}
		ev.kind = RSUB_MESSAGE;
		ev.data = r->element[2]->str;
		ev.len = r->element[2]->len;
		return cb(arg, &ev);
	}
	if (r->element[2]->type != REDIS_REPLY_INTEGER) {
		snprintf(p->err, sizeof p->err, "a malformed %s", kind);
		return -1;
	}
	if (strcasecmp(kind, "ssubscribe") == 0) {
		if (!head_is(p, RSUB_CMD_SSUB, chan)) {
			snprintf(p->err, sizeof p->err, "a confirmation of a channel not asked for");
			return -1;
		}
		pop(p);
		ev.kind = RSUB_SUBSCRIBED;
		ev.cmd = RSUB_CMD_SSUB;
		return cb(arg, &ev);
	}
	/* sunsubscribe: the answer to ours when it is the one due, else the server's own */
	if (head_is(p, RSUB_CMD_SUNSUB, chan)) {
		pop(p);
		ev.kind = RSUB_UNSUBSCRIBED;
		ev.cmd = RSUB_CMD_SUNSUB;
	} else {
		ev.kind = RSUB_PUSHED_OUT;
	}
	return cb(arg, &ev);
}

int rsub_proto_feed(struct rsub_proto *p, const char *buf, size_t len, rsub_event_fn cb,
		    void *arg)
{
	if (len && redisReaderFeed(p->reader, buf, len) != REDIS_OK) {
		snprintf(p->err, sizeof p->err, "reader: %s", p->reader->errstr);
		return -1;
	}
	for (;;) {
		void *reply = NULL;
		if (redisReaderGetReply(p->reader, &reply) != REDIS_OK) {
			snprintf(p->err, sizeof p->err, "protocol: %s", p->reader->errstr);
			return -1;
		}
		if (!reply)
			break;
		int rc = classify(p, reply, cb, arg);
		freeReplyObject(reply);
		if (rc < 0) {
			if (!p->err[0])
				snprintf(p->err, sizeof p->err, "closed by its owner");
			return -1;
		}
	}
	if (p->reader->len - p->reader->pos > RSUB_INPUT_MAX) {
		snprintf(p->err, sizeof p->err, "a reply over %u bytes", RSUB_INPUT_MAX);
		return -1;
	}
	return 0;
}

/* ---- the connection ---- */

struct rsub {
	struct event_base *base;
	struct bufferevent *bev;
	struct event *timeout;
	struct rsub_proto proto;
	const struct rsub_ops *ops;
	void *arg;
	int up;
	int dead;
	int authing;
};

static void rsub_die(struct rsub *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = 1;
	c->up = 0;
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	if (c->timeout)
		evtimer_del(c->timeout);
	c->ops->down(c->arg, c, why);
}

static void became_up(struct rsub *c)
{
	c->up = 1;
	evtimer_del(c->timeout);
	c->ops->up(c->arg, c);
}

static int proto_event(void *arg, const struct rsub_event *ev)
{
	struct rsub *c = arg;
	if (ev->cmd == RSUB_CMD_AUTH && c->authing) {
		c->authing = 0;
		if (ev->kind != RSUB_OK) {
			snprintf(c->proto.err, sizeof c->proto.err, "AUTH: %.100s",
				 ev->data ? ev->data : "refused");
			return -1;
		}
		became_up(c);
		return c->dead ? -1 : 0;
	}
	int rc = c->ops->event(c->arg, c, ev);
	return c->dead ? -1 : rc;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct rsub *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (!c->dead && evbuffer_get_length(in) > 0) {
		char chunk[16384] BUF_SCRATCH;
		int n = evbuffer_remove(in, chunk, sizeof chunk);
		if (n <= 0)
			break;
		if (rsub_proto_feed(&c->proto, chunk, (size_t)n, proto_event, c) < 0) {
			rsub_die(c, c->proto.err);
			return;
		}
	}
	if (!c->dead && c->ops->drained)
		c->ops->drained(c->arg, c);
}

static int send_cmd(struct rsub *c, enum rsub_cmd cmd, const char *name, const char *a);

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct rsub *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->authing)
			return; /* up when AUTH is answered */
		became_up(c);
		return;
	}
	char why[128];
	if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof why, "closed by the server");
	else
		snprintf(why, sizeof why, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	rsub_die(c, why);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rsub *c = arg;
	if (!c->up)
		rsub_die(c, "connect timed out");
}

/* RESP: *N then $len/bytes per argument. */
static int send_cmd(struct rsub *c, enum rsub_cmd cmd, const char *name, const char *a)
{
	if (c->dead || !c->bev)
		return -1;
	size_t an = a ? strlen(a) : 0;
	if (an > RSUB_CHANNEL_MAX)
		return -1;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char head[64];
	int hn = a ? snprintf(head, sizeof head, "*2\r\n$%zu\r\n%s\r\n$%zu\r\n", strlen(name),
			      name, an)
		   : snprintf(head, sizeof head, "*1\r\n$%zu\r\n%s\r\n", strlen(name), name);
	if (rsub_proto_sent(&c->proto, cmd, a) < 0)
		return -1;
	if (evbuffer_add(out, head, (size_t)hn) < 0 || (a && evbuffer_add(out, a, an) < 0) ||
	    (a && evbuffer_add(out, "\r\n", 2) < 0)) {
		/* the stream is now out of step with the record: give it up */
		rsub_die(c, "out of memory");
		return -1;
	}
	return 0;
}

static int send_auth(struct rsub *c, const char *password)
{
	size_t pn = strlen(password);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (rsub_proto_sent(&c->proto, RSUB_CMD_AUTH, NULL) < 0 ||
	    evbuffer_add_printf(out, "*2\r\n$4\r\nAUTH\r\n$%zu\r\n", pn) < 0 ||
	    evbuffer_add(out, password, pn) < 0 || evbuffer_add(out, "\r\n", 2) < 0)
		return -1;
	c->authing = 1;
	return 0;
}

struct rsub *rsub_open(struct event_base *base, const struct sockaddr *addr, int addrlen,
		       const char *password, long timeout_ms, const struct rsub_ops *ops, void *arg)
{
	struct rsub *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->base = base;
	c->ops = ops;
	c->arg = arg;
	if (rsub_proto_init(&c->proto) < 0)
		goto fail;
	c->timeout = evtimer_new(base, timeout_cb, c);
	c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!c->timeout || !c->bev)
		goto fail;
	bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0)
		goto fail;
	if (password && password[0] && send_auth(c, password) < 0)
		goto fail;
	/* an address, never a name: bufferevent_socket_connect only connects, it resolves
	 * nothing (the hub resolves names without blocking, hub.c node_resolve) */
	if (bufferevent_socket_connect(c->bev, addr, addrlen) < 0)
		goto fail;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	if (evtimer_add(c->timeout, &tv) < 0)
		goto fail;
	return c;
fail:
	rsub_free(c);
	return NULL;
}

void rsub_free(struct rsub *c)
{
	if (!c)
		return;
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->timeout)
		event_free(c->timeout);
	rsub_proto_clear(&c->proto);
	free(c);
}

int rsub_ssubscribe(struct rsub *c, const char *channel)
{
	return c->up ? send_cmd(c, RSUB_CMD_SSUB, "SSUBSCRIBE", channel) : -1;
}

int rsub_sunsubscribe(struct rsub *c, const char *channel)
{
	return c->up ? send_cmd(c, RSUB_CMD_SUNSUB, "SUNSUBSCRIBE", channel) : -1;
}

int rsub_ping(struct rsub *c)
{
	return c->up ? send_cmd(c, RSUB_CMD_PING, "PING", NULL) : -1;
}

size_t rsub_pending(const struct rsub *c)
{
	return c->proto.npending;
}

#include "server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "alive.h"
#include "broker_metrics.h"
#include "buf.h"
#include "clock.h"
#include "cors.h"
#include "http_head.h"
#include "id.h"
#include "log.h"
#include "longpoll.h"
#include "metrics_http.h"
#include "presence.h"
#include "room.h"
#include "roomset.h"
#include "sse.h"
#include "ws.h"

/* presence names its room (lib/presence.h) and is matched against the stream's room ids:
 * every room id must fit it, or a room could never be named */
_Static_assert(PRESENCE_ROOM_MAX >= ROOM_ID_MAX, "a presence message must hold any room id");

/* Connections past max_clients get a 503; past this many more they are closed unanswered. */
#define SERVER_OVERFLOW_SLACK 64
#define SERVER_FLUSH_TIMEOUT_MS 10000
/* After a finished answer: the time the client gets to close its side, and the most of its
 * further bytes that are read and dropped meanwhile (a lingering close) */
#define SERVER_LINGER_MS 2000
#define SERVER_LINGER_MAX ((size_t)1 << 20)
#define SERVER_WS_CLOSE_WAIT_MS 3000
/* RFC 6455 7.4.1 "policy violation": the room was deleted or the user is no member any more */
#define SERVER_WS_REVOKED 1008
/* the most a WebSocket frame adds to a message (RFC 6455 5.2: 2 + 8 bytes, no mask) */
#define SERVER_WS_FRAME_HEAD 14
/* the most one read takes from a client socket (a request head, WebSocket frames); read onto
 * the stack, so a connection's input buffer holds only what it has to keep */
#define SERVER_READ_MAX 16384
/* the listening socket's queue of connections not yet accepted (capped by somaxconn) */
#define SERVER_BACKLOG 4096
/* The most requests one connection makes before it is a stream or answered for good: a
 * preflight keeps the connection for the request behind it (preflight()), and the one that
 * reaches this many is answered with "Connection: close". A browser sends one preflight and
 * its GET; the bound keeps a client from holding a connection with preflights alone. */
#define SERVER_KEEPALIVE_MAX 100

/* why the send batch ended a connection (usend_flush; closed by flush_cb) */
enum send_fail { SEND_FAIL_NONE, SEND_FAIL_ERROR, SEND_FAIL_MEMORY, SEND_FAIL_BOUND };

/* what the socket told a connection besides bytes */
enum { CONN_EOF = 1, CONN_ERROR = 2 };

enum conn_kind {
	CK_HEAD,  /* reading the request head */
	CK_AUTH,  /* waiting for the rights answer */
	CK_SSE,
	CK_POLL,
	CK_WS,
	CK_DONE,  /* answer written: flush it, then close */
};

enum route { RT_SSE, RT_POLL, RT_WS };

struct server;
struct conn;

/* One room of a multi-room stream (docs/API.md, "Several rooms on one stream"): its own
 * subscription, rights and position. The array of them lives as long as the connection's
 * struct: a Redis reply due for one of them holds a reference to the connection. */
struct msub {
	struct hub_sub sub;
	struct conn *c;
	char room[ROOM_ID_MAX + 1];
	struct room_evid start;
	int has_start;
	int answered; /* its opening rights check came back */
	int ok;	      /* ... with an answer */
	enum rights_verdict verdict;
	int dropped;  /* no longer on the stream (a `dropped` event said why) */
	int live_said; /* its first `subscribed` is sent (the one forced past the bound) */
	time_t presence_sec; /* the second of the room's presence counted below (ws_on_text_cb) */
	long presence_count;
};

/* The socket of a connection: its own read event, and a write event (made when first
 * needed) that is registered only while the socket would block (docs/INTERNALS.md, "Broker": the write path). Output goes to
 * `out` and leaves in one writev per connection per turn of the loop (flush_cb), so one
 * delivery costs one system call and several queued events leave together. */
struct conn {
	struct server *srv;
	evutil_socket_t fd;
	struct event *rev, *wev;
	/* in: bytes read but not yet used (a partial head, a partial WebSocket frame), made when
	 * first needed: a stream whose head came in one read never has one */
	struct evbuffer *in, *out;
	int wev_on;   /* wev is registered: the socket would block */
	int queued;   /* on the server's flush list (holds a reference) */
	int usend;    /* a send of it waits in the server's io_uring batch (holds a reference) */
	size_t usend_len; /* ... of this many bytes, counted against out_limit as output */
	int send_fail;	  /* the batch ended it (enum send_fail): flush_cb closes it */
	int slot;     /* counted against max_streams (server_cfg) */
	int head_counted; /* counted against max_heads_per_address as head_key (head_release) */
	unsigned char head_key[ADDRCAP_LEN];
	int user_counted; /* counted against max_streams_per_user as user (user_admit) */
	long long user;
	/* when the session its credential belongs to expires (token.h, sexp; 0: not known, a
	 * ticket from before tickets carried it): the stream ends then (beat_cb) */
	long long session_until;
	struct conn *flush_next;
	int refs;     /* the connection itself holds one; pending Redis replies hold more */
	int dead;     /* closed: waiting in the reap list for its resources to go */
	int released; /* resources freed; the struct goes when refs reaches 0 */
	int on_reap;
	int lingering;    /* CK_DONE, all sent, our side shut: waiting for the client's */
	int read_paused;  /* CK_HEAD: not read until the answers written so far have left;
			   * CK_AUTH (WebSocket): not read until the stream starts, past
			   * SERVER_READ_MAX kept (conn_input) */
	unsigned requests;     /* request heads routed on this connection (SERVER_KEEPALIVE_MAX) */
	int head_only;	       /* the request being answered is a HEAD: its answer, whatever it
				* is, carries no body (RFC 9110 §9.3.2) */
	long long accepted_ms; /* clock_mono_ms() when accepted: a preflight keeps it only within
				* BROKER_HEAD_TIMEOUT_MS of this (preflight()) */
	size_t discarded; /* bytes read and dropped since the answer was finished */
	enum conn_kind kind;
	enum route route;
	struct conn *prev, *next, *reap_next;
	struct hub_sub sub;
	char room[ROOM_ID_MAX + 1];
	struct room_evid start;
	int has_start;
	struct event *timer;
	struct longpoll *lp;
	int answered;
	char *ws_reply; /* the 101 answer, kept across an asynchronous membership check */
	struct ws_conn *ws;
	long long last_in_ms; /* clock_mono_ms() at the WebSocket peer's last bytes: a wall-clock
			       * step must not end a stream early or keep a dead one */
	unsigned beat_out; /* the server's beat tick at the last output (beat_cb) */
	time_t presence_sec;
	long presence_count;
	int replay_wait; /* the hub's replay waits for the output to drain (HUB_BUSY) */
	int live_said;	 /* ": connected" or the WebSocket `subscribed` is sent (once live) */
	int live_event;	 /* a one-room SSE stream asked for `subscribed=1`: an event, not the comment */
	/* a multi-room stream: ms[0..nms) instead of sub and room */
	int multi;
	struct msub *ms;
	size_t nms;
	size_t checks_pending;
};

struct server {
	struct event_base *base;
	const struct server_cfg *cfg;
	const struct token_key *key;
	struct hub *hub;
	struct evconnlistener *lst;
	struct conn *conns;
	size_t nconns;
	struct conn *reap;
	struct conn *flushq; /* connections with output to send in this turn of the loop */
	struct usend *us;    /* stream sends gathered for one io_uring submission; NULL: off */
	struct addrcap *heads; /* connections still reading a head, per address; NULL: no bound */
	struct event *reaper, *flusher, *beat, *sigterm, *sigint, *quit;
	unsigned beats; /* beat_cb's ticks so far */
	struct event *alive; /* alive_cb, every SERVER_ALIVE_MS */
	struct http_head head; /* scratch: valid during one parse */
	/* built once at start (cors.h): the header lines every answer carries, a whole SSE
	 * opening (head, retry, ": connected") and the preflight answers */
	struct buf hdrs, sse_open, sse_live, preflight_keep, preflight_close;
	struct buf address_full; /* the whole 503 of head_refuse() */
	int stopping;
	struct metrics_http *metrics; /* GET /metrics on its own port, NULL when off */
};

static struct conn *sub_conn(struct hub_sub *s)
{
	return (struct conn *)(void *)((char *)s - offsetof(struct conn, sub));
}

static struct msub *sub_msub(struct hub_sub *s)
{
	return (struct msub *)(void *)((char *)s - offsetof(struct msub, sub));
}

/* Leaves every room the connection is subscribed to (one, or those of a multi-room stream). */
static void conn_leave_all(struct conn *c)
{
	hub_leave(c->srv->hub, &c->sub);
	for (size_t i = 0; i < c->nms; i++)
		hub_leave(c->srv->hub, &c->ms[i].sub);
}

static void conn_close(struct conn *c, const char *why);

static int is_stream(const struct conn *c)
{
	return c->kind == CK_SSE || c->kind == CK_WS || c->kind == CK_POLL;
}

/* The count of open streams, here and in the metrics (enum route is their transport). */
static void streams_add(struct conn *c, int d)
{
	atomic_fetch_add(&c->srv->cfg->shared->streams, d);
	metric_add(&broker_metrics[BM_STREAMS_OPEN], c->route, 0, d);
}

static void ms_tv(long ms, struct timeval *tv)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

/* ---- lifetime (docs/CONVENTIONS.md §2.4: never freed inside its own callback; the reaper
 * frees) ---- */

static void conn_reserve(struct conn *c)
{
	c->refs++;
}

static void conn_schedule_reap(struct conn *c)
{
	if (c->on_reap)
		return;
	c->on_reap = 1;
	c->reap_next = c->srv->reap;
	c->srv->reap = c;
	event_active(c->srv->reaper, EV_TIMEOUT, 0);
}

static void conn_release(struct conn *c)
{
	if (--c->refs == 0)
		conn_schedule_reap(c);
}

/* The connection's place among its address's connections still reading a head: given back
 * once its head is taken (the rights check starts) or it ends, whichever comes first. */
static void head_release(struct conn *c)
{
	if (!c->head_counted)
		return;
	c->head_counted = 0;
	if (addrcap_give(c->srv->heads, c->head_key) < 0)
		log_error("a connection's place among its address's heads could not be given back");
}

/* A stream's places, under max_streams and its user's max_streams_per_user, are given back
 * once, however it ends: finished (conn_finish: an answer, a refusal, a revoked or ended
 * stream, the shutdown), closed (conn_close: the client gone, a write error or timeout, a slow
 * reader, out of memory) or reaped. So is a connection's place among its address's heads
 * (head_release), on the same paths. */
static void places_release(struct conn *c)
{
	head_release(c);
	if (c->slot) {
		c->slot = 0;
		atomic_fetch_sub(&c->srv->cfg->shared->slots, 1);
	}
	if (c->user_counted) {
		c->user_counted = 0;
		if (usercount_give(c->srv->cfg->user_streams, c->user) < 0)
			log_error("user %lld: a stream's place could not be given back", c->user);
	}
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct conn *list = srv->reap;
	srv->reap = NULL;
	while (list) {
		struct conn *c = list;
		list = c->reap_next;
		c->on_reap = 0;
		if (!c->released) {
			c->released = 1;
			if (c->prev)
				c->prev->next = c->next;
			else
				srv->conns = c->next;
			if (c->next)
				c->next->prev = c->prev;
			srv->nconns--;
			if (is_stream(c))
				streams_add(c, -1);
			places_release(c);
			event_free(c->rev);
			if (c->wev)
				event_free(c->wev);
			c->rev = c->wev = NULL;
			if (c->in)
				evbuffer_free(c->in);
			evbuffer_free(c->out);
			c->in = c->out = NULL;
			evutil_closesocket(c->fd);
			c->fd = -1;
			if (c->timer)
				event_free(c->timer);
			c->timer = NULL;
			ws_conn_free(c->ws);
			c->ws = NULL;
			if (c->lp) {
				longpoll_clear(c->lp);
				free(c->lp);
				c->lp = NULL;
			}
			free(c->ws_reply);
			c->ws_reply = NULL;
		}
		if (c->refs == 0) {
			free(c->ms);
			free(c);
		}
	}
}

static void usend_flush(struct server *srv);
static void usend_end_turn(struct server *srv);
static void conn_send_failed(struct conn *c);

static void conn_close(struct conn *c, const char *why)
{
	if (c->dead)
		return;
	/* a send of it waiting in the batch is not made (usend_submit) */
	c->dead = 1;
	(void)why; /* kept for debugging sessions; a log line per client would flood */
	conn_leave_all(c);
	places_release(c);
	event_del(c->rev);
	if (c->wev)
		event_del(c->wev);
	c->wev_on = 0;
	if (c->timer)
		evtimer_del(c->timer);
	conn_schedule_reap(c);
	conn_release(c);
}

/* ---- writing ----
 * conn_write appends to the connection's output and puts it on the flush list; flush_cb,
 * run once the callbacks of this turn of the loop are done, sends each listed connection's
 * output with one writev. Only when the socket takes less than everything is the write event
 * registered, and it is removed once the output is drained: a connection that keeps up costs
 * no epoll_ctl at all. */

static void conn_drained(struct conn *c, size_t left);
static void conn_resume_heads(struct conn *c);
static void write_ready_cb(evutil_socket_t fd, short what, void *arg);

static int would_block(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* Sends what the output holds: one writev, or more while the socket takes it all. */
static void conn_flush(struct conn *c)
{
	size_t left = evbuffer_get_length(c->out);
	while (left > 0) {
		int n = evbuffer_write(c->out, c->fd);
		if (n < 0) {
			if (would_block())
				break;
			conn_close(c, "write error");
			return;
		}
		if ((size_t)n < left) {
			/* a short write: the socket's buffer is full (or more pieces than one writev
			 * takes); writability says when to go on */
			left -= (size_t)n;
			break;
		}
		left = 0;
	}
	if (left > 0 && !c->wev_on) {
		/* made the first time it is needed: most connections never fill their socket */
		if (!c->wev)
			c->wev = event_new(c->srv->base, c->fd, EV_WRITE | EV_PERSIST, write_ready_cb, c);
		/* the write timeout: no writability for that long ends the connection, unless
		 * the socket still takes a byte then (write_ready_cb) */
		struct timeval tv;
		ms_tv(c->srv->cfg->write_timeout_ms, &tv);
		if (!c->wev || event_add(c->wev, &tv) < 0) {
			conn_close(c, "event_add");
			return;
		}
		c->wev_on = 1;
	} else if (left == 0 && c->wev_on) {
		event_del(c->wev);
		c->wev_on = 0;
	}
	conn_drained(c, left);
}

/* A connection whose output has been waiting for BROKER_WRITE_TIMEOUT_MS with no byte taken
 * by the kernel: its client stopped reading. Without this bound a quiet room never fills its
 * output to BROKER_CLIENT_BUFFER, and the output (and the connection) stayed for as long as
 * the client kept the connection open. Output added meanwhile (an event, a ": ping", a
 * WebSocket ping) is no progress: only bytes leaving are. A stream may resume. */
static void conn_stalled(struct conn *c)
{
	if (is_stream(c)) {
		log_info("dropping a client of room %s that stopped reading (%zu bytes unsent)",
			 c->room, evbuffer_get_length(c->out));
		metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_STALLED, 0);
	}
	conn_close(c, "write timeout");
}

static void write_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	if (c->dead)
		return;
	if (what & EV_TIMEOUT) {
		/* Writability comes only once the socket's buffer has a good share of room, which
		 * a client that reads slowly may take longer than the timeout to make: one try
		 * tells whether the kernel takes any byte at all. One taken is progress, and the
		 * event's timeout starts again (EV_PERSIST). */
		int n = evbuffer_get_length(c->out) > 0 ? evbuffer_write(c->out, c->fd) : 1;
		if (n < 0 && !would_block()) {
			conn_close(c, "write error");
			return;
		}
		if (n <= 0) {
			conn_stalled(c);
			return;
		}
	}
	conn_flush(c);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	/* the batch first: what its sockets did not take joins the list below */
	usend_end_turn(srv);
	struct conn *list = srv->flushq;
	srv->flushq = NULL;
	while (list) {
		struct conn *c = list;
		list = c->flush_next;
		c->queued = 0;
		/* with the write event registered the socket is full: writability goes on */
		if (!c->dead && c->send_fail)
			conn_send_failed(c);
		else if (!c->dead && !c->wev_on)
			conn_flush(c);
		conn_release(c);
	}
}

static void conn_schedule_flush(struct conn *c)
{
	if (c->queued || c->wev_on)
		return;
	c->queued = 1;
	conn_reserve(c); /* the list holds it until flush_cb has run */
	c->flush_next = c->srv->flushq;
	c->srv->flushq = c;
	event_active(c->srv->flusher, EV_TIMEOUT, 0);
}

/* Whether n more bytes fit under the client's output bound now (bytes of it waiting in the
 * send batch count). */
static int conn_fits(const struct conn *c, size_t n)
{
	return evbuffer_get_length(c->out) + c->usend_len + n <= c->srv->cfg->out_limit;
}

/* docs/CONVENTIONS.md §3: a client that does not read is dropped at the bound; it may
 * resume */
static void conn_drop_slow(struct conn *c)
{
	log_info("dropping a slow client of room %s (%zu bytes unsent)", c->room,
		 evbuffer_get_length(c->out));
	metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_SLOW, 0);
	conn_close(c, "output bound");
}

/* force: a one-shot answer already bounded by its producer (a long-poll answer) */
static int conn_write_ex(struct conn *c, const void *p, size_t n, int force)
{
	if (c->dead)
		return -1;
	c->beat_out = c->srv->beats;
	/* rather than drop a client for bytes waiting in the send batch, the batch goes now,
	 * and what the socket took no longer counts */
	if (!force && c->usend && !conn_fits(c, n)) {
		usend_flush(c->srv);
		if (c->dead)
			return -1;
	}
	if (!force && !conn_fits(c, n)) {
		conn_drop_slow(c);
		return -1;
	}
	if (evbuffer_add(c->out, p, n) < 0) {
		conn_close(c, "out of memory");
		return -1;
	}
	conn_schedule_flush(c);
	return 0;
}

static int conn_write(struct conn *c, const void *p, size_t n)
{
	return conn_write_ex(c, p, n, 0);
}

/* A connection the send batch ended (usend_flush), closed from flush_cb. */
static void conn_send_failed(struct conn *c)
{
	switch (c->send_fail) {
	case SEND_FAIL_BOUND:
		conn_drop_slow(c);
		break;
	case SEND_FAIL_MEMORY:
		conn_close(c, "out of memory");
		break;
	default:
		conn_close(c, "write error");
		break;
	}
}

/* Whether anything of the connection waits to be sent: new output goes behind it. */
static int conn_has_output(const struct conn *c)
{
	return c->queued || c->wev_on || c->usend || evbuffer_get_length(c->out) > 0;
}

/* ---- sends in one io_uring submission (docs/INTERNALS.md, "Sends in one submission") ----
 * A room's event goes to every stream of the room, and each send is a system call: on these
 * machines the call alone costs about a microsecond and the kernel's TCP path several more,
 * which at a thousand streams is the broker's whole share of a delivery. Stream output for a
 * connection with nothing waiting is therefore copied into the server's batch (a few hundred
 * bytes each: a copy costs far less than a call) and the batch goes to the kernel as one
 * io_uring submission of MSG_DONTWAIT sends, when it is full and once the callbacks of this
 * turn of the loop are done (flush_cb). The sends never wait: a socket without room answers
 * EAGAIN at once, so every completion is there when the submission returns, and nothing of
 * a connection is in the kernel's hands past usend_flush. What a socket did not take is put
 * in front of the connection's output, which takes the conn_flush way from there. While a
 * connection's send waits in the batch it counts as having output (conn_has_output), so
 * later output queues behind it, and its bytes count against the client's bound (usend_len).
 * Finishing a connection sends the batch first; closing one leaves its send unmade. */

#define USEND_ENTRIES 256
/* A turn's first submission goes once this many sends are gathered, each further one at
 * twice the one before, up to USEND_ENTRIES: the first streams of a big room are not kept
 * waiting while the later ones' copies are made, and most of a thousand sends still share
 * a few calls (16, 32, 64, 128, 256, ...). */
#define USEND_FIRST 16
#define USEND_ARENA ((size_t)256 * 1024)
/* a piece larger than this goes to the socket at once (a replayed snapshot, a resync) */
#define USEND_PIECE_MAX ((size_t)16 * 1024)

struct usend_entry {
	struct conn *c;
	size_t off, len;
	int force;
	int done; /* its completion came (or it was not sent) */
	int queued; /* its place among the operations put in the ring (usend_submit) */
	int direct; /* not taken by the ring: usend_flush sends it with send() */
	int res;  /* the send's completion: bytes taken, or -errno */
};

struct usend {
	struct io_uring ring;
	char *arena;
	size_t used;
	unsigned n;
	unsigned limit; /* the count that sends the batch now (USEND_FIRST) */
	unsigned submitted; /* sends the last submission handed to the kernel */
	int busy;   /* usend_flush is handling completions: no new entry, no nested flush */
	int broken; /* the ring failed once: sends go one by one from then on */
	struct usend_entry ent[USEND_ENTRIES];
};

static void usend_free(struct usend *u);

static struct usend *usend_new(void)
{
	struct usend *u = calloc(1, sizeof *u);
	if (!u)
		return NULL;
	u->arena = malloc(USEND_ARENA);
	int r = u->arena ? io_uring_queue_init(USEND_ENTRIES, &u->ring, 0) : -ENOMEM;
	if (r < 0) {
		log_info("io_uring not available (%s): each stream write is its own system call",
			 strerror(-r));
		free(u->arena);
		free(u);
		return NULL;
	}
	struct io_uring_probe *probe = io_uring_get_probe_ring(&u->ring);
	int can_send = probe && io_uring_opcode_supported(probe, IORING_OP_SEND);
	io_uring_free_probe(probe);
	if (!can_send) {
		log_info("io_uring has no send operation here: each stream write is its own "
			 "system call");
		usend_free(u);
		return NULL;
	}
	u->limit = USEND_FIRST;
	log_info("stream writes: io_uring, up to %d sends per submission", USEND_ENTRIES);
	return u;
}

static void usend_free(struct usend *u)
{
	if (!u)
		return;
	io_uring_queue_exit(&u->ring);
	free(u->arena);
	free(u);
}

/* Hands the batch to the kernel and waits for its completions: all are there at once, the
 * sends being MSG_DONTWAIT. An entry of a connection closed meanwhile is not sent (its
 * descriptor may be gone: reap_cb). -1 when the ring failed (below: what becomes of the
 * entries then). u->submitted: the sends handed to the kernel. */
static int usend_submit(struct usend *u)
{
	unsigned want = 0, got = 0, submitted = 0;
	for (unsigned i = 0; i < u->n; i++) {
		struct usend_entry *e = &u->ent[i];
		e->done = 0;
		e->direct = 0;
		e->res = 0;
		e->queued = -1;
		if (e->c->dead) {
			e->done = 1;
			continue;
		}
		struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
		if (!sqe) /* cannot be: the ring has USEND_ENTRIES and is empty here */
			goto broken;
		io_uring_prep_send(sqe, e->c->fd, u->arena + e->off, e->len,
				   MSG_NOSIGNAL | MSG_DONTWAIT);
		io_uring_sqe_set_data64(sqe, i);
		e->queued = (int)want++;
	}
	for (int tries = 0; io_uring_sq_ready(&u->ring) > 0; tries++) {
		int r = io_uring_submit(&u->ring);
		if (r > 0)
			submitted += (unsigned)r;
		if (tries >= 100 || (r < 0 && r != -EINTR && r != -EAGAIN))
			goto broken;
	}
	while (got < want) {
		struct io_uring_cqe *cqe;
		int r = io_uring_wait_cqe(&u->ring, &cqe);
		if (r == -EINTR)
			continue;
		if (r < 0)
			goto broken;
		__u64 i = io_uring_cqe_get_data64(cqe);
		if (i < u->n && !u->ent[i].done) {
			u->ent[i].res = cqe->res;
			u->ent[i].done = 1;
			got++;
		}
		io_uring_cqe_seen(&u->ring, cqe);
	}
	u->submitted = want;
	return 0;
broken:
	log_error("io_uring failed: stream writes go one by one from now on");
	u->broken = 1;
	u->submitted = submitted;
	/* the ring takes its operations in the order they were put in: those past the ones
	 * submitted never reached the kernel and are sent the ordinary way; one submitted whose
	 * completion did not come may or may not have been sent, so its stream cannot go on */
	for (unsigned i = 0; i < u->n; i++) {
		struct usend_entry *e = &u->ent[i];
		if (e->done)
			continue;
		if (e->queued < 0 || (unsigned)e->queued >= submitted)
			e->direct = 1;
		else
			e->res = -EIO;
	}
	return -1;
}

/* Sends the batch and settles each entry. Nothing here closes a connection: a flush can come
 * in the middle of the hub's walk over a room's streams (a full batch, a stream that ends),
 * which must not lose a neighbour. A connection the batch ends (a write error, out of memory,
 * the rest of a write larger than the client's bound) is marked and closed by flush_cb. */
static void usend_flush(struct server *srv)
{
	struct usend *u = srv->us;
	if (!u || u->busy || u->n == 0)
		return;
	u->busy = 1;
	usend_submit(u);
	if (u->submitted > 0) {
		metric_inc(&broker_metrics[BM_SEND_SUBMISSIONS], 0, 0);
		metric_add(&broker_metrics[BM_SEND_BATCHED], 0, 0, (long long)u->submitted);
	}
	for (unsigned i = 0; i < u->n; i++) {
		struct usend_entry *e = &u->ent[i];
		struct conn *c = e->c;
		const char *p = u->arena + e->off;
		c->usend = 0;
		c->usend_len = 0;
		if (!c->dead && !e->direct && (e->res == -EINVAL || e->res == -EOPNOTSUPP)) {
			/* a kernel whose sockets refuse the ring's send: this one, and every one
			 * after it, the ordinary way */
			if (!u->broken)
				log_error("io_uring send refused (%s): stream writes go one by one from "
					  "now on", strerror(-e->res));
			u->broken = 1;
			e->direct = 1;
		}
		if (!c->dead && e->direct) {
			ssize_t w = send(c->fd, p, e->len, MSG_NOSIGNAL | MSG_DONTWAIT);
			e->res = w >= 0 ? (int)w : would_block() ? 0 : -errno;
		}
		if (e->res == -EAGAIN || e->res == -EINTR)
			e->res = 0; /* the socket took nothing */
		if (!c->dead && e->res < 0) {
			c->send_fail = e->res == -ENOMEM ? SEND_FAIL_MEMORY : SEND_FAIL_ERROR;
		} else if (!c->dead && (size_t)e->res < e->len) {
			/* the rest goes in front of what was written behind it meanwhile; its bound
			 * is that of conn_write_ex for the rest of a write */
			size_t w = (size_t)e->res, rest = e->len - w;
			if (!e->force && rest > c->srv->cfg->out_limit)
				c->send_fail = SEND_FAIL_BOUND;
			else if (evbuffer_prepend(c->out, p + w, rest) < 0)
				c->send_fail = SEND_FAIL_MEMORY;
		}
		/* a replay that waits for room (replay_full counted these bytes) goes on from
		 * conn_drained once the flush finds the output sent */
		if (!c->dead && (c->send_fail || (size_t)e->res < e->len || c->replay_wait))
			conn_schedule_flush(c);
		conn_release(c);
	}
	u->n = 0;
	u->used = 0;
	u->busy = 0;
}

/* The turn's callbacks are done: the batch goes, and the next turn starts small again. */
static void usend_end_turn(struct server *srv)
{
	usend_flush(srv);
	if (srv->us)
		srv->us->limit = USEND_FIRST;
}

/* Puts the pieces (one send's worth, len bytes in all) in the batch: 1 when they were
 * taken, 0 when they go the ordinary way (no ring, a piece too large, a flush under way, a
 * connection that is no stream), -1 when the connection was closed meanwhile. */
static int usend_add(struct conn *c, const struct iovec *iov, size_t niov, size_t len, int force)
{
	struct server *srv = c->srv;
	struct usend *u = srv->us;
	if (!u || u->busy || u->broken || (c->kind != CK_SSE && c->kind != CK_WS))
		return 0;
	if (len == 0 || len > USEND_PIECE_MAX)
		return 0;
	if (u->n >= u->limit || u->used + len > USEND_ARENA) {
		usend_flush(srv);
		u->limit = u->limit * 2 < USEND_ENTRIES ? u->limit * 2 : USEND_ENTRIES;
		if (c->dead)
			return -1;
		if (u->broken)
			return 0;
	}
	struct usend_entry *e = &u->ent[u->n++];
	e->c = c;
	e->off = u->used;
	e->len = len;
	e->force = force;
	for (size_t i = 0; i < niov; i++) {
		memcpy(u->arena + u->used, iov[i].iov_base, iov[i].iov_len);
		u->used += iov[i].iov_len;
	}
	c->usend = 1;
	c->usend_len = len;
	conn_reserve(c); /* the batch holds it until usend_flush */
	if (u->n == 1)
		event_active(srv->flusher, EV_TIMEOUT, 0);
	return 1;
}

/* Stream output (a live event on SSE, one room or several, a WebSocket's frames) for a
 * connection with nothing waiting to be sent goes into the server's send batch (above), or
 * without one to the socket at once: no copy into the output buffer (libevent gives every
 * piece a chunk of at least 1 KiB), no trip through the flush list, and in a big room the
 * first streams are written while the later ones' turns are still to come. What the socket
 * does not take, and anything for a stream with output waiting, goes the conn_write_ex way
 * (force as there), behind what is already there, so the order holds. The pieces leave
 * as one: the bytes handed to the kernel in that one call come back (all of them when the
 * batch took them), or -1 when the connection is gone. */
static ssize_t conn_writev_now(struct conn *c, const struct iovec *iov, size_t niov, int force)
{
	if (c->dead)
		return -1;
	if (conn_has_output(c)) {
		for (size_t i = 0; i < niov; i++)
			if (conn_write_ex(c, iov[i].iov_base, iov[i].iov_len, force) < 0)
				return -1;
		return 0;
	}
	c->beat_out = c->srv->beats;
	size_t len = 0;
	for (size_t i = 0; i < niov; i++)
		len += iov[i].iov_len;
	int b = usend_add(c, iov, niov, len, force);
	if (b != 0)
		return b < 0 ? -1 : (ssize_t)len;
	struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = niov};
	ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w < 0) {
		if (!would_block()) {
			conn_close(c, "write error");
			return -1;
		}
		w = 0;
	}
	/* the rest, behind it */
	size_t skip = (size_t)w;
	for (size_t i = 0; i < niov; i++) {
		size_t n = iov[i].iov_len;
		if (skip >= n) {
			skip -= n;
			continue;
		}
		if (conn_write_ex(c, (const char *)iov[i].iov_base + skip, n - skip, force) < 0)
			return -1;
		skip = 0;
	}
	return w;
}

static int conn_write_now(struct conn *c, const char *p, size_t n, int force)
{
	struct iovec v = {.iov_base = (void *)p, .iov_len = n};
	return conn_writev_now(c, &v, 1, force) < 0 ? -1 : 0;
}

static void flush_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_close(arg, "flush timeout");
}

/* The whole answer has left: shut our side, so the client reads the end of it, and close
 * once the client closes its side (read_cb) or after SERVER_LINGER_MS. */
static void conn_linger(struct conn *c)
{
	if (c->dead || c->lingering)
		return;
	c->lingering = 1;
	if (shutdown(c->fd, SHUT_WR) < 0) {
		conn_close(c, NULL);
		return;
	}
	struct timeval tv;
	ms_tv(SERVER_LINGER_MS, &tv);
	evtimer_del(c->timer);
	if (evtimer_add(c->timer, &tv) < 0) /* out of memory: no linger without its bound */
		conn_close(c, "event_add");
}

/* A finished connection's input: read and dropped, up to SERVER_LINGER_MAX; the client's
 * end or an error closes it. */
static void conn_discard(struct conn *c)
{
	char buf[SERVER_READ_MAX] BUF_SCRATCH;
	for (int i = 0; i < 4; i++) {
		ssize_t n = recv(c->fd, buf, sizeof buf, 0);
		if (n > 0) {
			c->discarded += (size_t)n;
			if (c->discarded > SERVER_LINGER_MAX) {
				conn_close(c, "too much after the answer");
				return;
			}
			continue;
		}
		if (n == 0 && !c->lingering) {
			/* the client shut its side before the whole answer left: stop reading and
			 * let the rest go (conn_drained, or the flush timeout) */
			event_del(c->rev);
			return;
		}
		if (n == 0 || !would_block())
			conn_close(c, NULL);
		return;
	}
}

/* Stop reading; close once everything written is sent (or after a timeout). */
static void conn_finish(struct conn *c)
{
	/* its send waiting in the batch: out first, so the output's length below is all */
	if (c->usend)
		usend_flush(c->srv);
	if (c->dead)
		return;
	if (c->send_fail) { /* the batch ended it: no orderly end for a stream cut short */
		conn_send_failed(c);
		return;
	}
	/* first: once `clients` (health) shows the stream gone, its places are free */
	places_release(c);
	if (is_stream(c))
		streams_add(c, -1);
	c->kind = CK_DONE;
	conn_leave_all(c);
	/* still read, to drop what the client goes on sending (read_cb): a socket closed with
	 * unread bytes sends a reset, which can take the answer with it */
	c->read_paused = 0;
	if (event_add(c->rev, NULL) < 0) {
		conn_close(c, "out of memory");
		return;
	}
	/* an SSE stream gave its timer back when it started (start_stream) */
	if (!c->timer)
		c->timer = evtimer_new(c->srv->base, flush_timeout_cb, c);
	if (!c->timer) {
		conn_close(c, "out of memory");
		return;
	}
	struct timeval tv;
	ms_tv(SERVER_FLUSH_TIMEOUT_MS, &tv);
	evtimer_del(c->timer);
	event_assign(c->timer, c->srv->base, -1, 0, flush_timeout_cb, c);
	if (evtimer_add(c->timer, &tv) < 0) {
		conn_close(c, "event_add");
		return;
	}
	/* otherwise conn_drained does once the output has left */
	if (evbuffer_get_length(c->out) == 0)
		conn_linger(c);
}

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 414: return "URI Too Long";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

/* Writes a complete JSON answer and finishes the connection. body is a JSON text; the
 * answer to a HEAD request (c->head_only), an error as much as the health answer, is the head
 * alone, with the Content-Length the body would have: a client on a kept connection would
 * otherwise read the body as the start of its next answer. */
static void conn_respond(struct conn *c, int status, const char *extra_headers, const char *body)
{
	int with_body = !c->head_only;
	struct buf b;
	buf_init(&b, 64 * 1024);
	if (buf_printf(&b,
		       "HTTP/1.1 %d %s\r\n"
		       "Content-Type: application/json\r\n"
		       "Cache-Control: no-store\r\n"
		       "Content-Length: %zu\r\n"
		       "Connection: close\r\n"
		       "%s%s"
		       "\r\n%s",
		       status, status_text(status), strlen(body), c->srv->hdrs.data,
		       extra_headers ? extra_headers : "", with_body ? body : "") == 0)
		conn_write(c, b.data, b.len);
	buf_free(&b);
	conn_finish(c);
}

/* The JSON error {"error": code, "message": message} with status, and extra header lines
 * (each ending in CRLF) or NULL. */
static void conn_error_ex(struct conn *c, int status, const char *extra, const char *code,
			  const char *message)
{
	char *body = NULL;
	cJSON *o = cJSON_CreateObject();
	if (o && cJSON_AddStringToObject(o, "error", code) &&
	    cJSON_AddStringToObject(o, "message", message))
		body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	conn_respond(c, status, extra, body ? body : "{\"error\":\"internal\"}");
	free(body);
}

/* Retry-After of a 429 too_many_streams: a user's place comes back only when one of their
 * own streams ends, which no quick retry brings about */
#define SERVER_USER_RETRY_S "5"

/* The JSON error with the header lines its status takes: a 405 names the methods of the
 * stream endpoints (GET /events/health, which also serves HEAD, says so itself), a 503 and
 * a 429 when to come back. A 401 must carry a challenge (RFC 9110 §15.5.2): the broker
 * takes a bearer token in Authorization, or a ticket in the query that no scheme names, so
 * the challenge is Bearer's (docs/API.md, Streams). A 426 must say what to upgrade to
 * (RFC 9110 §15.5.22), with "upgrade" in Connection (§7.8: the answer's own "Connection:
 * close" line and this one are one list), and the version of WebSocket taken (RFC 6455
 * §4.4). */
static void conn_error(struct conn *c, int status, const char *code, const char *message)
{
	const char *extra = NULL;
	if (status == 405)
		extra = "Allow: GET, OPTIONS\r\n";
	else if (status == 503)
		extra = "Retry-After: 1\r\n";
	else if (status == 429)
		extra = "Retry-After: " SERVER_USER_RETRY_S "\r\n";
	else if (status == 401)
		extra = "WWW-Authenticate: Bearer realm=\"codecollab\"\r\n";
	else if (status == 426)
		extra = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
			"Sec-WebSocket-Version: 13\r\n";
	conn_error_ex(c, status, extra, code, message);
}

/* ---- transports ---- */

static void ws_pump(struct conn *c);
static void ws_pump_ex(struct conn *c, int force);
static void poll_answer(struct conn *c);

/* Ends a stream whose user may not read the room any more (deleted, removed, the room went
 * private, the session was signed out), after what was already written: SSE ends its
 * response, WebSocket sends close 1008 with why, a long-poll is answered with what it holds
 * (its next poll is refused by the rights check). Safe from inside c's own callbacks:
 * nothing is freed here. */
static void conn_revoke(struct conn *c, const char *why)
{
	if (c->dead || c->kind == CK_DONE)
		return;
	hub_leave(c->srv->hub, &c->sub); /* no event after this one */
	switch (c->kind) {
	case CK_POLL:
		poll_answer(c);
		break;
	case CK_WS:
		if (c->ws) {
			ws_conn_close(c->ws, SERVER_WS_REVOKED, why);
			ws_pump(c);
		}
		if (!c->dead)
			conn_finish(c);
		break;
	default:
		conn_finish(c);
		break;
	}
}

/* An event that cannot fit even an empty output of this client: a resync takes its place
 * (the client refetches the document) instead of a drop it would meet again on resuming.
 * A replaying client whose output is merely full waits (HUB_BUSY) until it drains; a live
 * one is dropped at the bound and resumes (conn_write). */
static struct room_event *fit_event(struct conn *c, struct room_event *ev, size_t len)
{
	if (len <= c->srv->cfg->out_limit)
		return room_event_reserve(ev);
	return room_event_resync(ev->idstr, "event_too_large");
}

static int replay_full(struct conn *c, size_t len)
{
	if (c->sub.state != HUB_SUB_REPLAY || conn_fits(c, len))
		return 0;
	c->replay_wait = 1; /* write_cb resumes it below the low watermark */
	return 1;
}

static int sse_deliver(struct hub_sub *s, struct room_event *ev)
{
	struct conn *c = sub_conn(s);
	if (c->dead)
		return -1;
	struct room_event *out = fit_event(c, ev, ev->sse_len);
	if (!out) {
		conn_close(c, "out of memory");
		return -1;
	}
	if (replay_full(c, out->sse_len)) {
		room_event_release(out);
		return HUB_BUSY;
	}
	int r = conn_write_now(c, out->sse, out->sse_len, 0);
	if (r == 0)
		broker_metrics_sent(BM_SSE, out);
	room_event_release(out);
	if (r < 0)
		return -1;
	if (ev->ctl == ROOM_CTL_DELETED) {
		conn_revoke(c, "room deleted");
		return -1;
	}
	return 0;
}

/* Live events of one room that came from Redis together (hub.h, deliver_many), for a stream
 * with nothing waiting: one sendmsg for all of them, where one send each costs the kernel's
 * whole TCP path n times over (the broker's main cost once a fan-out falls behind). What the
 * socket does not take waits in the output, as conn_write_now leaves it. A stream with output
 * waiting, or an event too large for the bound (sse_deliver puts a resync in its place),
 * takes them one by one. */
static int sse_deliver_many(struct hub_sub *s, struct room_event *const *evs, size_t n)
{
	struct conn *c = sub_conn(s);
	if (c->dead)
		return -1;
	int one_by_one = conn_has_output(c);
	for (size_t i = 0; i < n && !one_by_one; i++)
		one_by_one = evs[i]->sse_len > c->srv->cfg->out_limit;
	if (one_by_one) {
		for (size_t i = 0; i < n; i++)
			if (sse_deliver(s, evs[i]) < 0)
				return -1;
		return 0;
	}
	struct iovec iov[HUB_BATCH_MAX];
	for (size_t i = 0; i < n; i++) {
		iov[i].iov_base = evs[i]->sse;
		iov[i].iov_len = evs[i]->sse_len;
	}
	ssize_t w = conn_writev_now(c, iov, n, 0);
	if (w < 0)
		return -1;
	size_t sent = (size_t)w;
	for (size_t i = 0; i < n; i++) {
		/* counted when its first byte left in the same call as the event before it */
		if (i > 0 && sent > 0)
			metric_inc(&broker_metrics[BM_BATCHED], BM_SSE, 0);
		sent = sent > evs[i]->sse_len ? sent - evs[i]->sse_len : 0;
		broker_metrics_sent(BM_SSE, evs[i]);
	}
	return 0;
}

static int ws_deliver(struct hub_sub *s, struct room_event *ev)
{
	struct conn *c = sub_conn(s);
	if (c->dead || !c->ws)
		return -1;
	struct room_event *out = fit_event(c, ev, ev->json_len + SERVER_WS_FRAME_HEAD);
	if (!out) {
		conn_close(c, "out of memory");
		return -1;
	}
	if (replay_full(c, out->json_len + SERVER_WS_FRAME_HEAD)) {
		room_event_release(out);
		return HUB_BUSY;
	}
	int r = ws_conn_send_text(c->ws, out->json, out->json_len);
	if (r == 0)
		broker_metrics_sent(BM_WS, out);
	room_event_release(out);
	ws_pump(c);
	if (r < 0)
		return -1;
	if (!c->dead && ev->ctl == ROOM_CTL_DELETED)
		conn_revoke(c, "room deleted");
	return c->dead || !c->sub.room ? -1 : 0;
}

/* Live events that came from Redis together (hub.h, deliver_many) for a WebSocket stream:
 * their frames queued first and written with one call (ws_pump), the output let go early
 * only when it nears the client's bound. */
static int ws_deliver_many(struct hub_sub *s, struct room_event *const *evs, size_t n)
{
	struct conn *c = sub_conn(s);
	if (c->dead || !c->ws)
		return -1;
	int queued = conn_has_output(c);
	size_t pumps = 0, k = 0;
	int r = 0;
	for (; k < n && r == 0 && c->sub.room; k++) {
		struct room_event *out =
			fit_event(c, evs[k], evs[k]->json_len + SERVER_WS_FRAME_HEAD);
		if (!out) {
			conn_close(c, "out of memory");
			return -1;
		}
		if (ws_conn_output(c->ws)->len + out->json_len + SERVER_WS_FRAME_HEAD >
		    c->srv->cfg->out_limit / 2) {
			ws_pump(c);
			pumps++;
		}
		r = c->dead ? -1 : ws_conn_send_text(c->ws, out->json, out->json_len);
		if (r == 0)
			broker_metrics_sent(BM_WS, out);
		room_event_release(out);
	}
	ws_pump(c);
	/* all of it left in that one call */
	if (r == 0 && !pumps && !queued && !c->dead && evbuffer_get_length(c->out) == 0)
		metric_add(&broker_metrics[BM_BATCHED], BM_WS, 0, (long long)k - 1);
	if (r < 0)
		return -1;
	return c->dead || !c->sub.room ? -1 : 0;
}

static void poll_answer(struct conn *c)
{
	if (c->answered || c->dead)
		return;
	c->answered = 1;
	char since[ROOM_EVID_MAX];
	if (c->has_start)
		room_evid_format(c->start, since);
	/* no since and nothing new: where the client stands is the tail we pinned */
	else if (c->sub.pinned)
		room_evid_format(c->sub.cur.last, since);
	struct buf b;
	buf_init(&b, LONGPOLL_ANSWER_MAX);
	if (longpoll_response(&b, c->lp, (c->has_start || c->sub.pinned) ? since : NULL,
			      c->srv->hdrs.data) == 0)
		conn_write_ex(c, b.data, b.len, 1);
	buf_free(&b);
	conn_finish(c);
}

static void poll_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	poll_answer(arg);
}

static int poll_deliver(struct hub_sub *s, struct room_event *ev)
{
	struct conn *c = sub_conn(s);
	if (c->answered || c->dead)
		return -1;
	if (longpoll_add(c->lp, ev) < 0) {
		/* full was answered before; this is out of memory: the poll comes back for it */
		poll_answer(c);
		return -1;
	}
	/* what the answer will carry: the event, or a resync in its place */
	broker_metrics_sent(BM_LONGPOLL, c->lp->events[c->lp->n - 1]);
	if (longpoll_full(c->lp) || ev->ctl == ROOM_CTL_DELETED) {
		poll_answer(c);
		return -1;
	}
	if (s->state == HUB_SUB_LIVE) {
		/* answer on the next loop turn, with whatever else arrives in this one */
		struct timeval now = {0, 0};
		if (evtimer_add(c->timer, &now) < 0) {
			/* no next turn to answer on: answered now, with what it has */
			poll_answer(c);
			return -1;
		}
	}
	return 0;
}

static void poll_caught_up(struct hub_sub *s)
{
	struct conn *c = sub_conn(s);
	if (c->lp && c->lp->n > 0)
		poll_answer(c);
}

static void nop_caught_up(struct hub_sub *s)
{
}

/* A `subscribed` event {} whose id is where the room stands now that s caught up (its last
 * event so far, or the last one replayed). */
static struct room_event *subscribed_event(const struct hub_sub *s)
{
	char id[ROOM_EVID_MAX];
	room_evid_format(s->cur.last, id);
	return room_event_new(id, "subscribed", "{}", 2);
}

/* The stream tells its client that it gets every event from here on: SSE with ": connected"
 * (or, asked for with `subscribed=1`, an event `subscribed` whose id is the position: a page's
 * EventSource does not show comments), WebSocket with a `subscribed` frame. Sent when the
 * stream is live (subscribed, caught up), not with the head or the 101, or an event published
 * between the two would reach neither the history read nor the subscription of a stream that
 * gave no start. Once: a catch-up after a lost Redis connection says nothing new (the stream
 * resumed where it was). */
static void stream_caught_up(struct hub_sub *s)
{
	struct conn *c = sub_conn(s);
	if (c->dead || c->live_said)
		return;
	c->live_said = 1;
	/* forced past the output bound: a replay may have filled it to the brim, and these few
	 * bytes must not drop the client just as it caught up. A write that fails closes the
	 * stream itself (conn_write_ex). */
	if (c->kind != CK_WS && !c->live_event) {
		(void)conn_write_ex(c, c->srv->sse_live.data, c->srv->sse_live.len, 1);
		return;
	}
	if (c->kind == CK_WS && !c->ws)
		return; /* its WebSocket is gone (closing): nothing more is sent */
	struct room_event *ev = subscribed_event(s);
	if (!ev) {
		conn_close(c, "out of memory");
		return;
	}
	if (c->kind != CK_WS) {
		(void)conn_write_ex(c, ev->sse, ev->sse_len, 1);
		room_event_release(ev);
		return;
	}
	/* fails only once the WebSocket is closing: then the stream is ending anyway */
	(void)ws_conn_send_text(c->ws, ev->json, ev->json_len);
	room_event_release(ev);
	ws_pump_ex(c, 1);
}

static void sub_fail(struct hub_sub *s, const char *why)
{
	conn_close(sub_conn(s), why);
}

static void sub_revoked(struct hub_sub *s, const char *why)
{
	conn_revoke(sub_conn(s), why);
}

static void sub_reserve(struct hub_sub *s)
{
	conn_reserve(sub_conn(s));
}

static void sub_release(struct hub_sub *s)
{
	conn_release(sub_conn(s));
}

static const struct hub_sub_ops sse_ops = {sse_deliver, stream_caught_up, sub_fail, sub_revoked,
					   sub_reserve, sub_release, sse_deliver_many};
static const struct hub_sub_ops poll_ops = {poll_deliver, poll_caught_up, sub_fail, sub_revoked,
					    sub_reserve, sub_release, NULL};
static const struct hub_sub_ops ws_ops = {ws_deliver, stream_caught_up, sub_fail, sub_revoked,
					  sub_reserve, sub_release, ws_deliver_many};
/* before a transport is chosen (the membership check) only the references are used */
static int nop_deliver(struct hub_sub *s, struct room_event *ev)
{
	return -1;
}
static const struct hub_sub_ops idle_ops = {nop_deliver, nop_caught_up, sub_fail, sub_revoked,
					    sub_reserve, sub_release, NULL};

/* ---- the multi-room stream (docs/API.md, "Several rooms on one stream") ----
 * Each room is its own hub subscriber (struct msub) with its own rights, catch-up and
 * position; their events share the connection, each in the envelope {"room", "type", "id",
 * "data"}: the data of an SSE event (whose `event:` is the type; no `id:` line, the client
 * resumes each room by the ids in the envelopes) or a WebSocket text frame. A room that
 * may not be read any more leaves the stream alone, told by a `dropped` event; the stream
 * ends when no room is left. */

/* Renders ev of room into out in the multi-room form of c's transport. 0 or -1. */
static int multi_render(const struct conn *c, const char *room, const struct room_event *ev,
			struct buf *out)
{
	struct buf env;
	int r = -1;
	buf_init(&env, ROOM_JSON_MAX + ROOM_ID_MAX + 16);
	if (buf_printf(&env, "{\"room\":\"%s\",", room) < 0 ||
	    buf_append(&env, ev->json + 1, ev->json_len - 1) < 0)
		goto out;
	if (c->route == RT_WS)
		r = buf_append(out, env.data, env.len);
	else
		r = sse_event(out, NULL, ev->type, env.data, env.len);
out:
	buf_free(&env);
	return r;
}

/* Writes one already rendered event; -1 when the connection is gone. force: past the
 * output bound (conn_write_ex), for the few bytes of a live marker. */
static int multi_write(struct conn *c, const struct buf *b, int force)
{
	if (c->route != RT_WS)
		return conn_write_now(c, b->data, b->len, force);
	int r = ws_conn_send_text(c->ws, b->data, b->len);
	ws_pump_ex(c, force);
	return r < 0 || c->dead ? -1 : 0;
}

static size_t multi_live(const struct conn *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->nms; i++)
		n += !c->ms[i].dropped;
	return n;
}

/* m leaves the stream: a `dropped` event {reason, message} with the room's position as its
 * id, then nothing more of the room. The stream ends after its last room. Safe from inside
 * m's own callbacks. A room dropped before it was joined (refused at the stream's opening)
 * has no position of the broker's to tell: its id is its start, the one the client named
 * for it or 0-0 (roomset.h), never anything read of the room. */
static void msub_drop(struct msub *m, const char *reason, const char *message)
{
	struct conn *c = m->c;
	if (m->dropped)
		return;
	m->dropped = 1;
	char id[ROOM_EVID_MAX];
	room_evid_format(m->sub.room ? m->sub.cur.last : m->start, id);
	hub_leave(c->srv->hub, &m->sub);
	if (c->dead || (c->kind != CK_SSE && c->kind != CK_WS))
		return;
	char *data = NULL;
	cJSON *o = cJSON_CreateObject();
	if (o && cJSON_AddStringToObject(o, "reason", reason) &&
	    cJSON_AddStringToObject(o, "message", message))
		data = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	struct room_event *ev = data ? room_event_new(id, "dropped", data, strlen(data)) : NULL;
	free(data);
	struct buf b;
	buf_init(&b, 4096);
	int r = ev && multi_render(c, m->room, ev, &b) == 0 ? multi_write(c, &b, 0) : -1;
	buf_free(&b);
	room_event_release(ev);
	if (r < 0) {
		conn_close(c, "out of memory");
		return;
	}
	if (multi_live(c) == 0)
		conn_revoke(c, message);
}

static int multi_deliver(struct hub_sub *s, struct room_event *ev)
{
	struct msub *m = sub_msub(s);
	struct conn *c = m->c;
	if (c->dead || m->dropped)
		return -1;
	size_t cap = (c->route == RT_WS ? ROOM_JSON_MAX : ROOM_SSE_MAX) + 2 * ROOM_ID_MAX + 64;
	size_t frame = c->route == RT_WS ? SERVER_WS_FRAME_HEAD : 0;
	struct buf b;
	buf_init(&b, cap);
	struct room_event *out = room_event_reserve(ev);
	int r = multi_render(c, m->room, out, &b);
	if (r == 0 && b.len + frame > c->srv->cfg->out_limit) {
		/* over this client's bound even alone: a resync in its place (fit_event) */
		room_event_release(out);
		out = room_event_resync(ev->idstr, "event_too_large");
		buf_reset(&b);
		r = out ? multi_render(c, m->room, out, &b) : -1;
	}
	if (r < 0) {
		room_event_release(out);
		buf_free(&b);
		conn_close(c, "out of memory");
		return -1;
	}
	if (m->sub.state == HUB_SUB_REPLAY && !conn_fits(c, b.len + frame)) {
		c->replay_wait = 1; /* write_cb resumes every room's replay */
		room_event_release(out);
		buf_free(&b);
		return HUB_BUSY;
	}
	r = multi_write(c, &b, 0);
	if (r == 0)
		broker_metrics_sent(c->route == RT_WS ? BM_WS : BM_SSE, out);
	room_event_release(out);
	buf_free(&b);
	if (r < 0)
		return -1;
	if (ev->ctl == ROOM_CTL_DELETED)
		msub_drop(m, "deleted", "the room was deleted");
	return c->dead || !m->sub.room ? -1 : 0;
}

/* Live events of one room that came from Redis together (hub.h, deliver_many), for a
 * multi-room SSE stream (the browser's shared stream): each rendered as multi_deliver does,
 * all written with one call. WebSocket takes them one by one. */
static int multi_deliver_many(struct hub_sub *s, struct room_event *const *evs, size_t n)
{
	struct msub *m = sub_msub(s);
	struct conn *c = m->c;
	if (c->dead || m->dropped)
		return -1;
	if (c->route == RT_WS) {
		for (size_t i = 0; i < n; i++)
			if (multi_deliver(s, evs[i]) < 0)
				return -1;
		return 0;
	}
	struct room_event *out[HUB_BATCH_MAX];
	size_t k = 0;
	int r = 0;
	struct buf b;
	buf_init(&b, n * (ROOM_SSE_MAX + 2 * ROOM_ID_MAX + 64));
	while (k < n && r == 0) {
		size_t mark = b.len;
		out[k] = room_event_reserve(evs[k]);
		r = multi_render(c, m->room, out[k], &b);
		if (r == 0 && b.len - mark > c->srv->cfg->out_limit) {
			/* over this client's bound even alone: a resync in its place (fit_event) */
			room_event_release(out[k]);
			b.len = mark;
			b.data[mark] = '\0';
			out[k] = room_event_resync(evs[k]->idstr, "event_too_large");
			r = out[k] ? multi_render(c, m->room, out[k], &b) : -1;
		}
		k++;
	}
	if (r == 0) {
		int queued = conn_has_output(c);
		r = conn_write_now(c, b.data, b.len, 0);
		for (size_t i = 0; r == 0 && i < k; i++)
			broker_metrics_sent(BM_SSE, out[i]);
		/* all of it left in that one call */
		if (r == 0 && !queued && evbuffer_get_length(c->out) == 0)
			metric_add(&broker_metrics[BM_BATCHED], BM_SSE, 0, (long long)k - 1);
	} else {
		conn_close(c, "out of memory");
	}
	for (size_t i = 0; i < k; i++)
		room_event_release(out[i]);
	buf_free(&b);
	if (r < 0)
		return -1;
	return c->dead || !m->sub.room ? -1 : 0;
}

/* A `subscribed` event {} whose id is where the room stands now that its catch-up is done:
 * a client that had no position for the room resumes it from this one, so a reconnection
 * loses nothing even in a room that has been quiet. The first of each room is forced past
 * the output bound, as the one-room markers are (stream_caught_up): a replay may have filled
 * it. Those after a lost Redis connection are not, so a client that never reads cannot
 * grow its output past the bound by more than one marker per room. */
static void multi_caught_up(struct hub_sub *s)
{
	struct msub *m = sub_msub(s);
	struct conn *c = m->c;
	if (c->dead || m->dropped || !m->sub.room)
		return;
	struct room_event *ev = subscribed_event(&m->sub);
	struct buf b;
	buf_init(&b, 1024);
	int r = ev && multi_render(c, m->room, ev, &b) == 0 ? multi_write(c, &b, !m->live_said) : -1;
	m->live_said = 1;
	buf_free(&b);
	room_event_release(ev);
	if (r < 0 && !c->dead)
		conn_close(c, "out of memory");
}

static void multi_fail(struct hub_sub *s, const char *why)
{
	conn_close(sub_msub(s)->c, why);
}

static void multi_revoked(struct hub_sub *s, const char *why)
{
	int signed_out = strstr(why, "signed out") != NULL;
	/* the reasons are the error codes of the same refusals (docs/API.md "Errors"), but for
	 * a deleted room, named as its `room` event names it */
	int gone = strstr(why, "deleted") != NULL;
	msub_drop(sub_msub(s), signed_out ? "session_revoked" : gone ? "deleted" : "not_a_member",
		  why);
}

static void multi_reserve(struct hub_sub *s)
{
	conn_reserve(sub_msub(s)->c);
}

static void multi_release(struct hub_sub *s)
{
	conn_release(sub_msub(s)->c);
}

static const struct hub_sub_ops multi_ops = {multi_deliver, multi_caught_up, multi_fail,
					     multi_revoked, multi_reserve, multi_release,
					     multi_deliver_many};

static void ws_close_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_close(arg, "no close answer");
}

/* Moves the WebSocket's output to the socket and acts on its state; force: past the output
 * bound (conn_write_ex). */
static void ws_pump_ex(struct conn *c, int force)
{
	if (c->dead || !c->ws)
		return;
	struct buf *out = ws_conn_output(c->ws);
	if (out->len) {
		int r = conn_write_now(c, out->data, out->len, force);
		/* whatever the socket did not take was copied into c->out */
		ws_conn_output_sent(c->ws);
		if (r < 0)
			return;
	}
	switch (ws_conn_state(c->ws)) {
	case WS_OPEN:
		break;
	case WS_CLOSING:
		if (!evtimer_pending(c->timer, NULL)) {
			struct timeval tv;
			ms_tv(SERVER_WS_CLOSE_WAIT_MS, &tv);
			evtimer_del(c->timer);
			event_assign(c->timer, c->srv->base, -1, 0, ws_close_wait_cb, c);
			if (evtimer_add(c->timer, &tv) < 0) {
				conn_close(c, "event_add");
				return;
			}
		}
		break;
	case WS_DONE:
		conn_finish(c);
		break;
	}
}

static void ws_pump(struct conn *c)
{
	ws_pump_ex(c, 0);
}

static void ws_on_text_cb(void *arg, const char *msg, size_t len)
{
	struct conn *c = arg;
	if ((!c->multi && !c->sub.room) || c->kind != CK_WS)
		return; /* the stream ended (revoked): nothing it says reaches the room */
	struct hub_sub *sub = &c->sub;
	const char *room = c->room;
	time_t *sec = &c->presence_sec;
	long *count = &c->presence_count;
	/* the only message a client sends up; anything else is ignored (lib/presence.h) */
	struct presence_msg pm;
	if (!presence_msg_parse(msg, len, &pm))
		return;
	if (c->multi) {
		/* on a stream of several rooms, presence names its room: one still on the stream */
		int at = -1;
		for (size_t i = 0; pm.room[0] && i < c->nms; i++)
			if (strcmp(c->ms[i].room, pm.room) == 0)
				at = (int)i;
		if (at < 0 || !c->ms[at].sub.room)
			return;
		sub = &c->ms[at].sub;
		room = c->ms[at].room;
		sec = &c->ms[at].presence_sec;
		count = &c->ms[at].presence_count;
	}
	/* The bound on what one user can make every other client receive is their budget in
	 * the room, counted in Redis by the script that emits (hub_presence), for all their
	 * connections, brokers and PUTs together. No connection can use more than that budget
	 * in any one room, so what one sends to a room past it within a second is dropped here,
	 * before Redis (counted per room: a stream of several rooms cannot aim every room's
	 * share at one of them). */
	time_t now = time(NULL);
	if (now != *sec) {
		*sec = now;
		*count = 0;
	}
	if (*count >= c->srv->cfg->hub.presence_limit)
		return;
	(*count)++;
	char *data = presence_data_json(sub->user_id, sub->username, pm.cursor, pm.has_selection,
					pm.anchor, pm.head);
	if (data)
		hub_presence(c->srv->hub, room, sub->user_id, data);
	free(data);
}

/* Bytes from a WebSocket peer (all taken: wslay keeps a partial frame itself). */
static void ws_feed(struct conn *c, const unsigned char *p, size_t len)
{
	c->last_in_ms = clock_mono_ms();
	int r = ws_conn_feed(c->ws, p, len);
	ws_pump(c);
	if (r < 0 && !c->dead)
		conn_finish(c);
}

/* What waits in c->in for the WebSocket (frames sent right behind the request). */
static void ws_read(struct conn *c)
{
	size_t len = c->in ? evbuffer_get_length(c->in) : 0;
	if (len == 0 || !c->ws)
		return;
	const unsigned char *p = evbuffer_pullup(c->in, (ev_ssize_t)len);
	if (!p) {
		conn_close(c, "out of memory");
		return;
	}
	ws_feed(c, p, len);
	/* the reaper frees c->in, never a callback: still there after a close */
	evbuffer_drain(c->in, len);
}

/* ---- requests ---- */

/* After a flush, left bytes still unsent: a finished answer closes once it is all sent; a
 * replay that filled the output goes on once half of it is sent. */
static void conn_drained(struct conn *c, size_t left)
{
	if (c->dead)
		return;
	if (c->kind == CK_HEAD) {
		if (left == 0 && c->read_paused)
			conn_resume_heads(c);
		return;
	}
	if (c->kind == CK_DONE) {
		if (left == 0)
			conn_linger(c);
		return;
	}
	if (!c->replay_wait || left > c->srv->cfg->out_limit / 2)
		return;
	c->replay_wait = 0;
	hub_resume(c->srv->hub, &c->sub);
	for (size_t i = 0; i < c->nms && !c->dead; i++)
		hub_resume(c->srv->hub, &c->ms[i].sub);
}

static void start_stream(struct conn *c)
{
	struct server *srv = c->srv;
	const struct room_evid *start = c->has_start ? &c->start : NULL;
	c->sub.presence = c->route != RT_POLL;
	evtimer_del(c->timer);
	switch (c->route) {
	case RT_SSE:
		/* a multi-room stream says "subscribed" per room instead (multi_caught_up) */
		if (conn_write(c, srv->sse_open.data, srv->sse_open.len) < 0 ||
		    (c->multi && conn_write(c, srv->sse_live.data, srv->sse_live.len) < 0))
			return;
		/* an SSE stream waits for nothing until it ends: its timer is made again then */
		event_free(c->timer);
		c->timer = NULL;
		c->sub.ops = &sse_ops;
		c->kind = CK_SSE;
		break;
	case RT_POLL: {
		c->lp = malloc(sizeof *c->lp);
		if (!c->lp) {
			conn_error(c, 500, "internal", "out of memory");
			return;
		}
		longpoll_init(c->lp);
		struct timeval tv;
		ms_tv(srv->cfg->poll_timeout_ms, &tv);
		event_assign(c->timer, srv->base, -1, 0, poll_timer_cb, c);
		if (evtimer_add(c->timer, &tv) < 0) {
			conn_error(c, 500, "internal", "out of memory");
			return;
		}
		c->sub.ops = &poll_ops;
		/* an answer is full at this: a catch-up reads no more history than it carries */
		c->sub.catchup_bytes = LONGPOLL_MAX_BYTES;
		c->kind = CK_POLL;
		break;
	}
	case RT_WS:
		if (conn_write(c, c->ws_reply, strlen(c->ws_reply)) < 0)
			return;
		free(c->ws_reply);
		c->ws_reply = NULL;
		c->ws = ws_conn_new(srv->cfg->ws_max_msg, srv->cfg->out_limit, ws_on_text_cb, c);
		if (!c->ws) {
			conn_close(c, "out of memory");
			return;
		}
		c->sub.ops = &ws_ops;
		c->kind = CK_WS;
		c->last_in_ms = clock_mono_ms();
		break;
	}
	streams_add(c, 1);
	metric_inc(&broker_metrics[BM_STREAMS], c->route, 0);
	if (c->multi) {
		/* rooms it may not read are told at once; the others start as a single stream does */
		for (size_t i = 0; i < c->nms && !c->dead; i++) {
			struct msub *m = &c->ms[i];
			if (m->verdict == RIGHTS_NO_ROOM) {
				msub_drop(m, "room_not_found", "no such room");
				continue;
			}
			if (m->verdict != RIGHTS_READ) {
				msub_drop(m, "not_a_member", "not a member of this room");
				continue;
			}
			m->sub.presence = 1;
			if (hub_join(srv->hub, &m->sub, m->room, m->has_start ? &m->start : NULL) < 0) {
				conn_close(c, "out of memory");
				return;
			}
		}
	} else if (hub_join(srv->hub, &c->sub, c->room, start) < 0) {
		conn_close(c, "out of memory");
		return;
	}
	if (c->kind == CK_WS) {
		/* frames the client sent right behind its request, or during the rights check */
		ws_read(c);
		if (!c->dead && c->read_paused) {
			c->read_paused = 0;
			if (event_add(c->rev, NULL) < 0) {
				conn_close(c, "event_add");
				return;
			}
		}
	}
	/* an idle stream keeps no input buffer: nothing more is read into it but WebSocket
	 * frames, and one is made again for a frame that arrives split */
	if (!c->dead && c->in && (c->kind != CK_WS || evbuffer_get_length(c->in) == 0)) {
		evbuffer_free(c->in);
		c->in = NULL;
	}
}

/* A stream its rights let in counts towards its user's streams, over every process of the
 * broker (usercount.h), until it ends (places_release): a user who holds
 * BROKER_MAX_STREAMS_PER_USER already is answered 429 too_many_streams instead, so that no
 * one user can take every place under BROKER_MAX_STREAMS. The user is known only now: the
 * token names them, but only the rights check says the stream would open (a refusal for
 * rights counts nothing). Before the WebSocket's 101, which waits for the rights too, so a
 * WebSocket is refused with the same HTTP answer. A long-poll counts while it waits, as it
 * holds its place under BROKER_MAX_STREAMS, or polls would be a way past the bound. 0, or
 * -1 when the connection was answered. */
static int user_admit(struct conn *c, long long user)
{
	const struct server_cfg *cfg = c->srv->cfg;
	char msg[200];
	switch (usercount_take(cfg->user_streams, user, cfg->max_streams_per_user)) {
	case USERCOUNT_TAKEN:
		c->user_counted = 1;
		c->user = user;
		return 0;
	case USERCOUNT_AT_LIMIT:
		metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_USER_FULL, 0);
		snprintf(msg, sizeof msg,
			 "this user has as many streams open as one user may "
			 "(BROKER_MAX_STREAMS_PER_USER, %ld): close one, then retry",
			 cfg->max_streams_per_user);
		conn_error(c, 429, "too_many_streams", msg);
		return -1;
	case USERCOUNT_FULL:
		/* cannot happen while the table is sized for max_streams users (main.c): every
		 * user counted holds a place under it */
		metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_FULL, 0);
		conn_error(c, 503, "too_many_clients",
			   "the broker holds as many users' streams as it may; retry later");
		return -1;
	case USERCOUNT_ERROR:
		break;
	}
	log_error("user %lld: the count of the user's streams could not be read", user);
	metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_ERROR, 0);
	conn_error(c, 500, "internal", "the user's streams could not be counted");
	return -1;
}

/* The rights question's answer decides whether the stream starts (hub.h, rights.h). */
static void check_cb(struct hub_sub *s, int ok, enum rights_verdict v)
{
	struct conn *c = sub_conn(s);
	if (c->dead)
		return;
	if (!ok)
		conn_error(c, 503, "redis_unavailable", "the event store is unavailable");
	else if (v == RIGHTS_REVOKED)
		conn_error(c, 401, "session_revoked", "this session was signed out");
	else if (v == RIGHTS_NO_ROOM)
		conn_error(c, 404, "room_not_found", "no such room");
	else if (v != RIGHTS_READ)
		conn_error(c, 403, "not_a_member", "not a member of this room");
	else if (user_admit(c, c->sub.user_id) == 0)
		start_stream(c);
}

/* A multi-room stream opens once every room's rights question is answered: with the rooms
 * it may read (the others get a `dropped` event first), or refused as a whole when it may read
 * none, when its session was signed out, or when Redis could not answer for one of them. */
static void multi_decide(struct conn *c)
{
	size_t readable = 0;
	int failed = 0, revoked = 0;
	for (size_t i = 0; i < c->nms; i++) {
		const struct msub *m = &c->ms[i];
		if (!m->answered || !m->ok)
			failed = 1;
		else if (m->verdict == RIGHTS_READ)
			readable++;
		else if (m->verdict == RIGHTS_REVOKED)
			revoked = 1;
	}
	if (failed)
		conn_error(c, 503, "redis_unavailable", "the event store is unavailable");
	else if (revoked)
		conn_error(c, 401, "session_revoked", "this session was signed out");
	else if (readable == 0)
		conn_error(c, 403, "not_a_member", "not a member of any of these rooms");
	else if (user_admit(c, c->ms[0].sub.user_id) == 0) /* every room asked for one user */
		start_stream(c);
}

static void multi_check_cb(struct hub_sub *s, int ok, enum rights_verdict v)
{
	struct msub *m = sub_msub(s);
	struct conn *c = m->c;
	m->answered = 1;
	m->ok = ok;
	m->verdict = v;
	if (c->checks_pending > 0)
		c->checks_pending--;
	if (c->dead || c->kind != CK_AUTH || c->checks_pending > 0)
		return;
	multi_decide(c);
}

/* Every room of the set asks the same question as a single-room stream (rights.h). */
static void multi_authorize(struct conn *c, const struct token_claims *cl)
{
	head_release(c); /* a whole head: no longer one still being sent */
	c->kind = CK_AUTH;
	c->checks_pending = 0;
	for (size_t i = 0; i < c->nms; i++) {
		struct msub *m = &c->ms[i];
		m->sub.user_id = cl->user_id;
		snprintf(m->sub.username, sizeof m->sub.username, "%s", cl->username);
		snprintf(m->sub.sid, sizeof m->sub.sid, "%s", cl->sid);
		m->sub.gen = cl->gen;
		if (hub_check(c->srv->hub, m->room, &m->sub, multi_check_cb) < 0)
			break; /* Redis is down: the rooms asked so far answer, then 503 */
		c->checks_pending++;
	}
	if (c->checks_pending == 0)
		multi_decide(c);
}

static void authorize(struct conn *c, const struct http_head *h)
{
	struct server *srv = c->srv;
	char ticket[TOKEN_MAX_LEN + 1];
	const char *jwt = NULL;
	int from_query = 0;
	int q = http_query_get(h->query, "ticket", ticket, sizeof ticket);
	if (c->multi && q != 0) {
		conn_error(c, 401, "invalid_token",
			   "a stream of several rooms takes the session's bearer token "
			   "(Authorization: Bearer), not a ticket");
		return;
	}
	if (q < 0) {
		conn_error(c, 401, "invalid_token", "malformed ticket");
		return;
	}
	if (q == 1 && ticket[0]) {
		jwt = ticket;
		from_query = 1;
	} else if (http_head_count(h, "Authorization") > 1) {
		/* which of two would count is a guess a proxy in front may make otherwise: the front
		 * door joins them into one that no token matches, so they are refused here too */
		conn_error(c, 401, "invalid_token", "send one Authorization header");
		return;
	} else {
		jwt = token_bearer(http_head_get(h, "Authorization"));
	}
	if (!jwt || !*jwt) {
		conn_error(c, 401, "unauthorized", "a ticket or a bearer token is required");
		return;
	}
	struct token_claims cl;
	const char *why = NULL;
	int v = token_verify(srv->key, jwt, (long long)time(NULL), &cl, &why);
	if (v == TOKEN_UNCHECKED) {
		/* no verdict on the token (out of memory): a failure of ours, not the holder's */
		log_error("a token could not be checked: %s", why);
		conn_error(c, 500, "internal", "the token could not be checked");
		return;
	}
	if (v < 0) {
		conn_error(c, 401, "invalid_token", why ? why : "invalid token");
		return;
	}
	if (c->multi) {
		if (cl.kind == TOKEN_TICKET)
			conn_error(c, 401, "invalid_token",
				   "a stream ticket is for one room: a stream of several rooms takes "
				   "the session's bearer token");
		else {
			c->session_until = cl.sexp;
			multi_authorize(c, &cl);
		}
		return;
	}
	if (cl.kind == TOKEN_TICKET && strcmp(cl.room, c->room) != 0) {
		conn_error(c, 403, "forbidden", "this ticket is for another room");
		return;
	}
	if (cl.kind != TOKEN_TICKET && from_query) {
		conn_error(c, 401, "invalid_token", "the ticket parameter takes a stream ticket");
		return;
	}
	/* a ticket says who took it and with which session, not that they may still read the
	 * room: every stream waits for the same question, whatever its credential */
	c->sub.user_id = cl.user_id;
	snprintf(c->sub.username, sizeof c->sub.username, "%s", cl.username);
	snprintf(c->sub.sid, sizeof c->sub.sid, "%s", cl.sid);
	c->sub.gen = cl.gen;
	c->session_until = cl.sexp;
	head_release(c); /* a whole head: no longer one still being sent */
	c->kind = CK_AUTH;
	if (hub_check(srv->hub, c->room, &c->sub, check_cb) < 0)
		conn_error(c, 503, "redis_unavailable", "the event store is unavailable");
}

/* Where a stream resumes: the Last-Event-ID header when it has a value (route_request has
 * refused two), else the query parameter name. The header comes first because an
 * EventSource reconnects to the URL it was opened with, last_event_id and all, and sends
 * the id it got last in the header: the query's id is then the older one. */
static int read_start(struct conn *c, const struct http_head *h, const char *name)
{
	char v[ROOM_EVID_MAX + 8];
	const char *hv = c->route == RT_POLL ? NULL : http_head_get(h, "Last-Event-ID");
	int q = 0;
	if (hv && *hv) {
		if (strlen(hv) >= sizeof v)
			return -1;
		snprintf(v, sizeof v, "%s", hv);
	} else {
		q = http_query_get(h->query, name, v, sizeof v);
		if (q < 0)
			return -1;
		if (q == 0 || !v[0])
			return 0;
	}
	if (room_evid_parse(v, &c->start) < 0)
		return -1;
	c->has_start = 1;
	return 0;
}

/* `subscribed` on a one-room SSE stream: absent or 0 keeps the comment ": connected", 1 asks
 * for the event `subscribed` in its place. 0, or -1 for any other value or a second one. */
static int read_live_event(struct conn *c, const struct http_head *h)
{
	char v[4];
	int q = http_query_get(h->query, "subscribed", v, sizeof v);
	if (q == 0)
		return 0;
	if (q < 0 || http_query_count(h->query, "subscribed") != 1 ||
	    (strcmp(v, "0") != 0 && strcmp(v, "1") != 0))
		return -1;
	c->live_event = v[0] == '1';
	return 0;
}

/* GET or HEAD /events/health; HEAD gets the same head, without the body (conn_respond). */
static void health(struct conn *c)
{
	char body[128];
	snprintf(body, sizeof body, "{\"status\":\"ok\",\"redis\":\"%s\",\"clients\":%ld}",
		 hub_redis_up(c->srv->hub) ? "ok" : "down",
		 (long)atomic_load(&c->srv->cfg->shared->streams));
	conn_respond(c, 200, NULL, body);
}

/* Checks a WebSocket upgrade and keeps its 101 answer for when the rights are known. 0, or -1
 * when the request was answered with an error. */
static int ws_prepare(struct conn *c, const struct http_head *h)
{
	struct buf b;
	const char *why = NULL;
	int bad_version = 0;
	buf_init(&b, 1024);
	if (ws_handshake(h, &b, &why, &bad_version, c->srv->hdrs.data) < 0) {
		buf_free(&b);
		conn_error(c, bad_version ? 426 : 400,
			   bad_version ? "upgrade_required" : "invalid_request", why);
		return -1;
	}
	c->ws_reply = buf_detach(&b);
	if (!c->ws_reply) {
		conn_error(c, 500, "internal", "out of memory");
		return -1;
	}
	return 0;
}

/* A stream takes one of max_streams places until it ends; past them it is refused at once
 * with a 503, before anything is asked of Redis (docs/OPERATIONS.md, "Capacity"). The
 * default keeps the broker below what the web server in front can hold, so a client past
 * capacity gets an answer instead of waiting on a front door that stopped accepting. 0, or
 * -1 when the connection was answered. */
static int stream_admit(struct conn *c)
{
	struct server *srv = c->srv;
	/* shared by every broker process (BROKER_PROCESSES): the bound is on all of them */
	if (atomic_fetch_add(&srv->cfg->shared->slots, 1) >= srv->cfg->max_streams) {
		atomic_fetch_sub(&srv->cfg->shared->slots, 1);
		metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_FULL, 0);
		conn_error(c, 503, "too_many_clients",
			   "the broker holds as many streams as it may (BROKER_MAX_STREAMS); retry "
			   "later");
		return -1;
	}
	c->slot = 1;
	return 0;
}

/* /events/multi (SSE) and /events/multi/ws: several rooms on one stream (roomset.h). */
static void route_multi(struct conn *c, const struct http_head *h, const char *tail)
{
	if (tail[0] == '\0')
		c->route = RT_SSE;
	else if (strcmp(tail, "/ws") == 0)
		c->route = RT_WS;
	else if (strcmp(tail, "/poll") == 0) {
		conn_error(c, 404, "not_found",
			   "long-poll carries one room: use /events/rooms/{id}/poll");
		return;
	} else {
		conn_error(c, 404, "not_found", "no such endpoint");
		return;
	}
	if (strcmp(h->method, "GET") != 0) {
		conn_error(c, 405, "method_not_allowed", "use GET");
		return;
	}
	struct roomset set;
	char err[200];
	enum roomset_status st = roomset_parse(h->query, &set, err, sizeof err);
	if (st != ROOMSET_OK) {
		conn_error(c, 400, st == ROOMSET_TOO_MANY ? "too_many_rooms" : "invalid_request", err);
		return;
	}
	c->ms = calloc(set.n, sizeof *c->ms);
	if (!c->ms) {
		conn_error(c, 500, "internal", "out of memory");
		return;
	}
	c->multi = 1;
	c->nms = set.n;
	snprintf(c->room, sizeof c->room, "*"); /* for the log: several */
	for (size_t i = 0; i < set.n; i++) {
		struct msub *m = &c->ms[i];
		m->c = c;
		m->sub.ops = &multi_ops;
		snprintf(m->room, sizeof m->room, "%s", set.v[i].id);
		m->start = set.v[i].start;
		m->has_start = set.v[i].has_start;
		m->verdict = RIGHTS_UNKNOWN;
	}
	if (stream_admit(c) < 0)
		return;
	if (c->route == RT_WS && ws_prepare(c, h) < 0)
		return;
	authorize(c, h);
}

/* Whether a preflight may keep its connection for the request behind it, as far as its
 * address's heads go (max_heads_per_address). The kept connection waits for that request
 * with its place among the heads still held: it is one that has yet to send a head, and a
 * client must not hold more of them than the bound by sending preflights alone. But a
 * browser may leave the connection idle in its pool (its request going on another one), and
 * many people behind one NAT reconnecting at once would then fill the bound with idle kept
 * connections and have their next heads refused. So a preflight keeps its connection only
 * while its address holds at most half the bound, itself included: kept connections never
 * take more than half an address's places, and past that the answer says
 * "Connection: close" and the place comes back with it (conn_finish), as if the browser had
 * never kept it. A connection that is not counted (a trusted front door's, or no bound) may
 * always keep. */
static int preflight_may_keep(const struct conn *c)
{
	if (!c->head_counted)
		return 1;
	return addrcap_get(c->srv->heads, c->head_key) <= c->srv->cfg->max_heads_per_address / 2;
}

/* A CORS preflight (cors.h). Every /events/ endpoint takes GET with the same request headers,
 * so the answer is the same for all of them; other paths are none of the broker's. Unlike
 * the other answers it may keep the connection for the next request (HTTP/1.1 without
 * "Connection: close" and without a body), the browser's GET that follows.
 *
 * The request behind a kept preflight gets a whole BROKER_HEAD_TIMEOUT_MS of its own, but a
 * preflight keeps the connection only while it comes within one head timeout of the accept,
 * and only below SERVER_KEEPALIVE_MAX requests; past either it is answered with
 * "Connection: close". A browser's preflight comes at once on its connection, so it is never
 * refused a keep-alive; a client that sends nothing but preflights cannot hold a connection
 * longer than two head timeouts (renewing the timeout at each preflight held it forever), and
 * the count bounds what it can make the broker answer on one connection. Closing a kept
 * connection between requests is always allowed (RFC 9112 §9.6): a client opens another.
 *
 * A kept connection goes on holding its place among its address's heads while it waits
 * (preflight_may_keep), so it is kept only while the address has room to spare. */
static void preflight(struct conn *c, const struct http_head *h)
{
	static const char events[] = "/events/";
	struct server *srv = c->srv;
	if (strncmp(h->path, events, sizeof events - 1) != 0) {
		conn_error(c, 404, "not_found", "no such endpoint");
		return;
	}
	/* "close" in any Connection line; one Content-Length at most and no Transfer-Encoding,
	 * head_route saw to that (http_head_framing_error) */
	const char *clen = http_head_get(h, "Content-Length");
	int keep = h->minor == 1 && !http_head_has_token(h, "Connection", "close") &&
		   !(clen && strcmp(clen, "0") != 0) && c->requests < SERVER_KEEPALIVE_MAX &&
		   clock_mono_ms() - c->accepted_ms < srv->cfg->head_timeout_ms &&
		   preflight_may_keep(c);
	const struct buf *a = keep ? &srv->preflight_keep : &srv->preflight_close;
	if (conn_write(c, a->data, a->len) < 0)
		return;
	if (!keep) {
		conn_finish(c);
		return;
	}
	/* the next request has a whole head timeout of its own */
	struct timeval tv;
	ms_tv(srv->cfg->head_timeout_ms, &tv);
	evtimer_del(c->timer);
	if (evtimer_add(c->timer, &tv) < 0) /* no connection waits without its bound */
		conn_close(c, "event_add");
}

static void route_request(struct conn *c, const struct http_head *h)
{
	static const char rooms[] = "/events/rooms/";
	static const char multi[] = "/events/multi";
	const char *path = h->path;
	if (strcmp(h->method, "OPTIONS") == 0) {
		preflight(c, h);
		return;
	}
	if (strncmp(path, multi, sizeof multi - 1) == 0 &&
	    (path[sizeof multi - 1] == '\0' || path[sizeof multi - 1] == '/')) {
		route_multi(c, h, path + sizeof multi - 1);
		return;
	}
	if (strcmp(path, "/events/health") == 0) {
		if (strcmp(h->method, "GET") != 0 && strcmp(h->method, "HEAD") != 0)
			conn_error_ex(c, 405, "Allow: GET, HEAD, OPTIONS\r\n", "method_not_allowed",
				      "use GET or HEAD");
		else
			health(c);
		return;
	}
	if (strncmp(path, rooms, sizeof rooms - 1) != 0) {
		conn_error(c, 404, "not_found", "no such endpoint");
		return;
	}
	const char *id = path + sizeof rooms - 1;
	const char *slash = strchr(id, '/');
	size_t idlen = slash ? (size_t)(slash - id) : strlen(id);
	if (!id_valid(id, idlen)) {
		conn_error(c, 404, "room_not_found", "no such room");
		return;
	}
	if (!slash)
		c->route = RT_SSE;
	else if (strcmp(slash, "/poll") == 0)
		c->route = RT_POLL;
	else if (strcmp(slash, "/ws") == 0)
		c->route = RT_WS;
	else {
		conn_error(c, 404, "not_found", "no such endpoint");
		return;
	}
	memcpy(c->room, id, idlen);
	c->room[idlen] = '\0';
	if (strcmp(h->method, "GET") != 0) {
		conn_error(c, 405, "method_not_allowed", "use GET");
		return;
	}
	/* a parameter read here given twice is refused rather than the first one taken: a
	 * cache or proxy in front may read the other one (docs/API.md, "Paging") */
	const char *start_name = c->route == RT_POLL ? "since" : "last_event_id";
	const char *const once[] = {"ticket", start_name};
	for (size_t i = 0; i < sizeof once / sizeof once[0]; i++) {
		if (http_query_count(h->query, once[i]) > 1) {
			char msg[80];
			snprintf(msg, sizeof msg, "the %s parameter is given more than once", once[i]);
			conn_error(c, 400, "invalid_request", msg);
			return;
		}
	}
	/* the same for the header: EventSource sends one Last-Event-ID, and a second could be
	 * the one a proxy in front acted on. The long-poll does not read it. */
	if (c->route != RT_POLL && http_head_count(h, "Last-Event-ID") > 1) {
		conn_error(c, 400, "invalid_request", "the Last-Event-ID header is given more than once");
		return;
	}
	if (read_start(c, h, start_name) < 0) {
		conn_error(c, 400, "invalid_request", "malformed event id");
		return;
	}
	if (c->route == RT_SSE && read_live_event(c, h) < 0) {
		conn_error(c, 400, "invalid_request", "subscribed takes 0 or 1, once");
		return;
	}
	if (stream_admit(c) < 0)
		return;
	if (c->route == RT_WS && ws_prepare(c, h) < 0)
		return;
	authorize(c, h);
}

/* The connection's input buffer, made when first needed; NULL when out of memory. */
static struct evbuffer *conn_in(struct conn *c)
{
	if (!c->in)
		c->in = evbuffer_new();
	return c->in;
}

/* Keeps p[0..n) in the input buffer for later. 0, or -1 when the connection was closed. */
static int conn_keep(struct conn *c, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	struct evbuffer *in = conn_in(c);
	if (!in || evbuffer_add(in, p, n) < 0) {
		conn_close(c, "out of memory");
		return -1;
	}
	return 0;
}

/* Parses a head at the start of p[0..n) into srv->head. 1 complete, 0 not yet, -1 answered. */
static int head_parse(struct conn *c, const char *p, size_t n)
{
	/* enough for a verdict, the empty lines skipped before the request line included:
	 * without them, a line that fits could look too long (414) */
	size_t take = n < HTTP_HEAD_READ_MAX ? n : HTTP_HEAD_READ_MAX;
	enum http_head_status st = http_head_parse(&c->srv->head, p, take);
	if (st == HTTP_HEAD_MORE)
		return 0;
	if (st == HTTP_HEAD_OK)
		return 1;
	/* refused before head_route, which sets head_only for a routed head: when the request
	 * line came whole, its method is known however bad the rest is, and a HEAD's refusal
	 * is the head alone as any answer to a HEAD (set either way, so no earlier request on
	 * this connection decides) */
	c->head_only = http_head_line_is_head(p, take);
	if (st == HTTP_HEAD_TOO_LARGE)
		conn_error(c, 431, "header_too_large", "the request head is too large");
	else if (st == HTTP_HEAD_URI_TOO_LONG)
		conn_error(c, 414, "uri_too_long", "the request line is too long");
	else
		conn_error(c, 400, "invalid_request",
			   c->srv->head.why ? c->srv->head.why : "malformed request");
	return -1;
}

/* Acts on the head just parsed; whatever followed it is in c->in already. */
static void head_route(struct conn *c)
{
	c->requests++;
	/* before any answer, the refusal of a stopping broker among them */
	c->head_only = strcmp(c->srv->head.method, "HEAD") == 0;
	if (c->srv->stopping) {
		conn_error(c, 503, "shutting_down", "the broker is shutting down; retry");
		return;
	}
	/* a head whose end could be read two ways is refused before anything acts on it: on
	 * a kept connection (a preflight) the next request starts right behind it */
	const char *framing = http_head_framing_error(&c->srv->head);
	if (framing) {
		conn_error(c, 400, "invalid_request", framing);
		return;
	}
	route_request(c, &c->srv->head);
}

/* A pipelined request (RFC 9112 §9.3) is read only once the answers before it have left: a
 * client that sends requests without reading the answers would otherwise make the broker
 * hold the answers (a preflight of 36 bytes is answered with about 260 bytes, up to
 * BROKER_CLIENT_BUFFER per connection). The socket is not read meanwhile, so the input
 * waiting is at most one read. conn_drained resumes once the output is empty. */
static void head_read(struct conn *c);

static void conn_pause_heads(struct conn *c)
{
	if (c->read_paused)
		return;
	c->read_paused = 1;
	event_del(c->rev);
}

static void conn_resume_heads(struct conn *c)
{
	c->read_paused = 0;
	if (event_add(c->rev, NULL) < 0) {
		conn_close(c, "event_add");
		return;
	}
	head_read(c);
}

/* Heads waiting in c->in: one after the other while the connection takes requests (a head
 * split over several reads, a preflight and the request behind it), each once the answers
 * before it have left (conn_pause_heads). */
static void head_read(struct conn *c)
{
	while (!c->dead && c->kind == CK_HEAD && c->in) {
		size_t len = evbuffer_get_length(c->in);
		if (len == 0)
			return;
		if (evbuffer_get_length(c->out) > 0) {
			conn_pause_heads(c);
			return;
		}
		size_t take = len < HTTP_HEAD_READ_MAX ? len : HTTP_HEAD_READ_MAX;
		const char *p = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)take);
		if (!p) {
			conn_close(c, "out of memory");
			return;
		}
		if (head_parse(c, p, take) <= 0)
			return;
		evbuffer_drain(c->in, c->srv->head.head_len);
		head_route(c);
	}
}

/* Fresh bytes of a connection still reading its request: parsed where they are when nothing
 * waits before them (the usual head, in one read: nothing is allocated for it), else behind
 * what waits, and only once the answers before them have left. */
static void head_input(struct conn *c, const char *p, size_t n)
{
	if ((c->in && evbuffer_get_length(c->in) > 0) || evbuffer_get_length(c->out) > 0) {
		if (conn_keep(c, p, n) == 0)
			head_read(c);
		return;
	}
	int r = head_parse(c, p, n);
	if (r < 0)
		return;
	if (r == 0) {
		conn_keep(c, p, n);
		return;
	}
	size_t used = c->srv->head.head_len;
	/* what came behind the head (WebSocket frames, a next request) waits in c->in */
	if (conn_keep(c, p + used, n - used) < 0)
		return;
	head_route(c);
	head_read(c);
}

static void conn_input(struct conn *c, const char *p, size_t n)
{
	switch (c->kind) {
	case CK_HEAD:
		head_input(c, p, n);
		break;
	case CK_WS:
		if (c->in && evbuffer_get_length(c->in) > 0) {
			if (conn_keep(c, p, n) == 0)
				ws_read(c);
		} else {
			ws_feed(c, (const unsigned char *)p, n);
		}
		break;
	case CK_AUTH:
		/* A WebSocket client may send frames as soon as its request is out, before the
		 * 101 (which waits for the rights check): they wait in c->in for the stream
		 * (start_stream). Past one read's worth the socket is not read until then, so
		 * the kernel holds the rest and a client cannot grow c->in. */
		if (c->route != RT_WS)
			break;
		if (conn_keep(c, p, n) < 0)
			return;
		if (evbuffer_get_length(c->in) >= SERVER_READ_MAX) {
			c->read_paused = 1;
			event_del(c->rev);
		}
		break;
	default:
		/* nothing else is expected from a client: read and forget */
		break;
	}
}

static void conn_event(struct conn *c, int what)
{
	if ((what & CONN_EOF) && c->kind == CK_WS && c->ws) {
		ws_read(c);
		if (c->dead || !c->ws)
			return;
		ws_conn_eof(c->ws);
		ws_pump(c);
		if (!c->dead)
			conn_finish(c);
		return;
	}
	conn_close(c, (what & CONN_EOF) ? "peer closed" : "socket error");
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	if (c->dead)
		return;
	if (c->kind == CK_DONE) {
		conn_discard(c);
		return;
	}
	char buf[SERVER_READ_MAX] BUF_SCRATCH;
	ssize_t n = recv(c->fd, buf, sizeof buf, 0);
	if (n > 0)
		conn_input(c, buf, (size_t)n);
	else if (n == 0)
		conn_event(c, CONN_EOF);
	else if (!would_block())
		conn_event(c, CONN_ERROR);
}

static void head_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_close(arg, "request head timeout");
}

#define ADDRESS_FULL_BODY                                                                   \
	"{\"error\":\"too_many_clients\",\"message\":\"too many connections from this "        \
	"address are still sending their request (BROKER_MAX_HEADS_PER_ADDRESS); retry\"}"

/* The 503 of an address over its bound, made once: no request has been read, so no HEAD
 * and no Origin to answer to (the CORS lines are the configured ones, as on every answer). */
static int address_full_answer(struct buf *b, const char *hdrs)
{
	return buf_printf(b,
			  "HTTP/1.1 503 %s\r\n"
			  "Content-Type: application/json\r\n"
			  "Cache-Control: no-store\r\n"
			  "Content-Length: %zu\r\n"
			  "Connection: close\r\n"
			  "%s"
			  "Retry-After: 1\r\n"
			  "\r\n" ADDRESS_FULL_BODY,
			  status_text(503), sizeof ADDRESS_FULL_BODY - 1, hdrs);
}

/* The key under which a new connection from sa counts among those of its address still
 * sending a head (a slowloris client trickling bytes into many connections from one
 * address holds a place under max_clients per connection for up to a head timeout each).
 * 0 with key filled; -1 when it is not counted: no bound, not an IP address, or one of the
 * front doors' addresses (trusted), through which every client arrives with a whole head. */
static int head_address(const struct server *srv, const struct sockaddr *sa, int salen,
			unsigned char key[ADDRCAP_LEN])
{
	unsigned char addr[ADDRCAP_LEN];
	if (!srv->heads || salen <= 0 || addrcap_addr(sa, (size_t)salen, addr) < 0 ||
	    addrcap_trusted_has(srv->cfg->trusted, addr))
		return -1;
	addrcap_key(addr, key);
	return 0;
}

/* One past max_heads_per_address is answered 503 and closed at once, before it takes a
 * place under max_clients: left to linger as other answers do (SERVER_LINGER_MS), each
 * refused connection would hold a place, and one address opening them fast enough would
 * keep the broker full for everyone. The answer goes in one send that does not wait; then
 * the connection is shut for writing and what the client sent so far is read and dropped,
 * so that the close sends a FIN after the answer rather than a reset (a close with unread
 * input resets the connection). A client still sending after that meets a reset, having
 * been sent the answer first. */
static void head_refuse(struct server *srv, evutil_socket_t fd)
{
	metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_ADDRESS_FULL, 0);
	if (send(fd, srv->address_full.data, srv->address_full.len, MSG_DONTWAIT | MSG_NOSIGNAL) <
	    0) {
		/* nothing more to do: the close below tells the client */
	}
	if (shutdown(fd, SHUT_WR) == 0) {
		char drop[4096] BUF_SCRATCH;
		for (int i = 0; i < 4 && recv(fd, drop, sizeof drop, MSG_DONTWAIT) > 0; i++)
			;
	}
	evutil_closesocket(fd);
}

static void accept_cb(struct evconnlistener *lst, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct server *srv = arg;
	if (srv->nconns >= (size_t)srv->cfg->max_clients + SERVER_OVERFLOW_SLACK) {
		metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_FULL, 0);
		evutil_closesocket(fd);
		return;
	}
	unsigned char key[ADDRCAP_LEN];
	int counted = head_address(srv, sa, salen, key) == 0;
	if (counted && addrcap_get(srv->heads, key) >= srv->cfg->max_heads_per_address) {
		head_refuse(srv, fd);
		return;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct conn *c = calloc(1, sizeof *c);
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	c->srv = srv;
	c->refs = 1;
	c->fd = fd;
	c->beat_out = srv->beats;
	c->accepted_ms = clock_mono_ms();
	c->sub.ops = &idle_ops;
	c->rev = event_new(srv->base, fd, EV_READ | EV_PERSIST, read_cb, c);
	c->out = evbuffer_new();
	c->timer = evtimer_new(srv->base, head_timeout_cb, c);
	if (!c->rev || !c->out || !c->timer || event_add(c->rev, NULL) < 0) {
		if (c->rev)
			event_free(c->rev);
		if (c->out)
			evbuffer_free(c->out);
		if (c->timer)
			event_free(c->timer);
		evutil_closesocket(fd);
		free(c);
		return;
	}
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	if (srv->nconns > (size_t)srv->cfg->max_clients) {
		metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_FULL, 0);
		conn_error(c, 503, "too_many_clients", "the broker is full; retry later");
		return;
	}
	/* under the bound (checked above, and nothing has run since): its place among its
	 * address's heads; ADDRCAP_FULL, a table sized for every connection the process
	 * holds, is not reached */
	if (counted && addrcap_take(srv->heads, key, srv->cfg->max_heads_per_address) ==
			       ADDRCAP_TAKEN) {
		memcpy(c->head_key, key, ADDRCAP_LEN);
		c->head_counted = 1;
	}
	struct timeval tv;
	ms_tv(srv->cfg->head_timeout_ms, &tv);
	if (evtimer_add(c->timer, &tv) < 0) /* no connection waits without its bound */
		conn_close(c, "event_add");
}

/* The heartbeat (BROKER_HEARTBEAT_MS, h) ticks BEAT_TICKS times per h. An SSE stream gets
 * its ": ping" only once nothing was written to it for BEAT_TICKS ticks: an idle stream still
 * hears from the broker at least once per h, and a stream that carries events gets no
 * pings at all. Pinging every stream at once cost a big room one write per stream in a
 * single burst every h (10,000 writes at 10,000 streams), in the way of the next event.
 * WebSocket streams are pinged once per h whatever they carry: the pongs are how the
 * broker knows the peer is there (BROKER_WS_TIMEOUT_MS). */
#define BEAT_TICKS 4

/* A stream whose session has expired ends (within a beat tick of the expiry), as if it was
 * signed out: an expired token can no longer sign its session out, and would otherwise
 * stream, and send presence, for as long as its client keeps the connection. A multi-room
 * stream drops each of its rooms with `session_revoked`, as on a sign-out. 1 when c ended. */
static int session_over(struct conn *c, time_t wall)
{
	if (c->session_until <= 0 || (long long)wall < c->session_until ||
	    (c->kind != CK_SSE && c->kind != CK_WS && c->kind != CK_POLL))
		return 0;
	metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_REVOKED, 0);
	if (!c->multi) {
		conn_revoke(c, "the session expired");
		return 1;
	}
	for (size_t i = 0; i < c->nms && !c->dead; i++)
		msub_drop(&c->ms[i], "session_revoked", "the session expired");
	return 1;
}

static void beat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	long long now = clock_mono_ms();
	srv->beats++;
	int ws_turn = srv->beats % BEAT_TICKS == 0;
	time_t wall = time(NULL);
	for (struct conn *c = srv->conns; c; c = c->next) {
		if (c->dead)
			continue;
		if (session_over(c, wall))
			continue;
		if (c->kind == CK_SSE) {
			static const char ping[] = ": ping\n\n";
			if (srv->beats - c->beat_out >= BEAT_TICKS)
				conn_write(c, ping, sizeof ping - 1);
		} else if (ws_turn && c->kind == CK_WS && c->ws) {
			if (now - c->last_in_ms > srv->cfg->ws_timeout_ms)
				ws_conn_close(c->ws, 1001, "idle timeout");
			else
				ws_conn_ping(c->ws);
			ws_pump(c);
		}
	}
}

/* The loop turns: a sign of life for the parent, or for the supervisor (lib/alive.h). */
static void alive_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	if (srv->cfg->alive)
		atomic_fetch_add(srv->cfg->alive, 1);
	else
		alive_beat();
}

static void quit_cb(void *arg)
{
	struct server *srv = arg;
	for (struct conn *c = srv->conns; c; c = c->next) {
		if (c->dead)
			continue;
		if (c->kind == CK_POLL) {
			/* answered with what it holds and where it stands, as at its timeout:
			 * cut without a status line, a proxy would make it a 502 */
			poll_answer(c);
			continue;
		}
		if (c->kind == CK_AUTH) {
			/* still waiting for its rights check: as a request arriving now */
			conn_error(c, 503, "shutting_down", "the broker is shutting down; retry");
			continue;
		}
		if (c->kind == CK_WS && c->ws) {
			ws_conn_close(c->ws, 1001, "server shutting down");
			ws_pump(c);
		}
		conn_finish(c);
	}
	/* a moment for the last frames to leave */
	struct timeval tv = {0, 200 * 1000};
	event_base_loopexit(srv->base, &tv);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	if (srv->stopping)
		return;
	srv->stopping = 1;
	log_info("signal %d: stopping", (int)sig);
	/* closed, not only disabled: a broker started again binds the port while this one
	 * still says goodbye to its clients (its other processes close their copies too) */
	if (srv->lst) {
		evconnlistener_free(srv->lst);
		srv->lst = NULL;
	}
	hub_shutdown(srv->hub, quit_cb, srv);
}

/* One listening socket on ss; reuseport: joins the port's SO_REUSEPORT group. */
static int listen_one(const struct sockaddr_storage *ss, int sslen, int reuseport, int backlog)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
	    bind(fd, (const struct sockaddr *)ss, (socklen_t)sslen) < 0 ||
	    (backlog > 0 && listen(fd, backlog) < 0)) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int server_listen(const struct server_cfg *cfg, int *fds, long n)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	int sslen = sizeof ss;
	char addr[300];
	snprintf(addr, sizeof addr, strchr(cfg->host, ':') ? "[%s]:%d" : "%s:%d", cfg->host,
		 cfg->port);
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) < 0) {
		log_error("BROKER_HOST %s is not an IP address", cfg->host);
		return -1;
	}
	if (n > 1) {
		/* a socket without SO_REUSEPORT first: it fails if anything holds the port, even
		 * a socket that would let ours into its group */
		int probe = listen_one(&ss, sslen, 0, 0);
		if (probe < 0) {
			log_error("cannot listen on %s: %s", addr, strerror(errno));
			return -1;
		}
		close(probe);
	}
	for (long i = 0; i < n; i++) {
		fds[i] = listen_one(&ss, sslen, n > 1, SERVER_BACKLOG);
		if (fds[i] < 0) {
			log_error("cannot listen on %s: %s", addr, strerror(errno));
			while (i-- > 0)
				close(fds[i]);
			return -1;
		}
	}
	if (n > 1)
		log_info("listening on %s (%ld sockets, one per process)", addr, n);
	else
		log_info("listening on %s", addr);
	return 0;
}

int server_run(const struct server_cfg *cfg, const struct token_key *key, int lfd)
{
	struct server *srv = calloc(1, sizeof *srv);
	int rc = 1;
	if (!srv) {
		close(lfd);
		return 1;
	}
	srv->cfg = cfg;
	srv->key = key;
	/* the answers' fixed parts, made once here instead of once per answer */
	buf_init(&srv->hdrs, 1024);
	buf_init(&srv->sse_open, 4096);
	buf_init(&srv->sse_live, 64);
	buf_init(&srv->preflight_keep, 4096);
	buf_init(&srv->preflight_close, 4096);
	buf_init(&srv->address_full, 4096);
	if (cors_headers(&srv->hdrs, cfg->allow_origin) < 0 ||
	    sse_response_head(&srv->sse_open, srv->hdrs.data) < 0 ||
	    sse_retry(&srv->sse_open, cfg->retry_ms) < 0 ||
	    sse_comment(&srv->sse_live, "connected") < 0 ||
	    cors_preflight(&srv->preflight_keep, srv->hdrs.data, 1) < 0 ||
	    cors_preflight(&srv->preflight_close, srv->hdrs.data, 0) < 0 ||
	    address_full_answer(&srv->address_full, srv->hdrs.data) < 0) {
		log_error("out of memory");
		close(lfd);
		goto out;
	}
	srv->base = event_base_new();
	if (srv->base)
		srv->lst = evconnlistener_new(srv->base, accept_cb, srv, LEV_OPT_CLOSE_ON_FREE, -1,
					      lfd);
	if (!srv->lst) {
		log_error("cannot take the listening socket: %s", strerror(errno));
		close(lfd);
		goto out;
	}
	srv->reaper = event_new(srv->base, -1, 0, reap_cb, srv);
	srv->flusher = event_new(srv->base, -1, 0, flush_cb, srv);
	srv->beat = event_new(srv->base, -1, EV_PERSIST, beat_cb, srv);
	srv->alive = event_new(srv->base, -1, EV_PERSIST, alive_cb, srv);
	srv->sigterm = evsignal_new(srv->base, SIGTERM, signal_cb, srv);
	srv->sigint = evsignal_new(srv->base, SIGINT, signal_cb, srv);
	if (!srv->reaper || !srv->flusher || !srv->beat || !srv->alive || !srv->sigterm ||
	    !srv->sigint)
		goto out;
	struct timeval tv, alive;
	ms_tv(cfg->heartbeat_ms / BEAT_TICKS, &tv);
	ms_tv(SERVER_ALIVE_MS, &alive);
	if (event_add(srv->beat, &tv) < 0 || event_add(srv->alive, &alive) < 0 ||
	    event_add(srv->sigterm, NULL) < 0 || event_add(srv->sigint, NULL) < 0)
		goto out;

	srv->hub = hub_new(srv->base, &cfg->hub);
	if (!srv->hub)
		goto out;
	if (cfg->io_uring)
		srv->us = usend_new(); /* NULL: one system call per write, as without it */
	if (cfg->max_heads_per_address > 0) {
		/* every connection the process may hold, the 503s past max_clients included */
		uint64_t seed[2];
		if (getrandom(seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
			log_error("getrandom: %s", strerror(errno));
			goto out;
		}
		srv->heads = addrcap_new((size_t)cfg->max_clients + SERVER_OVERFLOW_SLACK, seed[0],
					 seed[1]);
		if (!srv->heads) {
			log_error("out of memory");
			goto out;
		}
	}
	if (cfg->metrics_port > 0) {
		char err[256];
		srv->metrics = metrics_http_start(cfg->metrics_host, (int)cfg->metrics_port,
						  broker_metrics_collect, NULL, err, sizeof err);
		if (!srv->metrics) {
			log_error("%s", err);
			goto out;
		}
		log_info("metrics on %s port %ld", cfg->metrics_host, cfg->metrics_port);
	}
	event_base_dispatch(srv->base);
	rc = 0;
out:
	metrics_http_stop(srv->metrics);
	/* close whatever is left, then the reaper frees it; pending replies die with the hub */
	if (srv->base) {
		for (struct conn *c = srv->conns; c; c = c->next)
			if (!c->dead)
				conn_close(c, NULL);
		if (srv->flusher)
			flush_cb(-1, 0, srv); /* gives back the flush list's references */
		hub_free(srv->hub); /* NULL replies: releases the remaining references */
		srv->hub = NULL;
		if (srv->reaper)
			reap_cb(-1, 0, srv);
	}
	if (srv->lst)
		evconnlistener_free(srv->lst);
	if (srv->reaper)
		event_free(srv->reaper);
	if (srv->flusher)
		event_free(srv->flusher);
	if (srv->beat)
		event_free(srv->beat);
	if (srv->alive)
		event_free(srv->alive);
	if (srv->sigterm)
		event_free(srv->sigterm);
	if (srv->sigint)
		event_free(srv->sigint);
	if (srv->base)
		event_base_free(srv->base);
	usend_free(srv->us);
	addrcap_free(srv->heads);
	buf_free(&srv->hdrs);
	buf_free(&srv->sse_open);
	buf_free(&srv->sse_live);
	buf_free(&srv->preflight_keep);
	buf_free(&srv->preflight_close);
	buf_free(&srv->address_full);
	free(srv);
	return rc;
}

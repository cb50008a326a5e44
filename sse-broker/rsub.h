/* rsub: one Redis connection in sharded pub/sub mode (SSUBSCRIBE), on a libevent bufferevent
 * with hiredis's reply parser (redisReader) and our own dispatch: no hiredis async context.
 *
 * Why not hiredis's async API: hiredis 0.14 (Debian 12) knows only (P)SUBSCRIBE and
 * (P)UNSUBSCRIBE. An SSUBSCRIBE is queued like any command, so its first confirmation is taken
 * as that command's reply, later confirmations and every `smessage` arrive with no callback
 * waiting (an assert, or the reply handed to the callback of the reply before), and a
 * `sunsubscribe` the server sends when a slot moves away is never recognised.
 * docs/INTERNALS.md ("Broker", "Sharded pub/sub") has the details.
 *
 * Two layers:
 * - struct rsub_proto (pure, no socket): the bytes from the server in, classified messages
 *   out. It keeps the commands sent in order (RESP2 answers them in order) to tell the answer
 *   to our SUNSUBSCRIBE from a sunsubscribe the server pushes on its own (slot moved).
 *   tests/unit/test_broker_rsub.c feeds it well-formed and hostile input.
 * - struct rsub: the connection (TCP or unix socket, AUTH, connect timeout) around it.
 *
 * Anything the protocol layer cannot account for (a parse error, an answer to no command, a
 * confirmation of another channel than the one asked, an over-sized reply) is reported as a
 * broken stream: the connection is closed and its owner resubscribes elsewhere and catches
 * up from the history. Unknown push kinds are ignored. */
#ifndef CC_BROKER_RSUB_H
#define CC_BROKER_RSUB_H

#include <hiredis/read.h>
#include <stddef.h>

struct event_base;
struct sockaddr;

/* Bounds (docs/CONVENTIONS.md §3): bytes buffered for one unfinished reply (an event is at most
 * 2 MiB of data plus its envelope), and elements of any array (ours have at most 3). */
#define RSUB_INPUT_MAX (64u << 20)
#define RSUB_ARRAY_MAX 16

enum rsub_cmd { RSUB_CMD_NONE, RSUB_CMD_AUTH, RSUB_CMD_SSUB, RSUB_CMD_SUNSUB, RSUB_CMD_PING };

enum rsub_kind {
	RSUB_SUBSCRIBED,   /* our SSUBSCRIBE of channel is confirmed */
	RSUB_UNSUBSCRIBED, /* our SUNSUBSCRIBE of channel is confirmed */
	RSUB_PUSHED_OUT,   /* the server unsubscribed channel on its own (its slot moved away) */
	RSUB_MESSAGE,	   /* smessage on channel: data, len */
	RSUB_ERROR,	   /* an error answer to command cmd (channel: the one it named); text in data */
	RSUB_OK,	   /* AUTH accepted */
	RSUB_PONG,	   /* PING answered */
};

struct rsub_event {
	enum rsub_kind kind;
	enum rsub_cmd cmd; /* the command this answers (RSUB_CMD_NONE for pushes) */
	const char *channel;
	size_t channel_len;
	const char *data;
	size_t len;
};

struct rsub_pending;

struct rsub_proto {
	redisReader *reader;
	redisReplyObjectFunctions fn; /* hiredis's, with a bound on array sizes */
	void *(*array_orig)(const redisReadTask *, int);
	struct rsub_pending *head, *tail;
	size_t npending;
	char err[160]; /* why the stream broke */
};

/* 0, or -1 out of memory. Free with rsub_proto_clear(). */
int rsub_proto_init(struct rsub_proto *p);
void rsub_proto_clear(struct rsub_proto *p);
/* Records a command written to the server (channel: the one it names, or NULL), so its answer
 * is recognised. 0, or -1 out of memory. */
int rsub_proto_sent(struct rsub_proto *p, enum rsub_cmd cmd, const char *channel);
/* Feeds bytes from the server; cb gets each complete message in order (pointers borrowed for
 * the call). cb returns 0 to go on, -1 to stop (its owner closes the connection). 0, or -1
 * when cb stopped or the stream is broken (p->err says why). */
typedef int (*rsub_event_fn)(void *arg, const struct rsub_event *ev);
int rsub_proto_feed(struct rsub_proto *p, const char *buf, size_t len, rsub_event_fn cb,
		    void *arg);

/* ---- the connection ---- */

struct rsub;

struct rsub_ops {
	/* Connected (and authenticated): commands may be sent. */
	void (*up)(void *arg, struct rsub *c);
	/* A message; 0, or -1 to close the connection (down follows). */
	int (*event)(void *arg, struct rsub *c, const struct rsub_event *ev);
	/* The connection failed or broke: nothing more is called. The owner must not free c
	 * inside this callback; rsub_free() it later (from a timer). */
	void (*down)(void *arg, struct rsub *c, const char *why);
	/* Optional: everything read so far was handed to event; called after each read, while
	 * the connection is up. Lets the owner finish work it gathered over several messages
	 * that came together (the hub writes a room's burst to each stream at once). */
	void (*drained)(void *arg, struct rsub *c);
};

/* Starts connecting to addr (TCP, or AF_UNIX for a unix socket; a resolved address: nothing
 * here looks a name up, which would block the loop); sends AUTH password when it is
 * non-empty. NULL on failure (nothing is called). */
struct rsub *rsub_open(struct event_base *base, const struct sockaddr *addr, int addrlen,
		       const char *password, long timeout_ms, const struct rsub_ops *ops, void *arg);
/* Not from inside c's own callbacks. */
void rsub_free(struct rsub *c);
/* 0, or -1 (not connected, out of memory, channel too long). */
int rsub_ssubscribe(struct rsub *c, const char *channel);
int rsub_sunsubscribe(struct rsub *c, const char *channel);
int rsub_ping(struct rsub *c);
/* Commands sent and not yet answered. */
size_t rsub_pending(const struct rsub *c);

#endif

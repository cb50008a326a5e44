/* hub: the broker's Redis side – room subscriptions, history catch-up, presence.
 *
 * Nothing here waits: a Redis host given by name (REDIS_URL, seeds, nodes a cluster announces)
 * is looked up with libevent's asynchronous resolver before each connect attempt (hub.c,
 * node_resolve; docs/INTERNALS.md, "Connecting to Redis").
 *
 * One code path for a single server (REDIS_URL) and a Redis Cluster (REDIS_CLUSTER seeds): a
 * slot map says which node serves each slot (CLUSTER SLOTS, lib/rslot.h; a single server is
 * one node serving every slot). Per node, on the server's libevent base: a hiredis async
 * context for commands (scripts, routed by their first key; MOVED, ASK, TRYAGAIN and
 * CLUSTERDOWN followed) and a sharded pub/sub connection of our own (rsub.h: hiredis 0.14's
 * async API does not understand SSUBSCRIBE). A room's channel `cc:room:{<room>}` and
 * `cc:access` are SSUBSCRIBEd at the node serving their slot. When a node goes down or the
 * server unsubscribes a channel (its slot moved), the map is refreshed with capped
 * exponential backoff and jitter (lib/backoff.h), every channel concerned is subscribed again
 * at its current owner, and each subscriber is replayed from the last event it delivered, so a
 * Redis restart, a failover or a slot migration loses nothing for clients and doubles nothing.
 *
 * A subscriber (struct hub_sub, embedded in a client connection) joins one room. Order of a
 * join: the room is subscribed first, then the subscriber's history is read with XRANGE
 * while live messages are held in its cursor (room.h); both are merged by event id.
 *
 * Rights (rights.h): the owner asks hub_check() before a stream starts (whatever its
 * credential) and joins only on a reading verdict. The hub asks again for every subscriber of
 * a room after a `room` event "members", "updated" or "invite" went through the room (the
 * event itself is delivered first), for one subscriber after its catch-up replayed such an
 * event (a gap repair replays one the channel lost), for every room after a Redis reconnect,
 * and for every
 * subscriber of user U when {"user":U} arrives on cc:access (lib/access.h), and for every
 * subscriber of room R when {"room":"R"} does (the access resync made R private again). A
 * subscriber whose
 * answer is "" or "revoked" is handed to its owner's `revoked`. A re-check that gets no
 * answer (a node it asked went away) is asked again with backoff for a few seconds, then its
 * streams are dropped (failed, not revoked): access taken away never stays with an open stream
 * because a node did not answer (hub.c, struct rights_req). A check answered before a
 * re-check could include the stream (its answer raced a change) is covered by a sequence
 * number: hub_join() re-checks the room when any trigger came since the stream's check was
 * sent, and a room's first subscription re-checks once confirmed (the broker may have missed
 * the change's event while it was not subscribed).
 *
 * Presence: a subscriber joined with a user counts towards that user's presence in the room;
 * the first one emits `join`, the last one `leave` – across brokers, see docs/INTERNALS.md
 * "Broker". */
#ifndef CC_BROKER_HUB_H
#define CC_BROKER_HUB_H

#include <stddef.h>

#include "rds.h"
#include "rights.h"
#include "room.h"
#include "token.h"

struct event_base;
struct hub;
struct hub_room;
struct hub_sub;

#define HUB_BUSY 1

struct hub_sub_ops {
	/* An event, in order and never twice. -1: this subscriber takes no more. HUB_BUSY (only
	 * while replaying history): its output is full, the event was not taken; the hub stops
	 * the replay there until the owner calls hub_resume(). */
	int (*deliver)(struct hub_sub *s, struct room_event *ev);
	/* The catch-up is done; from now on events are live. */
	void (*caught_up)(struct hub_sub *s);
	/* The hub gave up on this subscriber (its hold overflowed); the owner closes it. */
	void (*fail)(struct hub_sub *s, const char *why);
	/* The stream may not read the room any more (why: "not a member of this room", "this
	 * session was signed out", "room deleted": after a `deleted` event went to the live
	 * subscribers, every subscriber of the room still there, whatever its state): the owner
	 * ends it after what it has delivered (it may leave from inside this callback). */
	void (*revoked)(struct hub_sub *s, const char *why);
	/* Reference counting for the owner, held while a Redis reply is due. */
	void (*reserve)(struct hub_sub *s);
	void (*release)(struct hub_sub *s);
	/* Optional: n (2..HUB_BATCH_MAX) live events, in order, that came from Redis together,
	 * to be written at once (one system call instead of n). Same contract as deliver for
	 * each; never a control event (rights, deleted); called only while the subscriber is
	 * HUB_SUB_LIVE (a replaying one gets deliver for each, so its bound can stop it).
	 * NULL: deliver is called for each. */
	int (*deliver_many)(struct hub_sub *s, struct room_event *const *evs, size_t n);
};

/* Most events of one room gathered from one read of the Redis connection (deliver_many). */
#define HUB_BATCH_MAX 32

enum hub_sub_state { HUB_SUB_OUT, HUB_SUB_WAIT, HUB_SUB_REPLAY, HUB_SUB_LIVE };

struct hub_sub {
	const struct hub_sub_ops *ops;
	struct hub_room *room; /* NULL when not joined */
	struct hub_sub *prev, *next;
	enum hub_sub_state state;
	struct room_cursor cur;
	int pinned;   /* cur.last is a real position (given, or read from the stream's tail) */
	int pinned_checked; /* the resync test was made for this catch-up */
	/* the history's entry after cur.last as the catch-up's last page showed it (the entry
	 * refused with HUB_BUSY, or the first one after a page that stopped at its bound); zero
	 * when not known. Each later page checks it is still kept (hub.c, catchup_cb). */
	struct room_evid next_entry;
	int presence; /* counts towards join/leave */
	int paused;   /* the replay waits for hub_resume() (HUB_BUSY) */
	unsigned catchup_seq; /* the catch-up read whose answer counts (hub.c); others are stale */
	/* who streams: set by the owner before hub_check() (from the token: a ticket carries
	 * the session it was taken with) */
	long long user_id;
	char username[TOKEN_USERNAME_MAX + 1];
	char sid[TOKEN_SID_LEN + 1];
	long long gen;
	unsigned long rights_seq; /* the hub's trigger count when this stream's check was sent */
	size_t catchup_bytes; /* bytes of history per catch-up read (0: the hub's catchup_bytes),
			       * set by the owner: about what it takes before it must wait */
};

struct rslot_node;

struct hub_cfg {
	struct rds_target redis;	 /* the single server; its password is used everywhere */
	const struct rslot_node *seeds; /* REDIS_CLUSTER (borrowed during hub_new); NULL: single */
	int nseeds;
	long heartbeat_ms;     /* presence refresh period */
	long presence_ttl_ms;  /* a connection record lives this long without a refresh */
	long backoff_max_ms;   /* reconnect backoff cap */
	long connect_timeout_ms;
	long room_linger_ms;   /* an empty room stays subscribed this long */
	size_t max_held;       /* live events held per subscriber during its catch-up */
	size_t catchup_bytes;  /* bytes of history per catch-up read (at least one entry) */
	long presence_limit;   /* PRESENCE_RATE_LIMIT: presence events per user per room per
				* PRESENCE_RATE_WINDOW_MS (lib/presence.h) */
};

/* Caller frees with hub_free(). The hub starts connecting at once. */
struct hub *hub_new(struct event_base *base, const struct hub_cfg *cfg);
void hub_free(struct hub *h);
int hub_redis_up(const struct hub *h);

/* Joins s (ops, user fields and presence set by the caller) to room_id. start NULL: only
 * events from now on; else events strictly after *start. 0 or -1 (OOM). */
int hub_join(struct hub *h, struct hub_sub *s, const char *room_id, const struct room_evid *start);
/* Leaves its room; safe from inside s's own deliver callback. */
void hub_leave(struct hub *h, struct hub_sub *s);

/* The rights question for s (its user_id, sid, gen) in room_id, one command. cb gets ok = 0
 * when Redis could not answer, else the verdict. s is reserved meanwhile. -1 when Redis is
 * down (nothing is called). */
int hub_check(struct hub *h, const char *room_id, struct hub_sub *s,
	      void (*cb)(struct hub_sub *s, int ok, enum rights_verdict v));

/* The owner of a subscriber that answered HUB_BUSY can take events again: the replay goes
 * on from where it stopped. */
void hub_resume(struct hub *h, struct hub_sub *s);

/* A `presence` event of user_id in room_id (data_json: presence_data_json, copied), without
 * blocking: emitted like lib/events.c's events_presence_emit does, within the user's budget
 * in the room (cfg presence_limit per PRESENCE_RATE_WINDOW_MS, shared with the API's PUT and
 * every broker); over it, dropped. 0 sent, or -1 (not sent). */
int hub_presence(struct hub *h, const char *room_id, long long user_id, const char *data_json);

/* Records this broker's presence connections as closed (leave events) before exit; calls
 * done when Redis answered or after a short wait. */
void hub_shutdown(struct hub *h, void (*done)(void *arg), void *arg);

#endif

#include "hub.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "access.h"
#include "events.h"
#include "backoff.h"
#include "broker_metrics.h"
#include "clock.h"
#include "log.h"
#include "rkeys.h"
#include "rnd.h"
#include "rscript.h"
#include "rslot.h"
#include "rsub.h"

#define HUB_BUCKETS 1024
#define HUB_PAGE 500		/* most entries per catch-up round trip (bytes: catchup_bytes) */
#define HUB_BACKOFF_MIN_MS 100
#define HUB_CLUSTER_BACKOFF_MAX_MS 1000 /* slot map refreshes while a slot has no live owner */
#define HUB_SWEEP_ROOMS 100	/* rooms the periodic sweep looks at per heartbeat */
#define HUB_SHUTDOWN_WAIT_MS 1000
#define HUB_REDIRECTS 5		/* MOVED/ASK followed per command */
#define HUB_RETRY_MS 150	/* a command answered TRYAGAIN/CLUSTERDOWN is sent again after this */
#define HUB_RETRY_DEADLINE_MS 5000 /* ... until this long after it was first sent */
#define HUB_NODES_MAX 1024
#define HUB_RIGHTS_RETRY_MS 5000 /* a rights re-check that lost a node is asked again this long */
/* A user whose last stream of a room here closed stays present this long before their
 * `leave` (user_remove): a stream opened again meanwhile makes no `join`. Without it every
 * stream a user opened and closed wrote a join and a leave into the room's history, as fast
 * as the client could connect (hundreds a second), sent to every stream of the room and
 * pushing its kept history past everyone who reconnects. */
#define HUB_PRESENCE_LINGER_MS 2000

/* A sharded channel's state at the node it lives on (hub.h). */
enum room_link { RL_IDLE, RL_SUBSCRIBING, RL_SUBSCRIBED, RL_UNSUBSCRIBING };

struct hub_node;
struct hub_lookup;
struct rights_req;

/* One sharded channel this broker listens to: a room's, or cc:access. */
struct hub_chan {
	char name[ROOM_ID_MAX + 16];
	enum room_link link;
	struct hub_node *node; /* where it is (being) subscribed; NULL when RL_IDLE */
};

struct hub_user {
	struct hub_user *next;
	long long id;
	char name[TOKEN_USERNAME_MAX + 1];
	int count; /* this broker's presence subscribers of the user in the room */
	struct hub_room *room;
	struct event *gone; /* count 0: the leave waits for this (HUB_PRESENCE_LINGER_MS) */
};

struct hub_room {
	struct hub *hub;
	struct hub_room *hnext;
	char id[ROOM_ID_MAX + 1];
	struct hub_chan ch;		/* RK_ROOM_CHANNEL */
	char key[ROOM_ID_MAX + 24];	/* RK_ROOM_EVENTS */
	struct hub_sub *subs;
	size_t nsubs;
	struct hub_user *users;
	struct event *linger;
	int check_on_subscribe; /* a stream joined before the subscription was confirmed */
	int lost;		/* its subscription was lost: presence is refreshed once it is back */
};

/* One Redis server (a master in a cluster): a hiredis async context for commands, and our own
 * sharded pub/sub connection (rsub.h). Both are opened on demand and go down together.
 * Both connect to one address, found once per attempt (node_resolve): a unix socket or a
 * numeric host is its own address; a host name is looked up with libevent's resolver
 * (evdns), never with getaddrinfo(3), whose wait for a slow DNS server would stop the whole
 * loop (every stream, heartbeat and health answer of the process). */
struct hub_node {
	struct hub *hub;
	char host[256];
	int port;
	char socket[256];
	int attempt;	  /* connecting or connected: node_ensure began, node_down not yet */
	struct hub_lookup *lookup; /* host being resolved for this attempt, NULL when none */
	int resolved;	  /* addr and sa hold this attempt's address */
	char addr[256];	  /* numeric host, for hiredis */
	struct sockaddr_storage sa; /* the same address (or the unix socket's), for rsub */
	socklen_t salen;
	redisAsyncContext *cmd;
	int cmd_ready;	  /* its PING was answered */
	int ping_pending; /* heartbeats since the liveness PING went unanswered */
	int was_up;
	int quiet;	  /* its failure was logged: the next ones of this outage are not */
	struct rsub *sub;
	int sub_ready;
	int sub_ping_pending;
	struct event *conn_timeout;
};

struct dead_sub {
	struct dead_sub *next;
	struct rsub *c;
};

struct hub {
	struct event_base *base;
	struct hub_cfg cfg;
	int cluster;		       /* REDIS_CLUSTER: the slot map comes from CLUSTER SLOTS */
	struct hub_node **nodes;       /* every server known (seeds, map, redirects), owned */
	int nnodes;
	struct hub_node *owner[RSLOT_COUNT]; /* slot -> the node serving it (NULL: unknown) */
	int map_known;
	int slots_wanted;	       /* a CLUSTER SLOTS is due once any node answers */
	int slots_inflight;
	struct hub_chan access;	       /* cc:access */
	struct backoff backoff;	       /* reconnects and map refreshes (lib/backoff.h) */
	struct event *refresh, *reaper, *beat, *shutdown_timer;
	struct dead_sub *dead;	       /* closed subscription connections, freed by the reaper */
	struct script_call *retrying;  /* commands waiting to be sent again (hub_free answers them) */
	struct rights_req *rights_waiting; /* rights re-checks waiting to be asked again */
	struct hub_room *buckets[HUB_BUCKETS];
	struct evdns_base *dns;	       /* made at the first host name (node_resolve), NULL before */
	int dns_warned;		       /* a resolver without nameservers, or none: said once */
	char broker_id[17];
	int shutting_down;
	int shutdown_pending;
	int up_logged;		       /* "redis: connected" said once per outage */
	unsigned long rights_seq;      /* rights triggers seen (hub.h) */
	/* Live events of one room that came in the same read of a subscription connection,
	 * written to each stream together when the read is done (batch_flush). */
	struct hub_room *batch_room;
	struct room_event *batch[HUB_BATCH_MAX];
	size_t nbatch;
	void (*shutdown_done)(void *);
	void *shutdown_arg;
};

static void place_all(struct hub *h);
static void want_refresh(struct hub *h);
static void node_down(struct hub_node *n, const char *why);
static void node_ensure(struct hub_node *n);
static void node_lookup_drop(struct hub_node *n, int cancel);
static struct hub_node *node_get(struct hub *h, const char *host, int port);
static void chan_subscribe(struct hub *h, struct hub_chan *c);

/* The node serving key's slot (a channel name routes like a key), or NULL. */
static struct hub_node *route(struct hub *h, const char *key)
{
	if (!key)
		return h->nnodes ? h->nodes[0] : NULL;
	return h->owner[rslot_of(key, strlen(key))];
}

/* A command connection that can take a command now. */
static struct hub_node *route_ready(struct hub *h, const char *key)
{
	struct hub_node *n = route(h, key);
	if (!n || !n->cmd_ready) {
		if (n)
			node_ensure(n);
		else
			want_refresh(h);
		return NULL;
	}
	return n;
}

/* A reply that is an error whose text starts with word. */
static int reply_is(const redisReply *rep, const char *word)
{
	size_t n = strlen(word);
	return rep && rep->type == REDIS_REPLY_ERROR && rep->len >= n &&
	       strncmp(rep->str, word, n) == 0 && (rep->len == n || rep->str[n] == ' ');
}

/* Errors of a cluster in motion (a failover, a slot being moved): worth another try. */
static int reply_transient(const redisReply *rep)
{
	return reply_is(rep, "TRYAGAIN") || reply_is(rep, "CLUSTERDOWN") ||
	       reply_is(rep, "LOADING") || reply_is(rep, "MASTERDOWN") || reply_is(rep, "MOVED") ||
	       reply_is(rep, "ASK");
}

/* A MOVED answer: slot is served by t now. The map is asked again too, for the rest of the
 * change (one MOVED is rarely alone). */
static void slot_moved(struct hub *h, unsigned slot, struct hub_node *t)
{
	h->owner[slot] = t;
	want_refresh(h);
}

/* ---- scripts by hash (lib/rscript.h), routed by their first key ----
 * Every script goes out as EVALSHA to the node serving its first key (every key of one call
 * lives in one slot). When Redis answers NOSCRIPT (its script cache was flushed, or it has
 * never seen this one), the same call is sent again with the text, on the same connection.
 * MOVED updates the slot's owner and sends the call there (a map refresh follows); ASK sends
 * ASKING and the call to the named node, once; TRYAGAIN, CLUSTERDOWN and the like are sent
 * again after HUB_RETRY_MS until HUB_RETRY_DEADLINE_MS. A caller never sees NOSCRIPT or a
 * redirect it could follow. The arguments are copied so a resend does not depend on the
 * caller's storage. A NULL reply means the connection went down (the node is marked down
 * first). */

typedef void hub_reply_fn(struct hub *h, redisReply *rep, void *priv);

struct script_call {
	struct hub *h;
	hub_reply_fn *cb;
	void *priv;
	const struct rscript *s;
	const char *key; /* routing key: the first key, or NULL */
	int argc;
	const char **argv;
	size_t *lens;
	int redirects;
	int with_text; /* sent as EVAL */
	long long deadline_ms;
	struct event *retry;
	struct script_call *rprev, *rnext; /* in h->retrying while a retry is armed */
};

static void script_cb(redisAsyncContext *ac, void *reply, void *p);

/* Out of h->retrying. */
static void retry_list_out(struct script_call *sc)
{
	if (sc->rprev)
		sc->rprev->rnext = sc->rnext;
	else
		sc->h->retrying = sc->rnext;
	if (sc->rnext)
		sc->rnext->rprev = sc->rprev;
	sc->rprev = sc->rnext = NULL;
}

/* Out of h->retrying and its timer disarmed. Membership of the list decides, not the
 * timer: hub_free answers every call of the list and must see each leave it. */
static void retry_unlink(struct script_call *sc)
{
	if (!sc->rprev && sc->h->retrying != sc)
		return;
	evtimer_del(sc->retry);
	retry_list_out(sc);
}

/* The retry timer armed and sc in h->retrying: 0, or -1 when the timer could not be added
 * (libevent out of memory; sc is in no list, the caller answers it now). */
static int retry_arm(struct script_call *sc)
{
	struct timeval tv = {0, HUB_RETRY_MS * 1000};
	retry_unlink(sc);
	if (evtimer_add(sc->retry, &tv) < 0)
		return -1;
	sc->rprev = NULL;
	sc->rnext = sc->h->retrying;
	if (sc->rnext)
		sc->rnext->rprev = sc;
	sc->h->retrying = sc;
	return 0;
}

static void script_done(struct script_call *sc, redisReply *rep)
{
	retry_unlink(sc);
	if (sc->cb)
		sc->cb(sc->h, rep, sc->priv);
	if (sc->retry)
		event_free(sc->retry);
	free(sc);
}

static int script_send(struct script_call *sc, struct hub_node *n)
{
	if (!n || !n->cmd)
		return REDIS_ERR;
	if (!sc->s) /* a plain command (hub_command): argv as given */
		return redisAsyncCommandArgv(n->cmd, script_cb, sc, sc->argc, sc->argv, sc->lens);
	sc->argv[0] = sc->with_text ? "EVAL" : "EVALSHA";
	sc->lens[0] = strlen(sc->argv[0]);
	sc->argv[1] = sc->with_text ? sc->s->text : sc->s->sha;
	sc->lens[1] = strlen(sc->argv[1]);
	return redisAsyncCommandArgv(n->cmd, script_cb, sc, sc->argc, sc->argv, sc->lens);
}

static void script_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct script_call *sc = arg;
	retry_list_out(sc); /* no longer armed */
	struct hub_node *n = route_ready(sc->h, sc->key);
	if (n && script_send(sc, n) == REDIS_OK)
		return;
	if (clock_mono_ms() < sc->deadline_ms && !sc->h->shutting_down && retry_arm(sc) == 0)
		return;
	script_done(sc, NULL);
}

static void cmd_gone(struct hub_node *n, const redisAsyncContext *ac);

static void script_cb(redisAsyncContext *ac, void *reply, void *p)
{
	struct script_call *sc = p;
	struct hub_node *n = ac->data;
	struct hub *h = sc->h;
	redisReply *rep = reply;
	if (!rep) {
		cmd_gone(n, ac);
		script_done(sc, NULL);
		return;
	}
	if (sc->s && reply_is(rep, "NOSCRIPT") && !sc->with_text) {
		sc->with_text = 1;
		if (script_send(sc, n) == REDIS_OK)
			return;
		/* not sent: the caller gets the NOSCRIPT error as its failure */
	}
	int ask;
	unsigned slot;
	struct rslot_node to;
	if (rep->type == REDIS_REPLY_ERROR && sc->redirects < HUB_REDIRECTS &&
	    rslot_redirect(rep->str, rep->len, &ask, &slot, &to)) {
		struct hub_node *t = to.host[0] ? node_get(h, to.host, to.port) : n;
		if (t) {
			if (!ask)
				slot_moved(h, slot, t);
			node_ensure(t); /* a command queued on a connecting context waits for it */
		}
		/* No context yet (its name is being resolved): the retry below waits for it like
		 * a failover does, and a redirect not followed does not count, or the old owner's
		 * ASKs, each answered again until the lookup is done, would use them all up. */
		if (!t || t->cmd)
			sc->redirects++;
		if (t && t->cmd &&
		    (!ask || redisAsyncCommand(t->cmd, NULL, NULL, "ASKING") == REDIS_OK) &&
		    script_send(sc, t) == REDIS_OK)
			return;
	}
	if (reply_transient(rep) && !h->shutting_down) {
		int first = !sc->retry;
		if (!sc->retry)
			sc->retry = evtimer_new(h->base, script_retry_cb, sc);
		if (sc->retry && clock_mono_ms() < sc->deadline_ms && retry_arm(sc) == 0) {
			if (first)
				log_info("redis: %s; trying again", rep->str);
			return;
		}
	}
	script_done(sc, rep);
}

/* One call (a script, or a plain command when script is NULL) with copies of argv[from..argc)
 * and of key, sent to the node that serves key. REDIS_OK, or REDIS_ERR with nothing sent. */
static int call_send(struct hub *h, hub_reply_fn *cb, void *priv, const struct rscript *script,
		     const char *key, int from, int argc, const char **argv)
{
	struct hub_node *n = route_ready(h, key);
	if (!n || argc <= from)
		return REDIS_ERR;
	size_t bytes = sizeof(struct script_call) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
	for (int i = from; i < argc; i++)
		bytes += strlen(argv[i]) + 1;
	bytes += key ? strlen(key) + 1 : 0;
	struct script_call *sc = calloc(1, bytes);
	if (!sc)
		return REDIS_ERR;
	sc->h = h;
	sc->cb = cb;
	sc->priv = priv;
	sc->s = script;
	sc->argc = argc;
	sc->argv = (const char **)(sc + 1);
	sc->lens = (size_t *)(sc->argv + argc);
	sc->deadline_ms = clock_mono_ms() + HUB_RETRY_DEADLINE_MS;
	char *text = (char *)(sc->lens + argc);
	for (int i = from; i < argc; i++) {
		size_t len = strlen(argv[i]);
		memcpy(text, argv[i], len + 1);
		sc->argv[i] = text;
		sc->lens[i] = len;
		text += len + 1;
	}
	if (key) {
		memcpy(text, key, strlen(key) + 1);
		sc->key = text;
	}
	if (script_send(sc, n) != REDIS_OK) {
		free(sc);
		return REDIS_ERR;
	}
	return REDIS_OK;
}

/* argv[2..argc) are numkeys, the keys and the arguments (argv[0..1] are filled here).
 * REDIS_OK, or REDIS_ERR when nothing was sent (cb is then not called): no node serving the
 * first key is connected. */
static int hub_script(struct hub *h, hub_reply_fn *cb, void *priv, const struct rscript *script,
		      int argc, const char **argv)
{
	const char *key = argc > 3 && strcmp(argv[2], "0") != 0 ? argv[3] : NULL;
	return call_send(h, cb, priv, script, key, 2, argc, argv);
}

/* A plain command routed by key (its slot's node), with the redirects and retries of
 * hub_script; argv[0] is the command. REDIS_OK, or REDIS_ERR with nothing sent. */
static int hub_command(struct hub *h, hub_reply_fn *cb, void *priv, const char *key, int argc,
		       const char **argv)
{
	return call_send(h, cb, priv, NULL, key, 0, argc, argv);
}
static void sub_catchup(struct hub_sub *s);

/* A new catch-up starts: the resync test is made again on its first page, and the entry due
 * next is not known yet (catchup_cb) */
static void catchup_checks_reset(struct hub_sub *s)
{
	s->pinned_checked = 0;
	s->next_entry.ms = s->next_entry.seq = 0;
}

/* ---- rooms table ---- */

static unsigned room_hash(const char *id)
{
	unsigned x = 2166136261u; /* FNV-1a */
	for (; *id; id++)
		x = (x ^ (unsigned char)*id) * 16777619u;
	return x % HUB_BUCKETS;
}

static int presence_call(struct hub *h, struct hub_room *r, const char *op, struct hub_user *u,
			 void *priv);

static struct hub_room *room_find(struct hub *h, const char *id)
{
	for (struct hub_room *r = h->buckets[room_hash(id)]; r; r = r->hnext)
		if (strcmp(r->id, id) == 0)
			return r;
	return NULL;
}

static void room_free(struct hub_room *r)
{
	struct hub *h = r->hub;
	struct hub_room **pp = &h->buckets[room_hash(r->id)];
	while (*pp && *pp != r)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = r->hnext;
	while (r->users) {
		struct hub_user *u = r->users;
		r->users = u->next;
		/* only users whose last stream closed are left: their leave is due now (none
		 * while stopping: hub_shutdown closed every user) */
		if (u->count == 0 && !h->shutting_down)
			presence_call(h, r, "close", u, NULL);
		if (u->gone)
			event_free(u->gone);
		free(u);
	}
	event_free(r->linger);
	free(r);
}

/* The room's linger (room_linger_ms) once its last stream left: its subscription and
 * state go when it runs out with no stream back. */
static void room_linger_arm(struct hub *h, struct hub_room *r)
{
	struct timeval tv = {h->cfg.room_linger_ms / 1000, (h->cfg.room_linger_ms % 1000) * 1000};
	if (evtimer_add(r->linger, &tv) < 0)
		log_warn("room %s: out of memory; its subscription stays until its next stream "
			 "leaves", r->id);
}

static void room_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hub_room *r = arg;
	if (r->nsubs > 0)
		return;
	if (r->users) {
		/* users whose leave is still waiting (HUB_PRESENCE_LINGER_MS): a room freed before
		 * would say it at once, and a user opening and closing the one stream of an
		 * otherwise empty room would write a join and a leave each time */
		struct timeval tv = {HUB_PRESENCE_LINGER_MS / 1000,
				     (HUB_PRESENCE_LINGER_MS % 1000) * 1000};
		if (evtimer_add(r->linger, &tv) < 0)
			log_warn("room %s: out of memory; its subscription stays until its next "
				 "stream leaves", r->id);
		return;
	}
	switch (r->ch.link) {
	case RL_IDLE:
		room_free(r);
		break;
	case RL_SUBSCRIBED:
		if (r->ch.node && r->ch.node->sub_ready &&
		    rsub_sunsubscribe(r->ch.node->sub, r->ch.name) == 0) {
			r->ch.link = RL_UNSUBSCRIBING;
		} else {
			/* the connection is going down: nothing to take back */
			r->ch.link = RL_IDLE;
			r->ch.node = NULL;
			room_free(r);
		}
		break;
	case RL_SUBSCRIBING: {
		/* wait for the SSUBSCRIBE answer before taking it back */
		struct timeval tv = {0, 200 * 1000};
		if (evtimer_add(r->linger, &tv) < 0)
			log_warn("room %s: out of memory; its subscription stays until the room's next "
				 "stream leaves", r->id);
		break;
	}
	case RL_UNSUBSCRIBING:
		break;
	}
}

static struct hub_room *room_get(struct hub *h, const char *id)
{
	struct hub_room *r = room_find(h, id);
	if (r)
		return r;
	r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->hub = h;
	snprintf(r->id, sizeof r->id, "%s", id);
	if (rkey1_into(RK_ROOM_CHANNEL, id, r->ch.name, sizeof r->ch.name) < 0 ||
	    rkey1_into(RK_ROOM_EVENTS, id, r->key, sizeof r->key) < 0) {
		free(r);
		return NULL;
	}
	r->linger = evtimer_new(h->base, room_linger_cb, r);
	if (!r->linger) {
		free(r);
		return NULL;
	}
	unsigned b = room_hash(id);
	r->hnext = h->buckets[b];
	h->buckets[b] = r;
	return r;
}

/* ---- presence ---- */

/* One presence change in flight: which room (the index is written when it answers) and the
 * shutdown's marker (NULL otherwise). */
struct presence_req {
	void *priv;
	char room[ROOM_ID_MAX + 1];
};

static void index_reply_cb(struct hub *h, redisReply *rep, void *priv)
{
	if (rep && rep->type == REDIS_REPLY_ERROR)
		log_warn("presence index: %s", rep->str);
}

static void presence_reply_cb(struct hub *h, redisReply *rep, void *priv)
{
	struct presence_req *q = priv;
	if (rep && rep->type == REDIS_REPLY_ERROR)
		log_warn("presence script: %s", rep->str);
	/* the second step, in the index's slot: the room's latest expiry (0: none left). Not
	 * while stopping (the hub may be gone by its answer): an entry left behind is swept
	 * once it is past, and then taken out. */
	if (rep && rep->type == REDIS_REPLY_INTEGER && !q->priv && !h->shutting_down) {
		char exp[24];
		snprintf(exp, sizeof exp, "%lld", (long long)rep->integer);
		const char *argv[] = {NULL, NULL, "1", rkey0(RK_PRESENCE_ROOMS), q->room, exp};
		if (hub_script(h, index_reply_cb, NULL, &rs_presence_index, 6, argv) != REDIS_OK)
			log_warn("presence index of %s: not sent", q->room);
	}
	if (q->priv && h->shutdown_pending > 0 && --h->shutdown_pending == 0 && h->shutdown_done) {
		void (*done)(void *) = h->shutdown_done;
		h->shutdown_done = NULL;
		evtimer_del(h->shutdown_timer);
		done(h->shutdown_arg);
	}
	free(q);
}

/* Runs the presence script in room_id for some users of r (one, or all when u is NULL; none
 * for a sweep, r NULL). */
static int presence_room(struct hub *h, const char *room_id, struct hub_room *r, const char *op,
			 struct hub_user *u, void *priv)
{
	size_t n = 0;
	for (struct hub_user *x = r ? r->users : NULL; x; x = x->next)
		n++;
	size_t argc = 10 + 2 * (u ? 1 : n);
	const char **argv = calloc(argc, sizeof *argv);
	char *ids = calloc(u ? 1 : (n ? n : 1), 24);
	struct presence_req *q = calloc(1, sizeof *q);
	char ttl[24];
	struct rkey ck = rkey1(RK_ROOM_CONNS, room_id), ek = rkey1(RK_ROOM_EVENTS, room_id),
		    dk = rkey1(RK_ROOM_DELETED, room_id);
	int rc = -1;
	if (!argv || !ids || !q || !rkey_ok(&ck) || !rkey_ok(&ek) || !rkey_ok(&dk))
		goto out;
	q->priv = priv;
	snprintf(q->room, sizeof q->room, "%s", room_id);
	snprintf(ttl, sizeof ttl, "%ld", h->cfg.presence_ttl_ms);
	argv[2] = "3";
	argv[3] = ck.s;
	argv[4] = ek.s;
	argv[5] = dk.s; /* a deleted room: no presence, no event (lib/lua/broker_presence.lua) */
	argv[6] = op;
	argv[7] = ttl;
	argv[8] = EVENTS_HISTORY_BOUNDS;
	argv[9] = h->broker_id;
	size_t i = 10, k = 0;
	for (struct hub_user *x = u ? u : (r ? r->users : NULL); x; x = u ? NULL : x->next, k++) {
		snprintf(ids + 24 * k, 24, "%lld", x->id);
		argv[i++] = ids + 24 * k;
		argv[i++] = x->name;
	}
	if (hub_script(h, presence_reply_cb, q, &rs_broker_presence, (int)i, argv) == REDIS_OK) {
		q = NULL; /* presence_reply_cb frees it */
		rc = 0;
	}
out:
	free(argv);
	free(ids);
	free(q);
	return rc;
}

/* The sweep's first step: the rooms due, from the index; then each room in its own slot. */
static void due_reply_cb(struct hub *h, redisReply *rep, void *priv)
{
	if (!rep || h->shutting_down)
		return;
	if (rep->type != REDIS_REPLY_ARRAY) {
		log_warn("presence sweep: %s", rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply");
		return;
	}
	for (size_t i = 0; i < rep->elements; i++) {
		const redisReply *e = rep->element[i];
		if (e->type == REDIS_REPLY_STRING && e->len > 0 && e->len <= ROOM_ID_MAX &&
		    !memchr(e->str, '\0', e->len))
			presence_room(h, e->str, NULL, "sweep", NULL, NULL);
	}
}

/* Runs the presence script for some users of r (one, or all when u is NULL); r NULL and op
 * "sweep": the rooms whose members may have expired, any broker's. The one place presence
 * is sent from. */
static int presence_call(struct hub *h, struct hub_room *r, const char *op, struct hub_user *u,
			 void *priv)
{
	if (r)
		return presence_room(h, r->id, r, op, u, priv);
	char sweep[16];
	snprintf(sweep, sizeof sweep, "%d", HUB_SWEEP_ROOMS);
	const char *argv[] = {NULL, NULL, "1", rkey0(RK_PRESENCE_ROOMS), sweep};
	return hub_script(h, due_reply_cb, NULL, &rs_presence_due, 5, argv) == REDIS_OK ? 0 : -1;
}

static void user_add(struct hub_room *r, struct hub_sub *s)
{
	struct hub_user *u;
	for (u = r->users; u; u = u->next)
		if (u->id == s->user_id)
			break;
	if (!u) {
		u = calloc(1, sizeof *u);
		if (!u)
			return; /* presence is best effort; the stream itself goes on */
		u->id = s->user_id;
		u->room = r;
		snprintf(u->name, sizeof u->name, "%s", s->username);
		u->next = r->users;
		r->users = u;
	} else if (u->count == 0 && u->gone && evtimer_pending(u->gone, NULL)) {
		/* back within the linger: still present, no join */
		evtimer_del(u->gone);
		u->count++;
		return;
	}
	if (u->count++ == 0 && !r->hub->shutting_down)
		presence_call(r->hub, r, "open", u, NULL);
}

static void user_unlink(struct hub_room *r, struct hub_user *u)
{
	struct hub_user **pp = &r->users;
	while (*pp && *pp != u)
		pp = &(*pp)->next;
	if (*pp)
		*pp = u->next;
}

/* The linger of a user without streams here is over: their leave (if no other broker has
 * them), and they are forgotten. */
static void user_gone_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hub_user *u = arg;
	struct hub_room *r = u->room;
	if (u->count > 0)
		return;
	if (!r->hub->shutting_down)
		presence_call(r->hub, r, "close", u, NULL);
	user_unlink(r, u);
	/* a timer that fired is no longer pending or active: freeing it here is safe */
	event_free(u->gone);
	free(u);
}

static void user_remove(struct hub_room *r, struct hub_sub *s)
{
	struct hub_user **pp = &r->users;
	while (*pp && (*pp)->id != s->user_id)
		pp = &(*pp)->next;
	struct hub_user *u = *pp;
	if (!u || --u->count > 0)
		return;
	if (!r->hub->shutting_down) {
		struct timeval tv = {HUB_PRESENCE_LINGER_MS / 1000,
				     (HUB_PRESENCE_LINGER_MS % 1000) * 1000};
		if (!u->gone)
			u->gone = evtimer_new(r->hub->base, user_gone_cb, u);
		if (u->gone && evtimer_add(u->gone, &tv) == 0)
			return; /* user_gone_cb */
		/* no timer: the leave goes now */
		presence_call(r->hub, r, "close", u, NULL);
	} /* else hub_shutdown() closed them all already */
	*pp = u->next;
	if (u->gone)
		event_free(u->gone);
	free(u);
}

/* ---- catch-up ---- */

static int deliver_thunk(void *arg, struct room_event *ev)
{
	struct hub_sub *s = arg;
	if (!s->room)
		return -1;
	return s->ops->deliver(s, ev);
}

static void sub_go_live(struct hub_sub *s)
{
	s->pinned = 1;
	s->state = HUB_SUB_LIVE;
	if (room_cursor_finish(&s->cur, deliver_thunk, s) < 0 || !s->room)
		return;
	s->ops->caught_up(s);
}

static void rights_check_some(struct hub_room *r, long long only_uid, const struct hub_sub *only);
static void dispatch_events(struct hub_room *r, struct room_event *const *evs, size_t n);
static void rights_changed(struct hub *h);

/* One catch-up read in flight. Its answer counts only while it is the subscriber's latest
 * (seq == s->catchup_seq): a read sent before the stream's state changed (its room was lost
 * and subscribed again, possibly at another node; it left and joined again; a repair started
 * over) may be answered after the new state's own read was sent, when it is REPLAY again. A
 * command waiting to be sent again (TRYAGAIN, CLUSTERDOWN, MASTERDOWN) outlives the loss of
 * its connection, and a read redirected by MOVED is answered by another node. Applied, such an
 * answer would count as a page of the new catch-up: one read from where the stream stood then,
 * answered after a page the new read already delivered, moves nothing on, and the stream would
 * go live there, skipping every event between that page and the ones held since. */
struct catchup_req {
	struct hub_sub *s;
	unsigned seq;
};

static void catchup_cb(struct hub *h, redisReply *rep, void *priv)
{
	struct catchup_req *q = priv;
	struct hub_sub *s = q->s;
	unsigned seq = q->seq;
	int rights = 0; /* a rights event was replayed to s */
	free(q);
	if (!s->room || s->state != HUB_SUB_REPLAY || seq != s->catchup_seq)
		goto out;
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
	    rep->element[2]->type != REDIS_REPLY_INTEGER) {
		/* the node went away with the room (then the room is resubscribed and this
		 * subscriber replayed: it is not REPLAY any more), the cluster could not answer in
		 * time, or Redis answered with an error (BUSY, NOPERM, OOM, a script error) or
		 * something that is not a page: whatever lies after the client's position is
		 * unknown, and going live would skip it. The stream ends; the client resumes from
		 * its last event elsewhere or later. Only a well-formed empty page goes live. */
		log_warn("catch-up in %s: %s", s->room->id,
			 !rep ? "connection lost"
			 : rep->type == REDIS_REPLY_ERROR ? rep->str
							  : "not a page of history");
		metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_REDIS, 0);
		s->ops->fail(s, "redis unavailable");
		goto out;
	}
	const redisReply *first = rep->element[0], *range = rep->element[1];
	if (rep->element[2]->integer == 1) {
		struct room_evid tail;
		if (room_entry_id(range, &tail) == 0)
			s->cur.last = tail;
		sub_go_live(s);
		goto out;
	}
	struct room_evid oldest;
	/* a page's fourth element: how many entries the history dropped (broker_catchup.lua) */
	long long dropped = rep->elements > 3 && rep->element[3]->type == REDIS_REPLY_INTEGER
				    ? rep->element[3]->integer
				    : 0;
	/* a page's eighth element: the entry that came right before the oldest one, when known */
	struct room_evid prior;
	const struct room_evid *bp =
		rep->elements > 7 && room_entry_id(rep->element[7], &prior) == 0 ? &prior : NULL;
	int kept = room_entry_id(first, &oldest) == 0, gone;
	if (!s->pinned_checked)
		gone = (kept && room_needs_resync(s->cur.last, oldest, bp)) ||
		       room_start_trimmed(s->cur.last, dropped);
	else if (!room_evid_is_zero(s->next_entry))
		/* a later page, or the same one again after HUB_BUSY: the history may have been
		 * trimmed past the client while it was delivered or waited (a busy room turns it
		 * over in seconds, a slow reader's output may stay full longer). The entry due
		 * next is known, so the answer is exact: it is gone when the oldest kept entry is
		 * later (an emptied history is an unknown position, below). */
		gone = kept && room_evid_cmp(oldest, s->next_entry) > 0;
	else
		gone = kept && room_needs_resync(s->cur.last, oldest, bp);
	if (gone) {
		/* extension event: the history no longer reaches back to this client */
		static const char why[] = "{\"reason\":\"history_trimmed\"}";
		char id[ROOM_EVID_MAX];
		room_evid_format(s->cur.last, id);
		struct room_event *ev = room_event_new(id, "resync", why, sizeof why - 1);
		int r = ev ? s->ops->deliver(s, ev) : -1;
		room_event_release(ev);
		if (r == HUB_BUSY) {
			/* not taken: the whole check again when the owner has room */
			s->paused = 1;
			goto out;
		}
		if (r < 0 || !s->room)
			goto out;
	}
	s->pinned_checked = 1;
	size_t n = range->type == REDIS_REPLY_ARRAY ? range->elements : 0;
	struct room_evid newest, page_from = s->cur.last;
	/* an empty page's newest id; none when the history is empty: then 0-0, before any event */
	if (n == 0 && rep->elements > 4 && room_entry_id(rep->element[4], &newest) < 0)
		newest.ms = newest.seq = 0;
	if (n == 0 && s->pinned && rep->elements > 4 && room_evid_cmp(s->cur.last, newest) > 0) {
		/* extension event: the client's position lies past everything the history holds
		 * (an id this room never gave, or entries lost with a Redis node and nothing newer):
		 * the client starts over from the newest event, where its stream now stands; in a
		 * room without events from 0-0 (else every event below its position would be
		 * dropped as already seen) */
		char id[ROOM_EVID_MAX];
		room_evid_format(newest, id);
		s->cur.last = newest;
		struct room_event *ev = room_event_resync(id, "unknown_position");
		int r = ev ? s->ops->deliver(s, ev) : -1;
		room_event_release(ev);
		if (r == HUB_BUSY) {
			s->cur.last = page_from; /* told when the owner has room again */
			s->paused = 1;
			goto out;
		}
		if (r < 0 || !s->room)
			goto out;
	}
	for (size_t i = 0; i < n; i++) {
		/* an entry the broker cannot take comes as a resync in its place, never a gap */
		struct room_event *ev = room_event_from_entry(range->element[i]);
		if (!ev)
			continue;
		int r = 0, delivered = 0;
		enum room_ctl ctl = ev->ctl;
		struct room_evid before = s->cur.last, at = ev->id;
		if (room_cursor_replayed(&s->cur, ev) == ROOM_DELIVER) {
			r = s->ops->deliver(s, ev);
			delivered = 1;
		}
		room_event_release(ev);
		if (delivered && r == 0 && ctl == ROOM_CTL_RIGHTS)
			rights = 1;
		if (r == HUB_BUSY) {
			/* not taken: from this one on when the owner has room again */
			s->cur.last = before;
			s->next_entry = at;
			s->paused = 1;
			goto out;
		}
		if (r < 0 || !s->room)
			goto out;
	}
	/* the page's sixth element: it stopped at its bound of entries or bytes */
	int more = rep->elements > 5 && rep->element[5]->type == REDIS_REPLY_INTEGER &&
		   rep->element[5]->integer == 1;
	if (more && room_evid_cmp(s->cur.last, page_from) > 0) {
		/* the seventh: the entry the next page must start with */
		if (rep->elements < 7 || room_entry_id(rep->element[6], &s->next_entry) < 0)
			s->next_entry.ms = s->next_entry.seq = 0;
		sub_catchup(s); /* more pages; live events stay held meanwhile */
	} else {
		sub_go_live(s); /* the last page, or one that moved nothing on: asking again would
				 * get the same page for ever */
	}
out:
	if (rights && s->room) {
		/* as dispatch() does for a live one: the stream is asked about again after the
		 * event went out. A gap repair (sub_repair) replays a `room` event the channel lost,
		 * which no live dispatch saw; a resuming stream's check may predate it as well. */
		rights_changed(h);
		rights_check_some(s->room, 0, s);
	}
	s->ops->release(s);
}

void hub_resume(struct hub *h, struct hub_sub *s)
{
	if (!s->paused || !s->room || s->state != HUB_SUB_REPLAY)
		return;
	s->paused = 0;
	if (s->room->ch.link == RL_SUBSCRIBED)
		sub_catchup(s);
	/* else the reconnect replays it (link_up) */
}

static void sub_catchup(struct hub_sub *s)
{
	struct hub_room *r = s->room;
	struct hub *h = r->hub;
	char from[ROOM_EVID_MAX] = "", page[16], budget[32];
	if (s->state != HUB_SUB_REPLAY) {
		s->state = HUB_SUB_REPLAY;
		catchup_checks_reset(s);
		room_cursor_begin(&s->cur);
	}
	if (s->pinned)
		room_evid_format(room_evid_next(s->cur.last), from);
	snprintf(page, sizeof page, "%d", HUB_PAGE);
	/* a page holds about what the client can take before it must wait or be answered:
	 * more would be read from Redis (blocking it meanwhile) only to be read again */
	snprintf(budget, sizeof budget, "%zu",
		 s->catchup_bytes ? s->catchup_bytes : h->cfg.catchup_bytes);
	struct catchup_req *q = malloc(sizeof *q);
	if (!q) {
		metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_ERROR, 0);
		s->ops->fail(s, "out of memory");
		return;
	}
	q->s = s;
	q->seq = ++s->catchup_seq; /* any read still in flight is stale from now on */
	s->ops->reserve(s);
	const char *argv[] = {NULL, NULL, "1", r->key, from, page, budget};
	if (hub_script(h, catchup_cb, q, &rs_broker_catchup, 7, argv) != REDIS_OK) {
		free(q);
		s->ops->release(s);
		metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_REDIS, 0);
		s->ops->fail(s, "redis unavailable");
	}
}

/* ---- rights re-check (rights.h) ---- */

/* The rights question (sse-broker/rights.h) in its parts, one slot each: the room's script
 * and, per subject, EXISTS of its session key and GET of its user's generation key, each
 * routed to its own slot's node. When every reply is in, cb gets one answer as a single
 * script would give it: an array of one string per subject ("revoked" before whatever the
 * room said), an error reply (the first error), or NULL (a part was lost: its connection went,
 * or its node was not connected when it was to be sent). The one place
 * that sends it, so a change of its steps changes this part only. */
struct rights_gather;
struct rights_part {
	struct rights_gather *g;
	size_t i;  /* the subject; the room's script: n */
	int which; /* 0 the room, 1 EXISTS, 2 GET */
};
struct rights_gather {
	hub_reply_fn *cb;
	void *priv;
	size_t n, left;
	int lost, room_ok;
	char err[160];
	char (*answer)[16];	     /* the room's answer per subject */
	long long *gen;		     /* each subject's token generation */
	redisReply **exists, **genv; /* copies of the two replies of each subject */
	struct rights_part *parts;
};

/* Frees g whole, also one rights_ask left half built (a per-subject array NULL: memory ran
 * out before it was made). */
static void gather_free(struct rights_gather *g)
{
	for (size_t i = 0; i < g->n; i++) {
		if (g->exists)
			free(g->exists[i]);
		if (g->genv)
			free(g->genv[i]);
	}
	free(g->answer);
	free(g->gen);
	free(g->exists);
	free(g->genv);
	free(g->parts);
	free(g);
}

/* The few fields of a reply rights_subject_revoked reads (hiredis frees its own). */
static redisReply *reply_copy(const redisReply *r)
{
	size_t len = r->type == REDIS_REPLY_STRING ? r->len : 0;
	redisReply *c = calloc(1, sizeof *c + len + 1);
	if (!c)
		return NULL;
	c->type = r->type;
	c->integer = r->integer;
	c->len = len;
	c->str = (char *)(c + 1);
	if (len)
		memcpy(c->str, r->str, len);
	return c;
}

static void gather_cb(struct hub *h, redisReply *rep, void *priv)
{
	struct rights_part *p = priv;
	struct rights_gather *g = p->g;
	if (!rep)
		g->lost = 1;
	else if (rep->type == REDIS_REPLY_ERROR) {
		if (!g->err[0])
			snprintf(g->err, sizeof g->err, "%s", rep->str);
	} else if (p->which == 0) {
		if (rep->type == REDIS_REPLY_ARRAY && rep->elements == g->n) {
			g->room_ok = 1;
			for (size_t i = 0; i < g->n; i++) {
				const redisReply *e = rep->element[i];
				if (e->type == REDIS_REPLY_STRING && e->len < sizeof g->answer[i])
					memcpy(g->answer[i], e->str, e->len + 1);
				else
					snprintf(g->answer[i], sizeof g->answer[i], "?");
			}
		}
	} else if (!(p->which == 1 ? (g->exists[p->i] = reply_copy(rep))
				   : (g->genv[p->i] = reply_copy(rep)))) {
		snprintf(g->err, sizeof g->err, "out of memory");
	}
	if (--g->left > 0)
		return;
	if (g->lost) {
		g->cb(h, NULL, g->priv);
		gather_free(g);
		return;
	}
	redisReply out = {0}, *elems = calloc(g->n, sizeof *elems);
	redisReply **ptrs = calloc(g->n, sizeof *ptrs);
	if ((!elems || !ptrs) && !g->err[0])
		snprintf(g->err, sizeof g->err, "out of memory");
	if (!g->err[0] && !g->room_ok)
		snprintf(g->err, sizeof g->err, "unexpected answer");
	for (size_t i = 0; !g->err[0] && i < g->n; i++) {
		int rv = rights_subject_revoked(g->exists[i], g->genv[i], g->gen[i]);
		const char *a = rv == 1 ? "revoked" : rv == 0 ? g->answer[i] : "?";
		elems[i].type = REDIS_REPLY_STRING;
		elems[i].str = (char *)a;
		elems[i].len = strlen(a);
		ptrs[i] = &elems[i];
	}
	if (g->err[0]) {
		out.type = REDIS_REPLY_ERROR;
		out.str = g->err;
		out.len = strlen(g->err);
	} else {
		out.type = REDIS_REPLY_ARRAY;
		out.elements = g->n;
		out.element = ptrs;
	}
	g->cb(h, &out, g->priv);
	free(elems);
	free(ptrs);
	gather_free(g);
}

/* Sends the question cmd about subj (cmd->n of them); cb(h, answer, priv) once. REDIS_OK,
 * or REDIS_ERR with nothing sent (cb is not called). */
static int rights_ask(struct hub *h, hub_reply_fn *cb, void *priv, const struct rights_cmd *cmd,
		      const struct rights_subject *subj)
{
	struct rights_gather *g = calloc(1, sizeof *g);
	size_t n = cmd->n;
	if (!g)
		return REDIS_ERR;
	g->cb = cb;
	g->priv = priv;
	g->n = n;
	g->answer = calloc(n, sizeof *g->answer);
	g->gen = calloc(n, sizeof *g->gen);
	g->exists = calloc(n, sizeof *g->exists);
	g->genv = calloc(n, sizeof *g->genv);
	g->parts = calloc(2 * n + 1, sizeof *g->parts);
	if (!g->answer || !g->gen || !g->exists || !g->genv || !g->parts) {
		gather_free(g);
		return REDIS_ERR;
	}
	for (size_t i = 0; i < n; i++)
		g->gen[i] = subj[i].gen;
	g->parts[0] = (struct rights_part){g, n, 0};
	/* counted before the first send: an answer may come back before this returns only
	 * through a callback of the event loop, never inside the send, but the count must be
	 * whole before any part can finish it */
	g->left = 1 + 2 * n;
	if (hub_script(h, gather_cb, &g->parts[0], &rs_access_stream, cmd->argc, cmd->argv) !=
	    REDIS_OK) {
		gather_free(g);
		return REDIS_ERR;
	}
	/* from here on the replies (or their NULLs when a connection goes) free g */
	for (size_t i = 0; i < n; i++) {
		struct rights_part *e = &g->parts[1 + 2 * i], *v = e + 1;
		*e = (struct rights_part){g, i, 1};
		*v = (struct rights_part){g, i, 2};
		const char *ea[] = {"EXISTS", cmd->skey[i]}, *ga[] = {"GET", cmd->gkey[i]};
		/* a part that cannot be sent (its node is not connected yet) is a lost part: the
		 * node is being connected (route_ready), and the caller asks again or gives up */
		if (hub_command(h, gather_cb, e, cmd->skey[i], 2, ea) != REDIS_OK) {
			g->lost = 1;
			g->left--;
		}
		if (hub_command(h, gather_cb, v, cmd->gkey[i], 2, ga) != REDIS_OK) {
			g->lost = 1;
			g->left--;
		}
	}
	return REDIS_OK;
}

/* One command about at most RIGHTS_BATCH subjects of a room. The room is found again by id
 * when the answer comes: it may have been freed meanwhile.
 *
 * A lost answer (a part's node went away, or was not connected when it was to be asked) is
 * never forgotten. The room's own node going away is covered by its resubscription, which
 * asks about every stream of the room again (check_on_subscribe); but the subjects' session
 * and generation keys may live on other nodes, and nothing else would ask about them. So the
 * question is asked again, with backoff (lib/backoff.h), for HUB_RIGHTS_RETRY_MS: a node that
 * blinks (a restart, a reconnect, a failover its replica finishes quickly) costs a healthy
 * stream nothing, and a revocation is applied as soon as the node (or its replica) answers.
 * When it still has no answer then, the streams asked about are dropped as the error branch
 * of rights_cb drops them (not revoked: each reconnects and is checked when it opens): a
 * stream whose access may have been taken away does not stay open for longer than that. */
struct rights_req {
	struct hub *h;
	struct rights_req *wprev, *wnext; /* in h->rights_waiting while its retry is armed */
	struct event *retry;
	struct backoff backoff;
	long long deadline_ms; /* 0 until the first loss */
	char room[ROOM_ID_MAX + 1];
	size_t n;
	struct rights_subject subj[]; /* sorted, distinct */
};

static void rights_cb(struct hub *h, redisReply *rep, void *priv);

/* Takes q out of h->rights_waiting (it is there while its retry is armed). */
static void rights_waiting_unlink(struct rights_req *q)
{
	if (q->wprev)
		q->wprev->wnext = q->wnext;
	else
		q->h->rights_waiting = q->wnext;
	if (q->wnext)
		q->wnext->wprev = q->wprev;
	q->wprev = q->wnext = NULL;
}

static void rights_req_free(struct rights_req *q)
{
	if (!q)
		return;
	/* out of the list it is in, whatever its timer says: hub_free's loop over
	 * h->rights_waiting must see each one leave */
	if (q->wprev || q->h->rights_waiting == q)
		rights_waiting_unlink(q);
	if (q->retry)
		event_free(q->retry); /* deletes it when armed */
	free(q);
}

/* Sends q's question; REDIS_OK, or REDIS_ERR with nothing sent (rights_cb is not called). */
static int rights_send(struct hub *h, struct rights_req *q)
{
	struct rights_cmd cmd = {0};
	int rc = REDIS_ERR;
	if (rights_cmd_build(&cmd, q->room, q->subj, q->n) == 0)
		rc = rights_ask(h, rights_cb, q, &cmd, q->subj);
	rights_cmd_free(&cmd);
	return rc;
}

static void sub_subject(const struct hub_sub *s, struct rights_subject *out)
{
	memset(out, 0, sizeof *out);
	out->user_id = s->user_id;
	out->gen = s->gen;
	snprintf(out->sid, sizeof out->sid, "%s", s->sid);
}

/* The streams of r that q asked about end as a drop (why in the log), not a revocation: each
 * reconnects and is checked when it opens. Failing closed, like a stream that opens while
 * Redis cannot answer. */
static void rights_drop(struct hub_room *r, const struct rights_req *q)
{
	struct hub_sub *next;
	for (struct hub_sub *s = r ? r->subs : NULL; s; s = next) {
		next = s->next; /* s may leave during its own callback, no other may */
		struct rights_subject key;
		sub_subject(s, &key);
		if (bsearch(&key, q->subj, q->n, sizeof *q->subj, rights_subject_cmp)) {
			metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_REDIS, 0);
			s->ops->fail(s, "could not check the stream's rights");
		}
	}
}

static void rights_retry_cb(evutil_socket_t fd, short what, void *arg);

/* q got no answer (a part was lost, or could not be sent): asked again after a backoff, or,
 * past its deadline, its streams are dropped. Takes q. */
static void rights_lost(struct hub *h, struct rights_req *q)
{
	struct hub_room *r = room_find(h, q->room);
	if (h->shutting_down || !r || r->nsubs == 0 ||
	    (r->ch.link != RL_SUBSCRIBED && r->check_on_subscribe)) {
		/* nobody left to ask about, or the room's resubscription asks about all of them */
		rights_req_free(q);
		return;
	}
	long long now = clock_mono_ms();
	if (!q->deadline_ms) {
		q->deadline_ms = now + HUB_RIGHTS_RETRY_MS;
		q->backoff = (struct backoff){.first_ms = HUB_BACKOFF_MIN_MS,
					      .max_ms = HUB_CLUSTER_BACKOFF_MAX_MS};
		log_info("rights check in %s: no answer (a Redis node went away); asking again",
			 q->room);
	}
	if (!q->retry)
		q->retry = evtimer_new(h->base, rights_retry_cb, q);
	if (q->retry && now < q->deadline_ms) {
		long delay = backoff_next(&q->backoff);
		if (delay > q->deadline_ms - now)
			delay = (long)(q->deadline_ms - now);
		struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
		/* a timer libevent cannot add (out of memory) is no wait: the streams go as at
		 * the deadline */
		if (evtimer_add(q->retry, &tv) == 0) {
			q->wprev = NULL;
			q->wnext = h->rights_waiting;
			if (q->wnext)
				q->wnext->wprev = q;
			h->rights_waiting = q;
			return;
		}
	}
	log_warn("rights check in %s: no answer within %d ms; its streams are dropped", q->room,
		 HUB_RIGHTS_RETRY_MS);
	rights_drop(r, q);
	rights_req_free(q);
}

static void rights_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rights_req *q = arg;
	struct hub *h = q->h;
	rights_waiting_unlink(q); /* no longer armed */
	struct hub_room *r = room_find(h, q->room);
	if (!r || r->nsubs == 0 || h->shutting_down) {
		rights_req_free(q);
		return;
	}
	if (rights_send(h, q) != REDIS_OK)
		rights_lost(h, q); /* again later, or dropped at the deadline */
}

static void rights_cb(struct hub *h, redisReply *rep, void *priv)
{
	struct rights_req *q = priv;
	struct hub_room *r;
	if (!rep) {
		rights_lost(h, q);
		return;
	}
	r = room_find(h, q->room);
	struct hub_sub *next;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != q->n) {
		/* An error (a busy or failing server): nothing would ask again, so the streams
		 * asked about end (as a drop, not a revocation). */
		log_warn("rights check in %s: %s", q->room,
			 rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected answer");
		rights_drop(r, q);
		goto out;
	}
	int unknown_logged = 0;
	for (struct hub_sub *s = r ? r->subs : NULL; s; s = next) {
		next = s->next; /* s may leave during its own callback, no other may */
		struct rights_subject key;
		sub_subject(s, &key);
		const struct rights_subject *at =
			bsearch(&key, q->subj, q->n, sizeof *q->subj, rights_subject_cmp);
		if (!at)
			continue; /* not asked about here (another batch, or joined since) */
		const redisReply *e = rep->element[at - q->subj];
		/* an element of another type is no answer the script gives either */
		enum rights_verdict v = e->type == REDIS_REPLY_STRING
						? rights_verdict_of(e->str, e->len)
						: RIGHTS_UNKNOWN;
		switch (v) {
		case RIGHTS_READ:
			break;
		case RIGHTS_DENIED:
			metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_REVOKED, 0);
			s->ops->revoked(s, "not a member of this room");
			break;
		case RIGHTS_REVOKED:
			metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_REVOKED, 0);
			s->ops->revoked(s, "this session was signed out");
			break;
		case RIGHTS_NO_ROOM:
			metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_REVOKED, 0);
			s->ops->revoked(s, "the room was deleted");
			break;
		case RIGHTS_UNKNOWN:
			/* Fails closed, as the error branch above and the opening check (503) do:
			 * an answer we cannot read may hide a removal. Dropped, not revoked: the
			 * client reconnects and its opening check decides. */
			if (!unknown_logged)
				log_warn("rights check in %s: unexpected answer", q->room);
			unknown_logged = 1;
			metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_REDIS, 0);
			s->ops->fail(s, "could not check the stream's rights");
			break;
		}
	}
out:
	rights_req_free(q);
}

/* Asks about every distinct (user, session, generation) among r's subscribers, or only those
 * of user only_uid (> 0), or only subscriber only (not NULL). Bounded: commands of at most
 * RIGHTS_BATCH subjects. */
static void rights_check_some(struct hub_room *r, long long only_uid, const struct hub_sub *only)
{
	struct hub *h = r->hub;
	struct rights_subject *all = NULL;
	size_t n = 0;
	if (r->nsubs == 0)
		return;
	all = calloc(r->nsubs, sizeof *all);
	if (!all) {
		log_warn("rights check in %s: out of memory", r->id);
		return;
	}
	for (struct hub_sub *s = r->subs; s; s = s->next)
		if ((only_uid <= 0 || s->user_id == only_uid) && (!only || s == only))
			sub_subject(s, &all[n++]);
	n = rights_subjects_unique(all, n);
	for (size_t at = 0; at < n; at += RIGHTS_BATCH) {
		size_t k = n - at < RIGHTS_BATCH ? n - at : RIGHTS_BATCH;
		struct rights_req *q = calloc(1, sizeof *q + k * sizeof q->subj[0]);
		if (!q) {
			log_warn("rights check in %s: out of memory", r->id);
			continue;
		}
		q->h = h;
		snprintf(q->room, sizeof q->room, "%s", r->id);
		q->n = k;
		memcpy(q->subj, all + at, k * sizeof q->subj[0]);
		metric_add(&broker_metrics[BM_RIGHTS_RECHECKS], 0, 0, (long long)k);
		if (rights_send(h, q) != REDIS_OK)
			rights_lost(h, q); /* not sent (a node not connected yet): as a lost answer */
	}
	free(all);
}

static void rights_check(struct hub_room *r, long long only_uid)
{
	rights_check_some(r, only_uid, NULL);
}

/* Every room with streams. */
static void rights_check_all(struct hub *h)
{
	for (int b = 0; b < HUB_BUCKETS; b++)
		for (struct hub_room *r = h->buckets[b]; r; r = r->hnext)
			if (r->nsubs > 0)
				rights_check(r, 0);
}

/* Something may have changed rights: checks answered before now are stale for hub_join(). */
static void rights_changed(struct hub *h)
{
	h->rights_seq++;
}

/* On cc:access (lib/access.h): {"user":U}, every stream of U, in every room, is asked about
 * again; {"room":"R"}, every stream of R (the access resync made it private again). */
static void access_message(struct hub *h, const char *msg, size_t len)
{
	struct rights_access a;
	if (rights_access_message(msg, len, &a) < 0) {
		log_warn("%s: ignoring a malformed message", rkey0(RK_ACCESS_CHANNEL));
		return;
	}
	rights_changed(h);
	if (a.user_id == 0) {
		struct hub_room *r = room_find(h, a.room);
		if (r && r->nsubs > 0)
			rights_check(r, 0);
		return;
	}
	for (int b = 0; b < HUB_BUCKETS; b++)
		for (struct hub_room *r = h->buckets[b]; r; r = r->hnext)
			for (struct hub_sub *s = r->subs; s; s = s->next)
				if (s->user_id == a.user_id) {
					rights_check(r, a.user_id);
					break;
				}
}

/* ---- subscriptions ---- */

/* A resync at each live subscriber's own position (nothing to order it by). */
static void resync_live(struct hub_room *r, const char *reason)
{
	struct hub_sub *next;
	for (struct hub_sub *s = r->subs; s; s = next) {
		next = s->next;
		if (s->state != HUB_SUB_LIVE)
			continue; /* a replaying one reads the history, where the event is */
		char id[ROOM_EVID_MAX];
		room_evid_format(s->cur.last, id);
		struct room_event *ev = room_event_resync(id, reason);
		if (ev)
			s->ops->deliver(s, ev);
		else {
			metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_ERROR, 0);
			s->ops->fail(s, "out of memory");
		}
		room_event_release(ev);
	}
}

/* A live stream that ev shows to have missed messages on the channel (room_cursor_gap):
 * ev is held and the stream replays the history from its last event, as after a reconnect,
 * so it gets what it missed in order and then ev. Pub/sub keeps nothing for a subscriber
 * that was not there or was at the wrong node (docs/INTERNALS.md, "A gap on the channel"). */
static void sub_repair(struct hub_sub *s, struct room_event *ev)
{
	s->state = HUB_SUB_REPLAY;
	catchup_checks_reset(s);
	room_cursor_begin(&s->cur);
	if (room_cursor_offer(&s->cur, ev) != ROOM_HELD) {
		metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_ERROR, 0);
		s->ops->fail(s, "out of memory");
		return;
	}
	metric_inc(&broker_metrics[BM_GAPS], 0, 0);
	sub_catchup(s);
}

/* Every stream of r ends, whatever its state: a live one that took the `deleted` event left
 * already (its owner ends it on that event); one still replaying (paused by HUB_BUSY while its
 * client does not read, or waiting for a page) would otherwise hold the event and stay open
 * for as long as its client keeps the connection busy. Each revoked callback leaves the room;
 * one that did not is taken out here, so the loop always ends. */
static void end_all(struct hub_room *r, const char *why)
{
	struct hub_sub *s;
	while ((s = r->subs) != NULL) {
		s->ops->revoked(s, why);
		if (s->room == r)
			hub_leave(r->hub, s);
	}
}

/* ev: msg as room_event_from_message() read it (NULL: it does not parse); taken over. */
static void dispatch(struct hub_room *r, const char *msg, size_t len, struct room_event *ev)
{
	char idstr[ROOM_EVID_MAX];
	if (!ev) {
		/* never a silent gap: in its place a resync, by its id when it has one (then the
		 * cursor orders it like any event), else at each live client's own position */
		log_warn("room %s: a malformed message; its subscribers get a resync", r->id);
		if (room_message_id(msg, len, idstr) == 0) {
			ev = room_event_resync(idstr, "malformed_event");
		} else {
			resync_live(r, "malformed_event");
			return;
		}
		if (!ev)
			return;
	}
	dispatch_events(r, &ev, 1);
	/* after the event went out: whoever lost the room gets it, then the stream ends */
	if (ev->ctl == ROOM_CTL_RIGHTS) {
		rights_changed(r->hub);
		rights_check(r, 0);
	}
	if (ev->ctl == ROOM_CTL_DELETED)
		end_all(r, "room deleted");
	room_event_release(ev);
}

/* What a subscriber's events gathered in dispatch_events are written as: at once when it is
 * live and can take several (deliver_many's contract, hub.h), else one by one (a replay's
 * events each go through its bound). Stops once s has left (a failed write). */
static void deliver_gathered(struct hub_sub *s, struct room_event *const *evs, size_t n)
{
	if (n > 1 && n <= HUB_BATCH_MAX && s->state == HUB_SUB_LIVE && s->ops->deliver_many &&
	    s->room) {
		s->ops->deliver_many(s, evs, n);
		return;
	}
	for (size_t i = 0; i < n && s->room; i++)
		s->ops->deliver(s, evs[i]);
}

/* Events of room r, in order, to each of its subscribers: for each one the same steps as one
 * event at a time (a gap starts its repair, a held event waits for its catch-up), but the
 * events it is to get live are written together, before anything else is done to it. */
static void dispatch_events(struct hub_room *r, struct room_event *const *evs, size_t n)
{
	struct hub_sub *next;
	int gaps = 0;
	for (struct hub_sub *s = r->subs; s; s = next) {
		next = s->next; /* s may leave during its own callbacks, no other may */
		struct room_event *out[HUB_BATCH_MAX];
		size_t k = 0;
		for (size_t i = 0; i < n && s->room == r; i++) {
			struct room_event *ev = evs[i];
			if (s->state != HUB_SUB_REPLAY && s->state != HUB_SUB_LIVE)
				break;
			if (s->state == HUB_SUB_LIVE && room_cursor_gap(&s->cur, ev)) {
				if (gaps++ == 0) {
					char last[ROOM_EVID_MAX], prev[ROOM_EVID_MAX];
					room_evid_format(s->cur.last, last);
					room_evid_format(ev->prev, prev);
					log_warn("room %s: event %s came after %s, but a stream's last was "
						 "%s: messages were lost on the channel; catching up from "
						 "the history",
						 r->id, ev->idstr, prev, last);
				}
				deliver_gathered(s, out, k);
				k = 0;
				if (s->room == r)
					sub_repair(s, ev);
				continue;
			}
			switch (room_cursor_offer(&s->cur, ev)) {
			case ROOM_DELIVER:
				out[k++] = ev;
				break;
			case ROOM_OVERFLOW:
				deliver_gathered(s, out, k);
				k = 0;
				metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_CATCHUP, 0);
				if (s->room == r)
					s->ops->fail(s, "too many events during catch-up");
				break;
			case ROOM_DUPLICATE:
			case ROOM_HELD:
				break;
			}
		}
		deliver_gathered(s, out, k);
	}
}

/* The events gathered from the last read (hub.batch), each room's in one pass over its
 * subscribers. Called before anything else a subscription connection says is acted on, so
 * the order of events and of what follows them is the order Redis sent them in. */
static void batch_flush(struct hub *h)
{
	if (!h->nbatch)
		return;
	struct hub_room *r = h->batch_room;
	size_t n = h->nbatch;
	struct room_event *evs[HUB_BATCH_MAX];
	memcpy(evs, h->batch, n * sizeof evs[0]);
	h->nbatch = 0;
	h->batch_room = NULL;
	dispatch_events(r, evs, n);
	for (size_t i = 0; i < n; i++)
		room_event_release(evs[i]);
}

/* A message of room r from the subscription connection: kept for batch_flush when it is a
 * plain event (several of one room that come in one read go to each stream in one write),
 * dispatched at once otherwise (a control event, or one that does not parse: the steps
 * after it depend on its having gone out). */
static void batch_message(struct hub *h, struct hub_room *r, const char *msg, size_t len)
{
	if (h->batch_room != r)
		batch_flush(h);
	struct room_event *ev = room_event_from_message(msg, len);
	if (!ev || ev->ctl != ROOM_CTL_NONE) {
		batch_flush(h);
		dispatch(r, msg, len, ev);
		return;
	}
	h->batch_room = r;
	h->batch[h->nbatch++] = ev;
	if (h->nbatch == HUB_BATCH_MAX)
		batch_flush(h);
}

/* The room's channel is confirmed at its node: held streams start their catch-up. */
static void room_subscribed(struct hub_room *r)
{
	struct hub *h = r->hub;
	/* events before this were not seen here: streams whose check was answered before
	 * may have missed a change (hub.h) */
	rights_changed(h);
	if (r->check_on_subscribe) {
		r->check_on_subscribe = 0;
		rights_check(r, 0);
	}
	if (r->lost) {
		/* our presence records may have lapsed while the room's node was away */
		r->lost = 0;
		if (r->users)
			presence_call(h, r, "refresh", NULL, NULL);
	}
	struct hub_sub *next;
	for (struct hub_sub *s = r->subs; s; s = next) {
		next = s->next;
		if (s->state == HUB_SUB_WAIT)
			sub_catchup(s);
	}
	if (r->nsubs == 0)
		room_linger_arm(h, r);
}

/* The room's subscription is gone (its node went down, or the server unsubscribed it because
 * its slot moved): every stream keeps its cursor and waits; held events are read again from
 * the history once the channel is back, at whichever node serves it then. */
static void room_lost(struct hub_room *r)
{
	r->ch.link = RL_IDLE;
	r->ch.node = NULL;
	r->check_on_subscribe = 1; /* rights may have changed meanwhile */
	r->lost = 1;
	for (struct hub_sub *s = r->subs; s; s = s->next) {
		room_cursor_clear(&s->cur);
		s->state = HUB_SUB_WAIT;
		s->paused = 0;
		s->catchup_seq++; /* a read in flight answers for the lost subscription */
	}
}

int hub_join(struct hub *h, struct hub_sub *s, const char *room_id, const struct room_evid *start)
{
	struct hub_room *r = room_get(h, room_id);
	if (!r)
		return -1;
	evtimer_del(r->linger);
	s->room = r;
	s->prev = NULL;
	s->next = r->subs;
	if (r->subs)
		r->subs->prev = s;
	r->subs = s;
	r->nsubs++;
	struct room_evid zero = {0, 0};
	room_cursor_init(&s->cur, start ? *start : zero, h->cfg.max_held);
	s->pinned = start != NULL;
	catchup_checks_reset(s);
	s->state = HUB_SUB_WAIT;
	s->paused = 0;
	if (s->presence)
		user_add(r, s);
	if (r->ch.link != RL_SUBSCRIBED)
		r->check_on_subscribe = 1;
	else if (s->rights_seq != h->rights_seq)
		/* a change came while its own check was under way: only this stream may have
		 * missed it (the change's own re-check covered every stream joined before) */
		rights_check_some(r, 0, s);
	if (r->ch.link == RL_IDLE)
		chan_subscribe(h, &r->ch);
	else if (r->ch.link == RL_SUBSCRIBED)
		sub_catchup(s);
	return 0;
}

void hub_leave(struct hub *h, struct hub_sub *s)
{
	struct hub_room *r = s->room;
	if (!r)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else
		r->subs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	r->nsubs--;
	room_cursor_clear(&s->cur);
	s->state = HUB_SUB_OUT;
	s->room = NULL;
	s->catchup_seq++; /* a read in flight is for the stream that left */
	if (s->presence)
		user_remove(r, s);
	if (r->nsubs == 0)
		room_linger_arm(h, r);
}

/* ---- nodes and channels ----
 * The slot map says which node serves each slot: from CLUSTER SLOTS in a cluster, one node
 * for every slot on a single server. Each node gets, on demand, a command context (hiredis
 * async) and a subscription connection (rsub.h); a channel (a room's, cc:access) is
 * SSUBSCRIBEd at the node serving its slot. When a node goes down, or the server pushes a
 * sunsubscribe (the slot moved), the channels there go back to RL_IDLE, their streams wait
 * with their cursors, and the map is refreshed (with back-off) until each is subscribed again
 * at its current owner; the subscription's confirmation starts each stream's catch-up from
 * the history after its last event, so nothing is lost or doubled. */

static struct hub_chan *chan_find(struct hub *h, const char *name, size_t len,
				  struct hub_room **room)
{
	char buf[sizeof h->access.name], id[ROOM_ID_MAX + 1];
	*room = NULL;
	if (len >= sizeof buf || memchr(name, '\0', len))
		return NULL;
	memcpy(buf, name, len);
	buf[len] = '\0';
	if (strcmp(buf, h->access.name) == 0)
		return &h->access;
	if (rkey_match1(RK_ROOM_CHANNEL, buf, id, sizeof id) < 0)
		return NULL;
	*room = room_find(h, id);
	return *room ? &(*room)->ch : NULL;
}

static void chan_subscribe(struct hub *h, struct hub_chan *c)
{
	if (c->link != RL_IDLE || h->shutting_down)
		return;
	struct hub_node *n = route(h, c->name);
	if (!n) {
		want_refresh(h);
		return;
	}
	if (!n->sub_ready || !n->cmd_ready) {
		/* a confirmed channel starts catch-ups and rights checks at once: both connections
		 * first (whichever comes up last places every channel waiting) */
		node_ensure(n);
		return;
	}
	c->node = n;
	c->link = RL_SUBSCRIBING;
	if (rsub_ssubscribe(n->sub, c->name) < 0) {
		c->link = RL_IDLE;
		c->node = NULL;
		want_refresh(h);
	}
}

/* A channel's subscription went away on its own: resubscribe wherever it lives now. */
static void chan_lost(struct hub *h, struct hub_chan *c, struct hub_room *r)
{
	if (r)
		room_lost(r);
	c->link = RL_IDLE;
	c->node = NULL;
	if (r && r->nsubs == 0) {
		evtimer_del(r->linger);
		room_free(r);
		return;
	}
	chan_subscribe(h, c);
}

static void access_subscribed(struct hub *h)
{
	/* sign-outs and password changes published while we were not listening reached nobody
	 * here: every room is checked again */
	rights_changed(h);
	rights_check_all(h);
}

static void sub_up(void *arg, struct rsub *c)
{
	struct hub_node *n = arg;
	batch_flush(n->hub);
	n->sub_ready = 1;
	n->sub_ping_pending = 0;
	place_all(n->hub);
}

/* A channel no longer subscribed anywhere: subscribed again while its room has clients, or
 * its room freed (r NULL: the access channel, whose caller decides). */
static void chan_idle(struct hub *h, struct hub_chan *ch, struct hub_room *r)
{
	ch->link = RL_IDLE;
	ch->node = NULL;
	if (r && r->nsubs > 0)
		chan_subscribe(h, ch);
	else if (r)
		room_free(r);
}

/* SSUBSCRIBE of ch refused at n (err: the error text).
 * MOVED: the slot is served by the node named (a failover or a finished move the map has
 * not caught up with): subscribed there at once.
 * ASK: Redis 7 never answers it to SSUBSCRIBE. A migrating slot's source serves the slot's
 * channels until the slot is handed over, then unsubscribes their subscribers, and nothing
 * is published at the importing node before it owns the slot (docs/INTERNALS.md, "A slot
 * migrated live"). A server that answers ASK anyway is asked again after the map refresh,
 * never the importing node with ASKING: a subscription there would not see what is still
 * published at the source, and would outlive the hand-over, so nothing would catch those
 * events up. Waiting loses nothing: the confirmation catches every stream up.
 * Anything else (CLUSTERDOWN, TRYAGAIN, ...): asked again after the map refresh. A room left
 * meanwhile goes with its linger. */
static void chan_refused(struct hub *h, struct hub_node *n, struct hub_chan *ch,
			 struct hub_room *r, const char *err, size_t len)
{
	int ask = 0;
	unsigned slot;
	struct rslot_node to;
	struct hub_node *t = NULL;
	ch->link = RL_IDLE;
	ch->node = NULL;
	int redirect = rslot_redirect(err, len, &ask, &slot, &to) &&
		       slot == rslot_of(ch->name, strlen(ch->name));
	if (redirect && !ask && to.host[0])
		t = node_get(h, to.host, to.port);
	if (t && t != n) {
		slot_moved(h, slot, t);
		if (!r || r->nsubs > 0)
			chan_subscribe(h, ch);
		return;
	}
	want_refresh(h);
	if (redirect && ask)
		log_info("redis: %s:%d answers ASK to SSUBSCRIBE %s (slot %u being migrated); "
			 "asking the slot's owner again after a map refresh",
			 n->host, n->port, ch->name, slot);
	else
		log_warn("redis: SSUBSCRIBE %s at %s:%d: %.*s", ch->name, n->host, n->port,
			 (int)len, err);
}

static int sub_event(void *arg, struct rsub *c, const struct rsub_event *ev)
{
	struct hub_node *n = arg;
	struct hub *h = n->hub;
	struct hub_room *r = NULL;
	struct hub_chan *ch = NULL;
	if (ev->kind == RSUB_PONG) {
		n->sub_ping_pending = 0;
		return 0;
	}
	/* anything but one more event of the room gathered so far: those go out first */
	if (h->nbatch) {
		struct hub_chan *bch = ev->kind == RSUB_MESSAGE && ev->channel
					       ? chan_find(h, ev->channel, ev->channel_len, &r)
					       : NULL;
		if (!bch || !r || r != h->batch_room || bch->node != n)
			batch_flush(h);
		r = NULL;
	}
	if (ev->channel)
		ch = chan_find(h, ev->channel, ev->channel_len, &r);
	if (!ch || ch->node != n)
		return 0; /* a channel we no longer want here (left, or moved on) */
	switch (ev->kind) {
	case RSUB_MESSAGE:
		if (ch->link != RL_SUBSCRIBED)
			break;
		if (r)
			batch_message(h, r, ev->data, ev->len);
		else
			access_message(h, ev->data, ev->len);
		break;
	case RSUB_SUBSCRIBED:
		if (ch->link != RL_SUBSCRIBING)
			break;
		ch->link = RL_SUBSCRIBED;
		if (r)
			room_subscribed(r);
		else
			access_subscribed(h);
		break;
	case RSUB_UNSUBSCRIBED:
		if (ch->link != RL_UNSUBSCRIBING)
			break;
		chan_idle(h, ch, r);
		break;
	case RSUB_PUSHED_OUT:
		/* the slot moved to another node (CLUSTER SETSLOT, a failover seen by this one) */
		if (ch->link == RL_UNSUBSCRIBING) {
			chan_idle(h, ch, r);
			break;
		}
		if (ch->link != RL_SUBSCRIBED)
			break;
		log_info("redis: %s:%d unsubscribed %s (its slot moved); following it", n->host,
			 n->port, ch->name);
		want_refresh(h);
		chan_lost(h, ch, r);
		break;
	case RSUB_ERROR:
		if (ev->cmd == RSUB_CMD_SSUB && ch->link == RL_SUBSCRIBING)
			chan_refused(h, n, ch, r, ev->data, ev->len);
		else if (ev->cmd == RSUB_CMD_SUNSUB && ch->link == RL_UNSUBSCRIBING)
			chan_idle(h, ch, r);
		break;
	case RSUB_OK:
	case RSUB_PONG:
		break;
	}
	return 0;
}

static void reaper_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hub *h = arg;
	while (h->dead) {
		struct dead_sub *d = h->dead;
		h->dead = d->next;
		rsub_free(d->c);
		free(d);
	}
}

/* A subscription connection that is no longer used: freed from the event loop, never inside
 * its own callbacks (docs/CONVENTIONS.md §2.4). */
static void sub_retire(struct hub *h, struct rsub *c)
{
	struct dead_sub *d = malloc(sizeof *d);
	if (!d) {
		/* cannot defer: its callbacks are off (rsub_down has run, or we are not inside
		 * them when node_down closes a live one from a timer or a hiredis callback) */
		log_warn("redis: out of memory retiring a connection");
		return; /* leaked rather than freed under a running callback */
	}
	d->c = c;
	d->next = h->dead;
	h->dead = d;
	struct timeval tv = {0, 0};
	if (evtimer_add(h->reaper, &tv) < 0) /* freed at the next retirement's turn, or hub_free */
		log_warn("redis: out of memory arming the reaper of a connection");
}

static void sub_down(void *arg, struct rsub *c, const char *why)
{
	struct hub_node *n = arg;
	/* the events read before the break are good: they go out before the streams wait */
	batch_flush(n->hub);
	if (n->sub != c)
		return;
	node_down(n, why);
}

static void sub_drained(void *arg, struct rsub *c)
{
	struct hub_node *n = arg;
	(void)c;
	batch_flush(n->hub);
}

static const struct rsub_ops sub_ops = {sub_up, sub_event, sub_down, sub_drained};

/* Every channel at n goes back to waiting. */
static void chans_lost_on(struct hub *h, struct hub_node *n)
{
	if (h->access.node == n) {
		h->access.link = RL_IDLE;
		h->access.node = NULL;
	}
	for (int b = 0; b < HUB_BUCKETS; b++) {
		struct hub_room *next;
		for (struct hub_room *r = h->buckets[b]; r; r = next) {
			next = r->hnext;
			if (r->ch.node != n)
				continue;
			if (r->nsubs == 0) {
				room_free(r);
				continue;
			}
			room_lost(r);
		}
	}
}

/* Both connections of n are closed (whatever is left of them); its channels wait for the
 * map's next refresh. Safe to call again and from inside any callback. */
static void node_down(struct hub_node *n, const char *why)
{
	struct hub *h = n->hub;
	redisAsyncContext *ac = n->cmd;
	struct rsub *c = n->sub;
	int attempt = n->attempt;
	n->attempt = 0;
	node_lookup_drop(n, 1);
	/* the next attempt resolves the name again: a failover may have moved it */
	n->resolved = 0;
	if (!ac && !c && !attempt)
		return;
	int was_ready = n->cmd_ready && n->sub_ready;
	n->cmd = NULL;
	n->cmd_ready = 0;
	n->ping_pending = 0;
	n->sub = NULL;
	n->sub_ready = 0;
	n->sub_ping_pending = 0;
	evtimer_del(n->conn_timeout);
	if (!h->shutting_down && (was_ready || !n->quiet)) {
		if (was_ready)
			log_warn("redis: %s:%d lost (%s); clients are kept and will be caught up",
				 n->socket[0] ? n->socket : n->host, n->port, why);
		else
			log_warn("redis: %s:%d: %s (trying again)", n->socket[0] ? n->socket : n->host,
				 n->port, why);
		n->quiet = 1;
		h->up_logged = 0;
	}
	if (c)
		sub_retire(h, c);
	chans_lost_on(h, n);
	/* pending commands are answered NULL from here: they find n down already */
	if (ac)
		redisAsyncFree(ac);
	want_refresh(h);
}

/* The command context ac of n is being freed by hiredis (a NULL reply, a failed connect, a
 * disconnect): it must not be freed again. */
static void cmd_gone(struct hub_node *n, const redisAsyncContext *ac)
{
	if (!n || n->cmd != ac)
		return;
	n->cmd = NULL;
	n->cmd_ready = 0;
	node_down(n, ac->errstr[0] ? ac->errstr : "connection lost");
}

static void log_up(struct hub *h)
{
	for (int i = 0; i < h->nnodes; i++) {
		struct hub_node *n = h->nodes[i];
		int owns = 0;
		for (int s = 0; s < RSLOT_COUNT && !owns; s++)
			owns = h->owner[s] == n;
		if (owns && !(n->cmd_ready && n->sub_ready))
			return;
	}
	if (!h->up_logged && h->map_known) {
		h->up_logged = 1;
		log_info("redis: connected");
	}
}

static void slots_cb(redisAsyncContext *ac, void *reply, void *priv);

static void send_cluster_slots(struct hub *h)
{
	if (h->slots_inflight)
		return;
	for (int i = 0; i < h->nnodes; i++) {
		struct hub_node *n = h->nodes[i];
		if (n->cmd_ready &&
		    redisAsyncCommand(n->cmd, slots_cb, NULL, "CLUSTER SLOTS") == REDIS_OK) {
			h->slots_inflight = 1;
			h->slots_wanted = 0;
			return;
		}
	}
	/* nobody to ask yet: every known node is tried, the first to answer is asked */
	h->slots_wanted = 1;
	for (int i = 0; i < h->nnodes; i++)
		node_ensure(h->nodes[i]);
}

static void ping_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct hub_node *n = ac->data;
	redisReply *rep = reply;
	if (!rep) {
		cmd_gone(n, ac);
		return;
	}
	if (n->cmd != ac)
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		char why[160];
		snprintf(why, sizeof why, "%.150s", rep->str);
		node_down(n, why);
		return;
	}
	struct hub *h = n->hub;
	n->cmd_ready = 1;
	n->ping_pending = 0;
	n->quiet = 0;
	evtimer_del(n->conn_timeout);
	if (n->was_up)
		metric_inc(&broker_metrics[BM_REDIS_RECONNECTS], 0, 0);
	n->was_up = 1;
	if (h->cluster && (h->slots_wanted || !h->map_known))
		send_cluster_slots(h);
	place_all(h);
}

static void alive_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct hub_node *n = ac->data;
	if (!reply) {
		cmd_gone(n, ac);
		return;
	}
	if (n->cmd == ac)
		n->ping_pending = 0;
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
	if (status != REDIS_OK)
		cmd_gone(ac->data, ac); /* hiredis frees it after this callback */
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
	cmd_gone(ac->data, ac);
}

static void node_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hub_node *n = arg;
	char why[320];
	if (n->lookup)
		snprintf(why, sizeof why, "the name %s was not resolved within %ld ms", n->host,
			 n->hub->cfg.connect_timeout_ms);
	else
		snprintf(why, sizeof why, "no answer within %ld ms", n->hub->cfg.connect_timeout_ms);
	if (!n->cmd_ready || (n->sub && !n->sub_ready))
		node_down(n, why);
}

/* ---- addresses: names resolved without blocking the loop ----
 * A lookup belongs to its callback, which libevent calls exactly once: with the answer, with
 * EVUTIL_EAI_CANCEL some time after evdns_getaddrinfo_cancel (from the loop, not inside the
 * cancel), or with a failure when the resolver is freed. A node that gives its lookup up
 * (node_lookup_drop: the node went down, timed out, or the hub stops) only cuts the link, so
 * the callback, whenever it comes, finds no node and frees the lookup alone: it touches no
 * node or hub that may be gone. */
struct hub_lookup {
	struct hub_node *n;			/* NULL once given up */
	struct evdns_getaddrinfo_request *req;	/* NULL while it cannot be cancelled */
	int inside;				/* the callback runs inside evdns_getaddrinfo */
	int err;				/* its result then */
};

/* Gives up n's lookup, if any; cancel: ask the resolver to drop it (not when the resolver is
 * being freed: that fails it, hub_free). */
static void node_lookup_drop(struct hub_node *n, int cancel)
{
	struct hub_lookup *lk = n->lookup;
	if (!lk)
		return;
	n->lookup = NULL;
	lk->n = NULL;
	struct evdns_getaddrinfo_request *req = lk->req;
	lk->req = NULL;
	if (req && cancel)
		evdns_getaddrinfo_cancel(req);
}

/* The address of res for this attempt: IPv4 first, as hiredis's own connect prefers it. */
static int node_take_addr(struct hub_node *n, const struct evutil_addrinfo *res)
{
	static const int families[] = {AF_INET, AF_INET6};
	for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
		for (const struct evutil_addrinfo *ai = res; ai; ai = ai->ai_next) {
			if (ai->ai_family != families[f] || !ai->ai_addr ||
			    ai->ai_addrlen > sizeof n->sa)
				continue;
			const void *a = ai->ai_family == AF_INET
						? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
						: (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
			if (!inet_ntop(ai->ai_family, a, n->addr, sizeof n->addr))
				continue;
			memcpy(&n->sa, ai->ai_addr, ai->ai_addrlen);
			n->salen = (socklen_t)ai->ai_addrlen;
			n->resolved = 1;
			return 0;
		}
	}
	return -1;
}

static void dns_log(int is_warning, const char *msg)
{
	if (is_warning)
		log_warn("dns: %s", msg);
}

/* The resolver, made at the first name to resolve, in the process that uses it (the hub is
 * made after the broker's processes fork: each has its own, on its own loop). It reads
 * /etc/resolv.conf (nameservers, search, options timeout and attempts) and /etc/hosts once.
 * Without a usable resolv.conf (missing, unreadable, no nameserver) it answers from
 * /etc/hosts alone, and other names fail at once (node_resolve). */
static int dns_open(struct hub *h)
{
	if (h->dns)
		return 0;
	evdns_set_log_fn(dns_log);
	h->dns = evdns_base_new(h->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
						 EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (h->dns)
		return 0;
	h->dns = evdns_base_new(h->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (h->dns && evdns_base_load_hosts(h->dns, "/etc/hosts") != 0) {
		evdns_base_free(h->dns, 0);
		h->dns = NULL;
	}
	if (!h->dns_warned) {
		h->dns_warned = 1;
		if (h->dns)
			log_warn("redis: /etc/resolv.conf is missing, unreadable or names no "
				 "nameserver: Redis host names are looked up in /etc/hosts only");
		else
			log_warn("redis: no resolver (neither /etc/resolv.conf nor /etc/hosts can be "
				 "used): Redis host names cannot be resolved; numeric addresses and "
				 "unix sockets are used as they are");
	}
	return h->dns ? 0 : -1;
}

static void node_ensure(struct hub_node *n);

static void lookup_cb(int err, struct evutil_addrinfo *res, void *arg)
{
	struct hub_lookup *lk = arg;
	struct hub_node *n = lk->n;
	lk->req = NULL; /* answered: nothing left to cancel */
	if (n && !err && node_take_addr(n, res) < 0)
		err = EVUTIL_EAI_NODATA; /* no address we can connect to */
	if (res)
		evutil_freeaddrinfo(res);
	if (lk->inside) {
		lk->err = err; /* node_resolve goes on with it */
		return;
	}
	if (n) {
		if (err) {
			char why[400];
			snprintf(why, sizeof why, "cannot resolve %s: %s", n->host,
				 evutil_gai_strerror(err));
			node_down(n, why); /* drops the lookup (lk->n = NULL) */
		} else {
			n->lookup = NULL;
			lk->n = NULL;
			node_ensure(n);
		}
	}
	free(lk);
}

/* Makes n's address for this attempt ready. 0: ready (a socket, a numeric host, or a name in
 * /etc/hosts); 1: a lookup is under way, whose answer calls node_ensure again (or node_down);
 * -1: none (why says why). Nothing here waits. */
static int node_resolve(struct hub_node *n, char *why, size_t whylen)
{
	struct hub *h = n->hub;
	if (n->resolved)
		return 0;
	if (n->socket[0]) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&n->sa;
		size_t len = strlen(n->socket);
		if (len >= sizeof sun->sun_path) {
			snprintf(why, whylen, "socket path too long");
			return -1;
		}
		memset(sun, 0, sizeof *sun);
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, n->socket, len + 1);
		n->salen = sizeof *sun;
		n->resolved = 1;
		return 0;
	}
	char port[16];
	snprintf(port, sizeof port, "%d", n->port);
	/* a numeric host is parsed, never looked up (AI_NUMERICHOST): no resolver involved */
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	if (getaddrinfo(n->host, port, &hints, &ai) == 0 && ai && ai->ai_addrlen <= sizeof n->sa) {
		memcpy(&n->sa, ai->ai_addr, ai->ai_addrlen);
		n->salen = ai->ai_addrlen;
		snprintf(n->addr, sizeof n->addr, "%s", n->host);
		freeaddrinfo(ai);
		n->resolved = 1;
		return 0;
	}
	if (ai)
		freeaddrinfo(ai);
	if (dns_open(h) < 0) {
		snprintf(why, whylen, "cannot resolve %s: no resolver", n->host);
		return -1;
	}
	struct hub_lookup *lk = calloc(1, sizeof *lk);
	if (!lk) {
		snprintf(why, whylen, "cannot resolve %s: out of memory", n->host);
		return -1;
	}
	struct evutil_addrinfo eh = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				     .ai_protocol = IPPROTO_TCP, .ai_flags = EVUTIL_AI_NUMERICSERV};
	lk->n = n;
	lk->inside = 1;
	n->lookup = lk;
	struct evdns_getaddrinfo_request *req =
		evdns_getaddrinfo(h->dns, n->host, port, &eh, lookup_cb, lk);
	if (!req) {
		/* answered inside the call (/etc/hosts, or an error at once): lookup_cb left
		 * its result in lk and n */
		int err = lk->err;
		n->lookup = NULL;
		free(lk);
		if (!err && n->resolved)
			return 0;
		snprintf(why, whylen, "cannot resolve %s: %s", n->host,
			 evutil_gai_strerror(err ? err : EVUTIL_EAI_FAIL));
		return -1;
	}
	lk->inside = 0;
	lk->req = req;
	if (evdns_base_count_nameservers(h->dns) == 0) {
		/* not in /etc/hosts, and nobody to ask: a request would wait for a nameserver
		 * forever */
		node_lookup_drop(n, 1);
		snprintf(why, whylen, "cannot resolve %s: not in /etc/hosts, and no nameserver "
			 "(/etc/resolv.conf)", n->host);
		return -1;
	}
	return 1;
}

static int cmd_open(struct hub_node *n)
{
	struct hub *h = n->hub;
	const struct rds_target *t = &h->cfg.redis;
	/* n->addr is numeric: hiredis's own getaddrinfo only parses it */
	redisAsyncContext *ac = n->socket[0] ? redisAsyncConnectUnix(n->socket)
					     : redisAsyncConnect(n->addr, n->port);
	if (!ac)
		return -1;
	if (ac->err) {
		log_warn("redis: %s", ac->errstr);
		redisAsyncFree(ac);
		return -1;
	}
	ac->data = n;
	if (redisLibeventAttach(ac, h->base) != REDIS_OK) {
		redisAsyncFree(ac);
		return -1;
	}
	redisAsyncSetConnectCallback(ac, connect_cb);
	redisAsyncSetDisconnectCallback(ac, disconnect_cb);
	n->cmd = ac;
	/* queued now, written once connected; a failed AUTH shows as an error to PING */
	if (t->password[0])
		redisAsyncCommand(ac, NULL, NULL, "AUTH %s", t->password);
	if (!h->cluster && t->db)
		redisAsyncCommand(ac, NULL, NULL, "SELECT %d", t->db);
	redisAsyncCommand(ac, ping_cb, NULL, "PING");
	return 0;
}

/* Opens what n lacks (the command context, the subscription connection), once its address
 * is known (node_resolve). */
static void node_ensure(struct hub_node *n)
{
	struct hub *h = n->hub;
	if (h->shutting_down || (n->cmd && n->sub) || n->lookup)
		return; /* a lookup under way comes back here with its answer */
	if (!n->attempt) {
		/* one timeout for the attempt: resolving the name and both connects */
		struct timeval tv = {h->cfg.connect_timeout_ms / 1000,
				     (h->cfg.connect_timeout_ms % 1000) * 1000};
		n->attempt = 1;
		if (evtimer_add(n->conn_timeout, &tv) < 0)
			log_warn("redis %s:%d: out of memory; this connect has no timeout of its own",
				 n->host, n->port);
	}
	char why[400];
	int rc = node_resolve(n, why, sizeof why);
	if (rc > 0)
		return;
	if (rc < 0) {
		node_down(n, why);
		return;
	}
	if (!n->cmd && cmd_open(n) < 0) {
		node_down(n, "cannot connect");
		return;
	}
	if (!n->sub) {
		n->sub = rsub_open(h->base, (const struct sockaddr *)&n->sa, (int)n->salen,
				   h->cfg.redis.password, h->cfg.connect_timeout_ms, &sub_ops, n);
		if (!n->sub) {
			node_down(n, "cannot connect");
			return;
		}
	}
}

static struct hub_node *node_new(struct hub *h, const char *host, int port, const char *socket)
{
	if (h->nnodes >= HUB_NODES_MAX)
		return NULL;
	struct hub_node **v = realloc(h->nodes, (size_t)(h->nnodes + 1) * sizeof *v);
	if (!v)
		return NULL;
	h->nodes = v;
	struct hub_node *n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	n->hub = h;
	snprintf(n->host, sizeof n->host, "%s", host);
	n->port = port;
	snprintf(n->socket, sizeof n->socket, "%s", socket ? socket : "");
	n->conn_timeout = evtimer_new(h->base, node_timeout_cb, n);
	if (!n->conn_timeout) {
		free(n);
		return NULL;
	}
	h->nodes[h->nnodes++] = n;
	return n;
}

static struct hub_node *node_get(struct hub *h, const char *host, int port)
{
	for (int i = 0; i < h->nnodes; i++)
		if (h->nodes[i]->port == port && strcmp(h->nodes[i]->host, host) == 0)
			return h->nodes[i];
	return node_new(h, host, port, NULL);
}

static void slots_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct hub_node *n = ac->data;
	struct hub *h = n->hub;
	redisReply *rep = reply;
	h->slots_inflight = 0;
	if (!rep) {
		cmd_gone(n, ac);
		return;
	}
	struct rslot_map *m = malloc(sizeof *m);
	char err[160];
	if (!m) {
		want_refresh(h);
		return;
	}
	if (rep->type == REDIS_REPLY_ERROR ||
	    rslot_map_parse(m, rep, n->host, err, sizeof err) < 0) {
		log_warn("redis: CLUSTER SLOTS at %s:%d: %s", n->host, n->port,
			 rep->type == REDIS_REPLY_ERROR ? rep->str : err);
		free(m);
		want_refresh(h);
		return;
	}
	struct hub_node **byidx = calloc((size_t)(m->nnodes ? m->nnodes : 1), sizeof *byidx);
	if (byidx) {
		for (int i = 0; i < m->nnodes; i++)
			byidx[i] = node_get(h, m->nodes[i].host, m->nodes[i].port);
		for (int s = 0; s < RSLOT_COUNT; s++)
			h->owner[s] = m->owner[s] >= 0 ? byidx[m->owner[s]] : NULL;
		h->map_known = 1;
	}
	free(byidx);
	if (m->covered < RSLOT_COUNT)
		log_warn("redis: the cluster serves %d of %d slots", m->covered, RSLOT_COUNT);
	rslot_map_free(m);
	free(m);
	place_all(h);
}

/* Subscribes every channel that waits, at its node; connects the nodes that serve slots.
 * Anything left waiting (no node known or up for it yet) keeps the refresh going. */
static void place_all(struct hub *h)
{
	if (h->shutting_down)
		return;
	if (!h->map_known) {
		want_refresh(h);
		return;
	}
	int waiting = 0;
	chan_subscribe(h, &h->access);
	waiting |= h->access.link == RL_IDLE;
	for (int b = 0; b < HUB_BUCKETS; b++) {
		for (struct hub_room *r = h->buckets[b]; r; r = r->hnext) {
			if (r->nsubs == 0)
				continue;
			chan_subscribe(h, &r->ch);
			waiting |= r->ch.link == RL_IDLE;
		}
	}
	/* every node that serves a slot is kept connected (commands go there) */
	for (int i = 0; i < h->nnodes; i++) {
		struct hub_node *n = h->nodes[i];
		int owns = 0;
		for (int s = 0; s < RSLOT_COUNT && !owns; s++)
			owns = h->owner[s] == n;
		if (!owns)
			continue;
		node_ensure(n);
		waiting |= !(n->cmd_ready && n->sub_ready);
	}
	if (waiting) {
		want_refresh(h);
	} else {
		backoff_reset(&h->backoff);
		log_up(h);
	}
}

static void want_refresh(struct hub *h)
{
	if (h->shutting_down || evtimer_pending(h->refresh, NULL))
		return;
	long delay = backoff_next(&h->backoff);
	struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
	if (evtimer_add(h->refresh, &tv) < 0) /* the next want_refresh tries again */
		log_warn("redis: out of memory arming the slot map's refresh");
}

static void refresh_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hub *h = arg;
	if (h->cluster)
		send_cluster_slots(h); /* its answer places the channels */
	place_all(h);
}

static void beat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hub *h = arg;
	/* A Redis that stopped answering without closing (a half-open link, a frozen host)
	 * is given two heartbeats; then it is treated as gone and reconnected. */
	for (int i = 0; i < h->nnodes; i++) {
		struct hub_node *n = h->nodes[i];
		if (n->cmd_ready) {
			if (n->ping_pending >= 2) {
				char why[64];
				snprintf(why, sizeof why, "no answer for %ld ms",
					 2 * h->cfg.heartbeat_ms);
				node_down(n, why);
				continue;
			}
			if (n->ping_pending++ == 0)
				redisAsyncCommand(n->cmd, alive_cb, NULL, "PING");
		}
		if (n->sub_ready) {
			if (n->sub_ping_pending >= 2) {
				node_down(n, "no answer on the subscription connection");
				continue;
			}
			if (n->sub_ping_pending++ == 0 && rsub_ping(n->sub) < 0)
				n->sub_ping_pending = 0;
		}
	}
	if (h->cluster)
		send_cluster_slots(h); /* slots move without telling the clients that do not use them */
	for (int b = 0; b < HUB_BUCKETS; b++)
		for (struct hub_room *r = h->buckets[b]; r; r = r->hnext)
			if (r->users)
				presence_call(h, r, "refresh", NULL, NULL);
	/* expire the records of brokers that died, in every room, whoever holds it */
	presence_call(h, NULL, "sweep", NULL, NULL);
}

struct hub *hub_new(struct event_base *base, const struct hub_cfg *cfg)
{
	struct hub *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->base = base;
	h->cfg = *cfg;
	h->cfg.seeds = NULL;
	h->cluster = cfg->nseeds > 0;
	long cap = cfg->backoff_max_ms;
	if (h->cluster && cap > HUB_CLUSTER_BACKOFF_MAX_MS)
		cap = HUB_CLUSTER_BACKOFF_MAX_MS; /* a failover is waited for, not slept through */
	h->backoff = (struct backoff){.first_ms = HUB_BACKOFF_MIN_MS, .max_ms = cap};
	snprintf(h->access.name, sizeof h->access.name, "%s", rkey0(RK_ACCESS_CHANNEL));
	if (rnd_hex(h->broker_id, 8) < 0)
		goto fail;
	h->refresh = evtimer_new(base, refresh_cb, h);
	h->reaper = evtimer_new(base, reaper_cb, h);
	h->beat = event_new(base, -1, EV_PERSIST, beat_cb, h);
	if (!h->refresh || !h->reaper || !h->beat)
		goto fail;
	if (h->cluster) {
		for (int i = 0; i < cfg->nseeds; i++)
			if (!node_get(h, cfg->seeds[i].host, cfg->seeds[i].port))
				goto fail;
	} else {
		const struct rds_target *t = &cfg->redis;
		struct hub_node *n = node_new(h, t->host, t->port, t->socket);
		if (!n)
			goto fail;
		for (int s = 0; s < RSLOT_COUNT; s++)
			h->owner[s] = n; /* a single server: a cluster whose one node has every slot */
		h->map_known = 1;
	}
	struct timeval tv = {cfg->heartbeat_ms / 1000, (cfg->heartbeat_ms % 1000) * 1000};
	if (event_add(h->beat, &tv) < 0)
		goto fail;
	if (h->cluster)
		send_cluster_slots(h);
	else
		place_all(h);
	return h;
fail:
	hub_free(h);
	return NULL;
}

void hub_free(struct hub *h)
{
	if (!h)
		return;
	h->shutting_down = 1;
	/* (batch_flush runs before any read returns; nothing is left here but to be sure) */
	for (size_t i = 0; i < h->nbatch; i++)
		room_event_release(h->batch[i]);
	h->nbatch = 0;
	h->batch_room = NULL;
	if (h->dns) {
		/* lookups still under way (hub_shutdown cancelled those of a broker that stops)
		 * are failed by the resolver's end, not cancelled: the callback of a failed one
		 * does not look at the freed resolver, should the loop run again; it finds its
		 * node given up */
		for (int i = 0; i < h->nnodes; i++)
			node_lookup_drop(h->nodes[i], 0);
		evdns_base_free(h->dns, 1);
		h->dns = NULL;
	}
	for (int i = 0; i < h->nnodes; i++)
		node_down(h->nodes[i], "stopping");
	while (h->retrying)
		script_done(h->retrying, NULL);
	while (h->rights_waiting)
		rights_req_free(h->rights_waiting);
	for (int b = 0; b < HUB_BUCKETS; b++)
		while (h->buckets[b])
			room_free(h->buckets[b]);
	if (h->reaper)
		reaper_cb(-1, 0, h);
	for (int i = 0; i < h->nnodes; i++) {
		event_free(h->nodes[i]->conn_timeout);
		free(h->nodes[i]);
	}
	free(h->nodes);
	if (h->refresh)
		event_free(h->refresh);
	if (h->reaper)
		event_free(h->reaper);
	if (h->beat)
		event_free(h->beat);
	if (h->shutdown_timer)
		event_free(h->shutdown_timer);
	free(h);
}

int hub_redis_up(const struct hub *h)
{
	if (!h->map_known)
		return 0;
	for (int i = 0; i < h->nnodes; i++) {
		const struct hub_node *n = h->nodes[i];
		if (n->cmd_ready && n->sub_ready)
			continue;
		for (int s = 0; s < RSLOT_COUNT; s++)
			if (h->owner[s] == n)
				return 0;
	}
	return 1;
}

/* ---- one-off commands ---- */

struct check_req {
	struct hub_sub *s;
	void (*cb)(struct hub_sub *s, int ok, enum rights_verdict v);
};

static void check_cb(struct hub *h, redisReply *rep, void *priv)
{
	struct check_req *q = priv;
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 1 ||
	    rep->element[0]->type != REDIS_REPLY_STRING) {
		if (rep && rep->type == REDIS_REPLY_ERROR)
			log_warn("rights check: %s", rep->str);
		q->cb(q->s, 0, RIGHTS_UNKNOWN);
	} else {
		enum rights_verdict v = rights_verdict_of(rep->element[0]->str, rep->element[0]->len);
		q->cb(q->s, v != RIGHTS_UNKNOWN, v);
	}
	q->s->ops->release(q->s);
	free(q);
}

int hub_check(struct hub *h, const char *room_id, struct hub_sub *s,
	      void (*cb)(struct hub_sub *s, int ok, enum rights_verdict v))
{
	struct rights_subject subj;
	struct rights_cmd cmd = {0};
	struct check_req *q = malloc(sizeof *q);
	int rc = -1;
	sub_subject(s, &subj);
	if (!q || rights_cmd_build(&cmd, room_id, &subj, 1) < 0)
		goto out;
	q->s = s;
	q->cb = cb;
	s->rights_seq = h->rights_seq;
	s->ops->reserve(s);
	if (rights_ask(h, check_cb, q, &cmd, &subj) != REDIS_OK) {
		s->ops->release(s);
		goto out;
	}
	q = NULL; /* check_cb frees it */
	rc = 0;
out:
	rights_cmd_free(&cmd);
	free(q);
	return rc;
}

static void presence_emit_cb(struct hub *h, redisReply *rep, void *priv)
{
	long retry_ms;
	if (rep && rep->type == REDIS_REPLY_ERROR)
		log_warn("presence: %s", rep->str);
	else if (rep && events_presence_reply(rep, &retry_ms) == EVENTS_PRESENCE_ERROR)
		log_warn("presence: an unexpected answer");
	/* EVENTS_PRESENCE_LIMITED: over the user's budget in the room, dropped (docs/API.md:
	 * the client's next move carries its position); EVENTS_PRESENCE_GONE: the room was
	 * deleted, its streams are ending */
}

int hub_presence(struct hub *h, const char *room_id, long long user_id, const char *data_json)
{
	struct events_presence_args a;
	if (events_presence_args(&a, room_id, user_id, data_json, h->cfg.presence_limit) < 0)
		return -1;
	const char *argv[] = {NULL, NULL, "3", a.argv[0], a.argv[1], a.argv[2], a.argv[3],
			      a.argv[4], a.argv[5], a.argv[6]};
	return hub_script(h, presence_emit_cb, NULL, &rs_presence_emit, 10, argv) == REDIS_OK ? 0
												 : -1;
}

static void shutdown_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hub *h = arg;
	if (h->shutdown_done) {
		void (*done)(void *) = h->shutdown_done;
		h->shutdown_done = NULL;
		done(h->shutdown_arg);
	}
}

void hub_shutdown(struct hub *h, void (*done)(void *arg), void *arg)
{
	h->shutdown_done = done;
	h->shutdown_arg = arg;
	h->shutting_down = 1;
	h->shutdown_pending = 0;
	/* nothing more is connected: a lookup under way is cancelled now, while the loop still
	 * runs to take its callback (the broker runs it a moment after done) */
	for (int i = 0; i < h->nnodes; i++)
		node_lookup_drop(h->nodes[i], 1);
	for (int b = 0; b < HUB_BUCKETS; b++)
		for (struct hub_room *r = h->buckets[b]; r; r = r->hnext)
			if (r->users && presence_call(h, r, "close", NULL, h) == 0)
				h->shutdown_pending++;
	if (h->shutdown_pending == 0) {
		h->shutdown_done = NULL;
		done(arg);
		return;
	}
	h->shutdown_timer = evtimer_new(h->base, shutdown_timer_cb, h);
	struct timeval tv = {HUB_SHUTDOWN_WAIT_MS / 1000, (HUB_SHUTDOWN_WAIT_MS % 1000) * 1000};
	if (!h->shutdown_timer || evtimer_add(h->shutdown_timer, &tv) < 0) {
		/* out of memory: no bound on the wait for the presence calls, so none at all */
		log_warn("redis: out of memory; the shutdown does not wait for the leaves");
		h->shutdown_done = NULL;
		done(arg);
	}
}

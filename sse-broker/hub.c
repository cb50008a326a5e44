#include "hub.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "events.h"
#include "backoff.h"
#include "broker_metrics.h"
#include "log.h"
#include "rkeys.h"
#include "rnd.h"
#include "rscript.h"

#define HUB_BUCKETS 1024
#define HUB_PAGE 500		/* XRANGE entries per catch-up round trip */
#define HUB_BACKOFF_MIN_MS 100
#define HUB_SWEEP_ROOMS 100	/* rooms the periodic sweep looks at per heartbeat */
#define HUB_SHUTDOWN_WAIT_MS 1000

enum { HUB_SUB, HUB_CMD }; /* the two contexts */

enum room_link { RL_IDLE, RL_SUBSCRIBING, RL_SUBSCRIBED, RL_UNSUBSCRIBING };

struct hub_user {
	struct hub_user *next;
	long long id;
	char name[TOKEN_USERNAME_MAX + 1];
	int count; /* this broker's presence subscribers of the user in the room */
};

struct hub_room {
	struct hub *hub;
	struct hub_room *hnext;
	char id[ROOM_ID_MAX + 1];
	char channel[ROOM_ID_MAX + 16]; /* RK_ROOM_CHANNEL */
	char key[ROOM_ID_MAX + 24];	/* RK_ROOM_EVENTS */
	enum room_link link;
	struct hub_sub *subs;
	size_t nsubs;
	struct hub_user *users;
	struct event *linger;
	int check_on_subscribe; /* a stream joined before the subscription was confirmed */
};

struct hub {
	struct event_base *base;
	struct hub_cfg cfg;
	redisAsyncContext *ac[2];
	int ready[2];
	int up;
	int was_up; /* connected once: a later link_up is a reconnect */
	struct backoff backoff; /* Redis reconnects (lib/backoff.h) */
	struct event *retry, *conn_timeout, *beat, *shutdown_timer;
	struct hub_room *buckets[HUB_BUCKETS];
	char broker_id[17];
	int shutting_down;
	int ping_pending; /* heartbeats since the liveness PING went unanswered */
	int shutdown_pending;
	unsigned long rights_seq; /* rights triggers seen (hub.h) */
	void (*shutdown_done)(void *);
	void *shutdown_arg;
};



static void hub_connect(struct hub *h);

/* ---- scripts by hash (lib/rscript.h) ----
 * Every script goes out as EVALSHA. When Redis answers NOSCRIPT (its script cache was
 * flushed, or it has never seen this one), the same call is sent again with the text, on
 * the same connection, and the caller's callback gets that answer instead: a caller never
 * sees NOSCRIPT. The arguments are copied so the retry does not depend on the caller's
 * storage. */

struct script_call {
	redisCallbackFn *cb;
	void *priv;
	const struct rscript *s;
	int argc;
	const char **argv;
	size_t *lens;
};

static void script_cb(redisAsyncContext *ac, void *reply, void *p)
{
	struct script_call *sc = p;
	redisReply *rep = reply;
	if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
		sc->argv[0] = "EVAL";
		sc->lens[0] = 4;
		sc->argv[1] = sc->s->text;
		sc->lens[1] = strlen(sc->s->text);
		if (redisAsyncCommandArgv(ac, sc->cb, sc->priv, sc->argc, sc->argv, sc->lens) ==
		    REDIS_OK) {
			free(sc);
			return;
		}
		/* not sent: the caller gets the NOSCRIPT error as its failure */
	}
	if (sc->cb)
		sc->cb(ac, reply, sc->priv);
	free(sc);
}

/* argv[2..argc) are numkeys, the keys and the arguments (argv[0..1] are filled here).
 * REDIS_OK, or REDIS_ERR when nothing was sent (cb is then not called). */
static int hub_script(redisAsyncContext *ac, redisCallbackFn *cb, void *priv,
		      const struct rscript *script, int argc, const char **argv)
{
	size_t bytes = sizeof(struct script_call) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
	for (int i = 2; i < argc; i++)
		bytes += strlen(argv[i]) + 1;
	struct script_call *sc = malloc(bytes);
	if (!sc)
		return REDIS_ERR;
	sc->cb = cb;
	sc->priv = priv;
	sc->s = script;
	sc->argc = argc;
	sc->argv = (const char **)(sc + 1);
	sc->lens = (size_t *)(sc->argv + argc);
	char *text = (char *)(sc->lens + argc);
	sc->argv[0] = "EVALSHA";
	sc->lens[0] = 7;
	sc->argv[1] = script->sha;
	sc->lens[1] = strlen(script->sha);
	for (int i = 2; i < argc; i++) {
		size_t n = strlen(argv[i]);
		memcpy(text, argv[i], n + 1);
		sc->argv[i] = text;
		sc->lens[i] = n;
		text += n + 1;
	}
	if (redisAsyncCommandArgv(ac, script_cb, sc, argc, sc->argv, sc->lens) != REDIS_OK) {
		free(sc);
		return REDIS_ERR;
	}
	return REDIS_OK;
}
static void room_subscribe(struct hub_room *r);
static void sub_catchup(struct hub_sub *s);

/* ---- rooms table ---- */

static unsigned room_hash(const char *id)
{
	unsigned x = 2166136261u; /* FNV-1a */
	for (; *id; id++)
		x = (x ^ (unsigned char)*id) * 16777619u;
	return x % HUB_BUCKETS;
}

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
		free(u);
	}
	event_free(r->linger);
	free(r);
}

static void room_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hub_room *r = arg;
	struct hub *h = r->hub;
	if (r->nsubs > 0)
		return;
	switch (r->link) {
	case RL_IDLE:
		room_free(r);
		break;
	case RL_SUBSCRIBED:
		r->link = RL_UNSUBSCRIBING;
		redisAsyncCommand(h->ac[HUB_SUB], NULL, NULL, "UNSUBSCRIBE %s", r->channel);
		break;
	case RL_SUBSCRIBING: {
		/* wait for the SUBSCRIBE answer before taking it back */
		struct timeval tv = {0, 200 * 1000};
		evtimer_add(r->linger, &tv);
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
	if (rkey1_into(RK_ROOM_CHANNEL, id, r->channel, sizeof r->channel) < 0 ||
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

static void index_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	redisReply *rep = reply;
	if (rep && rep->type == REDIS_REPLY_ERROR)
		log_warn("presence index: %s", rep->str);
}

static void presence_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct hub *h = ac->data;
	struct presence_req *q = priv;
	redisReply *rep = reply;
	if (rep && rep->type == REDIS_REPLY_ERROR)
		log_warn("presence script: %s", rep->str);
	/* the second step, in the index's slot: the room's latest expiry (0: none left). Not
	 * while stopping (the hub may be gone by its answer): an entry left behind is swept
	 * once it is past, and then taken out. */
	if (rep && rep->type == REDIS_REPLY_INTEGER && !q->priv && h->up) {
		char exp[24];
		snprintf(exp, sizeof exp, "%lld", (long long)rep->integer);
		const char *argv[] = {NULL, NULL, "1", rkey0(RK_PRESENCE_ROOMS), q->room, exp};
		if (hub_script(h->ac[HUB_CMD], index_reply_cb, NULL, &rs_presence_index, 6, argv) !=
		    REDIS_OK)
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
	if (!h->up)
		return -1;
	size_t n = 0;
	for (struct hub_user *x = r ? r->users : NULL; x; x = x->next)
		n++;
	size_t argc = 10 + 2 * (u ? 1 : n);
	const char **argv = calloc(argc, sizeof *argv);
	char *ids = calloc(u ? 1 : (n ? n : 1), 24);
	struct presence_req *q = calloc(1, sizeof *q);
	char ttl[24], max[16];
	struct rkey ck = rkey1(RK_ROOM_CONNS, room_id), ek = rkey1(RK_ROOM_EVENTS, room_id),
		    chk = rkey1(RK_ROOM_CHANNEL, room_id);
	int rc = -1;
	if (!argv || !ids || !q || !rkey_ok(&ck) || !rkey_ok(&ek) || !rkey_ok(&chk))
		goto out;
	q->priv = priv;
	snprintf(q->room, sizeof q->room, "%s", room_id);
	snprintf(ttl, sizeof ttl, "%ld", h->cfg.presence_ttl_ms);
	snprintf(max, sizeof max, "%d", EVENTS_HISTORY_MAX);
	argv[2] = "3";
	argv[3] = ck.s;
	argv[4] = ek.s;
	argv[5] = chk.s;
	argv[6] = op;
	argv[7] = ttl;
	argv[8] = max;
	argv[9] = h->broker_id;
	size_t i = 10, k = 0;
	for (struct hub_user *x = u ? u : (r ? r->users : NULL); x; x = u ? NULL : x->next, k++) {
		snprintf(ids + 24 * k, 24, "%lld", x->id);
		argv[i++] = ids + 24 * k;
		argv[i++] = x->name;
	}
	if (hub_script(h->ac[HUB_CMD], presence_reply_cb, q, &rs_broker_presence, (int)i, argv) ==
	    REDIS_OK) {
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
static void due_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct hub *h = ac->data;
	redisReply *rep = reply;
	if (!rep)
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
 * "sweep": the rooms whose members may have expired, any broker's. */
static int presence_call(struct hub *h, struct hub_room *r, const char *op, struct hub_user *u,
			 void *priv)
{
	if (!h->up)
		return -1;
	if (r)
		return presence_room(h, r->id, r, op, u, priv);
	char sweep[16];
	snprintf(sweep, sizeof sweep, "%d", HUB_SWEEP_ROOMS);
	const char *argv[] = {NULL, NULL, "1", rkey0(RK_PRESENCE_ROOMS), sweep};
	return hub_script(h->ac[HUB_CMD], due_reply_cb, NULL, &rs_presence_due, 5, argv) == REDIS_OK
		       ? 0
		       : -1;
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
		snprintf(u->name, sizeof u->name, "%s", s->username);
		u->next = r->users;
		r->users = u;
	}
	if (u->count++ == 0 && !r->hub->shutting_down)
		presence_call(r->hub, r, "open", u, NULL);
}

static void user_remove(struct hub_room *r, struct hub_sub *s)
{
	struct hub_user **pp = &r->users;
	while (*pp && (*pp)->id != s->user_id)
		pp = &(*pp)->next;
	struct hub_user *u = *pp;
	if (!u || --u->count > 0)
		return;
	if (!r->hub->shutting_down) /* hub_shutdown() closed them all already */
		presence_call(r->hub, r, "close", u, NULL);
	*pp = u->next;
	free(u);
}

/* ---- catch-up ---- */

static struct room_event *entry_event(const redisReply *e)
{
	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
		return NULL;
	const redisReply *f = e->element[1];
	const char *type = NULL, *data = NULL;
	size_t dlen = 0;
	for (size_t i = 0; i + 1 < f->elements; i += 2) {
		const redisReply *k = f->element[i], *v = f->element[i + 1];
		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		if (strcmp(k->str, "type") == 0) {
			type = v->str;
		} else if (strcmp(k->str, "data") == 0) {
			data = v->str;
			dlen = v->len;
		}
	}
	if (!type || !data)
		return NULL;
	return room_event_new(e->element[0]->str, type, data, dlen);
}

static int entry_id(const redisReply *list, struct room_evid *out)
{
	out->ms = out->seq = 0;
	if (!list || list->type != REDIS_REPLY_ARRAY || list->elements == 0)
		return -1;
	const redisReply *e = list->element[0];
	if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
	    e->element[0]->type != REDIS_REPLY_STRING)
		return -1;
	return room_evid_parse(e->element[0]->str, out);
}

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

static void catchup_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct hub_sub *s = priv;
	redisReply *rep = reply;
	if (!rep || !s->room || s->state != HUB_SUB_REPLAY)
		goto out;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
	    rep->element[2]->type != REDIS_REPLY_INTEGER) {
		/* not a stream (or an error): nothing to replay */
		if (rep->type == REDIS_REPLY_ERROR)
			log_warn("catch-up in %s: %s", s->room->id, rep->str);
		sub_go_live(s);
		goto out;
	}
	const redisReply *first = rep->element[0], *range = rep->element[1];
	if (rep->element[2]->integer == 1) {
		struct room_evid tail;
		if (entry_id(range, &tail) == 0)
			s->cur.last = tail;
		sub_go_live(s);
		goto out;
	}
	struct room_evid oldest;
	/* a page's fourth element: how many entries the history dropped (broker_catchup.lua) */
	long long dropped = rep->elements > 3 && rep->element[3]->type == REDIS_REPLY_INTEGER
				    ? rep->element[3]->integer
				    : 0;
	int gone = entry_id(first, &oldest) == 0 && room_needs_resync(s->cur.last, oldest);
	if (!s->pinned_checked && (gone || room_start_trimmed(s->cur.last, dropped))) {
		/* extension event: the history no longer reaches back to this client */
		static const char why[] = "{\"reason\":\"history_trimmed\"}";
		char id[ROOM_EVID_MAX];
		room_evid_format(s->cur.last, id);
		struct room_event *ev = room_event_new(id, "resync", why, sizeof why - 1);
		int r = ev ? s->ops->deliver(s, ev) : -1;
		room_event_release(ev);
		if (r < 0 || !s->room)
			goto out;
	}
	s->pinned_checked = 1;
	size_t n = range->type == REDIS_REPLY_ARRAY ? range->elements : 0;
	for (size_t i = 0; i < n; i++) {
		struct room_event *ev = entry_event(range->element[i]);
		if (!ev) {
			/* an entry the broker cannot take: a resync in its place, never a gap */
			const redisReply *e = range->element[i];
			if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 &&
			    e->element[0]->type == REDIS_REPLY_STRING)
				ev = room_event_resync(e->element[0]->str, "malformed_event");
			if (!ev)
				continue;
		}
		int r = 0;
		struct room_evid before = s->cur.last;
		if (room_cursor_replayed(&s->cur, ev) == ROOM_DELIVER)
			r = s->ops->deliver(s, ev);
		room_event_release(ev);
		if (r == HUB_BUSY) {
			/* not taken: from this one on when the owner has room again */
			s->cur.last = before;
			s->paused = 1;
			goto out;
		}
		if (r < 0 || !s->room)
			goto out;
	}
	if (n == HUB_PAGE)
		sub_catchup(s); /* more pages; live events stay held meanwhile */
	else
		sub_go_live(s);
out:
	s->ops->release(s);
}

void hub_resume(struct hub *h, struct hub_sub *s)
{
	if (!s->paused || !s->room || s->state != HUB_SUB_REPLAY)
		return;
	s->paused = 0;
	if (h->up && s->room->link == RL_SUBSCRIBED)
		sub_catchup(s);
	/* else the reconnect replays it (link_up) */
}

static void sub_catchup(struct hub_sub *s)
{
	struct hub_room *r = s->room;
	struct hub *h = r->hub;
	char from[ROOM_EVID_MAX] = "", page[16];
	if (s->state != HUB_SUB_REPLAY) {
		s->state = HUB_SUB_REPLAY;
		s->pinned_checked = 0;
		room_cursor_begin(&s->cur);
	}
	if (s->pinned)
		room_evid_format(room_evid_next(s->cur.last), from);
	snprintf(page, sizeof page, "%d", HUB_PAGE);
	s->ops->reserve(s);
	const char *argv[] = {NULL, NULL, "1", r->key, from, page};
	if (hub_script(h->ac[HUB_CMD], catchup_cb, s, &rs_broker_catchup, 6, argv) != REDIS_OK) {
		s->ops->release(s);
		metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_REDIS, 0);
		s->ops->fail(s, "redis unavailable");
	}
}

/* ---- rights re-check (rights.h) ---- */

/* The rights question (sse-broker/rights.h) in its parts, one slot each: the room's script
 * and, per subject, EXISTS of its session key and GET of its user's generation key, sent
 * together. When every reply is in, cb gets one answer as the single script used to give:
 * an array of one string per subject ("revoked" before whatever the room said), an error
 * reply (the first error), or NULL (the connection went). */
struct rights_gather;
struct rights_part {
	struct rights_gather *g;
	size_t i;  /* the subject; the room's script: n */
	int which; /* 0 the room, 1 EXISTS, 2 GET */
};
struct rights_gather {
	redisCallbackFn *cb;
	void *priv;
	size_t n, left;
	int lost, room_ok;
	char err[160];
	char (*answer)[16];	 /* the room's answer per subject */
	long long *gen;		 /* each subject's token generation */
	redisReply **exists, **genv; /* copies of the two replies of each subject */
	struct rights_part *parts;
};

static void gather_free(struct rights_gather *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->exists[i]);
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

static void gather_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rights_part *p = priv;
	struct rights_gather *g = p->g;
	redisReply *rep = reply;
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
		g->cb(ac, NULL, g->priv);
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
	g->cb(ac, &out, g->priv);
	free(elems);
	free(ptrs);
	gather_free(g);
}

/* Sends the question cmd about subj (cmd->n of them); cb(ac, answer, priv) once. REDIS_OK,
 * or REDIS_ERR with nothing sent (cb is not called). */
static int rights_send(struct hub *h, const struct rights_cmd *cmd,
		       const struct rights_subject *subj, redisCallbackFn *cb, void *priv)
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
	if (hub_script(h->ac[HUB_CMD], gather_cb, &g->parts[0], &rs_access_stream, cmd->argc,
		       cmd->argv) != REDIS_OK) {
		gather_free(g);
		return REDIS_ERR;
	}
	g->left = 1;
	/* from here on the replies (or their NULLs when the connection goes) free g */
	for (size_t i = 0; i < n; i++) {
		struct rights_part *e = &g->parts[1 + 2 * i], *v = e + 1;
		*e = (struct rights_part){g, i, 1};
		*v = (struct rights_part){g, i, 2};
		if (redisAsyncCommand(h->ac[HUB_CMD], gather_cb, e, "EXISTS %s", cmd->skey[i]) ==
		    REDIS_OK)
			g->left++;
		else
			snprintf(g->err, sizeof g->err, "not sent");
		if (redisAsyncCommand(h->ac[HUB_CMD], gather_cb, v, "GET %s", cmd->gkey[i]) ==
		    REDIS_OK)
			g->left++;
		else
			snprintf(g->err, sizeof g->err, "not sent");
	}
	return REDIS_OK;
}

/* One command about at most RIGHTS_BATCH subjects of a room. The room is found again by id
 * when the answer comes: it may have been freed meanwhile. */
struct rights_req {
	char room[ROOM_ID_MAX + 1];
	size_t n;
	struct rights_subject subj[]; /* sorted, distinct */
};

static void sub_subject(const struct hub_sub *s, struct rights_subject *out)
{
	memset(out, 0, sizeof *out);
	out->user_id = s->user_id;
	out->gen = s->gen;
	snprintf(out->sid, sizeof out->sid, "%s", s->sid);
}

static void rights_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct hub *h = ac->data;
	struct rights_req *q = priv;
	redisReply *rep = reply;
	struct hub_room *r;
	if (!rep)
		goto out; /* Redis gone: every room is checked again after the reconnect */
	r = room_find(h, q->room);
	struct hub_sub *next;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != q->n) {
		/* An error (a busy or failing server): nothing would ask again, so the streams
		 * asked about end (as a drop, not a revocation): each reconnects and is checked
		 * when it opens. Failing closed, like a stream that opens while Redis errs. */
		log_warn("rights check in %s: %s", q->room,
			 rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected answer");
		for (struct hub_sub *s = r ? r->subs : NULL; s; s = next) {
			next = s->next;
			struct rights_subject key;
			sub_subject(s, &key);
			if (bsearch(&key, q->subj, q->n, sizeof *q->subj, rights_subject_cmp)) {
				metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_REDIS, 0);
				s->ops->fail(s, "could not check the stream's rights");
			}
		}
		goto out;
	}
	for (struct hub_sub *s = r ? r->subs : NULL; s; s = next) {
		next = s->next; /* s may leave during its own callback, no other may */
		struct rights_subject key;
		sub_subject(s, &key);
		const struct rights_subject *at =
			bsearch(&key, q->subj, q->n, sizeof *q->subj, rights_subject_cmp);
		if (!at)
			continue; /* not asked about here (another batch, or joined since) */
		const redisReply *e = rep->element[at - q->subj];
		if (e->type != REDIS_REPLY_STRING)
			continue;
		switch (rights_verdict_of(e->str, e->len)) {
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
			log_warn("rights check in %s: unexpected answer", q->room);
			break;
		}
	}
out:
	free(q);
}

/* Asks about every distinct (user, session, generation) among r's subscribers, or only those
 * of user only_uid (> 0), or only subscriber only (not NULL). Bounded: commands of at most
 * RIGHTS_BATCH subjects. */
static void rights_check_some(struct hub_room *r, long long only_uid, const struct hub_sub *only)
{
	struct hub *h = r->hub;
	struct rights_subject *all = NULL;
	size_t n = 0;
	if (!h->up || r->nsubs == 0)
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
		struct rights_cmd cmd = {0};
		struct rights_req *q = malloc(sizeof *q + k * sizeof q->subj[0]);
		int sent = 0;
		if (q && rights_cmd_build(&cmd, r->id, all + at, k) == 0) {
			snprintf(q->room, sizeof q->room, "%s", r->id);
			q->n = k;
			memcpy(q->subj, all + at, k * sizeof q->subj[0]);
			sent = rights_send(h, &cmd, all + at, rights_cb, q) == REDIS_OK;
			if (sent)
				metric_add(&broker_metrics[BM_RIGHTS_RECHECKS], 0, 0, (long long)k);
		}
		rights_cmd_free(&cmd);
		if (!sent) {
			log_warn("rights check in %s: not sent", r->id);
			free(q);
		}
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

/* {"user":U} on cc:access: every stream of U, in every room, is asked about again. */
static void access_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct hub *h = ac->data;
	redisReply *rep = reply;
	long long uid;
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
	    rep->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(rep->element[0]->str, "subscribe") == 0) {
		/* a sign-out between the reconnect and now was published to nobody here */
		rights_changed(h);
		rights_check_all(h);
		return;
	}
	if (strcmp(rep->element[0]->str, "message") != 0 ||
	    rep->element[2]->type != REDIS_REPLY_STRING)
		return;
	if (rights_access_message(rep->element[2]->str, rep->element[2]->len, &uid) < 0) {
		log_warn("%s: ignoring a malformed message", rkey0(RK_ACCESS_CHANNEL));
		return;
	}
	rights_changed(h);
	for (int b = 0; b < HUB_BUCKETS; b++)
		for (struct hub_room *r = h->buckets[b]; r; r = r->hnext)
			for (struct hub_sub *s = r->subs; s; s = s->next)
				if (s->user_id == uid) {
					rights_check(r, uid);
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

static void dispatch(struct hub_room *r, const char *msg, size_t len)
{
	struct room_event *ev = room_event_from_message(msg, len);
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
	struct hub_sub *next;
	for (struct hub_sub *s = r->subs; s; s = next) {
		next = s->next; /* s may leave during its own callbacks, no other may */
		if (s->state != HUB_SUB_REPLAY && s->state != HUB_SUB_LIVE)
			continue;
		switch (room_cursor_offer(&s->cur, ev)) {
		case ROOM_DELIVER:
			s->ops->deliver(s, ev);
			break;
		case ROOM_OVERFLOW:
			metric_inc(&broker_metrics[BM_DROPPED], BM_DROP_CATCHUP, 0);
			s->ops->fail(s, "too many events during catch-up");
			break;
		case ROOM_DUPLICATE:
		case ROOM_HELD:
			break;
		}
	}
	/* after the event went out: whoever lost the room gets it, then the stream ends */
	if (ev->ctl == ROOM_CTL_RIGHTS) {
		rights_changed(r->hub);
		rights_check(r, 0);
	}
	room_event_release(ev);
}

static void sub_reply_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct hub *h = ac->data;
	redisReply *rep = reply;
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
	    rep->element[0]->type != REDIS_REPLY_STRING ||
	    rep->element[1]->type != REDIS_REPLY_STRING)
		return;
	const char *kind = rep->element[0]->str, *chan = rep->element[1]->str;
	char id[ROOM_ID_MAX + 1];
	if (rkey_match1(RK_ROOM_CHANNEL, chan, id, sizeof id) < 0)
		return;
	struct hub_room *r = room_find(h, id);
	if (!r)
		return;
	if (strcmp(kind, "message") == 0) {
		if (r->link == RL_SUBSCRIBED && rep->element[2]->type == REDIS_REPLY_STRING)
			dispatch(r, rep->element[2]->str, rep->element[2]->len);
	} else if (strcmp(kind, "subscribe") == 0) {
		if (r->link != RL_SUBSCRIBING)
			return;
		r->link = RL_SUBSCRIBED;
		/* events before this were not seen here: streams whose check was answered before
		 * may have missed a change (hub.h) */
		rights_changed(h);
		if (r->check_on_subscribe) {
			r->check_on_subscribe = 0;
			rights_check(r, 0);
		}
		struct hub_sub *next;
		for (struct hub_sub *s = r->subs; s; s = next) {
			next = s->next;
			if (s->state == HUB_SUB_WAIT)
				sub_catchup(s);
		}
		if (r->nsubs == 0) {
			struct timeval tv = {h->cfg.room_linger_ms / 1000,
					     (h->cfg.room_linger_ms % 1000) * 1000};
			evtimer_add(r->linger, &tv);
		}
	} else if (strcmp(kind, "unsubscribe") == 0) {
		if (r->link != RL_UNSUBSCRIBING)
			return;
		r->link = RL_IDLE;
		if (r->nsubs > 0)
			room_subscribe(r);
		else
			room_free(r);
	}
}

static void room_subscribe(struct hub_room *r)
{
	struct hub *h = r->hub;
	if (!h->up || r->link != RL_IDLE)
		return;
	r->link = RL_SUBSCRIBING;
	if (redisAsyncCommand(h->ac[HUB_SUB], sub_reply_cb, NULL, "SUBSCRIBE %s", r->channel) !=
	    REDIS_OK)
		r->link = RL_IDLE;
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
	s->pinned_checked = 0;
	s->state = HUB_SUB_WAIT;
	s->paused = 0;
	if (s->presence)
		user_add(r, s);
	if (r->link != RL_SUBSCRIBED)
		r->check_on_subscribe = 1;
	else if (s->rights_seq != h->rights_seq)
		/* a change came while its own check was under way: only this stream may have
		 * missed it (the change's own re-check covered every stream joined before) */
		rights_check_some(r, 0, s);
	if (r->link == RL_IDLE)
		room_subscribe(r);
	else if (r->link == RL_SUBSCRIBED)
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
	if (s->presence)
		user_remove(r, s);
	if (r->nsubs == 0) {
		struct timeval tv = {h->cfg.room_linger_ms / 1000,
				     (h->cfg.room_linger_ms % 1000) * 1000};
		evtimer_add(r->linger, &tv);
	}
}

/* ---- connection ---- */

static int ctx_index(struct hub *h, const redisAsyncContext *ac)
{
	if (ac && h->ac[HUB_SUB] == ac)
		return HUB_SUB;
	if (ac && h->ac[HUB_CMD] == ac)
		return HUB_CMD;
	return -1;
}

static void link_down(struct hub *h)
{
	for (int b = 0; b < HUB_BUCKETS; b++) {
		struct hub_room *next;
		for (struct hub_room *r = h->buckets[b]; r; r = next) {
			next = r->hnext;
			r->link = RL_IDLE;
			if (r->nsubs == 0) {
				room_free(r);
				continue;
			}
			/* held events are re-read from the history after the reconnect */
			for (struct hub_sub *s = r->subs; s; s = s->next) {
				room_cursor_clear(&s->cur);
				s->state = HUB_SUB_WAIT;
				s->paused = 0;
			}
		}
	}
}

static void schedule_retry(struct hub *h)
{
	if (h->shutting_down || evtimer_pending(h->retry, NULL))
		return;
	long delay = backoff_next(&h->backoff);
	struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
	evtimer_add(h->retry, &tv);
}

static void ctx_gone(struct hub *h, const redisAsyncContext *ac);

static void ctx_drop(struct hub *h, int which)
{
	redisAsyncContext *ac = h->ac[which];
	if (!ac)
		return;
	/* hiredis calls the disconnect callback (when it was connected), and the pending
	 * callbacks with NULL replies; both find the context already gone from h->ac */
	ctx_gone(h, ac);
	redisAsyncFree(ac);
}

static void ctx_gone(struct hub *h, const redisAsyncContext *ac)
{
	int which = ctx_index(h, ac);
	if (which < 0)
		return;
	h->ac[which] = NULL;
	h->ready[which] = 0;
	if (h->up) {
		h->up = 0;
		log_warn("redis: connection lost; clients are kept and will be caught up");
		link_down(h);
	}
	ctx_drop(h, 1 - which);
	if (!h->ac[HUB_SUB] && !h->ac[HUB_CMD]) {
		evtimer_del(h->conn_timeout);
		schedule_retry(h);
	}
}

static void link_up(struct hub *h)
{
	h->up = 1;
	h->ping_pending = 0;
	backoff_reset(&h->backoff);
	evtimer_del(h->conn_timeout);
	log_info("redis: connected");
	if (h->was_up)
		metric_inc(&broker_metrics[BM_REDIS_RECONNECTS], 0, 0);
	h->was_up = 1;
	/* sign-outs and password changes while we were away were published to nobody: every
	 * room is checked below, and from now on cc:access tells */
	if (redisAsyncCommand(h->ac[HUB_SUB], access_cb, NULL, "SUBSCRIBE %s", rkey0(RK_ACCESS_CHANNEL)) !=
	    REDIS_OK)
		log_warn("redis: cannot subscribe to %s", rkey0(RK_ACCESS_CHANNEL));
	rights_changed(h);
	for (int b = 0; b < HUB_BUCKETS; b++) {
		for (struct hub_room *r = h->buckets[b]; r; r = r->hnext) {
			if (r->nsubs > 0) {
				/* rights may have changed meanwhile: asked once the room's channel is
				 * confirmed, so no change falls between the answer and the channel */
				r->check_on_subscribe = 1;
				room_subscribe(r);
			}
			if (r->users)
				presence_call(h, r, "refresh", NULL, NULL);
		}
	}
}

static void ping_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct hub *h = ac->data;
	redisReply *rep = reply;
	int which = ctx_index(h, ac);
	if (!rep || which < 0)
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		log_warn("redis: %s", rep->str);
		ctx_drop(h, which);
		return;
	}
	h->ready[which] = 1;
	if (h->ready[HUB_SUB] && h->ready[HUB_CMD] && !h->up)
		link_up(h);
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
	struct hub *h = ac->data;
	if (status != REDIS_OK) {
		log_warn("redis: connect failed: %s", ac->errstr);
		ctx_gone(h, ac); /* hiredis frees it after this callback */
	}
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
	ctx_gone(ac->data, ac);
}

static redisAsyncContext *ctx_open(struct hub *h, int which)
{
	const struct rds_target *t = &h->cfg.redis;
	redisAsyncContext *ac = t->socket[0] ? redisAsyncConnectUnix(t->socket)
					     : redisAsyncConnect(t->host, t->port);
	if (!ac)
		return NULL;
	if (ac->err) {
		log_warn("redis: %s", ac->errstr);
		redisAsyncFree(ac);
		return NULL;
	}
	ac->data = h;
	if (redisLibeventAttach(ac, h->base) != REDIS_OK) {
		redisAsyncFree(ac);
		return NULL;
	}
	redisAsyncSetConnectCallback(ac, connect_cb);
	redisAsyncSetDisconnectCallback(ac, disconnect_cb);
	h->ac[which] = ac;
	/* queued now, written once connected; a failed AUTH shows as an error to PING */
	if (t->password[0])
		redisAsyncCommand(ac, NULL, NULL, "AUTH %s", t->password);
	if (which == HUB_CMD && t->db)
		redisAsyncCommand(ac, NULL, NULL, "SELECT %d", t->db);
	redisAsyncCommand(ac, ping_cb, NULL, "PING");
	return ac;
}

static void hub_connect(struct hub *h)
{
	if (!ctx_open(h, HUB_SUB) || !ctx_open(h, HUB_CMD)) {
		ctx_drop(h, HUB_SUB);
		ctx_drop(h, HUB_CMD);
		schedule_retry(h);
		return;
	}
	struct timeval tv = {h->cfg.connect_timeout_ms / 1000,
			     (h->cfg.connect_timeout_ms % 1000) * 1000};
	evtimer_add(h->conn_timeout, &tv);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hub *h = arg;
	if (!h->ac[HUB_SUB] && !h->ac[HUB_CMD])
		hub_connect(h);
}

static void conn_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hub *h = arg;
	if (h->up)
		return;
	log_warn("redis: no answer within %ld ms", h->cfg.connect_timeout_ms);
	ctx_drop(h, HUB_SUB);
	ctx_drop(h, HUB_CMD);
	schedule_retry(h);
}

static void alive_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct hub *h = ac->data;
	if (reply)
		h->ping_pending = 0;
}

static void beat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hub *h = arg;
	if (!h->up)
		return;
	/* A Redis that stopped answering without closing (a half-open link, a frozen host)
	 * is given two heartbeats; then it is treated as gone and reconnected. */
	if (h->ping_pending >= 2) {
		log_warn("redis: no answer for %ld ms; reconnecting", 2 * h->cfg.heartbeat_ms);
		ctx_drop(h, HUB_SUB);
		ctx_drop(h, HUB_CMD);
		return;
	}
	if (h->ping_pending++ == 0)
		redisAsyncCommand(h->ac[HUB_CMD], alive_cb, NULL, "PING");
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
	h->backoff = (struct backoff){.first_ms = HUB_BACKOFF_MIN_MS, .max_ms = cfg->backoff_max_ms};
	if (rnd_hex(h->broker_id, 8) < 0)
		goto fail;
	h->retry = evtimer_new(base, retry_cb, h);
	h->conn_timeout = evtimer_new(base, conn_timeout_cb, h);
	h->beat = event_new(base, -1, EV_PERSIST, beat_cb, h);
	if (!h->retry || !h->conn_timeout || !h->beat)
		goto fail;
	struct timeval tv = {cfg->heartbeat_ms / 1000, (cfg->heartbeat_ms % 1000) * 1000};
	event_add(h->beat, &tv);
	hub_connect(h);
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
	ctx_drop(h, HUB_SUB);
	ctx_drop(h, HUB_CMD);
	for (int b = 0; b < HUB_BUCKETS; b++)
		while (h->buckets[b])
			room_free(h->buckets[b]);
	if (h->retry)
		event_free(h->retry);
	if (h->conn_timeout)
		event_free(h->conn_timeout);
	if (h->beat)
		event_free(h->beat);
	if (h->shutdown_timer)
		event_free(h->shutdown_timer);
	free(h);
}

int hub_redis_up(const struct hub *h)
{
	return h->up;
}

/* ---- one-off commands ---- */

struct check_req {
	struct hub_sub *s;
	void (*cb)(struct hub_sub *s, int ok, enum rights_verdict v);
};

static void check_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct check_req *q = priv;
	redisReply *rep = reply;
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
	if (!h->up)
		return -1;
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
	if (rights_send(h, &cmd, &subj, check_cb, q) != REDIS_OK) {
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

static void emit_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	redisReply *rep = reply;
	if (rep && rep->type == REDIS_REPLY_ERROR)
		log_warn("emit: %s", rep->str);
}

int hub_emit(struct hub *h, const char *room_id, enum event_type type, const char *data_json)
{
	if (!h->up)
		return -1;
	char max[16];
	struct rkey key = rkey1(RK_ROOM_EVENTS, room_id), chan = rkey1(RK_ROOM_CHANNEL, room_id);
	snprintf(max, sizeof max, "%d", EVENTS_HISTORY_MAX);
	const char *argv[] = {NULL, NULL, "2", key.s, chan.s, event_type_name(type), data_json, max};
	return hub_script(h->ac[HUB_CMD], emit_cb, NULL, &rs_events_emit, 8, argv) == REDIS_OK ? 0
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
	if (h->shutdown_timer)
		evtimer_add(h->shutdown_timer, &tv);
}

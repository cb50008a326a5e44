/* Rooms: create, list, get, patch, delete, join, and members with their roles. */
#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "jobstate.h"
#include "events.h"
#include "handlers.h"
#include "lang.h"
#include "log.h"
#include "ratelimit.h"
#include "rds.h"
#include "rkeys.h"
#include "rnd.h"
#include "store_job.h"
#include "store_rooms.h"
#include "valid.h"

static const char *const visibilities[] = {"private", "public", NULL};
static const char *const member_roles[] = {"editor", "viewer", NULL};

static int check_language(const char *s, const char **why)
{
	if (!lang_canonical(s)) {
		*why = "is not a known language (c, c++, python, javascript, typescript, bash, "
		       "java, go, rust, ruby, php, plaintext, or an alias such as cpp, py, js, sh)";
		return -1;
	}
	return 0;
}

static const struct valid_field create_fields[] = {
	{"name", VALID_STRING, VALID_REQUIRED | VALID_SINGLE_LINE, 1, 100, NULL, NULL},
	{"language", VALID_STRING, VALID_SINGLE_LINE, 1, 32, NULL, check_language},
	{"visibility", VALID_ENUM, 0, 0, 0, visibilities, NULL},
};

static const struct valid_field patch_fields[] = {
	{"name", VALID_STRING, VALID_SINGLE_LINE, 1, 100, NULL, NULL},
	{"language", VALID_STRING, VALID_SINGLE_LINE, 1, 32, NULL, check_language},
	{"visibility", VALID_ENUM, 0, 0, 0, visibilities, NULL},
};

static const struct valid_field join_fields[] = {
	{"invite", VALID_STRING, VALID_SINGLE_LINE, 0, 128, NULL, NULL},
};

static const struct valid_field role_fields[] = {
	{"role", VALID_ENUM, VALID_REQUIRED, 0, 0, member_roles, NULL},
};

/* The store's Redis connection, opened when there is none yet (a fresh FastCGI process,
 * every CGI run). NULL, logged, when Redis is unreachable: the room itself lives in
 * PostgreSQL, so callers carry on without the cache, events and revisions. */
static struct rds *room_redis(struct api_ctx *c)
{
	struct rds *rd;
	if (store_redis(c->store, &rd) != STORE_OK) {
		log_warn("room: %s", c->store->msg);
		return NULL;
	}
	return rd;
}

/* Caller owns the result (cJSON_Delete). The owner also gets the invite: the code, or null
 * while the invite is switched off (the stored code then admits no one), and
 * invite_enabled. The revision comes from the Redis connection as it is: a handler calls
 * room_redis() once before answering rooms, so a list of rooms costs at most one
 * connection attempt. */
static cJSON *room_to_json(struct api_ctx *c, const struct store_room *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", r->id);
	cJSON_AddStringToObject(o, "name", r->name);
	cJSON_AddStringToObject(o, "language", r->language);
	cJSON_AddStringToObject(o, "visibility", r->visibility);
	cJSON *own = cJSON_AddObjectToObject(o, "owner");
	cJSON_AddNumberToObject(own, "id", (double)r->owner_id);
	cJSON_AddStringToObject(own, "username", r->owner_name);
	cJSON_AddNumberToObject(o, "revision", (double)store_room_revision(c->store, r));
	cJSON_AddStringToObject(o, "created_at", r->created_at);
	if (strcmp(r->role, "owner") == 0) {
		if (r->invite_enabled)
			cJSON_AddStringToObject(o, "invite", r->invite);
		else
			cJSON_AddNullToObject(o, "invite");
		cJSON_AddBoolToObject(o, "invite_enabled", r->invite_enabled);
	}
	return o;
}

/* A copy of the owner's {room} for a room event, which every member sees: without the
 * invite. Caller owns the result. */
static cJSON *public_room_json(const cJSON *room)
{
	cJSON *pub = cJSON_Duplicate(room, 1);
	cJSON_DeleteItemFromObject(pub, "invite");
	cJSON_DeleteItemFromObject(pub, "invite_enabled");
	return pub;
}

static void add_role(cJSON *o, const struct store_room *r)
{
	if (!r->role[0])
		cJSON_AddNullToObject(o, "role");
	else
		cJSON_AddStringToObject(o, "role", r->role);
}

/* A room the store answered (a get, a change): 0, or -1 answered (404 when it is gone, or
 * the store's failure). */
static int room_answered(struct api_ctx *c, enum store_status st)
{
	if (st == STORE_OK)
		return 0;
	if (st == STORE_NOT_FOUND)
		api_error(c, 404, "room_not_found", "no room with id %s", c->params[0]);
	else
		api_fail_why(c, st);
	return -1;
}

/* Loads the room named by c->params[0] with the caller's role. 0, or -1 answered. */
static int load_room(struct api_ctx *c, struct store_room *r)
{
	return room_answered(c, store_room_get(c->store, c->params[0], c->user.user_id, r));
}

/* The members hash lets the broker authorise bearer tokens without PostgreSQL; a failure
 * here is logged, not fatal: the room itself is in PostgreSQL. 0 or -1. */
static int cache_member(struct api_ctx *c, const char *room, long long uid, const char *role)
{
	return store_member_cache(c->store, room, uid, role) == STORE_OK ? 0 : -1;
}

/* A change that takes rights away is only done once the cache the document endpoints and
 * the broker trust agrees: otherwise 503, and the client's retry (which repeats the
 * database change harmlessly) updates the cache. */
static int revoke_failed(struct api_ctx *c)
{
	api_error(c, 503, "redis_unavailable",
		  "the change is saved but not yet in force everywhere; send it again");
	return -1;
}

/* Takes data. 0, or -1 when the event could not be sent (logged). */
static int emit_room_event(struct api_ctx *c, const char *room, cJSON *data)
{
	char *s = cJSON_PrintUnformatted(data);
	cJSON_Delete(data);
	struct rds *rd = s ? room_redis(c) : NULL;
	int rc = rd ? 0 : -1;
	if (rd && events_emit(rd, room, EV_ROOM, s, NULL, 0) < 0) {
		log_warn("could not emit a room event for %s", room);
		store_redis_failed(c->store);
		rc = -1;
	}
	free(s);
	return rc;
}

/* The `room` event that makes every broker re-check the rights of the room's open streams
 * (reason "members", or "access" for a correction nobody else needs to hear of). Open
 * streams keep their rights until it is heard, so a change that takes rights away and
 * cannot send it answers 503 (revoke_failed): the retry sends it. 0 or -1. */
static int emit_rights_event(struct api_ctx *c, const char *room, const char *reason)
{
	cJSON *ev = cJSON_CreateObject();
	if (!ev || !cJSON_AddStringToObject(ev, "reason", reason)) {
		cJSON_Delete(ev);
		return -1;
	}
	return emit_room_event(c, room, ev);
}

/* A change that takes rights away (a removal, a demotion, a room made private) is in force only
 * while Redis keeps it: the member cache and the visibility key are what the document
 * endpoints and the broker trust, and nothing corrects an entry a removed member still has
 * there (their own GET is refused before it touches it). With a replicated Redis (as a commit
 * is, REDIS_WAIT_REPLICAS) the change is therefore answered only once a replica holds it, or a
 * failover could bring back, for good, the access the answer said was gone. Called right
 * after the room's rights event: its write, in the room's slot and on the connection that
 * changed the key before it, makes one WAIT cover both, also on a retry whose key change found
 * nothing left to change.
 *
 * later: not NULL when the caller writes more before it answers (cancel_member_runs) and
 * WAITs after that. On one server every write of the request goes on one connection, and a
 * WAIT there covers everything that connection wrote before it, so no WAIT is sent here: 1,
 * with *later where the change was written, and the later WAIT covers it as long as the
 * connection is still that one (rds_wait_since; else it is refused, and the caller answers
 * 503). Not on a cluster, where the room's slot and the jobs' may live on different masters,
 * each WAIT counting only its own master's replicas. 0 confirmed here, or -1 (logged; the
 * caller answers 503 and the retry confirms). */
static int rights_replicated(struct api_ctx *c, const char *room, struct rds_mark *later)
{
	struct rds *rd;
	char err[256];
	struct rkey ek = rkey1(RK_ROOM_EVENTS, room);
	if (store_redis(c->store, &rd) != STORE_OK)
		return -1;
	if (later && !rds_is_cluster(rd)) {
		*later = rds_mark_get(rd);
		return 1;
	}
	if (rds_wait(rd, ek.s, err, sizeof err) < 0) {
		log_warn("room %s: a change of rights is not confirmed by a replica: %s", room, err);
		return -1;
	}
	return 0;
}

/* One job of the room cancelled because its starter lost the right to it, as DELETE
 * /api/jobs/{id} cancels one: status `cancelled` (error: why) and its event. kind is the
 * job's kind ("execution"), ekind its event kind or "". 0 (done, or over already), -1 Redis
 * failed (logged). */
static int cancel_lost_job(struct api_ctx *c, const char *room, const char *id, const char *kind,
			   const char *ekind, const char *why)
{
	struct rds *rd;
	char cur[16], err[256] = "redis: no connection";
	enum event_type ev = EV_EXECUTION; /* a job's events have its kind as their type */
	if (event_type_parse(kind, &ev) < 0)
		ev = EV_EXECUTION;
	char *data = jobstate_event_json(id, ekind[0] ? ekind : NULL,
					 job_status_name(JOB_CANCELLED), NULL, why);
	int rc = -1;
	if (data && store_redis(c->store, &rd) == STORE_OK)
		rc = jobstate_cancel(rd, id, room, ev, data, why, cur, sizeof cur, err, sizeof err);
	free(data);
	if (rc < 0) {
		log_warn("job %s (room %s): could not be cancelled: %s", id, room, err);
		store_redis_failed(c->store);
		return -1;
	}
	if (rc == 1)
		log_info("job %s (%s, room %s): %s", id, kind, room, why);
	return 0;
}

/* The runs user uid started in the room that are not over (waiting in the room's line, or
 * in flight: dispatched or running), cancelled, once uid may no longer run code there
 * (removed, left, made viewer, the account deleted): a run queued before the change would
 * otherwise start after it, minutes later behind a busy room's line, in the name of someone
 * who may no longer run code in the room. AI requests are left to finish: their answer goes
 * to the room, which may have joined them (a member asking the same), and anyone who may read
 * a room may ask. First a new run-right mark (lib/jobstate.h): a run whose creation read the
 * right before the change and has not made its job yet is refused by its creation script, so
 * every run this look does not find is one that is never made. Called once the change is in
 * PostgreSQL, where a run's creation reads the right. since: NULL, or where the change of
 * rights was written when its WAIT was left to this one (rights_replicated). 0, or -1 when
 * Redis failed (logged): the caller answers 503, and the retry cancels the rest. */
static int cancel_member_runs(struct api_ctx *c, const char *room, long long uid, const char *why,
			      const struct rds_mark *since)
{
	struct rds *rd;
	char user[32], err[256];
	if (store_redis(c->store, &rd) != STORE_OK)
		return -1;
	snprintf(user, sizeof user, "%lld", uid);
	if (jobstate_run_right_taken(rd, room, user, err, sizeof err) < 0) {
		log_warn("room %s: the run-right mark of user %lld could not be written: %s", room,
			 uid, err);
		store_redis_failed(c->store);
		return -1;
	}
	/* where the mark was written: the WAIT below must go there (a read below may be sent
	 * again on a reopened connection, where a WAIT would count nothing of the mark) */
	struct rds_mark written = rds_mark_get(rd);
	struct rkey mark = rkey2(RK_RUN_RIGHT, room, user);
	struct rkey line = rkey1(RK_FAIR_ROOM, room);
	const char *inflight = rkey0(RK_FAIR_INFLIGHT);
	redisReply *q = rds_cmd(rd, line.s, "LRANGE %s 0 -1", line.s);
	redisReply *f = q ? rds_cmd(rd, inflight, "HGETALL %s", inflight) : NULL;
	int rc = 0;
	if (!q || !f || q->type != REDIS_REPLY_ARRAY || f->type != REDIS_REPLY_ARRAY) {
		log_warn("room %s: the jobs of user %lld could not be read", room, uid);
		store_redis_failed(c->store);
		rc = -1;
		goto out;
	}
	/* the line's jobs, then those in flight for this room (the hash: job -> room) */
	size_t n = q->elements + f->elements / 2;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const redisReply *e;
		if (i < q->elements) {
			e = q->element[i];
		} else {
			size_t k = (i - q->elements) * 2;
			const redisReply *at = f->element[k + 1];
			if (at->type != REDIS_REPLY_STRING || strcmp(at->str, room) != 0)
				continue;
			e = f->element[k];
		}
		if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > API_ID_MAX)
			continue;
		char id[API_ID_MAX + 1], kind[32] = "execution", ekind[32] = "";
		snprintf(id, sizeof id, "%s", e->str);
		struct store_job j;
		enum store_status st = store_job_load(c->store, id, &j);
		if (st == STORE_NOT_FOUND)
			continue;
		if (st != STORE_OK) {
			rc = -1;
			break;
		}
		enum job_status js;
		int theirs = j.user && strtoll(j.user, NULL, 10) == uid && j.room &&
			     strcmp(j.room, room) == 0 && job_status_parse(j.status, &js) == 0 &&
			     !job_status_over(js);
		if (j.kind && j.kind[0])
			snprintf(kind, sizeof kind, "%s", j.kind);
		if (j.event_kind)
			snprintf(ekind, sizeof ekind, "%s", j.event_kind);
		store_job_free(&j);
		if (theirs && strcmp(kind, "execution") == 0)
			rc = cancel_lost_job(c, room, id, kind, ekind, why);
	}
	/* the mark and the cancels, like the change of rights, are answered only once a replica
	 * holds them (REDIS_WAIT_REPLICAS): a failover right after would bring the runs back, or
	 * let a creation that read the right before the change make its run. Every command
	 * since the mark was in the jobs' slot, on that slot's connection: one WAIT covers all,
	 * when that connection is still the one that wrote the mark (rds_wait_since), and the
	 * change of rights before it too when since says it was written on that connection. */
	if (rc == 0) {
		if (rds_wait_since(rd, since ? *since : written, mark.s, err, sizeof err) < 0) {
			log_warn("room %s: the cancelled runs of user %lld are not confirmed by a "
				 "replica: %s", room, uid, err);
			rc = -1;
		}
	}
out:
	if (q)
		freeReplyObject(q);
	if (f)
		freeReplyObject(f);
	return rc;
}

/* Takes back an entry this request wrote into the member cache before the read that was to
 * confirm it, when that read failed or its correction could not be written. Left alone, the
 * entry may put back a role that a removal (or demotion) committed meanwhile had just taken
 * away, and nothing else would ever correct it: the removed member's next GET is refused
 * before it touches the cache, and the document endpoints and the broker trust a hit. A
 * missing entry is always safe: it only sends the next check to PostgreSQL (the member's
 * retry writes it again). When even the HDEL fails, the brokers are asked to look again
 * (unless the room is gone: announce 0) and the request answers 503, so that the client
 * retries rather than taking the answer for a confirmation. 0 taken back, -1 answered. */
static int cache_take_back(struct api_ctx *c, const char *room, long long uid, int announce)
{
	if (cache_member(c, room, uid, NULL) == 0)
		return 0;
	log_warn("room %s: could not take back the member cache entry of user %lld", room, uid);
	if (announce)
		emit_rights_event(c, room, "access");
	api_error(c, 503, "redis_unavailable",
		  "your access to this room could not be confirmed right now; try again");
	return -1;
}


/* 1 written, 0 already so, -1 Redis failed (logged). vis NULL deletes the key. */
static int visibility_put(struct api_ctx *c, const char *room, const char *vis)
{
	return store_room_visibility_put(c->store, room, vis);
}

int room_visibility_sync(struct api_ctx *c, const char *room, const char *vis)
{
	/* Two writers that read PostgreSQL at different moments (a ticket and a PATCH) could
	 * otherwise leave the older value in Redis. Whoever writes reads PostgreSQL again
	 * after its write and corrects the key: the last write is then followed by a read that
	 * saw the last change. Bounded: a room whose visibility flips on every read stays as
	 * the last read left it, and the next ticket or PATCH repairs it. */
	char now[16];
	int given = vis != NULL, closed = 0;
	for (int attempt = 0; attempt < 4; attempt++) {
		if (!vis) {
			/* "" when deleted: the key goes with the room */
			enum store_status st = store_room_visibility(c->store, room, now);
			if (st != STORE_OK) {
				api_fail_why(c, st);
				return -1;
			}
			vis = now;
		}
		int rc = visibility_put(c, room, vis[0] ? vis : NULL);
		/* A write of "private" that no PATCH announces (a correction of what an older
		 * reader wrote, or the first write for a room older than the key): the broker may
		 * have judged open streams by the value this replaces, so it must look again. */
		if (rc == 1 && strcmp(vis, "private") == 0 && (attempt > 0 || !given))
			closed = 1;
		if (rc <= 0 || !vis[0]) {
			if (rc < 0)
				return -1;
			break;
		}
		vis = NULL; /* written: read again */
	}
	if (closed && emit_rights_event(c, room, "access") < 0)
		return -1;
	return 0;
}

/* Answers 200 with {name: item}; takes item. */
static void answer_with(struct api_ctx *c, const char *name, cJSON *item)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, name, item);
	api_json(c, 200, o);
}

void h_room_create(struct api_ctx *c)
{
	struct valid_value v[3];
	if (api_require_user(c) < 0 || api_body_fields(c, 0, create_fields, 3, v) < 0)
		return;
	const char *lang = v[1].present ? lang_canonical(v[1].s) : "python";
	const char *vis = v[2].present ? v[2].s : "private";
	struct store_room r;
	enum store_status st = store_room_create(c->store, c->user.user_id,
						 c->cfg->rooms_per_user_max, v[0].s, lang, vis, &r);
	if (st == STORE_NOT_FOUND) { /* the user row is gone: the token outlived its account */
		api_error(c, 401, "invalid_token", "this account no longer exists");
		return;
	}
	if (st == STORE_TOO_LARGE) {
		api_error(c, 409, "user_rooms_full",
			  "you own %ld rooms, the limit of one user; delete one to create another",
			  c->cfg->rooms_per_user_max);
		return;
	}
	if (st != STORE_OK) {
		api_fail_why(c, st);
		return;
	}
	const char *id = r.id;
	cache_member(c, id, c->user.user_id, "owner");
	/* missing means private, so a failure only keeps strangers of a public room out until
	 * the first stream ticket writes it (room_visibility_sync) */
	visibility_put(c, id, vis);
	/* The owner's account may have been deleted between the insert and the writes above
	 * (auth_account_delete: its transaction waited for ours, then took the room with it,
	 * and its clears may have run before our writes): read the row again and take back
	 * what would outlive the room. */
	char now[16];
	st = store_room_visibility(c->store, id, now);
	/* the room was made: a failure of this check answers 201 all the same (a 503 would
	 * make the client create a second room), logged */
	if (st != STORE_OK)
		log_warn("room %s: created, but could not be read again: %s", id, c->store->msg);
	if (st == STORE_OK && !now[0]) {
		cache_member(c, id, c->user.user_id, NULL);
		visibility_put(c, id, NULL);
		api_error(c, 401, "invalid_token", "this account no longer exists");
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "room", room_to_json(c, &r));
	cJSON_AddStringToObject(o, "role", "owner");
	char loc[96];
	snprintf(loc, sizeof loc, "/api/rooms/%s", id);
	http_resp_header(c->resp, "Location", loc);
	api_json(c, 201, o);
}

int rooms_parse_before(const char *cursor, long long *us, const char **id)
{
	/* the time as a page writes it (%lld of a time >= 0): 1 to 18 digits, no sign, no
	 * leading zero; strtoll alone took ".x" as 0, and "-0", "007" and leading blanks */
	const char *dot = strchr(cursor, '.');
	size_t nd = dot ? (size_t)(dot - cursor) : 0;
	if (nd == 0 || nd > 18 || (nd > 1 && cursor[0] == '0') || !dot[1] || strchr(dot + 1, '.'))
		return -1;
	long long v = 0;
	for (size_t i = 0; i < nd; i++) {
		if (cursor[i] < '0' || cursor[i] > '9')
			return -1;
		v = v * 10 + (cursor[i] - '0');
	}
	*us = v;
	*id = dot + 1;
	return 0;
}

void h_room_list(struct api_ctx *c)
{
	if (api_require_user(c) < 0)
		return;
	/* paging (docs/API.md): ?limit=1..500 (500), ?before=<the previous page's next> */
	long long limit, before_us = 0;
	char cursor[96];
	const char *before_id = NULL;
	int has = 0;
	if (api_query_int(c, "limit", 1, 500, 500, &limit) < 0 ||
	    (has = api_query(c, "before", cursor, sizeof cursor)) < 0)
		return;
	if (has && rooms_parse_before(cursor, &before_us, &before_id) < 0) {
		api_error(c, 400, "invalid_request", "before must be the next cursor of a previous page");
		return;
	}
	struct store_room *rooms;
	int n;
	enum store_status st = store_room_list(c->store, c->user.user_id, (int)limit + 1, before_us,
					       before_id, &rooms, &n);
	if (st != STORE_OK) {
		api_fail_why(c, st);
		return;
	}
	/* one room more than the page, read only to know that another page follows */
	int more = n > limit;
	if (more)
		n = (int)limit;
	room_redis(c); /* for the revisions */
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(o, "rooms");
	for (int i = 0; i < n; i++) {
		cJSON *room = room_to_json(c, &rooms[i]);
		add_role(room, &rooms[i]);
		cJSON_AddItemToArray(arr, room);
	}
	if (more) {
		char next[96];
		snprintf(next, sizeof next, "%lld.%s", rooms[n - 1].created_us, rooms[n - 1].id);
		cJSON_AddStringToObject(o, "next", next);
	} else {
		cJSON_AddNullToObject(o, "next");
	}
	free(rooms);
	api_json(c, 200, o);
}

/* One member as the API shows them. */
static cJSON *member_json(const struct store_member *m)
{
	cJSON *e = cJSON_CreateObject();
	cJSON *u = cJSON_AddObjectToObject(e, "user");
	cJSON_AddNumberToObject(u, "id", (double)m->id);
	cJSON_AddStringToObject(u, "username", m->username);
	cJSON_AddStringToObject(e, "role", m->role);
	return e;
}

/* The members as the API shows them, NULL answered. */
static cJSON *members_json(struct api_ctx *c, const char *room)
{
	struct store_member *m;
	int n;
	enum store_status st = store_room_members(c->store, room, &m, &n);
	if (st != STORE_OK) {
		api_fail_why(c, st);
		return NULL;
	}
	cJSON *arr = cJSON_CreateArray();
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(arr, member_json(&m[i]));
	free(m);
	return arr;
}

/* GET refreshes the caller's entry in the member cache, which the broker and the document
 * endpoints trust. When the owner removed the caller or changed their role between our read
 * and that write, the write put back what was just taken away. members was read after the
 * write, so it has the truth: correct the entry when it differs from what was written. A
 * correction that cannot be written is no reason to keep the wrong role: the entry is taken
 * back instead. 0, or -1 answered (503: neither could be written). */
static int recheck_member(struct api_ctx *c, const cJSON *members, const char *written)
{
	const char *now = NULL;
	const cJSON *m;
	cJSON_ArrayForEach(m, members)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(m, "user"), "id");
		if (cJSON_IsNumber(id) && (long long)id->valuedouble == c->user.user_id)
			now = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
	}
	if (now && strcmp(now, written) == 0)
		return 0;
	int taken = !now;
	if (cache_member(c, c->params[0], c->user.user_id, now) < 0) {
		if (cache_take_back(c, c->params[0], c->user.user_id, 1) < 0)
			return -1;
		taken = 1;
	}
	/* The broker may have re-checked streams by the entry this corrects (the removal's own
	 * `members` event, heard between our write and its correction), and looks again only
	 * when it hears this. When the entry is gone, such a broker keeps the removed caller's
	 * streams open until then, and nothing else sends it (the caller's retry is refused,
	 * or sees the room as a stranger, before it touches the cache): it is tried once more
	 * (on a connection opened again when the first broke), and an event that still did not
	 * go out answers 503, as cache_take_back does, not a 200 that shows the role just taken
	 * away. The brokers then look again at the room's next rights change, or when their
	 * subscription of it comes back. A corrected role (owner, editor, viewer) is lost with
	 * the event at no cost: every role reads the room, and the broker asks nothing more. */
	if (emit_rights_event(c, c->params[0], "access") < 0 && taken &&
	    emit_rights_event(c, c->params[0], "access") < 0) {
		log_warn("room %s: the member cache entry of user %lld was taken back, but the "
			 "brokers could not be told", c->params[0], c->user.user_id);
		api_error(c, 503, "redis_unavailable",
			  "your access to this room could not be confirmed right now; try again");
		return -1;
	}
	return 0;
}

static void refuse_stranger(struct api_ctx *c)
{
	api_error(c, 403, "not_a_member",
		  "you are not a member of this room; join it (private rooms need the invite link)");
}

/* The caller (signed in) and the path's room into *r when the caller may see it: a member,
 * or anyone for a public room. 0, or -1 when answered. */
static int load_visible_room(struct api_ctx *c, struct store_room *r)
{
	if (api_require_user(c) < 0 || load_room(c, r) < 0)
		return -1;
	if (!r->role[0] && strcmp(r->visibility, "public") != 0) {
		refuse_stranger(c);
		return -1;
	}
	return 0;
}

void h_room_get(struct api_ctx *c)
{
	struct store_room r;
	if (load_visible_room(c, &r) < 0)
		return;
	/* the broker judges bearer-token streams by the visibility key alone: keep it filled
	 * (after an upgrade or a lost Redis) so a token streams whatever a ticket would. Not
	 * fatal: the answer below replaces any error it set. */
	room_visibility_sync(c, c->params[0], r.visibility);
	char cached[16] = "";
	if (r.role[0]) {
		snprintf(cached, sizeof cached, "%s", r.role);
		cache_member(c, c->params[0], c->user.user_id, cached);
	} else {
		room_redis(c); /* for the revision */
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "room", room_to_json(c, &r));
	add_role(o, &r);
	cJSON *members = members_json(c, c->params[0]);
	if (!members) {
		/* answered (the store's failure): the entry written above is confirmed by nothing */
		cJSON_Delete(o);
		if (cached[0])
			cache_take_back(c, c->params[0], c->user.user_id, 1);
		return;
	}
	/* A room always has its owner among its members: none, and it was deleted after our
	 * read. The entry written above may then have come after the DELETE's clears: taken
	 * back, and the room is gone (no rights event: its streams end with `deleted`). */
	if (cJSON_GetArraySize(members) == 0) {
		cJSON_Delete(members);
		cJSON_Delete(o);
		api_error(c, 404, "room_not_found", "no room with id %s", c->params[0]);
		if (cached[0])
			cache_take_back(c, c->params[0], c->user.user_id, 0);
		return;
	}
	if (cached[0] && recheck_member(c, members, cached) < 0) {
		cJSON_Delete(members);
		cJSON_Delete(o);
		return;
	}
	cJSON_AddItemToObject(o, "members", members);
	api_json(c, 200, o);
}

static int require_owner(struct api_ctx *c, const struct store_room *r)
{
	if (strcmp(r->role, "owner") == 0)
		return 0;
	/* one vocabulary (docs/API.md "Errors"): not_a_member for whoever is not in the room,
	 * public or not; forbidden for a member whose role does not allow it */
	if (!r->role[0])
		refuse_stranger(c);
	else
		api_error(c, 403, "forbidden", "only the room's owner may do this");
	return -1;
}

/* A change of the room that answers the room as it is now: 0 with the Redis connection up
 * for the revision and the event that follow, or -1 answered. */
static int room_changed(struct api_ctx *c, enum store_status st)
{
	if (room_answered(c, st) < 0)
		return -1;
	room_redis(c); /* for the revision and the event */
	return 0;
}

void h_room_patch(struct api_ctx *c)
{
	struct valid_value v[3];
	struct store_room r;
	if (api_require_user(c) < 0 || api_body_fields(c, 0, patch_fields, 3, v) < 0 ||
	    load_room(c, &r) < 0 || require_owner(c, &r) < 0)
		return;
	enum store_status st = store_room_update(c->store, c->params[0], c->user.user_id,
						 v[0].present ? v[0].s : NULL,
						 v[1].present ? lang_canonical(v[1].s) : NULL,
						 v[2].present ? v[2].s : NULL, &r);
	if (room_changed(c, st) < 0)
		return;
	const char *vis = r.visibility;
	cJSON *room = room_to_json(c, &r);
	/* The broker lets strangers stream a room the key calls public, and re-checks on the
	 * event below: the key changes first. Closing a room that Redis does not hear of would
	 * leave strangers reading, so that is 503 (the retry writes the key); opening one is
	 * not urgent (the next stream ticket writes the key), and the answer stays 200. */
	if (room_visibility_sync(c, c->params[0], vis) < 0 && strcmp(vis, "private") == 0) {
		cJSON_Delete(room);
		revoke_failed(c);
		return;
	}
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "reason", "updated");
	cJSON_AddItemToObject(ev, "room", public_room_json(room));
	/* strangers' open streams end when the brokers hear it: a room made private whose
	 * event did not go out answers 503, and the retry sends it */
	if (strcmp(vis, "private") == 0 &&
	    (emit_room_event(c, c->params[0], ev) < 0 ||
	     rights_replicated(c, c->params[0], NULL) < 0)) {
		cJSON_Delete(room);
		revoke_failed(c);
		return;
	}
	if (strcmp(vis, "private") != 0)
		emit_room_event(c, c->params[0], ev);
	answer_with(c, "room", room);
}

int rooms_delete_begin(struct api_ctx *c, const char *room)
{
	/* Called inside the deletion's transaction, once PostgreSQL has deleted the row and
	 * holds its lock (store_room_delete, store_user_delete): the keys that admit people
	 * without asking PostgreSQL go now, so that a room whose row is gone admits nobody
	 * even if the second step (rooms_delete_finish) cannot reach Redis; while the member
	 * cache exists, the broker and the document endpoints still admit members. If Redis
	 * cannot be reached, the transaction is rolled back: nothing is deleted and the request
	 * can be sent again. The document, its operations and commits stay until the row is
	 * gone for sure: they may hold edits that no save has reached, and a deletion that
	 * fails after this step must not lose them. */
	return store_room_drop_access(c->store, room) == STORE_OK ? 0 : -1;
}

/* The member cache of a room whose deletion failed after rooms_delete_begin dropped it,
 * written back from PostgreSQL: until then the broker refuses the members of a private room
 * a bearer-token stream (it asks nothing but the cache). A removal or a role change that
 * commits between the read and the write would have its entry put back; so, as a join or a
 * GET does, the members are read again after the write, and every entry written that the
 * second read does not confirm is taken back (not corrected: a missing entry is always
 * safe, and its member's next GET or join writes it). A deletion that committed meanwhile
 * is met the same way: the second read finds no members. 0, or -1 (logged; what is missing
 * comes back with each member's next GET or join). */
static int members_cache_restore(struct api_ctx *c, const char *room)
{
	struct store_member *m = NULL, *now = NULL;
	int n = 0, nn = 0, rc = -1, taken = 0, kept = 0, failed = 0;
	enum store_status st = store_room_members(c->store, room, &m, &n);
	if (st != STORE_OK) {
		log_warn("room %s: its deletion failed, and its members cannot be read to write "
			 "its member cache back: %s", room, c->store->msg);
		return -1;
	}
	if (n == 0) {
		rc = 0;
		goto out;
	}
	/* a write whose answer was lost may have been done all the same: confirmed below like
	 * one that answered */
	if (store_member_cache_fill(c->store, room, m, n) != STORE_OK)
		failed = 1;
	st = store_room_members(c->store, room, &now, &nn);
	if (st != STORE_OK)
		nn = 0; /* nothing confirmed: every entry written is taken back */
	for (int i = 0; i < n; i++) {
		int confirmed = 0;
		for (int j = 0; j < nn && !confirmed; j++)
			confirmed = now[j].id == m[i].id && strcmp(now[j].role, m[i].role) == 0;
		if (confirmed)
			continue;
		if (cache_member(c, room, m[i].id, NULL) < 0)
			kept = failed = 1;
		taken = 1;
	}
	if (kept)
		log_error("room %s: member cache entries written back after a failed deletion could "
			  "not all be taken back once PostgreSQL no longer confirmed them", room);
	/* a broker may have re-checked streams by an entry taken back: it looks again (a
	 * room whose row went, no members, ends its streams with `deleted` instead) */
	if (taken && (st != STORE_OK || nn > 0) && emit_rights_event(c, room, "access") < 0)
		failed = 1;
	rc = st == STORE_OK && !failed ? 0 : -1;
out:
	free(m);
	free(now);
	return rc;
}

int rooms_delete_settle(struct api_ctx *c, const char *room, int committing)
{
	/* A deletion that failed after its first step ran: Redis failed during the step (this
	 * request rolled back), or the step went well and the COMMIT failed (the connection
	 * went with its answer), which leaves it unknown whether the row went. Either way the
	 * row is read again. Still there: its visibility key is written back as a ticket writes
	 * it (read again after the write), and its member cache from the members' rows
	 * (members_cache_restore): without their entries the broker refuses the members of a
	 * private room their bearer-token streams until each does a GET or join. Gone: only a COMMIT
	 * can have been this request's doing (1, for the caller to finish the room). After a
	 * failed step this request deleted nothing: another deletion of the room, waiting on
	 * the row's lock, deleted it once this one rolled back, and finishes it itself;
	 * finishing it here as well would bury it twice and send its streams a second
	 * `deleted`. */
	char vis[16];
	enum store_status st = store_room_visibility(c->store, room, vis);
	if (st != STORE_OK) {
		log_warn("room %s: its deletion failed, and whether the row is still there cannot be "
			 "read: %s", room, c->store->msg);
		return -1;
	}
	if (!vis[0]) {
		if (committing)
			return 1;
		log_info("room %s: its deletion failed in Redis and rolled back, and another "
			 "deletion has deleted it since: left to that one to finish", room);
		return 0;
	}
	/* an error it answers is replaced by the caller's */
	if (room_visibility_sync(c, room, vis) < 0)
		log_warn("room %s: its deletion failed, and its visibility key could not be written "
			 "back (the next ticket or GET writes it)", room);
	members_cache_restore(c, room);
	return 0;
}

void rooms_delete_finish(struct api_ctx *c, const char *room)
{
	/* Again, now that the row is gone: a join, GET or stream ticket that read the room
	 * before the row went may have written its member entry or the visibility back after
	 * the first clear, and a commit between the two steps its document, operations and
	 * commits; the member entry alone would admit its user for ever (the document
	 * endpoints and the broker trust it). Whoever writes after this reads the row again and
	 * takes back what it wrote (join, GET, restore in lib/store_doc.c). This time the room
	 * is marked deleted first, so that its jobs' events and runs (the outbox) and its AI
	 * answers are no longer written into it, and every other key of the room goes too
	 * (store_room_bury). Nobody can repeat the request (the room answers 404 now):
	 * a failure is logged. */
	if (store_room_bury(c->store, room) != STORE_OK)
		log_error("room %s: deleted, but its live state could not be cleared again: %s",
			  room, c->store->msg);
	/* Its jobs end: queued ones never run, running ones are stopped by their workers;
	 * GET /api/jobs/{id} of one answers 404 job_not_found like every job of a room that
	 * is gone. A job that raced this (created after it) meets the deleted mark in the
	 * worker and is cancelled there unrun. */
	struct rds *rd;
	long cancelled = 0;
	char err[256] = "redis: no connection";
	if (store_redis(c->store, &rd) != STORE_OK ||
	    jobstate_room_drop(rd, room, JOBSTATE_ROOM_DELETED_ERROR, &cancelled, err,
			       sizeof err) < 0)
		log_error("room %s: deleted, but its jobs could not be cancelled: %s", room,
			  err);
	else if (cancelled > 0)
		log_info("room %s: deleted with %ld jobs queued or running: cancelled", room,
			 cancelled);
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "reason", "deleted");
	cJSON_AddStringToObject(ev, "id", room);
	/* the history goes a while after the event that ends the room's streams: one catching
	 * up from it (a gap on the channel, a reconnect) still reads `deleted` */
	int emitted = emit_room_event(c, room, ev);
	/* the expiry whether or not the event went out: a history from before stays otherwise */
	if (store_room_events_expire(c->store, room, ROOM_EVENTS_AFTER_DELETE_S) != STORE_OK ||
	    emitted < 0)
		log_warn("room %s: deleted, but its `deleted` event or its history's expiry failed",
			 room);
}

/* rooms_delete_begin as the step between a room's DELETE and its COMMIT. store_room_delete
 * answers a failed step and a failed COMMIT alike (its status): which one it was is known
 * here. */
struct delete_step {
	struct api_ctx *c;
	const char *room;
	int began;	/* the step ran: the access keys may be gone */
	int failed;	/* Redis failed in the step: rolled back */
	int committing; /* the step ended well: a failure after it is the COMMIT's */
};

static enum store_status delete_begin_step(void *arg)
{
	struct delete_step *d = arg;
	d->began = 1;
	if (rooms_delete_begin(d->c, d->room) < 0) {
		d->failed = 1;
		return STORE_REDIS_UNAVAILABLE;
	}
	d->committing = 1;
	return STORE_OK;
}

void h_room_delete(struct api_ctx *c)
{
	struct store_room r;
	if (api_require_user(c) < 0 || api_body_none(c) < 0 || load_room(c, &r) < 0 ||
	    require_owner(c, &r) < 0)
		return;
	struct delete_step d = {.c = c, .room = c->params[0]};
	enum store_status st = store_room_delete(c->store, d.room, delete_begin_step, &d);
	if (st != STORE_OK) {
		char msg[sizeof c->store->msg];
		snprintf(msg, sizeof msg, "%s", c->store->msg);
		if (d.began && rooms_delete_settle(c, d.room, d.committing) == 1) {
			/* the COMMIT went through; only its answer was lost */
			rooms_delete_finish(c, d.room);
			api_no_content(c);
			return;
		}
		/* (also when another deletion has deleted it since: its retry finds it gone) */
		if (d.failed) {
			api_error(c, 503, "redis_unavailable",
				  "the room cannot be deleted right now; try again");
			return;
		}
		snprintf(c->store->msg, sizeof c->store->msg, "%s", msg);
		api_fail_why(c, st);
		return;
	}
	rooms_delete_finish(c, d.room);
	api_no_content(c);
}

/* Why a stranger may not join, answered; 0 when they may. by_code receives the invite
 * generation the code was checked against, or -1 when the public room admits them without
 * one. The decision is made again in SQL (store_room_join); this one picks the answer. */
static int join_decide(struct api_ctx *c, const struct store_room *r,
		       const struct valid_value *invite, long long removed, long long *by_code)
{
	int public_room = strcmp(r->visibility, "public") == 0;
	int enabled = r->invite_enabled;
	long long gen = r->invite_gen;
	const char *code = r->invite;
	/* a removal holds until the owner issues a code after it, and then only that code
	 * lets the person back, public room or not */
	int blocked = removed >= 0 && removed >= gen;
	if (public_room && removed < 0) {
		*by_code = -1;
		return 0;
	}
	/* A code is compared only within JOIN_RATE_LIMIT wrong ones a minute per user: the
	 * attempt takes its place first (parallel guesses cannot pass a window with one place
	 * left), and gives it back unless its code was wrong. While the window is full even
	 * the right code waits, as a sign-in's right password does. */
	char counted[RATELIMIT_MEMBER_LEN + 1] = "";
	if (invite->present &&
	    api_user_quota_reserve(c, "join", c->cfg->join_limit, "wrong invite codes", counted) < 0)
		return -1;
	int code_ok = invite->present && enabled && invite->len == strlen(code) &&
		      CRYPTO_memcmp(invite->s, code, invite->len) == 0;
	int wrong = invite->present && enabled && !code_ok && !blocked;
	if (counted[0] && !wrong)
		api_user_quota_release(c, "join", counted);
	if (code_ok && !blocked) {
		*by_code = gen;
		return 0;
	}
	if (blocked || (removed >= 0 && !invite->present))
		api_error(c, 403, "removed",
			  "the owner removed you from this room; ask for a new invite link");
	else if (invite->present && !enabled)
		api_error(c, 403, "invite_disabled",
			  "the owner has switched this room's invite link off; ask for a new one");
	else if (invite->present)
		api_error(c, 403, "invalid_invite", "the invite code is not valid");
	else
		api_error(c, 403, "invite_required", "this room is private: join with its invite link");
	return -1;
}

/* {room, role} of a member. */
static void answer_member_room(struct api_ctx *c, const struct store_room *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "room", room_to_json(c, r));
	add_role(o, r);
	api_json(c, 200, o);
}

void h_room_join(struct api_ctx *c)
{
	struct valid_value v[1];
	if (api_require_user(c) < 0 || api_body_fields(c, 1, join_fields, 1, v) < 0)
		return;
	/* a second round only when the room changed between the decision and the insert
	 * (the owner rotated or switched the invite, or removed the caller): the fresh row
	 * then gives the right answer */
	for (int attempt = 0; attempt < 3; attempt++) {
		struct store_room r;
		if (load_room(c, &r) < 0)
			return;
		if (r.role[0]) { /* a member already: joining again changes nothing */
			room_redis(c); /* for the revision */
			answer_member_room(c, &r);
			return;
		}
		long long removed = -1, by_code = -1;
		enum store_status st =
			store_room_removal_gen(c->store, c->params[0], c->user.user_id, &removed);
		if (st != STORE_OK) {
			api_fail_why(c, st);
			return;
		}
		if (join_decide(c, &r, &v[0], removed, &by_code) < 0)
			return;
		int joined = 0;
		char given[STORE_ROLE_MAX];
		st = store_room_join(c->store, c->params[0], c->user.user_id, by_code,
				     c->cfg->room_members_max, &joined, given);
		if (st == STORE_TOO_LARGE) {
			api_error(c, 409, "room_full", "this room has reached its limit of %ld members",
				  c->cfg->room_members_max);
			return;
		}
		if (st == STORE_FORBIDDEN) { /* the account was deleted while this waited */
			api_error(c, 401, "session_revoked", "the account no longer exists");
			return;
		}
		if (room_answered(c, st) < 0)
			return;
		if (!joined)
			continue;
		/* The owner may remove (or demote) the new member between the insert and this
		 * cache write, which would then put the old role back: the room is read after
		 * the write, and the entry corrected when the role differs (as GET does). The
		 * role written is the one the insert gave: a viewer who left and came back is
		 * never cached as editor, not even for a moment. */
		cache_member(c, c->params[0], c->user.user_id, given);
		st = store_room_get(c->store, c->params[0], c->user.user_id, &r);
		/* Deleted meanwhile: the DELETE's clears may both have run before the write
		 * above, which then outlives the room: take it back (no rights event: the room's
		 * streams end with `deleted`). Any other failure leaves the role unconfirmed:
		 * taken back too. */
		if (room_answered(c, st) < 0) {
			cache_take_back(c, c->params[0], c->user.user_id, st != STORE_NOT_FOUND);
			return;
		}
		if (strcmp(r.role, given) != 0 &&
		    cache_member(c, c->params[0], c->user.user_id, r.role[0] ? r.role : NULL) < 0 &&
		    cache_take_back(c, c->params[0], c->user.user_id, 1) < 0)
			return;
		cJSON *ev = cJSON_CreateObject();
		cJSON_AddStringToObject(ev, "reason", "members");
		emit_room_event(c, c->params[0], ev);
		if (!r.role[0]) { /* removed again before we could answer */
			api_error(c, 403, "removed",
				  "the owner removed you from this room; ask for a new invite link");
			return;
		}
		answer_member_room(c, &r);
		return;
	}
	api_error(c, 409, "room_changed", "the room's invite changed while you joined; try again");
}

void h_room_members(struct api_ctx *c)
{
	struct store_room r;
	if (load_visible_room(c, &r) < 0)
		return;
	/* paging (docs/API.md): ?limit=1..500 (500), ?after=<user id, a previous page's next>;
	 * neither: every member, as before there were pages. A parameter given twice is refused
	 * (api_query) rather than read one way here and another way by a cache or proxy. */
	long long limit, after;
	char text[24];
	int has_limit, has_after;
	if ((has_limit = api_query(c, "limit", text, sizeof text)) < 0 ||
	    (has_after = api_query(c, "after", text, sizeof text)) < 0 ||
	    api_query_int(c, "limit", 1, 500, 500, &limit) < 0 ||
	    api_query_int(c, "after", 1, LLONG_MAX, 0, &after) < 0)
		return;
	if (!has_limit && !has_after) {
		cJSON *members = members_json(c, c->params[0]);
		if (!members)
			return;
		answer_with(c, "members", members);
		return;
	}
	struct store_member *m;
	int n, more;
	enum store_status st =
		store_room_members_page(c->store, c->params[0], after, (int)limit, &m, &n, &more);
	if (st == STORE_INVALID) {
		api_error(c, 400, "invalid_request",
			  "after names no member of this room (any more): start from the first page");
		return;
	}
	if (st != STORE_OK) {
		api_fail_why(c, st);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(o, "members");
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(arr, member_json(&m[i]));
	if (more && n > 0)
		cJSON_AddNumberToObject(o, "next", (double)m[n - 1].id);
	else
		cJSON_AddNullToObject(o, "next");
	free(m);
	api_json(c, 200, o);
}

/* Target user id from the second path segment; -1 answered 404 when not a number or out of
 * the range of a bigint (the segment goes to PostgreSQL as it is). */
static long long target_user(struct api_ctx *c)
{
	char *end;
	errno = 0;
	long long id = strtoll(c->params[1], &end, 10);
	if (errno || *end || id <= 0) {
		api_error(c, 404, "member_not_found", "no member %s in this room", c->params[1]);
		return -1;
	}
	return id;
}

void h_member_put(struct api_ctx *c)
{
	struct valid_value v[1];
	struct store_room r;
	if (api_require_user(c) < 0 || api_body_fields(c, 0, role_fields, 1, v) < 0)
		return;
	long long target = target_user(c);
	if (target < 0 || load_room(c, &r) < 0 || require_owner(c, &r) < 0)
		return;
	if (target == c->user.user_id) {
		api_error(c, 400, "invalid_request", "the owner's own role cannot be changed");
		return;
	}
	enum store_status st = store_member_set_role(c->store, c->params[0], c->params[1], v[0].s);
	if (st == STORE_NOT_FOUND) {
		api_error(c, 404, "member_not_found", "user %s is not a member of this room",
			  c->params[1]);
		return;
	}
	if (st != STORE_OK) {
		api_fail_why(c, st);
		return;
	}
	if (cache_member(c, c->params[0], target, v[0].s) < 0) {
		revoke_failed(c);
		return;
	}
	/* A removal committed after our UPDATE may have cleared the entry before the write
	 * above put the role back: read the row again and correct (before the event, which
	 * makes the brokers look). */
	char now[STORE_ROLE_MAX];
	st = store_member_role(c->store, c->params[0], c->params[1], now);
	if (st != STORE_OK) {
		/* the role written above is confirmed by nothing: taken back */
		api_fail_why(c, st);
		cache_take_back(c, c->params[0], target, 1);
		return;
	}
	/* a correction that cannot be written: no entry is as good (PostgreSQL decides) */
	int fixed = strcmp(now, v[0].s) == 0 ||
		    cache_member(c, c->params[0], target, now[0] ? now : NULL) == 0 ||
		    (now[0] && cache_member(c, c->params[0], target, NULL) == 0);
	if (!fixed) {
		emit_rights_event(c, c->params[0], "members");
		revoke_failed(c);
		return;
	}
	/* a viewer runs nothing: what they queued as editor does not run either, and the WAIT
	 * after those cancels covers the demotion too (on one server) */
	int viewer = strcmp(now, "viewer") == 0, left = -1;
	struct rds_mark written;
	if (emit_rights_event(c, c->params[0], "members") < 0 ||
	    (left = rights_replicated(c, c->params[0], viewer ? &written : NULL)) < 0) {
		revoke_failed(c);
		return;
	}
	if (viewer && cancel_member_runs(c, c->params[0], target,
					 "cancelled: its author may no longer run code in this room",
					 left == 1 ? &written : NULL) < 0) {
		revoke_failed(c);
		return;
	}
	cJSON *members = members_json(c, c->params[0]);
	if (!members)
		return;
	answer_with(c, "members", members);
}

void h_member_delete(struct api_ctx *c)
{
	struct store_room r;
	if (api_require_user(c) < 0 || api_body_none(c) < 0)
		return;
	long long target = target_user(c);
	if (target < 0 || load_room(c, &r) < 0)
		return;
	int owner = strcmp(r.role, "owner") == 0;
	int self = target == c->user.user_id;
	if (!r.role[0] || (!owner && !self)) {
		if (r.role[0])
			api_error(c, 403, "forbidden", "only the owner may remove other members");
		else
			refuse_stranger(c);
		return;
	}
	if (owner && self) {
		api_error(c, 400, "invalid_request",
			  "the owner cannot leave the room; delete it instead");
		return;
	}
	/* the owner's removal is recorded (no old code lets them back); a member leaving may
	 * join again, a viewer as viewer (the leave records the role) */
	int removed = 0;
	enum store_status st =
		store_member_remove(c->store, c->params[0], c->params[1], owner, &removed);
	if (st != STORE_OK) {
		api_fail_why(c, st);
		return;
	}
	/* Whatever the answer, the target is no member now (never the owner: refused above).
	 * Clearing the cache on 404 too lets a retry heal an entry a removal could not clear
	 * (Redis down at the time), which would otherwise keep the room open to them. */
	if (cache_member(c, c->params[0], target, NULL) < 0) {
		revoke_failed(c);
		return;
	}
	/* On the 404 of a retry too: the first attempt may have failed before its event, and
	 * the target's open streams end only when the brokers hear one. */
	struct rds_mark written;
	int left = -1;
	if (emit_rights_event(c, c->params[0], "members") < 0 ||
	    (left = rights_replicated(c, c->params[0], &written)) < 0) {
		revoke_failed(c);
		return;
	}
	/* what they queued while a member does not run after (on a retry's 404 too: the first
	 * attempt may have failed before this); on one server the WAIT after the cancels covers
	 * the removal too */
	if (cancel_member_runs(c, c->params[0], target,
			       "cancelled: its author is no longer a member of this room",
			       left == 1 ? &written : NULL) < 0) {
		revoke_failed(c);
		return;
	}
	if (!removed) {
		api_error(c, 404, "member_not_found", "user %s is not a member of this room",
			  c->params[1]);
		return;
	}
	api_no_content(c);
}

int rooms_member_gone(struct api_ctx *c, const char *room, long long user)
{
	/* as a removal: the entry the broker and the document endpoints trust goes, then the
	 * event that makes every broker re-check the room's open streams, then the member's
	 * runs. Each is tried whatever became of the one before: nothing repeats them (a retry
	 * of the deletion knows none of the account's rooms), and the run-right mark is what
	 * refuses a run whose request read the right before the deletion's commit */
	int rc = 0;
	if (cache_member(c, room, user, NULL) < 0)
		rc = -1;
	if (emit_rights_event(c, room, "members") < 0)
		rc = -1;
	if (cancel_member_runs(c, room, user, "cancelled: its author's account was deleted",
			       NULL) < 0)
		rc = -1;
	return rc;
}

/* The owner's invite link: POST issues a new code (the old one stops working at once) and
 * switches the link on; DELETE switches it off. Each raises nothing else: members stay. */
static void invite_change(struct api_ctx *c, int rotate)
{
	struct store_room r;
	if (api_require_user(c) < 0 || api_body_none(c) < 0 || load_room(c, &r) < 0 ||
	    require_owner(c, &r) < 0)
		return;
	char invite[STORE_INVITE_LEN + 1];
	if (rotate && rnd_id(invite, STORE_INVITE_LEN) < 0) {
		api_error(c, 500, "internal", "no randomness");
		return;
	}
	enum store_status st = store_room_set_invite(c->store, c->params[0], c->user.user_id,
						     rotate ? invite : NULL, &r);
	if (room_changed(c, st) < 0)
		return;
	cJSON *room = room_to_json(c, &r);
	/* the owner's other tabs fetch the room again; the code itself is not in the event:
	 * every member receives it */
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "reason", "invite");
	emit_room_event(c, c->params[0], ev);
	answer_with(c, "room", room);
}

void h_invite_rotate(struct api_ctx *c)
{
	invite_change(c, 1);
}

void h_invite_disable(struct api_ctx *c)
{
	invite_change(c, 0);
}

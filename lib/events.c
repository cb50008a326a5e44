#include "events.h"

#include "presence.h"
#include "rds.h"
#include "rkeys.h"
#include "rscript.h"

#include <stdio.h>
#include <string.h>

static const char *const type_names[EV__COUNT] = {
	[EV_OPERATION] = "operation", [EV_PRESENCE] = "presence", [EV_JOIN] = "join",
	[EV_LEAVE] = "leave",	      [EV_ROOM] = "room",	  [EV_SNAPSHOT] = "snapshot",
	[EV_EXECUTION] = "execution", [EV_AI] = "ai",
};

const char *event_type_name(enum event_type t)
{
	return (unsigned)t < EV__COUNT ? type_names[t] : "";
}

int event_type_parse(const char *name, enum event_type *out)
{
	for (int i = 0; name && i < EV__COUNT; i++)
		if (strcmp(name, type_names[i]) == 0) {
			*out = (enum event_type)i;
			return 0;
		}
	return -1;
}

int events_emit(struct rds *r, const char *room_id, enum event_type type, const char *data_json,
		char *id_out, size_t idcap)
{
	struct rkey hkey = rkey1(RK_ROOM_EVENTS, room_id);
	const char *args[] = {hkey.s, event_type_name(type), data_json, EVENTS_HISTORY_BOUNDS};
	redisReply *rep = rds_script(r, &rs_events_emit, 1, 4, args, NULL);
	int rc = -1;
	if (!rep)
		return -1;
	if (rep->type == REDIS_REPLY_STRING) {
		rc = 0;
		if (id_out && idcap) {
			size_t n = rep->len < idcap - 1 ? rep->len : idcap - 1;
			memcpy(id_out, rep->str, n);
			id_out[n] = '\0';
		}
	}
	freeReplyObject(rep);
	return rc;
}

int events_presence_args(struct events_presence_args *a, const char *room_id, long long user_id,
			 const char *data_json, long limit)
{
	char uid[24];
	snprintf(uid, sizeof uid, "%lld", user_id);
	a->history = rkey1(RK_ROOM_EVENTS, room_id);
	a->counter = rkey2(RK_ROOM_PRESENCE_RL, room_id, uid);
	a->deleted = rkey1(RK_ROOM_DELETED, room_id);
	if (!rkey_ok(&a->history) || !rkey_ok(&a->counter) || !rkey_ok(&a->deleted))
		return -1;
	snprintf(a->limit, sizeof a->limit, "%ld", limit);
	snprintf(a->window, sizeof a->window, "%d", PRESENCE_RATE_WINDOW_MS);
	a->argv[0] = a->history.s;
	a->argv[1] = a->counter.s;
	a->argv[2] = a->deleted.s;
	a->argv[3] = data_json;
	a->argv[4] = EVENTS_HISTORY_BOUNDS;
	a->argv[5] = a->limit;
	a->argv[6] = a->window;
	return 0;
}

enum events_presence events_presence_reply(const redisReply *rep, long *retry_ms)
{
	*retry_ms = 0;
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER)
		return EVENTS_PRESENCE_ERROR;
	const redisReply *v = rep->element[1];
	if (rep->element[0]->integer == 1 && v->type == REDIS_REPLY_STRING)
		return EVENTS_PRESENCE_SENT;
	if (rep->element[0]->integer == 0 && v->type == REDIS_REPLY_INTEGER) {
		/* the rest of the window, at least a millisecond and at most one window */
		long long ms = v->integer;
		*retry_ms = ms < 1 ? 1 : ms > PRESENCE_RATE_WINDOW_MS ? PRESENCE_RATE_WINDOW_MS : (long)ms;
		return EVENTS_PRESENCE_LIMITED;
	}
	if (rep->element[0]->integer == 2)
		return EVENTS_PRESENCE_GONE;
	return EVENTS_PRESENCE_ERROR;
}

enum events_presence events_presence_emit(struct rds *r, const char *room_id, long long user_id,
					  const char *data_json, long limit, long *retry_ms)
{
	*retry_ms = 0;
	struct events_presence_args a;
	if (events_presence_args(&a, room_id, user_id, data_json, limit) < 0)
		return EVENTS_PRESENCE_ERROR;
	redisReply *rep = rds_script(r, &rs_presence_emit, 3, 7, a.argv, NULL);
	enum events_presence res = events_presence_reply(rep, retry_ms);
	if (rep)
		freeReplyObject(rep);
	return res;
}

#include "events.h"

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
	char max[16];
	struct rkey hkey = rkey1(RK_ROOM_EVENTS, room_id);
	snprintf(max, sizeof max, "%d", EVENTS_HISTORY_MAX);
	const char *args[] = {hkey.s, event_type_name(type), data_json, max};
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

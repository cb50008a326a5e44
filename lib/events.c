#include "events.h"

#include "rds.h"

#include <stdio.h>
#include <string.h>

/* The published text is built here so subscribers get exactly what XRANGE readers
 * reconstruct: {"type":…,"id":…,"data":…}. type is one of our own identifiers. */
const char events_emit_script[] =
	"local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', "
	"'type', ARGV[1], 'data', ARGV[2]) "
	"redis.call('PUBLISH', KEYS[2], '{\"type\":\"' .. ARGV[1] .. '\",\"id\":\"' .. id .. "
	"'\",\"data\":' .. ARGV[2] .. '}') "
	"return id";

void events_history_key(char *out, size_t cap, const char *room_id)
{
	snprintf(out, cap, "cc:room:%s:events", room_id);
}

void events_channel(char *out, size_t cap, const char *room_id)
{
	snprintf(out, cap, "cc:room:%s", room_id);
}

int events_emit(redisContext *r, const char *room_id, const char *type, const char *data_json,
		char *id_out, size_t idcap)
{
	char hkey[128], chan[128], max[16];
	events_history_key(hkey, sizeof hkey, room_id);
	events_channel(chan, sizeof chan, room_id);
	snprintf(max, sizeof max, "%d", EVENTS_HISTORY_MAX);
	const char *args[] = {hkey, chan, type, data_json, max};
	redisReply *rep = rds_eval(r, events_emit_script, 2, 5, args, NULL);
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

#include "store_room.h"

#include <stdio.h>
#include <string.h>

#include "rkeys.h"

enum store_status store_room_access(struct store *s, const char *room, long long user_id,
				    int edit, char role[STORE_ROLE_MAX],
				    char language[STORE_LANGUAGE_MAX], enum store_refusal *why)
{
	char uid[32];
	*why = STORE_REFUSE_NONE;
	role[0] = '\0';
	snprintf(uid, sizeof uid, "%lld", user_id);
	/* Hot path (operations, presence): members are cached in Redis by every membership
	 * change (fcgi/h_rooms.c), so a member's role needs no PostgreSQL round trip.
	 * Strangers, a cold cache, a Redis that fails and callers that need the language
	 * fall through to PostgreSQL. */
	struct rds *rd = NULL;
	if (!language && store_redis(s, &rd) == STORE_OK) {
		struct rkey mk = rkey1(RK_ROOM_MEMBERS, room);
		redisReply *rep = rds_cmd(rd, mk.s, "HGET %s %s", mk.s, uid);
		int hit = rep && rep->type == REDIS_REPLY_STRING && rep->len > 0 &&
			  rep->len < STORE_ROLE_MAX;
		if (hit)
			snprintf(role, STORE_ROLE_MAX, "%s", rep->str);
		if (!rep)
			store_redis_failed(s);
		else
			freeReplyObject(rep);
		if (hit) {
			if (edit && strcmp(role, "viewer") == 0) {
				*why = STORE_REFUSE_VIEWER;
				return store_fail(s, STORE_FORBIDDEN, "viewers can only watch this room");
			}
			return STORE_OK;
		}
	}
	const char *params[] = {room, uid};
	PGresult *r;
	enum store_status st = store_row(s, &r,
					 "SELECT r.visibility, m.role, r.language FROM rooms r "
					 "LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = $2 "
					 "WHERE r.id = $1",
					 2, params, "no room with id %s", room);
	if (st != STORE_OK)
		return st;
	int public_room = strcmp(PQgetvalue(r, 0, 0), "public") == 0;
	snprintf(role, STORE_ROLE_MAX, "%s", PQgetisnull(r, 0, 1) ? "" : PQgetvalue(r, 0, 1));
	if (language)
		snprintf(language, STORE_LANGUAGE_MAX, "%s", PQgetvalue(r, 0, 2));
	PQclear(r);
	if (!role[0] && !public_room) {
		*why = STORE_REFUSE_STRANGER;
		return store_fail(s, STORE_FORBIDDEN, "you are not a member of this room; join it "
						      "(private rooms need the invite link)");
	}
	if (edit && (!role[0] || strcmp(role, "viewer") == 0)) {
		*why = role[0] ? STORE_REFUSE_VIEWER : STORE_REFUSE_NOT_JOINED;
		return store_fail(s, STORE_FORBIDDEN, "%s",
				  role[0] ? "viewers can only watch this room" : "join the room first");
	}
	return STORE_OK;
}

enum store_status store_room_language(struct store *s, const char *room,
				      char out[STORE_LANGUAGE_MAX])
{
	const char *params[] = {room};
	PGresult *r;
	enum store_status st = store_row(s, &r, "SELECT language FROM rooms WHERE id = $1", 1,
					 params, "no room with id %s", room);
	if (st != STORE_OK)
		return st;
	snprintf(out, STORE_LANGUAGE_MAX, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return STORE_OK;
}

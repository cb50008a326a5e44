/* rights: the broker's half of "may this stream still read this room", without sockets.
 *
 * Every stream asks lib/access.h's stream question (rs_access_stream) before it starts, whatever its
 * credential (a ticket names who took it and the session it was taken with; a bearer token
 * is that session): a role or "public" lets it read, "" refuses it (403), "revoked" means the
 * session was signed out or is older than the user's token generation (401), "gone" that
 * Redis knows no such room (404). The same
 * question is asked again for the open streams of a room when its rights may have changed
 * (a `room` event "members", "updated", "invite"; a Redis reconnect) and for the streams of
 * a user when cc:access says {"user":U} (sign-out, password change), and for the streams of
 * a room when it says {"room":"R"} (the access resync made R private again). One subject is one
 * distinct (user, session, generation); one command asks about at most RIGHTS_BATCH of them.
 * hub.c sends the commands; this module builds them and reads the answers. */
#ifndef CC_BROKER_RIGHTS_H
#define CC_BROKER_RIGHTS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "access.h"
#include "id.h"
#include "token.h"

/* Subjects per Redis command: bounds one command's size (about 4 arguments a subject) and
 * the time Redis spends in one script. A room with more asks in several commands. */
#define RIGHTS_BATCH 256

struct rights_subject {
	long long user_id;
	long long gen;
	char sid[TOKEN_SID_LEN + 1];
};

enum rights_verdict {
	RIGHTS_READ,    /* a role, or a stranger in a public room */
	RIGHTS_DENIED,  /* "": no right to read the room (removed, the room went private) */
	RIGHTS_REVOKED, /* "revoked": the session was signed out or is too old */
	RIGHTS_NO_ROOM, /* "gone": Redis knows no such room (never created, or deleted): 404 */
	RIGHTS_UNKNOWN, /* not an answer the script gives: fails closed (503 at the opening; an
			 * open stream is dropped as when the check errs), said in the log */
};

/* Orders subjects (user, gen, sid) for qsort/bsearch. */
int rights_subject_cmp(const void *a, const void *b);
/* Sorts v and removes duplicates; returns the number left. */
size_t rights_subjects_unique(struct rights_subject *v, size_t n);

/* The script's answer for one subject (a Redis string of len bytes). */
enum rights_verdict rights_verdict_of(const char *answer, size_t len);

/* A cc:access message (lib/access.h): {"user":<id>}, a positive integer, or {"room":"<id>"},
 * an id of lib/id.h. A message naming both, neither, or either one of the wrong type is
 * none; other keys are ignored. A room's form is refused when the message holds any NUL
 * byte or backslash: an id needs no escape, and an escaped NUL would cut the id short. */
struct rights_access {
	long long user_id;     /* > 0: every stream of this user; 0: of the room below */
	char room[ID_MAX + 1]; /* the room's id when user_id is 0, else "" */
};
/* 0 and *a, -1 when msg[0..len) is not one. */
int rights_access_message(const char *msg, size_t len, struct rights_access *a);

/* The question about n (1..RIGHTS_BATCH) subjects of room_id, in the parts Redis Cluster
 * allows (each command in one slot): argv[0..argc) is one EVALSHA of rs_access_stream
 * (lib/lua/access_stream.lua) on the room's keys with the subjects' user ids, answering a
 * role, "public", "" or "gone" per subject (argv[0..1] are "EVALSHA" and the script's hash;
 * the hub sends it with the text instead when Redis does not know the script); skey[i] and
 * gkey[i] are subject i's session key and its user's generation key, which the hub asks with
 * EXISTS and GET (rights_subject_revoked). All point into the command's own storage. */
#define RIGHTS_TEXT_MAX 160 /* a key of a room, a session or a user; a number */
struct rights_cmd {
	int argc;
	const char **argv;
	size_t n;
	const char **skey, **gkey;
	char (*text)[RIGHTS_TEXT_MAX]; /* owned: keys and numbers */
};

/* 0, or -1 (n out of range, out of memory). Free with rights_cmd_free() either way. */
int rights_cmd_build(struct rights_cmd *cmd, const char *room_id, const struct rights_subject *v,
		     size_t n);
void rights_cmd_free(struct rights_cmd *cmd);

/* A subject's own half of the question, from the replies to EXISTS of its session key and
 * GET of its user's generation key: 1 revoked (signed out, or token_gen below the stored
 * generation; none stored counts as 0), 0 not, -1 a reply of another kind (an error). */
int rights_subject_revoked(const redisReply *exists, const redisReply *gen, long long token_gen);

#endif

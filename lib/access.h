/* access: whether a token's holder may still act, and still read a room, as the API and the
 * broker both see it in Redis. A valid signature (token.h) says who someone is; this module
 * says whether what they were given is still theirs.
 *
 * Redis layout (lib/rkeys.def):
 *   RK_ROOM_MEMBERS     hash, user id -> role (owner | editor | viewer); the API keeps it
 *                       in step with PostgreSQL's room_members
 *   RK_ROOM_VISIBILITY  "public" or "private"; the API writes it when a room is created or
 *                       changed and with every stream ticket; missing means private
 *   RK_SESSION_REVOKED  exists while a signed-out session's tokens could still be unexpired
 *                       (its TTL runs to their expiry)
 *   RK_USER_TOKGEN      the user's token generation; PostgreSQL users.token_gen is the
 *                       record and the API copies it here (access_gen_store); a token whose
 *                       gen is below it is revoked. Missing counts as 0 for the broker; the
 *                       API refills it from PostgreSQL (ACCESS_NO_GEN)
 *   RK_ACCESS_CHANNEL   pub/sub channel; a message {"user":<id>} asks every broker to
 *                       re-check every open stream of that user at once, and one
 *                       {"room":"<id>"} every open stream of that room (the access resync,
 *                       scripts/redis-resync-access.sh, sends it for a room it turned from
 *                       public back to private: no `room` event says so)
 * Rights in a room change through the room's own channel: a `room` event whose reason is
 * "members", "updated" or "invite" makes the broker re-check every stream of the room. */
#ifndef CC_ACCESS_H
#define CC_ACCESS_H

#include <hiredis/hiredis.h>

#include "rds.h"
#include <limits.h>
#include <stddef.h>

#include "token.h"


enum access_session {
	ACCESS_OK,      /* not signed out, not older than the user's generation */
	ACCESS_REVOKED, /* signed out, or issued before a password change */
	ACCESS_NO_GEN,  /* not revoked by sign-out, but Redis holds no generation for the user:
			 * read users.token_gen, access_gen_store() it, compare with t->gen */
	ACCESS_ERROR,   /* Redis failed: the caller drops the connection and answers 503 */
};

/* One round trip (two GETs pipelined: the keys live in two slots). */
enum access_session access_session_check(struct rds *r, const struct token_claims *t);

/* A replica holds key as its master has it now, whoever wrote it and however long ago
 * (REDIS_WAIT_REPLICAS; nothing to do when 0): EXISTS key on its node, then WAIT on that
 * connection. Redis's WAIT waits for the master's replication offset as of the connection's
 * last command, read or write (checked on Redis 7.0: a WAIT after a PING waits for another
 * connection's write), so the read is enough, and it puts the connection on the key's slot
 * as rds_wait asks. *exists: whether key was there. 0, or -1 with a message in err. */
int access_key_confirm(struct rds *r, const char *key, int *exists, char *err, size_t errlen);

/* After access_session_check answered ACCESS_REVOKED for t: a replica holds what revoked it
 * (access_key_confirm of the session's sign-out mark, else of the user's generation), so
 * that a 401 answered now still holds after a failover. *signed_out: what the confirm
 * learnt of the sign-out mark on the way, 1 there or 0 not, so that the caller need not
 * read it again; -1 when it read nothing (REDIS_WAIT_REPLICAS 0: no confirm is needed).
 * 0, or -1 with a message in err: not confirmed (the caller answers 503; the revocation
 * itself stands on the master). */
int access_revoked_confirm(struct rds *r, const struct token_claims *t, int *signed_out,
			   char *err, size_t errlen);

/* Raises the stored generation to gen (never lowers it). 0 or -1. */
int access_gen_store(struct rds *r, long long user_id, long long gen);

/* The generation of a deleted account (access_gen_bury): above any a token can carry. */
#define ACCESS_GEN_DELETED LLONG_MAX

/* After an account was deleted: its generation becomes ACCESS_GEN_DELETED, so that every
 * token of user_id, whatever generation it carries, is revoked for the API and the brokers
 * alike, for ttl_s seconds (at least 1): as long as a token signed before the deletion could
 * still pass token_verify. Afterwards the API finds no account in PostgreSQL. 0 or -1. */
int access_gen_bury(struct rds *r, long long user_id, long long ttl_s);

/* Marks session sid signed out for ttl_s seconds (at least 1). 0 or -1. */
int access_session_revoke(struct rds *r, const char *sid, long long ttl_s);

/* Asks every broker to re-check the streams of user_id (SPUBLISH on ACCESS_CHANNEL, a sharded
 * channel). 0 or -1. */
int access_publish_user(struct rds *r, long long user_id);

/* The broker's question about streams of one room, for any number of subjects at once, is
 * in two parts, as Redis Cluster runs a script only on keys of one slot. The room's: the
 * script rs_access_stream (lib/lua/access_stream.lua), KEYS[1] members hash, KEYS[2]
 * visibility key, ARGV the subjects' user ids, answering one string per subject, in order:
 * the role ("owner", "editor", "viewer"), "public" (no role, the room is public), "" (no
 * right to read the room) or "gone" (Redis knows no such room). Each subject's: EXISTS of
 * its session key and GET of its user's generation key; signed out, or a token older than
 * that generation, makes its answer "revoked" whatever the room said
 * (sse-broker/rights.h). */

#endif

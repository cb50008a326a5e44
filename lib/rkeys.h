/* rkeys: the names of every Redis key and channel, built from one table (rkeys.def).
 *
 * No other file of the C code spells a key: a program asks for one by its enum value and
 * the ids that fill its placeholders, e.g.
 *     struct rkey k = rkey1(RK_ROOM_DOC, room_id);   ... k.s ...
 * Scripts reach the same table through generated K_NAME() functions (lib/lua/, see
 * rscript.h). Inputs are ids the callers have validated (room, job and session ids, user
 * ids, canonical names, addresses, hex digests), far shorter than RKEY_MAX; a name that
 * would not fit, or a call with the wrong number of ids, gives an empty name (s[0] == 0)
 * that rkey_ok() reports, never a cut one. */
#ifndef CC_RKEYS_H
#define CC_RKEYS_H

#include <stddef.h>

enum rk {
#define RK(name, pattern) RK_##name,
#include "rkeys.def"
#undef RK
	RK__COUNT
};

#define RKEY_MAX 1280 /* a login key holds a name of up to 1,024 bytes */

struct rkey {
	char s[RKEY_MAX];
};

/* The pattern of a key as written in rkeys.def ("cc:room:{<room>}:doc"); NULL when out of
 * range. */
const char *rkey_pattern(enum rk id);
/* The enum name without RK_ ("ROOM_DOC"). */
const char *rkey_name(enum rk id);
/* How many placeholders the pattern has. */
int rkey_arity(enum rk id);

/* A key without placeholders (RK_JOBS, RK_ACCESS_CHANNEL, …): its name, static. */
const char *rkey0(enum rk id);
struct rkey rkey1(enum rk id, const char *a);
struct rkey rkey2(enum rk id, const char *a, const char *b);
/* One numeric placeholder (a user id). */
struct rkey rkey_id(enum rk id, long long n);
/* Fills placeholders from argv[0..argc). */
struct rkey rkey_fill(enum rk id, int argc, const char *const *argv);
int rkey_ok(const struct rkey *k);
/* rkey1 into a caller's buffer of cap bytes (for names kept in long-lived structures):
 * 0, or -1 with out = "" when the name would not fit. */
int rkey1_into(enum rk id, const char *a, char *out, size_t cap);
/* The inverse of rkey1 for a one-placeholder key: when name is that key of some id, copies
 * the id into out (cap bytes) and returns 0; -1 otherwise (also when the id would not fit
 * or would be empty). The broker reads the room of a channel message with it. */
int rkey_match1(enum rk id, const char *name, char *out, size_t cap);

#endif

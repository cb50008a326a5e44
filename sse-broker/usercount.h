/* usercount: how many streams each user holds open, counted over every process of the broker
 * (BROKER_MAX_STREAMS_PER_USER, server.c). The table lives in memory mapped before the fork
 * (main.c), so a user's streams are one count whichever process each landed on.
 *
 * A fixed-size open-addressing table of (user, count), linear probing, sized once at start
 * for the most users that can hold a stream at once: no stream is counted here without a
 * place under BROKER_MAX_STREAMS, so there are never more users than that. A user whose
 * count drops to 0 leaves the table, and the entries behind it in its probe chain are moved
 * back (backward-shift deletion), so every lookup still finds its user without tombstones
 * that would pile up over the broker's life.
 *
 * A process-shared mutex guards it: a stream opens or ends far less often than events are
 * delivered, and each change is a few probes. The mutex is robust: a process that died while
 * holding it (the whole broker then stops, main.c) does not leave the others stuck behind it
 * as they close their streams; the change it was making may be lost, which no one reads
 * afterwards, as the next broker starts with a fresh table. */
#ifndef CC_BROKER_USERCOUNT_H
#define CC_BROKER_USERCOUNT_H

#include <stddef.h>

/* the most users a table may be sized for (BROKER_MAX_STREAMS's bound, main.c) */
#define USERCOUNT_MAX_USERS 10000000L

struct usercount;

enum usercount_take {
	USERCOUNT_TAKEN,    /* counted: the stream may open */
	USERCOUNT_AT_LIMIT, /* the user holds `limit` streams already: nothing counted */
	USERCOUNT_FULL,	    /* the table holds as many users as it was made for: nothing counted */
	USERCOUNT_ERROR,    /* the lock failed: nothing counted */
};

/* Bytes of a table for at most max_users users at once; 0 when max_users is not in
 * 1 … USERCOUNT_MAX_USERS. */
size_t usercount_size(long max_users);

/* Makes a table in mem: bytes long (from usercount_size(max_users)) and zeroed, as a fresh
 * anonymous mapping is (shared, mapped before a fork, when processes share it); only the
 * pages that come to hold users are ever written. NULL when bytes is too small or the lock
 * cannot be made. */
struct usercount *usercount_init(void *mem, size_t bytes, long max_users);

/* Once no process uses the table any more. */
void usercount_destroy(struct usercount *u);

/* Counts one more stream of user if it holds fewer than limit (limit ≥ 1). */
enum usercount_take usercount_take(struct usercount *u, long long user, long limit);

/* Gives back one stream of user: 0, or -1 when it had none counted (nothing changes: a
 * count never goes below 0) or the lock failed. */
int usercount_give(struct usercount *u, long long user);

/* user's count now; -1 when the lock failed. */
long usercount_get(struct usercount *u, long long user);

/* Users with at least one stream counted; -1 when the lock failed. */
long usercount_users(struct usercount *u);

/* The slot where user's probe starts, and the number of slots (for the unit tests, which
 * build collisions on purpose). */
size_t usercount_home(const struct usercount *u, long long user);
size_t usercount_slots(const struct usercount *u);

#endif

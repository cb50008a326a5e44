#include "usercount.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "log.h"

struct usercount_entry {
	long long user;
	long count; /* 0: the slot is free */
};

struct usercount {
	pthread_mutex_t lock; /* process-shared, robust */
	size_t mask;	      /* slots - 1; slots is a power of two */
	unsigned shift;	      /* 64 - log2(slots): the hash's top bits pick the slot */
	long max_users;
	long users; /* slots in use */
	struct usercount_entry e[];
};

/* Twice the users at most: at least half the slots stay free, so a probe chain stays short
 * and always ends at a free slot. */
static size_t slots_for(long max_users)
{
	size_t n = 2;
	while (n < 2 * (size_t)max_users)
		n <<= 1;
	return n;
}

size_t usercount_size(long max_users)
{
	if (max_users < 1 || max_users > USERCOUNT_MAX_USERS)
		return 0;
	return sizeof(struct usercount) + slots_for(max_users) * sizeof(struct usercount_entry);
}

struct usercount *usercount_init(void *mem, size_t bytes, long max_users)
{
	size_t need = usercount_size(max_users);
	if (!mem || need == 0 || bytes < need)
		return NULL;
	/* the header only: the slots are zero already, and writing them would make every page
	 * of a large table resident at start */
	memset(mem, 0, sizeof(struct usercount));
	struct usercount *u = mem;
	size_t slots = slots_for(max_users);
	u->mask = slots - 1;
	u->shift = 64;
	for (size_t n = slots; n > 1; n >>= 1)
		u->shift--;
	u->max_users = max_users;
	pthread_mutexattr_t a;
	if (pthread_mutexattr_init(&a) != 0)
		return NULL;
	int ok = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) == 0 &&
		 pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) == 0 &&
		 pthread_mutex_init(&u->lock, &a) == 0;
	if (pthread_mutexattr_destroy(&a) != 0 && ok) {
		(void)pthread_mutex_destroy(&u->lock);
		ok = 0;
	}
	return ok ? u : NULL;
}

void usercount_destroy(struct usercount *u)
{
	if (u && pthread_mutex_destroy(&u->lock) != 0)
		log_warn("usercount: the lock could not be destroyed");
}

size_t usercount_slots(const struct usercount *u)
{
	return u->mask + 1;
}

/* Fibonacci hashing: the product's top bits, which every bit of the id reaches, so the
 * consecutive ids PostgreSQL hands out spread over the whole table. */
size_t usercount_home(const struct usercount *u, long long user)
{
	uint64_t x = (uint64_t)user * UINT64_C(0x9e3779b97f4a7c15);
	return (size_t)(x >> u->shift) & u->mask;
}

static int lock(struct usercount *u)
{
	int e = pthread_mutex_lock(&u->lock);
	if (e == EOWNERDEAD) {
		/* a process ended while holding it: the broker is stopping whole (main.c), and
		 * the others may still give back what they hold; the dead one's change may be
		 * half made, which is no worse than its counts that nobody gives back */
		log_warn("usercount: a broker process died holding the lock");
		e = pthread_mutex_consistent(&u->lock);
		if (e != 0) {
			(void)pthread_mutex_unlock(&u->lock);
			return -1;
		}
	}
	return e == 0 ? 0 : -1;
}

static void unlock(struct usercount *u)
{
	if (pthread_mutex_unlock(&u->lock) != 0)
		log_error("usercount: the lock could not be released");
}

/* The slot holding user, or the free slot that ends its probe chain (where it would go). */
static size_t find(const struct usercount *u, long long user)
{
	size_t i = usercount_home(u, user);
	while (u->e[i].count > 0 && u->e[i].user != user)
		i = (i + 1) & u->mask;
	return i;
}

/* Frees slot i and moves back every entry behind it in the chain that may stand earlier:
 * one whose home lies cyclically after i (within (i, j]) must stay, or a lookup starting at
 * its home would pass it by; any other takes the hole, which moves on to where it was. */
static void remove_at(struct usercount *u, size_t i)
{
	size_t j = i;
	for (;;) {
		j = (j + 1) & u->mask;
		if (u->e[j].count == 0)
			break;
		size_t h = usercount_home(u, u->e[j].user);
		if (((j - h) & u->mask) < ((j - i) & u->mask))
			continue;
		u->e[i] = u->e[j];
		i = j;
	}
	u->e[i].user = 0;
	u->e[i].count = 0;
	u->users--;
}

enum usercount_take usercount_take(struct usercount *u, long long user, long limit)
{
	if (lock(u) < 0)
		return USERCOUNT_ERROR;
	enum usercount_take r;
	size_t i = find(u, user);
	if (u->e[i].count >= limit) {
		r = USERCOUNT_AT_LIMIT;
	} else if (u->e[i].count > 0) {
		u->e[i].count++;
		r = USERCOUNT_TAKEN;
	} else if (u->users >= u->max_users) {
		r = USERCOUNT_FULL;
	} else {
		u->e[i].user = user;
		u->e[i].count = 1;
		u->users++;
		r = USERCOUNT_TAKEN;
	}
	unlock(u);
	return r;
}

int usercount_give(struct usercount *u, long long user)
{
	if (lock(u) < 0)
		return -1;
	int r = -1;
	size_t i = find(u, user);
	if (u->e[i].count > 0) {
		r = 0;
		if (--u->e[i].count == 0)
			remove_at(u, i);
	}
	unlock(u);
	return r;
}

long usercount_get(struct usercount *u, long long user)
{
	if (lock(u) < 0)
		return -1;
	long n = u->e[find(u, user)].count;
	unlock(u);
	return n;
}

long usercount_users(struct usercount *u)
{
	if (lock(u) < 0)
		return -1;
	long n = u->users;
	unlock(u);
	return n;
}

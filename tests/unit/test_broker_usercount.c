/* The broker's per-user stream counts (sse-broker/usercount.h): take, give and read back;
 * collisions built on purpose and entries removed from the middle of a probe chain; a full
 * table; many users; counts that never go below 0; a long random run checked against a plain
 * model; and processes (fork) sharing one table, one of them killed while it may hold the
 * lock. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../sse-broker/usercount.h"
#include "unit.h"

/* A table in memory every process forked afterwards shares, as the broker maps it. */
static struct usercount *table_new(long max_users, size_t *bytes)
{
	*bytes = usercount_size(max_users);
	void *mem = mmap(NULL, *bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		fprintf(stderr, "mmap: out of memory\n");
		exit(1);
	}
	struct usercount *u = usercount_init(mem, *bytes, max_users);
	if (!u) {
		fprintf(stderr, "usercount_init failed\n");
		exit(1);
	}
	return u;
}

static void table_free(struct usercount *u, size_t bytes)
{
	usercount_destroy(u);
	munmap(u, bytes);
}

static void test_sizes(void)
{
	CHECK(usercount_size(0) == 0);
	CHECK(usercount_size(-1) == 0);
	CHECK(usercount_size(USERCOUNT_MAX_USERS + 1) == 0);
	CHECK(usercount_size(1) > 0);
	CHECK(usercount_size(USERCOUNT_MAX_USERS) > usercount_size(1));
	char small[16];
	CHECK(usercount_init(small, sizeof small, 4) == NULL);
	CHECK(usercount_init(NULL, 1 << 20, 4) == NULL);

	size_t bytes;
	struct usercount *u = table_new(4, &bytes);
	CHECK(usercount_slots(u) == 8);
	for (long long user = -50; user < 50; user++)
		CHECK(usercount_home(u, user) < 8);
	table_free(u, bytes);
	/* the default BROKER_MAX_STREAMS: at least half of the slots stay free */
	u = table_new(25000, &bytes);
	CHECK(usercount_slots(u) == 65536);
	CHECK(bytes < 2u << 20);
	table_free(u, bytes);

	/* a table for a million users is 32 MiB of address space, but making it writes only
	 * its first page, and a few users only the pages of their slots */
	u = table_new(1000000, &bytes);
	long page = sysconf(_SC_PAGESIZE);
	size_t pages = (bytes + (size_t)page - 1) / (size_t)page;
	unsigned char *in = malloc(pages);
	CHECK(in != NULL && bytes >= 32u << 20);
	if (in && mincore(u, bytes, in) == 0) {
		size_t resident = 0;
		for (size_t i = 0; i < pages; i++)
			resident += in[i] & 1;
		CHECK(resident <= 2);
		for (long long user = 1; user <= 10; user++)
			CHECK(usercount_take(u, user, 1) == USERCOUNT_TAKEN);
		CHECK(mincore(u, bytes, in) == 0);
		resident = 0;
		for (size_t i = 0; i < pages; i++)
			resident += in[i] & 1;
		CHECK(resident <= 12);
	} else {
		CHECK(!"mincore");
	}
	free(in);
	table_free(u, bytes);
}

static void test_take_give(void)
{
	size_t bytes;
	struct usercount *u = table_new(10, &bytes);
	CHECK(usercount_users(u) == 0);
	CHECK(usercount_get(u, 7) == 0);
	CHECK(usercount_take(u, 7, 64) == USERCOUNT_TAKEN);
	CHECK(usercount_take(u, 7, 64) == USERCOUNT_TAKEN);
	CHECK(usercount_take(u, 8, 64) == USERCOUNT_TAKEN);
	CHECK(usercount_get(u, 7) == 2);
	CHECK(usercount_get(u, 8) == 1);
	CHECK(usercount_get(u, 9) == 0);
	CHECK(usercount_users(u) == 2);
	CHECK(usercount_give(u, 7) == 0);
	CHECK(usercount_get(u, 7) == 1);
	CHECK(usercount_users(u) == 2);
	CHECK(usercount_give(u, 7) == 0);
	CHECK(usercount_get(u, 7) == 0);
	CHECK(usercount_users(u) == 1);
	/* ids at both ends, 0 and negative ones are users like any other */
	long long odd[] = {0, -1, 1LL << 62, -(1LL << 62), 9223372036854775807LL};
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
		CHECK(usercount_take(u, odd[i], 1) == USERCOUNT_TAKEN);
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
		CHECK(usercount_get(u, odd[i]) == 1);
	CHECK(usercount_users(u) == 6);
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
		CHECK(usercount_give(u, odd[i]) == 0);
	CHECK(usercount_give(u, 8) == 0);
	CHECK(usercount_users(u) == 0);
	table_free(u, bytes);
}

static void test_limit(void)
{
	size_t bytes;
	struct usercount *u = table_new(10, &bytes);
	for (int i = 0; i < 3; i++)
		CHECK(usercount_take(u, 42, 3) == USERCOUNT_TAKEN);
	CHECK(usercount_take(u, 42, 3) == USERCOUNT_AT_LIMIT);
	CHECK(usercount_take(u, 42, 3) == USERCOUNT_AT_LIMIT);
	CHECK(usercount_get(u, 42) == 3); /* a refusal counts nothing */
	/* another user is not held back by the first one's limit */
	CHECK(usercount_take(u, 43, 3) == USERCOUNT_TAKEN);
	CHECK(usercount_give(u, 42) == 0);
	CHECK(usercount_take(u, 42, 3) == USERCOUNT_TAKEN);
	CHECK(usercount_take(u, 42, 3) == USERCOUNT_AT_LIMIT);
	/* a lower limit than the count held (the setting is the caller's): refused, kept */
	CHECK(usercount_take(u, 42, 1) == USERCOUNT_AT_LIMIT);
	CHECK(usercount_get(u, 42) == 3);
	/* a limit of 0 or less admits nothing, and leaves no entry behind */
	CHECK(usercount_take(u, 44, 0) == USERCOUNT_AT_LIMIT);
	CHECK(usercount_take(u, 44, -5) == USERCOUNT_AT_LIMIT);
	CHECK(usercount_get(u, 44) == 0);
	CHECK(usercount_users(u) == 2);
	table_free(u, bytes);
}

static void test_never_negative(void)
{
	size_t bytes;
	struct usercount *u = table_new(4, &bytes);
	CHECK(usercount_give(u, 5) == -1);
	CHECK(usercount_get(u, 5) == 0);
	CHECK(usercount_users(u) == 0);
	CHECK(usercount_take(u, 5, 10) == USERCOUNT_TAKEN);
	CHECK(usercount_give(u, 5) == 0);
	CHECK(usercount_give(u, 5) == -1);
	CHECK(usercount_give(u, 5) == -1);
	CHECK(usercount_get(u, 5) == 0);
	CHECK(usercount_users(u) == 0);
	/* a second give did not take anyone else's count */
	CHECK(usercount_take(u, 6, 10) == USERCOUNT_TAKEN);
	CHECK(usercount_give(u, 5) == -1);
	CHECK(usercount_get(u, 6) == 1);
	CHECK(usercount_users(u) == 1);
	table_free(u, bytes);
}

/* n users (from 1 up) whose probe starts at slot `home`. */
static void users_at(const struct usercount *u, size_t home, long long *out, int n)
{
	int got = 0;
	for (long long user = 1; got < n && user < 1000000; user++)
		if (usercount_home(u, user) == home)
			out[got++] = user;
	if (got < n) {
		fprintf(stderr, "no %d users with home %zu\n", n, home);
		exit(1);
	}
}

static void test_collisions(void)
{
	size_t bytes;
	struct usercount *u = table_new(8, &bytes); /* 16 slots */
	size_t n = usercount_slots(u);
	CHECK(n == 16);
	/* three users with one home h and one whose home is h + 1: the chain is a b c d, and d
	 * stands two slots past its home */
	for (size_t h = 3; h < n; h += n - 4) { /* h = 3, and h = 15 where the chain wraps to 0 */
		long long same[3], next[1];
		users_at(u, h, same, 3);
		users_at(u, (h + 1) % n, next, 1);
		long long a = same[0], b = same[1], c = same[2], d = next[0];
		CHECK(usercount_take(u, a, 9) == USERCOUNT_TAKEN);
		CHECK(usercount_take(u, b, 9) == USERCOUNT_TAKEN);
		CHECK(usercount_take(u, b, 9) == USERCOUNT_TAKEN);
		CHECK(usercount_take(u, c, 9) == USERCOUNT_TAKEN);
		for (int i = 0; i < 3; i++)
			CHECK(usercount_take(u, c, 9) == USERCOUNT_TAKEN);
		CHECK(usercount_take(u, d, 9) == USERCOUNT_TAKEN);
		CHECK(usercount_get(u, a) == 1 && usercount_get(u, b) == 2);
		CHECK(usercount_get(u, c) == 4 && usercount_get(u, d) == 1);
		/* b leaves from the middle of the chain: c and d, behind it, are still found */
		CHECK(usercount_give(u, b) == 0);
		CHECK(usercount_give(u, b) == 0);
		CHECK(usercount_get(u, b) == 0);
		CHECK(usercount_get(u, a) == 1);
		CHECK(usercount_get(u, c) == 4);
		CHECK(usercount_get(u, d) == 1);
		CHECK(usercount_users(u) == 3);
		/* the head goes: the rest still found, and counted on from where they were */
		CHECK(usercount_give(u, a) == 0);
		CHECK(usercount_get(u, c) == 4);
		CHECK(usercount_get(u, d) == 1);
		CHECK(usercount_take(u, d, 9) == USERCOUNT_TAKEN);
		CHECK(usercount_get(u, d) == 2);
		/* b comes back after them; then c, now first, goes */
		CHECK(usercount_take(u, b, 9) == USERCOUNT_TAKEN);
		for (int i = 0; i < 4; i++)
			CHECK(usercount_give(u, c) == 0);
		CHECK(usercount_give(u, c) == -1);
		CHECK(usercount_get(u, b) == 1);
		CHECK(usercount_get(u, d) == 2);
		CHECK(usercount_give(u, d) == 0);
		CHECK(usercount_give(u, d) == 0);
		CHECK(usercount_give(u, b) == 0);
		CHECK(usercount_users(u) == 0);
		for (size_t s = 0; s < n; s++) /* nothing left anywhere */
			CHECK(usercount_get(u, (long long)s) == 0);
	}
	table_free(u, bytes);
}

/* A small xorshift generator: the same run every time. */
static unsigned long long rng_state = 88172645463325252ULL;
static unsigned long long rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Random takes and gives of a pool of users in a small table (many collisions, chains that
 * wrap around), each answer and every count checked against a plain array. */
static void test_against_model(void)
{
	enum { MAXU = 12, POOL = 60, LIMIT = 3, OPS = 200000 };
	size_t bytes;
	struct usercount *u = table_new(MAXU, &bytes);
	long model[POOL] = {0};
	long users = 0, bad = 0, full = 0, at_limit = 0, removed = 0;
	for (int op = 0; op < OPS && bad == 0; op++) {
		int k = (int)(rnd() % POOL);
		long long user = 1000 + k * 37;
		if (rnd() % 2) {
			enum usercount_take want = model[k] >= LIMIT ? USERCOUNT_AT_LIMIT
						   : model[k] == 0 && users >= MAXU ? USERCOUNT_FULL
						   : USERCOUNT_TAKEN;
			if (usercount_take(u, user, LIMIT) != want)
				bad++;
			if (want == USERCOUNT_TAKEN && model[k]++ == 0)
				users++;
			full += want == USERCOUNT_FULL;
			at_limit += want == USERCOUNT_AT_LIMIT;
		} else {
			int want = model[k] > 0 ? 0 : -1;
			if (usercount_give(u, user) != want)
				bad++;
			if (want == 0 && --model[k] == 0) {
				users--;
				removed++;
			}
		}
		if (usercount_users(u) != users)
			bad++;
		if (op % 16 == 0)
			for (int j = 0; j < POOL; j++)
				if (usercount_get(u, 1000 + j * 37) != model[j])
					bad++;
	}
	CHECK(bad == 0);
	/* the run went where it should: the table full, users at their limit, many removals */
	CHECK(full > 10000);
	CHECK(at_limit > 1000);
	CHECK(removed > 3000);
	table_free(u, bytes);
}

static void test_full(void)
{
	size_t bytes;
	struct usercount *u = table_new(3, &bytes);
	CHECK(usercount_take(u, 1, 5) == USERCOUNT_TAKEN);
	CHECK(usercount_take(u, 2, 5) == USERCOUNT_TAKEN);
	CHECK(usercount_take(u, 3, 5) == USERCOUNT_TAKEN);
	CHECK(usercount_take(u, 4, 5) == USERCOUNT_FULL);
	CHECK(usercount_get(u, 4) == 0);
	/* users already there still count more streams */
	CHECK(usercount_take(u, 2, 5) == USERCOUNT_TAKEN);
	CHECK(usercount_get(u, 2) == 2);
	/* a user that leaves makes room for another */
	CHECK(usercount_give(u, 1) == 0);
	CHECK(usercount_take(u, 4, 5) == USERCOUNT_TAKEN);
	CHECK(usercount_take(u, 1, 5) == USERCOUNT_FULL);
	CHECK(usercount_users(u) == 3);
	table_free(u, bytes);
}

/* As many users as the table is made for, consecutive ids and scattered ones, then all gone
 * in another order. */
#define MANY_SEED 0x2545f4914f6cdd1dULL
static void test_many(void)
{
	enum { N = 100000 };
	size_t bytes;
	struct usercount *u = table_new(N, &bytes);
	long bad = 0;
	/* odd i: user i + 1 (2, 4, … N); even i: a scattered 63-bit id */
	rng_state = MANY_SEED;
	for (long long i = 0; i < N; i++) {
		long long user = i % 2 ? i + 1 : (long long)(rnd() >> 1);
		if (usercount_take(u, user, 64) != USERCOUNT_TAKEN)
			bad++;
	}
	CHECK(bad == 0);
	CHECK(usercount_users(u) == N);
	CHECK(usercount_take(u, -77, 64) == USERCOUNT_FULL);
	CHECK(usercount_get(u, 1) == 0 && usercount_get(u, 2) == 1 && usercount_get(u, N) == 1);
	rng_state = MANY_SEED;
	for (long long i = 0; i < N; i++) {
		long long user = i % 2 ? i + 1 : (long long)(rnd() >> 1);
		if (usercount_get(u, user) != 1)
			bad++;
	}
	CHECK(bad == 0);
	/* consecutive ids given back from the top, scattered ones in a second pass */
	for (long long i = N - 1; i >= 0; i -= 2)
		if (usercount_give(u, i + 1) != 0)
			bad++;
	CHECK(bad == 0);
	CHECK(usercount_users(u) == N / 2);
	rng_state = MANY_SEED;
	for (long long i = 0; i < N; i += 2)
		if (usercount_give(u, (long long)(rnd() >> 1)) != 0)
			bad++;
	CHECK(bad == 0);
	CHECK(usercount_users(u) == 0);
	CHECK(usercount_get(u, 2) == 0);
	table_free(u, bytes);
}

/* What the forked processes report, in memory they share with the parent. */
struct shared_report {
	atomic_long holders;	/* streams of the hot user held right now, by all */
	atomic_long over_limit; /* times someone saw more holders than the limit */
	atomic_long errors;	/* answers that were wrong for what that process held */
	atomic_long taken;	/* successful takes of the hot user */
};

enum { HOT = 1, HOT_LIMIT = 3, PROCS = 4, ROUNDS = 20000, SHARED_POOL = 40 };

/* One process: the hot user (every process, limit HOT_LIMIT), users of its own (only it
 * counts them, so their counts are known exactly), and a pool all processes share. */
static void worker(struct usercount *u, struct shared_report *rep, int k)
{
	rng_state ^= (unsigned long long)(k + 1) * 0x9e3779b97f4a7c15ULL;
	long mine[8] = {0};
	long pool[SHARED_POOL] = {0}; /* what this process holds of the shared pool */
	for (int r = 0; r < ROUNDS; r++) {
		switch (rnd() % 3) {
		case 0: {
			enum usercount_take t = usercount_take(u, HOT, HOT_LIMIT);
			if (t == USERCOUNT_TAKEN) {
				atomic_fetch_add(&rep->taken, 1);
				if (atomic_fetch_add(&rep->holders, 1) + 1 > HOT_LIMIT)
					atomic_fetch_add(&rep->over_limit, 1);
				atomic_fetch_sub(&rep->holders, 1);
				if (usercount_give(u, HOT) != 0)
					atomic_fetch_add(&rep->errors, 1);
			} else if (t != USERCOUNT_AT_LIMIT) {
				atomic_fetch_add(&rep->errors, 1);
			}
			break;
		}
		case 1: {
			int j = (int)(rnd() % 8);
			long long user = 100000LL * (k + 1) + j;
			if (rnd() % 2) {
				if (usercount_take(u, user, 1000) != USERCOUNT_TAKEN)
					atomic_fetch_add(&rep->errors, 1);
				else
					mine[j]++;
			} else if (usercount_give(u, user) != (mine[j] > 0 ? 0 : -1)) {
				atomic_fetch_add(&rep->errors, 1);
			} else if (mine[j] > 0) {
				mine[j]--;
			}
			if (usercount_get(u, user) != mine[j])
				atomic_fetch_add(&rep->errors, 1);
			break;
		}
		default: {
			int j = (int)(rnd() % SHARED_POOL);
			long long user = 500 + j;
			if (pool[j] > 0 && rnd() % 2) {
				if (usercount_give(u, user) != 0)
					atomic_fetch_add(&rep->errors, 1);
				pool[j]--;
			} else if (usercount_take(u, user, 1000000) == USERCOUNT_TAKEN) {
				pool[j]++;
			} else {
				atomic_fetch_add(&rep->errors, 1);
			}
			break;
		}
		}
	}
	/* everything back, as a process's streams all end */
	for (int j = 0; j < 8; j++)
		while (mine[j]-- > 0)
			if (usercount_give(u, 100000LL * (k + 1) + j) != 0)
				atomic_fetch_add(&rep->errors, 1);
	for (int j = 0; j < SHARED_POOL; j++)
		while (pool[j]-- > 0)
			if (usercount_give(u, 500 + j) != 0)
				atomic_fetch_add(&rep->errors, 1);
}

static void test_processes(void)
{
	size_t bytes;
	struct usercount *u = table_new(1000, &bytes);
	struct shared_report *rep = mmap(NULL, sizeof *rep, PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(rep != MAP_FAILED);
	if (rep == MAP_FAILED)
		return;
	memset(rep, 0, sizeof *rep);
	pid_t kids[PROCS];
	for (int k = 0; k < PROCS; k++) {
		kids[k] = fork();
		CHECK(kids[k] >= 0);
		if (kids[k] == 0) {
			worker(u, rep, k);
			_exit(0);
		}
	}
	int clean = 0;
	for (int k = 0; k < PROCS; k++) {
		int st;
		if (kids[k] > 0 && waitpid(kids[k], &st, 0) == kids[k] && WIFEXITED(st) &&
		    WEXITSTATUS(st) == 0)
			clean++;
	}
	CHECK(clean == PROCS);
	CHECK(atomic_load(&rep->errors) == 0);
	CHECK(atomic_load(&rep->over_limit) == 0);
	/* the hot user went back and forth between the processes */
	CHECK(atomic_load(&rep->taken) > 1000);
	/* all given back: nobody left, no count below 0 */
	CHECK(usercount_users(u) == 0);
	CHECK(usercount_get(u, HOT) == 0);
	for (int j = 0; j < SHARED_POOL; j++)
		CHECK(usercount_get(u, 500 + j) == 0);
	CHECK(usercount_take(u, HOT, 1) == USERCOUNT_TAKEN);
	CHECK(usercount_give(u, HOT) == 0);
	munmap(rep, sizeof *rep);
	table_free(u, bytes);
}

/* Every process takes the hot user as far as the limit allows and holds it: exactly the
 * limit's worth is granted, whatever the interleaving. */
static void test_processes_limit(void)
{
	size_t bytes;
	struct usercount *u = table_new(16, &bytes);
	enum { TRIES = 50 };
	pid_t kids[PROCS];
	for (int k = 0; k < PROCS; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			int got = 0;
			for (int i = 0; i < TRIES; i++)
				got += usercount_take(u, 9, 7) == USERCOUNT_TAKEN;
			_exit(got);
		}
	}
	int total = 0;
	for (int k = 0; k < PROCS; k++) {
		int st;
		if (kids[k] > 0 && waitpid(kids[k], &st, 0) == kids[k] && WIFEXITED(st))
			total += WEXITSTATUS(st);
	}
	CHECK(total == 7);
	CHECK(usercount_get(u, 9) == 7);
	table_free(u, bytes);
}

static void stuck(int sig)
{
	static const char msg[] = "FAIL: the lock stayed with a process that died holding it\n";
	(void)sig;
	(void)!write(2, msg, sizeof msg - 1);
	_exit(1);
}

/* A process killed at a random moment, often inside the lock: the others go on (the lock
 * is robust), where a plain mutex would leave them waiting forever. */
static void test_dead_holder(void)
{
	size_t bytes;
	struct usercount *u = table_new(16, &bytes);
	signal(SIGALRM, stuck);
	int ok = 0;
	for (int round = 0; round < 20; round++) {
		pid_t p = fork();
		if (p == 0) {
			for (;;) {
				if (usercount_take(u, 5, 1000000) == USERCOUNT_TAKEN)
					(void)usercount_give(u, 5);
			}
		}
		CHECK(p > 0);
		if (p < 0)
			break;
		struct timespec ts = {0, (long)(200000 + rnd() % 3000000)};
		nanosleep(&ts, NULL);
		kill(p, SIGKILL);
		waitpid(p, NULL, 0);
		alarm(30);
		long long user = 1000 + round;
		ok += usercount_take(u, user, 1) == USERCOUNT_TAKEN && usercount_get(u, user) == 1 &&
		      usercount_give(u, user) == 0;
		alarm(0);
	}
	signal(SIGALRM, SIG_DFL);
	CHECK(ok == 20);
	table_free(u, bytes);
}

int main(void)
{
	test_sizes();
	test_take_give();
	test_limit();
	test_never_negative();
	test_collisions();
	test_against_model();
	test_full();
	test_many();
	test_processes();
	test_processes_limit();
	test_dead_holder();
	return unit_summary("test_broker_usercount");
}

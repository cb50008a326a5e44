/* The per-address count of connections still sending their head (sse-broker/addrcap.c):
 * the addresses and their keys, BROKER_TRUSTED_PROXIES's parser and matching, and the table
 * (limits, giving back, colliding chains that lose an entry in the middle). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "../../sse-broker/addrcap.h"
#include "unit.h"

static void addr4(const char *s, unsigned char out[ADDRCAP_LEN])
{
	struct sockaddr_in in;
	memset(&in, 0, sizeof in);
	in.sin_family = AF_INET;
	CHECK(inet_pton(AF_INET, s, &in.sin_addr) == 1);
	CHECK(addrcap_addr((struct sockaddr *)&in, sizeof in, out) == 0);
}

static void addr6(const char *s, unsigned char out[ADDRCAP_LEN])
{
	struct sockaddr_in6 in6;
	memset(&in6, 0, sizeof in6);
	in6.sin6_family = AF_INET6;
	CHECK(inet_pton(AF_INET6, s, &in6.sin6_addr) == 1);
	CHECK(addrcap_addr((struct sockaddr *)&in6, sizeof in6, out) == 0);
}

static void test_addresses(void)
{
	unsigned char a[ADDRCAP_LEN], b[ADDRCAP_LEN], ka[ADDRCAP_LEN], kb[ADDRCAP_LEN];
	/* an IPv4 peer is the same whether the listener is IPv4 or dual-stack */
	addr4("192.0.2.7", a);
	addr6("::ffff:192.0.2.7", b);
	CHECK(memcmp(a, b, ADDRCAP_LEN) == 0);
	/* IPv4 is counted whole: two neighbours are two keys */
	addr4("192.0.2.8", b);
	addrcap_key(a, ka);
	addrcap_key(b, kb);
	CHECK(memcmp(ka, kb, ADDRCAP_LEN) != 0);
	CHECK(memcmp(ka, a, ADDRCAP_LEN) == 0);
	/* IPv6 by its /64: one key for a /64, another for the next */
	addr6("2001:db8:1:2::1", a);
	addr6("2001:db8:1:2:ffff:ffff:ffff:ffff", b);
	addrcap_key(a, ka);
	addrcap_key(b, kb);
	CHECK(memcmp(ka, kb, ADDRCAP_LEN) == 0);
	addr6("2001:db8:1:3::1", b);
	addrcap_key(b, kb);
	CHECK(memcmp(ka, kb, ADDRCAP_LEN) != 0);
	/* another family, or a length too short, is no address */
	struct sockaddr sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_family = AF_UNIX;
	CHECK(addrcap_addr(&sa, sizeof sa, a) == -1);
	struct sockaddr_in in;
	memset(&in, 0, sizeof in);
	in.sin_family = AF_INET;
	CHECK(addrcap_addr((struct sockaddr *)&in, sizeof in - 1, a) == -1);
	CHECK(addrcap_addr(NULL, 0, a) == -1);
}

static void test_trusted(void)
{
	struct addrcap_trusted t;
	char err[200];
	unsigned char a[ADDRCAP_LEN];
	CHECK(addrcap_trusted_parse(ADDRCAP_TRUSTED_DEFAULT, &t, err, sizeof err) == 0);
	CHECK(t.n == 2);
	addr4("127.0.0.1", a);
	CHECK(addrcap_trusted_has(&t, a));
	addr4("127.255.3.4", a);
	CHECK(addrcap_trusted_has(&t, a));
	addr6("::ffff:127.0.0.1", a);
	CHECK(addrcap_trusted_has(&t, a));
	addr6("::1", a);
	CHECK(addrcap_trusted_has(&t, a));
	addr4("128.0.0.1", a);
	CHECK(!addrcap_trusted_has(&t, a));
	addr6("::2", a);
	CHECK(!addrcap_trusted_has(&t, a));

	/* separators: commas and spaces, in any number; host bits of a prefix are ignored */
	CHECK(addrcap_trusted_parse(" 10.1.2.3/8 ,, 2001:db8::/32\t192.0.2.1 ", &t, err, sizeof err) == 0);
	CHECK(t.n == 3);
	addr4("10.200.0.1", a);
	CHECK(addrcap_trusted_has(&t, a));
	addr4("11.0.0.1", a);
	CHECK(!addrcap_trusted_has(&t, a));
	addr6("2001:db8:ffff::1", a);
	CHECK(addrcap_trusted_has(&t, a));
	addr6("2001:db9::1", a);
	CHECK(!addrcap_trusted_has(&t, a));
	addr4("192.0.2.1", a);
	CHECK(addrcap_trusted_has(&t, a));
	addr4("192.0.2.2", a);
	CHECK(!addrcap_trusted_has(&t, a));
	/* /0 takes everything of its family */
	CHECK(addrcap_trusted_parse("0.0.0.0/0", &t, err, sizeof err) == 0);
	addr4("203.0.113.9", a);
	CHECK(addrcap_trusted_has(&t, a));
	addr6("2001:db8::1", a);
	CHECK(!addrcap_trusted_has(&t, a));
	/* "none": nobody */
	CHECK(addrcap_trusted_parse("none", &t, err, sizeof err) == 0);
	CHECK(t.n == 0);
	addr4("127.0.0.1", a);
	CHECK(!addrcap_trusted_has(&t, a));
	CHECK(!addrcap_trusted_has(NULL, a));

	static const char *bad[] = {
		"", " , ", "localhost", "127.0.0.1/33", "::1/129", "10.0.0.0/", "10.0.0.0/-1",
		"10.0.0.0/8/8", "10.0.0.0/1x", "10.0.0.0/0008", "1.2.3", "none,127.0.0.1",
		"127.0.0.1;rm", "[::1]", "::1%lo",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		t.n = 7;
		int r = addrcap_trusted_parse(bad[i], &t, err, sizeof err);
		CHECK(r == -1);
		CHECK(t.n == 0);
		CHECK(err[0] != '\0');
		if (r != -1)
			fprintf(stderr, "  taken: \"%s\"\n", bad[i]);
	}
	/* more entries than it holds */
	char many[ADDRCAP_TRUSTED_MAX * 12 + 32];
	size_t off = 0;
	for (int i = 0; i <= ADDRCAP_TRUSTED_MAX; i++)
		off += (size_t)snprintf(many + off, sizeof many - off, "10.0.%d.1,", i);
	CHECK(addrcap_trusted_parse(many, &t, err, sizeof err) == -1);
	CHECK(strstr(err, "more than") != NULL);
}

/* The key of 10.x.y.z with xyz = n: made here without a check of its own, as the loops
 * below make hundreds of thousands (addr4's checks are the addresses test's). */
static void key_n(unsigned n, unsigned char key[ADDRCAP_LEN])
{
	struct sockaddr_in in;
	memset(&in, 0, sizeof in);
	in.sin_family = AF_INET;
	in.sin_addr.s_addr = htonl(0x0a000000u | (n & 0xffffffu));
	if (addrcap_addr((struct sockaddr *)&in, sizeof in, key) < 0)
		memset(key, 0xee, ADDRCAP_LEN); /* a key no address has: the counts then fail */
}

static void test_table(void)
{
	CHECK(addrcap_new(0, 1, 2) == NULL);
	struct addrcap *t = addrcap_new(4, 1, 2);
	CHECK(t != NULL);
	if (!t)
		return;
	unsigned char k[6][ADDRCAP_LEN];
	for (unsigned i = 0; i < 6; i++)
		key_n(i, k[i]);
	CHECK(addrcap_take(t, k[0], 2) == ADDRCAP_TAKEN);
	CHECK(addrcap_take(t, k[0], 2) == ADDRCAP_TAKEN);
	CHECK(addrcap_take(t, k[0], 2) == ADDRCAP_AT_LIMIT);
	CHECK(addrcap_get(t, k[0]) == 2);
	CHECK(addrcap_get(t, k[1]) == 0);
	CHECK(addrcap_keys(t) == 1);
	/* a lower limit later holds too */
	CHECK(addrcap_take(t, k[0], 1) == ADDRCAP_AT_LIMIT);
	CHECK(addrcap_give(t, k[0]) == 0);
	CHECK(addrcap_take(t, k[0], 2) == ADDRCAP_TAKEN);
	CHECK(addrcap_give(t, k[0]) == 0);
	CHECK(addrcap_give(t, k[0]) == 0);
	CHECK(addrcap_get(t, k[0]) == 0);
	CHECK(addrcap_keys(t) == 0);
	CHECK(addrcap_give(t, k[0]) == -1);
	/* as many keys as it was made for, then FULL; a key already in still counts */
	for (unsigned i = 0; i < 4; i++)
		CHECK(addrcap_take(t, k[i], 5) == ADDRCAP_TAKEN);
	CHECK(addrcap_take(t, k[4], 5) == ADDRCAP_FULL);
	CHECK(addrcap_take(t, k[3], 5) == ADDRCAP_TAKEN);
	CHECK(addrcap_give(t, k[1]) == 0);
	CHECK(addrcap_take(t, k[4], 5) == ADDRCAP_TAKEN);
	addrcap_free(t);
	addrcap_free(NULL);
}

/* Keys whose probes start at the same slot (and at the slot after it) make one chain; taking
 * one out of its middle must leave every other findable with its count, whichever goes. */
static void test_chains(void)
{
	struct addrcap *t = addrcap_new(64, 0x1234, 0x5678);
	CHECK(t != NULL);
	if (!t)
		return;
	size_t slots = addrcap_slots(t);
	unsigned char keys[12][ADDRCAP_LEN];
	size_t n = 0;
	/* eight keys of one home, four of the next slot's, interleaved as they come */
	unsigned char first[ADDRCAP_LEN];
	key_n(0, first);
	size_t home = addrcap_home(t, first);
	for (unsigned i = 0; i < 2000000 && n < 12; i++) {
		unsigned char k[ADDRCAP_LEN];
		key_n(i, k);
		size_t h = addrcap_home(t, k);
		size_t same = 0, next = 0;
		for (size_t j = 0; j < n; j++) {
			size_t hj = addrcap_home(t, keys[j]);
			same += hj == home;
			next += hj == ((home + 1) % slots);
		}
		if ((h == home && same < 8) || (h == (home + 1) % slots && next < 4))
			memcpy(keys[n++], k, ADDRCAP_LEN);
	}
	CHECK(n == 12);
	for (size_t round = 0; round < n; round++) {
		/* every key in, key j with count j + 1 */
		for (size_t j = 0; j < n; j++)
			for (size_t c = 0; c <= j; c++)
				CHECK(addrcap_take(t, keys[j], 100) == ADDRCAP_TAKEN);
		/* one out whole, then the others still have their counts */
		for (size_t c = 0; c <= round; c++)
			CHECK(addrcap_give(t, keys[round]) == 0);
		CHECK(addrcap_get(t, keys[round]) == 0);
		for (size_t j = 0; j < n; j++)
			if (j != round)
				CHECK(addrcap_get(t, keys[j]) == (long)j + 1);
		CHECK(addrcap_keys(t) == n - 1);
		/* and the rest out, in order */
		for (size_t j = 0; j < n; j++)
			if (j != round)
				for (size_t c = 0; c <= j; c++)
					CHECK(addrcap_give(t, keys[j]) == 0);
		CHECK(addrcap_keys(t) == 0);
	}
	/* a table that had chains is empty again: every slot free */
	for (size_t j = 0; j < n; j++)
		CHECK(addrcap_get(t, keys[j]) == 0);
	addrcap_free(t);
}

/* Many keys in and out at random against a plain array of counts. */
static void test_random(void)
{
	enum { KEYS = 300, MAXK = 200 };
	struct addrcap *t = addrcap_new(MAXK, 99, 7);
	CHECK(t != NULL);
	if (!t)
		return;
	static long want[KEYS];
	unsigned char k[ADDRCAP_LEN];
	srand(7);
	size_t live = 0;
	long bad = 0;
	for (int step = 0; step < 200000; step++) {
		unsigned i = (unsigned)rand() % KEYS;
		key_n(i * 7919u, k);
		if (rand() % 2) {
			enum addrcap_take r = addrcap_take(t, k, 3);
			enum addrcap_take expect = want[i] >= 3 ? ADDRCAP_AT_LIMIT
						   : want[i] == 0 && live >= MAXK ? ADDRCAP_FULL
						   : ADDRCAP_TAKEN;
			bad += r != expect;
			if (r == ADDRCAP_TAKEN && want[i]++ == 0)
				live++;
		} else {
			int r = addrcap_give(t, k);
			bad += r != (want[i] > 0 ? 0 : -1);
			if (want[i] > 0 && --want[i] == 0)
				live--;
		}
		if (step % 1000 == 0) {
			for (unsigned j = 0; j < KEYS; j++) {
				key_n(j * 7919u, k);
				bad += addrcap_get(t, k) != want[j];
			}
			bad += addrcap_keys(t) != live;
		}
	}
	CHECK(bad == 0);
	addrcap_free(t);
}

int main(void)
{
	test_addresses();
	test_trusted();
	test_table();
	test_chains();
	test_random();
	return unit_summary("test_broker_addrcap");
}

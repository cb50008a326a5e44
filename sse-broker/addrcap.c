#include "addrcap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the most keys a table may be made for: far above any BROKER_MAX_CLIENTS */
#define ADDRCAP_MAX_ENTRIES ((size_t)1 << 26)

static const unsigned char v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int addrcap_addr(const struct sockaddr *sa, size_t salen, unsigned char out[ADDRCAP_LEN])
{
	if (!sa)
		return -1;
	if (sa->sa_family == AF_INET && salen >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		memcpy(out, v4_prefix, sizeof v4_prefix);
		memcpy(out + 12, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && salen >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(out, &in6->sin6_addr, ADDRCAP_LEN);
		return 0;
	}
	return -1;
}

void addrcap_key(const unsigned char addr[ADDRCAP_LEN], unsigned char key[ADDRCAP_LEN])
{
	memcpy(key, addr, ADDRCAP_LEN);
	if (memcmp(addr, v4_prefix, sizeof v4_prefix) != 0)
		memset(key + 8, 0, 8);
}

/* Keeps the first bits bits of a, zeroes the rest. */
static void mask_to(unsigned char a[ADDRCAP_LEN], unsigned bits)
{
	for (unsigned i = 0; i < ADDRCAP_LEN; i++) {
		unsigned from = i * 8;
		if (bits >= from + 8)
			continue;
		a[i] = bits <= from ? 0 : (unsigned char)(a[i] & (0xff << (8 - (bits - from))));
	}
}

/* One entry, address[/bits], into net. 0, or -1 with err filled. */
static int parse_one(const char *s, size_t n, struct addrcap_net *net, char *err, size_t errlen)
{
	char tok[INET6_ADDRSTRLEN + 8];
	if (n >= sizeof tok) {
		snprintf(err, errlen, "an entry is too long (%.*s...)", 20, s);
		return -1;
	}
	memcpy(tok, s, n);
	tok[n] = '\0';
	char *slash = strchr(tok, '/');
	long bits = -1;
	if (slash) {
		*slash = '\0';
		const char *b = slash + 1;
		size_t blen = strlen(b);
		if (blen == 0 || blen > 3 || strspn(b, "0123456789") != blen) {
			snprintf(err, errlen, "%s/%s: the prefix length is not a number", tok, b);
			return -1;
		}
		bits = strtol(b, NULL, 10);
	}
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, tok, &a4) == 1) {
		if (bits > 32) {
			snprintf(err, errlen, "%s/%ld: an IPv4 prefix is 0 to 32 bits", tok, bits);
			return -1;
		}
		memcpy(net->addr, v4_prefix, sizeof v4_prefix);
		memcpy(net->addr + 12, &a4, 4);
		net->bits = 96 + (unsigned)(bits < 0 ? 32 : bits);
	} else if (inet_pton(AF_INET6, tok, &a6) == 1) {
		if (bits > 128) {
			snprintf(err, errlen, "%s/%ld: an IPv6 prefix is 0 to 128 bits", tok, bits);
			return -1;
		}
		memcpy(net->addr, &a6, ADDRCAP_LEN);
		net->bits = (unsigned)(bits < 0 ? 128 : bits);
	} else {
		snprintf(err, errlen, "%s is not an IPv4 or IPv6 address", tok);
		return -1;
	}
	mask_to(net->addr, net->bits);
	return 0;
}

int addrcap_trusted_parse(const char *s, struct addrcap_trusted *out, char *err, size_t errlen)
{
	static const char sep[] = ", \t";
	out->n = 0;
	if (strcmp(s, "none") == 0)
		return 0;
	const char *p = s;
	for (;;) {
		p += strspn(p, sep);
		if (!*p)
			break;
		size_t n = strcspn(p, sep);
		if (out->n >= ADDRCAP_TRUSTED_MAX) {
			snprintf(err, errlen, "names more than %d entries", ADDRCAP_TRUSTED_MAX);
			out->n = 0;
			return -1;
		}
		if (parse_one(p, n, &out->nets[out->n], err, errlen) < 0) {
			out->n = 0;
			return -1;
		}
		out->n++;
		p += n;
	}
	if (out->n == 0) {
		snprintf(err, errlen, "names no address (\"none\" for none)");
		return -1;
	}
	return 0;
}

int addrcap_trusted_has(const struct addrcap_trusted *t, const unsigned char addr[ADDRCAP_LEN])
{
	for (size_t i = 0; t && i < t->n; i++) {
		unsigned char a[ADDRCAP_LEN];
		memcpy(a, addr, ADDRCAP_LEN);
		mask_to(a, t->nets[i].bits);
		if (memcmp(a, t->nets[i].addr, ADDRCAP_LEN) == 0)
			return 1;
	}
	return 0;
}

/* ---- the count ---- */

struct addrcap_entry {
	unsigned char key[ADDRCAP_LEN];
	long count; /* 0: a free slot */
};

struct addrcap {
	uint64_t s0, s1;
	size_t max, nkeys, mask;
	struct addrcap_entry *e;
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

size_t addrcap_home(const struct addrcap *t, const unsigned char key[ADDRCAP_LEN])
{
	uint64_t a, b;
	memcpy(&a, key, 8);
	memcpy(&b, key + 8, 8);
	uint64_t h = mix64(a ^ t->s0);
	h = mix64(h ^ b ^ t->s1);
	return (size_t)h & t->mask;
}

size_t addrcap_slots(const struct addrcap *t)
{
	return t->mask + 1;
}

struct addrcap *addrcap_new(size_t max_entries, uint64_t seed0, uint64_t seed1)
{
	if (max_entries < 1 || max_entries > ADDRCAP_MAX_ENTRIES)
		return NULL;
	size_t slots = 8;
	while (slots < 2 * max_entries)
		slots *= 2;
	struct addrcap *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->e = calloc(slots, sizeof *t->e);
	if (!t->e) {
		free(t);
		return NULL;
	}
	t->s0 = seed0;
	t->s1 = seed1;
	t->max = max_entries;
	t->mask = slots - 1;
	return t;
}

void addrcap_free(struct addrcap *t)
{
	if (!t)
		return;
	free(t->e);
	free(t);
}

/* key's slot, or where it would go (a free slot); the table always has a free slot */
static size_t find(const struct addrcap *t, const unsigned char key[ADDRCAP_LEN])
{
	size_t i = addrcap_home(t, key);
	while (t->e[i].count != 0 && memcmp(t->e[i].key, key, ADDRCAP_LEN) != 0)
		i = (i + 1) & t->mask;
	return i;
}

enum addrcap_take addrcap_take(struct addrcap *t, const unsigned char key[ADDRCAP_LEN], long limit)
{
	size_t i = find(t, key);
	struct addrcap_entry *e = &t->e[i];
	if (e->count != 0) {
		if (e->count >= limit)
			return ADDRCAP_AT_LIMIT;
		e->count++;
		return ADDRCAP_TAKEN;
	}
	if (limit < 1)
		return ADDRCAP_AT_LIMIT;
	if (t->nkeys >= t->max)
		return ADDRCAP_FULL;
	memcpy(e->key, key, ADDRCAP_LEN);
	e->count = 1;
	t->nkeys++;
	return ADDRCAP_TAKEN;
}

int addrcap_give(struct addrcap *t, const unsigned char key[ADDRCAP_LEN])
{
	size_t i = find(t, key);
	if (t->e[i].count == 0)
		return -1;
	if (--t->e[i].count > 0)
		return 0;
	t->nkeys--;
	/* backward-shift deletion: an entry after the hole moves into it unless its home lies
	 * cyclically in (hole, its slot], where the move would put it before its home */
	for (size_t j = (i + 1) & t->mask; t->e[j].count != 0; j = (j + 1) & t->mask) {
		size_t h = addrcap_home(t, t->e[j].key);
		int stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
		if (stays)
			continue;
		t->e[i] = t->e[j];
		i = j;
	}
	memset(&t->e[i], 0, sizeof t->e[i]);
	return 0;
}

long addrcap_get(const struct addrcap *t, const unsigned char key[ADDRCAP_LEN])
{
	return t->e[find(t, key)].count;
}

size_t addrcap_keys(const struct addrcap *t)
{
	return t->nkeys;
}

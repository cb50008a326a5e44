/* addrcap: connections still sending their request head, counted per client address
 * (BROKER_MAX_HEADS_PER_ADDRESS, server.c), and the addresses exempt from that count
 * (BROKER_TRUSTED_PROXIES: the front doors that carry many clients' requests on their own
 * connections).
 *
 * No sockets here (docs/CONVENTIONS.md §5): the server hands in the peer's sockaddr, the
 * unit tests drive the rest directly.
 *
 * Addresses are kept as 16 bytes, IPv4 in its IPv4-mapped IPv6 form (::ffff:a.b.c.d), so an
 * IPv4 peer of a dual-stack listener and one of an IPv4 listener are the same. The count's
 * key is the whole address for IPv4 and the /64 prefix for IPv6: one host or site is
 * normally handed a whole /64, and a per-/128 count would let it open as many connections as
 * it has addresses.
 *
 * The count is one process's (each broker process takes its share of the connections): a
 * fixed-size open-addressing table of (key, count), linear probing, sized once for every
 * connection the process may hold, so it never fills and at least half its slots stay free.
 * A key whose count drops to 0 leaves, and the entries behind it in its chain move back
 * (backward-shift deletion), so lookups need no tombstones. The hash is keyed with random
 * bits drawn at start: the keys come from clients, who must not be able to pile their
 * addresses into one chain. */
#ifndef CC_BROKER_ADDRCAP_H
#define CC_BROKER_ADDRCAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADDRCAP_LEN 16

/* the most entries BROKER_TRUSTED_PROXIES may name */
#define ADDRCAP_TRUSTED_MAX 64

/* BROKER_TRUSTED_PROXIES's default: the loopback addresses, where a front door on the same
 * host (lighttpd, Apache, HAProxy under make cluster) connects from */
#define ADDRCAP_TRUSTED_DEFAULT "127.0.0.0/8,::1"

struct addrcap_net {
	unsigned char addr[ADDRCAP_LEN]; /* bits past `bits` are zero */
	unsigned bits;			 /* prefix length over the 16 bytes (IPv4: 96 + n) */
};

struct addrcap_trusted {
	struct addrcap_net nets[ADDRCAP_TRUSTED_MAX];
	size_t n;
};

/* The peer's address in sa as 16 bytes. 0, or -1 for a family other than AF_INET and
 * AF_INET6 (or a length too short for it). */
int addrcap_addr(const struct sockaddr *sa, size_t salen, unsigned char out[ADDRCAP_LEN]);

/* The count's key of an address from addrcap_addr: IPv4 (mapped) whole, IPv6 its /64. */
void addrcap_key(const unsigned char addr[ADDRCAP_LEN], unsigned char key[ADDRCAP_LEN]);

/* Parses a list of addresses and prefixes, separated by commas and/or spaces: each an IPv4
 * or IPv6 address, optionally /bits (0-32, 0-128). "none" alone is the empty list. 0, or -1
 * with err saying what is wrong (out is then left empty). */
int addrcap_trusted_parse(const char *s, struct addrcap_trusted *out, char *err, size_t errlen);

/* Whether addr (from addrcap_addr) lies in one of t's prefixes (t NULL: none). */
int addrcap_trusted_has(const struct addrcap_trusted *t, const unsigned char addr[ADDRCAP_LEN]);

struct addrcap;

/* A table for at most max_entries keys at once (≥ 1), hashed with seed. NULL when out of
 * memory or max_entries is out of bounds. */
struct addrcap *addrcap_new(size_t max_entries, uint64_t seed0, uint64_t seed1);
void addrcap_free(struct addrcap *t);

enum addrcap_take {
	ADDRCAP_TAKEN,	  /* counted */
	ADDRCAP_AT_LIMIT, /* the key holds `limit` already: nothing counted */
	ADDRCAP_FULL,	  /* as many keys as the table was made for: nothing counted */
};

/* Counts one more for key if it holds fewer than limit (≥ 1). */
enum addrcap_take addrcap_take(struct addrcap *t, const unsigned char key[ADDRCAP_LEN], long limit);

/* Gives one back: 0, or -1 when key had none (nothing changes). */
int addrcap_give(struct addrcap *t, const unsigned char key[ADDRCAP_LEN]);

/* key's count now (0 when absent), and how many keys have one. */
long addrcap_get(const struct addrcap *t, const unsigned char key[ADDRCAP_LEN]);
size_t addrcap_keys(const struct addrcap *t);

/* The slot where key's probe starts, and the number of slots (for the unit tests, which
 * build colliding chains). */
size_t addrcap_home(const struct addrcap *t, const unsigned char key[ADDRCAP_LEN]);
size_t addrcap_slots(const struct addrcap *t);

#endif

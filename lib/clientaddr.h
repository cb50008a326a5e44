/* clientaddr: the part of a client's address that the API's limits per address count by.
 *
 * An IPv4 address is one client. An IPv6 client usually holds a whole /64 (SLAAC, privacy
 * addresses, a provider's delegated prefix), and can pick a new address in it for every
 * request; counted by full address it would have 2^64 windows of its own. So an IPv6 address
 * counts by its /64, as the broker's bound on connections still sending their head does
 * (sse-broker/addrcap.h). An IPv4-mapped IPv6 address (::ffff:a.b.c.d, a dual-stack socket)
 * is its IPv4 address. */
#ifndef CC_CLIENTADDR_H
#define CC_CLIENTADDR_H

#include <stddef.h>

/* Longest group written, with its NUL: an IPv6 /64 as inet_ntop writes it plus "/64". */
#define CLIENTADDR_GROUP_MAX 64

/* An address read once (REMOTE_ADDR's text), for both functions below: a caller that needs
 * the group and the network parses it once. Holds the text it was read from (borrowed: it
 * must outlive the struct). */
struct clientaddr {
	const char *text;
	int family;	     /* AF_INET (an IPv4-mapped address too), AF_INET6, 0: no address */
	unsigned char a[16]; /* AF_INET: its 4 bytes first; AF_INET6: all 16 */
};

/* Reads addr (not NULL) into ca. Text that is no IP address (a Unix socket's "", a name, a
 * zone, brackets, a port) is family 0. */
void clientaddr_parse(const char *addr, struct clientaddr *ca);

/* The group of ca in out: "192.0.2.1", "2001:db8:1:2::/64". Text that is no IP address is
 * kept as it is, cut to fit. Always NUL-terminated (cap > 0). 1 when the text was read as an
 * address, 0 when kept as text. */
int clientaddr_group(const struct clientaddr *ca, char *out, size_t cap);

/* The wider network of an IPv6 client, its /48 ("2001:db8:1::/48"), which the API counts in
 * a second, looser window next to the /64's: a /48 is what a site is commonly given, 65,536
 * /64s, and a client holding one could otherwise move to a fresh /64 for every attempt. 1
 * with the group in out; 0 (out "") for an IPv4 client, an IPv4-mapped address and text
 * that is no address, which have no wider window. cap: CLIENTADDR_GROUP_MAX. */
int clientaddr_network(const struct clientaddr *ca, char *out, size_t cap);

#endif

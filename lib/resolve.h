/* resolve: host names turned into addresses with a bound on the wait, for the programs that
 * connect by blocking calls (the API, the worker, the snapshotter; the broker has its own
 * resolver on its event loop). glibc's getaddrinfo waits as long as resolv.conf lets it
 * (`timeout:5 attempts:2` is ten seconds per nameserver) and nothing can cut it short; the
 * lookups here run in glibc's own helper threads (getaddrinfo_a) and are given up when their
 * time runs out, the caller going on at once. */
#ifndef CC_RESOLVE_H
#define CC_RESOLVE_H

#include <stddef.h>

#define RESOLVE_ADDRS_MAX 8
/* an IPv6 address with its scope ("fe80::1%eth0") fits */
#define RESOLVE_ADDR_LEN 64

/* What one host gave: its addresses as text, in the order the resolver gave them (the order
 * libpq and most clients try them), without repeats, at most RESOLVE_ADDRS_MAX; or none and
 * why ("the name H was not resolved within N ms", "cannot resolve H: ..."). */
struct resolved {
	int name; /* the host was a name (not an address), so a lookup was made or refused */
	int n;
	int family[RESOLVE_ADDRS_MAX]; /* AF_INET or AF_INET6 */
	char addr[RESOLVE_ADDRS_MAX][RESOLVE_ADDR_LEN];
	char err[300];
};

/* Looks up hosts[0..n) at once, all within timeout_ms, into out[0..n). A host that already
 * is an IPv4 or IPv6 address is taken as it is (nobody is asked). A lookup given up is
 * cancelled; one that glibc can no longer cancel is kept and freed by a later call once it
 * ends. While RESOLVE_PENDING_MAX such lookups still wait on a silent nameserver (glibc runs
 * at most 20 at once and queues the rest, names of /etc/hosts included), a new name fails
 * at once, saying so. Returns how many hosts got an address. Thread-safe. */
#define RESOLVE_PENDING_MAX 16
int resolve_hosts(const char *const *hosts, int n, long timeout_ms, struct resolved *out);

/* resolve_hosts for one host: 0 when it got an address, else -1 (out->err says why). */
int resolve_host(const char *host, long timeout_ms, struct resolved *out);

#endif

/* resolve: a host name turned into an address with a bound on the wait, for the programs
 * that connect by blocking calls (the API, the worker, the snapshotter; the broker has its
 * own resolver on its event loop). glibc's getaddrinfo waits as long as resolv.conf lets it
 * (`timeout:5 attempts:2` is ten seconds per nameserver) and nothing can cut it short; the
 * lookup here runs in glibc's own helper thread (getaddrinfo_a) and is given up when its
 * time runs out, the caller going on at once. */
#ifndef CC_RESOLVE_H
#define CC_RESOLVE_H

#include <stddef.h>

/* The text form of host's address, in out (INET6_ADDRSTRLEN bytes fit any): host as it is
 * when it already is an IPv4 or IPv6 address (nobody is asked); else the first IPv4 address
 * the lookup gives, or failing that the first IPv6 one (as hiredis preferred IPv4). 0 on
 * success; -1 with err set ("the name H was not resolved within N ms", "cannot resolve H:
 * ...") when the name has no address or no answer came within timeout_ms. A lookup given up
 * is cancelled; one that glibc can no longer cancel is kept and freed by a later call once
 * it ends. Thread-safe. */
int resolve_host(const char *host, long timeout_ms, char *out, size_t outlen, char *err,
		 size_t errlen);

#endif

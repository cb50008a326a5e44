#include "resolve.h"

#include "clock.h"
#include "errbuf.h"

#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* One lookup handed to getaddrinfo_a: glibc's helper thread writes into cb (and its
 * ar_result) until the lookup ends, so the whole struct lives until then. */
struct lookup {
	struct gaicb cb;
	struct addrinfo hints;
	struct lookup *next;
	char host[];
};

/* Lookups given up while glibc was still running them (gai_cancel said EAI_NOTCANCELED):
 * freed by a later call once they have ended. Kept reachable, so a leak check at exit does
 * not count one that is still under way. */
static pthread_mutex_t given_up_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lookup *given_up;
static int given_up_n;

static void lookup_free(struct lookup *l)
{
	if (l->cb.ar_result)
		freeaddrinfo(l->cb.ar_result);
	free(l);
}

/* Frees the given-up lookups that have ended; how many still run. */
static int reap_given_up(void)
{
	pthread_mutex_lock(&given_up_mu);
	for (struct lookup **pp = &given_up; *pp;) {
		struct lookup *l = *pp;
		if (gai_error(&l->cb) == EAI_INPROGRESS) {
			pp = &l->next;
			continue;
		}
		*pp = l->next;
		given_up_n--;
		lookup_free(l);
	}
	int n = given_up_n;
	pthread_mutex_unlock(&given_up_mu);
	return n;
}

static void give_up(struct lookup *l)
{
	if (gai_cancel(&l->cb) == EAI_CANCELED || gai_error(&l->cb) != EAI_INPROGRESS) {
		lookup_free(l);
		return;
	}
	pthread_mutex_lock(&given_up_mu);
	l->next = given_up;
	given_up = l;
	given_up_n++;
	pthread_mutex_unlock(&given_up_mu);
}

/* The addresses of list into r, as text (getnameinfo keeps an IPv6 scope), in order, without
 * repeats; r->err when there is none. */
static void take(const char *host, const struct addrinfo *list, struct resolved *r)
{
	r->n = 0;
	for (const struct addrinfo *a = list; a && r->n < RESOLVE_ADDRS_MAX; a = a->ai_next) {
		if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
			continue;
		char text[RESOLVE_ADDR_LEN];
		if (getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, NULL, 0, NI_NUMERICHOST) != 0)
			continue;
		int seen = 0;
		for (int i = 0; i < r->n && !seen; i++)
			seen = strcmp(r->addr[i], text) == 0;
		if (seen)
			continue;
		memcpy(r->addr[r->n], text, sizeof text);
		r->family[r->n++] = a->ai_family;
	}
	if (r->n == 0)
		errbuf_set(r->err, sizeof r->err, "cannot resolve %s: no IPv4 or IPv6 address", host);
}

/* host as it is when it already is an address (AI_NUMERICHOST never asks anyone): 1, r
 * filled; 0 when it is a name. */
static int numeric(const char *host, struct resolved *r)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST};
	struct addrinfo *ai = NULL;
	if (getaddrinfo(host, NULL, &hints, &ai) != 0)
		return 0;
	take(host, ai, r);
	freeaddrinfo(ai);
	return 1;
}

int resolve_hosts(const char *const *hosts, int n, long timeout_ms, struct resolved *out)
{
	struct lookup **ls = calloc(n > 0 ? (size_t)n : 1, sizeof *ls);
	struct gaicb **list = calloc(n > 0 ? (size_t)n : 1, sizeof *list);
	int names = 0, got = 0;
	int pending = -1; /* given-up lookups still running: asked once a name is met */
	for (int i = 0; i < n; i++) {
		struct resolved *r = &out[i];
		memset(r, 0, sizeof *r);
		if (numeric(hosts[i], r))
			continue;
		r->name = 1;
		if (pending < 0)
			pending = reap_given_up();
		if (!ls || !list) {
			errbuf_set(r->err, sizeof r->err, "cannot resolve %s: out of memory", hosts[i]);
			continue;
		}
		if (pending >= RESOLVE_PENDING_MAX) {
			errbuf_set(r->err, sizeof r->err,
				   "cannot resolve %s: %d earlier lookups still wait on the nameserver",
				   hosts[i], pending);
			continue;
		}
		size_t len = strlen(hosts[i]);
		struct lookup *l = calloc(1, sizeof *l + len + 1);
		if (!l) {
			errbuf_set(r->err, sizeof r->err, "cannot resolve %s: out of memory", hosts[i]);
			continue;
		}
		memcpy(l->host, hosts[i], len + 1);
		l->hints.ai_family = AF_UNSPEC;
		l->hints.ai_socktype = SOCK_STREAM;
		l->cb.ar_name = l->host;
		l->cb.ar_request = &l->hints;
		ls[i] = l;
		list[names++] = &l->cb;
	}
	/* when not all could be queued (EAI_AGAIN, EAI_MEMORY, EAI_SYSTEM), glibc may still have
	 * queued some: each is looked at on its own below, none freed while it runs */
	int queue_rc = names > 0 ? getaddrinfo_a(GAI_NOWAIT, list, names, NULL) : 0;
	long long deadline = clock_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	/* Waited for by looking, not with gai_suspend: glibc's helper thread sets a lookup's
	 * result before it takes the lock under which it wakes the waiters, and gai_suspend
	 * leaves the waiter entry (on its own stack) in a lookup that already has a result.
	 * When two lookups end together, gai_suspend could return while the second one's
	 * thread was about to wake it through that entry, in a stack frame since reused: a
	 * crash in the helper thread (test_resolve, about 1 run in 70). A look every 0.1 ms at
	 * first, doubling to 8 ms: a name from /etc/hosts is answered within the first few. */
	long step_us = 100;
	for (;;) {
		int running = 0;
		for (int k = 0; k < names; k++)
			running += gai_error(list[k]) == EAI_INPROGRESS;
		long long left = deadline - clock_mono_ms();
		if (!running || left <= 0)
			break;
		long us = step_us < left * 1000 ? step_us : (long)(left * 1000);
		struct timespec ts = {(time_t)(us / 1000000), (us % 1000000) * 1000L};
		(void)nanosleep(&ts, NULL); /* a signal only makes the next look sooner */
		if (step_us < 8000)
			step_us *= 2;
	}
	for (int i = 0; i < n; i++) {
		struct lookup *l = ls ? ls[i] : NULL;
		if (l) {
			int e = gai_error(&l->cb);
			if (e == EAI_INPROGRESS) {
				errbuf_set(out[i].err, sizeof out[i].err,
					   "the name %s was not resolved within %ld ms", hosts[i], timeout_ms);
				give_up(l);
				continue;
			}
			if (e != 0 || (!l->cb.ar_result && queue_rc != 0))
				errbuf_set(out[i].err, sizeof out[i].err, "cannot resolve %s: %s", hosts[i],
					   gai_strerror(e != 0 ? e : queue_rc));
			else
				take(hosts[i], l->cb.ar_result, &out[i]);
			lookup_free(l);
		}
		got += out[i].n > 0;
	}
	free(ls);
	free(list);
	return got;
}

int resolve_host(const char *host, long timeout_ms, struct resolved *out)
{
	const char *const hosts[1] = {host};
	return resolve_hosts(hosts, 1, timeout_ms, out) == 1 ? 0 : -1;
}

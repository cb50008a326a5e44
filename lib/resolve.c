#include "resolve.h"

#include "clock.h"
#include "errbuf.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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

static void lookup_free(struct lookup *l)
{
	if (l->cb.ar_result)
		freeaddrinfo(l->cb.ar_result);
	free(l);
}

static void reap_given_up(void)
{
	pthread_mutex_lock(&given_up_mu);
	for (struct lookup **pp = &given_up; *pp;) {
		struct lookup *l = *pp;
		if (gai_error(&l->cb) == EAI_INPROGRESS) {
			pp = &l->next;
			continue;
		}
		*pp = l->next;
		lookup_free(l);
	}
	pthread_mutex_unlock(&given_up_mu);
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
	pthread_mutex_unlock(&given_up_mu);
}

/* The first IPv4 address of list, else its first IPv6 one, as text; -1 when it has neither. */
static int pick(const struct addrinfo *list, char *out, size_t outlen)
{
	for (int want = 0; want < 2; want++) {
		int family = want == 0 ? AF_INET : AF_INET6;
		for (const struct addrinfo *a = list; a; a = a->ai_next) {
			if (a->ai_family != family)
				continue;
			const void *src = family == AF_INET
						  ? (const void *)&((const struct sockaddr_in *)(const void *)a->ai_addr)->sin_addr
						  : (const void *)&((const struct sockaddr_in6 *)(const void *)a->ai_addr)->sin6_addr;
			if (inet_ntop(family, src, out, (socklen_t)outlen))
				return 0;
		}
	}
	return -1;
}

int resolve_host(const char *host, long timeout_ms, char *out, size_t outlen, char *err,
		 size_t errlen)
{
	unsigned char raw[sizeof(struct in6_addr)];
	size_t n = strlen(host);
	if (inet_pton(AF_INET, host, raw) == 1 || inet_pton(AF_INET6, host, raw) == 1) {
		if (n >= outlen) {
			errbuf_set(err, errlen, "cannot resolve %s: the address is too long", host);
			return -1;
		}
		memcpy(out, host, n + 1);
		return 0;
	}
	reap_given_up();
	struct lookup *l = calloc(1, sizeof *l + n + 1);
	if (!l) {
		errbuf_set(err, errlen, "cannot resolve %s: out of memory", host);
		return -1;
	}
	memcpy(l->host, host, n + 1);
	l->hints.ai_family = AF_UNSPEC;
	l->hints.ai_socktype = SOCK_STREAM;
	l->cb.ar_name = l->host;
	l->cb.ar_request = &l->hints;
	struct gaicb *list[1] = {&l->cb};
	int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
	if (rc != 0) {
		errbuf_set(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
		free(l);
		return -1;
	}
	long long deadline = clock_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	while (gai_error(&l->cb) == EAI_INPROGRESS) {
		long long left = deadline - clock_mono_ms();
		if (left <= 0)
			break;
		struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
		/* 0 once it ended, EAI_AGAIN when the time ran out, EAI_INTR on a signal: the
		 * loop looks at the lookup itself either way */
		(void)gai_suspend((const struct gaicb *const *)list, 1, &ts);
	}
	int e = gai_error(&l->cb);
	if (e == EAI_INPROGRESS) {
		give_up(l);
		errbuf_set(err, errlen, "the name %s was not resolved within %ld ms", host, timeout_ms);
		return -1;
	}
	if (e != 0) {
		errbuf_set(err, errlen, "cannot resolve %s: %s", host, gai_strerror(e));
		lookup_free(l);
		return -1;
	}
	rc = pick(l->cb.ar_result, out, outlen);
	lookup_free(l);
	if (rc < 0)
		errbuf_set(err, errlen, "cannot resolve %s: no IPv4 or IPv6 address", host);
	return rc;
}

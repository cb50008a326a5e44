/* lib/resolve.c without a nameserver: addresses are taken as they are (an IPv6 scope kept),
 * names of /etc/hosts are answered from it, several hosts at once each get their own answer,
 * and a bad name is refused at once. (A nameserver that never answers, one that answers
 * late, and the limit on lookups left waiting: tests/programs/api-dns.test.mjs.) */
#include "resolve.h"
#include "unit.h"

#include "clock.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* `test_resolve silent`, run where the only nameserver never answers (api-dns.test.mjs):
 * lookups given up pile up in glibc until RESOLVE_PENDING_MAX of them wait, and the next name
 * then fails at once, saying so, while addresses still work. */
static int silent(void)
{
	const char *names[RESOLVE_PENDING_MAX];
	char buf[RESOLVE_PENDING_MAX][32];
	struct resolved r[RESOLVE_PENDING_MAX];
	for (int i = 0; i < RESOLVE_PENDING_MAX; i++) {
		snprintf(buf[i], sizeof buf[i], "n%d.silent.test", i);
		names[i] = buf[i];
	}
	long long t0 = clock_mono_ms();
	CHECK(resolve_hosts(names, RESOLVE_PENDING_MAX, 300, r) == 0);
	long long took = clock_mono_ms() - t0;
	CHECK(took >= 280 && took < 2000);
	for (int i = 0; i < RESOLVE_PENDING_MAX; i++)
		CHECK(r[i].n == 0 && strstr(r[i].err, "was not resolved within 300 ms"));
	t0 = clock_mono_ms();
	struct resolved one;
	CHECK(resolve_host("late.silent.test", 300, &one) == -1);
	CHECK(clock_mono_ms() - t0 < 100);
	CHECK(strstr(one.err, "earlier lookups still wait on the nameserver") != NULL);
	printf("%s\n", one.err);
	CHECK(resolve_host("127.0.0.1", 300, &one) == 0);
	return unit_summary("resolve (silent nameserver)");
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "silent") == 0)
		return silent();
	struct resolved r;

	CHECK(resolve_host("127.0.0.1", 1000, &r) == 0);
	CHECK(r.n == 1 && r.family[0] == AF_INET && !r.name);
	CHECK_STR(r.addr[0], "127.0.0.1");
	CHECK(resolve_host("::1", 1000, &r) == 0);
	CHECK(r.n == 1 && r.family[0] == AF_INET6);
	CHECK_STR(r.addr[0], "::1");
	/* an address needs no time at all, and nobody is asked */
	CHECK(resolve_host("2001:db8::17", 0, &r) == 0);
	CHECK_STR(r.addr[0], "2001:db8::17");
	CHECK(resolve_host("10.1.2.3", 0, &r) == 0);
	CHECK_STR(r.addr[0], "10.1.2.3");
	/* a link-local address keeps its interface (lo exists everywhere) */
	CHECK(resolve_host("fe80::1%lo", 0, &r) == 0);
	CHECK_STR(r.addr[0], "fe80::1%lo");

	/* localhost: /etc/hosts, each address once */
	CHECK(resolve_host("localhost", 5000, &r) == 0);
	CHECK(r.name == 1 && r.n >= 1);
	int v4 = 0;
	for (int i = 0; i < r.n; i++) {
		v4 += strcmp(r.addr[i], "127.0.0.1") == 0;
		for (int j = 0; j < i; j++)
			CHECK(strcmp(r.addr[i], r.addr[j]) != 0);
	}
	CHECK(v4 == 1);

	/* several at once: each its own answer, in order */
	const char *const hosts[3] = {"localhost", "192.0.2.7", ""};
	struct resolved three[3];
	CHECK(resolve_hosts(hosts, 3, 5000, three) == 2);
	CHECK(three[0].n >= 1 && three[0].name);
	CHECK(three[1].n == 1 && !three[1].name);
	CHECK_STR(three[1].addr[0], "192.0.2.7");
	/* not a name at all: refused by the resolver itself, at once, saying so */
	CHECK(three[2].n == 0 && three[2].name);
	CHECK(strstr(three[2].err, "cannot resolve ") == three[2].err);
	CHECK(resolve_hosts(hosts, 0, 1000, three) == 0);
	return unit_summary("resolve");
}

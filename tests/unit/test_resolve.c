/* lib/resolve.c without a nameserver: addresses are taken as they are, names of /etc/hosts
 * are answered from it, and the answers that cannot fit are refused. (A nameserver that never
 * answers, and one that answers late: tests/programs/api-dns.test.mjs.) */
#include "resolve.h"
#include "unit.h"

#include <arpa/inet.h>
#include <string.h>

int main(void)
{
	char out[INET6_ADDRSTRLEN], err[300];

	CHECK(resolve_host("127.0.0.1", 1000, out, sizeof out, err, sizeof err) == 0);
	CHECK_STR(out, "127.0.0.1");
	CHECK(resolve_host("::1", 1000, out, sizeof out, err, sizeof err) == 0);
	CHECK_STR(out, "::1");
	CHECK(resolve_host("2001:db8::17", 0, out, sizeof out, err, sizeof err) == 0);
	CHECK_STR(out, "2001:db8::17");
	/* an address needs no time at all, and nobody is asked */
	CHECK(resolve_host("10.1.2.3", 0, out, sizeof out, err, sizeof err) == 0);
	CHECK_STR(out, "10.1.2.3");

	/* localhost: /etc/hosts (IPv4 first, as hiredis did) */
	CHECK(resolve_host("localhost", 5000, out, sizeof out, err, sizeof err) == 0);
	CHECK(strcmp(out, "127.0.0.1") == 0 || strcmp(out, "::1") == 0);

	/* no room for the answer */
	char tiny[4];
	err[0] = '\0';
	CHECK(resolve_host("127.0.0.1", 1000, tiny, sizeof tiny, err, sizeof err) == -1);
	CHECK(strstr(err, "cannot resolve 127.0.0.1") != NULL);
	err[0] = '\0';
	CHECK(resolve_host("localhost", 5000, tiny, sizeof tiny, err, sizeof err) == -1);
	CHECK(strstr(err, "cannot resolve localhost") != NULL);

	/* not a name at all: refused by the resolver itself, at once */
	err[0] = '\0';
	CHECK(resolve_host("", 1000, out, sizeof out, err, sizeof err) == -1);
	CHECK(err[0] != '\0');
	return unit_summary("resolve");
}

/* lib/clientaddr: the group an address is counted by in the API's limits per address. IPv4
 * whole, IPv6 by its /64, mapped IPv4 as IPv4; text that is no address kept as it is, cut to
 * fit; hostile and oversized values too. And the wider network of an IPv6 client, its /48.
 * Each address is read once (clientaddr_parse) and both are taken from that reading. */
#include <string.h>

#include "clientaddr.h"
#include "unit.h"

static char out[CLIENTADDR_GROUP_MAX];

static const char *group(const char *in, int want_rc)
{
	struct clientaddr ca;
	clientaddr_parse(in, &ca);
	memset(out, 'x', sizeof out);
	CHECK(clientaddr_group(&ca, out, sizeof out) == want_rc);
	return out;
}

static int network(const char *in)
{
	struct clientaddr ca;
	clientaddr_parse(in, &ca);
	memset(out, 'x', sizeof out);
	return clientaddr_network(&ca, out, sizeof out);
}

int main(void)
{
	static const char *const read[][2] = {
		/* IPv4: one client each, in the one spelling */
		{"192.0.2.1", "192.0.2.1"},
		{"0.0.0.0", "0.0.0.0"},
		{"255.255.255.255", "255.255.255.255"},
		/* IPv6: every address of one /64 is one group, however written */
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:0DB8:0001:0002:1234:5678:9abc:def0", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"::1", "::/64"},
		{"fe80::1", "fe80::/64"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff::/64"},
		/* an IPv4-mapped IPv6 address (a dual-stack socket) is its IPv4 address */
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"::ffff:c000:201", "192.0.2.1"},
	};
	for (size_t i = 0; i < sizeof read / sizeof read[0]; i++)
		CHECK_STR(group(read[i][0], 1), read[i][1]);
	/* not an address: kept as text (a Unix socket's empty address, a name, a zone, a port,
	 * brackets, IPv4 forms inet_pton refuses, spaces) */
	static const char *text[] = {"",
				     "unix:/run/x.sock",
				     "localhost",
				     "fe80::1%eth0",
				     "[2001:db8::1]",
				     "192.0.2.1:80",
				     "192.0.2",
				     "0x7f.1",
				     "192.0.2.1 ",
				     " 192.0.2.1",
				     "2001:db8::1::2",
				     "192.0.2.256",
				     NULL};
	for (int i = 0; text[i]; i++)
		CHECK_STR(group(text[i], 0), text[i]);
	/* oversized text is cut to fit, always terminated */
	char big[4 * CLIENTADDR_GROUP_MAX];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	group(big, 0);
	CHECK(strlen(out) == CLIENTADDR_GROUP_MAX - 1);
	CHECK(strncmp(out, big, CLIENTADDR_GROUP_MAX - 1) == 0);
	/* the longest group fits */
	CHECK(strlen(group("ffff:ffff:ffff:ffff:1:1:1:1", 1)) < CLIENTADDR_GROUP_MAX - 1);
	/* no room at all: nothing written */
	char one = 'z';
	struct clientaddr ca;
	clientaddr_parse("192.0.2.1", &ca);
	CHECK(clientaddr_group(&ca, &one, 0) == 0 && one == 'z');
	/* the wider network: an IPv6 client's /48; nothing for IPv4, mapped IPv4 or text */
	static const char *const nets[][2] = {
		{"2001:db8:1:2::1", "2001:db8:1::/48"},
		{"2001:db8:1:ffff:ffff:ffff:ffff:ffff", "2001:db8:1::/48"},
		{"2001:0DB8:0001:0002:1234:5678:9abc:def0", "2001:db8:1::/48"},
		{"2001:db8:2::1", "2001:db8:2::/48"},
		{"::1", "::/48"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff::/48"},
	};
	for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++) {
		CHECK(network(nets[i][0]) == 1);
		CHECK_STR(out, nets[i][1]);
	}
	const char *const no_net[] = {"192.0.2.1", "::ffff:192.0.2.1", "", "localhost",
					     "fe80::1%eth0", "[2001:db8::1]", big};
	for (size_t i = 0; i < sizeof no_net / sizeof no_net[0]; i++) {
		CHECK(network(no_net[i]) == 0);
		CHECK_STR(out, "");
	}
	clientaddr_parse("2001:db8::1", &ca);
	CHECK(clientaddr_network(&ca, &one, 0) == 0 && one == 'z');
	/* one reading gives both, as the sign-in's windows take them: the group and the
	 * network of the same address, and a mapped address's group with no network */
	char net[CLIENTADDR_GROUP_MAX];
	clientaddr_parse("2001:db8:1:2:3:4:5:6", &ca);
	CHECK(clientaddr_group(&ca, out, sizeof out) == 1);
	CHECK(clientaddr_network(&ca, net, sizeof net) == 1);
	CHECK_STR(out, "2001:db8:1:2::/64");
	CHECK_STR(net, "2001:db8:1::/48");
	clientaddr_parse("::ffff:198.51.100.7", &ca);
	CHECK(clientaddr_group(&ca, out, sizeof out) == 1);
	CHECK(clientaddr_network(&ca, net, sizeof net) == 0);
	CHECK_STR(out, "198.51.100.7");
	CHECK_STR(net, "");
	return unit_summary("clientaddr");
}

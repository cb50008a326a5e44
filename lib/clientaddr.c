/* clientaddr: see clientaddr.h. */
#include "clientaddr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* ::ffff:0:0/96, an IPv4 address on a dual-stack socket */
static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int clientaddr_group(const char *addr, char *out, size_t cap)
{
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];
	if (cap == 0)
		return 0;
	if (inet_pton(AF_INET, addr, a) == 1) {
		if (!inet_ntop(AF_INET, a, text, sizeof text))
			goto as_text;
		snprintf(out, cap, "%s", text);
		return 1;
	}
	if (inet_pton(AF_INET6, addr, a) != 1)
		goto as_text;
	if (memcmp(a, v4_mapped, sizeof v4_mapped) == 0) {
		if (!inet_ntop(AF_INET, a + 12, text, sizeof text))
			goto as_text;
		snprintf(out, cap, "%s", text);
		return 1;
	}
	memset(a + 8, 0, 8);
	if (!inet_ntop(AF_INET6, a, text, sizeof text))
		goto as_text;
	snprintf(out, cap, "%s/64", text);
	return 1;
as_text:
	snprintf(out, cap, "%s", addr);
	return 0;
}

int clientaddr_network(const char *addr, char *out, size_t cap)
{
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];
	if (cap == 0)
		return 0;
	out[0] = '\0';
	if (inet_pton(AF_INET6, addr, a) != 1 || memcmp(a, v4_mapped, sizeof v4_mapped) == 0)
		return 0;
	memset(a + 6, 0, 10);
	if (!inet_ntop(AF_INET6, a, text, sizeof text))
		return 0;
	snprintf(out, cap, "%s/48", text);
	return 1;
}

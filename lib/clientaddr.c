/* clientaddr: see clientaddr.h. */
#include "clientaddr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* ::ffff:0:0/96, an IPv4 address on a dual-stack socket */
static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

void clientaddr_parse(const char *addr, struct clientaddr *ca)
{
	memset(ca, 0, sizeof *ca);
	ca->text = addr;
	if (inet_pton(AF_INET, addr, ca->a) == 1) {
		ca->family = AF_INET;
		return;
	}
	if (inet_pton(AF_INET6, addr, ca->a) != 1) {
		memset(ca->a, 0, sizeof ca->a);
		return;
	}
	if (memcmp(ca->a, v4_mapped, sizeof v4_mapped) == 0) {
		memmove(ca->a, ca->a + 12, 4);
		memset(ca->a + 4, 0, 12);
		ca->family = AF_INET;
		return;
	}
	ca->family = AF_INET6;
}

int clientaddr_group(const struct clientaddr *ca, char *out, size_t cap)
{
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];
	if (cap == 0)
		return 0;
	if (ca->family == AF_INET) {
		if (!inet_ntop(AF_INET, ca->a, text, sizeof text))
			goto as_text;
		snprintf(out, cap, "%s", text);
		return 1;
	}
	if (ca->family != AF_INET6)
		goto as_text;
	memcpy(a, ca->a, 8);
	memset(a + 8, 0, 8);
	if (!inet_ntop(AF_INET6, a, text, sizeof text))
		goto as_text;
	snprintf(out, cap, "%s/64", text);
	return 1;
as_text:
	snprintf(out, cap, "%s", ca->text);
	return 0;
}

int clientaddr_network(const struct clientaddr *ca, char *out, size_t cap)
{
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];
	if (cap == 0)
		return 0;
	out[0] = '\0';
	if (ca->family != AF_INET6)
		return 0;
	memcpy(a, ca->a, 6);
	memset(a + 6, 0, 10);
	if (!inet_ntop(AF_INET6, a, text, sizeof text))
		return 0;
	snprintf(out, cap, "%s/48", text);
	return 1;
}

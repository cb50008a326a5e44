#include "rnd.h"

#include <errno.h>
#include <sys/random.h>

int rnd_bytes(void *out, size_t n)
{
	unsigned char *p = out;
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int rnd_id(char *out, size_t n)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	size_t i = 0;
	while (i < n) {
		unsigned char b[32];
		if (rnd_bytes(b, sizeof b) < 0)
			return -1;
		/* reject 252..255 so every character is equally likely (252 = 7 * 36) */
		for (size_t k = 0; k < sizeof b && i < n; k++)
			if (b[k] < 252)
				out[i++] = alphabet[b[k] % 36];
	}
	out[n] = '\0';
	return 0;
}

int rnd_hex(char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[64];
	size_t done = 0;
	while (done < n) {
		size_t chunk = n - done < sizeof b ? n - done : sizeof b;
		if (rnd_bytes(b, chunk) < 0)
			return -1;
		for (size_t k = 0; k < chunk; k++) {
			out[2 * (done + k)] = hex[b[k] >> 4];
			out[2 * (done + k) + 1] = hex[b[k] & 15];
		}
		done += chunk;
	}
	out[2 * n] = '\0';
	return 0;
}

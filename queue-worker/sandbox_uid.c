/* sandbox_uid: see sandbox_uid.h. */
#include "sandbox_uid.h"

#include "errbuf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* s as a decimal number of at most max: digits only (no sign, no space), -1 otherwise. */
static long long parse_id(const char *s, long long max)
{
	long long v = 0;
	if (!*s)
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
		if (v > max)
			return -1;
	}
	return v;
}

int sandbox_uid_range_parse(const char *base_s, const char *count_s, unsigned *base,
			    unsigned *count, char *err, size_t errlen)
{
	long long b = SANDBOX_UID_BASE_DEFAULT, n = SANDBOX_UID_COUNT_DEFAULT;
	if (base_s && *base_s && ((b = parse_id(base_s, SANDBOX_UID_LAST_MAX)) < 1)) {
		errbuf_set(err, errlen, "SANDBOX_UID_BASE must be an integer from 1 to %ld (got \"%s\")",
			   SANDBOX_UID_LAST_MAX, base_s);
		return -1;
	}
	if (count_s && *count_s && ((n = parse_id(count_s, SANDBOX_UID_COUNT_MAX)) < 1)) {
		errbuf_set(err, errlen, "SANDBOX_UID_COUNT must be an integer from 1 to %ld (got \"%s\")",
			   SANDBOX_UID_COUNT_MAX, count_s);
		return -1;
	}
	long long last = b + n - 1;
	if (last > SANDBOX_UID_LAST_MAX) {
		errbuf_set(err, errlen, "SANDBOX_UID_BASE + SANDBOX_UID_COUNT - 1 must be at most %ld "
					"(got %lld + %lld - 1)", SANDBOX_UID_LAST_MAX, b, n);
		return -1;
	}
	if (b <= 65535 && last >= 65534) {
		errbuf_set(err, errlen, "the sandbox's host uids, SANDBOX_UID_BASE %lld to %lld, must not "
					"include 65534 (nobody, which other services run as) or 65535", b, last);
		return -1;
	}
	*base = (unsigned)b;
	*count = (unsigned)n;
	return 0;
}

/* The field'th (from 0) colon-separated field of line [p, end) as an id; -1 when absent
 * or not a number. */
static long long field_id(const char *p, const char *end, int field)
{
	for (int f = 0; f < field; f++) {
		const char *c = memchr(p, ':', (size_t)(end - p));
		if (!c)
			return -1;
		p = c + 1;
	}
	const char *c = memchr(p, ':', (size_t)(end - p));
	const char *stop = c ? c : end;
	char num[16];
	size_t len = (size_t)(stop - p);
	if (len == 0 || len >= sizeof num)
		return -1;
	memcpy(num, p, len);
	num[len] = '\0';
	return parse_id(num, SANDBOX_UID_LAST_MAX + 1);
}

int sandbox_uid_range_used(const char *text, char kind, unsigned base, unsigned count,
			   char *who, size_t whosize)
{
	long long lo = base, hi = (long long)base + count; /* [lo, hi) */
	for (const char *p = text; *p;) {
		const char *end = strchr(p, '\n');
		if (!end)
			end = p + strlen(p);
		long long first = -1, n = 1;
		if (*p != '#') {
			if (kind == 'p') {
				first = field_id(p, end, 2);
			} else {
				first = field_id(p, end, 1);
				n = field_id(p, end, 2);
			}
		}
		if (first >= 0 && n > 0 && first < hi && first + n > lo) {
			const char *colon = memchr(p, ':', (size_t)(end - p));
			int len = (int)((colon ? colon : end) - p);
			snprintf(who, whosize, "%.*s", len, p);
			return 1;
		}
		p = *end ? end + 1 : end;
	}
	return 0;
}

/* A process-wide turn, so that consecutive steps start looking at different uids. */
static unsigned next_turn;

int uid_lease_take(unsigned base, unsigned count, struct uid_lease *l)
{
	l->fd = -1;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* and workers of one host at different places of the range, by their pids */
	unsigned turn = __atomic_fetch_add(&next_turn, 1, __ATOMIC_RELAXED);
	unsigned start = (turn + (unsigned)getpid() * 2654435761u) % count;
	for (unsigned i = 0; i < count; i++) {
		unsigned uid = base + (start + i) % count;
		struct sockaddr_un a;
		memset(&a, 0, sizeof a);
		a.sun_family = AF_UNIX;
		/* sun_path[0] stays '\0': an abstract name, its length given by the address size */
		int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "%s%u",
				 SANDBOX_UID_SOCKET_PREFIX, uid);
		socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
		if (bind(fd, (const struct sockaddr *)&a, len) == 0) {
			l->fd = fd;
			l->uid = uid;
			return 0;
		}
		if (errno != EADDRINUSE) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
	}
	close(fd);
	errno = EADDRINUSE;
	return -1;
}

void uid_lease_give(struct uid_lease *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

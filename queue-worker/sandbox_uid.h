/* sandbox_uid: the host uid a running step has to itself. The kernel counts some resources
 * per host user whatever the namespaces (inotify instances, queued signals and POSIX
 * timers, POSIX message queue bytes, pipe buffers, descriptors in flight), so two steps
 * sharing a host uid share those counts: each step therefore runs as a host uid of its own
 * from the range SANDBOX_UID_BASE .. SANDBOX_UID_BASE + SANDBOX_UID_COUNT - 1 (inside the
 * sandbox it is still SANDBOX_INNER_ID). A uid is held for the step's life by an abstract
 * unix socket bound to a name made from it: one name exists once per network namespace,
 * whatever process or worker holds it, and the kernel frees it when the socket is closed,
 * at the step's end or when the worker dies, so nothing is left to clean up. */
#ifndef CC_SANDBOX_UID_H
#define CC_SANDBOX_UID_H

#include <stddef.h>

/* What programs in the sandbox see as their uid and gid (bwrap --uid, --gid). */
#define SANDBOX_INNER_ID 65534u

/* The default range: 0x7FFF0000, the block systemd's user and group id table leaves unused
 * (past its container and foreign image ranges, below 2^31 - 1), far above Debian's
 * regular users (1000..60000) and subordinate ids (useradd: 100000..600100000). */
#define SANDBOX_UID_BASE_DEFAULT 2147418112L
#define SANDBOX_UID_COUNT_DEFAULT 1024L
#define SANDBOX_UID_COUNT_MAX 65536L
/* the highest uid a range may reach: 4294967295 is (uid_t)-1 */
#define SANDBOX_UID_LAST_MAX 4294967294L

/* Prefix of the abstract socket names ("\0codecollab-sandbox-uid-<uid>"). */
#define SANDBOX_UID_SOCKET_PREFIX "codecollab-sandbox-uid-"

/* How long a step waits for a uid of the range when every one is held, and how often it
 * looks again. */
#define SANDBOX_UID_WAIT_MS 2000
#define SANDBOX_UID_RETRY_MS 20

/* The range from its two settings: 0 when base and count are integers in range and the
 * range neither reaches past SANDBOX_UID_LAST_MAX nor holds 65534 (nobody, which other
 * services run as) or 65535 ((uid_t)-1 of 16 bits); else -1 and a message naming the
 * variables in err. NULL or "" take the defaults. */
int sandbox_uid_range_parse(const char *base_s, const char *count_s, unsigned *base,
			    unsigned *count, char *err, size_t errlen);

/* 1 when text, the contents of /etc/passwd (kind 'p': uid the third field) or of
 * /etc/subuid (kind 's': name:first:count), names a uid of [base, base + count); the
 * first such line's name goes into who (of whosize). 0 when none; malformed lines are
 * skipped. */
int sandbox_uid_range_used(const char *text, char kind, unsigned base, unsigned count,
			   char *who, size_t whosize);

/* A uid held for one step. */
struct uid_lease {
	int fd; /* the bound socket; -1 when none is held */
	unsigned uid;
};

/* Takes a uid of [base, base + count) nobody holds, starting at a different one each time
 * so a uid just given back is not the next one handed out: 0 with l filled, -1 with errno
 * EADDRINUSE when every one is held (or another errno when no socket could be made). */
int uid_lease_take(unsigned base, unsigned count, struct uid_lease *l);

/* Gives l's uid back (nothing when none is held). */
void uid_lease_give(struct uid_lease *l);

#endif

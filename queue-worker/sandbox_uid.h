/* sandbox_uid: the host uid a running step has to itself. The kernel counts some resources
 * per host user whatever the namespaces (inotify instances, queued signals and POSIX
 * timers, POSIX message queue bytes, pipe buffers, descriptors in flight), so two steps
 * sharing a host uid share those counts: each step therefore runs as a host uid of its own
 * from the range SANDBOX_UID_BASE .. SANDBOX_UID_BASE + SANDBOX_UID_COUNT - 1 (inside the
 * sandbox it is still SANDBOX_INNER_ID). A uid is held for the step's life by an exclusive
 * flock on "<uid>.lock" in a directory only the worker's user may write
 * (SANDBOX_UID_LOCK_DIR): every worker of the host locks the same files, whatever its
 * network namespace, nobody else can create or even open them, and the kernel drops the
 * lock when the descriptor is closed, at the step's end or when the worker dies, so
 * nothing is left to clean up. A uid is handed out, and given back, only when no live
 * process runs as it (uid_procs_kill): a step's processes can outlive bwrap for a moment,
 * and a dead worker's steps outlive its locks. */
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

/* Where the lock files are unless SANDBOX_UID_LOCK_DIR says otherwise, and their names'
 * end ("2147418112.lock"). */
#define SANDBOX_UID_LOCK_DIR_DEFAULT "/run/codecollab-sandbox-uids"
#define SANDBOX_UID_LOCK_SUFFIX ".lock"

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

/* The lock files' directory at path, opened (O_DIRECTORY, O_NOFOLLOW, close-on-exec) for
 * uid_lease_take: made first (mode 0700) when it does not exist, its parent existing. -1
 * and a message naming path and SANDBOX_UID_LOCK_DIR in err when path is not absolute,
 * cannot be made or opened, is a symbolic link or no directory, is not owned by the
 * process's effective uid, or may be written by its group or others: whoever could write
 * there could hold the range's uids or plant what the worker would open. */
int sandbox_uid_dir_open(const char *path, char *err, size_t errlen);

/* A uid held for one step. */
struct uid_lease {
	int fd; /* the locked file; -1 when none is held */
	unsigned uid;
};

/* Takes a uid of [base, base + count) nobody holds, by its lock file in dir_fd (from
 * sandbox_uid_dir_open; made, mode 0600, when missing, never through a symbolic link),
 * starting at a different one each time so a uid just given back is not the next one
 * handed out: 0 with l filled, -1 with errno EWOULDBLOCK when every one is held (or
 * another errno when a lock file could not be opened). A uid whose lock is free but as
 * which a live process still runs (a step of a worker that died, whose processes the
 * kernel is still ending) counts as held: its processes get SIGKILL (uid_procs_kill), a
 * warning names it, and the next uid is tried. */
int uid_lease_take(int dir_fd, unsigned base, unsigned count, struct uid_lease *l);

/* How long uid_lease_give waits for processes still running as the uid to end after
 * SIGKILL before it keeps the uid out of use instead. */
#define SANDBOX_UID_END_WAIT_MS 5000

/* One look through /proc for processes running as uid: each live one (not a zombie) gets
 * SIGKILL. The number of live ones found (0: none), or -1 with errno when /proc, or a
 * process of the uid in it, could not be read or signalled (a /proc with hidepid, a worker
 * without CAP_SYS_PTRACE or CAP_KILL): the caller then says so. A process is found by the owner of its /proc directory, which the kernel
 * reports as the process's effective uid whether or not it is dumpable; the steps' own
 * processes cannot have another (see uid_procs_kill in sandbox_uid.c). */
int uid_procs_kill(unsigned uid);

/* uid_procs_kill until no live process of uid is left, at most wait_ms: 0 when none is
 * left, the number still live when the time ran out, -1 with errno when /proc could not be
 * read. */
int uid_procs_end(unsigned uid, int wait_ms);

/* 0 when this process's /proc shows its own processes (its pid namespace's), as
 * uid_procs_kill needs; else -1 and a message in err. */
int sandbox_uid_procs_check(char *err, size_t errlen);

/* Gives l's uid back once no process runs as it any more: live ones get SIGKILL and are
 * waited for, up to SANDBOX_UID_END_WAIT_MS (nothing to do when none is held). 0 when
 * given back; -1 when processes of the uid were still live at the end: the uid then stays
 * held (its lock is kept open, so no step is handed it, until a later uid_lease_take finds
 * them gone) and a warning names it. When /proc cannot be read the uid is given back with a warning. */
int uid_lease_give(struct uid_lease *l);

#endif

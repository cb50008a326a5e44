#include "alive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "cfg.h"
#include "clock.h"
#include "log.h"

static struct {
	int fd;			  /* ALIVE_FILE, or -1 */
	unsigned long long count; /* beats written to it */
	long long file_at;	  /* when the last one was written (monotonic ms) */
	int file_failed;	  /* a write failed: said once */
	long long wd_gap_ms;	  /* systemd's watchdog: 0 when off */
	long long wd_at;
	int wd_failed; /* a notification failed: said once */
	long hang_ms;
} al = {.fd = -1};

/* the count as a fixed-width line, so that each write covers the last one whole; 0, or -1
 * (said once until a write works again) */
static int write_count(void)
{
	char line[32];
	int n = snprintf(line, sizeof line, "%020llu\n", al.count);
	ssize_t w = pwrite(al.fd, line, (size_t)n, 0);
	if (w != n && !al.file_failed) {
		al.file_failed = 1;
		log_warn("alive: cannot write the sign-of-life file: %s",
			 w < 0 ? strerror(errno) : "short write");
	} else if (w == n) {
		al.file_failed = 0;
	}
	return w == n ? 0 : -1;
}

int alive_init(char *err, int errlen)
{
	long hang_s;
	if (cfg_long("HANG_TIMEOUT_S", ALIVE_HANG_DEFAULT_S, 0, 86400, &hang_s, err, errlen) < 0)
		return -1;
	al.hang_ms = hang_s * 1000;
	const char *path = cfg_str("ALIVE_FILE", "");
	if (path[0]) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			snprintf(err, (size_t)errlen, "ALIVE_FILE %s: %s", path, strerror(errno));
			return -1;
		}
		al.fd = fd;
		al.count = 1;
		al.file_at = clock_mono_ms();
		/* a file that cannot be written now (a full disk) would only get the program
		 * killed as hung later: said at the start instead */
		if (write_count() < 0) {
			snprintf(err, (size_t)errlen, "ALIVE_FILE %s: the first write failed", path);
			alive_close();
			return -1;
		}
	}
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		al.wd_gap_ms = (long long)(usec / 4000);
		if (al.wd_gap_ms < 1)
			al.wd_gap_ms = 1;
		al.wd_at = clock_mono_ms();
		sd_notify(0, "WATCHDOG=1");
		log_info("alive: systemd's watchdog every %llu ms", (unsigned long long)(usec / 1000));
	}
	return 0;
}

void alive_beat(void)
{
	if (al.fd < 0 && al.wd_gap_ms == 0)
		return;
	long long now = clock_mono_ms();
	if (al.fd >= 0 && now - al.file_at >= ALIVE_MIN_GAP_MS) {
		al.count++;
		al.file_at = now;
		write_count();
	}
	if (al.wd_gap_ms > 0 && now - al.wd_at >= al.wd_gap_ms) {
		al.wd_at = now;
		int r = sd_notify(0, "WATCHDOG=1");
		if (r < 0 && !al.wd_failed)
			log_warn("alive: cannot notify systemd's watchdog: %s", strerror(-r));
		al.wd_failed = r < 0;
	}
}

long alive_hang_ms(void)
{
	return al.hang_ms;
}

void alive_close(void)
{
	if (al.fd >= 0)
		close(al.fd);
	al.fd = -1;
	al.wd_gap_ms = 0;
}

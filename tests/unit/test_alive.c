/* lib/alive.h: the sign-of-life file a supervisor reads, systemd's watchdog notifications
 * (received here on a datagram socket of our own, as systemd would), the settings' checks
 * and the rate limit of the beats. */
#include "alive.h"
#include "clock.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[] = "/tmp/test_alive.XXXXXX";

/* the count the file holds, or -1 when it cannot be read as one */
static long long file_count(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char line[64] = "";
	long long n = -1;
	if (fgets(line, sizeof line, f) && strlen(line) == 21 && line[20] == '\n')
		n = atoll(line);
	fclose(f);
	return n;
}

/* notifications waiting on the socket: how many, each checked to be "WATCHDOG=1" */
static int drain(int s, int *bad)
{
	int n = 0;
	char msg[256];
	for (;;) {
		ssize_t r = recv(s, msg, sizeof msg - 1, MSG_DONTWAIT);
		if (r < 0)
			break;
		msg[r] = '\0';
		if (strcmp(msg, "WATCHDOG=1") != 0)
			(*bad)++;
		n++;
	}
	return n;
}

int main(void)
{
	char err[256];
	CHECK(mkdtemp(dir) != NULL);
	unsetenv("ALIVE_FILE");
	unsetenv("HANG_TIMEOUT_S");
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");

	/* nothing asked for: fine, beats do nothing, the default bound */
	CHECK(alive_init(err, sizeof err) == 0);
	CHECK(alive_hang_ms() == ALIVE_HANG_DEFAULT_S * 1000L);
	alive_beat();
	alive_close();

	/* HANG_TIMEOUT_S: whole seconds, 0 (off) to a day; anything else names the setting */
	setenv("HANG_TIMEOUT_S", "0", 1);
	CHECK(alive_init(err, sizeof err) == 0 && alive_hang_ms() == 0);
	alive_close();
	setenv("HANG_TIMEOUT_S", "7", 1);
	CHECK(alive_init(err, sizeof err) == 0 && alive_hang_ms() == 7000);
	alive_close();
	const char *bad_hang[] = {"-1", "abc", "5s", "86401", "99999999999999999999"};
	for (size_t i = 0; i < sizeof bad_hang / sizeof bad_hang[0]; i++) {
		setenv("HANG_TIMEOUT_S", bad_hang[i], 1);
		err[0] = '\0';
		CHECK(alive_init(err, sizeof err) == -1);
		CHECK(strstr(err, "HANG_TIMEOUT_S") != NULL);
		alive_close();
	}
	unsetenv("HANG_TIMEOUT_S");

	/* the file: created with the first beat, a fixed-width line that goes up */
	char path[256];
	snprintf(path, sizeof path, "%s/alive", dir);
	FILE *old = fopen(path, "w"); /* a longer, older content is replaced whole */
	CHECK(old != NULL);
	if (old) {
		fputs("99999999999999999999999999999\nleft over\n", old);
		fclose(old);
	}
	setenv("ALIVE_FILE", path, 1);
	CHECK(alive_init(err, sizeof err) == 0);
	CHECK(file_count(path) == 1);
	/* beats as fast as a loop turns: at most one per ALIVE_MIN_GAP_MS reaches the file */
	long long t0 = clock_mono_ms();
	for (int i = 0; i < 200000; i++)
		alive_beat();
	long long spent = clock_mono_ms() - t0;
	long long c = file_count(path);
	CHECK(c >= 1 && c <= 1 + spent / ALIVE_MIN_GAP_MS + 1);
	/* after the gap, the next beat is written */
	clock_sleep_ms(ALIVE_MIN_GAP_MS + 20);
	alive_beat();
	CHECK(file_count(path) == c + 1);
	alive_close();
	/* a place that cannot be written: an error naming the setting and the path */
	char nodir[300];
	snprintf(nodir, sizeof nodir, "%s/no/such/dir/alive", dir);
	setenv("ALIVE_FILE", nodir, 1);
	err[0] = '\0';
	CHECK(alive_init(err, sizeof err) == -1);
	CHECK(strstr(err, "ALIVE_FILE") != NULL && strstr(err, nodir) != NULL);
	alive_close();
	unsetenv("ALIVE_FILE");

	/* systemd's watchdog: WATCHDOG=1 datagrams to NOTIFY_SOCKET, a quarter period apart */
	char sock_path[64]; /* fits sun_path */
	snprintf(sock_path, sizeof sock_path, "%s/notify", dir);
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	CHECK(s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof sa) == 0);
	char pid[32];
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	setenv("NOTIFY_SOCKET", sock_path, 1);
	setenv("WATCHDOG_USEC", "400000", 1); /* 400 ms: every 100 ms */
	setenv("WATCHDOG_PID", pid, 1);
	int bad = 0;
	CHECK(alive_init(err, sizeof err) == 0);
	CHECK(drain(s, &bad) == 1); /* one at once */
	t0 = clock_mono_ms();
	for (int i = 0; i < 200000; i++)
		alive_beat();
	spent = clock_mono_ms() - t0;
	int n = drain(s, &bad);
	CHECK(n <= spent / 100 + 1);
	clock_sleep_ms(120);
	alive_beat();
	CHECK(drain(s, &bad) == 1);
	CHECK(bad == 0);
	alive_close();
	alive_beat(); /* closed: nothing more */
	CHECK(drain(s, &bad) == 0);
	/* the watchdog is another process's (WATCHDOG_PID): this one sends nothing */
	setenv("WATCHDOG_PID", "1", 1);
	CHECK(alive_init(err, sizeof err) == 0);
	clock_sleep_ms(120);
	alive_beat();
	CHECK(drain(s, &bad) == 0);
	alive_close();
	/* no watchdog period: nothing either */
	setenv("WATCHDOG_PID", pid, 1);
	unsetenv("WATCHDOG_USEC");
	CHECK(alive_init(err, sizeof err) == 0);
	clock_sleep_ms(120);
	alive_beat();
	CHECK(drain(s, &bad) == 0);
	alive_close();
	if (s >= 0)
		close(s);

	unlink(sock_path);
	unlink(path);
	rmdir(dir);
	return unit_summary("alive");
}

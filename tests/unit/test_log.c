/* lib/log.h: the line written from a signal handler (log_signal_line) and the date it makes
 * by arithmetic (log_utc_fields), held against libc's gmtime_r and timegm. */
#include "log.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* 1 when log_utc_fields and gmtime_r agree on secs */
static int same_as_libc(long long secs)
{
	int f[6];
	struct tm tm;
	time_t t = (time_t)secs;
	if (!gmtime_r(&t, &tm))
		return 0;
	log_utc_fields(secs, f);
	return f[0] == tm.tm_year + 1900 && f[1] == tm.tm_mon + 1 && f[2] == tm.tm_mday &&
	       f[3] == tm.tm_hour && f[4] == tm.tm_min && f[5] == tm.tm_sec;
}

static void test_dates(void)
{
	/* the edges: the epoch, the ends of days, years and months, leap days (2000 is a leap
	 * year, 2100 is not), and far ahead */
	static const long long edges[] = {
		0,          59,         60,         86399,      86400,      31535999,
		31536000,   68255999,   68256000,   951782399,  951782400,  951868799,
		951868800,  1709164800, 1709251199, 1709251200, 1764892800, 1798761599,
		1798761600, 4107456000, 4107542399, 4107542400, 4133980799, 10000000000LL,
	};
	int bad = 0;
	for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
		if (!same_as_libc(edges[i])) {
			bad++;
			fprintf(stderr, "FAIL: %lld differs from gmtime_r\n", edges[i]);
		}
	CHECK(bad == 0);
	/* every day from 1970 to 2200 at a time of day that moves through the day */
	bad = 0;
	for (long long d = 0; d < 84000; d++)
		if (!same_as_libc(d * 86400 + (d * 7919) % 86400))
			bad++;
	CHECK(bad == 0);
}

/* What log_signal_line writes for parts, read back from a pipe in place of stderr. */
static char *line_of(enum log_level level, const char *const *parts, int n)
{
	int p[2];
	if (pipe(p) != 0)
		return NULL;
	int saved = dup(STDERR_FILENO);
	if (saved < 0 || dup2(p[1], STDERR_FILENO) < 0)
		return NULL;
	log_signal_line(level, parts, n);
	if (dup2(saved, STDERR_FILENO) < 0)
		return NULL;
	close(saved);
	close(p[1]);
	static char buf[4096];
	ssize_t got = read(p[0], buf, sizeof buf - 1);
	close(p[0]);
	if (got < 0)
		return NULL;
	buf[got] = '\0';
	return buf;
}

static void test_line(void)
{
	log_init("codecollab-test");
	const char *parts[] = {"a request ran past ", "120", " s (", "POST", " ", "/api/x", ")"};
	/* the clock the line reads (time() may lag it by a tick past a second's start) */
	struct timespec b, a;
	CHECK(clock_gettime(CLOCK_REALTIME, &b) == 0);
	char *l = line_of(LOG_ERROR, parts, 7);
	CHECK(clock_gettime(CLOCK_REALTIME, &a) == 0);
	time_t before = b.tv_sec, after = a.tv_sec;
	CHECK(l != NULL);
	if (!l)
		return;
	/* 2026-12-04T10:05:20.123Z codecollab-test[pid] error: ...\n */
	CHECK(strlen(l) > 25 && l[4] == '-' && l[7] == '-' && l[10] == 'T' && l[13] == ':' &&
	      l[16] == ':' && l[19] == '.' && l[23] == 'Z' && l[24] == ' ');
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	char *end = strptime(l, "%Y-%m-%dT%H:%M:%S", &tm);
	CHECK(end && *end == '.');
	time_t t = timegm(&tm);
	CHECK(t >= before && t <= after);
	char want[256];
	snprintf(want, sizeof want, " codecollab-test[%d] error: a request ran past 120 s (POST /api/x)\n",
		 (int)getpid());
	CHECK_STR(l + 24, want);

	/* a part is cut at 400 bytes, the line at 1,024 with its newline */
	static char big[2000];
	memset(big, 'x', sizeof big - 1);
	const char *one[] = {big};
	l = line_of(LOG_WARN, one, 1);
	CHECK(l && strstr(l, " warn: ") && strlen(strstr(l, " warn: ") + 7) == 401);
	const char *many[] = {big, big, big, big};
	l = line_of(LOG_INFO, many, 4);
	CHECK(l && strlen(l) == 1024 && l[1023] == '\n');
	/* no parts: the prefix alone; a NULL part is skipped */
	const char *none[] = {NULL, "end"};
	l = line_of(LOG_DEBUG, none, 2);
	CHECK(l && strstr(l, " debug: end\n"));
}

/* From a real handler: the line, then the process ends by the signal it caught. */
static void on_alarm(int sig)
{
	const char *parts[] = {"caught ", "SIGALRM"};
	log_signal_line(LOG_ERROR, parts, 2);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void test_in_handler(void)
{
	int p[2];
	CHECK(pipe(p) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		signal(SIGALRM, on_alarm);
		alarm(1);
		for (;;)
			pause();
	}
	close(p[1]);
	int status = 0;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM);
	char buf[512];
	ssize_t got = read(p[0], buf, sizeof buf - 1);
	close(p[0]);
	buf[got > 0 ? got : 0] = '\0';
	CHECK(strstr(buf, " error: caught SIGALRM\n") != NULL);
}

int main(void)
{
	test_dates();
	test_line();
	test_in_handler();
	return unit_summary("log");
}

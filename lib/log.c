#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_program = "codecollab";
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *program)
{
	log_program = program;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, (long)tv.tv_usec / 1000, log_program, (int)getpid(),
			 level_names[level]);
	if (n < 0 || (size_t)n >= sizeof line)
		n = 0;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2; /* truncated: a log line has a bound too */
	line[len++] = '\n';
	/* one write per line so lines of concurrent processes do not interleave */
	if (write(STDERR_FILENO, line, len) < 0)
		return;
}

/* Written by hand on purpose: gmtime_r and snprintf may take locks the interrupted code
 * holds, and nothing in libc formats a date without them. */
void log_utc_fields(long long secs, int f[6])
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	long long days = secs / 86400, rest = secs % 86400;
	int year = 1970;
	for (;;) {
		int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
		if (days < 365 + leap)
			break;
		days -= 365 + leap;
		year++;
	}
	int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	int mon = 0;
	while (days >= mdays[mon] + (mon == 1 ? leap : 0)) {
		days -= mdays[mon] + (mon == 1 ? leap : 0);
		mon++;
	}
	f[0] = year;
	f[1] = mon + 1;
	f[2] = (int)days + 1;
	f[3] = (int)(rest / 3600);
	f[4] = (int)(rest / 60 % 60);
	f[5] = (int)(rest % 60);
}

/* value as exactly width decimal digits (leading zeros), at p; the end */
static char *put_digits(char *p, long long value, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + value % 10);
		value /= 10;
	}
	return p + width;
}

/* up to max bytes of s at p, within end; the new end */
static char *put_text(char *p, const char *end, const char *s, size_t max)
{
	for (size_t i = 0; s && s[i] && i < max && p < end; i++)
		*p++ = s[i];
	return p;
}

void log_signal_line(enum log_level level, const char *const *parts, int nparts)
{
	char line[1024];
	char *p = line;
	const char *end = line + sizeof line - 1; /* the newline's place */
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
		ts.tv_sec = 0, ts.tv_nsec = 0;
	int f[6];
	log_utc_fields((long long)ts.tv_sec, f);
	/* 2026-12-04T10:05:20.123Z: 24 bytes */
	p = put_digits(p, f[0], 4);
	*p++ = '-';
	p = put_digits(p, f[1], 2);
	*p++ = '-';
	p = put_digits(p, f[2], 2);
	*p++ = 'T';
	p = put_digits(p, f[3], 2);
	*p++ = ':';
	p = put_digits(p, f[4], 2);
	*p++ = ':';
	p = put_digits(p, f[5], 2);
	*p++ = '.';
	p = put_digits(p, ts.tv_nsec / 1000000, 3);
	*p++ = 'Z';
	*p++ = ' ';
	p = put_text(p, end, log_program, 64);
	p = put_text(p, end, "[", 1);
	long long pid = getpid();
	int w = 1;
	for (long long v = pid; v >= 10; v /= 10)
		w++;
	if (end - p > w)
		p = put_digits(p, pid, w);
	p = put_text(p, end, "] ", 2);
	p = put_text(p, end, level_names[level], 8);
	p = put_text(p, end, ": ", 2);
	for (int i = 0; i < nparts; i++)
		p = put_text(p, end, parts[i], 400);
	*p++ = '\n';
	if (write(STDERR_FILENO, line, (size_t)(p - line)) < 0)
		return;
}

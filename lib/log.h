/* log: one line per message on stderr, with an ISO-8601 UTC timestamp and the program name.
 * The program name is set once at start (configuration, read-only afterwards). */
#ifndef CC_LOG_H
#define CC_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_init(const char *program);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same line written from a signal handler, while the interrupted code may hold any lock:
 * the parts are copied as they are (each up to 400 bytes; the line up to 1,024), the time is
 * read with clock_gettime and turned into a date by arithmetic alone, and the line leaves
 * in one write(). Nothing here allocates, locks or formats through stdio. */
void log_signal_line(enum log_level level, const char *const *parts, int nparts);
/* The UTC year, month (1-12), day, hour, minute and second of secs since 1970 (secs >= 0),
 * into f[0..5]: what gmtime_r gives, without its lock (for log_signal_line). */
void log_utc_fields(long long secs, int f[6]);

#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif

/* alive: a long-running program's sign of life, for whoever supervises it, so that a
 * process that is still there but no longer turns its loop (stopped, deadlocked, stuck in a
 * call that does not end) is told from a healthy one and can be killed and started again.
 *
 * Two receivers, either or both:
 * - ALIVE_FILE (set by scripts/run.sh and scripts/cluster.sh for each supervised program):
 *   the program writes a count that goes up with every beat at the start of that file; the
 *   supervisor reads it every tick and kills the process once it has not changed for
 *   HANG_TIMEOUT_S seconds.
 * - systemd's watchdog (WatchdogSec= in the unit: NOTIFY_SOCKET and WATCHDOG_USEC in the
 *   environment): "WATCHDOG=1" through sd_notify, at least four times per period.
 *
 * The loop that shows the program is working calls alive_beat() every turn (it may be
 * called as often as wanted: it acts at most every ALIVE_MIN_GAP_MS). One thread only. */
#ifndef CC_ALIVE_H
#define CC_ALIVE_H

#include <stddef.h>

/* the least time between two beats that reach a receiver */
#define ALIVE_MIN_GAP_MS 250
/* HANG_TIMEOUT_S when unset: seconds without a sign of life before a process is killed */
#define ALIVE_HANG_DEFAULT_S 30

/* Reads ALIVE_FILE, HANG_TIMEOUT_S and the watchdog's variables, and opens the file (created
 * or emptied, then the first beat written). 0; -1 with a message in err when a setting is
 * wrong or the file cannot be written. */
int alive_init(char *err, int errlen);

/* One sign of life (rate-limited, see above). */
void alive_beat(void);

/* HANG_TIMEOUT_S in milliseconds (0: nobody is killed for hanging), for a program that
 * watches processes of its own the same way (the broker's parent, its stream processes). */
long alive_hang_ms(void);

/* Closes the file (the supervisor sees no further beats; it stops watching once the process
 * is gone). */
void alive_close(void);

#endif

/* errbuf: the one way our functions hand a message for people back to their caller, in a
 * buffer the caller owns. */
#ifndef CC_ERRBUF_H
#define CC_ERRBUF_H

#include <stddef.h>

/* Formats into err[0..errlen); does nothing when err is NULL or errlen is 0. */
void errbuf_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif

/* id: the one syntax of the ids the service names things by in its URLs and streams: rooms,
 * jobs, members and revisions in the API's paths (fcgi/route.c, where a '*' of the table
 * matches one), rooms in the broker's paths and room lists (sse-broker/server.c, roomset.c).
 * An id is 1 to ID_MAX bytes of [A-Za-z0-9_-]: plain ASCII, so it is safe in a path, a query,
 * a Redis key and a log line as it is, and means the same to every program that reads it. */
#ifndef CC_ID_H
#define CC_ID_H

#include <stddef.h>

#define ID_MAX 64

/* 1 when s[0..n) is an id, 0 otherwise (n == 0, n > ID_MAX, or any byte outside the set,
 * a NUL or a byte of a UTF-8 sequence included). s is read only within its n bytes and
 * needs no terminator; it may be NULL when n is 0. */
int id_valid(const char *s, size_t n);

#endif

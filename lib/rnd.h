/* rnd: cryptographically random bytes and identifiers (getrandom(2)). */
#ifndef CC_RND_H
#define CC_RND_H

#include <stddef.h>

int rnd_bytes(void *out, size_t n);
/* Writes n random characters of [a-z0-9] and a NUL into out (n + 1 bytes). */
int rnd_id(char *out, size_t n);
/* Writes 2*n lowercase hex characters of n random bytes and a NUL (2n + 1 bytes). */
int rnd_hex(char *out, size_t n);

#endif

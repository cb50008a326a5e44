/* pw: password hashing with argon2id (libargon2), encoded PHC strings. */
#ifndef CC_PW_H
#define CC_PW_H

#include <stddef.h>

#define PW_HASH_MAX 160

/* Parameters follow OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane). */
int pw_hash(const char *password, size_t len, char out[PW_HASH_MAX]);
/* 1 match, 0 mismatch, -1 malformed hash. Constant time in the comparison (libargon2). */
int pw_verify(const char *encoded, const char *password, size_t len);

#endif

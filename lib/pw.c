#include "pw.h"

#include <argon2.h>

#include "rnd.h"

#define PW_T_COST 2
#define PW_M_COST (19 * 1024)
#define PW_LANES 1
#define PW_SALT_LEN 16
#define PW_HASH_LEN 32

int pw_hash(const char *password, size_t len, char out[PW_HASH_MAX])
{
	unsigned char salt[PW_SALT_LEN];
	if (rnd_bytes(salt, sizeof salt) < 0)
		return -1;
	int rc = argon2id_hash_encoded(PW_T_COST, PW_M_COST, PW_LANES, password, len, salt,
				       sizeof salt, PW_HASH_LEN, out, PW_HASH_MAX);
	return rc == ARGON2_OK ? 0 : -1;
}

int pw_verify(const char *encoded, const char *password, size_t len)
{
	int rc = argon2id_verify(encoded, password, len);
	if (rc == ARGON2_OK)
		return 1;
	if (rc == ARGON2_VERIFY_MISMATCH)
		return 0;
	return -1;
}

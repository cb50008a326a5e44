/* token_verify when the signature cannot be computed: OpenSSL is given an allocator that
 * fails on demand (CRYPTO_set_mem_functions, before anything of OpenSSL allocates, so this
 * is a program of its own), and a good token checked while it fails gets TOKEN_UNCHECKED,
 * not TOKEN_INVALID: the API and the broker answer that as a failure of theirs (500), not
 * as a bad token (401). Once allocations succeed again, the same token passes. */
#include "token.h"
#include "unit.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failing;

static void *oom_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return failing ? NULL : malloc(n);
}

static void *oom_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return failing ? NULL : realloc(p, n);
}

static void oom_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	free(p);
}

int main(void)
{
	if (!CRYPTO_set_mem_functions(oom_malloc, oom_realloc, oom_free)) {
		CHECK(!"OpenSSL takes the test's allocator before its first allocation");
		return unit_summary("token_oom");
	}
	static const char secret[] = "0123456789abcdef0123456789abcdef-oom";
	struct token_key k = {.key = malloc(sizeof secret - 1), .len = sizeof secret - 1};
	CHECK(k.key != NULL);
	if (!k.key)
		return unit_summary("token_oom");
	memcpy(k.key, secret, k.len);
	long long now = (long long)time(NULL);
	struct token_claims c = {.user_id = 9, .kind = TOKEN_SESSION, .iat = now, .exp = now + 60};
	strcpy(c.username, "oscar");
	strcpy(c.sid, "oomoomoomoomoomoomoom012");
	char *t = token_sign(&k, &c);
	CHECK(t != NULL);
	if (t) {
		struct token_claims got;
		const char *why = NULL;
		/* OpenSSL's first use (its providers, the digest) happens here, allocating freely */
		CHECK(token_verify(&k, t, now, &got, &why) == 0);
		failing = 1;
		CHECK(token_signature_ok(&k, t) == -1);
		int rc = token_verify(&k, t, now, &got, &why);
		failing = 0;
		CHECK(rc == TOKEN_UNCHECKED);
		CHECK_STR(why, "could not check the signature");
		/* a refused token stays TOKEN_INVALID */
		char *bad = strdup(t);
		char *dot = bad ? strrchr(bad, '.') : NULL;
		CHECK(dot != NULL);
		if (dot) {
			dot[1] = dot[1] == 'A' ? 'B' : 'A';
			CHECK(token_verify(&k, bad, now, &got, &why) == TOKEN_INVALID);
		}
		free(bad);
		/* allocations work again: so does the check */
		CHECK(token_verify(&k, t, now, &got, &why) == 0 && got.user_id == 9);
		free(t);
	}
	token_key_free(&k);
	return unit_summary("token_oom");
}

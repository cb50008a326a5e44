/* fuzz_token: libFuzzer target for token verification (lib/token.c; README.md; `make fuzz`).
 * Every API request's Authorization header and every stream URL's ticket reach
 * token_verify() before anything else.
 *
 * Byte 0 picks the mode. Even: the rest is the token as sent (what a stranger can send).
 * Odd: the rest is a JWT header and a claims set, split at the first newline, that this
 * target signs with the key (base64url + HMAC-SHA256), so the claim checks behind the
 * signature are reached too (what a holder of the key, or a bug in our own signing, could
 * produce).
 *
 * Laws (a break aborts): a refusal says why; an accepted token has a user id above 0, a
 * username, a kind, a room exactly when it is a ticket, a sid of TOKEN_SID_LEN characters
 * [a-z0-9], a generation of at least 0 and an expiry after now; and signing the accepted
 * claims again gives a token that verifies to the same claims. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

#define NOW 1700000000LL

static const char secret[] = "fuzz-secret-fuzz-secret-fuzz-secret-0123";

/* base64url without padding (RFC 7515 §2) */
static size_t b64url(const uint8_t *in, size_t n, char *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		if (i + 1 < n)
			out[o++] = tab[v >> 6 & 63];
		if (i + 2 < n)
			out[o++] = tab[v & 63];
	}
	out[o] = '\0';
	return o;
}

/* header.claims.signature, signed with secret; caller frees (aborts when out of memory) */
static char *sign_raw(const uint8_t *hdr, size_t hn, const uint8_t *cl, size_t cn)
{
	size_t cap = (hn + cn) * 4 / 3 + 64 + 8;
	char *t = malloc(cap);
	if (!t)
		abort();
	size_t o = b64url(hdr, hn, t);
	t[o++] = '.';
	o += b64url(cl, cn, t + o);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)t, o, mac,
		  &maclen))
		abort();
	t[o++] = '.';
	b64url(mac, maclen, t + o);
	return t;
}

static void check_claims(const struct token_claims *c)
{
	size_t sl = strlen(c->sid);
	if (c->user_id <= 0 || !c->username[0] || strlen(c->username) > TOKEN_USERNAME_MAX ||
	    (c->kind != TOKEN_SESSION && c->kind != TOKEN_TICKET) ||
	    (c->kind == TOKEN_TICKET) != (c->room[0] != '\0') || strlen(c->room) > TOKEN_ROOM_MAX ||
	    sl != TOKEN_SID_LEN || c->gen < 0 || c->exp <= NOW)
		__builtin_trap();
	for (size_t i = 0; i < sl; i++)
		if (!((c->sid[i] >= 'a' && c->sid[i] <= 'z') || (c->sid[i] >= '0' && c->sid[i] <= '9')))
			__builtin_trap();
}

static void verify(const struct token_key *k, const char *jwt)
{
	struct token_claims c;
	memset(&c, 0, sizeof c);
	const char *why = NULL;
	if (token_verify(k, jwt, NOW, &c, &why) < 0) {
		if (!why || !*why)
			__builtin_trap();
		return;
	}
	if (why)
		__builtin_trap();
	check_claims(&c);
	/* our own signing of what we accepted verifies to the same claims */
	char *again = token_sign(k, &c);
	if (!again)
		__builtin_trap();
	struct token_claims d;
	memset(&d, 0, sizeof d);
	if (token_verify(k, again, NOW, &d, &why) < 0 || d.user_id != c.user_id ||
	    strcmp(d.username, c.username) != 0 || d.kind != c.kind || strcmp(d.room, c.room) != 0 ||
	    strcmp(d.sid, c.sid) != 0 || d.gen != c.gen || d.exp != c.exp || d.iat != c.iat)
		__builtin_trap();
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct token_key k = {(unsigned char *)secret, strlen(secret)};
	const uint8_t *in = data + 1;
	size_t n = size - 1;
	if (!(data[0] & 1)) {
		char *t = malloc(n + 1);
		if (!t)
			return 0;
		memcpy(t, in, n);
		t[n] = '\0';
		verify(&k, t);
		free(t);
		return 0;
	}
	const uint8_t *nl = memchr(in, '\n', n);
	if (!nl)
		return 0;
	size_t hn = (size_t)(nl - in);
	char *t = sign_raw(in, hn, nl + 1, n - hn - 1);
	verify(&k, t);
	free(t);
	return 0;
}

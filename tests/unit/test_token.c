#include "token.h"
#include "unit.h"

#include <jwt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct token_key key_of(const char *s)
{
	struct token_key k;
	k.len = strlen(s);
	k.key = malloc(k.len);
	memcpy(k.key, s, k.len);
	return k;
}

/* builds a token with libjwt directly, to forge what an attacker could send */
static char *forge(jwt_alg_t alg, const char *key, const char *iss, long long exp)
{
	jwt_t *j;
	if (jwt_new(&j) != 0)
		return NULL;
	if (alg != JWT_ALG_NONE)
		jwt_set_alg(j, alg, (const unsigned char *)key, (int)strlen(key));
	if (iss)
		jwt_add_grant(j, "iss", iss);
	jwt_add_grant(j, "sub", "7");
	jwt_add_grant(j, "name", "mallory");
	jwt_add_grant(j, "typ", "session");
	if (exp)
		jwt_add_grant_int(j, "exp", exp);
	char *s = jwt_encode_str(j);
	jwt_free(j);
	return s;
}

int main(void)
{
	const char *secret = "0123456789abcdef0123456789abcdef-test";
	struct token_key k = key_of(secret);
	struct token_key other = key_of("another-key-another-key-another-key!!");
	long long now = (long long)time(NULL);
	struct token_claims c = {.user_id = 42, .kind = TOKEN_SESSION, .iat = now, .exp = now + 60};
	strcpy(c.username, "alice");
	strcpy(c.sid, "abcdefghijklmnopqrstu012");
	c.gen = 3;

	char *t = token_sign(&k, &c);
	CHECK(t != NULL);
	struct token_claims got;
	const char *why = NULL;
	CHECK(token_verify(&k, t, now, &got, &why) == 0);
	CHECK(got.user_id == 42);
	CHECK_STR(got.username, "alice");
	CHECK(got.kind == TOKEN_SESSION);
	CHECK(got.room[0] == '\0');
	CHECK(got.exp == now + 60);
	CHECK_STR(got.sid, "abcdefghijklmnopqrstu012");
	CHECK(got.gen == 3);
	CHECK(got.sexp == now + 60); /* a session ends when its token expires */
	/* expired at exp */
	CHECK(token_verify(&k, t, now + 60, &got, &why) == -1);
	CHECK_STR(why, "token expired");
	/* wrong key */
	CHECK(token_verify(&other, t, now, &got, &why) == -1);
	/* tampered payload: flip one character in the middle part */
	char *dot = strchr(t, '.');
	CHECK(dot != NULL);
	if (dot) {
		dot[3] = dot[3] == 'A' ? 'B' : 'A';
		CHECK(token_verify(&k, t, now, &got, &why) == -1);
	}
	free(t);

	/* a ticket carries its room */
	c.kind = TOKEN_TICKET;
	strcpy(c.room, "abc123");
	t = token_sign(&k, &c);
	CHECK(token_verify(&k, t, now, &got, &why) == 0);
	CHECK(got.kind == TOKEN_TICKET);
	CHECK_STR(got.room, "abc123");
	CHECK_STR(got.sid, "abcdefghijklmnopqrstu012");
	CHECK(got.gen == 3);
	CHECK(got.sexp == 0); /* none given: not known */
	free(t);
	/* and its session's expiry, past its own */
	c.sexp = now + 3600;
	t = token_sign(&k, &c);
	CHECK(token_verify(&k, t, now, &got, &why) == 0);
	CHECK(got.exp == now + 60);
	CHECK(got.sexp == now + 3600);
	free(t);
	c.sexp = 0;

	/* a session id must be TOKEN_SID_LEN characters of [a-z0-9]: it names Redis keys */
	struct token_claims bad = c;
	strcpy(bad.sid, "short");
	CHECK(token_sign(&k, &bad) == NULL);
	strcpy(bad.sid, "abcdefghijklmnopqrstu:*}");
	CHECK(token_sign(&k, &bad) == NULL);
	bad = c;
	bad.gen = -1;
	CHECK(token_sign(&k, &bad) == NULL);
	/* a validly signed token without sid or gen (signed before sessions existed) is refused */
	t = forge(JWT_ALG_HS256, secret, TOKEN_ISSUER, now + 60);
	CHECK(token_verify(&k, t, now, &got, &why) == -1);
	CHECK_STR(why, "token without a session: sign in again");
	free(t);

	/* alg none is refused */
	t = forge(JWT_ALG_NONE, "", TOKEN_ISSUER, now + 60);
	CHECK(t != NULL);
	CHECK(token_verify(&k, t, now, &got, &why) == -1);
	free(t);
	/* another HMAC algorithm with the right key is refused */
	t = forge(JWT_ALG_HS512, secret, TOKEN_ISSUER, now + 60);
	CHECK(token_signature_ok(&k, t) == 0);
	CHECK(token_verify(&k, t, now, &got, &why) == -1);
	CHECK_STR(why, "algorithm not allowed");
	free(t);
	/* HS384 and HS512 signatures are longer than HS256's 43 characters: cut to that length
	 * they are still not ours */
	t = forge(JWT_ALG_HS384, secret, TOKEN_ISSUER, now + 60);
	CHECK(t != NULL && strlen(strrchr(t, '.') + 1) > 43);
	if (t)
		strrchr(t, '.')[44] = '\0';
	CHECK(token_verify(&k, t, now, &got, &why) == -1);
	CHECK_STR(why, "algorithm not allowed");
	free(t);

	/* The signature is compared whole (our own constant-time check, before libjwt's): a
	 * change at its first or last character, one character more or less, a fourth part,
	 * and a last character that a lenient base64 decoder would read as the same bytes are
	 * all refused. */
	t = token_sign(&k, &c);
	CHECK(t != NULL);
	CHECK(token_verify(&k, t, now, &got, &why) == 0);
	CHECK(token_signature_ok(&k, t) == 1);
	CHECK(token_signature_ok(&other, t) == 0);
	size_t tl = strlen(t);
	char *sig = strrchr(t, '.') + 1;
	CHECK(strlen(sig) == 43);
	char *v = malloc(tl + 8);
	static const char alpha[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	CHECK(((strchr(alpha, sig[42]) - alpha) & 3) == 0);
	const char *sig_why[] = {"first", "last", "lenient", NULL};
	for (int i = 0; sig_why[i]; i++) {
		memcpy(v, t, tl + 1);
		char *vs = v + (sig - t);
		if (i == 0)
			vs[0] = vs[0] == 'A' ? 'B' : 'A';
		else if (i == 1)
			vs[42] = vs[42] == 'A' ? 'E' : 'A';
		else /* the 43rd character carries 4 bits and 2 unused ones (0 when canonical) */
			vs[42] = alpha[(strchr(alpha, vs[42]) - alpha) | 1];
		CHECK(token_signature_ok(&k, v) == 0);
		CHECK(token_verify(&k, v, now, &got, &why) == -1);
		CHECK_STR(why, "bad signature or malformed token");
	}
	memcpy(v, t, tl + 1);
	v[tl - 1] = '\0';
	CHECK(token_signature_ok(&k, v) == 0);
	CHECK(token_verify(&k, v, now, &got, &why) == -1);
	memcpy(v, t, tl + 1);
	v[tl] = 'A';
	v[tl + 1] = '\0';
	CHECK(token_signature_ok(&k, v) == 0);
	CHECK(token_verify(&k, v, now, &got, &why) == -1);
	memcpy(v, t, tl + 1);
	memcpy(v + tl, ".x", 3);
	CHECK(token_signature_ok(&k, v) == 0);
	CHECK(token_verify(&k, v, now, &got, &why) == -1);
	/* the same signature on a header and payload of two parts joined differently */
	memcpy(v, t, tl + 1);
	*strchr(v, '.') = 'x';
	CHECK(token_signature_ok(&k, v) == 0);
	CHECK(token_verify(&k, v, now, &got, &why) == -1);
	free(v);
	free(t);
	/* right key, wrong issuer; no expiry */
	t = forge(JWT_ALG_HS256, secret, "someone-else", now + 60);
	CHECK(token_verify(&k, t, now, &got, &why) == -1);
	CHECK_STR(why, "wrong issuer");
	free(t);
	t = forge(JWT_ALG_HS256, secret, TOKEN_ISSUER, 0);
	CHECK(token_verify(&k, t, now, &got, &why) == -1);
	CHECK_STR(why, "no expiry");
	free(t);
	/* garbage of all shapes */
	const char *junk[] = {"", "a", "a.b", "a.b.c", "...", "eyJ.eyJ.", "\xff\xfe.\x01.x", NULL};
	for (int i = 0; junk[i]; i++)
		CHECK(token_verify(&k, junk[i], now, &got, &why) == -1);
	for (int i = 0; junk[i]; i++)
		CHECK(token_signature_ok(&k, junk[i]) == 0);
	/* the reason names the algorithm only when the header, read as JSON, says another one */
	struct {
		const char *token, *why;
	} reasons[] = {
		/* {"alg":"HS512"}, {"alg":"none"} */
		{"eyJhbGciOiJIUzUxMiJ9.e30.x", "algorithm not allowed"},
		{"eyJhbGciOiJub25lIn0.e30.", "algorithm not allowed"},
		/* {"alg":"HS512","k":"~~~?>?"}: base64url's own '-' and '_' in the header */
		{"eyJhbGciOiJIUzUxMiIsImsiOiJ-fn4_Pj8ifQ.e30.x", "algorithm not allowed"},
		/* {"alg":"HS256"}; {"alg":256}; not JSON; not base64; no header */
		{"eyJhbGciOiJIUzI1NiJ9.e30.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		 "bad signature or malformed token"},
		{"eyJhbGciOjI1Nn0.e30.x", "bad signature or malformed token"},
		{"bm90IGpzb24.e30.x", "bad signature or malformed token"},
		{"!!!!.e30.x", "bad signature or malformed token"},
		{".e30.x", "bad signature or malformed token"},
		{NULL, NULL},
	};
	for (int i = 0; reasons[i].token; i++) {
		CHECK(token_verify(&k, reasons[i].token, now, &got, &why) == -1);
		CHECK_STR(why, reasons[i].why);
	}
	CHECK(token_verify(&k, NULL, now, &got, &why) == -1);
	char *huge = malloc(TOKEN_MAX_LEN + 10);
	memset(huge, 'a', TOKEN_MAX_LEN + 9);
	huge[TOKEN_MAX_LEN + 9] = '\0';
	CHECK(token_verify(&k, huge, now, &got, &why) == -1);
	CHECK_STR(why, "token too long");
	free(huge);

	/* the Authorization header: scheme in any case, one or more spaces, then the token */
	CHECK_STR(token_bearer("Bearer abc.def"), "abc.def");
	CHECK_STR(token_bearer("bearer abc"), "abc");
	CHECK_STR(token_bearer("BEARER abc"), "abc");
	CHECK_STR(token_bearer("bEaReR abc"), "abc");
	CHECK_STR(token_bearer("Bearer  abc"), "abc");
	CHECK_STR(token_bearer("Bearer          abc"), "abc");
	/* the scheme without a token: "" (the caller says a token is missing) */
	CHECK_STR(token_bearer("Bearer"), "");
	CHECK_STR(token_bearer("Bearer "), "");
	CHECK_STR(token_bearer("bearer    "), "");
	/* other schemes, a scheme run into the token, a tab for the space, no scheme at all */
	const char *not_bearer[] = {"", "Basic dXNlcjpwYXNz", "Token abc", "Bearerabc", "Bearer\tabc",
				    "Beare abc", "Bear", " Bearer abc", "abc.def.ghi", "Bearer-x abc",
				    NULL};
	for (int i = 0; not_bearer[i]; i++)
		CHECK(token_bearer(not_bearer[i]) == NULL);
	CHECK(token_bearer(NULL) == NULL);
	/* what follows the spaces is handed on whole, for token_verify to judge */
	CHECK_STR(token_bearer("Bearer a b"), "a b");
	/* many spaces, then a token one byte over the bound */
	static char longhdr[6 + TOKEN_MAX_LEN + TOKEN_MAX_LEN + 2];
	memcpy(longhdr, "Bearer", 6);
	memset(longhdr + 6, ' ', TOKEN_MAX_LEN);
	memset(longhdr + 6 + TOKEN_MAX_LEN, 'x', TOKEN_MAX_LEN + 1);
	longhdr[6 + 2 * TOKEN_MAX_LEN + 1] = '\0';
	const char *lt = token_bearer(longhdr);
	CHECK(lt == longhdr + 6 + TOKEN_MAX_LEN);
	CHECK(token_verify(&k, lt, now, &got, &why) == -1);
	CHECK_STR(why, "token too long");

	/* key loading: no secret, short secret, good secret */
	char err[256];
	struct token_key lk;
	unsetenv("JWT_SECRET");
	unsetenv("JWT_SECRET_FILE");
	CHECK(token_key_load(&lk, err, sizeof err) == -1);
	setenv("JWT_SECRET", "short", 1);
	CHECK(token_key_load(&lk, err, sizeof err) == -1);
	setenv("JWT_SECRET", secret, 1);
	CHECK(token_key_load(&lk, err, sizeof err) == 0);
	CHECK(lk.len == strlen(secret));
	token_key_free(&lk);

	token_key_free(&k);
	token_key_free(&other);
	return unit_summary("token");
}

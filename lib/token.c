#include "token.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOKEN_MIN_SECRET 32

static int read_file(const char *path, unsigned char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	unsigned char buf[1024];
	size_t n = fread(buf, 1, sizeof buf, f);
	int bad = ferror(f);
	fclose(f);
	if (bad)
		return -1;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	*out = malloc(n ? n : 1);
	if (!*out)
		return -1;
	memcpy(*out, buf, n);
	*len = n;
	return 0;
}

int token_key_load(struct token_key *k, char *err, size_t errlen)
{
	k->key = NULL;
	k->len = 0;
	const char *env = getenv("JWT_SECRET");
	const char *file = getenv("JWT_SECRET_FILE");
	if (env && *env) {
		k->len = strlen(env);
		k->key = malloc(k->len);
		if (!k->key) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		memcpy(k->key, env, k->len);
	} else if (file && *file) {
		if (read_file(file, &k->key, &k->len) < 0) {
			snprintf(err, errlen, "cannot read JWT_SECRET_FILE %s: %s", file,
				 strerror(errno));
			return -1;
		}
	} else {
		snprintf(err, errlen, "no JWT key: set JWT_SECRET (or JWT_SECRET_FILE)");
		return -1;
	}
	if (k->len < TOKEN_MIN_SECRET) {
		snprintf(err, errlen, "JWT secret is %zu bytes; at least %d are required", k->len,
			 TOKEN_MIN_SECRET);
		token_key_free(k);
		return -1;
	}
	return 0;
}

void token_key_free(struct token_key *k)
{
	if (k->key) {
		memset(k->key, 0, k->len);
		free(k->key);
	}
	k->key = NULL;
	k->len = 0;
}

const char *token_bearer(const char *value)
{
	static const char scheme[] = "Bearer";
	const size_t n = sizeof scheme - 1;
	if (!value || strncasecmp(value, scheme, n) != 0)
		return NULL;
	const char *p = value + n;
	/* "Bearerx" is another scheme, and only spaces part the scheme from the token */
	if (*p != '\0' && *p != ' ')
		return NULL;
	while (*p == ' ')
		p++;
	return p;
}

/* A session id is TOKEN_SID_LEN characters of [a-z0-9]: it goes into Redis key names. */
static int sid_ok(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9')))
			return 0;
	return n == TOKEN_SID_LEN;
}

char *token_sign(const struct token_key *k, const struct token_claims *c)
{
	jwt_t *j = NULL;
	char *out = NULL;
	char sub[32];
	if (!sid_ok(c->sid) || c->gen < 0)
		return NULL;
	if (jwt_new(&j) != 0)
		return NULL;
	snprintf(sub, sizeof sub, "%lld", c->user_id);
	if (jwt_set_alg(j, JWT_ALG_HS256, k->key, (int)k->len) != 0)
		goto out;
	if (jwt_add_grant(j, "iss", TOKEN_ISSUER) != 0 || jwt_add_grant(j, "sub", sub) != 0 ||
	    jwt_add_grant(j, "name", c->username) != 0 ||
	    jwt_add_grant(j, "typ", c->kind == TOKEN_TICKET ? "ticket" : "session") != 0 ||
	    jwt_add_grant_int(j, "iat", c->iat) != 0 || jwt_add_grant_int(j, "exp", c->exp) != 0 ||
	    jwt_add_grant(j, "sid", c->sid) != 0 || jwt_add_grant_int(j, "gen", c->gen) != 0)
		goto out;
	if (c->kind == TOKEN_TICKET && jwt_add_grant(j, "room", c->room) != 0)
		goto out;
	if (c->kind == TOKEN_TICKET && c->sexp > 0 && jwt_add_grant_int(j, "sexp", c->sexp) != 0)
		goto out;
	out = jwt_encode_str(j);
out:
	jwt_free(j);
	return out;
}

static int copy_claim(jwt_t *j, const char *name, char *dst, size_t cap)
{
	const char *v = jwt_get_grant(j, name);
	if (!v)
		return -1;
	size_t n = strlen(v);
	if (n == 0 || n >= cap)
		return -1;
	memcpy(dst, v, n + 1);
	return 0;
}

/* base64 and base64url differ in two characters only: '+' and '/' against '-' and '_'.
 * Rewrites the n characters of s from one alphabet to the other: to_url, base64 to
 * base64url; else back. Any other character is left as it is. */
static void b64_alphabet(char *s, size_t n, int to_url)
{
	static const char plain[] = "+/", url[] = "-_";
	const char *from = to_url ? plain : url, *to = to_url ? url : plain;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == from[0])
			s[i] = to[0];
		else if (s[i] == from[1])
			s[i] = to[1];
	}
}

/* HS256 signature of a token's first two parts, base64url without padding (43 characters). */
#define SIG_LEN 43

/* libjwt 1.10 compares signatures with strcmp, which answers sooner the earlier they differ;
 * asked first, this leaves libjwt to compare only signatures already known to be right, so
 * its timing tells nothing. */
int token_signature_ok(const struct token_key *k, const char *jwt)
{
	const char *first = strchr(jwt, '.');
	const char *last = strrchr(jwt, '.');
	if (!first || first == last || strchr(first + 1, '.') != last || strlen(last + 1) != SIG_LEN)
		return 0;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	if (!HMAC(EVP_sha256(), k->key, (int)k->len, (const unsigned char *)jwt, (size_t)(last - jwt),
		  mac, &mac_len) ||
	    mac_len != 32)
		return -1;
	/* 32 bytes are 44 characters of base64 with one '=' of padding */
	unsigned char b64[48];
	if (EVP_EncodeBlock(b64, mac, 32) != SIG_LEN + 1)
		return -1;
	b64_alphabet((char *)b64, SIG_LEN, 1);
	return CRYPTO_memcmp(b64, last + 1, SIG_LEN) == 0;
}

/* Whether the token's header names an algorithm other than HS256, read only to tell the
 * holder why a token whose signature failed was refused. 1 another, 0 HS256 or unreadable. */
static int other_alg(const char *jwt)
{
	const char *dot = strchr(jwt, '.');
	size_t n = dot ? (size_t)(dot - jwt) : 0;
	if (n == 0 || n > TOKEN_MAX_LEN)
		return 0;
	/* base64url without padding to base64 with it, for OpenSSL's decoder */
	char *b64 = malloc(n + 4);
	unsigned char *raw = malloc(n + 4);
	int other = 0;
	if (!b64 || !raw)
		goto out;
	memcpy(b64, jwt, n);
	b64_alphabet(b64, n, 0);
	size_t m = n;
	while (m % 4)
		b64[m++] = '=';
	int len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)m);
	if (len < 0)
		goto out;
	len -= (int)(m - n); /* EVP_DecodeBlock counts each '=' as a zero byte */
	cJSON *h = cJSON_ParseWithLength((const char *)raw, (size_t)(len > 0 ? len : 0));
	const cJSON *alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
	other = cJSON_IsString(alg) && strcmp(alg->valuestring, "HS256") != 0;
	cJSON_Delete(h);
out:
	free(b64);
	free(raw);
	return other;
}

int token_verify(const struct token_key *k, const char *jwt, long long now,
		 struct token_claims *out, const char **why)
{
	jwt_t *j = NULL;
	int rc = TOKEN_INVALID;
	const char *reason = "invalid token";
	char sub[32], typ[16];

	if (!jwt || !*jwt) {
		reason = "missing token";
		goto out;
	}
	if (strlen(jwt) > TOKEN_MAX_LEN) {
		reason = "token too long";
		goto out;
	}
	int sig = token_signature_ok(k, jwt);
	if (sig < 0) {
		reason = "could not check the signature";
		rc = TOKEN_UNCHECKED;
		goto out;
	}
	if (sig == 0) {
		reason = other_alg(jwt) ? "algorithm not allowed" : "bad signature or malformed token";
		goto out;
	}
	/* key is never empty (token_key_load), so an unsigned or wrongly keyed token fails here.
	 * libjwt answers an errno value: ENOMEM is no verdict on the token, as above */
	int dec = jwt_decode(&j, jwt, k->key, (int)k->len);
	if (dec != 0 || !j) {
		if (dec == ENOMEM) {
			reason = "could not read the token";
			rc = TOKEN_UNCHECKED;
		} else {
			reason = "bad signature or malformed token";
		}
		j = NULL;
		goto out;
	}
	if (jwt_get_alg(j) != JWT_ALG_HS256) {
		reason = "algorithm not allowed";
		goto out;
	}
	const char *iss = jwt_get_grant(j, "iss");
	if (!iss || strcmp(iss, TOKEN_ISSUER) != 0) {
		reason = "wrong issuer";
		goto out;
	}
	errno = 0;
	long long exp = (long long)jwt_get_grant_int(j, "exp");
	if (errno == ENOENT || exp <= 0) {
		reason = "no expiry";
		goto out;
	}
	if (exp <= now) {
		reason = "token expired";
		goto out;
	}
	errno = 0;
	long long iat = (long long)jwt_get_grant_int(j, "iat");
	if (errno == ENOENT)
		iat = 0;
	if (copy_claim(j, "sub", sub, sizeof sub) < 0 ||
	    copy_claim(j, "name", out->username, sizeof out->username) < 0 ||
	    copy_claim(j, "typ", typ, sizeof typ) < 0)
		goto out;
	char *end;
	errno = 0;
	out->user_id = strtoll(sub, &end, 10);
	if (errno || *end || out->user_id <= 0)
		goto out;
	out->room[0] = '\0';
	if (strcmp(typ, "session") == 0) {
		out->kind = TOKEN_SESSION;
	} else if (strcmp(typ, "ticket") == 0) {
		out->kind = TOKEN_TICKET;
		if (copy_claim(j, "room", out->room, sizeof out->room) < 0)
			goto out;
	} else {
		goto out;
	}
	if (copy_claim(j, "sid", out->sid, sizeof out->sid) < 0 || !sid_ok(out->sid)) {
		reason = "token without a session: sign in again";
		goto out;
	}
	errno = 0;
	out->gen = (long long)jwt_get_grant_int(j, "gen");
	if (errno == ENOENT || out->gen < 0) {
		reason = "token without a session: sign in again";
		goto out;
	}
	out->iat = iat;
	out->exp = exp;
	out->sexp = exp;
	if (out->kind == TOKEN_TICKET) {
		errno = 0;
		out->sexp = (long long)jwt_get_grant_int(j, "sexp");
		if (errno == ENOENT || out->sexp < 0)
			out->sexp = 0;
	}
	rc = 0;
	reason = NULL;
out:
	if (j)
		jwt_free(j);
	if (why)
		*why = reason;
	return rc;
}

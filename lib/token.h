/* token: the service's signed tokens, JWT HS256 via libjwt.
 *
 * Two kinds share one key: session tokens (what login answers, Bearer in API calls) and
 * stream tickets (short-lived, bound to one room, for EventSource/WebSocket URLs where a
 * browser cannot set headers). Verification accepts only HS256 with our issuer and checks
 * exp itself, because libjwt 1.10 checks neither the algorithm nor any claim. A valid
 * signature says who the holder is, not that the session is still alive: that is
 * access_session_check()'s question (lib/access.h). */
#ifndef CC_TOKEN_H
#define CC_TOKEN_H

#include <stddef.h>

#define TOKEN_ISSUER "codecollab"
#define TOKEN_MAX_LEN 4096
#define TOKEN_USERNAME_MAX 64
#define TOKEN_ROOM_MAX 64
#define TOKEN_SID_LEN 24 /* random [a-z0-9] characters */

enum token_kind { TOKEN_SESSION, TOKEN_TICKET };

struct token_claims {
	long long user_id;
	char username[TOKEN_USERNAME_MAX + 1];
	enum token_kind kind;
	char room[TOKEN_ROOM_MAX + 1]; /* tickets only; "" for sessions */
	long long iat;
	long long exp;
	/* The session a token belongs to: sid is random per sign-in, and a ticket carries the sid
	 * of the session token it was taken with, so revoking the session (logout) revokes its
	 * tickets and the streams they opened. gen is the user's token generation when the
	 * session was signed in: a password change raises it, revoking every older token. Both
	 * are required in every token (lib/access.h checks them against Redis). */
	char sid[TOKEN_SID_LEN + 1];
	long long gen;
	/* When the session ends by itself: a session token's own exp; a ticket carries its
	 * session's in the claim `sexp` (0: a ticket made before it was carried, which says
	 * nothing). The broker ends a stream then (sse-broker/server.c), whatever it was opened
	 * with: the session can no longer be signed out once its token has expired. */
	long long sexp;
};

struct token_key {
	unsigned char *key; /* owned; token_key_free() */
	size_t len;
};

/* JWT_SECRET, else the contents of the file named by JWT_SECRET_FILE. There is no built-in
 * default: with neither, or a secret under 32 bytes, this fails with a message in err. */
int token_key_load(struct token_key *k, char *err, size_t errlen);
void token_key_free(struct token_key *k);

/* Caller frees the result with free(). NULL on failure. */
char *token_sign(const struct token_key *k, const struct token_claims *c);

/* 1 when jwt has three parts and its third is the HS256 signature of the first two under k
 * (base64url, no padding, in the one spelling token_sign writes), compared in constant time;
 * 0 when not, -1 when the HMAC could not be computed. token_verify asks this first. */
int token_signature_ok(const struct token_key *k, const char *jwt);

/* token_verify's answers other than 0. TOKEN_UNCHECKED is no verdict on the token: its
 * signature could not be computed (out of memory), so the caller answers a server error
 * (500), not 401, and the holder may send the same token again. */
#define TOKEN_INVALID (-1)
#define TOKEN_UNCHECKED (-2)

/* 0 and *out filled when jwt is a valid, unexpired token of ours at time `now` (seconds);
 * TOKEN_INVALID when it is not, TOKEN_UNCHECKED when it could not be checked; either with a
 * short reason in *why (static string). */
int token_verify(const struct token_key *k, const char *jwt, long long now,
		 struct token_claims *out, const char **why);

/* The credentials in an Authorization field value of the Bearer scheme, the one rule the API
 * and the broker both read the header by: the scheme name in any case (RFC 9110 §11.1), then
 * one or more spaces (RFC 6750 §2.1), then the token. A pointer into value, "" when the
 * scheme comes without a token, NULL when value is NULL or of another scheme. The web
 * servers and the broker have already trimmed whitespace around the whole value. */
const char *token_bearer(const char *value);

#endif

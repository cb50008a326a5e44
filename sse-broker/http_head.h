/* http_head: the broker's HTTP/1.x request-head parser and query-string reader.
 *
 * No sockets here (docs/CONVENTIONS.md §5): the server hands in the bytes it has read so
 * far and gets back "need more", "done" or a reason to refuse, so unit tests and the fuzzer
 * drive it directly. The head is bounded (HTTP_HEAD_MAX bytes, HTTP_HEADERS_MAX fields): past
 * either bound the answer is HTTP_HEAD_TOO_LARGE and the server replies 431, or, when the
 * request line alone is past the byte bound, HTTP_HEAD_URI_TOO_LONG and 414. */
#ifndef CC_BROKER_HTTP_HEAD_H
#define CC_BROKER_HTTP_HEAD_H

#include <stddef.h>

#define HTTP_HEAD_MAX 8192
#define HTTP_HEADERS_MAX 64
/* Empty lines (CRLF) skipped before the request line, in bytes (RFC 9112 §2.2 lets a server
 * skip some): 4 of them. A fifth is refused. They do not count towards HTTP_HEAD_MAX. */
#define HTTP_HEAD_LEADING_MAX 8
/* The most bytes a caller needs to hand http_head_parse() for it to reach a verdict: with
 * this many (or all the client sent, when less) the answer is never HTTP_HEAD_MORE because
 * bytes were left out. The skipped empty lines, the head, and a little past the bound. */
#define HTTP_HEAD_READ_MAX (HTTP_HEAD_LEADING_MAX + HTTP_HEAD_MAX + 4)
/* the skip goes by whole CRLF pairs, and a head one byte past the bound must still fit */
_Static_assert(HTTP_HEAD_LEADING_MAX % 2 == 0, "empty lines are skipped two bytes at a time");
_Static_assert(HTTP_HEAD_READ_MAX >= HTTP_HEAD_LEADING_MAX + HTTP_HEAD_MAX + 2,
	       "the parser needs up to 2 bytes past the bound for a verdict");

enum http_head_status {
	HTTP_HEAD_OK = 0,
	HTTP_HEAD_MORE = 1,	    /* no complete head yet, and still under the bound */
	HTTP_HEAD_BAD = -1,	    /* malformed: 400 */
	HTTP_HEAD_TOO_LARGE = -2,   /* over HTTP_HEAD_MAX or HTTP_HEADERS_MAX: 431 */
	/* the request line with its CRLF does not fit in HTTP_HEAD_MAX (RFC 9110 §15.5.15: the
	 * target is what makes a request line long): 414 */
	HTTP_HEAD_URI_TOO_LONG = -3,
};

struct http_header {
	const char *name;
	const char *value;
};

/* Every pointer below points into store, so the struct is self-contained: the caller may
 * discard its read buffer once http_head_parse() returned HTTP_HEAD_OK. */
struct http_head {
	char store[HTTP_HEAD_MAX + 1];
	const char *method;
	const char *path;  /* target up to '?', raw (not percent-decoded); "/" for an
			    * absolute-form target without a path */
	const char *query; /* after '?', "" when none */
	/* the host[:port] of an absolute-form target ("http://host:port/path", RFC 9112
	 * §3.2.2), which then stands for the Host field; NULL for origin-form ("/path") */
	const char *authority;
	int minor;	   /* HTTP/1.<minor> */
	struct http_header headers[HTTP_HEADERS_MAX];
	size_t nheaders;
	size_t head_len; /* bytes of input the head used, final CRLF CRLF included */
	/* on HTTP_HEAD_BAD, what is wrong when a client is owed more than "malformed": a
	 * static string, or NULL */
	const char *why;
};

/* Parses the head at the start of data[0..len). On HTTP_HEAD_OK, h is filled and
 * h->head_len tells how much of data was the head. Lines end in CRLF (RFC 9112 §2.2): a line
 * ending in LF alone is HTTP_HEAD_BAD as soon as it is seen (h->why says so), since a head
 * of such lines would never show the CRLF CRLF that ends it. The target is origin-form or
 * absolute-form with an http or https URI (RFC 9112 §3.2.1-2); the asterisk-form and every
 * other scheme are HTTP_HEAD_BAD. The Host field is not looked at here (see
 * http_head_framing_error). */
enum http_head_status http_head_parse(struct http_head *h, const char *data, size_t len);

/* Whether data[0..len), a head http_head_parse() refused (HTTP_HEAD_TOO_LARGE,
 * HTTP_HEAD_URI_TOO_LONG or HTTP_HEAD_BAD), starts with a whole request line that parses
 * and names the method HEAD: the refusal is then a HEAD answer too, without a body. 0 when
 * the request line itself is incomplete, malformed or too long (its method is not known). */
int http_head_line_is_head(const char *data, size_t len);

/* First value of the field named name (case-insensitive, RFC 9110 §5.1); borrowed from h;
 * NULL when absent. */
const char *http_head_get(const struct http_head *h, const char *name);

/* Whether a comma-separated header value holds token (case-insensitive), e.g.
 * "Connection: keep-alive, Upgrade" holds "upgrade". */
int http_list_has(const char *value, const char *token);

/* Whether any field named name holds token as http_list_has() reads it: repeated field
 * lines are one list (RFC 9110 §5.3), so "Connection: keep-alive" then "Connection: Upgrade"
 * holds "upgrade". */
int http_head_has_token(const struct http_head *h, const char *name, const char *token);

/* How many field lines are named name. */
size_t http_head_count(const struct http_head *h, const char *name);

/* Why a parsed head cannot be taken, or NULL. First what a server that reads no request body
 * cannot take (the broker: a kept connection's next request starts right after the head,
 * RFC 9112 §6.3): a Transfer-Encoding, a Content-Length that is not one line of digits. Then
 * the Host field (RFC 9112 §3.2): more than one, a value that is not host[:port], or none in
 * an HTTP/1.1 request (HTTP/1.0 may leave it out; with an absolute-form target its value is
 * not used, but it must be there). A static string for the 400's message. */
const char *http_head_framing_error(const struct http_head *h);

/* Percent-decodes in[0..n) into out (cap bytes, NUL-terminated); '+' is a space when
 * plus_space. -1 on a bad escape, a decoded NUL, or when out is too small; else the length. */
long http_percent_decode(const char *in, size_t n, char *out, size_t cap, int plus_space);

/* Finds name in an application/x-www-form-urlencoded query and decodes its first value
 * into out. 1 found, 0 absent, -1 malformed or too long for out. */
int http_query_get(const char *query, const char *name, char *out, size_t cap);

/* How many times name occurs in query (names compared decoded, like http_query_get). */
int http_query_count(const char *query, const char *name);

#endif

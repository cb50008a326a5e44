/* http: one API request and its answer, over FastCGI (libfcgi's fcgiapp) or plain CGI.
 *
 * A request is read whole (parameters copied, body read up to HTTP_BODY_MAX) into one
 * struct http_req freed by http_req_free(); nothing points into libfcgi's envp after
 * reading, because libfcgi reuses that memory at the next FCGX_Accept_r. */
#ifndef CC_HTTP_H
#define CC_HTTP_H

#include <fcgiapp.h>
#include <stddef.h>

#include "buf.h"
#include "origin.h"

#define HTTP_BODY_MAX ((size_t)1024 * 1024)
/* A body refused for its size is still read (and thrown away) up to this size before the
 * 413, so the web server can deliver the answer (fcgi/http.c, drain_body). Both web servers
 * refuse a body over 2 MiB themselves, unread (lighttpd.conf server.max-request-size,
 * deploy/apache LimitRequestBody): a larger one reaches the API only from something else
 * speaking FastCGI to it, and reading megabytes more of it for nothing would only keep the
 * process from its next request. Exactly 2 MiB is passed on, so it is drained still. */
#define HTTP_BODY_DRAIN_MAX ((size_t)2 * 1024 * 1024)
/* The least bound of an answer body the API builds (docs/CONVENTIONS.md §3): past the bound
 * an answer fails as out of memory. A job's stored result is bounded to fit in it
 * (JOB_RESULT_MAX). A larger DOCUMENT_MAX_BYTES raises the bound (http_set_resp_body_max). */
#define HTTP_RESP_BODY_MAX ((size_t)8 * 1024 * 1024)

/* Sets the answer bound of every response initialised after (once at start): at least
 * HTTP_RESP_BODY_MAX. */
void http_set_resp_body_max(size_t max);

struct http_io {
	FCGX_Stream *in, *out;
	FCGX_ParamArray envp;
	int cgi; /* 1: environment, stdin, stdout */
};

struct http_req {
	char method[16];
	char *path;   /* without the query string; owned */
	char *query;  /* after '?', "" when none; owned */
	char *content_type;  /* owned, "" when none */
	char *authorization; /* owned, "" when none */
	char *remote_addr;   /* owned */
	char *host;          /* the Host header, owned, "" when none */
	int https;
	long server_port; /* SERVER_PORT: the port the web server took the request on, 0 unknown */
	int redirect_status; /* REDIRECT_STATUS 400-599: the web server's own error answer, handed
			      * over to us to word (lighttpd server.error-handler); else 0 */
	char *body; /* NUL-terminated, owned; NULL when there is none */
	size_t body_len;
};

struct http_resp {
	int status;
	struct buf headers; /* extra header lines, each ending in \r\n */
	struct buf body;
	const char *content_type; /* static string */
};

/* Reads the request. 0 on success; otherwise the HTTP status to answer (400, 413) with a
 * message in *why (static). The req must be freed with http_req_free() either way. */
int http_read_request(struct http_io *io, struct http_req *req, const char **why);
void http_req_free(struct http_req *req);

void http_resp_init(struct http_resp *resp);
void http_resp_free(struct http_resp *resp);
int http_resp_header(struct http_resp *resp, const char *name, const char *value);
/* Writes status line, our security headers, extra headers and the body. */
int http_send(struct http_io *io, const struct http_req *req, struct http_resp *resp);
const char *http_reason(int status);

/* Strict decimal parse of a Content-Length value: digits only, no sign; a value past what
 * size_t holds is SIZE_MAX (too large, not malformed). */
int http_parse_length(const char *s, size_t *out);
/* 1 when a Content-Type is application/json (any case) whose parameters are well formed
 * (RFC 9110) and whose charset, if any, is utf-8; 0 for any other type, a malformed one, or
 * another charset. */
int http_is_json_type(const char *content_type);

/* A buffer for the origin the API answers for direct streams (lib/origin.h's bound). */
#define HTTP_ORIGIN_MAX (ORIGIN_MAX + 1)
/* The host name of a Host header value ("example.com:8080" -> "example.com", "[::1]:80" ->
 * "[::1]", lib/origin.h's grammar) into out; -1 when the value is empty, too long or holds
 * anything else. */
int http_host_name(const char *host, char *out, size_t outlen);
/* The origin a client of this request may open its streams at (docs/API.md, "Direct
 * streams"), from STREAM_ORIGIN's value: "auto" = http://<the request's host name>:<port>
 * for a plain-http request (none for https: a page served over TLS cannot use it), an
 * origin = itself as a browser writes it (lower case, no default port), "" or "off" =
 * none. 1 with the origin in out, 0 for none. */
int http_stream_origin(const char *setting, long port, const char *host, int https, char *out,
		       size_t outlen);

#endif

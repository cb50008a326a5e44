#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char *io_param(struct http_io *io, const char *name)
{
	return io->cgi ? getenv(name) : FCGX_GetParam(name, io->envp);
}

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

int http_parse_length(const char *s, size_t *out)
{
	size_t n = 0;
	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		size_t d = (size_t)(*s - '0');
		/* a number past what fits is a length past every bound, not a malformed one:
		 * held at the largest value, so the caller answers it 413 as any other */
		n = n > ((size_t)-1 - d) / 10 ? (size_t)-1 : n * 10 + d;
	}
	*out = n;
	return 0;
}

int http_host_name(const char *host, char *out, size_t outlen)
{
	size_t hl;
	long port;
	if (origin_host_port(host, &hl, &port) < 0 || hl >= outlen)
		return -1;
	memcpy(out, host, hl);
	out[hl] = '\0';
	return 0;
}

int http_stream_origin(const char *setting, long port, const char *host, int https, char *out,
		       size_t outlen)
{
	if (!setting || !*setting || strcmp(setting, "off") == 0)
		return 0;
	if (strcmp(setting, "auto") != 0)
		return origin_parse(setting, out, outlen, NULL, 0) == 0;
	char name[HTTP_ORIGIN_MAX];
	if (https || port < 1 || port > 65535 || http_host_name(host, name, sizeof name) < 0)
		return 0;
	int n = snprintf(out, outlen, "http://%s:%ld", name, port);
	return n > 0 && (size_t)n < outlen;
}

/* RFC 9110 section 5.6.2: a token's characters */
static int tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static const char *skip_ows(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* 1 when the n characters of a charset's value read so far, ch their next one, still
 * spell the start of name (any case). */
static int spells(const char *name, size_t n, unsigned char ch)
{
	return n < strlen(name) && (char)tolower(ch) == name[n];
}

/* A parameter's value at *p, a token or a quoted-string (RFC 9110 section 5.6.4), which
 * *p is moved past. 1 when it was read, 0 when it is malformed; *is_utf8 tells whether it
 * names UTF-8: "utf-8", the registered name, or "utf8", which clients send too (any case,
 * quoted or not, an escaped character counting as itself). */
static int param_value(const char **p, int *is_utf8)
{
	static const char utf8[] = "utf-8", alias[] = "utf8";
	const char *s = *p;
	size_t n = 0;
	int same = 1, same_alias = 1;
	if (*s == '"') {
		for (s++; *s != '"'; s++) {
			unsigned char ch = (unsigned char)*s;
			if (ch == '\\') {
				ch = (unsigned char)*++s;
				if (!(ch == '\t' || (ch >= 0x20 && ch != 0x7f)))
					return 0;
			} else if (!(ch == '\t' || (ch >= 0x20 && ch != 0x7f))) {
				return 0; /* the end of the header before the closing quote, or a control */
			}
			same = same && spells(utf8, n, ch);
			same_alias = same_alias && spells(alias, n, ch);
			n++;
		}
		s++;
	} else {
		for (; tchar((unsigned char)*s); s++, n++) {
			same = same && spells(utf8, n, (unsigned char)*s);
			same_alias = same_alias && spells(alias, n, (unsigned char)*s);
		}
		if (n == 0)
			return 0; /* `charset=` with no value */
	}
	*is_utf8 = (same && n == sizeof utf8 - 1) || (same_alias && n == sizeof alias - 1);
	*p = s;
	return 1;
}

int http_is_json_type(const char *ct)
{
	if (!ct)
		return 0;
	const char *s = skip_ows(ct);
	if (strncasecmp(s, "application/json", 16) != 0)
		return 0;
	s += 16;
	/* parameters = *( OWS ";" OWS [ name "=" value ] ): any name may come (and is not
	 * read), a `;` may stand alone; JSON is UTF-8 (RFC 8259), so a charset, if given, must
	 * say so, each time it is given. Anything else after the type is malformed. */
	for (;;) {
		s = skip_ows(s);
		if (!*s)
			return 1;
		if (*s != ';')
			return 0;
		s = skip_ows(s + 1);
		if (!*s || *s == ';')
			continue;
		const char *name = s;
		while (tchar((unsigned char)*s))
			s++;
		size_t nlen = (size_t)(s - name);
		int is_utf8 = 0;
		if (nlen == 0 || *s != '=')
			return 0;
		s++;
		if (!param_value(&s, &is_utf8))
			return 0;
		if (nlen == 7 && strncasecmp(name, "charset", 7) == 0 && !is_utf8)
			return 0;
	}
}

static int read_body(struct http_io *io, char *dst, size_t len)
{
	size_t got = 0;
	while (got < len) {
		size_t want = len - got > (1 << 20) ? (1 << 20) : len - got;
		int n;
		if (io->cgi) {
			ssize_t r = read(STDIN_FILENO, dst + got, want);
			n = r < 0 ? -1 : (int)r;
		} else {
			n = FCGX_GetStr(dst + got, (int)want, io->in);
		}
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/* Reads and throws away up to len bytes of the body (a FastCGI stream only), so the web
 * server has handed all of it over before the answer: Apache's mod_proxy_fcgi cuts the
 * client's connection (no answer at all) when the program answers while it is still
 * sending the body. Bounded by HTTP_BODY_DRAIN_MAX: past it the connection may go. */
static void drain_body(struct http_io *io, size_t len)
{
	char scratch[16384] BUF_SCRATCH;
	if (io->cgi || len > HTTP_BODY_DRAIN_MAX)
		return;
	while (len > 0) {
		int n = FCGX_GetStr(scratch, (int)(len < sizeof scratch ? len : sizeof scratch), io->in);
		if (n <= 0)
			return;
		len -= (size_t)n;
	}
}

int http_read_request(struct http_io *io, struct http_req *req, const char **why)
{
	memset(req, 0, sizeof *req);
	/* read first: the head of a request the web server refused may lack the rest. Only the
	 * web server sets it (a client's header would be HTTP_REDIRECT_STATUS); a 2xx/3xx one
	 * is an internal rewrite, not an error */
	const char *rs = io_param(io, "REDIRECT_STATUS");
	long rsv = rs ? strtol(rs, NULL, 10) : 0;
	req->redirect_status = rsv >= 400 && rsv <= 599 ? (int)rsv : 0;
	const char *m = io_param(io, "REQUEST_METHOD");
	const char *uri = io_param(io, "REQUEST_URI");
	req->content_type = dup_or_empty(io_param(io, "CONTENT_TYPE"));
	req->authorization = dup_or_empty(io_param(io, "HTTP_AUTHORIZATION"));
	req->remote_addr = dup_or_empty(io_param(io, "REMOTE_ADDR"));
	req->host = dup_or_empty(io_param(io, "HTTP_HOST"));
	const char *https = io_param(io, "HTTPS");
	req->https = https && strcasecmp(https, "on") == 0;
	const char *sp = io_param(io, "SERVER_PORT");
	req->server_port = sp ? strtol(sp, NULL, 10) : 0;
	if (!req->content_type || !req->authorization || !req->remote_addr || !req->host) {
		*why = "out of memory";
		return 500;
	}
	if (!m || !m[0] || strlen(m) >= sizeof req->method) {
		*why = "missing or unknown request method";
		return 400;
	}
	strcpy(req->method, m);
	if (uri) {
		const char *q = strchr(uri, '?');
		size_t plen = q ? (size_t)(q - uri) : strlen(uri);
		req->path = strndup(uri, plen);
		req->query = strdup(q ? q + 1 : "");
	} else {
		/* CGI servers that keep to RFC 3875 set no REQUEST_URI: the path is SCRIPT_NAME
		 * and PATH_INFO (sections 4.1.13, 4.1.5), the query QUERY_STRING (4.1.7) */
		const char *sn = io_param(io, "SCRIPT_NAME"), *pi = io_param(io, "PATH_INFO");
		const char *qs = io_param(io, "QUERY_STRING");
		if (asprintf(&req->path, "%s%s", sn ? sn : "", pi ? pi : "") < 0)
			req->path = NULL;
		req->query = strdup(qs ? qs : "");
	}
	if (!req->path || !req->query) {
		*why = "out of memory";
		return 500;
	}
	if (req->path[0] != '/') {
		*why = "missing request path";
		return 400;
	}
	const char *cl = io_param(io, "CONTENT_LENGTH");
	size_t len = 0;
	if (cl && *cl && http_parse_length(cl, &len) < 0) {
		*why = "Content-Length is not a number";
		return 400;
	}
	if (len > HTTP_BODY_MAX) {
		drain_body(io, len);
		*why = "the request body is larger than 1 MiB";
		return 413;
	}
	if (len > 0) {
		req->body = malloc(len + 1);
		if (!req->body) {
			*why = "out of memory";
			return 500;
		}
		if (read_body(io, req->body, len) < 0) {
			*why = "the request body is shorter than its Content-Length";
			return 400;
		}
		req->body[len] = '\0';
		req->body_len = len;
	}
	return 0;
}

void http_req_free(struct http_req *req)
{
	free(req->path);
	free(req->query);
	free(req->content_type);
	free(req->authorization);
	free(req->remote_addr);
	free(req->host);
	free(req->body);
	memset(req, 0, sizeof *req);
}

static size_t resp_body_max = HTTP_RESP_BODY_MAX;

void http_set_resp_body_max(size_t max)
{
	resp_body_max = max > HTTP_RESP_BODY_MAX ? max : HTTP_RESP_BODY_MAX;
}

void http_resp_init(struct http_resp *resp)
{
	resp->status = 200;
	buf_init(&resp->headers, 16 * 1024);
	buf_init(&resp->body, resp_body_max);
	resp->content_type = "application/json";
}

void http_resp_free(struct http_resp *resp)
{
	buf_free(&resp->headers);
	buf_free(&resp->body);
}

int http_resp_header(struct http_resp *resp, const char *name, const char *value)
{
	/* header values come from our own code, but never let one split the header block */
	if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
		return -1;
	return buf_printf(&resp->headers, "%s: %s\r\n", name, value);
}

const char *http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/* The same headers lighttpd.conf sets on every answer (var.csp, var.security_headers);
 * repeated here so a CGI deployment behind another server sends them too. The tests hold
 * this copy to lighttpd.conf's (tests/stack/cgi.test.mjs). */
static const char security_headers[] =
	"Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; "
	"img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; "
	"base-uri 'self'; form-action 'self'; frame-ancestors 'none'; "
	"require-trusted-types-for 'script'; trusted-types codecollab\r\n"
	"X-Content-Type-Options: nosniff\r\n"
	"Referrer-Policy: no-referrer\r\n"
	"X-Frame-Options: DENY\r\n"
	"Cache-Control: no-store\r\n";

int http_send(struct http_io *io, const struct http_req *req, struct http_resp *resp)
{
	struct buf head;
	int rc = -1;
	buf_init(&head, 64 * 1024);
	int has_body = resp->status != 204 && resp->body.len > 0;
	if (buf_printf(&head, "Status: %d %s\r\n", resp->status, http_reason(resp->status)) < 0 ||
	    buf_puts(&head, security_headers) < 0)
		goto out;
	if (req && req->https &&
	    buf_puts(&head, "Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n") < 0)
		goto out;
	if (has_body && buf_printf(&head, "Content-Type: %s\r\nContent-Length: %zu\r\n",
				   resp->content_type, resp->body.len) < 0)
		goto out;
	if (!has_body && resp->status != 204 && buf_puts(&head, "Content-Length: 0\r\n") < 0)
		goto out;
	if (resp->headers.len && buf_append(&head, resp->headers.data, resp->headers.len) < 0)
		goto out;
	if (buf_puts(&head, "\r\n") < 0)
		goto out;
	if (req && strcmp(req->method, "HEAD") == 0)
		has_body = 0; /* the headers, Content-Length included, describe the GET answer */
	if (io->cgi) {
		if (fwrite(head.data, 1, head.len, stdout) != head.len)
			goto out;
		if (has_body && fwrite(resp->body.data, 1, resp->body.len, stdout) != resp->body.len)
			goto out;
		if (fflush(stdout) != 0)
			goto out;
	} else {
		if (FCGX_PutStr(head.data, (int)head.len, io->out) < 0)
			goto out;
		if (has_body && FCGX_PutStr(resp->body.data, (int)resp->body.len, io->out) < 0)
			goto out;
	}
	rc = 0;
out:
	buf_free(&head);
	return rc;
}

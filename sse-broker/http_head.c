#include "http_head.h"
#include "hex.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 §5.6.2 tchar */
static int is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-value characters (RFC 9110 §5.5): visible ASCII, obs-text, SP and HTAB */
static int is_vchar(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* RFC 3986 §3.2.2 reg-name characters but the percent escapes: unreserved and sub-delims */
static int is_regname(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return 1;
	return c != '\0' && strchr("-._~!$&'()*+,;=", c) != NULL;
}

/* Whether s[0..n) is host[:port], the grammar of a Host value and of an absolute-form
 * target's authority without user information (RFC 9110 §7.2, RFC 3986 §3.2.2-3.2.3): a
 * reg-name, percent escapes allowed, or an IPv6 address in brackets (as inet_pton reads it:
 * "[1]" or "[1:2]" is not one; zone ids and IPvFuture are not taken), never empty; then ':'
 * and digits (none is allowed too). The grammar only: the broker serves whatever host it is
 * reached by, so nothing is compared or looked up. */
static int host_port_valid(const char *s, size_t n)
{
	size_t i = 0;
	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		char addr[INET6_ADDRSTRLEN];
		struct in6_addr a6;
		size_t alen = close ? (size_t)(close - s) - 1 : 0;
		if (alen == 0 || alen >= sizeof addr)
			return 0;
		memcpy(addr, s + 1, alen);
		addr[alen] = '\0';
		if (inet_pton(AF_INET6, addr, &a6) != 1)
			return 0;
		i = alen + 2;
	} else {
		while (i < n && s[i] != ':') {
			if (s[i] == '%') {
				if (i + 2 >= n || hex_digit(s[i + 1]) < 0 || hex_digit(s[i + 2]) < 0)
					return 0;
				i += 3;
			} else if (is_regname((unsigned char)s[i])) {
				i++;
			} else {
				return 0;
			}
		}
		if (i == 0)
			return 0;
	}
	if (i < n && s[i++] != ':')
		return 0;
	for (; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static char *trim_ows(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
	return s;
}

static enum http_head_status parse_request_line(struct http_head *h, char *line, char *end)
{
	h->authority = NULL;
	char *sp1 = memchr(line, ' ', (size_t)(end - line));
	if (!sp1 || sp1 == line)
		return HTTP_HEAD_BAD;
	for (char *p = line; p < sp1; p++)
		if (!is_tchar((unsigned char)*p))
			return HTTP_HEAD_BAD;
	*sp1 = '\0';
	h->method = line;
	char *target = sp1 + 1;
	char *sp2 = memchr(target, ' ', (size_t)(end - target));
	if (!sp2 || sp2 == target)
		return HTTP_HEAD_BAD;
	for (char *p = target; p < sp2; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return HTTP_HEAD_BAD;
	*sp2 = '\0';
	char *version = sp2 + 1;
	if ((size_t)(end - version) != 8 || memcmp(version, "HTTP/1.", 7) != 0 ||
	    (version[7] != '0' && version[7] != '1'))
		return HTTP_HEAD_BAD;
	h->minor = version[7] - '0';
	if (strcmp(target, "*") == 0) {
		/* RFC 9112 §3.2.4: only for a server-wide OPTIONS, which the broker has no
		 * answer for */
		h->why = "the asterisk-form target (OPTIONS *) is not served";
		return HTTP_HEAD_BAD;
	}
	if (strchr(target, '#')) {
		/* RFC 3986 §3.5: a fragment is the client's own and never sent; '#' is not allowed
		 * unescaped in a path or a query either */
		h->why = "the request target carries a fragment ('#')";
		return HTTP_HEAD_BAD;
	}
	if (*target != '/') {
		/* RFC 9112 §3.2.2: absolute-form, which a server must take though clients send it
		 * only to proxies. The authority is moved over the scheme and ended there, so the
		 * path right behind it keeps its '/' (the scheme is 7 bytes or more: it fits). */
		size_t sl = 0;
		if (strncasecmp(target, "http://", 7) == 0)
			sl = 7;
		else if (strncasecmp(target, "https://", 8) == 0)
			sl = 8;
		if (sl == 0) {
			h->why = "the request target is neither a path nor an http or https URI";
			return HTTP_HEAD_BAD;
		}
		char *auth = target + sl;
		size_t alen = strcspn(auth, "/?");
		if (alen == 0) {
			h->why = "the request target's URI has no host";
			return HTTP_HEAD_BAD;
		}
		if (memchr(auth, '@', alen)) {
			h->why = "the request target's URI carries user information";
			return HTTP_HEAD_BAD;
		}
		if (!host_port_valid(auth, alen)) {
			h->why = "the request target's URI has a malformed host or port";
			return HTTP_HEAD_BAD;
		}
		memmove(target, auth, alen);
		target[alen] = '\0';
		h->authority = target;
		target = auth + alen; /* "/…", "?…" or "" */
	}
	char *q = strchr(target, '?');
	if (q) {
		*q = '\0';
		h->query = q + 1;
	} else {
		h->query = "";
	}
	h->path = *target ? target : "/";
	return HTTP_HEAD_OK;
}

/* The answer to a head over the bound that starts at line (avail bytes of it here): when
 * the request line's CRLF does not fit in HTTP_HEAD_MAX bytes, the line alone is too long
 * (414), else the fields after it made the head too large (431). */
static enum http_head_status too_large(const char *line, size_t avail)
{
	size_t n = avail < HTTP_HEAD_MAX ? avail : HTTP_HEAD_MAX;
	return memmem(line, n, "\r\n", 2) ? HTTP_HEAD_TOO_LARGE : HTTP_HEAD_URI_TOO_LONG;
}

/* How many bytes of empty lines (CRLF) at the start of data to skip: at most
 * HTTP_HEAD_LEADING_MAX, the same for the parser and for the method of a refused head. */
static size_t skip_leading(const char *data, size_t len)
{
	size_t skip = 0;
	while (skip < HTTP_HEAD_LEADING_MAX && skip + 1 < len && data[skip] == '\r' &&
	       data[skip + 1] == '\n')
		skip += 2;
	return skip;
}

enum http_head_status http_head_parse(struct http_head *h, const char *data, size_t len)
{
	h->method = h->path = h->query = h->authority = NULL;
	h->nheaders = 0;
	h->head_len = 0;
	h->minor = 1;
	h->why = NULL;

	/* RFC 9112 §2.2: a server MAY ignore empty lines before the request line. */
	size_t skip = skip_leading(data, len);
	if (skip == HTTP_HEAD_LEADING_MAX && len - skip >= 2 &&
	    memcmp(data + skip, "\r\n", 2) == 0) {
		/* a fifth: refused at once, rather than waiting for a head that cannot parse */
		h->why = "too many empty lines before the request line";
		return HTTP_HEAD_BAD;
	}
	const char *term = memmem(data + skip, len - skip, "\r\n\r\n", 4);
	/* A line ending in LF alone (RFC 9112 §2.2 lets a server take it, and this one does
	 * not): a head of such lines never shows CRLF CRLF, and would wait unanswered for the
	 * head timeout. Refused as soon as the LF is here, whether or not the head is whole;
	 * only the head's bytes are looked at, not what follows it. */
	const char *stop = term ? term + 4 : data + len;
	for (const char *lf = memchr(data + skip, '\n', (size_t)(stop - (data + skip))); lf;
	     lf = memchr(lf + 1, '\n', (size_t)(stop - (lf + 1)))) {
		if (lf == data || lf[-1] != '\r') {
			h->why = "lines of the request head must end in CRLF, not LF alone";
			return HTTP_HEAD_BAD;
		}
	}
	if (!term) {
		/* the skipped lines are not the head's: only the bytes after them count */
		size_t avail = len - skip;
		if (avail <= HTTP_HEAD_MAX)
			return HTTP_HEAD_MORE;
		enum http_head_status st = too_large(data + skip, avail);
		/* the last line's CRLF counts towards the bound, the empty line's does not: one
		 * byte past it, a head whose bytes there are CR LF CR may still end with the next
		 * LF. Any other head that long is too large already. */
		if (st == HTTP_HEAD_TOO_LARGE && avail == HTTP_HEAD_MAX + 1 &&
		    memcmp(data + skip + HTTP_HEAD_MAX - 2, "\r\n\r", 3) == 0)
			return HTTP_HEAD_MORE;
		return st;
	}
	size_t n = (size_t)(term - (data + skip)) + 2; /* keep the last line's CRLF */
	if (n > HTTP_HEAD_MAX)
		return too_large(data + skip, n);
	memcpy(h->store, data + skip, n);
	h->store[n] = '\0';
	h->head_len = skip + n + 2;

	char *p = h->store, *end = h->store + n;
	int first = 1;
	while (p < end) {
		char *cr = memchr(p, '\r', (size_t)(end - p));
		if (!cr || cr + 1 >= end || cr[1] != '\n')
			return HTTP_HEAD_BAD; /* bare CR */
		/* a NUL inside a line is never valid (a bare LF was refused above) */
		if (memchr(p, '\0', (size_t)(cr - p)))
			return HTTP_HEAD_BAD;
		*cr = '\0';
		if (first) {
			enum http_head_status st = parse_request_line(h, p, cr);
			if (st != HTTP_HEAD_OK)
				return st;
			first = 0;
		} else {
			/* obs-fold (RFC 9112 §5.2) is refused with 400 */
			if (*p == ' ' || *p == '\t')
				return HTTP_HEAD_BAD;
			char *colon = memchr(p, ':', (size_t)(cr - p));
			if (!colon || colon == p)
				return HTTP_HEAD_BAD;
			for (char *c = p; c < colon; c++)
				if (!is_tchar((unsigned char)*c))
					return HTTP_HEAD_BAD;
			for (char *c = colon + 1; c < cr; c++)
				if (!is_vchar((unsigned char)*c))
					return HTTP_HEAD_BAD;
			if (h->nheaders == HTTP_HEADERS_MAX)
				return HTTP_HEAD_TOO_LARGE;
			*colon = '\0';
			h->headers[h->nheaders].name = p;
			h->headers[h->nheaders].value = trim_ows(colon + 1, cr);
			h->nheaders++;
		}
		p = cr + 2;
	}
	if (first)
		return HTTP_HEAD_BAD;
	return HTTP_HEAD_OK;
}

int http_head_line_is_head(const char *data, size_t len)
{
	size_t skip = skip_leading(data, len);
	size_t n = len - skip < HTTP_HEAD_MAX ? len - skip : HTTP_HEAD_MAX;
	const char *crlf = memmem(data + skip, n, "\r\n", 2);
	if (!crlf)
		return 0; /* the request line itself is not all there */
	size_t ll = (size_t)(crlf - (data + skip));
	/* the same checks as a whole head's first line, on a copy: a NUL, a bare CR or LF */
	if (memchr(data + skip, '\0', ll) || memchr(data + skip, '\r', ll) ||
	    memchr(data + skip, '\n', ll))
		return 0;
	struct http_head tmp;
	memcpy(tmp.store, data + skip, ll);
	tmp.store[ll] = '\0';
	return parse_request_line(&tmp, tmp.store, tmp.store + ll) == HTTP_HEAD_OK &&
	       strcmp(tmp.method, "HEAD") == 0;
}

const char *http_head_get(const struct http_head *h, const char *name)
{
	for (size_t i = 0; i < h->nheaders; i++)
		if (strcasecmp(h->headers[i].name, name) == 0)
			return h->headers[i].value;
	return NULL;
}

int http_list_has(const char *value, const char *token)
{
	size_t tl = strlen(token);
	const char *p = value;
	while (p && *p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *t = e;
		while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if ((size_t)(t - p) == tl && strncasecmp(p, token, tl) == 0)
			return 1;
		p = e;
	}
	return 0;
}

int http_head_has_token(const struct http_head *h, const char *name, const char *token)
{
	for (size_t i = 0; i < h->nheaders; i++)
		if (strcasecmp(h->headers[i].name, name) == 0 &&
		    http_list_has(h->headers[i].value, token))
			return 1;
	return 0;
}

size_t http_head_count(const struct http_head *h, const char *name)
{
	size_t n = 0;
	for (size_t i = 0; i < h->nheaders; i++)
		if (strcasecmp(h->headers[i].name, name) == 0)
			n++;
	return n;
}

const char *http_head_framing_error(const struct http_head *h)
{
	/* Where a request's body ends is where the next request on the connection starts. The
	 * broker reads no body, so a head that a proxy in front could read as having a
	 * different one than the broker does (two lengths, a chunked body, a length that is
	 * no number) is refused rather than guessed at (RFC 9112 §6.3, §11.2). */
	if (http_head_get(h, "Transfer-Encoding"))
		return "the broker takes no request body (Transfer-Encoding)";
	size_t nlen = http_head_count(h, "Content-Length");
	if (nlen > 1)
		return "more than one Content-Length";
	const char *clen = http_head_get(h, "Content-Length");
	if (clen && (!*clen || strspn(clen, "0123456789") != strlen(clen)))
		return "Content-Length is not a number";
	/* RFC 9112 §3.2: more than one Host, or one that is not host[:port], is a 400 whatever
	 * the target. An empty one is valid (a target without an authority may give it). */
	if (http_head_count(h, "Host") > 1)
		return "more than one Host";
	const char *host = http_head_get(h, "Host");
	if (host && *host && !host_port_valid(host, strlen(host)))
		return "the Host field is not a host with an optional port";
	/* None at all is a 400 over HTTP/1.1 (HTTP/1.0 came before it), whatever the target:
	 * with an absolute-form one the Host's value is ignored (RFC 9112 §3.2.2), not the
	 * need to send it. */
	if (!host && h->minor == 1)
		return "an HTTP/1.1 request must carry a Host field";
	return NULL;
}

long http_percent_decode(const char *in, size_t n, char *out, size_t cap, int plus_space)
{
	size_t o = 0;
	if (cap == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		if (c == '%') {
			if (i + 2 >= n)
				return -1;
			int hi = hex_digit(in[i + 1]), lo = hex_digit(in[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (char)(hi * 16 + lo);
			if (c == '\0')
				return -1;
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		} else if (c == '\0') {
			return -1;
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return (long)o;
}

int http_query_get(const char *query, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	const char *p = query;
	while (p && *p) {
		const char *amp = strchr(p, '&');
		const char *e = amp ? amp : p + strlen(p);
		const char *eq = memchr(p, '=', (size_t)(e - p));
		const char *ke = eq ? eq : e;
		/* names are compared decoded so "ti%63ket" is "ticket", as a browser may send */
		char key[64];
		long kl = http_percent_decode(p, (size_t)(ke - p), key, sizeof key, 1);
		if (kl == (long)nl && memcmp(key, name, nl) == 0) {
			const char *v = eq ? eq + 1 : e;
			return http_percent_decode(v, (size_t)(e - v), out, cap, 1) < 0 ? -1 : 1;
		}
		p = amp ? amp + 1 : NULL;
	}
	return 0;
}

int http_query_count(const char *query, const char *name)
{
	size_t nl = strlen(name);
	int count = 0;
	for (const char *p = query; p && *p;) {
		const char *amp = strchr(p, '&');
		const char *e = amp ? amp : p + strlen(p);
		const char *eq = memchr(p, '=', (size_t)(e - p));
		char key[64];
		long kl = http_percent_decode(p, (size_t)((eq ? eq : e) - p), key, sizeof key, 1);
		if (kl == (long)nl && memcmp(key, name, nl) == 0)
			count++;
		p = amp ? amp + 1 : NULL;
	}
	return count;
}

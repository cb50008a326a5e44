/* bench-opsgen: the load generator of bench/ops.mjs (committed operations per second).
 * W writers, each with one kept-alive TCP connection, POST one-character inserts
 *   POST /api/rooms/{id}/operations  {"revision":R,"ops":["x"]}
 * where R is the newest revision this process saw for that room in a 200 answer (so most
 * commits are transformed over others' on the server). Writer w's next room is
 * rooms[(w + ok + failed) % rooms], as in the Node writers of bench/ops.mjs.
 * One thread, one epoll loop: the generator shares two cores with the stack it measures, so
 * it must cost little CPU per request and send every commit when it is due.
 *
 * Usage:
 *   bench-opsgen --port PORT --token TOKEN (--rooms ID[,ID...] | --rooms-file FILE)
 *                [--host HOST] [--writers 32] [--seconds 5] [--rate 0] [--timeout-ms 10000]
 *   --host        address or name of the server (default 127.0.0.1); the Host header is
 *                 HOST:PORT
 *   --token       bearer token sent with every request
 *   --rooms       room ids, comma-separated; --rooms-file: one id a line
 *   --writers     connections, one request in flight on each (default 32)
 *   --seconds     how long new requests are started (default 5, fractions allowed); those
 *                 in flight then are awaited
 *   --rate        commits per second offered by all writers together (open loop); 0 (the
 *                 default): each writer sends its next commit as soon as the last is answered
 *   --timeout-ms  a request not answered by then fails and its connection is closed
 *                 (default 10000)
 * Open loop: writer w's commits are due at start + gap*w/W, then every gap = W/rate s. A
 * commit due while the previous one is in flight is sent when that answer arrives, and its
 * latency still counts from when it was due (no coordinated omission). The loop waits in
 * epoll_pwait2 with a nanosecond timeout, computed from CLOCK_MONOTONIC just before, and a
 * timer slack of 1 ns, so a send is not late by the loop's granularity (and costs no timerfd
 * system calls: at a fixed rate most requests have a wake-up of their own); sends more than 1 ms
 * after due are counted: "late" when the writer was free at the due time (the generator's own
 * lateness), "late_queued" when it was waiting for the previous answer (the server's). Answers:
 * status line, headers (Content-Length, chunked, or until close), body. A head over 16 KiB, a body
 * over 1 MiB, a malformed status line, header, Content-Length or chunk, a connection closed or
 * reset with the request in flight, and no answer within the timeout each fail that request
 * (counted by kind, the first one's text kept) and close the connection; the next request opens a
 * new one. "Connection: close" (lighttpd's 1,000th answer on a connection) opens the next
 * connection straight away. Output: one line of JSON on stdout when the run ends:
 *   {"ok","failed","failures":{"http","timeout","closed","protocol","connect"},
 *    "first_failure","secs","per_s","writers","rooms","rate",
 *    "latency_ms":{"p50","p90","p99","p999","max"} (from due; closed loop: from the send),
 *    "from_send_ms":{...},"late","late_queued","reconnects","cpu_us","cpu_user_us","cpu_sys_us",
 *    "cpu_us_per_request"}
 * cpu_us is this process's own user + system time over the run (getrusage); most of it is
 * the kernel's: a send on loopback TCP runs the receiving side's TCP path too. Memory: 16
 * bytes per request for the percentiles, and per writer at most 16 KiB + 1 MiB of answer.
 * Exit status: 0 after a run (failed requests included), 1 on a system error or when the
 * server cannot be reached at all at the start, 2 on bad arguments. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chunk.h"

#define HEAD_MAX 16384
#define BODY_MAX (1024 * 1024)
#define LINE_MAX_CHUNK 4096 /* a chunk-size line (with extensions) */
#define FAIL_TEXT_MAX 200
#define LATE_NS 1000000

enum kind { F_HTTP, F_TIMEOUT, F_CLOSED, F_PROTOCOL, F_CONNECT, F_KINDS };
static const char *const KIND_NAMES[F_KINDS] = {"http", "timeout", "closed", "protocol", "connect"};

enum pstate { P_HEAD, P_BODY_LEN, P_BODY_EOF, P_CHUNK_SIZE, P_CHUNK_DATA, P_CHUNK_END, P_TRAILER };

struct writer {
	int fd;           /* -1: no connection (the next request opens one) */
	int connecting;   /* non-blocking connect() under way */
	int want_out;     /* EPOLLOUT is registered */
	int busy;         /* a request is in flight (perhaps waiting for its connection) */
	int64_t due;      /* open loop: when the next commit is due */
	int64_t prev_end; /* when the last answer arrived (or the last request failed) */
	int64_t sent;     /* when the request in flight was started */
	int64_t req_due;  /* when it was due (closed loop: == sent) */
	int64_t deadline; /* when it times out */
	size_t room;
	char *out;
	size_t out_len, out_off, out_cap;
	char *in; /* HEAD_MAX bytes: read, not yet parsed */
	size_t in_len, scan;
	char *body;
	size_t body_len, body_cap;
	enum pstate ps;
	int status, close_after, chunked, have_len;
	size_t want, trailer_bytes;
};

struct opts {
	const char *host, *port, *token, *rooms_list, *rooms_file;
	long writers;
	double seconds, rate;
	long timeout_ms;
};

struct samples {
	int64_t *v;
	size_t n, cap;
};

static struct {
	struct opts o;
	char **rooms;
	size_t nrooms;
	int64_t *known; /* newest revision seen per room */
	struct writer *w;
	size_t nw;
	int epfd;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char hosthdr[300];
	int64_t start, end, gap;
	uint64_t ok, failed, by_kind[F_KINDS], late, late_queued, reconnects, conns;
	char first_failure[FAIL_TEXT_MAX + 1];
	struct samples lat_due, lat_send;
} G;

static int64_t now_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		perror("bench-opsgen: clock_gettime");
		exit(1);
	}
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fatal(const char *what)
{
	fprintf(stderr, "bench-opsgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void push(struct samples *s, int64_t v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		int64_t *p = realloc(s->v, cap * sizeof *p);
		if (!p)
			fatal("out of memory for the latencies");
		s->v = p;
		s->cap = cap;
	}
	s->v[s->n++] = v;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* the same rank as bench/ops.mjs's pct(): sorted[min(n - 1, floor(n * p / 100))] */
static double pct_ms(const struct samples *s, double p)
{
	if (!s->n)
		return 0;
	size_t i = (size_t)((double)s->n * p / 100.0);
	if (i > s->n - 1)
		i = s->n - 1;
	return (double)s->v[i] / 1e6;
}

/* ---- connections ---- */

static void watch_out(struct writer *w, int on)
{
	if (w->want_out == on)
		return;
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = w};
	if (epoll_ctl(G.epfd, EPOLL_CTL_MOD, w->fd, &ev) != 0)
		fatal("epoll_ctl MOD");
	w->want_out = on;
}

static void conn_close(struct writer *w)
{
	if (w->fd < 0)
		return;
	/* close() removes the descriptor from the epoll set; its error is only reported */
	if (close(w->fd) != 0)
		fprintf(stderr, "bench-opsgen: close: %s\n", strerror(errno));
	w->fd = -1;
	w->connecting = w->want_out = 0;
	w->in_len = w->scan = 0;
}

/* Starts a non-blocking connect; 0, or -1 with errno (no descriptor left open). */
static int conn_open(struct writer *w)
{
	int fd = socket(G.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
		goto fail;
	int connecting = 0;
	if (connect(fd, (struct sockaddr *)&G.addr, G.addrlen) != 0) {
		if (errno != EINPROGRESS)
			goto fail;
		connecting = 1;
	}
	struct epoll_event ev = {.events = EPOLLIN | (connecting ? EPOLLOUT : 0), .data.ptr = w};
	if (epoll_ctl(G.epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		goto fail;
	w->fd = fd;
	w->connecting = w->want_out = connecting;
	w->in_len = w->scan = 0;
	if (G.conns++ >= G.nw)
		G.reconnects++;
	return 0;
fail:;
	int e = errno;
	if (close(fd) != 0)
		fprintf(stderr, "bench-opsgen: close: %s\n", strerror(errno));
	errno = e;
	return -1;
}

/* ---- requests ---- */

static void record(struct writer *w, int64_t end)
{
	push(&G.lat_due, end - w->req_due);
	push(&G.lat_send, end - w->sent);
	w->busy = 0;
	w->prev_end = end;
	if (G.gap)
		w->due += G.gap;
}

/* Appends bytes to the first failure's text as JSON-safe printable ASCII. */
static void fail_text_add(const char *s, size_t n)
{
	size_t at = strlen(G.first_failure);
	for (size_t i = 0; i < n && at < FAIL_TEXT_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		G.first_failure[at++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	G.first_failure[at] = 0;
}

/* The request in flight failed: counted, the first failure's text kept; transport and
 * protocol failures close the connection (what follows on it cannot be trusted). */
static void fail_request(struct writer *w, enum kind k, const char *fmt, ...)
{
	if (!G.failed) {
		char text[FAIL_TEXT_MAX + 1];
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(text, sizeof text, fmt, ap);
		va_end(ap);
		if (n < 0)
			n = 0;
		if ((size_t)n > FAIL_TEXT_MAX)
			n = FAIL_TEXT_MAX;
		fail_text_add(text, (size_t)n);
	}
	G.failed++;
	G.by_kind[k]++;
	if (k != F_HTTP)
		conn_close(w);
	record(w, now_ns());
}

/* Writes what is left of the request; a send error fails it. */
static void flush(struct writer *w)
{
	while (w->out_off < w->out_len) {
		ssize_t n = send(w->fd, w->out + w->out_off, w->out_len - w->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				watch_out(w, 1);
				return;
			}
			fail_request(w, F_CLOSED, "send: %s", strerror(errno));
			return;
		}
		w->out_off += (size_t)n;
	}
	watch_out(w, 0);
}

static void start_request(struct writer *w, size_t wi, int64_t now)
{
	if (G.gap) {
		/* sent more than 1 ms after due: the server's doing when the previous answer came
		 * after the due time, else the generator's */
		if (now - w->due > LATE_NS) {
			if (w->prev_end > w->due)
				G.late_queued++;
			else
				G.late++;
		}
		w->req_due = w->due;
	} else {
		w->req_due = now;
	}
	w->sent = now;
	w->deadline = now + (int64_t)G.o.timeout_ms * 1000000;
	w->busy = 1;
	w->room = (wi + G.ok + G.failed) % G.nrooms;
	const char *room = G.rooms[w->room];
	char body[64];
	int blen = snprintf(body, sizeof body, "{\"revision\":%" PRId64 ",\"ops\":[\"x\"]}",
	                    G.known[w->room]);
	int n = snprintf(
		w->out, w->out_cap,
		"POST /api/rooms/%s/operations HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		room, G.hosthdr, G.o.token, blen, body);
	if (blen < 0 || n < 0 || (size_t)n >= w->out_cap) {
		fprintf(stderr, "bench-opsgen: request does not fit its buffer\n");
		exit(1);
	}
	w->out_len = (size_t)n;
	w->out_off = 0;
	w->ps = P_HEAD;
	w->status = w->close_after = w->chunked = w->have_len = 0;
	w->body_len = w->want = w->trailer_bytes = 0;
	w->scan = 0;
	if (w->fd < 0 && conn_open(w) != 0) {
		fail_request(w, F_CONNECT, "connect: %s", strerror(errno));
		return;
	}
	if (!w->connecting)
		flush(w);
}

/* ---- answers ---- */

static int body_add(struct writer *w, const char *p, size_t n)
{
	if (n > BODY_MAX - w->body_len)
		return -1;
	if (w->body_len + n > w->body_cap) {
		size_t cap = w->body_cap ? w->body_cap : 1024;
		while (cap < w->body_len + n)
			cap *= 2;
		if (cap > BODY_MAX)
			cap = BODY_MAX;
		char *b = realloc(w->body, cap);
		if (!b)
			return -1;
		w->body = b;
		w->body_cap = cap;
	}
	memcpy(w->body + w->body_len, p, n);
	w->body_len += n;
	return 0;
}

static int ieq(const char *a, size_t an, const char *b)
{
	size_t bn = strlen(b);
	return an == bn && strncasecmp(a, b, an) == 0;
}

static void trim(const char **p, size_t *n)
{
	while (*n && (**p == ' ' || **p == '\t'))
		(*p)++, (*n)--;
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

/* Does a comma-separated header value hold this token (case-insensitive)? */
static int has_token(const char *v, size_t n, const char *tok)
{
	while (n) {
		const char *c = memchr(v, ',', n);
		size_t len = c ? (size_t)(c - v) : n;
		const char *t = v;
		size_t tn = len;
		trim(&t, &tn);
		if (ieq(t, tn, tok))
			return 1;
		if (!c)
			break;
		v = c + 1;
		n -= len + 1;
	}
	return 0;
}

/* Parses a head of `len` bytes (CRLF CRLF included). 0: ok; -1: failed (request failed).
 * 1: an interim 1xx answer, to be skipped. */
static int parse_head(struct writer *w, const char *h, size_t len)
{
	const char *end = h + len - 2; /* the last header line's CRLF stays, the blank line goes */
	const char *eol = memmem(h, (size_t)(end - h), "\r\n", 2);
	size_t sl = (size_t)(eol - h);
	/* HTTP/1.x DDD[ reason] */
	if (sl < 12 || memcmp(h, "HTTP/1.", 7) != 0 || (h[7] != '0' && h[7] != '1') ||
	    h[8] != ' ' || h[9] < '1' || h[9] > '5' || h[10] < '0' || h[10] > '9' || h[11] < '0' ||
	    h[11] > '9' || (sl > 12 && h[12] != ' ')) {
		fail_request(w, F_PROTOCOL, "malformed status line: %.*s", (int)(sl > 60 ? 60 : sl),
		             h);
		return -1;
	}
	w->status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
	int http10 = h[7] == '0', keep_alive = 0;
	size_t clen = 0;
	for (const char *p = eol + 2; p < end;) {
		const char *e = memmem(p, (size_t)(end - p), "\r\n", 2);
		size_t ln = (size_t)(e - p);
		const char *colon = memchr(p, ':', ln);
		if (!colon || colon == p || p[0] == ' ' || p[0] == '\t' || colon[-1] == ' ' ||
		    colon[-1] == '\t') {
			fail_request(w, F_PROTOCOL, "malformed header line: %.*s",
			             (int)(ln > 60 ? 60 : ln), p);
			return -1;
		}
		size_t nn = (size_t)(colon - p);
		const char *v = colon + 1;
		size_t vn = ln - nn - 1;
		trim(&v, &vn);
		if (ieq(p, nn, "content-length")) {
			size_t n = 0;
			int big = 0;
			if (!vn)
				goto bad_len;
			for (size_t i = 0; i < vn; i++) {
				if (v[i] < '0' || v[i] > '9')
					goto bad_len;
				if (!big) {
					n = n * 10 + (size_t)(v[i] - '0');
					if (n > BODY_MAX)
						big = 1;
				}
			}
			if (big) {
				fail_request(w, F_PROTOCOL, "Content-Length %.*s is over 1 MiB",
				             (int)(vn > 40 ? 40 : vn), v);
				return -1;
			}
			if (w->have_len && n != clen)
				goto bad_len;
			clen = n;
			w->have_len = 1;
		} else if (ieq(p, nn, "transfer-encoding")) {
			if (!ieq(v, vn, "chunked")) {
				fail_request(w, F_PROTOCOL, "unsupported Transfer-Encoding: %.*s",
				             (int)(vn > 40 ? 40 : vn), v);
				return -1;
			}
			w->chunked = 1;
		} else if (ieq(p, nn, "connection")) {
			if (has_token(v, vn, "close"))
				w->close_after = 1;
			if (has_token(v, vn, "keep-alive"))
				keep_alive = 1;
		}
		p = e + 2;
		continue;
	bad_len:
		fail_request(w, F_PROTOCOL, "bad Content-Length: %.*s", (int)(vn > 40 ? 40 : vn),
		             v);
		return -1;
	}
	if (w->status < 200 && w->status != 101)
		return 1;
	if (http10 && !keep_alive)
		w->close_after = 1;
	if (w->status == 204 || w->status == 304) {
		w->ps = P_BODY_LEN;
		w->want = 0;
	} else if (w->chunked) {
		w->ps = P_CHUNK_SIZE; /* chunked wins over a Content-Length (RFC 9112 6.3) */
	} else if (w->have_len) {
		w->ps = P_BODY_LEN;
		w->want = clen;
	} else {
		w->ps = P_BODY_EOF; /* the body ends when the server closes */
		w->close_after = 1;
	}
	return 0;
}

/* A whole answer: counted, the revision kept. */
static void answered(struct writer *w)
{
	if (w->status == 200) {
		const char *r =
			w->body_len ? memmem(w->body, w->body_len, "\"revision\":", 11) : NULL;
		int64_t rev = -1;
		if (r) {
			const char *p = r + 11, *e = w->body + w->body_len;
			int digits = 0;
			rev = 0;
			while (p < e && *p >= '0' && *p <= '9' && digits < 18)
				rev = rev * 10 + (*p++ - '0'), digits++;
			if (!digits)
				rev = -1;
		}
		if (rev < 0) {
			fail_request(w, F_PROTOCOL, "200 without a revision: %.*s",
			             (int)(w->body_len > 100 ? 100 : w->body_len),
			             w->body ? w->body : "");
			return;
		}
		if (rev > G.known[w->room])
			G.known[w->room] = rev;
		G.ok++;
		record(w, now_ns());
	} else {
		fail_request(w, F_HTTP, "%d %.*s", w->status,
		             (int)(w->body_len > 180 ? 180 : w->body_len), w->body ? w->body : "");
	}
}

/* Parses what has been read. 1: the answer is complete (w->in holds what followed it);
 * 0: more is needed; -1: the request failed (connection closed). */
static int parse(struct writer *w)
{
	size_t pos = 0;
	int done = 0;
	while (!done) {
		char *p = w->in + pos;
		size_t avail = w->in_len - pos;
		if (w->ps == P_HEAD) {
			size_t from = w->scan > pos + 3 ? w->scan - 3 : pos;
			char *e = memmem(w->in + from, w->in_len - from, "\r\n\r\n", 4);
			if (!e) {
				w->scan = w->in_len;
				break;
			}
			size_t hl = (size_t)(e + 4 - p);
			int r = parse_head(w, p, hl);
			if (r < 0)
				return -1;
			pos += hl;
			w->scan = pos;
			if (r == 1)
				w->have_len = w->chunked = w->close_after =
					0; /* 1xx: the real head follows */
			else if (w->ps == P_BODY_LEN && w->want == 0)
				done = 1;
		} else if (w->ps == P_BODY_LEN || w->ps == P_CHUNK_DATA) {
			size_t n = avail < w->want ? avail : w->want;
			if (!n)
				break;
			if (body_add(w, p, n) != 0) {
				fail_request(w, F_PROTOCOL, "body over 1 MiB (or out of memory)");
				return -1;
			}
			pos += n;
			w->want -= n;
			if (!w->want) {
				if (w->ps == P_BODY_LEN)
					done = 1;
				else
					w->ps = P_CHUNK_END;
			}
		} else if (w->ps == P_BODY_EOF) {
			if (!avail)
				break;
			if (body_add(w, p, avail) != 0) {
				fail_request(w, F_PROTOCOL, "body over 1 MiB (or out of memory)");
				return -1;
			}
			pos += avail;
		} else if (w->ps == P_CHUNK_END) {
			if (avail < 2)
				break;
			if (p[0] != '\r' || p[1] != '\n') {
				fail_request(w, F_PROTOCOL, "chunk data not followed by CRLF");
				return -1;
			}
			pos += 2;
			w->ps = P_CHUNK_SIZE;
		} else { /* P_CHUNK_SIZE, P_TRAILER: one line */
			char *e = memmem(p, avail, "\r\n", 2);
			if (!e) {
				if (w->ps == P_CHUNK_SIZE && avail > LINE_MAX_CHUNK) {
					fail_request(w, F_PROTOCOL, "chunk-size line over %d bytes",
					             LINE_MAX_CHUNK);
					return -1;
				}
				break;
			}
			size_t ln = (size_t)(e - p);
			pos += ln + 2;
			if (w->ps == P_TRAILER) {
				if (!ln)
					done = 1;
				else if ((w->trailer_bytes += ln + 2) > HEAD_MAX) {
					fail_request(w, F_PROTOCOL, "trailers over 16 KiB");
					return -1;
				}
				continue;
			}
			uint64_t size64;
			int big;
			size_t i = chunk_size_hex(p, ln, BODY_MAX, &size64, &big);
			size_t size = (size_t)size64;
			size_t j = i;
			while (j < ln && (p[j] == ' ' || p[j] == '\t'))
				j++;
			if (!i || (j < ln && p[j] != ';')) {
				fail_request(w, F_PROTOCOL, "bad chunk size: %.*s",
				             (int)(ln > 40 ? 40 : ln), p);
				return -1;
			}
			if (big || size > BODY_MAX - w->body_len) {
				fail_request(w, F_PROTOCOL,
				             "chunked body over 1 MiB (chunk size %.*s)",
				             (int)(i > 40 ? 40 : i), p);
				return -1;
			}
			if (size) {
				w->want = size;
				w->ps = P_CHUNK_DATA;
			} else {
				w->ps = P_TRAILER;
			}
		}
	}
	/* keep what is not parsed at the front of the buffer */
	if (pos) {
		memmove(w->in, w->in + pos, w->in_len - pos);
		w->in_len -= pos;
		w->scan = w->scan > pos ? w->scan - pos : 0;
	}
	if (done)
		return 1;
	if (w->in_len == HEAD_MAX) {
		fail_request(w, F_PROTOCOL,
		             w->ps == P_HEAD ? "answer head over 16 KiB"
		                             : "answer line over 16 KiB");
		return -1;
	}
	return 0;
}

static void on_readable(struct writer *w)
{
	ssize_t n;
	do
		n = recv(w->fd, w->in + w->in_len, HEAD_MAX - w->in_len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		int e = n < 0 ? errno : 0;
		if (!w->busy) { /* the server closed an idle connection: the next request opens one
			         */
			conn_close(w);
			return;
		}
		if (n == 0 && w->ps == P_BODY_EOF) {
			conn_close(w);
			answered(w);
			return;
		}
		if (e)
			fail_request(w, F_CLOSED,
			             "the connection failed with the request in flight: %s",
			             strerror(e));
		else
			fail_request(w, F_CLOSED,
			             "the connection closed with the request in flight (%s)",
			             w->ps == P_HEAD && !w->in_len ? "no answer"
			                                           : "answer incomplete");
		return;
	}
	if (!w->busy) { /* bytes nobody asked for: the stream cannot be trusted */
		conn_close(w);
		return;
	}
	w->in_len += (size_t)n;
	int r = parse(w);
	if (r <= 0)
		return;
	/* bytes after the answer, or an answer before the whole request was sent: the connection is
	 * out of step with the server */
	int reopen = w->close_after || w->in_len || w->out_off < w->out_len;
	if (reopen)
		conn_close(w);
	int was_ok = w->status == 200;
	answered(w);
	/* the server ended the connection after a good answer (lighttpd's keep-alive limit): open
	 * the next one now, ready for the next request; if that fails, the next request retries */
	if (reopen && was_ok && w->fd < 0 && now_ns() < G.end && conn_open(w) != 0)
		w->fd = -1;
}

static void on_event(struct writer *w, uint32_t ev)
{
	if (w->fd < 0)
		return;
	if (w->connecting) {
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		int err = 0;
		socklen_t len = sizeof err;
		if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err) {
			conn_close(w);
			if (w->busy)
				fail_request(w, F_CONNECT, "connect: %s", strerror(err));
			return;
		}
		w->connecting = 0;
		if (w->busy)
			flush(w);
		else
			watch_out(w, 0);
		return;
	}
	if (ev & EPOLLOUT) {
		if (w->busy && w->out_off < w->out_len)
			flush(w);
		else
			watch_out(w, 0); /* nothing to write: level-triggered EPOLLOUT would spin
			                    the loop */
		if (w->fd < 0)
			return;
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
		on_readable(w);
}

/* ---- set-up ---- */

static void usage(void)
{
	fprintf(stderr, "usage: bench-opsgen --port PORT --token TOKEN (--rooms ID[,ID...] | "
	                "--rooms-file FILE)\n"
	                "                    [--host 127.0.0.1] [--writers 32] [--seconds 5] "
	                "[--rate 0] [--timeout-ms 10000]\n");
	exit(2);
}

static int room_ok(const char *s)
{
	if (!*s || strlen(s) > 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return 0;
	return 1;
}

static void add_room(const char *s, size_t n)
{
	char *r = strndup(s, n);
	if (!r)
		fatal("strndup");
	if (!room_ok(r)) {
		fprintf(stderr, "bench-opsgen: bad room id \"%s\"\n", r);
		free(r);
		exit(2);
	}
	char **p = realloc(G.rooms, (G.nrooms + 1) * sizeof *p);
	if (!p)
		fatal("realloc");
	G.rooms = p;
	G.rooms[G.nrooms++] = r;
}

static void add_rooms(const char *s, const char *seps)
{
	while (*s) {
		size_t n = strcspn(s, seps);
		if (n)
			add_room(s, n);
		s += n;
		s += strspn(s, seps);
	}
}

static void read_rooms_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		fatal(path);
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) >= 0)
		add_rooms(line, " \t\r\n");
	int err = ferror(f);
	free(line);
	if (fclose(f) != 0 || err)
		fatal(path);
}

static double num(const char *s, const char *what, double lo, double hi)
{
	char *e;
	errno = 0;
	double v = strtod(s, &e);
	if (errno || e == s || *e || !(v >= lo && v <= hi)) {
		fprintf(stderr, "bench-opsgen: bad %s \"%s\" (%g to %g)\n", what, s, lo, hi);
		exit(2);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"host", required_argument, 0, 'h'},       {"port", required_argument, 0, 'p'},
		{"token", required_argument, 0, 't'},      {"rooms", required_argument, 0, 'r'},
		{"rooms-file", required_argument, 0, 'f'}, {"writers", required_argument, 0, 'w'},
		{"seconds", required_argument, 0, 's'},    {"rate", required_argument, 0, 'q'},
		{"timeout-ms", required_argument, 0, 'T'}, {0, 0, 0, 0},
	};
	G.o = (struct opts){
		.host = "127.0.0.1", .writers = 32, .seconds = 5, .rate = 0, .timeout_ms = 10000};
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			G.o.host = optarg;
			break;
		case 'p':
			G.o.port = optarg;
			break;
		case 't':
			G.o.token = optarg;
			break;
		case 'r':
			G.o.rooms_list = optarg;
			break;
		case 'f':
			G.o.rooms_file = optarg;
			break;
		case 'w':
			G.o.writers = (long)num(optarg, "--writers", 1, 10000);
			break;
		case 's':
			G.o.seconds = num(optarg, "--seconds", 0.001, 86400);
			break;
		case 'q':
			G.o.rate = num(optarg, "--rate", 0, 1e7);
			break;
		case 'T':
			G.o.timeout_ms = (long)num(optarg, "--timeout-ms", 1, 3600000);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || !G.o.port || !G.o.token || (!G.o.rooms_list == !G.o.rooms_file))
		usage();
	for (const char *t = G.o.token; *t; t++)
		if ((unsigned char)*t <= 0x20 || *t == 0x7f) {
			fprintf(stderr,
			        "bench-opsgen: the token has a space or control character\n");
			exit(2);
		}
	if (!*G.o.token || strlen(G.o.token) > 8192 || strlen(G.o.host) > 255)
		usage();
	if (G.o.rooms_list)
		add_rooms(G.o.rooms_list, ",");
	else
		read_rooms_file(G.o.rooms_file);
	if (!G.nrooms) {
		fprintf(stderr, "bench-opsgen: no rooms\n");
		exit(2);
	}
}

/* Resolves the server and keeps the first address that accepts a connection. */
static void resolve(void)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
	int rc = getaddrinfo(G.o.host, G.o.port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "bench-opsgen: %s:%s: %s\n", G.o.host, G.o.port, gai_strerror(rc));
		exit(1);
	}
	int err = 0;
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		int c = connect(fd, ai->ai_addr, ai->ai_addrlen);
		err = errno;
		if (close(fd) != 0)
			fprintf(stderr, "bench-opsgen: close: %s\n", strerror(errno));
		if (c == 0 && ai->ai_addrlen <= sizeof G.addr) {
			memcpy(&G.addr, ai->ai_addr, ai->ai_addrlen);
			G.addrlen = ai->ai_addrlen;
			break;
		}
	}
	freeaddrinfo(res);
	if (!G.addrlen) {
		fprintf(stderr, "bench-opsgen: cannot connect to %s:%s: %s\n", G.o.host, G.o.port,
		        strerror(err));
		exit(1);
	}
	int n = snprintf(G.hosthdr, sizeof G.hosthdr, strchr(G.o.host, ':') ? "[%s]:%s" : "%s:%s",
	                 G.o.host, G.o.port);
	if (n < 0 || (size_t)n >= sizeof G.hosthdr)
		usage();
}

/* Waits for events until `at` (CLOCK_MONOTONIC ns; INT64_MAX: no limit): their count, 0
 * at `at`. A relative timeout in nanoseconds, computed just before the call. */
static int wait_until(struct epoll_event *evs, int max, int64_t at)
{
	for (;;) {
		struct timespec ts, *tp = NULL;
		if (at != INT64_MAX) {
			int64_t d = at - now_ns();
			if (d < 0)
				d = 0;
			ts = (struct timespec){.tv_sec = d / 1000000000, .tv_nsec = d % 1000000000};
			tp = &ts;
		}
		int n = epoll_pwait2(G.epfd, evs, max, tp, NULL);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			fatal("epoll_pwait2");
	}
}

/* This process's CPU so far, user and system, in µs. */
static void cpu_us(double *user, double *sys)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		fatal("getrusage");
	*user = (double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec;
	*sys = (double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec;
}

static void print_pcts(const char *name, const struct samples *s)
{
	printf("\"%s\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}", name,
	       pct_ms(s, 50), pct_ms(s, 90), pct_ms(s, 99), pct_ms(s, 99.9),
	       s->n ? (double)s->v[s->n - 1] / 1e6 : 0.0);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	resolve();
	/* wake-ups at the time asked for, not up to 50 µs later */
	if (prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL) != 0)
		fatal("prctl PR_SET_TIMERSLACK");
	G.nw = (size_t)G.o.writers;
	G.known = calloc(G.nrooms, sizeof *G.known);
	G.w = calloc(G.nw, sizeof *G.w);
	struct epoll_event *evs = calloc(G.nw, sizeof *evs);
	if (!G.known || !G.w || !evs)
		fatal("calloc");
	G.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (G.epfd < 0)
		fatal("epoll_create1");
	size_t room_max = 0;
	for (size_t i = 0; i < G.nrooms; i++)
		if (strlen(G.rooms[i]) > room_max)
			room_max = strlen(G.rooms[i]);
	for (size_t i = 0; i < G.nw; i++) {
		struct writer *w = &G.w[i];
		w->fd = -1;
		w->out_cap = 256 + strlen(G.o.token) + strlen(G.hosthdr) + room_max;
		w->out = malloc(w->out_cap);
		w->in = malloc(HEAD_MAX);
		if (!w->out || !w->in)
			fatal("malloc");
	}

	/* every connection open before the clock starts, as the Node writers do */
	int64_t t = now_ns(), until = t + (int64_t)G.o.timeout_ms * 1000000;
	size_t pending = 0;
	for (size_t i = 0; i < G.nw; i++) {
		if (conn_open(&G.w[i]) != 0)
			fatal("connect");
		pending += (size_t)G.w[i].connecting;
	}
	while (pending &&
	       now_ns() < until) { /* after that, the rest fail with their first request */
		int n = wait_until(evs, (int)G.nw, until);
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
		pending = 0;
		for (size_t i = 0; i < G.nw; i++)
			pending += (size_t)(G.w[i].fd >= 0 && G.w[i].connecting);
	}

	double user0, sys0;
	cpu_us(&user0, &sys0);
	G.start = now_ns();
	G.end = G.start + (int64_t)(G.o.seconds * 1e9);
	G.gap = G.o.rate > 0 ? (int64_t)(1e9 * (double)G.nw / G.o.rate) : 0;
	if (G.o.rate > 0 && G.gap < 1)
		G.gap = 1;
	for (size_t i = 0; i < G.nw; i++)
		G.w[i].due = G.start + (int64_t)((double)G.gap * (double)i / (double)G.nw);

	for (;;) {
		int64_t now = now_ns(), next = INT64_MAX;
		int busy = 0;
		for (size_t i = 0; i < G.nw; i++) {
			struct writer *w = &G.w[i];
			if (w->busy && now >= w->deadline)
				fail_request(w, F_TIMEOUT, "no answer within %ld ms",
				             G.o.timeout_ms);
			if (!w->busy && now < G.end && (!G.gap || w->due <= now))
				start_request(w, i, now);
			if (w->busy) {
				busy = 1;
				if (w->deadline < next)
					next = w->deadline;
			} else if (now < G.end) {
				int64_t at = G.gap ? w->due : now; /* closed loop: a writer whose
				                                      request failed at once */
				if (at < next)
					next = at;
			}
		}
		if (!busy && now >= G.end)
			break;
		if (now < G.end && G.end < next)
			next = G.end;
		int n = wait_until(evs, (int)G.nw, next);
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
	}
	int64_t stop = now_ns();
	double user, sys;
	cpu_us(&user, &sys);
	user -= user0;
	sys -= sys0;
	double cpu = user + sys;
	double secs = (double)(stop - G.start) / 1e9;

	qsort(G.lat_due.v, G.lat_due.n, sizeof *G.lat_due.v, cmp64);
	qsort(G.lat_send.v, G.lat_send.n, sizeof *G.lat_send.v, cmp64);
	uint64_t total = G.ok + G.failed;
	printf("{\"ok\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"failures\":{", G.ok, G.failed);
	for (int k = 0; k < F_KINDS; k++)
		printf("%s\"%s\":%" PRIu64, k ? "," : "", KIND_NAMES[k], G.by_kind[k]);
	printf("},\"first_failure\":\"");
	for (const char *p = G.first_failure; *p; p++) {
		if (*p == '"' || *p == '\\')
			putchar('\\');
		putchar(*p);
	}
	printf("\",\"secs\":%.3f,\"per_s\":%.1f,\"writers\":%zu,\"rooms\":%zu,\"rate\":%g,", secs,
	       secs > 0 ? (double)G.ok / secs : 0.0, G.nw, G.nrooms, G.o.rate);
	print_pcts("latency_ms", &G.lat_due);
	putchar(',');
	print_pcts("from_send_ms", &G.lat_send);
	printf(",\"late\":%" PRIu64 ",\"late_queued\":%" PRIu64 ",\"reconnects\":%" PRIu64
	       ",\"cpu_us\":%.0f,\"cpu_user_us\":%.0f,\"cpu_sys_us\":%.0f,"
	       "\"cpu_us_per_request\":%.2f}\n",
	       G.late, G.late_queued, G.reconnects, cpu, user, sys,
	       total ? cpu / (double)total : 0.0);
	if (fflush(stdout) != 0)
		fatal("stdout");

	for (size_t i = 0; i < G.nw; i++) {
		conn_close(&G.w[i]);
		free(G.w[i].out);
		free(G.w[i].in);
		free(G.w[i].body);
	}
	for (size_t i = 0; i < G.nrooms; i++)
		free(G.rooms[i]);
	free(G.rooms);
	free(G.known);
	free(G.w);
	free(evs);
	free(G.lat_due.v);
	free(G.lat_send.v);
	if (close(G.epfd) != 0)
		fatal("close");
	return 0;
}

/*
 * bench-ssesub: many Server-Sent Events subscribers in one single-threaded process, for
 * `make bench-compare` (bench/compare.mjs through bench/subpool.mjs). The Node harness spends
 * 11-14 µs of CPU per receipt; this one is an epoll loop that does one read() per ready
 * stream and a few short scans (4-6 µs a receipt on a 2-core VM, most of it the kernel's
 * ACK inside read()), so that at N = 1,000+ the figures measure the servers.
 *
 *   bench-ssesub --host H --port P --path PATH [--ready connected|headers]
 *                [--filter TEXT] [--timeout-ms MS] [--ack quick|delayed] [--sched other|fifo]
 *
 * --ack delayed: no ACK inside the read (the kernel's delayed-ACK timer sends it about 40 ms
 * later), which takes about 40 % off this process's CPU per receipt. --sched fifo: real-time
 * priority 1, so that bytes are read when they arrive instead of when a server process that
 * holds the core ends its time slice (docs/BENCHMARKS.md has what each does to the figures).
 *
 * Every stream sends "GET PATH HTTP/1.1" with Host and Accept: text/event-stream; each
 * "{ticket}" in PATH is replaced by the latest ticket given (percent-encoded). A stream is
 * ready when the ": connected" comment arrives (our broker), or with --ready headers when a
 * 2xx answer's head has arrived (Nchan sends nothing before its first event). A stream not
 * ready within --timeout-ms (default 10000) has failed. The body is decoded when it is
 * chunked (lighttpd's proxy), else read as is, and cut into blocks at "\n\n". A block that
 * contains TEXT (if --filter is given) and a marker "client_id":"m<digits>" is a receipt:
 * (marker, CLOCK_MONOTONIC ns read once right after the read() that returned its last bytes,
 * before any parsing). CLOCK_MONOTONIC is the clock of node's process.hrtime.bigint().
 *
 * Control: one command a line on stdin, answers one line each on stdout (stdin must be a
 * pipe, socket or terminal: it is serviced in the same epoll loop, so receipts are timed
 * while commands arrive):
 *   ticket T          the ticket for streams opened from now on (no answer)
 *   open N CONC       opens N more streams, at most CONC connecting at once; answers when
 *                     every one is ready or has failed, or once CONC have failed (the rest
 *                     are not tried): "open <ready> <failed> <first error or ->"
 *   count             "count <receipts> <streams open> <streams lost after ready>"
 *   collect           the receipts, "<marker> <ns>" a line, then "end"
 *   cpu               "cpu <user+system µs of this process>"
 *   close             closes every stream and forgets the receipts: "close"
 * End of stdin: exits 0. An unknown command answers "error <what>".
 *
 * Hostile input: a response head over 16 KiB, an event over 1 MiB without "\n\n", a bad or
 * oversized chunk size, a non-2xx status, garbage, an early close: the stream is closed and
 * counted (failed before ready, lost after), with the first error's text kept for "open".
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chunk.h"

#define HEAD_CAP (16 * 1024)
#define BLOCK_CAP (1024 * 1024)
#define CMD_CAP (64 * 1024)
#define READ_BUF (64 * 1024)
#define ERR_LEN 200
#define TAG_STDIN UINT64_MAX
#define TAG_STDOUT (UINT64_MAX - 1)

enum st_state { ST_CONNECTING, ST_SENDING, ST_HEAD, ST_BODY, ST_DONE };
/* chunked decoding: the size line, the data, the CRLF after the data */
enum ch_state { CH_SIZE, CH_DATA, CH_CRLF };

struct stream {
	int fd;
	enum st_state state;
	bool ready;
	bool chunked;
	enum ch_state cstate;
	uint64_t deadline; /* ns, while not ready */
	uint64_t cleft; /* bytes left in the current chunk (CH_DATA) or of its CRLF (CH_CRLF) */
	char *req;
	size_t req_len, req_off;
	char *head;
	size_t head_len;
	char szline[40];
	size_t szlen;
	char *blk; /* SSE text not yet cut into blocks */
	size_t blk_len, blk_cap, blk_scan;
};

struct receipt {
	uint64_t marker;
	uint64_t ns;
};

static struct {
	const char *host, *path, *filter;
	int port;
	bool ready_headers;
	bool ack_delayed;
	bool sched_fifo;
	uint64_t timeout_ns;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int ep;
	char *ticket;
	struct stream *st;
	size_t nst, capst;
	/* the current "open": streams [open_from, open_to) are being opened */
	bool opening;
	size_t open_from, open_next, open_to, conc, inflight;
	size_t open_ready, open_failed;
	char first_err[ERR_LEN];
	size_t *fly; /* indices of the streams connecting and not yet ready */
	size_t nfly;
	size_t live, lost;
	struct receipt *rec;
	size_t nrec, caprec;
	char *in;
	size_t in_len;
	bool in_eof;
	char *out;
	size_t out_len, out_cap, out_off;
	bool out_polled, out_blocking;
	bool oom;
} g;

static void die(const char *what);

static uint64_t now_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime");
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "bench-ssesub: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ---- output: buffered, written when stdout takes it (never blocks the loop) -------------- */

static void out_flush(void)
{
	while (g.out_off < g.out_len) {
		ssize_t w = write(1, g.out + g.out_off, g.out_len - g.out_off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EPIPE) {
				g.in_eof = true;
				g.out_len = g.out_off = 0;
				return;
			} /* the parent left */
			die("write stdout");
		}
		g.out_off += (size_t)w;
	}
	if (g.out_off == g.out_len)
		g.out_off = g.out_len = 0;
	if (g.out_blocking)
		return;
	bool want = g.out_off < g.out_len;
	if (want != g.out_polled) {
		struct epoll_event ev = {.events = want ? EPOLLOUT : 0, .data.u64 = TAG_STDOUT};
		if (epoll_ctl(g.ep, EPOLL_CTL_MOD, 1, &ev) != 0)
			die("epoll_ctl stdout");
		g.out_polled = want;
	}
}

static void outf(const char *fmt, ...)
{
	for (;;) {
		size_t room = g.out_cap - g.out_len;
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(g.out + g.out_len, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			die("vsnprintf");
		if ((size_t)n < room) {
			g.out_len += (size_t)n;
			return;
		}
		size_t cap = g.out_cap * 2 + (size_t)n + 1;
		char *p = realloc(g.out, cap);
		if (!p)
			die("realloc output");
		g.out = p;
		g.out_cap = cap;
	}
}

/* ---- streams -------------------------------------------------------------------------- */

static void note_error(const char *fmt, ...)
{
	if (g.first_err[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(g.first_err, sizeof g.first_err, fmt, ap);
	va_end(ap);
	if (n < 0) {
		snprintf(g.first_err, sizeof g.first_err, "error");
		return;
	}
	/* one line of printable text */
	for (char *p = g.first_err; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = ' ';
}

static void fly_remove(size_t i)
{
	for (size_t k = 0; k < g.nfly; k++) {
		if (g.fly[k] == i) {
			g.fly[k] = g.fly[--g.nfly];
			return;
		}
	}
}

static void stream_free(struct stream *s)
{
	free(s->req);
	free(s->head);
	free(s->blk);
	s->req = s->head = s->blk = NULL;
	s->blk_len = s->blk_cap = s->blk_scan = s->head_len = 0;
}

/* Closes stream i; err (printf-style) is why, or NULL for our own close. */
static void stream_fail(size_t i, const char *fmt, ...)
{
	struct stream *s = &g.st[i];
	if (s->state == ST_DONE)
		return;
	if (fmt && !g.first_err[0]) {
		char msg[ERR_LEN];
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
		note_error("%s", n < 0 ? "error" : msg);
	}
	if (s->fd >= 0 && close(s->fd) != 0 && errno != EINTR)
		die("close");
	s->fd = -1;
	if (s->ready) {
		g.live--;
		if (fmt)
			g.lost++;
	} else {
		fly_remove(i);
		g.inflight--;
		g.open_failed++;
	}
	s->state = ST_DONE;
	stream_free(s);
}

static void set_events(size_t i, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.u64 = i};
	if (epoll_ctl(g.ep, EPOLL_CTL_MOD, g.st[i].fd, &ev) != 0)
		die("epoll_ctl");
}

static void make_ready(size_t i)
{
	struct stream *s = &g.st[i];
	s->ready = true;
	fly_remove(i);
	g.inflight--;
	g.open_ready++;
	g.live++;
}

/* GET with the ticket put in; false when out of memory */
static bool build_request(struct stream *s)
{
	const char *tk = g.ticket ? g.ticket : "";
	size_t tl = strlen(tk), pl = strlen(g.path), hl = strlen(g.host);
	size_t cap = pl * 1 + 3 * tl * (pl / 8 + 1) + hl + 128;
	char *r = malloc(cap);
	if (!r)
		return false;
	size_t n = 0;
	n += (size_t)snprintf(r, cap, "GET ");
	for (const char *p = g.path; *p;) {
		if (!strncmp(p, "{ticket}", 8)) {
			for (size_t k = 0; k < tl; k++) {
				unsigned char c = (unsigned char)tk[k];
				bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
				             (c >= '0' && c <= '9') || c == '-' || c == '_' ||
				             c == '.' || c == '~';
				if (n + 4 >= cap) {
					free(r);
					return false;
				}
				if (plain)
					r[n++] = (char)c;
				else
					n += (size_t)snprintf(r + n, cap - n, "%%%02X", c);
			}
			p += 8;
		} else {
			if (n + 2 >= cap) {
				free(r);
				return false;
			}
			r[n++] = *p++;
		}
	}
	int m = snprintf(r + n, cap - n,
	                 " HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n", g.host,
	                 g.port);
	if (m < 0 || (size_t)m >= cap - n) {
		free(r);
		return false;
	}
	s->req = r;
	s->req_len = n + (size_t)m;
	s->req_off = 0;
	return true;
}

/* Starts connecting stream i (already counted in flight). */
static void stream_start(size_t i)
{
	struct stream *s = &g.st[i];
	memset(s, 0, sizeof *s);
	s->fd = -1;
	s->state = ST_CONNECTING;
	s->deadline = now_ns() + g.timeout_ns;
	g.fly[g.nfly++] = i;
	g.inflight++;
	if (!build_request(s)) {
		stream_fail(i, "out of memory");
		return;
	}
	int fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		stream_fail(i, "socket: %s", strerror(errno));
		return;
	}
	s->fd = fd;
	int one = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
		stream_fail(i, "setsockopt: %s", strerror(errno));
		return;
	}
	if (connect(fd, (struct sockaddr *)&g.addr, g.addrlen) != 0 && errno != EINPROGRESS) {
		stream_fail(i, "connect: %s", strerror(errno));
		return;
	}
	struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = i};
	if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
		stream_fail(i, "epoll_ctl: %s", strerror(errno));
		return;
	}
}

static void stream_send(size_t i)
{
	struct stream *s = &g.st[i];
	while (s->req_off < s->req_len) {
		ssize_t w = send(s->fd, s->req + s->req_off, s->req_len - s->req_off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			stream_fail(i, "send: %s", strerror(errno));
			return;
		}
		s->req_off += (size_t)w;
	}
	free(s->req);
	s->req = NULL;
	s->state = ST_HEAD;
	set_events(i, EPOLLIN);
}

static void on_connect(size_t i)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(g.st[i].fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err) {
		stream_fail(i, "connect: %s", strerror(err));
		return;
	}
	g.st[i].state = ST_SENDING;
	stream_send(i);
}

static bool add_receipt(uint64_t marker, uint64_t t)
{
	if (g.nrec == g.caprec) {
		size_t cap = g.caprec ? g.caprec * 2 : 4096;
		struct receipt *p = realloc(g.rec, cap * sizeof *p);
		if (!p)
			return false;
		g.rec = p;
		g.caprec = cap;
	}
	g.rec[g.nrec++] = (struct receipt){marker, t};
	return true;
}

/*
 * memmem() for the short blocks and needles here: glibc's is built for long haystacks and
 * was a tenth of this process's CPU in perf; a memchr() for the first byte and a memcmp()
 * of the rest take less on blocks of a few hundred bytes.
 */
static const char *find(const char *h, size_t hl, const char *n, size_t nl)
{
	if (!nl)
		return h;
	const char *end = h + hl;
	while ((size_t)(end - h) >= nl) {
		const char *p = memchr(h, n[0], (size_t)(end - h) - nl + 1);
		if (!p)
			return NULL;
		if (!memcmp(p + 1, n + 1, nl - 1))
			return p;
		h = p + 1;
	}
	return NULL;
}

/* One complete block [b, b+len). */
static bool on_block(size_t i, const char *b, size_t len, uint64_t t)
{
	struct stream *s = &g.st[i];
	static const char conn[] = ": connected";
	static const char mk[] = "\"client_id\":\"m";
	if (!s->ready && find(b, len, conn, sizeof conn - 1))
		make_ready(i);
	/* a lone comment line (": connected", ": ping") is no event */
	if (len && b[0] == ':' && !memchr(b, '\n', len))
		return true;
	if (g.filter && !find(b, len, g.filter, strlen(g.filter)))
		return true;
	const char *m = find(b, len, mk, sizeof mk - 1);
	if (!m)
		return true;
	const char *p = m + sizeof mk - 1, *end = b + len;
	uint64_t v = 0;
	int digits = 0;
	while (p < end && *p >= '0' && *p <= '9' && digits < 19) {
		v = v * 10 + (uint64_t)(*p - '0');
		p++;
		digits++;
	}
	if (!digits || p >= end || *p != '"')
		return true; /* not a marker of ours */
	if (!add_receipt(v, t)) {
		g.oom = true;
		return false;
	}
	return true;
}

/* Appends decoded SSE text and cuts the complete blocks off it; false when the stream failed. */
static bool feed(size_t i, const char *d, size_t n, uint64_t t)
{
	struct stream *s = &g.st[i];
	if (!n)
		return true;
	if (s->blk_len + n > BLOCK_CAP) {
		stream_fail(i, "event over %d bytes without an end", BLOCK_CAP);
		return false;
	}
	if (s->blk_len + n > s->blk_cap) {
		size_t cap = s->blk_cap ? s->blk_cap : 1024;
		while (cap < s->blk_len + n)
			cap *= 2;
		char *p = realloc(s->blk, cap);
		if (!p) {
			stream_fail(i, "out of memory");
			return false;
		}
		s->blk = p;
		s->blk_cap = cap;
	}
	memcpy(s->blk + s->blk_len, d, n);
	s->blk_len += n;
	size_t start = 0;
	for (;;) {
		size_t from = s->blk_scan > start ? s->blk_scan : start;
		const char *nl = find(s->blk + from, s->blk_len - from, "\n\n", 2);
		if (!nl) {
			s->blk_scan = s->blk_len ? s->blk_len - 1 : 0;
			break;
		}
		size_t cut = (size_t)(nl - s->blk);
		if (!on_block(i, s->blk + start, cut - start, t))
			return false;
		if (s->state == ST_DONE)
			return false;
		start = cut + 2;
		s->blk_scan = start;
	}
	if (start) {
		memmove(s->blk, s->blk + start, s->blk_len - start);
		s->blk_len -= start;
		s->blk_scan = s->blk_scan >= start ? s->blk_scan - start : 0;
	}
	return true;
}

/*
 * Chunked transfer coding (RFC 9112 §7.1), extensions ignored, trailers not expected (a
 * last chunk ends the stream).
 */
static bool dechunk(size_t i, const char *d, size_t n, uint64_t t)
{
	struct stream *s = &g.st[i];
	size_t k = 0;
	while (k < n) {
		if (s->cstate == CH_DATA) {
			size_t take = n - k < s->cleft ? n - k : (size_t)s->cleft;
			if (!feed(i, d + k, take, t))
				return false;
			k += take;
			s->cleft -= take;
			if (!s->cleft) {
				s->cstate = CH_CRLF;
				s->cleft = 2;
			}
		} else if (s->cstate == CH_CRLF) {
			char want = s->cleft == 2 ? '\r' : '\n';
			if (d[k] != want) {
				stream_fail(i, "no CRLF after a chunk");
				return false;
			}
			k++;
			if (!--s->cleft) {
				s->cstate = CH_SIZE;
				s->szlen = 0;
			}
		} else {
			char c = d[k++];
			if (c != '\n') {
				if (s->szlen + 1 >= sizeof s->szline) {
					stream_fail(i, "chunk size line too long");
					return false;
				}
				s->szline[s->szlen++] = c;
				continue;
			}
			/* a size line: hex digits, then optional ";extension", then CR */
			size_t len = s->szlen;
			if (len && s->szline[len - 1] == '\r')
				len--;
			uint64_t v;
			int over;
			size_t p = chunk_size_hex(s->szline, len, UINT64_C(1) << 40, &v, &over);
			if (over) {
				stream_fail(i, "chunk size too large");
				return false;
			}
			if (p == 0 || (p < len && s->szline[p] != ';' && s->szline[p] != ' ' &&
			               s->szline[p] != '\t')) {
				s->szline[len < sizeof s->szline ? len : sizeof s->szline - 1] = 0;
				stream_fail(i, "bad chunk size line \"%.40s\"", s->szline);
				return false;
			}
			if (!v) {
				stream_fail(i, "stream ended (last chunk)");
				return false;
			}
			s->cstate = CH_DATA;
			s->cleft = v;
		}
	}
	return true;
}

/* The response head is complete in s->head[0, end); the body starts at end + 4. */
static bool on_head(size_t i, size_t end, uint64_t t)
{
	struct stream *s = &g.st[i];
	char *h = s->head;
	size_t line = 0;
	while (line < end && h[line] != '\r')
		line++;
	bool ok = end >= 12 && (!strncmp(h, "HTTP/1.1 2", 10) || !strncmp(h, "HTTP/1.0 2", 10)) &&
	          h[10] >= '0' && h[10] <= '9' && h[11] >= '0' && h[11] <= '9';
	if (!ok) {
		stream_fail(i, "stream answered \"%.*s\"", (int)(line < 120 ? line : 120), h);
		return false;
	}
	/* Transfer-Encoding: chunked, any case, as a header of its own line */
	for (size_t p = line; p + 2 < end; p++) {
		if (h[p] != '\n')
			continue;
		static const char te[] = "transfer-encoding:";
		if (end - (p + 1) >= sizeof te - 1 && !strncasecmp(h + p + 1, te, sizeof te - 1)) {
			size_t q = p + 1 + sizeof te - 1, e = q;
			while (e < end && h[e] != '\r')
				e++;
			for (; q + 7 <= e; q++)
				if (!strncasecmp(h + q, "chunked", 7)) {
					s->chunked = true;
					break;
				}
		}
	}
	s->state = ST_BODY;
	s->cstate = CH_SIZE;
	s->szlen = 0;
	if (g.ready_headers && !s->ready)
		make_ready(i);
	size_t body = end + 4, rest = s->head_len - body;
	char *tmp = s->head;
	s->head = NULL;
	bool r = rest == 0 ||
	         (s->chunked ? dechunk(i, tmp + body, rest, t) : feed(i, tmp + body, rest, t));
	free(tmp);
	return r;
}

static char rbuf[READ_BUF];

static void stream_read(size_t i)
{
	struct stream *s = &g.st[i];
	/*
	 * --ack delayed: the socket is put in the kernel's "pingpong" mode before every read, so
	 * that this read() does not send an ACK for the small segment it takes; the kernel
	 * acknowledges it by its delayed-ACK timer (about 40 ms later) instead. The mode does not
	 * stick: the timer ends it when it fires, hence once a read.
	 */
	if (g.ack_delayed) {
		int zero = 0;
		if (setsockopt(s->fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof zero) != 0) {
			stream_fail(i, "setsockopt TCP_QUICKACK: %s", strerror(errno));
			return;
		}
	}
	ssize_t n = read(s->fd, rbuf, sizeof rbuf);
	uint64_t t = now_ns(); /* the moment these bytes came in: taken before any parsing */
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		stream_fail(i, "read: %s", strerror(errno));
		return;
	}
	if (n == 0) {
		stream_fail(i, s->state == ST_HEAD ? "closed before the response head"
		                                   : "stream closed by the server");
		return;
	}
	if (s->state == ST_HEAD) {
		size_t old = s->head_len, want = old + (size_t)n;
		if (want > HEAD_CAP + 4)
			want = HEAD_CAP + 4;
		char *p = realloc(s->head, want + 1);
		if (!p) {
			stream_fail(i, "out of memory");
			return;
		}
		s->head = p;
		size_t take = want - old;
		memcpy(s->head + old, rbuf, take);
		s->head_len = want;
		s->head[want] = 0;
		size_t from = old >= 3 ? old - 3 : 0;
		const char *e = find(s->head + from, want - from, "\r\n\r\n", 4);
		if (!e || (size_t)(e - s->head) > HEAD_CAP) {
			if (want > HEAD_CAP)
				stream_fail(i, "response head over %d bytes", HEAD_CAP);
			return;
		}
		size_t end = (size_t)(e - s->head);
		/* the bytes of this read past what fit in head (only when the cap cut them) */
		if (!on_head(i, end, t))
			return;
		if (take < (size_t)n && s->state != ST_DONE) {
			if (s->chunked)
				dechunk(i, rbuf + take, (size_t)n - take, t);
			else
				feed(i, rbuf + take, (size_t)n - take, t);
		}
		return;
	}
	if (s->chunked)
		dechunk(i, rbuf, (size_t)n, t);
	else
		feed(i, rbuf, (size_t)n, t);
}

/* ---- opening --------------------------------------------------------------------------- */

static void open_progress(void)
{
	if (!g.opening)
		return;
	while (g.open_next < g.open_to && g.inflight < g.conc && g.open_failed < g.conc)
		stream_start(g.open_next++);
	if (g.inflight == 0 && (g.open_next == g.open_to || g.open_failed >= g.conc)) {
		outf("open %zu %zu %s\n", g.open_ready, g.open_failed,
		     g.first_err[0] ? g.first_err : "-");
		/* the streams never tried */
		for (size_t k = g.open_next; k < g.open_to; k++)
			g.st[k].state = ST_DONE, g.st[k].fd = -1;
		g.opening = false;
	}
}

static void expire(void)
{
	uint64_t t = now_ns();
	for (size_t k = 0; k < g.nfly;) {
		size_t i = g.fly[k];
		if (g.st[i].deadline <= t)
			stream_fail(i, "not ready within %llu ms",
			            (unsigned long long)(g.timeout_ns / 1000000));
		else
			k++;
	}
}

static int loop_timeout(void)
{
	if (!g.nfly)
		return -1;
	uint64_t t = now_ns(), first = UINT64_MAX;
	for (size_t k = 0; k < g.nfly; k++)
		if (g.st[g.fly[k]].deadline < first)
			first = g.st[g.fly[k]].deadline;
	if (first <= t)
		return 0;
	uint64_t ms = (first - t + 999999) / 1000000;
	return ms > 1000 ? 1000 : (int)ms;
}

static void close_all(void)
{
	for (size_t i = 0; i < g.nst; i++)
		stream_fail(i, NULL);
	free(g.st);
	g.st = NULL;
	g.nst = g.capst = 0;
	free(g.fly);
	g.fly = NULL;
	g.nfly = g.inflight = 0;
	g.live = g.lost = 0;
	g.nrec = 0;
	g.opening = false;
}

/* ---- commands -------------------------------------------------------------------------- */

static void command(char *line)
{
	if (!strncmp(line, "ticket ", 7)) {
		char *t = strdup(line + 7);
		if (!t)
			die("strdup");
		free(g.ticket);
		g.ticket = t;
	} else if (!strncmp(line, "open ", 5)) {
		char *e;
		unsigned long long n = strtoull(line + 5, &e, 10), c = strtoull(e, &e, 10);
		if (g.opening) {
			outf("error an open is under way\n");
			return;
		}
		/* strtoull takes "-1" as a huge number: digits only, both bounded */
		if (!n || !c || *e || n > 10000000 || c > 10000000 || strchr(line + 5, '-')) {
			outf("error usage: open N CONC (1 to 10000000 each)\n");
			return;
		}
		size_t total = g.nst + (size_t)n;
		struct stream *p = realloc(g.st, total * sizeof *p);
		/* no more than the N new streams are ever connecting at once */
		size_t *f = realloc(g.fly, (size_t)(c < n ? c : n) * sizeof *f);
		if (p)
			g.st = p;
		if (f)
			g.fly = f;
		if (!p || !f)
			die("realloc streams");
		for (size_t k = g.nst; k < total; k++) {
			memset(&g.st[k], 0, sizeof g.st[k]);
			g.st[k].fd = -1;
			g.st[k].state = ST_DONE;
		}
		g.capst = total;
		g.open_from = g.open_next = g.nst;
		g.open_to = g.nst = total;
		g.conc = (size_t)c;
		g.open_ready = g.open_failed = 0;
		g.first_err[0] = 0;
		g.opening = true;
		/* the descriptors: what is open plus the new streams, with room for stdio and epoll */
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			rlim_t want = (rlim_t)(g.live + n + 64);
			if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
				rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want
				                      ? want
				                      : rl.rlim_max;
				if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
					fprintf(stderr, "bench-ssesub: setrlimit: %s\n",
					        strerror(errno));
			}
		}
		open_progress();
	} else if (!strcmp(line, "count")) {
		outf("count %zu %zu %zu\n", g.nrec, g.live, g.lost);
	} else if (!strcmp(line, "collect")) {
		for (size_t k = 0; k < g.nrec; k++)
			outf("%llu %llu\n", (unsigned long long)g.rec[k].marker,
			     (unsigned long long)g.rec[k].ns);
		outf("end\n");
	} else if (!strcmp(line, "cpu")) {
		struct rusage ru;
		if (getrusage(RUSAGE_SELF, &ru) != 0)
			die("getrusage");
		long long us = (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
		               ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
		outf("cpu %lld\n", us);
	} else if (!strcmp(line, "close")) {
		close_all();
		outf("close\n");
	} else {
		outf("error unknown command \"%.60s\"\n", line);
	}
}

static void stdin_read(void)
{
	if (g.in_len == CMD_CAP) {
		outf("error command line over %d bytes\n", CMD_CAP);
		g.in_len = 0;
	}
	ssize_t n = read(0, g.in + g.in_len, CMD_CAP - g.in_len);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		die("read stdin");
	}
	if (n == 0) {
		g.in_eof = true;
		return;
	}
	g.in_len += (size_t)n;
	size_t start = 0;
	char *nl;
	while ((nl = memchr(g.in + start, '\n', g.in_len - start))) {
		*nl = 0;
		if (nl > g.in + start && nl[-1] == '\r')
			nl[-1] = 0;
		command(g.in + start);
		start = (size_t)(nl - g.in) + 1;
	}
	memmove(g.in, g.in + start, g.in_len - start);
	g.in_len -= start;
}

/* ---- main ------------------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
	        "usage: bench-ssesub --host H --port P --path PATH [--ready connected|headers] "
	        "[--filter TEXT] [--timeout-ms MS] [--ack quick|delayed] [--sched other|fifo]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	g.timeout_ns = 10000ull * 1000000;
	for (int a = 1; a < argc; a++) {
		const char *o = argv[a];
		if (a + 1 >= argc)
			usage();
		const char *v = argv[++a];
		if (!strcmp(o, "--host"))
			g.host = v;
		else if (!strcmp(o, "--port"))
			g.port = atoi(v);
		else if (!strcmp(o, "--path"))
			g.path = v;
		else if (!strcmp(o, "--filter"))
			g.filter = *v ? v : NULL;
		else if (!strcmp(o, "--ready")) {
			if (!strcmp(v, "headers"))
				g.ready_headers = true;
			else if (strcmp(v, "connected"))
				usage();
		} else if (!strcmp(o, "--sched")) {
			if (!strcmp(v, "fifo"))
				g.sched_fifo = true;
			else if (strcmp(v, "other"))
				usage();
		} else if (!strcmp(o, "--ack")) {
			if (!strcmp(v, "delayed"))
				g.ack_delayed = true;
			else if (strcmp(v, "quick"))
				usage();
		} else if (!strcmp(o, "--timeout-ms")) {
			long ms = atol(v);
			if (ms <= 0)
				usage();
			g.timeout_ns = (uint64_t)ms * 1000000;
		} else
			usage();
	}
	if (!g.host || !g.path || g.port <= 0 || g.port > 65535)
		usage();

	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	char ps[8];
	snprintf(ps, sizeof ps, "%d", g.port);
	int gai = getaddrinfo(g.host, ps, &hints, &ai);
	if (gai) {
		fprintf(stderr, "bench-ssesub: %s: %s\n", g.host, gai_strerror(gai));
		return 1;
	}
	memcpy(&g.addr, ai->ai_addr, ai->ai_addrlen);
	g.addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);

	/* as many descriptors as allowed; "open" asks for what it needs beyond */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) !=
		    0) { /* the soft limit stays; "open" reports EMFILE */
		}
	}

	/*
	 * --sched fifo: real-time priority 1, so that a stream's bytes are read as soon as they
	 * arrive, not when the server process that holds this core ends its time slice.
	 */
	if (g.sched_fifo) {
		struct sched_param sp = {.sched_priority = 1};
		if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) {
			fprintf(stderr, "bench-ssesub: --sched fifo: %s\n", strerror(errno));
			return 1;
		}
	}

	/* a parent gone is an EPIPE to handle, not a signal */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		die("signal");
	g.ep = epoll_create1(EPOLL_CLOEXEC);
	if (g.ep < 0)
		die("epoll_create1");
	g.in = malloc(CMD_CAP);
	g.out_cap = 64 * 1024;
	g.out = malloc(g.out_cap);
	if (!g.in || !g.out)
		die("malloc");
	int fl = fcntl(0, F_GETFL);
	if (fl < 0 || fcntl(0, F_SETFL, fl | O_NONBLOCK) != 0)
		die("fcntl stdin");
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_STDIN};
	if (epoll_ctl(g.ep, EPOLL_CTL_ADD, 0, &ev) != 0) {
		fprintf(stderr, "bench-ssesub: stdin must be a pipe, socket or terminal (%s)\n",
		        strerror(errno));
		return 2;
	}
	/* stdout: non-blocking when it can be polled (a pipe), else written as is (a file) */
	ev = (struct epoll_event){.events = 0, .data.u64 = TAG_STDOUT};
	if (epoll_ctl(g.ep, EPOLL_CTL_ADD, 1, &ev) == 0) {
		fl = fcntl(1, F_GETFL);
		if (fl < 0 || fcntl(1, F_SETFL, fl | O_NONBLOCK) != 0)
			die("fcntl stdout");
	} else {
		g.out_blocking = true;
	}

	struct epoll_event evs[256];
	while (!g.in_eof || g.out_len) {
		if (g.in_eof && g.out_blocking)
			break;
		int n = epoll_wait(g.ep, evs, 256, loop_timeout());
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		bool cmd = false;
		for (int k = 0; k < n; k++) {
			uint64_t tag = evs[k].data.u64;
			/* commands after the streams of this batch: a "close" renumbers them */
			if (tag == TAG_STDIN) {
				cmd = true;
				continue;
			}
			if (tag == TAG_STDOUT) {
				/* the reader of our answers is gone (an error is reported even when not asked for) */
				if (evs[k].events & EPOLLERR) {
					g.in_eof = true;
					g.out_len = g.out_off = 0;
				}
				continue;
			}
			size_t i = (size_t)tag;
			if (i >= g.nst || g.st[i].state == ST_DONE)
				continue; /* closed earlier in this batch */
			struct stream *s = &g.st[i];
			if (s->state == ST_CONNECTING)
				on_connect(i);
			else if (s->state == ST_SENDING)
				stream_send(i);
			else if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				stream_read(i);
			if (g.oom)
				die("receipts: out of memory");
		}
		if (cmd)
			stdin_read();
		if (g.nfly)
			expire();
		open_progress();
		out_flush();
	}
	out_flush();
	close_all();
	free(g.rec);
	free(g.ticket);
	free(g.in);
	free(g.out);
	if (close(g.ep) != 0)
		die("close epoll");
	return 0;
}

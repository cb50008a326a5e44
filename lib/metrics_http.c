#include "metrics_http.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "errbuf.h"
#include "log.h"
#include "metrics.h"

struct metrics_http {
	int fd;
	int port;
	atomic_int stop;
	pthread_t thread;
	metrics_collect_fn collect;
	void *arg;
};

/* Where the head ends ("\r\n\r\n", or "\n\n" from a sloppy client), or NULL. */
static const char *head_end(const char *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (p[i] == '\n' && p[i + 1] == '\n')
			return p + i + 2;
		if (i + 3 < len && p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' &&
		    p[i + 3] == '\n')
			return p + i + 4;
	}
	return NULL;
}

int metrics_http_classify(const char *p, size_t len)
{
	if (!head_end(p, len))
		return len >= METRICS_HTTP_HEAD_MAX ? 431 : 0;
	/* request line: METHOD SP TARGET SP HTTP/x.y */
	const char *eol = memchr(p, '\n', len);
	size_t n = (size_t)(eol - p);
	if (n > 0 && p[n - 1] == '\r')
		n--;
	const char *sp1 = memchr(p, ' ', n);
	if (!sp1 || sp1 == p)
		return 400;
	const char *target = sp1 + 1;
	const char *sp2 = memchr(target, ' ', n - (size_t)(target - p));
	if (!sp2 || sp2 == target || (size_t)(p + n - sp2) < 6 || strncmp(sp2 + 1, "HTTP/", 5) != 0)
		return 400;
	size_t tlen = (size_t)(sp2 - target);
	const char *q = memchr(target, '?', tlen);
	size_t plen = q ? (size_t)(q - target) : tlen;
	if (plen != 8 || memcmp(target, "/metrics", 8) != 0)
		return 404;
	if ((size_t)(sp1 - p) != 3 || memcmp(p, "GET", 3) != 0)
		return 405;
	return 200;
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 431: return "Request Header Fields Too Large";
	default: return "Internal Server Error";
	}
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the scraper went away or stalled past the timeout */
		p += w;
		n -= (size_t)w;
	}
}

static void answer(struct metrics_http *s, int fd, int status)
{
	struct buf body, head;
	buf_init(&body, METRICS_HTTP_BODY_MAX);
	buf_init(&head, 1024);
	if (status == 200 && s->collect(s->arg, &body) < 0)
		status = 500;
	if (status != 200) {
		buf_reset(&body);
		if (buf_printf(&body, "%d %s\n", status, reason(status)) < 0)
			goto out;
	}
	if (buf_printf(&head,
		       "HTTP/1.1 %d %s\r\n"
		       "Content-Type: %s\r\n"
		       "Content-Length: %zu\r\n"
		       "Cache-Control: no-store\r\n"
		       "%s"
		       "Connection: close\r\n\r\n",
		       status, reason(status),
		       status == 200 ? METRICS_CONTENT_TYPE : "text/plain; charset=utf-8", body.len,
		       status == 405 ? "Allow: GET\r\n" : "") < 0)
		goto out;
	send_all(fd, head.data, head.len);
	send_all(fd, body.data, body.len);
out:
	buf_free(&body);
	buf_free(&head);
}

static void serve(struct metrics_http *s, int fd)
{
	struct timeval tv = {METRICS_HTTP_TIMEOUT_MS / 1000, (METRICS_HTTP_TIMEOUT_MS % 1000) * 1000};
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
		return;
	char head[METRICS_HTTP_HEAD_MAX];
	size_t len = 0;
	int status = 0;
	/* SO_RCVTIMEO bounds each read, the deadline the whole head: a client sending a byte at
	 * a time cannot hold the one listener thread for longer */
	long long deadline = clock_mono_ms() + METRICS_HTTP_TIMEOUT_MS;
	while (status == 0 && len < sizeof head) {
		if (clock_mono_ms() > deadline)
			return;
		ssize_t r = recv(fd, head + len, sizeof head - len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return; /* closed, or silent past the timeout: nothing to answer */
		len += (size_t)r;
		status = metrics_http_classify(head, len);
	}
	if (status == 0)
		status = 431;
	answer(s, fd, status);
}

static void *accept_loop(void *arg)
{
	struct metrics_http *s = arg;
	while (!atomic_load(&s->stop)) {
		int fd = accept(s->fd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (atomic_load(&s->stop))
				break;
			/* out of descriptors or memory: a moment, then on */
			log_warn("metrics: accept: %s", strerror(errno));
			usleep(100 * 1000);
			continue;
		}
		serve(s, fd);
		close(fd);
	}
	return NULL;
}

struct metrics_http *metrics_http_start(const char *host, int port, metrics_collect_fn collect,
					void *arg, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
	struct addrinfo *ai = NULL;
	char portstr[16];
	snprintf(portstr, sizeof portstr, "%d", port);
	int gai = getaddrinfo(host, portstr, &hints, &ai);
	if (gai != 0) {
		errbuf_set(err, errlen, "metrics: %s is not an IP address: %s", host, gai_strerror(gai));
		return NULL;
	}
	struct metrics_http *s = calloc(1, sizeof *s);
	if (!s) {
		freeaddrinfo(ai);
		errbuf_set(err, errlen, "metrics: out of memory");
		return NULL;
	}
	s->collect = collect;
	s->arg = arg;
	s->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (s->fd < 0 || setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(s->fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(s->fd, 16) < 0) {
		errbuf_set(err, errlen, "metrics: cannot listen on %s port %d: %s", host, port,
			   strerror(errno));
		goto fail;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(s->fd, (struct sockaddr *)&ss, &sl) < 0) {
		errbuf_set(err, errlen, "metrics: getsockname: %s", strerror(errno));
		goto fail;
	}
	s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
					   : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	/* the thread takes no signal: they stay with the program's own handling */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&s->thread, NULL, accept_loop, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errbuf_set(err, errlen, "metrics: cannot start the listener thread: %s", strerror(rc));
		goto fail;
	}
	freeaddrinfo(ai);
	return s;
fail:
	if (s->fd >= 0)
		close(s->fd);
	free(s);
	freeaddrinfo(ai);
	return NULL;
}

int metrics_http_port(const struct metrics_http *s)
{
	return s->port;
}

void metrics_http_stop(struct metrics_http *s)
{
	if (!s)
		return;
	atomic_store(&s->stop, 1);
	/* wakes the blocking accept (Linux: it fails with EINVAL) */
	shutdown(s->fd, SHUT_RDWR);
	pthread_join(s->thread, NULL);
	close(s->fd);
	free(s);
}

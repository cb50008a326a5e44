/* fuzz_api_http: libFuzzer target for how the API reads a FastCGI request
 * (http_read_request, fcgi/http.c; README.md; `make fuzz`): the parameters the web server
 * hands over (most of them copied from the client's request) and the body stream.
 *
 * The stream is libfcgi's FCGX_Stream over memory: fcgiapp.h declares the structure with
 * its reader's fields (rdNext, stop, isClosed, fillBuffProc), so a stream here hands out the
 * body in chunks of the size byte 0 chooses (1 to 256 bytes) and then reports its end, as a
 * web server's connection that sends the body in records and closes would.
 *
 * Input: byte 0 the chunk size, then parameters one a line (NAME=value; a NUL ends a line
 * too) up to an empty line, then the body. Laws (a break aborts): an accepted request has a
 * method shorter than its buffer, a path starting with '/', a query, the parameters' values
 * (or "") as content type, authorization, address and host, a REDIRECT_STATUS taken only
 * within 400..599, and a body exactly as long as Content-Length whose bytes are the stream's
 * first ones; a refusal is 400, 413 or 500 and says why, 413 only for a length past
 * HTTP_BODY_MAX, and "shorter than its Content-Length" only when the stream was; and
 * http_req_free leaves nothing behind either way. */
#include <fcgiapp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../fcgi/http.h"
#include "fuzz.h"

#define PARAMS_MAX 64

struct body_src {
	unsigned char *p, *end;
	size_t chunk;
};

/* The next chunk of the body, or the end of the stream. */
static void fill(FCGX_Stream *s)
{
	struct body_src *b = s->data;
	if (b->p >= b->end) {
		s->isClosed = 1;
		return;
	}
	size_t n = (size_t)(b->end - b->p) < b->chunk ? (size_t)(b->end - b->p) : b->chunk;
	s->rdNext = s->stopUnget = b->p;
	s->stop = b->p + n;
	b->p += n;
}

static void no_empty(FCGX_Stream *s, int do_close)
{
	(void)s;
	(void)do_close;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t chunk = (size_t)data[0] + 1;
	char *copy = malloc(size);
	CHECK(copy);
	memcpy(copy, data + 1, size - 1);
	size_t n = size - 1, at = 0;
	char *env[PARAMS_MAX + 1];
	size_t nenv = 0;
	/* parameters: lines up to an empty one */
	while (at < n) {
		size_t end = at;
		while (end < n && copy[end] != '\n' && copy[end] != '\0')
			end++;
		if (end == at) {
			at = end + 1;
			break;
		}
		char *line = strndup(copy + at, end - at);
		CHECK(line);
		if (nenv < PARAMS_MAX && strchr(line, '='))
			env[nenv++] = line;
		else
			free(line);
		at = end + 1;
	}
	if (at > n)
		at = n;
	env[nenv] = NULL;
	struct body_src src = {(unsigned char *)copy + at, (unsigned char *)copy + n, chunk};
	size_t body_avail = (size_t)(src.end - src.p);
	unsigned char *body_start = src.p;
	FCGX_Stream in;
	memset(&in, 0, sizeof in);
	in.isReader = 1;
	in.fillBuffProc = fill;
	in.emptyBuffProc = no_empty;
	in.data = &src;
	in.rdNext = in.stop = in.stopUnget = src.p;
	struct http_io io = {.in = &in, .out = NULL, .envp = env, .cgi = 0};
	struct http_req req;
	const char *why = NULL;
	int st = http_read_request(&io, &req, &why);

	/* FCGX_GetParam takes the first of a repeated name: look them up the same way */
	const char *cl = FCGX_GetParam("CONTENT_LENGTH", env);
	size_t len = 0;
	int len_ok = !cl || !*cl || http_parse_length(cl, &len) == 0;
	if (st == 0) {
		CHECK(req.method[0] && strlen(req.method) < sizeof req.method);
		CHECK(req.path && req.path[0] == '/' && req.query);
		const char *names[4] = {"CONTENT_TYPE", "HTTP_AUTHORIZATION", "REMOTE_ADDR", "HTTP_HOST"};
		const char *got[4] = {req.content_type, req.authorization, req.remote_addr, req.host};
		for (int i = 0; i < 4; i++) {
			const char *v = FCGX_GetParam(names[i], env);
			CHECK(got[i] && !strcmp(got[i], v ? v : ""));
		}
		CHECK(req.redirect_status == 0 ||
		      (req.redirect_status >= 400 && req.redirect_status <= 599));
		CHECK(len_ok && len <= HTTP_BODY_MAX && req.body_len == len);
		if (len) {
			CHECK(req.body && len <= body_avail && !memcmp(req.body, body_start, len));
			CHECK(req.body[len] == '\0');
		} else {
			CHECK(!req.body);
		}
	} else {
		CHECK(st == 400 || st == 413 || st == 500);
		CHECK(why && why[0]);
		if (st == 413)
			CHECK(len_ok && len > HTTP_BODY_MAX);
		if (st == 400 && strstr(why, "shorter"))
			CHECK(len_ok && len > body_avail);
	}
	http_req_free(&req);
	for (size_t i = 0; i < nenv; i++)
		free(env[i]);
	free(copy);
	return 0;
}

/* fuzz_broker_ws: libFuzzer target for the broker's WebSocket side (sse-broker/ws.h;
 * README.md; `make fuzz`).
 *
 * Input layout. Byte 0 picks the mode and options:
 *   bit 7 set: handshake mode: the rest is a request head for http_head_parse(); a parsed head
 *              goes to ws_handshake().
 *   else:      frame mode: bits 0-2 are how many chunk sizes follow (0: the stream is fed in
 *              one piece); bit 3: the server queues a text message after each chunk; bit 4:
 *              it queues a ping; bit 5: the output is never drained (as for a peer that does
 *              not read); bit 6: the connection ends with ws_conn_eof(). Then the chunk sizes
 *              (each byte + 1; used in turn), then the bytes the peer sends.
 *
 * Laws (a break aborts): no message longer than max_msg reaches on_text; nothing reaches
 * on_text once the connection is done or failed; a failed feed stays failed; the output
 * buffer never holds more than out_limit; everything we wrote parses as server frames
 * (unmasked, control frames final and at most 125 bytes, a close first carrying a valid code
 * that matches ws_conn_code_sent(), nothing after a close); nothing is queued after our close.
 * A handshake that is accepted came from a GET over HTTP/1.1 and answers 101 with the accept
 * key of the request's key. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../sse-broker/http_head.h"
#include "../../sse-broker/ws.h"

#define MAX_MSG 64
#define OUT_LIMIT 256

struct peer {
	struct ws_conn *w;
	int done; /* the state was WS_DONE, or a feed failed */
	size_t texts;
};

static void on_text(void *arg, const char *msg, size_t len)
{
	struct peer *p = arg;
	if (len > MAX_MSG || (len > 0 && !msg) || p->done)
		__builtin_trap();
	p->texts++;
}

/* RFC 6455 §7.4: the codes an endpoint may put in a close frame */
static int code_valid(unsigned code)
{
	/* 1012 to 1014 (IANA registry) too: a peer's is echoed */
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
	       (code >= 3000 && code <= 4999);
}

/* Everything the server wrote, frame by frame: at the end it must parse as server frames. */
struct sent {
	uint8_t *data;
	size_t len, cap;
};

static void sent_take(struct sent *s, struct buf *out)
{
	if (out->len > OUT_LIMIT)
		__builtin_trap();
	if (out->len == 0)
		return;
	if (s->len + out->len > s->cap) {
		size_t cap = (s->len + out->len) * 2;
		uint8_t *d = realloc(s->data, cap);
		if (!d)
			abort();
		s->data = d;
		s->cap = cap;
	}
	memcpy(s->data + s->len, out->data, out->len);
	s->len += out->len;
	buf_reset(out);
}

static void sent_check(const struct sent *s, uint16_t code_sent, int failed)
{
	size_t at = 0;
	int closed = 0;
	while (at < s->len) {
		if (closed)
			__builtin_trap(); /* a frame after our close (§5.5.1) */
		if (s->len - at < 2)
			break;
		uint8_t b0 = s->data[at], b1 = s->data[at + 1];
		unsigned op = b0 & 0x0f;
		if (b0 & 0x70 || b1 & 0x80)
			__builtin_trap(); /* reserved bits, or a masked server frame (§5.1) */
		uint64_t n = b1 & 0x7f;
		size_t hdr = 2;
		if (n == 126 || n == 127) {
			size_t ext = n == 126 ? 2 : 8;
			if (s->len - at < 2 + ext)
				break;
			n = 0;
			for (size_t i = 0; i < ext; i++)
				n = n << 8 | s->data[at + 2 + i];
			hdr += ext;
		}
		if (s->len - at - hdr < n)
			break;
		const uint8_t *pl = s->data + at + hdr;
		if (op >= 8) {
			if (!(b0 & 0x80) || n > 125 || (op != 8 && op != 9 && op != 10))
				__builtin_trap();
			if (op == 8) {
				closed = 1;
				if (n == 1)
					__builtin_trap();
				unsigned code = n >= 2 ? (unsigned)pl[0] << 8 | pl[1] : 0;
				if (n >= 2 && !code_valid(code))
					__builtin_trap();
				/* an empty close: wslay may record 1005, "no status" (§7.1.5) */
				if (code != code_sent && !(n == 0 && code_sent == 1005))
					__builtin_trap();
			}
		} else if (op != 0 && op != 1) {
			__builtin_trap(); /* we only send text */
		}
		at += hdr + (size_t)n;
	}
	/* a frame cut short only when writing it failed (over the bound) */
	if (at < s->len && !failed)
		__builtin_trap();
}

static void fuzz_handshake(const uint8_t *data, size_t size)
{
	static struct http_head h;
	if (http_head_parse(&h, (const char *)data, size) != HTTP_HEAD_OK)
		return;
	struct buf out;
	buf_init(&out, 4096);
	const char *why = NULL;
	int bad_version = -1;
	int r = ws_handshake(&h, &out, &why, &bad_version, "X-Test: 1\r\n");
	if (r < 0) {
		if (!why || !*why || out.len != 0 || (bad_version != 0 && bad_version != 1))
			__builtin_trap();
	} else {
		char accept[WS_ACCEPT_LEN + 1];
		const char *key = http_head_get(&h, "Sec-WebSocket-Key");
		if (bad_version != 0 || strcmp(h.method, "GET") != 0 || h.minor < 1 ||
		    ws_accept_key(key, accept) < 0 || !out.data ||
		    strncmp(out.data, "HTTP/1.1 101 ", 13) != 0 || !strstr(out.data, accept) ||
		    out.len < 4 || memcmp(out.data + out.len - 4, "\r\n\r\n", 4) != 0)
			__builtin_trap();
	}
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t opt = data[0];
	if (opt & 0x80) {
		fuzz_handshake(data + 1, size - 1);
		return 0;
	}
	size_t nsizes = opt & 7;
	if (size < 1 + nsizes)
		return 0;
	const uint8_t *sizes = data + 1;
	const uint8_t *in = data + 1 + nsizes;
	size_t inlen = size - 1 - nsizes;
	int send_text = opt & 0x08, send_ping = opt & 0x10, no_drain = opt & 0x20,
	    eof = opt & 0x40;

	struct peer p = {0};
	p.w = ws_conn_new(MAX_MSG, OUT_LIMIT, on_text, &p);
	if (!p.w)
		return 0;
	struct buf *out = ws_conn_output(p.w);
	struct sent s = {0};
	int failed = 0;
	size_t k = 0;
	for (size_t at = 0; at < inlen;) {
		size_t n = nsizes ? (size_t)sizes[k++ % nsizes] + 1 : inlen;
		if (n > inlen - at)
			n = inlen - at;
		uint16_t code_before = ws_conn_code_sent(p.w);
		int r = ws_conn_feed(p.w, in + at, n);
		at += n;
		if (out->len > OUT_LIMIT)
			__builtin_trap();
		if (r < 0) {
			failed = 1;
			p.done = 1;
			/* a failed connection takes nothing more */
			if (ws_conn_feed(p.w, in, inlen) != -1 || ws_conn_state(p.w) != WS_DONE)
				__builtin_trap();
			break;
		}
		if (code_before && ws_conn_code_sent(p.w) != code_before)
			__builtin_trap(); /* one close only */
		enum ws_state st = ws_conn_state(p.w);
		if (st != WS_OPEN && ws_conn_code_sent(p.w) == 0 && st != WS_DONE)
			__builtin_trap();
		if (st == WS_DONE) {
			p.done = 1;
			/* what the server would do now: flush and close; more bytes must not reach
			 * on_text (checked there) */
			(void)ws_conn_feed(p.w, in, inlen);
			break;
		}
		if (st == WS_CLOSING && (ws_conn_send_text(p.w, "x", 1) != -1 || ws_conn_ping(p.w) != -1))
			__builtin_trap(); /* nothing is queued after our close */
		if (send_text)
			(void)ws_conn_send_text(p.w, "{\"type\":\"presence\"}", 19);
		if (send_ping)
			(void)ws_conn_ping(p.w);
		if (out->len > OUT_LIMIT)
			__builtin_trap();
		if (!no_drain)
			sent_take(&s, out);
	}
	if (eof) {
		ws_conn_eof(p.w);
		if (ws_conn_state(p.w) != WS_DONE)
			__builtin_trap();
	}
	/* a failure while writing a queued message shows only as a send returning -1: an empty
	 * feed tells whether the connection failed (the cut frame it can leave is allowed then) */
	if (ws_conn_feed(p.w, "", 0) < 0)
		failed = 1;
	if (out->len > OUT_LIMIT)
		__builtin_trap();
	sent_take(&s, out);
	sent_check(&s, ws_conn_code_sent(p.w), failed || no_drain);
	free(s.data);
	ws_conn_free(p.w);
	return 0;
}

/* WebSocket: the handshake (RFC 6455 §1.3, §4.2) and frame handling through wslay. */
#include <stdint.h>
#include <stdlib.h>

#include "../../sse-broker/ws.h"
#include "unit.h"

/* A client frame (§5.2), masked unless mask is 0. Returns its length. */
static size_t frame(uint8_t *out, int fin, int opcode, const void *payload, size_t n, int mask)
{
	static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
	size_t o = 0;
	out[o++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
	uint8_t m = mask ? 0x80 : 0;
	if (n < 126) {
		out[o++] = (uint8_t)(m | n);
	} else if (n < 65536) {
		out[o++] = m | 126;
		out[o++] = (uint8_t)(n >> 8);
		out[o++] = (uint8_t)n;
	} else {
		out[o++] = m | 127;
		for (int i = 7; i >= 0; i--)
			out[o++] = (uint8_t)((uint64_t)n >> (8 * i));
	}
	if (mask) {
		memcpy(out + o, key, 4);
		o += 4;
	}
	for (size_t i = 0; i < n; i++)
		out[o + i] = (uint8_t)(((const uint8_t *)payload)[i] ^ (mask ? key[i % 4] : 0));
	return o + n;
}

struct got {
	char text[256];
	int n;
};

static void on_text(void *arg, const char *msg, size_t len)
{
	struct got *g = arg;
	snprintf(g->text, sizeof g->text, "%.*s", (int)len, msg);
	g->n++;
}

/* The close code in the first close frame of the server's output, or -1. */
static int close_code(struct ws_conn *w)
{
	struct buf *o = ws_conn_output(w);
	const uint8_t *p = (const uint8_t *)o->data;
	size_t i = 0;
	while (p && i + 2 <= o->len) {
		size_t n = p[i + 1] & 0x7f, h = 2;
		if (n == 126) {
			n = (size_t)p[i + 2] << 8 | p[i + 3];
			h = 4;
		}
		if ((p[i] & 0x0f) == 0x8)
			return n >= 2 ? (p[i + h] << 8 | p[i + h + 1]) : 0;
		i += h + n;
	}
	return -1;
}

static void test_accept_key(void)
{
	char out[WS_ACCEPT_LEN + 1];
	CHECK(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out) == 0);
	CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	CHECK(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ", out) == -1);
	CHECK(ws_accept_key("dGhlIHNhbXBsZSBub25j!Q==", out) == -1);
	CHECK(ws_accept_key("", out) == -1);
	CHECK(ws_accept_key(NULL, out) == -1);
}

static struct http_head hh;

static int handshake(const char *req, struct buf *b, int *bad_version)
{
	const char *why;
	if (http_head_parse(&hh, req, strlen(req)) != HTTP_HEAD_OK)
		return -2;
	return ws_handshake(&hh, b, &why, bad_version, NULL);
}

static void test_handshake(void)
{
	struct buf b;
	int bv;
	buf_init(&b, 0);
	CHECK(handshake("GET /events/rooms/a/ws HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n"
			"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
			&b, &bv) == 0);
	CHECK(strstr(b.data, "HTTP/1.1 101 Switching Protocols\r\n") == b.data);
	CHECK(strstr(b.data, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
	buf_reset(&b);
	CHECK(handshake("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
			&b, &bv) == -1);
	CHECK(bv == 1);
	CHECK(handshake("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
			&b, &bv) == -1);
	CHECK(bv == 0);
	CHECK(handshake("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			"Sec-WebSocket-Version: 13\r\n\r\n",
			&b, &bv) == -1);
	CHECK(handshake("GET /ws HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
			&b, &bv) == -1);
	CHECK(b.len == 0);

	/* RFC 9110 §5.3: repeated lines are one list, so the token may be in a later line */
	CHECK(handshake("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
			"Connection: keep-alive\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
			&b, &bv) == 0);
	CHECK(strstr(b.data, "HTTP/1.1 101 ") == b.data);
	buf_reset(&b);
	CHECK(handshake("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nUpgrade: websocket\r\n"
			"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
			&b, &bv) == 0);
	buf_reset(&b);
	/* and still refused when no line holds it */
	CHECK(handshake("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
			"Connection: keep-alive\r\nConnection: close\r\nSec-WebSocket-Version: 13\r\n"
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
			&b, &bv) == -1);
	CHECK(handshake("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nUpgrade: h2c\r\n"
			"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
			&b, &bv) == -1);
	CHECK(b.len == 0);
	buf_free(&b);
}

static void test_messages(void)
{
	struct got g = {{0}, 0};
	struct ws_conn *w = ws_conn_new(1024, 1 << 20, on_text, &g);
	uint8_t f[2048];
	size_t n = frame(f, 1, 1, "hello", 5, 1);
	/* byte by byte: framing must not depend on how TCP splits it */
	for (size_t i = 0; i < n; i++)
		CHECK(ws_conn_feed(w, f + i, 1) == 0);
	CHECK(g.n == 1);
	CHECK_STR(g.text, "hello");

	/* fragmented: "ab" + "cd", with a ping in between (§5.4, §5.5) */
	size_t o = frame(f, 0, 1, "ab", 2, 1);
	o += frame(f + o, 1, 9, "p", 1, 1);
	o += frame(f + o, 1, 0, "cd", 2, 1);
	CHECK(ws_conn_feed(w, f, o) == 0);
	CHECK(g.n == 2);
	CHECK_STR(g.text, "abcd");
	/* the pong went out: unmasked, opcode 10, payload "p" */
	struct buf *out = ws_conn_output(w);
	CHECK(out->len == 3 && (uint8_t)out->data[0] == 0x8a && out->data[1] == 1 &&
	      out->data[2] == 'p');
	buf_reset(out);

	/* server frames are unmasked text */
	CHECK(ws_conn_send_text(w, "{\"a\":1}", 7) == 0);
	CHECK(out->len == 9 && (uint8_t)out->data[0] == 0x81 && out->data[1] == 7);
	buf_reset(out);
	CHECK(ws_conn_ping(w) == 0);
	CHECK(out->len == 2 && (uint8_t)out->data[0] == 0x89);
	buf_reset(out);
	CHECK(ws_conn_state(w) == WS_OPEN);
	/* no close frame either way yet: both codes are 0 (ws.h), not wslay's 1006 */
	CHECK(ws_conn_code_sent(w) == 0);
	CHECK(ws_conn_code_received(w) == 0);

	/* the peer closes: we answer with its code and are done */
	uint8_t code[2] = {0x03, 0xe8};
	n = frame(f, 1, 8, code, 2, 1);
	CHECK(ws_conn_feed(w, f, n) == 0);
	CHECK(close_code(w) == 1000);
	CHECK(ws_conn_code_received(w) == 1000);
	CHECK(ws_conn_code_sent(w) == 1000);
	CHECK(ws_conn_state(w) == WS_DONE);
	ws_conn_free(w);
}

static void test_unmasked(void)
{
	struct got g = {{0}, 0};
	struct ws_conn *w = ws_conn_new(1024, 1 << 20, on_text, &g);
	uint8_t f[64];
	size_t n = frame(f, 1, 1, "hi", 2, 0);
	ws_conn_feed(w, f, n);
	CHECK(g.n == 0);
	CHECK(close_code(w) == 1002); /* §5.1: a server closes on an unmasked frame */
	CHECK(ws_conn_state(w) != WS_OPEN);
	ws_conn_free(w);
}

static void test_oversized(void)
{
	struct got g = {{0}, 0};
	struct ws_conn *w = ws_conn_new(100, 1 << 20, on_text, &g);
	uint8_t *f = malloc(70000);
	char *big = calloc(1, 65537);
	memset(big, 'x', 65536);
	size_t n = frame(f, 1, 1, big, 200, 1);
	ws_conn_feed(w, f, n);
	CHECK(g.n == 0);
	CHECK(close_code(w) == 1009);
	ws_conn_free(w);

	/* also when a huge size (64-bit length, 4 GiB) is announced and little is sent:
	 * nothing that big is ever buffered */
	w = ws_conn_new(100, 1 << 20, on_text, &g);
	uint8_t hdr[18] = {0x81, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4, 'a', 'b', 'c', 'd'};
	ws_conn_feed(w, hdr, sizeof hdr);
	CHECK(close_code(w) == 1009);
	ws_conn_free(w);

	/* fragments adding up past the bound */
	w = ws_conn_new(100, 1 << 20, on_text, &g);
	size_t o = frame(f, 0, 1, big, 60, 1);
	o += frame(f + o, 1, 0, big, 60, 1);
	ws_conn_feed(w, f, o);
	CHECK(g.n == 0);
	CHECK(close_code(w) == 1009);
	ws_conn_free(w);
	free(big);
	free(f);
}

static void test_truncated(void)
{
	struct got g = {{0}, 0};
	struct ws_conn *w = ws_conn_new(1024, 1 << 20, on_text, &g);
	uint8_t f[64];
	size_t n = frame(f, 1, 1, "hello world", 11, 1);
	CHECK(ws_conn_feed(w, f, n - 4) == 0);
	CHECK(g.n == 0);
	CHECK(ws_conn_state(w) == WS_OPEN);
	ws_conn_eof(w);
	CHECK(close_code(w) == 1002);
	CHECK(ws_conn_state(w) == WS_DONE);
	ws_conn_free(w);

	/* a header cut short */
	w = ws_conn_new(1024, 1 << 20, on_text, &g);
	CHECK(ws_conn_feed(w, f, 1) == 0);
	ws_conn_eof(w);
	CHECK(close_code(w) == 1002);
	ws_conn_free(w);

	/* ending between frames is no error */
	w = ws_conn_new(1024, 1 << 20, on_text, &g);
	CHECK(ws_conn_feed(w, f, n) == 0);
	ws_conn_eof(w);
	CHECK(close_code(w) == -1);
	CHECK(ws_conn_state(w) == WS_DONE);
	ws_conn_free(w);
}

/* Frames wslay's frame layer cannot read at all (§5.2, §5.5) fail the connection, and the
 * peer is told so with a close frame of 1002 (§7.1.7), not left to see it drop (1006). */
static void test_unreadable_frames(void)
{
	static const uint8_t proto_close[4] = {0x88, 0x02, 0x03, 0xea};
	uint8_t f[300];
	char big[126];
	memset(big, 'p', sizeof big);
	for (int i = 0; i < 4; i++) {
		struct got g = {{0}, 0};
		struct ws_conn *w = ws_conn_new(1024, 1 << 20, on_text, &g);
		size_t n = 0;
		if (i == 0) {
			n = frame(f, 1, 9, big, sizeof big, 1); /* a ping of 126 bytes */
		} else if (i == 1) {
			n = frame(f, 0, 9, "p", 1, 1); /* a ping in fragments */
		} else if (i == 2) {
			/* "hello" with its length in 16 bits, where 7 would do */
			const uint8_t h[8] = {0x81, 0x80 | 126, 0, 5, 0, 0, 0, 0};
			memcpy(f, h, sizeof h);
			memcpy(f + sizeof h, "hello", 5);
			n = sizeof h + 5;
		} else {
			/* a 64-bit length with its top bit set */
			const uint8_t h[14] = {0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0};
			memcpy(f, h, sizeof h);
			memcpy(f + sizeof h, "hello", 5);
			n = sizeof h + 5;
		}
		CHECK(ws_conn_feed(w, f, n) == -1);
		struct buf *out = ws_conn_output(w);
		CHECK(out->len == sizeof proto_close &&
		      memcmp(out->data, proto_close, sizeof proto_close) == 0);
		CHECK(close_code(w) == 1002);
		CHECK(ws_conn_code_sent(w) == 1002);
		CHECK(ws_conn_state(w) == WS_DONE);
		CHECK(g.n == 0);
		/* nothing more is read or written */
		CHECK(ws_conn_feed(w, f, n) == -1);
		CHECK(ws_conn_send_text(w, "x", 1) == -1);
		CHECK(out->len == sizeof proto_close);
		ws_conn_free(w);
	}

	/* behind what was already on its way out, whole: a message, then the bad frame */
	struct got g = {{0}, 0};
	struct ws_conn *w = ws_conn_new(1024, 1 << 20, on_text, &g);
	CHECK(ws_conn_send_text(w, "ab", 2) == 0);
	size_t n = frame(f, 1, 1, "hi", 2, 1);
	n += frame(f + n, 0, 10, "p", 1, 1); /* a pong in fragments */
	CHECK(ws_conn_feed(w, f, n) == -1);
	CHECK(g.n == 1);
	struct buf *out = ws_conn_output(w);
	CHECK(out->len == 4 + 4 && memcmp(out->data, "\x81\x02" "ab", 4) == 0 &&
	      memcmp(out->data + 4, proto_close, 4) == 0);
	ws_conn_free(w);

	/* after a close of ours, no second one */
	w = ws_conn_new(1024, 1 << 20, on_text, &g);
	CHECK(ws_conn_close(w, 1001, "bye") == 0);
	size_t had = ws_conn_output(w)->len;
	n = frame(f, 0, 9, "p", 1, 1);
	ws_conn_feed(w, f, n);
	CHECK(ws_conn_output(w)->len == had);
	CHECK(close_code(w) == 1001);
	CHECK(ws_conn_code_sent(w) == 1001);
	ws_conn_free(w);

	/* past the output bound it is left out, and the connection ends all the same */
	w = ws_conn_new(1024, 8, on_text, &g);
	CHECK(ws_conn_send_text(w, "abcdef", 6) == 0);
	n = frame(f, 0, 9, "p", 1, 1);
	CHECK(ws_conn_feed(w, f, n) == -1);
	CHECK(ws_conn_output(w)->len == 8);
	CHECK(ws_conn_code_sent(w) == 0);
	CHECK(ws_conn_state(w) == WS_DONE);
	ws_conn_free(w);
}

static void test_binary_and_bound(void)
{
	struct got g = {{0}, 0};
	struct ws_conn *w = ws_conn_new(1024, 64, on_text, &g);
	uint8_t f[64];
	size_t n = frame(f, 1, 2, "\x01\x02", 2, 1);
	ws_conn_feed(w, f, n);
	CHECK(close_code(w) == 1003);
	ws_conn_free(w);

	/* the output bound: a peer that does not read is cut off */
	w = ws_conn_new(1024, 64, on_text, &g);
	char msg[40];
	memset(msg, 'm', sizeof msg);
	CHECK(ws_conn_send_text(w, msg, sizeof msg) == 0);
	CHECK(ws_conn_send_text(w, msg, sizeof msg) == -1);
	CHECK(ws_conn_state(w) == WS_DONE);
	ws_conn_free(w);
}

/* §8.1: a text message that is not UTF-8 fails the connection with 1007 and never reaches
 * on_text, whole or in fragments (each fragment may split a character: only the joined
 * message counts); U+0000 and a character split over two fragments are fine. wslay does
 * the check (ws.h): this holds it to it. */
static void test_invalid_utf8(void)
{
	static const char *const bad[] = {
		"\xff",             /* never in UTF-8 */
		"ab\x80",           /* a stray continuation byte */
		"\xc3",             /* cut short */
		"\xc0\xaf",         /* overlong "/" */
		"\xed\xa0\x80",     /* a UTF-16 surrogate */
		"\xf4\x90\x80\x80", /* above U+10FFFF */
		"\0\xff",           /* past a NUL, still checked (2 bytes, below) */
	};
	uint8_t f[256];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct got g = {{0}, 0};
		struct ws_conn *w = ws_conn_new(1024, 1 << 20, on_text, &g);
		size_t len = bad[i][0] ? strlen(bad[i]) : 2;
		size_t n = frame(f, 1, 1, bad[i], len, 1);
		ws_conn_feed(w, f, n);
		CHECK(close_code(w) == 1007);
		CHECK(g.n == 0);
		CHECK(ws_conn_state(w) != WS_OPEN);
		ws_conn_free(w);
	}

	/* fragmented: "h\xc3" + "\xa9" is "hé", split inside the character: accepted */
	struct got g = {{0}, 0};
	struct ws_conn *w = ws_conn_new(1024, 1 << 20, on_text, &g);
	size_t o = frame(f, 0, 1, "h\xc3", 2, 1);
	o += frame(f + o, 1, 0, "\xa9", 1, 1);
	CHECK(ws_conn_feed(w, f, o) == 0);
	CHECK(g.n == 1);
	CHECK_STR(g.text, "h\xc3\xa9");
	CHECK(close_code(w) == -1);
	/* a NUL is a character (§5.6 asks for UTF-8, not for text without one) */
	o = frame(f, 1, 1, "a\0b", 3, 1);
	CHECK(ws_conn_feed(w, f, o) == 0);
	CHECK(g.n == 2);
	CHECK(close_code(w) == -1);

	/* fragmented, every fragment fine alone but the message cut short: "ok" + "\xe2\x82" */
	o = frame(f, 0, 1, "ok", 2, 1);
	o += frame(f + o, 1, 0, "\xe2\x82", 2, 1);
	ws_conn_feed(w, f, o);
	CHECK(close_code(w) == 1007);
	CHECK(g.n == 2);
	CHECK(ws_conn_state(w) != WS_OPEN);
	ws_conn_free(w);

	/* a close frame's reason is text too (§5.5.1): 1000 with "\xff" is answered 1007 */
	w = ws_conn_new(1024, 1 << 20, on_text, &g);
	o = frame(f, 1, 8, "\x03\xe8\xff", 3, 1);
	ws_conn_feed(w, f, o);
	CHECK(close_code(w) == 1007);
	CHECK(ws_conn_state(w) != WS_OPEN);
	ws_conn_free(w);
}

/* The full close frame of the server's output (its payload, code and reason), or -1. */
static long close_payload(struct ws_conn *w, uint8_t *pl, size_t cap)
{
	struct buf *o = ws_conn_output(w);
	const uint8_t *p = (const uint8_t *)o->data;
	size_t i = 0;
	while (p && i + 2 <= o->len) {
		size_t n = p[i + 1] & 0x7f;
		if ((p[i] & 0x0f) == 0x8) {
			if (n > cap || i + 2 + n > o->len)
				return -1;
			memcpy(pl, p + i + 2, n);
			return (long)n;
		}
		i += 2 + n;
	}
	return -1;
}

/* A peer's close code (§7.4): the IANA registry's 1012 (Service Restart), 1013 (Try Again
 * Later) and 1014 (Bad Gateway) are answered as any valid code, by echoing it, reason and
 * all (wslay 1.1.1's own list stops at 1011 and would answer 1002); a code that is not one,
 * a payload of one byte and a reason that is not UTF-8 are still refused. */
static void test_peer_close_codes(void)
{
	struct got g = {{0}, 0};
	uint8_t f[256], pl[128];
	static const int ok[] = {1000, 1001, 1003, 1007, 1008, 1009, 1010, 1011,
				 1012, 1013, 1014, 3000, 4999};
	for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
		for (int with_reason = 0; with_reason < 2; with_reason++) {
			/* whole, and one byte per feed: the code may come apart from its header */
			for (int split = 0; split < 2; split++) {
				struct ws_conn *w = ws_conn_new(1024, 1 << 20, on_text, &g);
				uint8_t p[16] = {(uint8_t)(ok[k] >> 8), (uint8_t)ok[k]};
				size_t pn = 2;
				if (with_reason) {
					memcpy(p + 2, "r\xc3\xa9", 3); /* "ré" */
					pn += 3;
				}
				size_t n = frame(f, 1, 8, p, pn, 1);
				int r = 0;
				if (split)
					for (size_t i = 0; i < n && r == 0; i++)
						r = ws_conn_feed(w, f + i, 1);
				else
					r = ws_conn_feed(w, f, n);
				CHECK(r == 0);
				if (close_code(w) != ok[k])
					fprintf(stderr, "  code %d reason %d split %d: answered %d\n",
						ok[k], with_reason, split, close_code(w));
				CHECK(close_code(w) == ok[k]);
				CHECK(close_payload(w, pl, sizeof pl) == (long)pn &&
				      memcmp(pl, p, pn) == 0);
				CHECK(ws_conn_code_received(w) == ok[k]);
				CHECK(ws_conn_code_sent(w) == ok[k]);
				CHECK(ws_conn_state(w) == WS_DONE);
				/* nothing more goes out, nothing more is read */
				CHECK(ws_conn_send_text(w, "x", 1) == -1);
				ws_conn_free(w);
			}
		}
	}

	/* codes that are not valid in a close frame (§7.4.1, §7.4.2): 1002 */
	static const int bad[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999,
				  5000, 65535};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		struct ws_conn *w = ws_conn_new(1024, 1 << 20, on_text, &g);
		uint8_t p[2] = {(uint8_t)(bad[k] >> 8), (uint8_t)bad[k]};
		size_t n = frame(f, 1, 8, p, 2, 1);
		ws_conn_feed(w, f, n);
		if (close_code(w) != 1002)
			fprintf(stderr, "  code %d: answered %d\n", bad[k], close_code(w));
		CHECK(close_code(w) == 1002);
		CHECK(ws_conn_state(w) == WS_DONE);
		ws_conn_free(w);
	}

	/* a close payload of one byte is no code (§5.5.1: a body starts with two): 1002 */
	struct ws_conn *w = ws_conn_new(1024, 1 << 20, on_text, &g);
	size_t n = frame(f, 1, 8, "\x03", 1, 1);
	ws_conn_feed(w, f, n);
	CHECK(close_code(w) == 1002);
	CHECK(ws_conn_state(w) == WS_DONE);
	ws_conn_free(w);

	/* no payload at all: a close without a code, answered with one without a code */
	w = ws_conn_new(1024, 1 << 20, on_text, &g);
	n = frame(f, 1, 8, "", 0, 1);
	CHECK(ws_conn_feed(w, f, n) == 0);
	CHECK(close_code(w) == 0);
	CHECK(ws_conn_state(w) == WS_DONE);
	ws_conn_free(w);

	/* 1012 to 1014 with a reason that is not UTF-8, whole or cut short: 1007, as any code */
	static const char *const bad_reasons[] = {"\xff", "ok\xe2\x82"};
	for (int code = 1012; code <= 1014; code++) {
		for (size_t k = 0; k < 2; k++) {
			w = ws_conn_new(1024, 1 << 20, on_text, &g);
			uint8_t p[16] = {(uint8_t)(code >> 8), (uint8_t)code};
			size_t rl = strlen(bad_reasons[k]);
			memcpy(p + 2, bad_reasons[k], rl);
			n = frame(f, 1, 8, p, 2 + rl, 1);
			ws_conn_feed(w, f, n);
			CHECK(close_code(w) == 1007);
			CHECK(ws_conn_state(w) != WS_OPEN);
			ws_conn_free(w);
		}
	}

	/* a reason that is not UTF-8, the frame arriving a byte at a time (wslay 1.1.1 checks
	 * each piece of a close frame from its third byte on, so it saw none of this reason):
	 * 1007 all the same */
	for (int code = 1000; code <= 1013; code += 13) {
		w = ws_conn_new(1024, 1 << 20, on_text, &g);
		uint8_t p[4] = {(uint8_t)(code >> 8), (uint8_t)code, 'a', 0xff};
		n = frame(f, 1, 8, p, sizeof p, 1);
		for (size_t i = 0; i < n && ws_conn_feed(w, f + i, 1) == 0; i++)
			;
		CHECK(close_code(w) == 1007);
		CHECK(ws_conn_code_received(w) == 0);
		ws_conn_free(w);
	}

	/* 1013 in the middle of a fragmented message, and behind a text message: the text is
	 * handed on, the close echoed */
	w = ws_conn_new(1024, 1 << 20, on_text, &g);
	g.n = 0;
	size_t o = frame(f, 1, 1, "hi", 2, 1);
	o += frame(f + o, 0, 1, "par", 3, 1);
	o += frame(f + o, 1, 8, "\x03\xf5", 2, 1);
	CHECK(ws_conn_feed(w, f, o) == 0);
	CHECK(g.n == 1);
	CHECK(close_code(w) == 1013);
	CHECK(ws_conn_state(w) == WS_DONE);
	ws_conn_free(w);

	/* our close went first (1001); the peer's answer of 1012 ends the handshake: no second
	 * close frame, its code is the one received */
	w = ws_conn_new(1024, 1 << 20, on_text, &g);
	CHECK(ws_conn_close(w, 1001, "bye") == 0);
	CHECK(ws_conn_state(w) == WS_CLOSING);
	buf_reset(ws_conn_output(w));
	n = frame(f, 1, 8, "\x03\xf4", 2, 1);
	CHECK(ws_conn_feed(w, f, n) == 0);
	CHECK(ws_conn_output(w)->len == 0);
	CHECK(ws_conn_code_sent(w) == 1001);
	CHECK(ws_conn_code_received(w) == 1012);
	CHECK(ws_conn_state(w) == WS_DONE);
	ws_conn_free(w);

	/* after the echo, more frames are not read */
	w = ws_conn_new(1024, 1 << 20, on_text, &g);
	g.n = 0;
	o = frame(f, 1, 8, "\x03\xf6", 2, 1);
	o += frame(f + o, 1, 1, "late", 4, 1);
	ws_conn_feed(w, f, o);
	CHECK(g.n == 0);
	CHECK(close_code(w) == 1014);
	ws_conn_free(w);
}

/* A buffer grown for one large message is given back once its bytes are handed on; a small
 * one is kept for the next message. */
static void test_output_shrinks(void)
{
	struct got g = {{0}, 0};
	size_t big = 1024 * 1024;
	struct ws_conn *w = ws_conn_new(1024, 4 * big, on_text, &g);
	char *msg = malloc(big);
	CHECK(w && msg);
	if (!w || !msg) {
		free(msg);
		ws_conn_free(w);
		return;
	}
	memset(msg, 'x', big);
	CHECK(ws_conn_send_text(w, msg, big) == 0);
	struct buf *out = ws_conn_output(w);
	CHECK(out->len == big + 10); /* 2 + 8 bytes of head, no mask */
	CHECK(out->cap > WS_OUT_KEEP);
	ws_conn_output_sent(w);
	CHECK(out->len == 0);
	CHECK(out->cap == 0 && out->data == NULL);
	/* the bound is still there after the memory went */
	CHECK(out->limit == 4 * big);

	CHECK(ws_conn_send_text(w, msg, 100) == 0);
	CHECK(out->len == 102);
	size_t cap = out->cap;
	CHECK(cap > 0 && cap <= WS_OUT_KEEP);
	ws_conn_output_sent(w);
	CHECK(out->len == 0);
	CHECK(out->cap == cap && out->data != NULL);

	/* a message grows it again and it is given back again */
	CHECK(ws_conn_send_text(w, msg, big) == 0);
	CHECK(out->len == big + 10);
	ws_conn_output_sent(w);
	CHECK(out->cap == 0);
	CHECK(ws_conn_state(w) == WS_OPEN);
	free(msg);
	ws_conn_free(w);
}

int main(void)
{
	test_accept_key();
	test_handshake();
	test_messages();
	test_unmasked();
	test_oversized();
	test_truncated();
	test_unreadable_frames();
	test_binary_and_bound();
	test_output_shrinks();
	test_invalid_utf8();
	test_peer_close_codes();
	return unit_summary("test_broker_ws");
}

#include "ws.h"

#include <openssl/evp.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <wslay/wslay.h>

#include "utf8.h"

/* §1.3: the GUID every server appends to the client's key */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

int ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1])
{
	/* 16 bytes in base64 are 22 characters and "==" (§4.1 item 7, §4.2.1 item 5) */
	if (!key || strlen(key) != 24 || key[22] != '=' || key[23] != '=')
		return -1;
	for (int i = 0; i < 22; i++)
		if (!b64_char(key[i]))
			return -1;
	char cat[24 + sizeof ws_guid];
	memcpy(cat, key, 24);
	memcpy(cat + 24, ws_guid, sizeof ws_guid - 1);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (EVP_Digest(cat, 24 + sizeof ws_guid - 1, md, &mdlen, EVP_sha1(), NULL) != 1 ||
	    mdlen != 20)
		return -1;
	if (EVP_EncodeBlock((unsigned char *)out, md, 20) != WS_ACCEPT_LEN)
		return -1;
	out[WS_ACCEPT_LEN] = '\0';
	return 0;
}

int ws_handshake(const struct http_head *h, struct buf *out, const char **why, int *bad_version,
		 const char *extra)
{
	*bad_version = 0;
	const char *version = http_head_get(h, "Sec-WebSocket-Version");
	const char *key = http_head_get(h, "Sec-WebSocket-Key");
	char accept[WS_ACCEPT_LEN + 1];
	if (strcmp(h->method, "GET") != 0 || h->minor < 1) {
		*why = "WebSocket needs GET over HTTP/1.1";
		return -1;
	}
	/* every line of each: "Connection: keep-alive" then "Connection: Upgrade" is one list */
	if (!http_head_has_token(h, "Upgrade", "websocket") ||
	    !http_head_has_token(h, "Connection", "upgrade")) {
		*why = "not a WebSocket upgrade request";
		return -1;
	}
	if (!version || strcmp(version, "13") != 0) {
		*why = "unsupported WebSocket version";
		*bad_version = 1;
		return -1;
	}
	if (ws_accept_key(key, accept) < 0) {
		*why = "bad Sec-WebSocket-Key";
		return -1;
	}
	if (buf_printf(out,
		       "HTTP/1.1 101 Switching Protocols\r\n"
		       "Upgrade: websocket\r\n"
		       "Connection: Upgrade\r\n"
		       "Sec-WebSocket-Accept: %s\r\n"
		       "%s"
		       "\r\n",
		       accept, extra ? extra : "") < 0) {
		*why = "out of memory";
		return -1;
	}
	return 0;
}

struct ws_conn {
	wslay_event_context_ptr ctx;
	const uint8_t *in; /* the bytes ws_conn_feed() is handing to wslay */
	size_t in_len;
	struct buf out;
	ws_on_text on_text;
	void *arg;
	/* Frame accounting, to tell a connection that ends between frames from one that ends
	 * inside a frame: every byte fed is either part of a finished frame or pending. */
	uint64_t fed, finished, frame_len;
	int failed;
	int eof;
	uint16_t own_close; /* the code of a close frame written here rather than by wslay */
	/* The peer's close frame, gathered as it comes in (ws_close_recv()). */
	int in_close;
	uint8_t close_pl[125]; /* §5.5: a control frame's payload is 125 bytes at most */
	size_t close_len;
	size_t frames;	     /* frames of the data message being received (WS_MAX_FRAGMENTS) */
	int too_fragmented;  /* refused for that: nothing more of it is taken */
	uint16_t peer_code;  /* a code of the peer's we echoed that wslay's list does not have */
	int close_refused;   /* the peer's close frame was refused here (1002, 1007) */
};

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
			  void *user)
{
	struct ws_conn *w = user;
	if (w->in_len == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	size_t n = len < w->in_len ? len : w->in_len;
	memcpy(buf, w->in, n);
	w->in += n;
	w->in_len -= n;
	return (ssize_t)n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
			  int flags, void *user)
{
	struct ws_conn *w = user;
	/* the bound of docs/CONVENTIONS.md §3: a peer that does not read is cut off, not
	 * buffered for */
	if (buf_append(&w->out, data, len) < 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

static void ws_frame_start_cb(wslay_event_context_ptr ctx,
			      const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
	struct ws_conn *w = user;
	uint64_t n = arg->payload_length;
	/* §5.2: 2 bytes, the extended length, the 4-byte mask key (clients always mask) */
	w->frame_len = 2 + (n > 65535 ? 8 : n > 125 ? 2 : 0) + 4 + n;
	w->in_close = arg->opcode == WSLAY_CONNECTION_CLOSE;
	w->close_len = 0;
	/* control frames may come between fragments and are no part of the message */
	if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
		w->frames = 1;
	else if (arg->opcode == WSLAY_CONTINUATION_FRAME && ++w->frames > WS_MAX_FRAGMENTS &&
		 !w->too_fragmented) {
		/* wslay takes this frame still (its chunk is made after this callback), then
		 * reads no more; the message is never handed on (ws_msg_cb) */
		static const char why[] = "message in too many fragments";
		w->too_fragmented = 1;
		if (wslay_event_queue_close(ctx, WSLAY_CODE_MESSAGE_TOO_BIG, (const uint8_t *)why,
					    sizeof why - 1) != 0)
			w->failed = 1;
		wslay_event_shutdown_read(ctx);
	}
}

static void ws_frame_chunk_cb(wslay_event_context_ptr ctx,
			      const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user)
{
	struct ws_conn *w = user;
	if (!w->in_close)
		return;
	/* wslay's frame layer refuses a control frame over 125 bytes before any of it comes
	 * here; the bound is kept all the same */
	size_t room = sizeof w->close_pl - w->close_len;
	size_t n = arg->data_length < room ? arg->data_length : room;
	memcpy(w->close_pl + w->close_len, arg->data, n);
	w->close_len += n;
}

/* §5.6: a close reason is UTF-8, in which a NUL is a character (utf8_validate() refuses it
 * for documents, so it is stepped over here) */
static int ws_reason_ok(const uint8_t *s, size_t len)
{
	for (;;) {
		size_t bad = 0;
		enum utf8_status st = utf8_validate((const char *)s, len, NULL, &bad);
		if (st == UTF8_OK)
			return 1;
		if (st != UTF8_NUL)
			return 0;
		s += bad + 1;
		len -= bad + 1;
	}
}

/* Queues a close of ours in answer to the peer's, before wslay's own answer, which then
 * finds a close queued and sends nothing more (it does stop reading). */
static void ws_close_answer(struct ws_conn *w, uint16_t code, const uint8_t *reason, size_t n)
{
	int r = wslay_event_queue_close(w->ctx, code, reason, n);
	/* WSLAY_ERR_NO_MORE_MSG: our own close went first, and the peer's ends the handshake */
	if (r != 0 && r != WSLAY_ERR_NO_MORE_MSG)
		w->failed = 1; /* out of memory: the connection ends */
}

/* The peer's close frame, whole (a control frame is never fragmented, §5.5), before wslay
 * acts on it. wslay 1.1.1 answers it by itself, and right for most, but gets three things
 * wrong, which are answered here instead:
 * - its list of valid codes predates 1012 (Service Restart), 1013 (Try Again Later) and
 *   1014 (Bad Gateway) of the IANA registry (§11.7) and answers them 1002: they are echoed
 *   here with their reason, as wslay echoes a code it knows;
 * - a payload of one byte, which cannot hold a code (§5.5.1), it takes as a close without
 *   one: 1002 (§7.4.1);
 * - it checks the reason's UTF-8 from the third byte of each piece of the frame that
 *   reaches it, not of the frame, so a close frame that came in pieces went partly
 *   unchecked: the reason is checked whole here, 1007 (§8.1) when it is not UTF-8.
 * Everything else (the codes that are not valid, 1004 to 1006, 1015 to 2999 and the rest:
 * 1002) is left to wslay, whose list holds every valid code but these three. */
static void ws_close_recv(struct ws_conn *w)
{
	if (w->close_len == 1) {
		w->close_refused = 1;
		ws_close_answer(w, WSLAY_CODE_PROTOCOL_ERROR, NULL, 0);
		return;
	}
	if (w->close_len < 2)
		return; /* no code: wslay answers with a close without one */
	if (!ws_reason_ok(w->close_pl + 2, w->close_len - 2)) {
		w->close_refused = 1;
		ws_close_answer(w, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA, NULL, 0);
		return;
	}
	uint16_t code = (uint16_t)(w->close_pl[0] << 8 | w->close_pl[1]);
	if (code >= 1012 && code <= 1014) {
		w->peer_code = code;
		ws_close_answer(w, code, w->close_pl + 2, w->close_len - 2);
	}
}

static void ws_frame_end_cb(wslay_event_context_ptr ctx, void *user)
{
	struct ws_conn *w = user;
	w->finished += w->frame_len;
	w->frame_len = 0;
	/* wslay calls this before it acts on the message the frame ends */
	if (w->in_close) {
		w->in_close = 0;
		ws_close_recv(w);
	}
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
		      void *user)
{
	struct ws_conn *w = user;
	if (w->too_fragmented)
		return;
	if (arg->opcode == WSLAY_TEXT_FRAME) {
		if (w->on_text)
			w->on_text(w->arg, (const char *)arg->msg, arg->msg_length);
	} else if (arg->opcode == WSLAY_BINARY_FRAME) {
		/* §7.4.1: 1003, we only take text */
		wslay_event_queue_close(ctx, WSLAY_CODE_UNSUPPORTED_DATA,
					(const uint8_t *)"binary not accepted", 19);
	}
}

struct ws_conn *ws_conn_new(size_t max_msg, size_t out_limit, ws_on_text on_text, void *arg)
{
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = ws_recv_cb,
		.send_callback = ws_send_cb,
		.on_frame_recv_start_callback = ws_frame_start_cb,
		.on_frame_recv_chunk_callback = ws_frame_chunk_cb,
		.on_frame_recv_end_callback = ws_frame_end_cb,
		.on_msg_recv_callback = ws_msg_cb,
	};
	struct ws_conn *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	buf_init(&w->out, out_limit);
	w->on_text = on_text;
	w->arg = arg;
	if (wslay_event_context_server_init(&w->ctx, &cbs, w) != 0) {
		free(w);
		return NULL;
	}
	wslay_event_config_set_max_recv_msg_length(w->ctx, max_msg);
	return w;
}

void ws_conn_free(struct ws_conn *w)
{
	if (!w)
		return;
	wslay_event_context_free(w->ctx);
	buf_free(&w->out);
	free(w);
}

static int ws_flush(struct ws_conn *w)
{
	if (w->failed)
		return -1;
	if (wslay_event_want_write(w->ctx) && wslay_event_send(w->ctx) != 0) {
		w->failed = 1;
		return -1;
	}
	return 0;
}

int ws_conn_feed(struct ws_conn *w, const void *data, size_t len)
{
	if (w->failed)
		return -1;
	w->in = data;
	w->in_len = len;
	w->fed += len;
	int r = wslay_event_recv(w->ctx);
	w->in = NULL;
	/* bytes wslay did not take (reading is off after a close) are not pending frames */
	w->fed -= w->in_len;
	w->in_len = 0;
	if (r != 0) {
		/* A frame wslay's frame layer cannot read (a control frame over 125 bytes or in
		 * fragments, a length not in its shortest form or past 2^63) ends the read with
		 * WSLAY_ERR_CALLBACK_FAILURE, our recv callback failing only with a would-block,
		 * which wslay does not count. wslay queues a close then, but one without a
		 * code, and a failed connection is never flushed again: the peer would see it
		 * drop (1006). It is owed 1002 (§7.1.7, §7.4.1), so the frame is written here,
		 * behind what w->out holds, which is whole frames (the send callback takes all
		 * of a frame or the connection failed before), and the server writes it out
		 * before it closes, as any close. Past the output bound it is left out; the
		 * connection ends either way. */
		static const uint8_t proto_close[4] = {0x88, 0x02, 0x03, 0xea}; /* FIN, close, 1002 */
		if (r == WSLAY_ERR_CALLBACK_FAILURE && !wslay_event_get_close_sent(w->ctx) &&
		    buf_append(&w->out, proto_close, sizeof proto_close) == 0)
			w->own_close = WSLAY_CODE_PROTOCOL_ERROR;
		w->failed = 1;
		return -1;
	}
	return ws_flush(w);
}

void ws_conn_eof(struct ws_conn *w)
{
	if (w->eof)
		return;
	w->eof = 1;
	/* The peer stopped in the middle of a frame: a protocol error (§7.4.1 1002). Its read
	 * side may still be open, so say so before closing. */
	if (w->fed > w->finished && !wslay_event_get_close_sent(w->ctx) &&
	    wslay_event_get_read_enabled(w->ctx))
		ws_conn_close(w, WSLAY_CODE_PROTOCOL_ERROR, "truncated frame");
}

int ws_conn_send_text(struct ws_conn *w, const char *msg, size_t len)
{
	if (w->failed || wslay_event_get_close_sent(w->ctx))
		return -1;
	struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)msg, len};
	if (wslay_event_queue_msg(w->ctx, &m) != 0)
		return -1;
	return ws_flush(w);
}

int ws_conn_ping(struct ws_conn *w)
{
	if (w->failed || wslay_event_get_close_sent(w->ctx))
		return -1;
	struct wslay_event_msg m = {WSLAY_PING, (const uint8_t *)"", 0};
	if (wslay_event_queue_msg(w->ctx, &m) != 0)
		return -1;
	return ws_flush(w);
}

int ws_conn_close(struct ws_conn *w, uint16_t code, const char *reason)
{
	if (w->failed)
		return -1;
	if (!wslay_event_get_close_sent(w->ctx) &&
	    wslay_event_queue_close(w->ctx, code, (const uint8_t *)reason,
				    reason ? strlen(reason) : 0) != 0)
		return -1;
	return ws_flush(w);
}

struct buf *ws_conn_output(struct ws_conn *w)
{
	return &w->out;
}

void ws_conn_output_sent(struct ws_conn *w)
{
	/* one large message grows the buffer to twice its size (buf_reserve doubles); kept, it
	 * would stay with the stream until it closes, on every stream of the room that got it */
	if (w->out.cap > WS_OUT_KEEP)
		buf_free(&w->out);
	else
		buf_reset(&w->out);
}

enum ws_state ws_conn_state(const struct ws_conn *w)
{
	if (w->failed || w->eof)
		return WS_DONE;
	if (wslay_event_get_close_sent(w->ctx)) {
		if (wslay_event_get_close_received(w->ctx) || !wslay_event_get_read_enabled(w->ctx))
			return WS_DONE;
		return WS_CLOSING;
	}
	return WS_OPEN;
}

/* wslay answers 1006 (abnormal closure) before any close frame; ws.h promises 0 then */
uint16_t ws_conn_code_sent(const struct ws_conn *w)
{
	if (w->own_close)
		return w->own_close;
	if (!wslay_event_get_close_sent(w->ctx))
		return 0;
	return wslay_event_get_status_code_sent(w->ctx);
}

uint16_t ws_conn_code_received(const struct ws_conn *w)
{
	/* a close frame refused here is not one received, as one wslay refuses */
	if (w->close_refused)
		return 0;
	if (w->peer_code)
		return w->peer_code;
	if (!wslay_event_get_close_received(w->ctx))
		return 0;
	return wslay_event_get_status_code_received(w->ctx);
}

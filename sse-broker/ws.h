/* ws: the WebSocket side of a client, without sockets (RFC 6455).
 *
 * ws_accept_key() and ws_handshake() do the opening handshake (§4.2.1, §4.2.2); a ws_conn
 * wraps a wslay event context that reads from bytes handed in by ws_conn_feed() and writes
 * frames into its own bounded output buffer, which the server drains to the socket. Frame
 * rules (masking, fragmentation, control frames, close codes) are wslay's; this module adds
 * the limits: a message over max_msg is closed with 1009, an unmasked client frame with 1002,
 * a connection that ends in the middle of a frame with 1002. So is a frame wslay cannot read
 * at all (a control frame over 125 bytes or in fragments, a length not in its shortest
 * form): wslay stops without writing a close, so ws_conn_feed() writes it. wslay itself
 * checks the text of text messages (incrementally, across fragments): not UTF-8 is closed
 * with 1007 before on_text sees it (tests/unit/test_broker_ws.c, test_invalid_utf8). A
 * peer's close frame is echoed, code and reason, by wslay, except where wslay 1.1.1 is
 * wrong, which this module answers itself before wslay does: the codes 1012 to 1014 of the
 * IANA registry, which it does not know (echoed), a payload of one byte (1002) and a reason
 * that is not UTF-8 in a frame that came in pieces (1007) (test_peer_close_codes). */
#ifndef CC_BROKER_WS_H
#define CC_BROKER_WS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http_head.h"

#define WS_ACCEPT_LEN 28

/* Sec-WebSocket-Accept for key (§1.3, §4.2.2 step 5.4): base64(SHA-1(key + GUID)). key must be
 * the base64 of 16 bytes (§4.1). out gets 28 characters and a NUL. 0 or -1. */
int ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1]);

/* Checks an upgrade request (§4.2.1: GET, HTTP/1.1, Upgrade: websocket, Connection: upgrade,
 * Sec-WebSocket-Version: 13, a valid key) and writes the 101 answer into out. 0 or -1 with a
 * short reason in *why; a wrong version gets 426 from the caller with
 * "Sec-WebSocket-Version: 13" (§4.4), flagged by *bad_version. extra: more header lines of
 * the 101 (each ending in CRLF) or NULL. */
int ws_handshake(const struct http_head *h, struct buf *out, const char **why, int *bad_version,
		 const char *extra);

enum ws_state {
	WS_OPEN,
	WS_CLOSING, /* we sent a close frame: flush, wait briefly for the peer's, then close */
	WS_DONE,    /* nothing more to read or write: flush the output and close the socket */
};

struct ws_conn;

/* Called for each complete text message from the peer (borrowed until return). */
typedef void (*ws_on_text)(void *arg, const char *msg, size_t len);

/* The most frames one message may come in (its first and its continuations). wslay keeps
 * each fragment as a chunk of its own, three allocations of about 100 bytes however small the
 * fragment: a message within max_msg sent a byte per frame held a hundred times its size. A
 * message in more frames is refused with 1009 (message too big), and nothing more is read. */
#define WS_MAX_FRAGMENTS 1024

/* Caller frees with ws_conn_free(). NULL on OOM. out_limit bounds the output buffer. */
struct ws_conn *ws_conn_new(size_t max_msg, size_t out_limit, ws_on_text on_text, void *arg);
void ws_conn_free(struct ws_conn *w);

/* Bytes from the peer. Messages are handed to on_text; pongs, close answers and error closes
 * go to the output. 0, or -1 when the connection is beyond saving (close the socket). */
int ws_conn_feed(struct ws_conn *w, const void *data, size_t len);
/* The peer ended its side of the TCP connection. */
void ws_conn_eof(struct ws_conn *w);
/* Queues a text message / a ping / a close (code, reason). -1 when closing or over the
 * output bound. */
int ws_conn_send_text(struct ws_conn *w, const char *msg, size_t len);
int ws_conn_ping(struct ws_conn *w);
int ws_conn_close(struct ws_conn *w, uint16_t code, const char *reason);

/* The most the output buffer keeps of its memory between writes: a buffer grown past it
 * (a large message) is freed once its bytes are handed on, so an idle stream holds little. */
#define WS_OUT_KEEP ((size_t)64 * 1024)

/* The bytes waiting to be written: the caller hands them on, then calls
 * ws_conn_output_sent(). */
struct buf *ws_conn_output(struct ws_conn *w);
/* The output was handed on: empties it, and frees its memory when it grew past WS_OUT_KEEP. */
void ws_conn_output_sent(struct ws_conn *w);
enum ws_state ws_conn_state(const struct ws_conn *w);
/* The close code we sent (0 if none yet), and the one we got (0 if none). */
uint16_t ws_conn_code_sent(const struct ws_conn *w);
uint16_t ws_conn_code_received(const struct ws_conn *w);

#endif

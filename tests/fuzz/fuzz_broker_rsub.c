/* fuzz_broker_rsub: libFuzzer target for the broker's sharded pub/sub reader
 * (sse-broker/rsub.h; README.md; `make fuzz`). The input is what a Redis server sends on a
 * subscription connection, fed in pieces whose sizes come from the input's first byte, with a
 * few commands recorded as pending. Laws: no crash or leak; a message handed out names a
 * channel and fits the bounds; once the stream is refused it says why; the commands answered
 * never outnumber the commands sent. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../sse-broker/rsub.h"

struct count {
	size_t answers;
};

static int seen(void *arg, const struct rsub_event *ev)
{
	struct count *c = arg;
	if (ev->kind == RSUB_MESSAGE && (!ev->channel || !ev->data || ev->len > RSUB_INPUT_MAX))
		__builtin_trap();
	if (ev->cmd != RSUB_CMD_NONE)
		c->answers++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct rsub_proto p;
	if (rsub_proto_init(&p) < 0)
		return 0;
	size_t step = (size_t)data[0] % 17 + 1;
	const size_t sent = 4;
	rsub_proto_sent(&p, RSUB_CMD_AUTH, NULL);
	rsub_proto_sent(&p, RSUB_CMD_SSUB, "cc:room:{a}");
	rsub_proto_sent(&p, RSUB_CMD_PING, NULL);
	rsub_proto_sent(&p, RSUB_CMD_SUNSUB, "cc:room:{a}");
	struct count c = {0};
	for (size_t at = 1; at < size; at += step) {
		size_t n = size - at < step ? size - at : step;
		if (rsub_proto_feed(&p, (const char *)data + at, n, seen, &c) < 0) {
			if (!p.err[0])
				__builtin_trap();
			break;
		}
	}
	if (c.answers > sent || p.npending + c.answers != sent)
		__builtin_trap();
	rsub_proto_clear(&p);
	return 0;
}

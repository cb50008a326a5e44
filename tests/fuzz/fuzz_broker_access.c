/* fuzz_broker_access: libFuzzer target for the broker's reader of the access channel
 * (rights_access_message, sse-broker/rights.c; README.md; `make fuzz`). cc:access carries
 * {"user":<id>} and {"room":"<id>"} from the API and scripts/redis-resync-access.sh, read
 * from Redis, which anyone with a connection to it can publish on. Laws: no crash or leak;
 * an accepted message names exactly one of a user (a positive integer a double holds
 * exactly) or a room (an id lib/id.c accepts, present in the text as written); a refused one
 * leaves nothing behind in the result. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../lib/id.h"
#include "../../sse-broker/rights.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rights_access a;
	memset(&a, 0x5a, sizeof a); /* what the call does not set shows */
	int rc = rights_access_message((const char *)data, size, &a);
	if (rc < 0) {
		CHECK(a.user_id == 0 && a.room[0] == '\0');
		return 0;
	}
	CHECK(rc == 0);
	size_t n = strnlen(a.room, sizeof a.room);
	CHECK(n < sizeof a.room);
	if (a.user_id != 0) {
		CHECK(a.user_id >= 1 && a.user_id <= 9007199254740991LL);
		CHECK(n == 0);
		return 0;
	}
	CHECK(n > 0 && id_valid(a.room, n));
	/* no escape was undone: the id stands in the message, quoted, byte for byte */
	CHECK(size >= n + 2);
	int found = 0;
	for (size_t i = 0; i + n + 2 <= size && !found; i++)
		found = data[i] == '"' && memcmp(data + i + 1, a.room, n) == 0 && data[i + n + 1] == '"';
	CHECK(found);
	return 0;
}

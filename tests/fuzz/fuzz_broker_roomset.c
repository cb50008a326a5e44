/* fuzz_broker_roomset: libFuzzer target for the multi-room stream's room list
 * (sse-broker/roomset.h; README.md; `make fuzz`). The input is a query string. Laws: an
 * accepted list holds 1..ROOMSET_MAX valid, distinct room ids; a refused one holds none and
 * says why. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../sse-broker/http_head.h"
#include "../../sse-broker/roomset.h"
#include "fuzz.h"
#include "id.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > HTTP_HEAD_MAX)
		return 0; /* the broker never hands in more than a head */
	char *q = fuzz_str(data, size);
	if (!q)
		return 0;
	struct roomset rs;
	char err[256] = "";
	enum roomset_status st = roomset_parse(q, &rs, err, sizeof err);
	if (st == ROOMSET_OK) {
		if (rs.n == 0 || rs.n > ROOMSET_MAX)
			__builtin_trap();
		for (size_t i = 0; i < rs.n; i++) {
			if (!id_valid(rs.v[i].id, strlen(rs.v[i].id)))
				__builtin_trap();
			if (roomset_find(&rs, rs.v[i].id) != (int)i)
				__builtin_trap();
		}
	} else if (rs.n != 0 || err[0] == '\0') {
		__builtin_trap();
	}
	free(q);
	return 0;
}

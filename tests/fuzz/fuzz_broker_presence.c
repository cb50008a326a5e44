/* fuzz_broker_presence: libFuzzer target for the text a client sends up its WebSocket, the
 * presence message (presence_msg_parse, lib/presence.c; README.md; `make fuzz`). Every text
 * message that passes the frame layer (fuzz_broker_ws) reaches it.
 *
 * Laws (a break aborts): a message taken is strict JSON (jsoncheck_text passes it); its
 * cursor, anchor and head are within 0..PRESENCE_CURSOR_MAX, anchor and head 0 without a
 * selection; its room fits PRESENCE_ROOM_MAX; the presence event built from it is JSON that
 * carries the same cursor and selection back. A message refused leaves everything zero. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsoncheck.h"
#include "presence.h"

static int in_range(long long v)
{
	return v >= 0 && v <= PRESENCE_CURSOR_MAX;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct presence_msg m;
	memset(&m, 0x5a, sizeof m);
	if (!presence_msg_parse((const char *)data, size, &m)) {
		if (m.cursor || m.has_selection || m.anchor || m.head || m.room[0])
			__builtin_trap();
		return 0;
	}
	if (jsoncheck_text((const char *)data, size, NULL) != JSONCHECK_OK)
		__builtin_trap();
	if (!in_range(m.cursor) || !in_range(m.anchor) || !in_range(m.head) ||
	    (m.has_selection != 0 && m.has_selection != 1) ||
	    (!m.has_selection && (m.anchor || m.head)) ||
	    strnlen(m.room, sizeof m.room) > PRESENCE_ROOM_MAX)
		__builtin_trap();
	char *ev = presence_data_json(7, "fuzz", m.cursor, m.has_selection, m.anchor, m.head);
	if (!ev)
		return 0;
	cJSON *o = cJSON_Parse(ev);
	const cJSON *cur = cJSON_GetObjectItemCaseSensitive(o, "cursor");
	const cJSON *sel = cJSON_GetObjectItemCaseSensitive(o, "selection");
	if (!cJSON_IsNumber(cur) || (long long)cur->valuedouble != m.cursor)
		__builtin_trap();
	if (m.has_selection) {
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(sel, "anchor");
		const cJSON *h = cJSON_GetObjectItemCaseSensitive(sel, "head");
		if (!cJSON_IsNumber(a) || !cJSON_IsNumber(h) || (long long)a->valuedouble != m.anchor ||
		    (long long)h->valuedouble != m.head)
			__builtin_trap();
	} else if (!cJSON_IsNull(sel)) {
		__builtin_trap();
	}
	cJSON_Delete(o);
	free(ev);
	return 0;
}

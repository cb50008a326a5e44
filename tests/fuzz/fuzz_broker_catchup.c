/* fuzz_broker_catchup: libFuzzer target for what the broker reads from a catch-up page
 * (README.md; `make fuzz`): the history's entries (room_event_from_entry) and the ids the
 * page names (room_entry_id), sse-broker/room.c. Our scripts write the history, but its data
 * comes from clients, and Redis hands back whatever the stream holds: fields missing,
 * repeated, of another type, with NULs inside, far longer than we would write.
 *
 * Byte 0 chooses; the rest is a reply built from the bytes (fuzz_reply.h): even, an entry
 * [id, [field, value, ...]]; odd, a list holding an id.
 *
 * Laws (a break aborts): an entry gives an event exactly when its first element is a string
 * that is an event id whole (no NUL inside, which would make it a shorter one); the event's id
 * is that string byte for byte; it is the entry's own event, its type and data exactly the
 * values of the entry's last `type` and `data` fields (names matched whole), or, only when
 * that event cannot be built, a `malformed_event` resync; its SSE form starts with its id. An
 * id list is read exactly when its first element is such a string, to the id that string
 * parses to; a refused one leaves 0-0. */
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../sse-broker/room.h"
#include "fuzz.h"
#include "fuzz_reply.h"

static const char malformed[] = "{\"reason\":\"malformed_event\"}";

/* Whether r is a string reply that reads whole as an event id (as room_event_new takes it). */
static int id_string(const redisReply *r, struct room_evid *id)
{
	return r->type == REDIS_REPLY_STRING && strlen(r->str) == r->len && r->len < ROOM_EVID_MAX &&
	       room_evid_parse(r->str, id) == 0;
}

static int is_name(const redisReply *r, const char *lit)
{
	return r->type == REDIS_REPLY_STRING && r->len == strlen(lit) && !memcmp(r->str, lit, r->len);
}

static int same_bytes(const redisReply *r, const char *s, size_t n)
{
	return r && r->type == REDIS_REPLY_STRING && r->len == n && !memcmp(r->str, s, n);
}

static void check_entry(const redisReply *e)
{
	struct room_evid id;
	int readable = e->type == REDIS_REPLY_ARRAY && e->elements >= 1 && id_string(e->element[0], &id);
	struct room_event *ev = room_event_from_entry(e);
	CHECK(!!ev == readable);
	if (!ev)
		return;
	CHECK(same_bytes(e->element[0], ev->idstr, strlen(ev->idstr)));
	CHECK(room_evid_cmp(ev->id, id) == 0);
	CHECK(ev->sse_len > 4 + strlen(ev->idstr) && !memcmp(ev->sse, "id: ", 4) &&
	      !memcmp(ev->sse + 4, ev->idstr, strlen(ev->idstr)) && ev->sse[4 + strlen(ev->idstr)] == '\n');

	/* the entry's last type and data, read the way a reader of the stream would */
	const redisReply *type = NULL, *data = NULL;
	const redisReply *f = e->elements == 2 ? e->element[1] : NULL;
	for (size_t i = 0; f && f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
		if (is_name(f->element[i], "type"))
			type = f->element[i + 1];
		else if (is_name(f->element[i], "data"))
			data = f->element[i + 1];
	}
	int own = same_bytes(type, ev->type, strlen(ev->type)) &&
		  same_bytes(data, ev->data, ev->data_len);
	if (!own) {
		/* a resync in its place, only for an entry whose event cannot be built */
		CHECK(!strcmp(ev->type, "resync") && ev->data_len == sizeof malformed - 1 &&
		      !memcmp(ev->data, malformed, ev->data_len));
		if (type && data && type->type == REDIS_REPLY_STRING &&
		    strlen(type->str) == type->len && data->type == REDIS_REPLY_STRING) {
			struct room_event *could = room_event_new(ev->idstr, type->str, data->str, data->len);
			CHECK(!could);
		}
	}
	room_event_release(ev);
}

static void check_id_list(const redisReply *list)
{
	struct room_evid want, got = {7, 7};
	int readable = list->type == REDIS_REPLY_ARRAY && list->elements >= 1 &&
		       id_string(list->element[0], &want);
	int rc = room_entry_id(list, &got);
	CHECK(rc == 0 || rc == -1);
	CHECK((rc == 0) == readable);
	if (rc == 0)
		CHECK(room_evid_cmp(got, want) == 0);
	else
		CHECK(room_evid_is_zero(got));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct input in = {data + 1, size - 1};
	redisReply *x = build(&in, 3);
	if (data[0] % 2 == 0)
		check_entry(x);
	else
		check_id_list(x);
	freeReplyObject(x);
	return 0;
}

/* lib/presence: stable colours, the event data shapes, and the presence message a client
 * sends up its WebSocket; the budget's script arguments and answers (lib/events.h). */
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "presence.h"
#include "unit.h"

static int parse(const char *s, struct presence_msg *m)
{
	return presence_msg_parse(s, strlen(s), m);
}

static void test_msg(void)
{
	struct presence_msg m;
	CHECK(parse("{\"type\":\"presence\",\"cursor\":12}", &m) == 1);
	CHECK(m.cursor == 12 && !m.has_selection && m.room[0] == '\0');
	CHECK(parse("{\"type\":\"presence\",\"cursor\":2.9,\"room\":\"r1\","
		    "\"selection\":{\"anchor\":1,\"head\":4}}",
		    &m) == 1);
	CHECK(m.cursor == 2 && m.has_selection && m.anchor == 1 && m.head == 4);
	CHECK_STR(m.room, "r1");
	/* a selection that is not an object is no selection, like before */
	CHECK(parse("{\"type\":\"presence\",\"cursor\":0,\"selection\":null}", &m) == 1);
	CHECK(!m.has_selection);
	/* the largest position is taken, one past it is not */
	CHECK(parse("{\"type\":\"presence\",\"cursor\":1099511627776}", &m) == 1);
	CHECK(m.cursor == PRESENCE_CURSOR_MAX);
	CHECK(parse("{\"type\":\"presence\",\"cursor\":1099511627777}", &m) == 0);
	/* a room name no stream can hold reads as none */
	char big[200];
	snprintf(big, sizeof big, "{\"type\":\"presence\",\"cursor\":1,\"room\":\"%065d\"}", 0);
	CHECK(parse(big, &m) == 1 && m.room[0] == '\0');
	const char *bad[] = {
		"",
		"{",
		"[]",
		"null",
		"{\"type\":\"presence\"}",
		"{\"type\":\"chat\",\"cursor\":1}",
		"{\"type\":\"presence\",\"cursor\":-1}",
		"{\"type\":\"presence\",\"cursor\":\"1\"}",
		"{\"type\":\"presence\",\"cursor\":1e400}",
		"{\"type\":\"presence\",\"cursor\":1,\"selection\":{\"anchor\":1}}",
		"{\"type\":\"presence\",\"cursor\":1,\"selection\":{\"anchor\":-2,\"head\":1}}",
		/* strict JSON: a duplicate name, a leading zero, a raw control byte */
		"{\"type\":\"presence\",\"cursor\":1,\"cursor\":2}",
		"{\"type\":\"presence\",\"cursor\":01}",
		"{\"type\":\"presence\",\"cursor\":1,\"room\":\"a\tb\"}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		m.cursor = 99;
		CHECK(parse(bad[i], &m) == 0);
		CHECK(m.cursor == 0 && !m.has_selection && m.room[0] == '\0');
	}
	/* not NUL-terminated: only len bytes are read */
	const char *t = "{\"type\":\"presence\",\"cursor\":7}garbage";
	CHECK(presence_msg_parse(t, strlen(t) - 7, &m) == 1 && m.cursor == 7);
}

/* The budget per user per room: the script's keys in the room's slot, and its answers read
 * as sent, limited (with the window's rest, bounded) or failed. */
static void test_budget(void)
{
	struct events_presence_args a;
	CHECK(events_presence_args(&a, "r1", 42, "{}", 20) == 0);
	CHECK_STR(a.argv[0], "cc:room:{r1}:events");
	CHECK_STR(a.argv[1], "cc:room:{r1}:presence:rl:42");
	CHECK_STR(a.argv[2], "cc:room:{r1}:deleted");
	CHECK_STR(a.argv[3], "{}");
	CHECK_STR(a.argv[4], "1000 16777216");
	CHECK_STR(a.argv[5], "20");
	CHECK_STR(a.argv[6], "1000");
	char big[RKEY_MAX + 1];
	memset(big, 'r', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	CHECK(events_presence_args(&a, big, 42, "{}", 20) == -1);

	redisReply flag = {.type = REDIS_REPLY_INTEGER, .integer = 1};
	char id[] = "1-0", tryagain[] = "TRYAGAIN";
	redisReply val = {.type = REDIS_REPLY_STRING, .str = id, .len = 3};
	redisReply *els[] = {&flag, &val};
	redisReply rep = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = els};
	long retry = -1;
	CHECK(events_presence_reply(&rep, &retry) == EVENTS_PRESENCE_SENT && retry == 0);
	flag.integer = 0;
	val = (redisReply){.type = REDIS_REPLY_INTEGER, .integer = 640};
	CHECK(events_presence_reply(&rep, &retry) == EVENTS_PRESENCE_LIMITED && retry == 640);
	/* the rest of a window is at least 1 ms and at most the window */
	val.integer = 0;
	CHECK(events_presence_reply(&rep, &retry) == EVENTS_PRESENCE_LIMITED && retry == 1);
	val.integer = 99999;
	CHECK(events_presence_reply(&rep, &retry) == EVENTS_PRESENCE_LIMITED &&
	      retry == PRESENCE_RATE_WINDOW_MS);
	/* the room was deleted: nothing written, and not a failure of Redis */
	flag.integer = 2;
	val.integer = 0;
	CHECK(events_presence_reply(&rep, &retry) == EVENTS_PRESENCE_GONE);
	/* anything else is a failure, never a silent success */
	flag.integer = 1; /* sent, but no event id */
	CHECK(events_presence_reply(&rep, &retry) == EVENTS_PRESENCE_ERROR);
	rep.elements = 1;
	CHECK(events_presence_reply(&rep, &retry) == EVENTS_PRESENCE_ERROR);
	redisReply err = {.type = REDIS_REPLY_ERROR, .str = tryagain, .len = 8};
	CHECK(events_presence_reply(&err, &retry) == EVENTS_PRESENCE_ERROR);
	CHECK(events_presence_reply(NULL, &retry) == EVENTS_PRESENCE_ERROR);
}

int main(void)
{
	test_msg();
	test_budget();
	CHECK_STR(presence_color(42), presence_color(42));
	CHECK(strlen(presence_color(1)) == 7 && presence_color(1)[0] == '#');
	int distinct = 0;
	for (long long i = 1; i < 12; i++)
		distinct += strcmp(presence_color(i), presence_color(i + 1)) != 0;
	CHECK(distinct >= 8);
	char *s = presence_data_json(7, "bo\"b", 12, 1, 3, 5);
	char want[256];
	snprintf(want, sizeof want,
		 "{\"user\":{\"id\":7,\"username\":\"bo\\\"b\"},\"cursor\":12,"
		 "\"selection\":{\"anchor\":3,\"head\":5},\"color\":\"%s\"}",
		 presence_color(7));
	CHECK_STR(s, want);
	free(s);
	s = presence_data_json(7, "b", 0, 0, 0, 0);
	CHECK(s && strstr(s, "\"selection\":null") != NULL);
	free(s);
	return unit_summary("test_presence");
}

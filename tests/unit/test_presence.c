/* lib/presence: stable colours, the event data shapes, and the presence message a client
 * sends up its WebSocket. */
#include <stdlib.h>

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

int main(void)
{
	test_msg();
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

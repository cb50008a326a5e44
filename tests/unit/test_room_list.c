/* The `before` cursor of GET /api/rooms (rooms_parse_before, fcgi/h_rooms.c): outside input,
 * taken only in the form a page's `next` has, "<created_us>.<room id>". */
#include "../../fcgi/handlers.h"
#include "unit.h"

#include <string.h>

static int taken(const char *cursor, long long want_us, const char *want_id)
{
	long long us = -7;
	const char *id = NULL;
	if (rooms_parse_before(cursor, &us, &id) < 0)
		return 0;
	return us == want_us && id && strcmp(id, want_id) == 0;
}

static int refused(const char *cursor)
{
	long long us = -7;
	const char *id = NULL;
	return rooms_parse_before(cursor, &us, &id) < 0 && us == -7 && id == NULL;
}

int main(void)
{
	CHECK(taken("1764480000000000.r_AbC-9", 1764480000000000LL, "r_AbC-9"));
	CHECK(taken("0.x", 0, "x"));
	CHECK(refused(""));
	CHECK(refused("1764480000000000"));  /* no id */
	CHECK(refused("1764480000000000.")); /* an empty id */
	CHECK(refused("1.a.b"));             /* a second dot */
	CHECK(refused("abc.x"));
	CHECK(refused("99999999999999999999.x")); /* past any time */
	/* a page writes the time as plain digits: no missing digits, sign or leading zeros */
	CHECK(refused(".x"));
	CHECK(refused("-0.x"));
	CHECK(refused("-5.x"));
	CHECK(refused("007.x"));
	CHECK(refused(" 7.x"));
	return unit_summary("room_list");
}

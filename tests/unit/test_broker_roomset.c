/* The multi-room stream's room list (sse-broker/roomset.h): what it takes, and malformed,
 * oversized and hostile lists refused with a reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../sse-broker/http_head.h"
#include "../../sse-broker/roomset.h"
#include "unit.h"

static struct roomset rs;
static char err[256];

static enum roomset_status parse(const char *q)
{
	err[0] = '\0';
	return roomset_parse(q, &rs, err, sizeof err);
}

static void test_valid(void)
{
	CHECK(parse("rooms=abc") == ROOMSET_OK);
	CHECK(rs.n == 1);
	CHECK_STR(rs.v[0].id, "abc");
	CHECK(!rs.v[0].has_start);

	CHECK(parse("x=1&rooms=a1:1700-3,B_2,c-3:42&y=2") == ROOMSET_OK);
	CHECK(rs.n == 3);
	CHECK_STR(rs.v[0].id, "a1");
	CHECK(rs.v[0].has_start && rs.v[0].start.ms == 1700 && rs.v[0].start.seq == 3);
	CHECK_STR(rs.v[1].id, "B_2");
	CHECK(!rs.v[1].has_start);
	CHECK_STR(rs.v[2].id, "c-3");
	CHECK(rs.v[2].has_start && rs.v[2].start.ms == 42 && rs.v[2].start.seq == 0);
	CHECK(roomset_find(&rs, "c-3") == 2);
	CHECK(roomset_find(&rs, "c") == -1);

	/* an entry without an id leaves no byte of its start to chance: the set is the caller's
	 * uninitialised stack in the broker, and a room dropped at the opening once told the
	 * client those bytes as its id */
	memset(&rs, 0xa5, sizeof rs);
	CHECK(parse("rooms=a1:1700-3,B_2") == ROOMSET_OK);
	CHECK(rs.n == 2 && !rs.v[1].has_start);
	CHECK(rs.v[1].start.ms == 0 && rs.v[1].start.seq == 0);

	/* what a browser's URLSearchParams makes of it: the comma and colon escaped */
	CHECK(parse("rooms=a%3A1-1%2Cb") == ROOMSET_OK);
	CHECK(rs.n == 2 && rs.v[0].has_start && rs.v[0].start.seq == 1);
	/* the parameter's name escaped, as http_query_get takes it */
	CHECK(parse("r%6Foms=a") == ROOMSET_OK);

	/* the largest list: ROOMSET_MAX rooms of the longest ids with the longest event ids */
	char q[HTTP_HEAD_MAX];
	size_t at = (size_t)snprintf(q, sizeof q, "rooms=");
	for (int i = 0; i < ROOMSET_MAX; i++) {
		char id[ROOM_ID_MAX + 1];
		memset(id, 'a', ROOM_ID_MAX);
		snprintf(id, sizeof id - 0, "%02d", i);
		memset(id + 2, 'a', ROOM_ID_MAX - 2);
		id[ROOM_ID_MAX] = '\0';
		at += (size_t)snprintf(q + at, sizeof q - at, "%s%s:18446744073709551615-18446744073709551615",
				       i ? "," : "", id);
	}
	CHECK(parse(q) == ROOMSET_OK);
	CHECK(rs.n == ROOMSET_MAX);
	CHECK(rs.v[ROOMSET_MAX - 1].start.ms == UINT64_MAX);
}

static void test_refused(void)
{
	CHECK(parse("") == ROOMSET_MISSING);
	CHECK(strstr(err, "rooms=") != NULL);
	CHECK(parse("ticket=x") == ROOMSET_MISSING);
	CHECK(parse("rooms=") == ROOMSET_MISSING);
	CHECK(parse("rooms") == ROOMSET_MISSING);

	CHECK(parse("rooms=a&rooms=b") == ROOMSET_REPEATED);
	CHECK(parse("rooms=a&r%6Foms=a") == ROOMSET_REPEATED);

	CHECK(parse("rooms=a,a") == ROOMSET_DUPLICATE);
	CHECK(strstr(err, "room a is named twice") != NULL);
	CHECK(parse("rooms=a:1-0,b,a:2-0") == ROOMSET_DUPLICATE);
	CHECK(rs.n == 0);

	static const char *bad[] = {
		"rooms=a,,b", "rooms=a,", "rooms=,a", "rooms=a:", "rooms=:1-0", "rooms=a:1-0:2",
		"rooms=a:x", "rooms=a:1-", "rooms=a:-1", "rooms=a:1-2-3", "rooms=a:99999999999999999999",
		"rooms=a%2Fb", "rooms=a b", "rooms=a+b", "rooms=%00", "rooms=a%", "rooms=a%zz",
		"rooms=a;b", "rooms=caf%C3%A9", "rooms=a:1%000",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		enum roomset_status st = parse(bad[i]);
		CHECK(st == ROOMSET_MALFORMED);
		if (st != ROOMSET_MALFORMED)
			fprintf(stderr, "  for %s\n", bad[i]);
		CHECK(err[0] != '\0');
		CHECK(rs.n == 0);
	}
	/* a room id one over the bound */
	char q[256];
	snprintf(q, sizeof q, "rooms=%065d", 0);
	CHECK(parse(q) == ROOMSET_MALFORMED);
	/* the message echoes at most a bounded part of what was sent */
	CHECK(strlen(err) < 160);
}

static void test_too_many(void)
{
	char q[HTTP_HEAD_MAX + 64];
	size_t at = (size_t)snprintf(q, sizeof q, "rooms=");
	for (int i = 0; i <= ROOMSET_MAX; i++)
		at += (size_t)snprintf(q + at, sizeof q - at, "%sr%d", i ? "," : "", i);
	CHECK(parse(q) == ROOMSET_TOO_MANY);
	CHECK(strstr(err, "at most 16") != NULL);
	/* a huge list of commas: refused by its count, not read */
	at = (size_t)snprintf(q, sizeof q, "rooms=");
	memset(q + at, ',', HTTP_HEAD_MAX - at - 1);
	q[HTTP_HEAD_MAX - 1] = '\0';
	CHECK(parse(q) == ROOMSET_TOO_MANY);
	/* one long value, or a few: a malformed room id (docs/API.md: invalid_request), not
	 * more than 16 rooms (too_many_rooms) */
	memset(q + at, 'a', HTTP_HEAD_MAX - at - 1);
	CHECK(parse(q) == ROOMSET_MALFORMED);
	CHECK(strstr(err, "too many rooms") == NULL);
	q[at + 100] = ',';
	q[at + 2000] = ',';
	CHECK(parse(q) == ROOMSET_MALFORMED);
	/* just past the longest list of ROOMSET_MAX entries, by one event id a byte too long */
	at = (size_t)snprintf(q, sizeof q, "rooms=");
	for (int i = 0; i < ROOMSET_MAX; i++) {
		at += (size_t)snprintf(q + at, sizeof q - at, "%s", i ? "," : "");
		memset(q + at, 'a', ROOM_ID_MAX);
		at += ROOM_ID_MAX;
		at += (size_t)snprintf(q + at, sizeof q - at, ":%s",
				       i ? "1-1" : "18446744073709551615-184467440737095516150");
	}
	CHECK(parse(q) == ROOMSET_MALFORMED);
	/* longer than any head the broker reads: still refused, never overrun */
	char *big = malloc(5 * HTTP_HEAD_MAX);
	CHECK(big != NULL);
	if (big) {
		memcpy(big, "rooms=", 6);
		memset(big + 6, 'a', 5 * HTTP_HEAD_MAX - 7);
		big[5 * HTTP_HEAD_MAX - 1] = '\0';
		CHECK(parse(big) != ROOMSET_OK);
		free(big);
	}
}

static void test_query_count(void)
{
	CHECK(http_query_count("", "rooms") == 0);
	CHECK(http_query_count("rooms=a&x=1&rooms&rooms=", "rooms") == 3);
	CHECK(http_query_count("roomsx=a&xrooms=b", "rooms") == 0);
	CHECK(http_query_count("&&rooms=a&&", "rooms") == 1);
}

int main(void)
{
	test_valid();
	test_refused();
	test_too_many();
	test_query_count();
	return unit_summary("test_broker_roomset");
}

/* Event ids, events, the replay/dedup cursor and long-poll answers. */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "../../sse-broker/longpoll.h"
#include "../../sse-broker/room.h"
#include "unit.h"

static struct room_event *ev(const char *id)
{
	return room_event_new(id, "operation", "{\"n\":1}", 7);
}

struct sink {
	char got[16][ROOM_EVID_MAX];
	int n;
	int fail_at;
};

static int collect(void *arg, struct room_event *e)
{
	struct sink *s = arg;
	if (s->n == s->fail_at)
		return -1;
	snprintf(s->got[s->n++], ROOM_EVID_MAX, "%s", e->idstr);
	return 0;
}

static void test_ids(void)
{
	struct room_evid a, b;
	char s[ROOM_EVID_MAX];
	CHECK(room_evid_parse("1700000000000-5", &a) == 0);
	CHECK(a.ms == 1700000000000ULL && a.seq == 5);
	CHECK(room_evid_parse("42", &b) == 0 && b.ms == 42 && b.seq == 0);
	CHECK(room_evid_parse("", &b) == -1);
	CHECK(room_evid_parse("1-", &b) == -1);
	CHECK(room_evid_parse("-1", &b) == -1);
	CHECK(room_evid_parse("1-2-3", &b) == -1);
	CHECK(room_evid_parse("x-1", &b) == -1);
	CHECK(room_evid_parse("99999999999999999999-0", &b) == -1);
	CHECK(room_evid_parse("18446744073709551615-18446744073709551615", &b) == 0);
	CHECK(room_evid_parse("1-2", &a) == 0 && room_evid_parse("1-10", &b) == 0);
	CHECK(room_evid_cmp(a, b) < 0 && room_evid_cmp(b, a) > 0 && room_evid_cmp(a, a) == 0);
	room_evid_format(room_evid_next(a), s);
	CHECK_STR(s, "1-3");
	struct room_evid top = {5, UINT64_MAX};
	room_evid_format(room_evid_next(top), s);
	CHECK_STR(s, "6-0");
	/* the largest id stays the largest: wrapping to 0-0 would replay a room from its start */
	struct room_evid max = {UINT64_MAX, UINT64_MAX};
	room_evid_format(room_evid_next(max), s);
	CHECK_STR(s, "18446744073709551615-18446744073709551615");
}

static void test_events(void)
{
	struct room_event *e = room_event_new("5-1", "operation", "{\"a\":\"x\\ny\"}", 12);
	CHECK(e != NULL);
	CHECK_STR(e->json, "{\"type\":\"operation\",\"id\":\"5-1\",\"data\":{\"a\":\"x\\ny\"}}");
	CHECK_STR(e->sse, "id: 5-1\nevent: operation\ndata: {\"a\":\"x\\ny\"}\n\n");
	room_event_release(e);
	CHECK(room_event_new("5-1", "Bad Type", "{}", 2) == NULL);
	CHECK(room_event_new("nope", "operation", "{}", 2) == NULL);

	const char msg[] = "{\"type\":\"join\",\"id\":\"7-0\",\"data\":{\"user\":{\"id\":1}}}";
	e = room_event_from_message(msg, sizeof msg - 1);
	CHECK(e != NULL);
	if (e) {
		CHECK_STR(e->type, "join");
		CHECK_STR(e->idstr, "7-0");
		CHECK_STR(e->data, "{\"user\":{\"id\":1}}");
		CHECK_STR(e->json, msg);
		room_event_release(e);
	}
	CHECK(room_event_from_message("{\"type\":\"join\"}", 15) == NULL);

	/* room events the broker acts on */
	static const struct {
		const char *type, *data;
		enum room_ctl ctl;
	} ctl[] = {
		{"room", "{\"reason\":\"members\"}", ROOM_CTL_RIGHTS},
		{"room", "{\"reason\":\"deleted\",\"id\":\"r1\"}", ROOM_CTL_DELETED},
		/* the visibility may have changed, or the invite: rights are asked again */
		{"room", "{\"reason\":\"updated\",\"room\":{}}", ROOM_CTL_RIGHTS},
		{"room", "{\"reason\":\"invite\"}", ROOM_CTL_RIGHTS},
		{"room", "{\"reason\":\"access\"}", ROOM_CTL_RIGHTS},
		{"room", "{\"reason\":\"renamed\"}", ROOM_CTL_NONE},
		{"room", "{\"reason\":1}", ROOM_CTL_NONE},
		{"room", "[1]", ROOM_CTL_NONE},
		{"operation", "{\"reason\":\"deleted\"}", ROOM_CTL_NONE},
	};
	for (size_t i = 0; i < sizeof ctl / sizeof ctl[0]; i++) {
		e = room_event_new("9-0", ctl[i].type, ctl[i].data, strlen(ctl[i].data));
		CHECK(e != NULL && e->ctl == ctl[i].ctl);
		room_event_release(e);
	}
	CHECK(room_event_from_message("", 0) == NULL);
	CHECK(room_event_from_message("{\"type\":\"join\",\"id\":\"7-0\",\"data\":}", 33) == NULL);
}

/* Events up to EVENTS_DATA_MAX are taken (a 2 MiB data of "\u0001" escapes is valid JSON);
 * beyond, the message is refused but its id still names where a resync goes. */
static void test_big_events(void)
{
	size_t n = ROOM_DATA_MAX;
	char *data = malloc(n + 64);
	char *msg = malloc(n + 128);
	CHECK(data && msg);
	if (!data || !msg)
		goto out;
	/* {"ops":["\u0001\u0001…"]} exactly n bytes */
	size_t k = 0;
	k += (size_t)sprintf(data, "{\"ops\":[\"");
	while (k + 6 + 3 <= n) {
		memcpy(data + k, "\\u0001", 6);
		k += 6;
	}
	while (k + 3 < n)
		data[k++] = 'a';
	memcpy(data + k, "\"]}", 3);
	k += 3;
	CHECK(k == n);
	int m = sprintf(msg, "{\"type\":\"operation\",\"id\":\"5-1\",\"data\":");
	memcpy(msg + m, data, n);
	msg[m + (int)n] = '}';
	struct room_event *e = room_event_from_message(msg, (size_t)m + n + 1);
	CHECK(e != NULL && e->data_len == n && e->json_len <= ROOM_JSON_MAX &&
	      e->sse_len <= ROOM_SSE_MAX);
	room_event_release(e);

	/* one byte more is over every emitter's bound: refused, and resynced by its id */
	char *big = malloc(n + 192);
	CHECK(big != NULL);
	if (big) {
		int b = sprintf(big, "{\"type\":\"operation\",\"id\":\"5-2\",\"data\":{\"x\":\"");
		memset(big + b, 'a', n);
		memcpy(big + b + n, "\"}}", 3);
		CHECK(room_event_from_message(big, (size_t)b + n + 3) == NULL);
		char id[ROOM_EVID_MAX];
		CHECK(room_message_id(big, (size_t)b + n + 3, id) == 0);
		CHECK_STR(id, "5-2");
		free(big);
	}
	char id[ROOM_EVID_MAX];
	CHECK(room_message_id("{\"type\":\"x\"}", 12, id) == -1);
	CHECK(room_message_id("{\"type\":\"x\",\"id\":\"nope\"", 26, id) == -1);

	struct room_event *r = room_event_resync("5-2", "event_too_large");
	CHECK(r != NULL && strcmp(r->type, "resync") == 0 && strcmp(r->idstr, "5-2") == 0);
	CHECK(r && strcmp(r->data, "{\"reason\":\"event_too_large\"}") == 0);
	room_event_release(r);

	/* a long-poll answer carries the big event whole, and a resync for what is over its
	 * own bound (never nothing) */
	struct longpoll lp;
	longpoll_init(&lp);
	e = room_event_new("6-0", "operation", data, n);
	CHECK(e && longpoll_add(&lp, e) == 0 && lp.n == 1 && lp.events[0] == e && longpoll_full(&lp));
	struct buf b;
	buf_init(&b, LONGPOLL_ANSWER_MAX);
	CHECK(longpoll_response(&b, &lp, NULL, NULL) == 0 && b.len > n);
	buf_free(&b);
	longpoll_clear(&lp);
	room_event_release(e);
out:
	free(data);
	free(msg);
}

static void test_cursor(void)
{
	struct room_cursor c;
	struct room_evid start = {0, 0};
	struct room_event *e1 = ev("1-0"), *e2 = ev("2-0"), *e3 = ev("3-0"), *e4 = ev("4-0");
	room_cursor_init(&c, start, 3);

	/* subscribe first, then replay: live e2, e3 arrive during the replay of e1, e2 */
	room_cursor_begin(&c);
	CHECK(room_cursor_offer(&c, e2) == ROOM_HELD);
	CHECK(room_cursor_offer(&c, e3) == ROOM_HELD);
	CHECK(room_cursor_replayed(&c, e1) == ROOM_DELIVER);
	CHECK(room_cursor_replayed(&c, e2) == ROOM_DELIVER);
	CHECK(room_cursor_replayed(&c, e1) == ROOM_DUPLICATE);
	struct sink s = {.fail_at = -1};
	CHECK(room_cursor_finish(&c, collect, &s) == 0);
	CHECK(s.n == 1); /* e2 was replayed already: only e3 */
	CHECK_STR(s.got[0], "3-0");
	/* live from now on: in order, never twice */
	CHECK(room_cursor_offer(&c, e3) == ROOM_DUPLICATE);
	CHECK(room_cursor_offer(&c, e4) == ROOM_DELIVER);
	CHECK(room_cursor_offer(&c, e2) == ROOM_DUPLICATE);

	/* the hold is bounded */
	room_cursor_init(&c, start, 2);
	room_cursor_begin(&c);
	CHECK(room_cursor_offer(&c, e1) == ROOM_HELD);
	CHECK(room_cursor_offer(&c, e2) == ROOM_HELD);
	CHECK(room_cursor_offer(&c, e3) == ROOM_OVERFLOW);
	room_cursor_clear(&c);

	/* a deliver that fails stops the merge and the rest is dropped, not leaked */
	room_cursor_init(&c, start, 8);
	room_cursor_begin(&c);
	room_cursor_offer(&c, e1);
	room_cursor_offer(&c, e2);
	room_cursor_offer(&c, e3);
	struct sink f = {.fail_at = 1};
	CHECK(room_cursor_finish(&c, collect, &f) == -1);
	CHECK(f.n == 1);
	room_cursor_clear(&c);

	room_event_release(e1);
	room_event_release(e2);
	room_event_release(e3);
	room_event_release(e4);
}

/* A live message names the history entry before it ("prev"); a cursor below that entry has
 * missed messages and must catch up (room_cursor_gap). Hostile prev values are refused. */
static void test_gap(void)
{
	const char with[] = "{\"type\":\"operation\",\"id\":\"9-2\",\"prev\":\"9-1\",\"data\":{\"r\":3}}";
	struct room_event *e = room_event_from_message(with, sizeof with - 1);
	CHECK(e != NULL);
	if (!e)
		return;
	CHECK(e->has_prev && e->prev.ms == 9 && e->prev.seq == 1);
	CHECK_STR(e->data, "{\"r\":3}");
	/* what clients get does not name prev */
	CHECK_STR(e->json, "{\"type\":\"operation\",\"id\":\"9-2\",\"data\":{\"r\":3}}");
	CHECK_STR(e->sse, "id: 9-2\nevent: operation\ndata: {\"r\":3}\n\n");

	struct room_cursor c;
	struct room_evid at = {9, 1}, before = {9, 0}, after = {9, 2}, zero = {0, 0};
	room_cursor_init(&c, at, 4);
	CHECK(!room_cursor_gap(&c, e)); /* the stream had 9-1: nothing missed */
	room_cursor_init(&c, before, 4);
	CHECK(room_cursor_gap(&c, e)); /* 9-1 never came */
	room_cursor_init(&c, zero, 4);
	CHECK(room_cursor_gap(&c, e)); /* a stream with no event yet, in a room that had 9-1 */
	room_cursor_init(&c, after, 4);
	CHECK(!room_cursor_gap(&c, e)); /* e itself was had: a duplicate, not a gap */
	room_cursor_init(&c, before, 4);
	room_cursor_begin(&c);
	CHECK(!room_cursor_gap(&c, e)); /* replaying: the history read covers it */
	room_cursor_clear(&c);
	room_event_release(e);

	/* without prev (a history that was empty, or an older emitter): never a gap */
	const char without[] = "{\"type\":\"operation\",\"id\":\"9-2\",\"data\":{}}";
	e = room_event_from_message(without, sizeof without - 1);
	CHECK(e != NULL && !e->has_prev);
	room_cursor_init(&c, zero, 4);
	CHECK(e && !room_cursor_gap(&c, e));
	room_event_release(e);

	static const char *const bad[] = {
		"{\"type\":\"operation\",\"id\":\"9-2\",\"prev\":\"x-1\",\"data\":{}}",
		"{\"type\":\"operation\",\"id\":\"9-2\",\"prev\":\"\",\"data\":{}}",
		"{\"type\":\"operation\",\"id\":\"9-2\",\"prev\":\"9-99999999999999999999999\",\"data\":{}}",
		"{\"type\":\"operation\",\"id\":\"9-2\",\"prev\":\"9-1",
		"{\"type\":\"operation\",\"id\":\"9-2\",\"prev\":\"9-1\",\"prev\":\"9-0\",\"data\":{}}",
		"{\"type\":\"operation\",\"id\":\"9-2\",\"prev\":\"9-1\"}",
		"{\"type\":\"operation\",\"id\":\"9-2\",\"prev\":\"12345678901234567890123456789012345678901234567890\",\"data\":{}}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		e = room_event_from_message(bad[i], strlen(bad[i]));
		CHECK(e == NULL);
		room_event_release(e);
	}
	/* a refused message still names its id, for the resync in its place */
	char id[ROOM_EVID_MAX];
	CHECK(room_message_id(bad[0], strlen(bad[0]), id) == 0);
	CHECK_STR(id, "9-2");
}

static void test_resync(void)
{
	struct room_evid z = {0, 0}, a = {10, 0}, b = {10, 1}, c = {20, 0};
	struct room_evid d = {30, 0};
	CHECK(!room_needs_resync(z, c, NULL));  /* no position: nothing to lose */
	CHECK(!room_needs_resync(a, z, NULL));  /* empty stream */
	CHECK(!room_needs_resync(c, a, NULL));  /* still in the history */
	CHECK(!room_needs_resync(a, a, NULL));
	CHECK(!room_needs_resync(a, b, NULL));  /* only a itself is gone */
	CHECK(room_needs_resync(a, c, NULL));   /* events between a and c may be gone */
	CHECK(room_needs_resync(a, c, &z));     /* the entry before c is not known */
	/* the entry before the oldest kept one says what was lost */
	CHECK(!room_needs_resync(a, c, &a));    /* a, the client's last, came right before c */
	CHECK(!room_needs_resync(b, d, &a));    /* b was never an entry: nothing after it lost */
	CHECK(room_needs_resync(a, d, &c));     /* c, which the client never had, is gone */
	/* from the beginning (last_event_id=0) of a history whose beginning was trimmed */
	CHECK(room_start_trimmed(z, 1));
	CHECK(!room_start_trimmed(z, 0));  /* nothing ever dropped */
	CHECK(!room_start_trimmed(a, 5));  /* a position: room_needs_resync decides */
}

/* A string reply as hiredis makes them (len bytes, NUL after). */
static redisReply str_reply(const char *s, size_t len)
{
	redisReply r = {.type = REDIS_REPLY_STRING, .str = (char *)s, .len = len};
	return r;
}

/* Whether ev is a resync with reason malformed_event. */
static int malformed(const struct room_event *e)
{
	return e && !strcmp(e->type, "resync") && !strcmp(e->data, "{\"reason\":\"malformed_event\"}");
}

/* A catch-up page's entries and ids are read whole: a NUL inside a name, a type or an id
 * made it a shorter one (found by tests/fuzz/fuzz_broker_catchup.c). */
static void test_entries(void)
{
	redisReply id = str_reply("1700000000000-4", 15);
	redisReply k1 = str_reply("type", 4), v1 = str_reply("operation", 9);
	redisReply k2 = str_reply("data", 4), v2 = str_reply("{\"n\":1}", 7);
	redisReply *fv[4] = {&k1, &v1, &k2, &v2};
	redisReply fields = {.type = REDIS_REPLY_ARRAY, .element = fv, .elements = 4};
	redisReply *el[2] = {&id, &fields};
	redisReply entry = {.type = REDIS_REPLY_ARRAY, .element = el, .elements = 2};
	struct room_event *e = room_event_from_entry(&entry);
	CHECK(e && !strcmp(e->idstr, "1700000000000-4") && !strcmp(e->type, "operation"));
	CHECK(e && e->data_len == 7 && !memcmp(e->data, "{\"n\":1}", 7));
	room_event_release(e);

	/* a field named "type\0x" is no type: the entry has none, a resync in its place */
	k1 = str_reply("type\0x", 6);
	e = room_event_from_entry(&entry);
	CHECK(malformed(e) && !strcmp(e->idstr, "1700000000000-4"));
	room_event_release(e);
	k1 = str_reply("type", 4);
	/* a type with a NUL inside is not the type before it */
	v1 = str_reply("operation\0x", 11);
	e = room_event_from_entry(&entry);
	CHECK(malformed(e));
	room_event_release(e);
	v1 = str_reply("operation", 9);
	/* nor a data that is no string */
	redisReply nil = {.type = REDIS_REPLY_NIL};
	fv[3] = &nil;
	e = room_event_from_entry(&entry);
	CHECK(malformed(e));
	room_event_release(e);
	fv[3] = &v2;
	/* an entry of one element: its id, a resync */
	entry.elements = 1;
	e = room_event_from_entry(&entry);
	CHECK(malformed(e) && !strcmp(e->idstr, "1700000000000-4"));
	room_event_release(e);
	entry.elements = 2;
	/* an id with a NUL inside is no id: nothing, not an event (or a resync) at 5-1 */
	id = str_reply("5-1\0junk", 9);
	CHECK(room_event_from_entry(&entry) == NULL);

	/* the ids the page names */
	struct room_evid at;
	redisReply one = str_reply("12-3", 4);
	redisReply *lv[1] = {&one};
	redisReply list = {.type = REDIS_REPLY_ARRAY, .element = lv, .elements = 1};
	CHECK(room_entry_id(&list, &at) == 0 && at.ms == 12 && at.seq == 3);
	one = str_reply("12-3\0", 5);
	CHECK(room_entry_id(&list, &at) == -1 && room_evid_is_zero(at));
	one = str_reply("12-x", 4);
	CHECK(room_entry_id(&list, &at) == -1 && room_evid_is_zero(at));
	list.elements = 0;
	CHECK(room_entry_id(&list, &at) == -1);
	CHECK(room_entry_id(NULL, &at) == -1);
}

static void test_longpoll(void)
{
	struct longpoll *lp = malloc(sizeof *lp);
	struct buf b;
	buf_init(&b, 0);
	longpoll_init(lp);
	CHECK(longpoll_response(&b, lp, "9-0", "A: 1\r\n") == 0);
	CHECK(strstr(b.data, "Content-Length: 35\r\n") != NULL);
	CHECK(strstr(b.data, "\r\nA: 1\r\n") != NULL);
	CHECK(strstr(b.data, "\r\n\r\n{\"events\":[],\"last_event_id\":\"9-0\"}") != NULL);
	buf_reset(&b);
	CHECK(longpoll_response(&b, lp, NULL, NULL) == 0);
	CHECK(strstr(b.data, "{\"events\":[],\"last_event_id\":null}") != NULL);
	struct room_event *e1 = ev("1-0"), *e2 = ev("2-0");
	CHECK(longpoll_add(lp, e1) == 0);
	CHECK(longpoll_add(lp, e2) == 0);
	buf_reset(&b);
	CHECK(longpoll_response(&b, lp, "0-0", NULL) == 0);
	CHECK(strstr(b.data, "{\"events\":[{\"type\":\"operation\",\"id\":\"1-0\",\"data\":{\"n\":1}},"
			     "{\"type\":\"operation\",\"id\":\"2-0\",\"data\":{\"n\":1}}],"
			     "\"last_event_id\":\"2-0\"}") != NULL);
	longpoll_clear(lp);
	int added = 0;
	for (int i = 0; i < LONGPOLL_MAX_EVENTS; i++)
		added += longpoll_add(lp, e1) == 0;
	CHECK(added == LONGPOLL_MAX_EVENTS);
	CHECK(longpoll_full(lp));
	CHECK(longpoll_add(lp, e2) == -1);
	longpoll_clear(lp);

	/* the byte bound: big events fill an answer long before 500 of them */
	size_t big_len = 100 * 1024;
	char *data = malloc(big_len);
	memset(data, ' ', big_len);
	data[0] = '{';
	data[big_len - 1] = '}';
	struct room_event *big = room_event_new("3-0", "execution", data, big_len);
	int n = 0;
	while (longpoll_add(lp, big) == 0)
		n++;
	CHECK(n == 6); /* 6 x ~100 KiB >= 512 KiB */
	longpoll_clear(lp);
	CHECK(!longpoll_full(lp));
	room_event_release(big);
	free(data);

	room_event_release(e1);
	room_event_release(e2);
	buf_free(&b);
	free(lp);
}

int main(void)
{
	test_ids();
	test_events();
	test_big_events();
	test_cursor();
	test_gap();
	test_resync();
	test_entries();
	test_longpoll();
	return unit_summary("test_broker_room");
}

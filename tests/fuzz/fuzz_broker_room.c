/* fuzz_broker_room: libFuzzer target for the broker's event ids and room messages
 * (sse-broker/room.c, sse-broker/sse.c; README.md; `make fuzz`).
 *
 * Byte 0 picks what the rest is. Even: an event id as a client sends it (Last-Event-ID, the
 * `last_event_id` and `since` query values) for room_evid_parse. Odd: a message from the
 * room's pub/sub channel for room_event_from_message (its data is what clients put into
 * operations, names and the like, relayed through Redis), and room_message_id when refused.
 *
 * Laws (a break aborts): an id taken prints (room_evid_format) as an id that parses to the
 * same value and fits ROOM_EVID_MAX. An event taken has a valid id and type, renders within
 * its bounds, and its SSE form read back the way an EventSource splits it (CR, LF or CRLF
 * end a line) is exactly one event: "id", "event", then data lines whose text is the data
 * with its line ends made LF, then one blank line and nothing after; its JSON form is JSON
 * (strict) holding the same type, id and data whenever the data itself is strict JSON. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../sse-broker/room.h"
#include "jsoncheck.h"
#include "fuzz.h"

static void fuzz_id(const char *s)
{
	struct room_evid id, back;
	if (room_evid_parse(s, &id) < 0)
		return;
	char out[ROOM_EVID_MAX];
	room_evid_format(id, out);
	if (strlen(out) >= ROOM_EVID_MAX - 1 || room_evid_parse(out, &back) < 0 ||
	    room_evid_cmp(id, back) != 0)
		__builtin_trap();
	struct room_evid next = room_evid_next(id);
	if (room_evid_cmp(next, id) <= 0 && !(id.ms == UINT64_MAX && id.seq == UINT64_MAX))
		__builtin_trap();
}

/* The next line of s[*at..len) as an EventSource splits it; 0 at the end. */
static int next_line(const char *s, size_t len, size_t *at, const char **line, size_t *n)
{
	if (*at >= len)
		return 0;
	size_t i = *at, j = i;
	while (j < len && s[j] != '\r' && s[j] != '\n')
		j++;
	if (j == len)
		__builtin_trap(); /* a line without its end */
	*line = s + i;
	*n = j - i;
	if (s[j] == '\r' && j + 1 < len && s[j + 1] == '\n')
		j++;
	*at = j + 1;
	return 1;
}

static int starts(const char *line, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n >= l && memcmp(line, lit, l) == 0;
}

static void check_sse(const struct room_event *ev)
{
	const char *s = ev->sse, *line;
	size_t len = ev->sse_len, at = 0, n;
	if (!next_line(s, len, &at, &line, &n) || !starts(line, n, "id: ") ||
	    n - 4 != strlen(ev->idstr) || memcmp(line + 4, ev->idstr, n - 4) != 0)
		__builtin_trap();
	if (!next_line(s, len, &at, &line, &n) || !starts(line, n, "event: ") ||
	    n - 7 != strlen(ev->type) || memcmp(line + 7, ev->type, n - 7) != 0)
		__builtin_trap();
	/* the data as the receiver rebuilds it: its lines joined with LF */
	char *got = malloc(len + 1), *want = malloc(ev->data_len + 1);
	if (!got || !want)
		abort();
	size_t gl = 0, wl = 0, lines = 0;
	for (;;) {
		if (!next_line(s, len, &at, &line, &n))
			__builtin_trap(); /* no blank line at the end */
		if (n == 0)
			break;
		if (!starts(line, n, "data: "))
			__builtin_trap();
		if (lines++)
			got[gl++] = '\n';
		memcpy(got + gl, line + 6, n - 6);
		gl += n - 6;
	}
	if (at != len)
		__builtin_trap(); /* more after the event's blank line */
	for (size_t i = 0; i < ev->data_len; i++) {
		char c = ev->data[i];
		if (c == '\r' && i + 1 < ev->data_len && ev->data[i + 1] == '\n')
			continue;
		want[wl++] = c == '\r' ? '\n' : c;
	}
	if (gl != wl || memcmp(got, want, gl) != 0)
		__builtin_trap();
	free(got);
	free(want);
}

static void check_json(const struct room_event *ev)
{
	/* strict (lib/jsoncheck.h): cJSON alone takes a JSON prefix and ignores what follows */
	cJSON *d = jsoncheck_parse(ev->data, ev->data_len, NULL);
	if (!d)
		return;
	cJSON *o = jsoncheck_parse(ev->json, ev->json_len, NULL);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
	const cJSON *i = cJSON_GetObjectItemCaseSensitive(o, "id");
	const cJSON *dd = cJSON_GetObjectItemCaseSensitive(o, "data");
	if (!cJSON_IsString(t) || strcmp(t->valuestring, ev->type) != 0 || !cJSON_IsString(i) ||
	    strcmp(i->valuestring, ev->idstr) != 0 || !dd)
		__builtin_trap();
	/* the same data: both print alike (members in order, names as they are). Not
	 * cJSON_Compare: it never finds a number beyond a double's range (1e999) equal to
	 * itself */
	char *pd = cJSON_PrintUnformatted(d), *pdd = cJSON_PrintUnformatted(dd);
	if (!pd || !pdd)
		abort();
	if (strcmp(pd, pdd) != 0)
		__builtin_trap();
	free(pd);
	free(pdd);
	cJSON_Delete(d);
	cJSON_Delete(o);
}

static void fuzz_message(const char *msg, size_t len)
{
	struct room_event *ev = room_event_from_message(msg, len);
	if (!ev) {
		char idstr[ROOM_EVID_MAX];
		struct room_evid id;
		if (room_message_id(msg, len, idstr) == 0 &&
		    (strlen(idstr) >= ROOM_EVID_MAX || room_evid_parse(idstr, &id) < 0))
			__builtin_trap();
		return;
	}
	struct room_evid id;
	size_t tl = strlen(ev->type);
	if (room_evid_parse(ev->idstr, &id) < 0 || room_evid_cmp(id, ev->id) != 0 || tl == 0 ||
	    tl >= ROOM_TYPE_MAX || ev->data_len == 0 || ev->data_len > ROOM_DATA_MAX ||
	    ev->sse_len > ROOM_SSE_MAX || ev->json_len > ROOM_JSON_MAX || ev->refs != 1)
		__builtin_trap();
	for (size_t i = 0; i < tl; i++)
		if (!((ev->type[i] >= 'a' && ev->type[i] <= 'z') || ev->type[i] == '_'))
			__builtin_trap();
	if (ev->ctl != ROOM_CTL_NONE && strcmp(ev->type, "room") != 0)
		__builtin_trap();
	if (!memchr(ev->data, '\0', ev->data_len))
		check_sse(ev);
	check_json(ev);
	room_event_release(ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	if (!s)
		return 0;
	if (data[0] & 1)
		fuzz_message(s, size - 1);
	else
		fuzz_id(s);
	free(s);
	return 0;
}

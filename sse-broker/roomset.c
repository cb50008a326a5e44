#include "roomset.h"

#include <string.h>

#include "errbuf.h"
#include "http_head.h"
#include "id.h"

/* Prints at most this much of a client's text in a message (it is not trusted to be short). */
#define ROOMSET_ECHO 64

static enum roomset_status entry_parse(const char *p, size_t n, struct roomset_entry *e, char *err,
				       size_t errlen)
{
	const char *colon = memchr(p, ':', n);
	size_t idn = colon ? (size_t)(colon - p) : n;
	int shown = n > ROOMSET_ECHO ? ROOMSET_ECHO : (int)n;
	if (n == 0) {
		errbuf_set(err, errlen, "the rooms list has an empty entry");
		return ROOMSET_MALFORMED;
	}
	if (!id_valid(p, idn)) {
		errbuf_set(err, errlen, "\"%.*s\" is not a room id (1-%d of A-Z a-z 0-9 _ -)", shown, p,
			   ROOM_ID_MAX);
		return ROOMSET_MALFORMED;
	}
	memcpy(e->id, p, idn);
	e->id[idn] = '\0';
	e->has_start = 0;
	e->start = (struct room_evid){0, 0};
	if (!colon)
		return ROOMSET_OK;
	char idstr[ROOM_EVID_MAX];
	size_t evn = n - idn - 1;
	if (evn == 0 || evn >= sizeof idstr || memchr(colon + 1, ':', evn)) {
		errbuf_set(err, errlen, "room %s: a malformed event id", e->id);
		return ROOMSET_MALFORMED;
	}
	memcpy(idstr, colon + 1, evn);
	idstr[evn] = '\0';
	if (room_evid_parse(idstr, &e->start) < 0) {
		errbuf_set(err, errlen, "room %s: a malformed event id", e->id);
		return ROOMSET_MALFORMED;
	}
	e->has_start = 1;
	return ROOMSET_OK;
}

enum roomset_status roomset_parse(const char *query, struct roomset *out, char *err, size_t errlen)
{
	/* the whole head fits (HTTP_HEAD_MAX), so only a bad escape fails to decode; the list's
	 * bound is checked on the decoded length below */
	char value[HTTP_HEAD_MAX + 1];
	out->n = 0;
	int count = http_query_count(query, "rooms");
	if (count > 1) {
		errbuf_set(err, errlen, "give the rooms parameter once (a comma-separated list)");
		return ROOMSET_REPEATED;
	}
	int q = count == 1 ? http_query_get(query, "rooms", value, sizeof value) : 0;
	if (q < 0) {
		errbuf_set(err, errlen, "the rooms parameter is not a valid query value");
		return ROOMSET_MALFORMED;
	}
	if (q == 0 || value[0] == '\0') {
		errbuf_set(err, errlen, "name the rooms: rooms=ROOM[:LAST_EVENT_ID],...");
		return ROOMSET_MISSING;
	}
	size_t entries = 1;
	for (const char *c = value; *c; c++)
		entries += *c == ',';
	if (entries > ROOMSET_MAX) {
		errbuf_set(err, errlen, "too many rooms: %zu given, a stream carries at most %d",
			   entries, ROOMSET_MAX);
		return ROOMSET_TOO_MANY;
	}
	/* at most ROOMSET_MAX entries, yet longer than that many can be: one of them is (a room
	 * id or an event id over its bound), which says more than "too many rooms" would */
	if (strlen(value) > ROOMSET_VALUE_MAX) {
		errbuf_set(err, errlen, "a room id or event id of the rooms list is too long");
		return ROOMSET_MALFORMED;
	}
	const char *p = value;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		struct roomset_entry *e = &out->v[out->n];
		enum roomset_status st = entry_parse(p, n, e, err, errlen);
		if (st != ROOMSET_OK) {
			out->n = 0;
			return st;
		}
		if (roomset_find(out, e->id) >= 0) {
			errbuf_set(err, errlen, "room %s is named twice", e->id);
			out->n = 0;
			return ROOMSET_DUPLICATE;
		}
		out->n++;
		if (!comma)
			break;
		p = comma + 1;
	}
	return ROOMSET_OK;
}

int roomset_find(const struct roomset *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i].id, id) == 0)
			return (int)i;
	return -1;
}

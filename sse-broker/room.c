#include "room.h"

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sse.h"


static int parse_u64(const char *s, size_t n, uint64_t *out)
{
	if (n == 0 || n > 20)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int room_evid_parse(const char *s, struct room_evid *out)
{
	if (!s)
		return -1;
	const char *dash = strchr(s, '-');
	size_t n = strlen(s);
	if (!dash) {
		out->seq = 0;
		return parse_u64(s, n, &out->ms);
	}
	if (parse_u64(s, (size_t)(dash - s), &out->ms) < 0 ||
	    parse_u64(dash + 1, n - (size_t)(dash - s) - 1, &out->seq) < 0)
		return -1;
	return 0;
}

int room_evid_cmp(struct room_evid a, struct room_evid b)
{
	if (a.ms != b.ms)
		return a.ms < b.ms ? -1 : 1;
	if (a.seq != b.seq)
		return a.seq < b.seq ? -1 : 1;
	return 0;
}

void room_evid_format(struct room_evid id, char out[ROOM_EVID_MAX])
{
	snprintf(out, ROOM_EVID_MAX, "%" PRIu64 "-%" PRIu64, id.ms, id.seq);
}

struct room_evid room_evid_next(struct room_evid id)
{
	if (id.seq == UINT64_MAX && id.ms == UINT64_MAX)
		return id; /* the largest id has no next: wrapping to 0-0 would replay from the start */
	if (id.seq == UINT64_MAX) {
		id.ms++;
		id.seq = 0;
	} else {
		id.seq++;
	}
	return id;
}

int room_evid_is_zero(struct room_evid id)
{
	return id.ms == 0 && id.seq == 0;
}

static int type_valid(const char *t, size_t n)
{
	if (n == 0 || n >= ROOM_TYPE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((t[i] >= 'a' && t[i] <= 'z') || t[i] == '_'))
			return 0;
	return 1;
}

static enum room_ctl ctl_of(const char *type, const char *data, size_t len)
{
	if (strcmp(type, "room") != 0)
		return ROOM_CTL_NONE;
	cJSON *o = cJSON_ParseWithLength(data, len);
	const cJSON *why = cJSON_GetObjectItemCaseSensitive(o, "reason");
	enum room_ctl ctl = ROOM_CTL_NONE;
	static const struct {
		const char *reason;
		enum room_ctl ctl;
	} ctls[] = {
		{"members", ROOM_CTL_RIGHTS},
		{"updated", ROOM_CTL_RIGHTS},
		{"invite", ROOM_CTL_RIGHTS},
		{"access", ROOM_CTL_RIGHTS}, /* the API corrected a cache the rights depend on */
		{"deleted", ROOM_CTL_DELETED},
	};
	for (size_t i = 0; cJSON_IsString(why) && i < sizeof ctls / sizeof ctls[0]; i++)
		if (strcmp(why->valuestring, ctls[i].reason) == 0)
			ctl = ctls[i].ctl;
	cJSON_Delete(o);
	return ctl;
}

struct room_event *room_event_new(const char *idstr, const char *type, const char *data,
				  size_t data_len)
{
	struct room_event *ev = NULL;
	struct buf b;
	buf_init(&b, ROOM_SSE_MAX);
	size_t tl = strlen(type);
	if (!type_valid(type, tl) || data_len == 0 || data_len > ROOM_DATA_MAX)
		goto fail;
	ev = calloc(1, sizeof *ev);
	if (!ev)
		goto fail;
	ev->refs = 1;
	if (room_evid_parse(idstr, &ev->id) < 0 || strlen(idstr) >= ROOM_EVID_MAX)
		goto fail;
	memcpy(ev->idstr, idstr, strlen(idstr) + 1);
	memcpy(ev->type, type, tl + 1);
	ev->data = malloc(data_len + 1);
	if (!ev->data)
		goto fail;
	memcpy(ev->data, data, data_len);
	ev->data[data_len] = '\0';
	ev->data_len = data_len;
	ev->ctl = ctl_of(ev->type, ev->data, data_len);
	if (sse_event(&b, ev->idstr, ev->type, data, data_len) < 0)
		goto fail;
	ev->sse_len = b.len;
	ev->sse = buf_detach(&b);
	if (!ev->sse)
		goto fail;
	/* type and id hold no characters JSON would escape (checked above) */
	if (buf_printf(&b, "{\"type\":\"%s\",\"id\":\"%s\",\"data\":", ev->type, ev->idstr) < 0 ||
	    buf_append(&b, data, data_len) < 0 || buf_putc(&b, '}') < 0)
		goto fail;
	ev->json_len = b.len;
	ev->json = buf_detach(&b);
	if (!ev->json)
		goto fail;
	return ev;
fail:
	buf_free(&b);
	if (ev) {
		ev->refs = 1;
		room_event_release(ev);
	}
	return NULL;
}

/* The text from p up to the next '"' (before end) into out (cap bytes with its NUL): the
 * quote's address, or NULL when there is none or the text does not fit. */
static const char *take_quoted(const char *p, const char *end, char *out, size_t cap)
{
	const char *q = memchr(p, '"', (size_t)(end - p));
	if (!q || (size_t)(q - p) >= cap)
		return NULL;
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = '\0';
	return q;
}

/* Whether the literal lit (n bytes) is at p (before end); then p moves past it. */
static int take_literal(const char **p, const char *end, const char *lit, size_t n)
{
	if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
		return 0;
	*p += n;
	return 1;
}

/* The message is exactly what lib/events.c's script publishes:
 * {"type":"<type>","id":"<id>","prev":"<id>","data":<data>} ("prev" only when the history had
 * an entry before) – read it by that shape so data reaches clients byte for byte as XRANGE
 * readers get it (a JSON round trip could rewrite numbers). */
struct room_event *room_event_from_message(const char *msg, size_t len)
{
	static const char p1[] = "{\"type\":\"", p2[] = "\",\"id\":\"", p3[] = "\",\"data\":",
			  pp[] = "\",\"prev\":\"";
	char type[ROOM_TYPE_MAX], id[ROOM_EVID_MAX], prev[ROOM_EVID_MAX];
	const char *p = msg, *end = msg + len;
	if (!take_literal(&p, end, p1, sizeof p1 - 1) || !(p = take_quoted(p, end, type, sizeof type)) ||
	    !take_literal(&p, end, p2, sizeof p2 - 1) || !(p = take_quoted(p, end, id, sizeof id)))
		return NULL;
	int has_prev = take_literal(&p, end, pp, sizeof pp - 1);
	struct room_evid pid = {0, 0};
	if (has_prev && (!(p = take_quoted(p, end, prev, sizeof prev)) || room_evid_parse(prev, &pid) < 0))
		return NULL;
	if (!take_literal(&p, end, p3, sizeof p3 - 1) || end - p < 2 || end[-1] != '}')
		return NULL;
	struct room_event *ev = room_event_new(id, type, p, (size_t)(end - 1 - p));
	if (ev && has_prev) {
		ev->prev = pid;
		ev->has_prev = 1;
	}
	return ev;
}

int room_message_id(const char *msg, size_t len, char idstr[ROOM_EVID_MAX])
{
	static const char key[] = "\"id\":\"";
	/* the envelope comes first (lib/events.c): look in its head only */
	size_t n = len < 256 ? len : 256;
	for (size_t i = 0; i + sizeof key - 1 <= n; i++) {
		if (memcmp(msg + i, key, sizeof key - 1) != 0)
			continue;
		const char *p = msg + i + sizeof key - 1, *end = msg + len;
		const char *q = memchr(p, '"', (size_t)(end - p));
		struct room_evid id;
		if (!q || (size_t)(q - p) >= ROOM_EVID_MAX)
			return -1;
		memcpy(idstr, p, (size_t)(q - p));
		idstr[q - p] = '\0';
		return room_evid_parse(idstr, &id);
	}
	return -1;
}

struct room_event *room_event_resync(const char *idstr, const char *reason)
{
	char data[96];
	int n = snprintf(data, sizeof data, "{\"reason\":\"%s\"}", reason);
	if (n < 0 || (size_t)n >= sizeof data)
		return NULL;
	return room_event_new(idstr, "resync", data, (size_t)n);
}

/* Whether r is a string reply without a NUL inside (then r->str is all of it). */
static int whole_string(const redisReply *r)
{
	return r->type == REDIS_REPLY_STRING && strlen(r->str) == r->len;
}

/* Whether r is the string reply of exactly the name lit. */
static int is_name(const redisReply *r, const char *lit)
{
	return r->type == REDIS_REPLY_STRING && r->len == strlen(lit) && !memcmp(r->str, lit, r->len);
}

struct room_event *room_event_from_entry(const redisReply *e)
{
	if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 || !whole_string(e->element[0]))
		return NULL;
	const char *id = e->element[0]->str;
	const redisReply *type = NULL, *data = NULL;
	const redisReply *f = e->elements == 2 ? e->element[1] : NULL;
	for (size_t i = 0; f && f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
		const redisReply *k = f->element[i], *v = f->element[i + 1];
		if (is_name(k, "type"))
			type = v;
		else if (is_name(k, "data"))
			data = v;
	}
	struct room_event *ev = NULL;
	if (type && data && whole_string(type) && data->type == REDIS_REPLY_STRING)
		ev = room_event_new(id, type->str, data->str, data->len);
	return ev ? ev : room_event_resync(id, "malformed_event");
}

int room_entry_id(const redisReply *list, struct room_evid *out)
{
	out->ms = out->seq = 0;
	if (!list || list->type != REDIS_REPLY_ARRAY || list->elements == 0 ||
	    !whole_string(list->element[0]))
		return -1;
	if (room_evid_parse(list->element[0]->str, out) < 0) {
		out->ms = out->seq = 0;
		return -1;
	}
	return 0;
}

struct room_event *room_event_reserve(struct room_event *ev)
{
	ev->refs++;
	return ev;
}

void room_event_release(struct room_event *ev)
{
	if (!ev || --ev->refs > 0)
		return;
	free(ev->data);
	free(ev->sse);
	free(ev->json);
	free(ev);
}

void room_cursor_init(struct room_cursor *c, struct room_evid start, size_t maxheld)
{
	memset(c, 0, sizeof *c);
	c->last = start;
	c->maxheld = maxheld;
}

void room_cursor_clear(struct room_cursor *c)
{
	for (size_t i = 0; i < c->nheld; i++)
		room_event_release(c->held[i]);
	free(c->held);
	c->held = NULL;
	c->nheld = c->capheld = 0;
	c->replaying = 0;
}

void room_cursor_begin(struct room_cursor *c)
{
	c->replaying = 1;
}

enum room_offer room_cursor_offer(struct room_cursor *c, struct room_event *ev)
{
	if (c->replaying) {
		if (c->nheld == c->maxheld)
			return ROOM_OVERFLOW;
		if (c->nheld == c->capheld) {
			size_t cap = c->capheld ? c->capheld * 2 : 8;
			if (cap > c->maxheld)
				cap = c->maxheld;
			struct room_event **h = realloc(c->held, cap * sizeof *h);
			if (!h)
				return ROOM_OVERFLOW;
			c->held = h;
			c->capheld = cap;
		}
		c->held[c->nheld++] = room_event_reserve(ev);
		return ROOM_HELD;
	}
	return room_cursor_replayed(c, ev);
}

int room_cursor_gap(const struct room_cursor *c, const struct room_event *ev)
{
	return !c->replaying && ev->has_prev && room_evid_cmp(ev->prev, c->last) > 0 &&
	       room_evid_cmp(ev->id, c->last) > 0;
}

enum room_offer room_cursor_replayed(struct room_cursor *c, struct room_event *ev)
{
	if (room_evid_cmp(ev->id, c->last) <= 0)
		return ROOM_DUPLICATE;
	c->last = ev->id;
	return ROOM_DELIVER;
}

int room_cursor_finish(struct room_cursor *c, int (*deliver)(void *arg, struct room_event *ev),
		       void *arg)
{
	int rc = 0;
	/* take the hold first: deliver may end the subscriber, which clears the cursor */
	struct room_event **held = c->held;
	size_t n = c->nheld;
	c->held = NULL;
	c->nheld = c->capheld = 0;
	c->replaying = 0;
	for (size_t i = 0; i < n; i++) {
		if (rc == 0 && room_cursor_replayed(c, held[i]) == ROOM_DELIVER &&
		    deliver(arg, held[i]) < 0)
			rc = -1;
		room_event_release(held[i]);
	}
	free(held);
	return rc;
}

int room_needs_resync(struct room_evid last, struct room_evid first, const struct room_evid *before)
{
	if (room_evid_is_zero(last) || room_evid_is_zero(first))
		return 0;
	if (room_evid_cmp(first, room_evid_next(last)) <= 0)
		return 0;
	/* every entry the history lost is at or below `before`, the one that came right before
	 * the oldest kept: the client had all of them when its last event is not below it (its
	 * own last event is the one trimmed, say) */
	return !before || room_evid_is_zero(*before) || room_evid_cmp(*before, last) > 0;
}

int room_start_trimmed(struct room_evid last, long long dropped)
{
	return room_evid_is_zero(last) && dropped > 0;
}

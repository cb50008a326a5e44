#include "longpoll.h"

void longpoll_init(struct longpoll *lp)
{
	lp->n = 0;
	lp->bytes = 0;
}

int longpoll_add(struct longpoll *lp, struct room_event *ev)
{
	if (longpoll_full(lp))
		return -1;
	if (ev->json_len > LONGPOLL_EVENT_MAX) {
		struct room_event *rs = room_event_resync(ev->idstr, "event_too_large");
		if (!rs)
			return -1;
		lp->events[lp->n++] = rs;
		lp->bytes += rs->json_len;
		return 0;
	}
	lp->events[lp->n++] = room_event_reserve(ev);
	lp->bytes += ev->json_len;
	return 0;
}

int longpoll_full(const struct longpoll *lp)
{
	return lp->n == LONGPOLL_MAX_EVENTS || lp->bytes >= LONGPOLL_MAX_BYTES;
}

int longpoll_response(struct buf *out, const struct longpoll *lp, const char *since,
		      const char *extra)
{
	struct buf body;
	int rc = -1;
	buf_init(&body, out->limit);
	if (buf_puts(&body, "{\"events\":[") < 0)
		goto out;
	for (size_t i = 0; i < lp->n; i++) {
		if ((i && buf_putc(&body, ',') < 0) ||
		    buf_append(&body, lp->events[i]->json, lp->events[i]->json_len) < 0)
			goto out;
	}
	const char *last = lp->n ? lp->events[lp->n - 1]->idstr : since;
	/* ids are digits and one dash (room_evid_parse), nothing to escape */
	if ((last ? buf_printf(&body, "],\"last_event_id\":\"%s\"}", last)
		  : buf_puts(&body, "],\"last_event_id\":null}")) < 0)
		goto out;
	if (buf_printf(out,
		       "HTTP/1.1 200 OK\r\n"
		       "Content-Type: application/json\r\n"
		       "Cache-Control: no-store\r\n"
		       "Content-Length: %zu\r\n"
		       "%s"
		       "Connection: close\r\n"
		       "\r\n",
		       body.len, extra ? extra : "") < 0 ||
	    buf_append(out, body.data, body.len) < 0)
		goto out;
	rc = 0;
out:
	buf_free(&body);
	return rc;
}

void longpoll_clear(struct longpoll *lp)
{
	for (size_t i = 0; i < lp->n; i++)
		room_event_release(lp->events[i]);
	lp->n = 0;
	lp->bytes = 0;
}

/* fuzz_rslot: libFuzzer target for what a Redis Cluster client reads about slots from the
 * network (README.md; `make fuzz`), lib/rslot.c: a CLUSTER SLOTS answer (rslot_map_parse), the
 * error text of a MOVED or ASK redirection (rslot_redirect), and a key's slot (rslot_of).
 * lib/rds.c and the broker's hub trust the map and the redirections to choose the node a
 * command goes to, so a node named other than the answer named it sends our writes elsewhere.
 *
 * Byte 0 chooses. 0 mod 3: the rest builds a reply (fuzz_reply.h) read as CLUSTER SLOTS, with
 * a fallback host chosen by byte 0's upper bits (none, "", a name, a name too long for a
 * node). 1 mod 3: the rest is the
 * text of an error reply read as a redirection; then a redirection written from the same
 * bytes is read back. 2 mod 3: the rest is a key.
 *
 * Laws (a break aborts):
 * - a map is taken exactly when every entry has the shape [from, to, [host, port, ...], ...]
 *   with 0 <= from <= to < 16384, a port in 1..65535 and a usable host: the entry's own bytes,
 *   non-empty, shorter than a node's buffer and without a NUL (which would make it another,
 *   shorter name), or for "" and "?" the fallback host, which must then be usable too;
 * - a map taken lists each (host, port) once, every host a string equal byte for byte to the
 *   one its entry named; each slot's node is the one the last entry covering it named, a slot
 *   no entry covers has none, `covered` counts the slots with a node, and rslot_map_node
 *   agrees; a map refused is empty and says why;
 * - a redirection is taken exactly when the text, up to its first NUL (which ends it, as the
 *   unit tests pin down), is "MOVED " or "ASK " then the slot in decimal digits (below 16384),
 *   a space, and host:port with no space, the port decimal digits in 1..65535 after the last
 *   ':' and the host fitting a node; the parts taken are those the text spells;
 * - a redirection written as Redis writes it ("MOVED %u %s:%d") is always read back whole;
 * - a key's slot is below 16384, and a key with a hash tag (between its first '{' and the
 *   first '}' after it, not empty) has the slot of the tag alone. */
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_reply.h"
#include "rslot.h"

#define HOST_CAP (sizeof(((struct rslot_node *)0)->host))

/* An entry's node as the map must hold it: the host's bytes and length, and the port. */
struct want_node {
	const char *host;
	size_t hlen;
	int port;
	long long from, to;
};

/* Whether e is an entry rslot_map_parse must take, and its node (fallback for "" and "?"). */
static int entry_ok(const redisReply *e, const char *fallback, struct want_node *w)
{
	if (e->type != REDIS_REPLY_ARRAY || e->elements < 3)
		return 0;
	const redisReply *from = e->element[0], *to = e->element[1], *node = e->element[2];
	if (from->type != REDIS_REPLY_INTEGER || to->type != REDIS_REPLY_INTEGER ||
	    node->type != REDIS_REPLY_ARRAY || node->elements < 2 ||
	    node->element[0]->type != REDIS_REPLY_STRING ||
	    node->element[1]->type != REDIS_REPLY_INTEGER)
		return 0;
	if (from->integer < 0 || to->integer >= RSLOT_COUNT || from->integer > to->integer)
		return 0;
	long long port = node->element[1]->integer;
	if (port < 1 || port > 65535)
		return 0;
	const redisReply *h = node->element[0];
	w->host = h->str;
	w->hlen = h->len;
	if (h->len == 0 || (h->len == 1 && h->str[0] == '?')) {
		w->host = fallback ? fallback : "";
		w->hlen = strlen(w->host);
	}
	if (w->hlen == 0 || w->hlen >= HOST_CAP || memchr(w->host, '\0', w->hlen))
		return 0;
	w->port = (int)port;
	w->from = from->integer;
	w->to = to->integer;
	return 1;
}

static int node_is(const struct rslot_node *n, const struct want_node *w)
{
	return n->port == w->port && strlen(n->host) == w->hlen && !memcmp(n->host, w->host, w->hlen);
}

static void check_map(const redisReply *rep, const char *fallback)
{
	struct rslot_map *m = malloc(sizeof *m);
	CHECK(m);
	char err[160] = "";
	int rc = rslot_map_parse(m, rep, fallback, err, sizeof err);
	CHECK(rc == 0 || rc == -1);

	int ok = rep->type == REDIS_REPLY_ARRAY;
	size_t n = ok ? rep->elements : 0;
	struct want_node *w = calloc(n ? n : 1, sizeof *w);
	CHECK(w);
	for (size_t i = 0; ok && i < n; i++)
		ok = entry_ok(rep->element[i], fallback, &w[i]);
	/* at most 15 entries here: the bound of 1,024 nodes is never reached */
	CHECK((rc == 0) == ok);

	if (rc != 0) {
		CHECK(err[0] != '\0');
		CHECK(m->nnodes == 0 && m->nodes == NULL && m->covered == 0);
		for (int s = 0; s < RSLOT_COUNT; s++)
			CHECK(m->owner[s] == -1);
		goto out;
	}
	CHECK(m->nnodes >= 0 && m->nnodes <= (int)n && (m->nnodes == 0 || m->nodes));
	for (int i = 0; i < m->nnodes; i++) {
		const struct rslot_node *a = &m->nodes[i];
		CHECK(memchr(a->host, '\0', HOST_CAP) != NULL);
		CHECK(a->host[0] != '\0' && a->port >= 1 && a->port <= 65535);
		for (int j = 0; j < i; j++)
			CHECK(a->port != m->nodes[j].port || strcmp(a->host, m->nodes[j].host) != 0);
		/* every node is one an entry named */
		int named = 0;
		for (size_t k = 0; k < n && !named; k++)
			named = node_is(a, &w[k]);
		CHECK(named);
	}
	/* each slot's last entry: the entries in order, each over its range */
	static short last_of[RSLOT_COUNT];
	for (int s = 0; s < RSLOT_COUNT; s++)
		last_of[s] = -1;
	for (size_t k = 0; k < n; k++)
		for (long long s = w[k].from; s <= w[k].to; s++)
			last_of[s] = (short)k;
	int covered = 0;
	for (int s = 0; s < RSLOT_COUNT; s++) {
		const struct want_node *last = last_of[s] < 0 ? NULL : &w[last_of[s]];
		const struct rslot_node *got = rslot_map_node(m, (unsigned)s);
		if (!last) {
			CHECK(m->owner[s] == -1 && got == NULL);
			continue;
		}
		covered++;
		CHECK(m->owner[s] >= 0 && m->owner[s] < m->nnodes);
		CHECK(got == &m->nodes[m->owner[s]]);
		CHECK(node_is(got, last));
	}
	CHECK(m->covered == covered);
	CHECK(rslot_map_node(m, RSLOT_COUNT) == NULL);
	rslot_map_free(m);
	CHECK(m->nnodes == 0 && m->nodes == NULL && m->covered == 0);
out:
	free(w);
	free(m);
}

/* Decimal digits at *p (at least one), their value capped at limit + 1, *p moved past them. */
static unsigned long digits(const char **p, unsigned long limit, int *any)
{
	unsigned long v = 0;
	*any = 0;
	while (**p >= '0' && **p <= '9') {
		v = v * 10 + (unsigned long)(**p - '0');
		if (v > limit)
			v = limit + 1;
		(*p)++;
		*any = 1;
	}
	return v;
}

/* The redirection the text spells, read by the grammar of the laws above: 1 and its parts,
 * or 0. The text ends at its first NUL. */
static int spelled(const char *text, size_t len, int *ask, unsigned *slot, struct rslot_node *to)
{
	if (len >= 600) /* rslot_redirect's bound on the text it reads */
		return 0;
	const char *p;
	if (!strncmp(text, "MOVED ", 6)) {
		*ask = 0;
		p = text + 6;
	} else if (!strncmp(text, "ASK ", 4)) {
		*ask = 1;
		p = text + 4;
	} else {
		return 0;
	}
	int any;
	unsigned long s = digits(&p, RSLOT_COUNT, &any);
	if (!any || s >= RSLOT_COUNT || *p != ' ')
		return 0;
	const char *addr = p + 1, *colon = strrchr(addr, ':');
	if (!colon || strchr(addr, ' '))
		return 0;
	p = colon + 1;
	unsigned long port = digits(&p, 65535, &any);
	if (!any || *p || port < 1 || port > 65535)
		return 0;
	size_t hl = (size_t)(colon - addr);
	if (hl >= HOST_CAP)
		return 0;
	memcpy(to->host, addr, hl);
	to->host[hl] = '\0';
	to->port = (int)port;
	*slot = (unsigned)s;
	return 1;
}

static void check_redirect(const uint8_t *data, size_t size)
{
	char *text = fuzz_str(data, size);
	CHECK(text);
	int ask = -1, wask = -1;
	unsigned slot = 0, wslot = 0;
	struct rslot_node to, want;
	memset(&to, 0, sizeof to);
	memset(&want, 0, sizeof want);
	int rc = rslot_redirect(text, size, &ask, &slot, &to);
	int ok = spelled(text, size, &wask, &wslot, &want);
	CHECK(rc == ok);
	if (rc)
		CHECK(ask == wask && slot == wslot && to.port == want.port &&
		      !strcmp(to.host, want.host));
	free(text);

	/* written as Redis writes one: a slot and a port from the first four bytes, a host of
	 * the bytes after them without NUL or space */
	if (size < 5)
		return;
	unsigned ws = (unsigned)(data[0] | data[1] << 8) % RSLOT_COUNT;
	int wp = (int)((data[2] | data[3] << 8) % 65535) + 1;
	char host[HOST_CAP];
	size_t hl = 0;
	for (size_t i = 4; i < size && hl < sizeof host - 1; i++)
		if (data[i] != '\0' && data[i] != ' ')
			host[hl++] = (char)data[i];
	host[hl] = '\0';
	char line[HOST_CAP + 32];
	int ln = snprintf(line, sizeof line, "%s %u %s:%d", data[0] & 1 ? "ASK" : "MOVED", ws, host,
			  wp);
	CHECK(ln > 0 && (size_t)ln < sizeof line);
	CHECK(rslot_redirect(line, (size_t)ln, &ask, &slot, &to) == 1);
	CHECK(ask == (data[0] & 1) && slot == ws && to.port == wp && !strcmp(to.host, host));
}

static void check_key(const uint8_t *data, size_t size)
{
	const char *key = (const char *)data;
	unsigned s = rslot_of(key, size);
	CHECK(s < RSLOT_COUNT);
	const char *open = memchr(key, '{', size);
	if (!open)
		return;
	const char *tag = open + 1;
	const char *close = memchr(tag, '}', size - (size_t)(tag - key));
	if (!close || close == tag)
		return;
	CHECK(s == rslot_of(tag, (size_t)(close - tag)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* the last, a name too long for a node */
	static char too_long[HOST_CAP + 8];
	if (!too_long[0])
		memset(too_long, 'h', sizeof too_long - 1);
	const char *const fallbacks[] = {NULL, "", "10.0.0.9", too_long};
	switch (data[0] % 3) {
	case 0: {
		struct input in = {data + 1, size - 1};
		redisReply *rep = build(&in, 3);
		check_map(rep, fallbacks[(data[0] / 3) % 4]);
		freeReplyObject(rep);
		break;
	}
	case 1:
		check_redirect(data + 1, size - 1);
		break;
	default:
		check_key(data + 1, size - 1);
		break;
	}
	return 0;
}

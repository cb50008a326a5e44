#include "rslot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CRC16, polynomial 0x1021, initial value 0, no reflection (XMODEM), bit by bit: keys are
 * short, and a table would be one more thing to get right. */
static unsigned crc16(const unsigned char *p, size_t n)
{
	unsigned crc = 0;
	for (size_t i = 0; i < n; i++) {
		crc ^= (unsigned)p[i] << 8;
		for (int b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) : (crc << 1);
		crc &= 0xffff;
	}
	return crc;
}

unsigned rslot_of(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len);
	if (open) {
		size_t rest = len - (size_t)(open - key) - 1;
		const char *close = memchr(open + 1, '}', rest);
		if (close && close > open + 1)
			return crc16((const unsigned char *)open + 1, (size_t)(close - open - 1)) &
			       (RSLOT_COUNT - 1);
	}
	return crc16((const unsigned char *)key, len) & (RSLOT_COUNT - 1);
}

static void map_clear(struct rslot_map *m)
{
	m->nnodes = 0;
	m->nodes = NULL;
	m->covered = 0;
	for (int i = 0; i < RSLOT_COUNT; i++)
		m->owner[i] = -1;
}

void rslot_map_free(struct rslot_map *m)
{
	free(m->nodes);
	map_clear(m);
}

int rslot_map_single(struct rslot_map *m, const char *host, int port)
{
	map_clear(m);
	m->nodes = calloc(1, sizeof *m->nodes);
	if (!m->nodes)
		return -1;
	snprintf(m->nodes[0].host, sizeof m->nodes[0].host, "%s", host);
	m->nodes[0].port = port;
	m->nnodes = 1;
	for (int i = 0; i < RSLOT_COUNT; i++)
		m->owner[i] = 0;
	m->covered = RSLOT_COUNT;
	return 0;
}

const struct rslot_node *rslot_map_node(const struct rslot_map *m, unsigned slot)
{
	if (slot >= RSLOT_COUNT || m->owner[slot] < 0)
		return NULL;
	return &m->nodes[m->owner[slot]];
}

static int node_index(struct rslot_map *m, const char *host, size_t hlen, int port)
{
	for (int i = 0; i < m->nnodes; i++)
		if (m->nodes[i].port == port && strlen(m->nodes[i].host) == hlen &&
		    memcmp(m->nodes[i].host, host, hlen) == 0)
			return i;
	if (m->nnodes >= 1024)
		return -1;
	struct rslot_node *n = realloc(m->nodes, (size_t)(m->nnodes + 1) * sizeof *n);
	if (!n)
		return -1;
	m->nodes = n;
	memcpy(n[m->nnodes].host, host, hlen);
	n[m->nnodes].host[hlen] = '\0';
	n[m->nnodes].port = port;
	return m->nnodes++;
}

int rslot_map_parse(struct rslot_map *m, const redisReply *rep, const char *fallback_host,
		    char *err, size_t errlen)
{
	map_clear(m);
	if (!rep || rep->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "CLUSTER SLOTS: not an array");
		return -1;
	}
	for (size_t i = 0; i < rep->elements; i++) {
		const redisReply *e = rep->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER ||
		    e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
		    e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
		    e->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
			snprintf(err, errlen, "CLUSTER SLOTS: entry %zu has the wrong shape", i);
			goto bad;
		}
		long long from = e->element[0]->integer, to = e->element[1]->integer;
		const redisReply *h = e->element[2]->element[0];
		long long port = e->element[2]->element[1]->integer;
		if (from < 0 || to >= RSLOT_COUNT || from > to || port <= 0 || port > 65535) {
			snprintf(err, errlen, "CLUSTER SLOTS: entry %zu is out of range", i);
			goto bad;
		}
		const char *host = h->str;
		size_t hlen = h->len;
		if (hlen == 0 || (hlen == 1 && host[0] == '?')) {
			host = fallback_host ? fallback_host : "";
			hlen = strlen(host);
		}
		/* a NUL inside would make the node another, shorter name (and never the same
		 * node twice, as node_index compares the name whole) */
		if (hlen == 0 || hlen >= sizeof m->nodes[0].host || memchr(host, '\0', hlen)) {
			snprintf(err, errlen, "CLUSTER SLOTS: entry %zu names no usable host", i);
			goto bad;
		}
		int idx = node_index(m, host, hlen, (int)port);
		if (idx < 0) {
			snprintf(err, errlen, "CLUSTER SLOTS: out of memory or too many nodes");
			goto bad;
		}
		for (long long s = from; s <= to; s++) {
			if (m->owner[s] < 0)
				m->covered++;
			m->owner[s] = (short)idx;
		}
	}
	return 0;
bad:
	rslot_map_free(m);
	return -1;
}

/* Decimal digits at p, at least one, and nothing else up to end: their value, capped at
 * max + 1 (so a long run of digits cannot wrap), or -1. No sign or white space, which strtoul
 * would take: "+5", " 5" and "-18446744073709551615" (read as 1) are not Redis's numbers. */
static long digits(const char *p, const char *end, long max)
{
	long v = 0;
	if (p == end)
		return -1;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
		if (v > max)
			v = max + 1;
	}
	return v;
}

int rslot_redirect(const char *err, size_t len, int *ask, unsigned *slot, struct rslot_node *to)
{
	char text[600];
	if (!err || len >= sizeof text)
		return 0;
	memcpy(text, err, len);
	text[len] = '\0';
	const char *p;
	if (strncmp(text, "MOVED ", 6) == 0) {
		*ask = 0;
		p = text + 6;
	} else if (strncmp(text, "ASK ", 4) == 0) {
		*ask = 1;
		p = text + 4;
	} else {
		return 0;
	}
	const char *space = strchr(p, ' ');
	long s = space ? digits(p, space, RSLOT_COUNT) : -1;
	if (s < 0 || s >= RSLOT_COUNT)
		return 0;
	const char *addr = space + 1;
	const char *colon = strrchr(addr, ':');
	if (!colon || strchr(addr, ' '))
		return 0;
	long port = digits(colon + 1, colon + 1 + strlen(colon + 1), 65535);
	if (port <= 0 || port > 65535)
		return 0;
	size_t hl = (size_t)(colon - addr);
	if (hl >= sizeof to->host)
		return 0;
	memcpy(to->host, addr, hl);
	to->host[hl] = '\0';
	to->port = (int)port;
	*slot = (unsigned)s;
	return 1;
}

int rslot_parse_seeds(const char *list, struct rslot_node **out, int *n, char *err,
		      size_t errlen)
{
	*out = NULL;
	*n = 0;
	if (!list || !*list) {
		snprintf(err, errlen, "REDIS_CLUSTER names no node");
		return -1;
	}
	struct rslot_node *v = calloc(64, sizeof *v);
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int count = 0;
	const char *p = list;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		while (len && (*p == ' '))
			p++, len--;
		while (len && p[len - 1] == ' ')
			len--;
		const char *colon = NULL;
		for (size_t i = 0; i < len; i++)
			if (p[i] == ':')
				colon = p + i;
		if (count >= 64) {
			snprintf(err, errlen, "REDIS_CLUSTER: more than 64 nodes");
			goto bad;
		}
		size_t hl = colon ? (size_t)(colon - p) : 0;
		if (!colon || hl == 0 || hl >= sizeof v[0].host) {
			snprintf(err, errlen, "REDIS_CLUSTER: \"%.*s\" is not host:port", (int)len, p);
			goto bad;
		}
		char port[8];
		size_t pl = len - hl - 1;
		if (pl == 0 || pl >= sizeof port) {
			snprintf(err, errlen, "REDIS_CLUSTER: \"%.*s\" has a bad port", (int)len, p);
			goto bad;
		}
		memcpy(port, colon + 1, pl);
		port[pl] = '\0';
		char *end;
		long pn = strtol(port, &end, 10);
		if (*end || pn <= 0 || pn > 65535) {
			snprintf(err, errlen, "REDIS_CLUSTER: \"%.*s\" has a bad port", (int)len, p);
			goto bad;
		}
		/* [::1]:7000 */
		if (hl > 2 && p[0] == '[' && p[hl - 1] == ']') {
			memcpy(v[count].host, p + 1, hl - 2);
			v[count].host[hl - 2] = '\0';
		} else {
			memcpy(v[count].host, p, hl);
			v[count].host[hl] = '\0';
		}
		v[count].port = (int)pn;
		count++;
		if (!comma)
			break;
		p = comma + 1;
	}
	*out = v;
	*n = count;
	return 0;
bad:
	free(v);
	return -1;
}

/* rslot: what a Redis Cluster client needs to know about slots, apart from any connection.
 *
 * Redis Cluster splits keys (and sharded pub/sub channels) over 16,384 slots; a node owns
 * ranges of them. A key's slot is CRC16 (the XMODEM variant) of its hash tag, mod 16,384:
 * the tag is what lies between the first '{' and the first '}' after it, when that is not
 * empty; otherwise the whole key. Every key of one room carries `{<room>}` (lib/rkeys.def),
 * so one room lives in one slot.
 *
 * Written here by hand on purpose: Debian 12 ships hiredis 0.14 without cluster support and
 * no cluster-aware C client, and what is needed is small (this file, and the routing in
 * lib/rds.c and the broker). */
#ifndef CC_RSLOT_H
#define CC_RSLOT_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#define RSLOT_COUNT 16384

/* The slot of a key or sharded channel of len bytes (binary-safe). */
unsigned rslot_of(const char *key, size_t len);

struct rslot_node {
	char host[256];
	int port;
};

/* Which node serves each slot, from one answer to CLUSTER SLOTS. */
struct rslot_map {
	int nnodes;		  /* masters, each once */
	struct rslot_node *nodes; /* owned */
	short owner[RSLOT_COUNT]; /* index into nodes; -1: no node serves the slot */
	int covered;		  /* slots with an owner */
};

/* Fills m from a CLUSTER SLOTS reply (its masters only; replicas are not read from). A node
 * that names no host ("" or "?", the answer of a node that does not know its own address)
 * gets `fallback_host`, the host the answer came from. 0, or -1 with a message in err for an
 * answer of the wrong shape, a range or port out of bounds, or a host too long for a node
 * or with a NUL inside (m is then empty). Free with rslot_map_free(). */
int rslot_map_parse(struct rslot_map *m, const redisReply *rep, const char *fallback_host,
		    char *err, size_t errlen);
void rslot_map_free(struct rslot_map *m);
/* A map of one node owning every slot: a single server seen as a cluster. -1 out of memory. */
int rslot_map_single(struct rslot_map *m, const char *host, int port);
/* The node that serves slot, or NULL. */
const struct rslot_node *rslot_map_node(const struct rslot_map *m, unsigned slot);

/* An error reply "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>": 1 and the parts
 * (*ask 1 for ASK; an empty host means the node that answered), 0 for any other text. The
 * port is the part after the last ':', so IPv6 hosts work. Slot and port are decimal digits
 * only (no sign, no white space); a NUL ends the text. */
int rslot_redirect(const char *err, size_t len, int *ask, unsigned *slot, struct rslot_node *to);

/* Parses "host:port[,host:port...]" (REDIS_CLUSTER): 0 with a malloc'd array in *out (n
 * entries), -1 with a message in err for an empty list, a bad port, a host too long or more
 * than 64 entries. */
int rslot_parse_seeds(const char *list, struct rslot_node **out, int *n, char *err,
		      size_t errlen);

#endif

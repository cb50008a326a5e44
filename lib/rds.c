#include "rds.h"

#include "backoff.h"
#include "cfg.h"
#include "clock.h"
#include "errbuf.h"
#include "log.h"
#include "resolve.h"
#include "rscript.h"
#include "rslot.h"

#include <curl/curl.h>
#include <sys/socket.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int copy_part(CURLU *u, CURLUPart part, char *dst, size_t cap, int decode)
{
	char *v = NULL;
	dst[0] = '\0';
	if (curl_url_get(u, part, &v, decode ? CURLU_URLDECODE : 0) != CURLUE_OK)
		return 0; /* absent */
	size_t n = strlen(v);
	int rc = n < cap ? 0 : -1;
	if (rc == 0)
		memcpy(dst, v, n + 1);
	curl_free(v);
	return rc;
}

int rds_parse_url(const char *url, struct rds_target *t, char *err, size_t errlen)
{
	memset(t, 0, sizeof *t);
	strcpy(t->host, "127.0.0.1");
	t->port = 6379;
	if (!url || !*url)
		return 0;
	if (strncmp(url, "unix://", 7) == 0) {
		size_t n = strlen(url + 7);
		if (n == 0 || n >= sizeof t->socket) {
			snprintf(err, errlen, "REDIS_URL: bad socket path");
			return -1;
		}
		memcpy(t->socket, url + 7, n + 1);
		return 0;
	}
	int rc = -1;
	char scheme[16], portstr[16], path[64];
	CURLU *u = curl_url();
	if (!u) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
		snprintf(err, errlen, "REDIS_URL is not a URL: %s", url);
		goto out;
	}
	if (copy_part(u, CURLUPART_SCHEME, scheme, sizeof scheme, 0) < 0 ||
	    strcmp(scheme, "redis") != 0) {
		snprintf(err, errlen, "REDIS_URL must start with redis:// or unix://");
		goto out;
	}
	if (copy_part(u, CURLUPART_HOST, t->host, sizeof t->host, 0) < 0 || !t->host[0] ||
	    copy_part(u, CURLUPART_PASSWORD, t->password, sizeof t->password, 1) < 0 ||
	    copy_part(u, CURLUPART_PORT, portstr, sizeof portstr, 0) < 0 ||
	    copy_part(u, CURLUPART_PATH, path, sizeof path, 0) < 0) {
		snprintf(err, errlen, "REDIS_URL has a bad part: %s", url);
		goto out;
	}
	/* IPv6 literals come back bracketed */
	size_t hl = strlen(t->host);
	if (hl > 2 && t->host[0] == '[' && t->host[hl - 1] == ']') {
		memmove(t->host, t->host + 1, hl - 2);
		t->host[hl - 2] = '\0';
	}
	if (portstr[0])
		t->port = atoi(portstr);
	if (t->port <= 0 || t->port > 65535) {
		snprintf(err, errlen, "REDIS_URL has a bad port");
		goto out;
	}
	if (path[0] && strcmp(path, "/") != 0) {
		char *end;
		long db = strtol(path + 1, &end, 10);
		if (*end || db < 0 || db > 1000) {
			snprintf(err, errlen, "REDIS_URL has a bad database number");
			goto out;
		}
		t->db = (int)db;
	}
	rc = 0;
out:
	curl_url_cleanup(u);
	return rc;
}

redisContext *rds_connect(const struct rds_target *t, int timeout_ms, char *err, size_t errlen)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	redisContext *c;
	if (t->socket[0]) {
		c = redisConnectUnixWithTimeout(t->socket, tv);
	} else {
		/* hiredis would look a name up with getaddrinfo, outside its timeout: the name is
		 * resolved first, within the same bound, and hiredis only parses the addresses,
		 * tried IPv4 first (as hiredis did) within what is left of the bound */
		struct resolved res;
		long long t0 = clock_mono_ms();
		if (resolve_host(t->host, timeout_ms, &res) < 0) {
			snprintf(err, errlen, "redis: %s", res.err);
			return NULL;
		}
		c = NULL;
		for (int pass = 0; pass < 2 && !(c && !c->err); pass++) {
			for (int i = 0; i < res.n && !(c && !c->err); i++) {
				if (res.family[i] != (pass == 0 ? AF_INET : AF_INET6))
					continue;
				long left = timeout_ms - (long)(clock_mono_ms() - t0);
				if (left < 1)
					left = 1;
				struct timeval rest = {left / 1000, (left % 1000) * 1000};
				redisFree(c);
				c = redisConnectWithTimeout(res.addr[i], t->port, rest);
			}
		}
	}
	redisReply *r = NULL;
	if (!c) {
		snprintf(err, errlen, "redis: out of memory");
		return NULL;
	}
	if (c->err) {
		snprintf(err, errlen, "redis: %s", c->errstr);
		goto fail;
	}
	if (redisSetTimeout(c, tv) != REDIS_OK) {
		snprintf(err, errlen, "redis: cannot set timeout");
		goto fail;
	}
	if (t->password[0]) {
		r = redisCommand(c, "AUTH %s", t->password);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			snprintf(err, errlen, "redis: AUTH failed");
			goto fail;
		}
		freeReplyObject(r);
		r = NULL;
	}
	if (t->db) {
		r = redisCommand(c, "SELECT %d", t->db);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			snprintf(err, errlen, "redis: SELECT %d failed", t->db);
			goto fail;
		}
		freeReplyObject(r);
	}
	return c;
fail:
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return NULL;
}

int rds_config_env(struct rds_target *t, const char *default_url, char *err, size_t errlen)
{
	if (rds_parse_url(cfg_str("REDIS_URL", default_url), t, err, errlen) < 0)
		return -1;
	const char *pw = cfg_str("REDIS_PASSWORD", NULL);
	if (pw && !t->password[0]) {
		if (strlen(pw) >= sizeof t->password) {
			errbuf_set(err, errlen, "REDIS_PASSWORD is too long");
			return -1;
		}
		strcpy(t->password, pw);
	}
	const char *cl = cfg_str("REDIS_CLUSTER", NULL);
	if (cl) {
		struct rslot_node *seeds;
		int n;
		char why[200];
		if (strlen(cl) >= sizeof t->cluster) {
			errbuf_set(err, errlen, "REDIS_CLUSTER is too long");
			return -1;
		}
		if (rslot_parse_seeds(cl, &seeds, &n, why, sizeof why) < 0) {
			errbuf_set(err, errlen, "%s", why);
			return -1;
		}
		free(seeds);
		strcpy(t->cluster, cl);
		/* the URL's password belongs to the one server it names */
		if (pw)
			strcpy(t->password, pw);
		else
			t->password[0] = '\0';
		t->db = 0;
	}
	const struct cfg_setting table[] = {
		{"REDIS_WAIT_REPLICAS", cl ? 1 : 0, 0, 16, &t->wait_replicas},
		{"REDIS_WAIT_MS", 200, 1, 60000, &t->wait_ms},
		{"REDIS_RETRY_MS", cl ? 5000 : 0, 0, 60000, &t->retry_ms},
	};
	char why[256];
	if (cfg_load(table, sizeof table / sizeof table[0], why, sizeof why) < 0) {
		errbuf_set(err, errlen, "%s", why);
		return -1;
	}
	return 0;
}

/* ---- the cluster-aware client ---- */

#define RDS_MAX_CONNS 32
#define RDS_MAX_REDIRECTS 5
#define RDS_BACKOFF_FIRST_MS 50
#define RDS_BACKOFF_MAX_MS 800

struct rds_conn {
	struct rslot_node node; /* host "" for the single server (its target says where) */
	redisContext *c;	/* NULL: closed */
	unsigned long serial;	/* changes each time c is (re)opened */
	long long failed_ms;	/* when a connect last failed (monotonic), 0: never */
};

struct rds {
	struct rds_target t;
	int timeout_ms;
	int cluster;
	struct rslot_node *seeds;
	int nseeds;
	struct rslot_map map;
	int have_map;	 /* map read from the cluster at least once */
	int refresh_due; /* a MOVED was seen: read the whole map before the next call */
	struct rds_conn conns[RDS_MAX_CONNS];
	int nconns;
	unsigned long serials;
	/* the connection and slot of the last command that got an answer (rds_wait) */
	int last;
	unsigned long last_serial;
	unsigned last_slot;
	struct rds_stats stats;
	int told_cluster; /* the "REDIS_URL names a cluster node" error was logged */
	void (*progress)(void); /* rds_on_progress */
	char err[256];
};

void rds_on_progress(struct rds *d, void (*fn)(void))
{
	d->progress = fn;
}

static void progress(const struct rds *d)
{
	if (d->progress)
		d->progress();
}

void rds_stats(const struct rds *d, struct rds_stats *out)
{
	*out = d->stats;
}

struct rds *rds_new(const struct rds_target *t, int timeout_ms)
{
	struct rds *d = calloc(1, sizeof *d);
	if (!d)
		return NULL;
	d->t = *t;
	d->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
	d->last = -1;
	for (int i = 0; i < RSLOT_COUNT; i++)
		d->map.owner[i] = -1;
	if (t->cluster[0]) {
		d->cluster = 1;
		if (rslot_parse_seeds(t->cluster, &d->seeds, &d->nseeds, d->err, sizeof d->err) < 0)
			goto fail;
		/* until the cluster is asked: no slot has an owner */
	} else {
		/* a single server: one node (named by its socket path or host) owns every slot */
		if (rslot_map_single(&d->map, t->socket[0] ? t->socket : t->host,
				     t->socket[0] ? 0 : t->port) < 0)
			goto fail;
		d->have_map = 1;
	}
	return d;
fail:
	free(d->seeds);
	free(d);
	return NULL;
}

static void conn_close(struct rds *d, int i)
{
	if (d->conns[i].c)
		redisFree(d->conns[i].c);
	d->conns[i].c = NULL;
}

void rds_reset(struct rds *d)
{
	for (int i = 0; i < d->nconns; i++)
		conn_close(d, i);
}

void rds_free(struct rds *d)
{
	if (!d)
		return;
	rds_reset(d);
	rslot_map_free(&d->map);
	free(d->seeds);
	free(d);
}

int rds_is_cluster(const struct rds *d)
{
	return d->cluster;
}

const char *rds_error(const struct rds *d)
{
	return d->err[0] ? d->err : "redis: no error";
}

static int same_node(const struct rslot_node *a, const struct rslot_node *b)
{
	return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* 1 when an idle connection can no longer carry a command: hiredis saw an error on it, or
 * the socket is readable, which on a connection with no command outstanding means the
 * server closed it (a restart, a killed node) or sent what we never asked for. Found
 * before anything is sent, so the command can go on a new connection without the question
 * whether it ran. */
static int conn_gone(redisContext *c)
{
	if (c->err)
		return 1;
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	int n = poll(&p, 1, 0);
	return n != 0; /* readable, hung up, or poll failed */
}

/* The index of an open connection to node, opening one when needed; -1 with d->err when
 * the node cannot be reached (nothing was sent). */
static int conn_get(struct rds *d, const struct rslot_node *node)
{
	int i, free_slot = -1;
	for (i = 0; i < d->nconns; i++)
		if (same_node(&d->conns[i].node, node))
			break;
	if (i < d->nconns && d->conns[i].c) {
		if (!conn_gone(d->conns[i].c))
			return i;
		conn_close(d, i);
	}
	if (i == d->nconns) {
		/* a new node: a closed entry, a new one, or close the first (the map changed
		 * under a long-lived process and left connections to nodes it no longer uses) */
		for (int j = 0; j < d->nconns && free_slot < 0; j++)
			if (!d->conns[j].c)
				free_slot = j;
		if (free_slot < 0 && d->nconns < RDS_MAX_CONNS)
			free_slot = d->nconns++;
		if (free_slot < 0) {
			free_slot = 0;
			conn_close(d, 0);
		}
		i = free_slot;
		d->conns[i].node = *node;
		d->conns[i].failed_ms = 0;
	}
	struct rds_target t;
	if (d->cluster) {
		memset(&t, 0, sizeof t);
		snprintf(t.host, sizeof t.host, "%s", node->host);
		t.port = node->port;
		memcpy(t.password, d->t.password, sizeof t.password);
	} else {
		t = d->t;
	}
	char why[200];
	progress(d);
	d->conns[i].c = rds_connect(&t, d->timeout_ms, why, sizeof why);
	if (!d->conns[i].c) {
		d->conns[i].failed_ms = clock_mono_ms();
		errbuf_set(d->err, sizeof d->err, "%s (%s:%d)", why, node->host, node->port);
		return -1;
	}
	d->conns[i].serial = ++d->serials;
	d->stats.connects++;
	return i;
}

/* Reads CLUSTER SLOTS from the first node that answers: open connections, then the nodes
 * of the map, then the seeds. 0 when the map was replaced. */
static int refresh_from(struct rds *d, const struct rslot_node *node)
{
	progress(d);
	int ci = conn_get(d, node);
	if (ci < 0)
		return -1;
	redisReply *rep = redisCommand(d->conns[ci].c, "CLUSTER SLOTS");
	if (!rep) {
		conn_close(d, ci);
		return -1;
	}
	struct rslot_map *m = malloc(sizeof *m);
	char why[200];
	int rc = -1;
	if (!m)
		goto out;
	if (rep->type == REDIS_REPLY_ERROR) {
		errbuf_set(d->err, sizeof d->err, "redis: CLUSTER SLOTS: %s", rep->str);
		goto out;
	}
	if (rslot_map_parse(m, rep, node->host, why, sizeof why) < 0) {
		errbuf_set(d->err, sizeof d->err, "redis: %s", why);
		goto out;
	}
	if (m->covered == 0) {
		rslot_map_free(m);
		errbuf_set(d->err, sizeof d->err, "redis: %s:%d serves no slot yet", node->host,
			   node->port);
		goto out;
	}
	rslot_map_free(&d->map);
	memcpy(&d->map, m, sizeof *m);
	d->have_map = 1;
	d->refresh_due = 0;
	d->stats.refreshes++;
	rc = 0;
out:
	free(m);
	freeReplyObject(rep);
	return rc;
}

static int in_map(const struct rds *d, const struct rslot_node *n)
{
	for (int i = 0; i < d->map.nnodes; i++)
		if (same_node(&d->map.nodes[i], n))
			return 1;
	return 0;
}

static int recently_failed(const struct rds *d, const struct rslot_node *n)
{
	for (int i = 0; i < d->nconns; i++)
		if (same_node(&d->conns[i].node, n))
			return !d->conns[i].c && d->conns[i].failed_ms &&
			       clock_mono_ms() - d->conns[i].failed_ms < 1000;
	return 0;
}

static int refresh(struct rds *d)
{
	if (!d->cluster)
		return 0;
	char keep[256];
	snprintf(keep, sizeof keep, "%s", d->err);
	/* masters of the map with an open connection first: no connect to pay, and a master
	 * knows its slots before the replicas hear of a change */
	for (int i = 0; i < d->nconns; i++)
		if (d->conns[i].c && !conn_gone(d->conns[i].c) && in_map(d, &d->conns[i].node)) {
			struct rslot_node n = d->conns[i].node;
			if (refresh_from(d, &n) == 0)
				goto done;
		}
	/* then any node of the map, but not one that just refused a connection (a dead
	 * machine costs a whole connect timeout); the seeds are always tried */
	for (int i = 0; i < d->map.nnodes; i++) {
		struct rslot_node n = d->map.nodes[i];
		if (!recently_failed(d, &n) && refresh_from(d, &n) == 0)
			goto done;
	}
	for (int i = 0; i < d->nseeds; i++)
		if (refresh_from(d, &d->seeds[i]) == 0)
			goto done;
	if (keep[0])
		snprintf(d->err, sizeof d->err, "%s", keep);
	return -1;
done:
	if (keep[0])
		snprintf(d->err, sizeof d->err, "%s", keep);
	return 0;
}

/* MOVED: the slot's new owner, at once (the full map follows before the next call). */
static void map_move(struct rds *d, unsigned slot, const struct rslot_node *to)
{
	int idx = -1;
	for (int i = 0; i < d->map.nnodes; i++)
		if (same_node(&d->map.nodes[i], to))
			idx = i;
	if (idx < 0) {
		struct rslot_node *n =
			realloc(d->map.nodes, (size_t)(d->map.nnodes + 1) * sizeof *n);
		if (!n)
			return; /* the refresh will bring it */
		d->map.nodes = n;
		n[d->map.nnodes] = *to;
		idx = d->map.nnodes++;
	}
	if (d->map.owner[slot] < 0)
		d->map.covered++;
	d->map.owner[slot] = (short)idx;
}

int rds_ready(struct rds *d)
{
	d->err[0] = '\0';
	for (int i = 0; i < d->nconns; i++)
		if (d->conns[i].c && !d->conns[i].c->err)
			return 0;
	if (d->cluster && (!d->have_map || d->refresh_due))
		return refresh(d) == 0 ? 0 : -1;
	if (d->map.nnodes == 0)
		return -1;
	struct rslot_node n = d->map.nodes[0];
	return conn_get(d, &n) < 0 ? -1 : 0;
}

static const char *const read_only_cmds[] = {
	"GET",	   "MGET",	 "HGET",     "HMGET",	 "HGETALL", "HLEN",   "HEXISTS",
	"EXISTS",  "TTL",	 "PTTL",     "TYPE",	 "LRANGE",  "LLEN",   "LINDEX",
	"LPOS",	   "ZRANGE",	 "ZRANGEBYSCORE", "ZREVRANGE", "ZRANK", "ZSCORE", "ZCARD",
	"ZCOUNT",  "SMEMBERS",	 "SISMEMBER", "SCARD",	 "STRLEN",  "XLEN",   "XRANGE",
	"XREVRANGE", "XPENDING", "XINFO",    "PING",	 "CLUSTER", "INFO",   "TIME",
};

int rds_read_only(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof read_only_cmds / sizeof read_only_cmds[0]; i++)
		if (strlen(read_only_cmds[i]) == len && strncasecmp(read_only_cmds[i], name, len) == 0)
			return 1;
	return 0;
}

/* The command's name from its wire form "*N\r\n$L\r\nNAME\r\n...": 1 when it only reads. */
static int formatted_read_only(const char *cmd, size_t len)
{
	const char *p = memchr(cmd, '\n', len);
	if (!p || (size_t)(p - cmd) + 2 >= len || p[1] != '$')
		return 0;
	char *end;
	long n = strtol(p + 2, &end, 10);
	if (n <= 0 || end + 2 + n > cmd + len || end[0] != '\r')
		return 0;
	return rds_read_only(end + 2, (size_t)n);
}

/* Whether an error reply means "not run, ask again later" (after reading the map again). */
static int transient_refusal(const redisReply *r)
{
	static const char *const words[] = {"TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN",
					    "READONLY"};
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
		size_t n = strlen(words[i]);
		if (r->len >= n && strncmp(r->str, words[i], n) == 0 &&
		    (r->len == n || r->str[n] == ' '))
			return 1;
	}
	return 0;
}

/* An error reply kept as the reason of the call (rds_error), for a caller that only learns
 * that its command failed. */
static void note_error_reply(struct rds *d, const redisReply *rep)
{
	errbuf_set(d->err, sizeof d->err, "redis: %.*s", (int)rep->len, rep->str ? rep->str : "");
}

/* One server (no REDIS_CLUSTER) that answers MOVED or ASK is a node of a Redis Cluster: the
 * command did not run, and it never will there, whatever is retried. 1 then, with the reason
 * in d->err (logged once per client: every later call of the process fails the same way). */
static int single_is_cluster(struct rds *d, const redisReply *rep)
{
	int ask;
	unsigned slot;
	struct rslot_node to;
	if (d->cluster || rep->type != REDIS_REPLY_ERROR ||
	    !rslot_redirect(rep->str, rep->len, &ask, &slot, &to))
		return 0;
	char where[300];
	if (d->t.socket[0])
		snprintf(where, sizeof where, "%s", d->t.socket);
	else
		snprintf(where, sizeof where, "%s:%d", d->t.host, d->t.port);
	errbuf_set(d->err, sizeof d->err,
		   "redis: %s is a node of a Redis Cluster (it answered %.*s): REDIS_URL names "
		   "one server; set REDIS_CLUSTER to the cluster's nodes",
		   where, (int)(rep->len < 40 ? rep->len : 40), rep->str);
	if (!d->told_cluster) {
		d->told_cluster = 1;
		log_error("%s", d->err);
	}
	return 1;
}

/* Writes the whole request: 0; -1 when it could not be written in full (it did not run). */
static int send_all(redisContext *c, const char *cmd, size_t len)
{
	if (redisAppendFormattedCommand(c, cmd, len) != REDIS_OK)
		return -1;
	int done = 0;
	do {
		if (redisBufferWrite(c, &done) != REDIS_OK)
			return -1;
	} while (!done);
	return 0;
}

static const struct rslot_node *any_node(struct rds *d)
{
	if (d->last >= 0 && d->conns[d->last].c)
		return &d->conns[d->last].node;
	for (int i = 0; i < d->map.nnodes; i++)
		for (int s = 0; s < RSLOT_COUNT; s++)
			if (d->map.owner[s] == i)
				return &d->map.nodes[i];
	return NULL;
}

/* Sends one formatted command where key's slot lives and follows the cluster until an
 * answer comes or the deadline passes (see the header for what is resent). */
static redisReply *route(struct rds *d, const char *key, size_t keylen, const char *cmd,
			 size_t len)
{
	d->err[0] = '\0';
	if (d->cluster && (!d->have_map || d->refresh_due))
		(void)refresh(d); /* a failure shows below as a slot without an owner */
	int may_resend = formatted_read_only(cmd, len);
	long long deadline = clock_mono_ms() + d->t.retry_ms;
	struct backoff bo = {RDS_BACKOFF_FIRST_MS, RDS_BACKOFF_MAX_MS, 0};
	unsigned slot = key ? rslot_of(key, keylen) : RSLOT_COUNT;
	int redirects = 0, asking = 0;
	struct rslot_node ask_to;
	for (;;) {
		const struct rslot_node *np;
		struct rslot_node node;
		progress(d); /* each try below waits one timeout at most */
		if (asking)
			np = &ask_to;
		else
			np = key ? rslot_map_node(&d->map, slot) : any_node(d);
		if (!np) {
			if (!d->err[0])
				errbuf_set(d->err, sizeof d->err,
					   "redis: no node serves slot %u (the cluster is down)", slot);
			goto again;
		}
		node = *np; /* the map may change below */
		int ci = conn_get(d, &node);
		if (ci < 0)
			goto again;
		redisContext *c = d->conns[ci].c;
		if (asking) {
			redisReply *a = redisCommand(c, "ASKING");
			int ok = a && a->type == REDIS_REPLY_STATUS;
			if (a)
				freeReplyObject(a);
			if (!ok) {
				errbuf_set(d->err, sizeof d->err, "redis: ASKING failed on %s:%d",
					   node.host, node.port);
				if (!a)
					conn_close(d, ci);
				goto again;
			}
		}
		if (send_all(c, cmd, len) < 0) {
			errbuf_set(d->err, sizeof d->err, "redis: %s (%s:%d)",
				   c->errstr[0] ? c->errstr : "cannot send", node.host, node.port);
			conn_close(d, ci);
			goto again;
		}
		redisReply *rep = NULL;
		if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep) {
			/* hiredis reports a read timeout as EAGAIN's text */
			int timed_out = c->err == REDIS_ERR_IO &&
					strstr(c->errstr, "temporarily unavailable") != NULL;
			errbuf_set(d->err, sizeof d->err, "redis: %s (%s:%d)",
				   timed_out ? "no answer in time" : c->errstr[0] ? c->errstr : "no reply",
				   node.host, node.port);
			conn_close(d, ci);
			if (!may_resend) {
				/* it was sent and may have run: never sent twice */
				return NULL;
			}
			goto again;
		}
		int ask;
		unsigned rslot;
		struct rslot_node to;
		if (rep->type == REDIS_REPLY_ERROR && d->cluster &&
		    rslot_redirect(rep->str, rep->len, &ask, &rslot, &to)) {
			errbuf_set(d->err, sizeof d->err, "redis: %.*s", (int)rep->len, rep->str);
			freeReplyObject(rep);
			if (!to.host[0])
				to = node;
			if (++redirects > RDS_MAX_REDIRECTS) {
				errbuf_set(d->err, sizeof d->err,
					   "redis: more than %d redirections for slot %u",
					   RDS_MAX_REDIRECTS, rslot);
				return NULL;
			}
			if (ask) {
				d->stats.asked++;
				asking = 1;
				ask_to = to;
			} else {
				d->stats.moved++;
				asking = 0;
				map_move(d, rslot, &to);
				d->refresh_due = 1;
			}
			continue;
		}
		if (single_is_cluster(d, rep)) {
			freeReplyObject(rep);
			return NULL;
		}
		if (rep->type == REDIS_REPLY_ERROR && transient_refusal(rep)) {
			errbuf_set(d->err, sizeof d->err, "redis: %.*s (%s:%d)", (int)rep->len,
				   rep->str, node.host, node.port);
			freeReplyObject(rep);
			asking = 0;
			goto again;
		}
		if (rep->type == REDIS_REPLY_ERROR)
			note_error_reply(d, rep);
		d->last = ci;
		d->last_serial = d->conns[ci].serial;
		d->last_slot = slot;
		return rep;
	again:
		/* nothing ran: read the map again and retry after a pause, until the deadline */
		if (d->cluster)
			d->refresh_due = 1;
		long wait = backoff_next(&bo);
		if (clock_mono_ms() + wait > deadline) {
			if (d->t.retry_ms > 0) {
				char last[sizeof d->err];
				snprintf(last, sizeof last, "%s", d->err);
				errbuf_set(d->err, sizeof d->err,
					   "redis: unavailable after %ld ms of retries; last: %s",
					   d->t.retry_ms, last);
			}
			return NULL;
		}
		d->stats.retries++;
		progress(d);
		clock_sleep_ms(wait);
		progress(d);
		if (d->cluster)
			(void)refresh(d);
	}
}

static redisReply *route_argv(struct rds *d, const char *key, size_t keylen, int argc,
			      const char *const *argv, const size_t *lens)
{
	char *cmd = NULL;
	int len = redisFormatCommandArgv(&cmd, argc, (const char **)argv, lens);
	if (len < 0 || !cmd) {
		errbuf_set(d->err, sizeof d->err, "redis: out of memory");
		return NULL;
	}
	redisReply *r = route(d, key, keylen, cmd, (size_t)len);
	redisFreeCommand(cmd);
	return r;
}

redisReply *rds_cmd(struct rds *d, const char *key, const char *fmt, ...)
{
	char *cmd = NULL;
	va_list ap;
	va_start(ap, fmt);
	int len = redisvFormatCommand(&cmd, fmt, ap);
	va_end(ap);
	if (len < 0 || !cmd) {
		errbuf_set(d->err, sizeof d->err, "redis: cannot format the command");
		return NULL;
	}
	redisReply *r = route(d, key, key ? strlen(key) : 0, cmd, (size_t)len);
	redisFreeCommand(cmd);
	return r;
}

redisReply *rds_cmdv(struct rds *d, const char *key, int argc, const char *const *argv,
		     const size_t *lens)
{
	return route_argv(d, key, key ? strlen(key) : 0, argc, argv, lens);
}

redisReply *rds_script(struct rds *d, const struct rscript *s, int nkeys, int argc,
		       const char *const *args, const size_t *lens)
{
	const char *argv[RDS_SCRIPT_MAX_ARGS + 3];
	size_t lv[RDS_SCRIPT_MAX_ARGS + 3];
	char nk[16];
	if (argc < 0 || argc > RDS_SCRIPT_MAX_ARGS || nkeys < 0 || nkeys > argc) {
		errbuf_set(d->err, sizeof d->err, "redis: a script call with bad arguments");
		return NULL;
	}
	/* Redis Cluster runs a script only when all its KEYS share one slot: refuse such a call
	 * here, on a single server too, so every test catches it (docs/INTERNALS.md, "Redis
	 * Cluster: one slot per script") */
	for (int i = 1; i < nkeys; i++)
		if (rslot_of(args[i], lens ? lens[i] : strlen(args[i])) !=
		    rslot_of(args[0], lens ? lens[0] : strlen(args[0]))) {
			log_error("script %s: KEYS[1] and KEYS[%d] hash to two slots", s->name, i + 1);
			errbuf_set(d->err, sizeof d->err, "redis: a script's keys in two slots");
			return NULL;
		}
	snprintf(nk, sizeof nk, "%d", nkeys);
	argv[0] = "EVALSHA";
	argv[1] = s->sha;
	argv[2] = nk;
	for (int i = 0; i < argc; i++) {
		argv[3 + i] = args[i];
		lv[3 + i] = lens ? lens[i] : strlen(args[i]);
	}
	lv[0] = 7;
	lv[1] = strlen(s->sha);
	lv[2] = strlen(nk);
	/* the first key routes (binary-safe) */
	const char *key = nkeys > 0 ? argv[3] : NULL;
	size_t keylen = nkeys > 0 ? lv[3] : 0;
	redisReply *r = route_argv(d, key, keylen, argc + 3, argv, lv);
	if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
		freeReplyObject(r);
		argv[0] = "EVAL";
		lv[0] = 4;
		argv[1] = s->text;
		lv[1] = strlen(s->text);
		r = route_argv(d, key, keylen, argc + 3, argv, lv);
	}
	return r;
}

int rds_reply_failed(struct rds *d, redisReply *rep, char *err, size_t errlen)
{
	if (!rep) {
		errbuf_set(err, errlen, "%s", rds_error(d));
		return 1;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		errbuf_set(err, errlen, "redis: %.*s", (int)rep->len, rep->str);
		freeReplyObject(rep);
		return 1;
	}
	return 0;
}

long rds_wait_replicas(const struct rds *d)
{
	return d->t.wait_replicas;
}

struct rds_mark rds_mark_get(const struct rds *d)
{
	struct rds_mark m = {.conn = d->last, .serial = d->last_serial, .slot = d->last_slot};
	return m;
}

void rds_mark_set(struct rds *d, struct rds_mark m)
{
	d->last = m.conn;
	d->last_serial = m.serial;
	d->last_slot = m.slot;
}

int rds_wait_since(struct rds *d, struct rds_mark since, const char *key, char *err,
		   size_t errlen)
{
	if (d->t.wait_replicas <= 0)
		return 0;
	if (d->last != since.conn || d->last_serial != since.serial) {
		errbuf_set(err, errlen, "redis: the connection that wrote is gone; cannot WAIT");
		return -1;
	}
	return rds_wait(d, key, err, errlen);
}

int rds_wait(struct rds *d, const char *key, char *err, size_t errlen)
{
	if (d->t.wait_replicas <= 0)
		return 0;
	unsigned slot = key ? rslot_of(key, strlen(key)) : RSLOT_COUNT;
	if (d->last < 0 || !d->conns[d->last].c || d->conns[d->last].serial != d->last_serial ||
	    d->last_slot != slot) {
		errbuf_set(err, errlen, "redis: the connection that wrote is gone; cannot WAIT");
		return -1;
	}
	redisContext *c = d->conns[d->last].c;
	redisReply *r = redisCommand(c, "WAIT %ld %ld", d->t.wait_replicas, d->t.wait_ms);
	if (!r) {
		errbuf_set(err, errlen, "redis: WAIT: %s", c->errstr[0] ? c->errstr : "no reply");
		conn_close(d, d->last);
		return -1;
	}
	int rc = 0;
	if (r->type != REDIS_REPLY_INTEGER) {
		errbuf_set(err, errlen, "redis: WAIT: %.*s", (int)r->len, r->str ? r->str : "");
		rc = -1;
	} else if (r->integer < d->t.wait_replicas) {
		errbuf_set(err, errlen, "redis: %lld of %ld replicas acknowledged the write in %ld ms",
			   r->integer, d->t.wait_replicas, d->t.wait_ms);
		rc = -1;
	}
	freeReplyObject(r);
	return rc;
}

/* ---- pipelines ---- */

struct pipe_cmd {
	char *cmd; /* wire form, kept for a redirection */
	int len;
	char *key;
	int ci;		      /* the connection it went on */
	unsigned long serial; /* of that connection when it was queued */
	redisReply *rep;      /* its answer once collected; NULL: none */
};

struct rds_pipe {
	struct rds *d;
	struct pipe_cmd *v;
	int n, cap, next;
	int failed;    /* an add failed: nothing is sent, every reply is NULL */
	int collected; /* every answer has been read */
};

struct rds_pipe *rds_pipe_new(struct rds *d)
{
	struct rds_pipe *p = calloc(1, sizeof *p);
	if (!p) {
		errbuf_set(d->err, sizeof d->err, "redis: out of memory");
		return NULL;
	}
	p->d = d;
	d->err[0] = '\0';
	if (d->cluster && (!d->have_map || d->refresh_due))
		(void)refresh(d);
	return p;
}

int rds_pipe_add(struct rds_pipe *p, const char *key, int argc, const char *const *argv,
		 const size_t *lens)
{
	struct rds *d = p->d;
	if (p->failed || p->collected)
		return -1;
	if (p->n == RDS_PIPE_MAX) {
		errbuf_set(d->err, sizeof d->err, "redis: a pipeline of more than %d commands",
			   RDS_PIPE_MAX);
		goto fail;
	}
	if (p->n == p->cap) {
		int cap = p->cap ? p->cap * 2 : 16;
		struct pipe_cmd *v = realloc(p->v, (size_t)cap * sizeof *v);
		if (!v)
			goto oom;
		p->v = v;
		p->cap = cap;
	}
	struct pipe_cmd *pc = &p->v[p->n];
	memset(pc, 0, sizeof *pc);
	pc->len = redisFormatCommandArgv(&pc->cmd, argc, (const char **)argv, lens);
	if (pc->len < 0 || !pc->cmd)
		goto oom;
	if (key && !(pc->key = strdup(key))) {
		redisFreeCommand(pc->cmd);
		goto oom;
	}
	const struct rslot_node *np = key ? rslot_map_node(&d->map, rslot_of(key, strlen(key)))
					  : any_node(d);
	struct rslot_node node;
	if (!np) {
		errbuf_set(d->err, sizeof d->err, "redis: no node serves the slot of %s",
			   key ? key : "(any)");
		goto drop;
	}
	node = *np;
	/* a connection with commands of this pipeline queued on it is reused as it is (the
	 * readiness check would take their pending output for a hang-up) */
	pc->ci = -1;
	for (int i = 0; i < p->n; i++)
		if (d->conns[p->v[i].ci].c && d->conns[p->v[i].ci].serial == p->v[i].serial &&
		    same_node(&d->conns[p->v[i].ci].node, &node))
			pc->ci = p->v[i].ci;
	if (pc->ci < 0)
		pc->ci = conn_get(d, &node);
	if (pc->ci < 0)
		goto drop;
	pc->serial = d->conns[pc->ci].serial;
	if (redisAppendFormattedCommand(d->conns[pc->ci].c, pc->cmd, (size_t)pc->len) != REDIS_OK) {
		errbuf_set(d->err, sizeof d->err, "redis: out of memory");
		goto drop;
	}
	p->n++;
	return 0;
drop:
	redisFreeCommand(pc->cmd);
	free(pc->key);
	goto fail;
oom:
	errbuf_set(d->err, sizeof d->err, "redis: out of memory");
fail:
	p->failed = 1;
	return -1;
}

/* Reads every answer, in order, before anything else is sent on these connections; then
 * sends again, alone, each command that was redirected or refused (it did not run). */
static void pipe_collect(struct rds_pipe *p)
{
	struct rds *d = p->d;
	p->collected = 1;
	for (int i = 0; i < p->n; i++) {
		struct pipe_cmd *pc = &p->v[i];
		struct rds_conn *cn = &d->conns[pc->ci];
		if (p->failed || !cn->c || cn->serial != pc->serial)
			continue;
		progress(d);
		if (redisGetReply(cn->c, (void **)&pc->rep) != REDIS_OK || !pc->rep) {
			errbuf_set(d->err, sizeof d->err, "redis: %s (%s:%d)",
				   cn->c->errstr[0] ? cn->c->errstr : "no reply", cn->node.host,
				   cn->node.port);
			pc->rep = NULL;
			conn_close(d, pc->ci); /* the rest queued on it is lost with it */
		}
	}
	if (p->failed)
		return;
	for (int i = 0; i < p->n; i++) {
		struct pipe_cmd *pc = &p->v[i];
		int ask;
		unsigned slot;
		struct rslot_node to;
		if (!pc->rep || pc->rep->type != REDIS_REPLY_ERROR)
			continue;
		if (single_is_cluster(d, pc->rep)) {
			freeReplyObject(pc->rep);
			pc->rep = NULL;
			continue;
		}
		int redirected = d->cluster && rslot_redirect(pc->rep->str, pc->rep->len, &ask,
							      &slot, &to);
		if (!redirected && !(d->cluster && transient_refusal(pc->rep))) {
			note_error_reply(d, pc->rep);
			continue;
		}
		/* it did not run: sent again alone (a refusal carries no node to note) */
		if (redirected && !ask && to.host[0]) {
			d->stats.moved++;
			map_move(d, slot, &to);
			d->refresh_due = 1;
		}
		freeReplyObject(pc->rep);
		pc->rep = route(d, pc->key, pc->key ? strlen(pc->key) : 0, pc->cmd, (size_t)pc->len);
		pc->ci = -1; /* route() noted where it went */
	}
	/* the connection of the pipeline's last command that was answered where it was
	 * queued, for rds_wait (a write to WAIT for goes last) */
	for (int i = 0; i < p->n; i++) {
		struct pipe_cmd *pc = &p->v[i];
		if (pc->ci < 0 || !pc->rep || pc->rep->type == REDIS_REPLY_ERROR)
			continue;
		d->last = pc->ci;
		d->last_serial = pc->serial;
		d->last_slot = pc->key ? rslot_of(pc->key, strlen(pc->key)) : RSLOT_COUNT;
	}
}

redisReply *rds_pipe_reply(struct rds_pipe *p)
{
	if (p->failed || p->next >= p->n)
		return NULL;
	if (!p->collected)
		pipe_collect(p);
	redisReply *rep = p->v[p->next].rep;
	p->v[p->next++].rep = NULL;
	if (!rep && !p->d->err[0])
		errbuf_set(p->d->err, sizeof p->d->err, "redis: a pipeline's connection was lost");
	return rep;
}

void rds_pipe_free(struct rds_pipe *p)
{
	if (!p)
		return;
	if (!p->collected && !p->failed && p->n > 0)
		pipe_collect(p); /* an answer nobody reads would be taken for the next command's */
	if (p->failed)
		for (int i = 0; i < p->n; i++)
			conn_close(p->d, p->v[i].ci); /* queued, never read */
	for (int i = 0; i < p->n; i++) {
		if (p->v[i].rep)
			freeReplyObject(p->v[i].rep);
		redisFreeCommand(p->v[i].cmd);
		free(p->v[i].key);
	}
	free(p->v);
	free(p);
}

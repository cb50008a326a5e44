/* rds: the synchronous Redis client of the API, the worker and the snapshotter, for one
 * server or a Redis Cluster, on hiredis.
 *
 * Written here by hand: Debian 12's hiredis (0.14) has no cluster support and Debian ships
 * no cluster-aware C client. The slot arithmetic and the parsing of CLUSTER SLOTS and of
 * MOVED/ASK answers are lib/rslot.h; this module adds connections, routing and retries.
 *
 * Where Redis is (rds_config_env, read once at start):
 *   REDIS_URL      redis://[:password@]host[:port][/db] or unix:///path/to/socket (default
 *                  redis://127.0.0.1:6379): one server, seen as a cluster whose one node
 *                  owns every slot.
 *   REDIS_CLUSTER  host:port[,host:port...]: seed nodes of a Redis Cluster; when set,
 *                  REDIS_URL is not used. The slot map is read from the cluster.
 *   REDIS_PASSWORD AUTH for every node (a password in REDIS_URL wins in single mode).
 *   REDIS_WAIT_REPLICAS, REDIS_WAIT_MS  durability of acknowledged writes (rds_wait).
 *   REDIS_RETRY_MS how long one call keeps trying while a cluster reconfigures (failover,
 *                  unreachable node); default 5000 with REDIS_CLUSTER, 0 with one server.
 *
 * A struct rds is one thread's view of Redis: the slot map and one lazily opened
 * redisContext per node (same timeouts, AUTH and SELECT as before). It is not thread-safe:
 * a program with threads gives each its own.
 *
 * Routing: every call names the key it touches (all keys of one command or script share a
 * slot); key NULL means any node. Answers that say the command did not run are handled here:
 *   MOVED      the slot's owner is updated at once, the whole map is read again before the
 *              next call, and the command is sent to the new owner;
 *   ASK        ASKING then the command, once, to the named node (a slot being migrated);
 *   TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN, READONLY (a replica that used to be our
 *              master): the map is read again and the command resent after a short back-off;
 *   at most RDS_MAX_REDIRECTS redirections per call.
 * A client of one server (no REDIS_CLUSTER) that gets MOVED or ASK was pointed at a node of a
 * Redis Cluster: the call fails (NULL; in a pipeline, that command's reply), rds_error says
 * to set REDIS_CLUSTER, and the first time is logged. Any other error reply is returned as it
 * is, and rds_error gives its text too.
 * Connections: an idle connection that the server closed (a restart, a kill -9 of the node:
 * the socket reads EOF) is found before anything is sent on it and replaced. A connection
 * that cannot be opened (the node is down) makes a cluster client read the map again, from
 * any node it knows or the seeds, and retry with back-off (lib/backoff.h) until
 * REDIS_RETRY_MS has passed; then the call fails ("unavailable"), never hangs: each
 * connect and command has the timeout given to rds_new.
 *
 * What is resent after the connection broke in the middle of a command (it was sent and no
 * answer came: it may or may not have run): only commands that only read (GET, MGET, HGET,
 * EXISTS, LRANGE, ZRANGE..., PING; rds_read_only()). Every write, and every EVALSHA of our
 * scripts, is never resent in that case: the call fails and the caller answers 503
 * (retryable) as before. A script that checks a revision (compare-and-set) would refuse a
 * second run of the same commit, but the first run's answer is lost with the connection and
 * the client must learn it from the document; the client's retry does exactly that. A
 * write is resent only when it certainly did not run: the connection could not be opened,
 * the request could not be written in full (Redis runs nothing it has not read whole), or
 * the answer was one of the redirections and refusals above, NOSCRIPT included. */
#ifndef CC_RDS_H
#define CC_RDS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "rslot.h"

struct rds_target {
	/* one server (REDIS_URL) */
	char host[256];
	int port;
	char socket[256]; /* non-empty for unix sockets */
	char password[256];
	int db;
	/* a cluster (REDIS_CLUSTER): its seed list as given, checked; empty for one server */
	char cluster[1024];
	long wait_replicas; /* rds_wait: replicas that must hold a write; 0: no WAIT */
	long wait_ms;	    /* rds_wait: how long WAIT may take */
	long retry_ms;	    /* how long one call retries while the cluster reconfigures */
};

int rds_parse_url(const char *url, struct rds_target *t, char *err, size_t errlen);
/* Everything above from the environment: REDIS_URL (default_url when unset), REDIS_CLUSTER,
 * REDIS_PASSWORD, REDIS_WAIT_REPLICAS (default 1 with REDIS_CLUSTER, else 0; 0..16),
 * REDIS_WAIT_MS (default 200; 1..60000), REDIS_RETRY_MS (0..60000). -1 with a message
 * naming the variable for a bad value. */
int rds_config_env(struct rds_target *t, const char *default_url, char *err, size_t errlen);
/* Connects to one server (timeout in ms for connect and every command), authenticates,
 * selects the db. Caller frees with redisFree(). NULL on failure, message in err. */
redisContext *rds_connect(const struct rds_target *t, int timeout_ms, char *err, size_t errlen);

struct rds;
/* A client for t (copied); opens nothing yet. timeout_ms bounds every connect and command.
 * NULL when out of memory or the seed list is bad (checked again). Free with rds_free(). */
struct rds *rds_new(const struct rds_target *t, int timeout_ms);
void rds_free(struct rds *d);

/* fn is called between the bounded steps of one call (each connect, each read of a
 * cluster's slot map, each retry's pause), so that a call that takes long because every
 * step waits out its timeout (a Redis that accepts but never answers, a cluster being
 * reconfigured) does not look like a hung program (lib/alive.h). NULL: none. Only for a
 * client the one thread that shows the program's signs of life uses. */
void rds_on_progress(struct rds *d, void (*fn)(void));
/* 1 in cluster mode. */
int rds_is_cluster(const struct rds *d);
/* Opens a connection to some node when none is open (and, in cluster mode, reads the slot
 * map the first time): 0, or -1 when no node can be reached (rds_error says why). Costs
 * nothing when a connection is open; a way to fail fast before a request's work starts. */
int rds_ready(struct rds *d);
/* Why the last call failed, "redis: ..." (borrowed; overwritten by the next call). */
const char *rds_error(const struct rds *d);
/* What the client has had to do since rds_new (for logs, metrics and tests). */
struct rds_stats {
	unsigned long moved;	 /* MOVED answers followed */
	unsigned long asked;	 /* ASK answers followed */
	unsigned long retries;	 /* pauses before sending again (node down, TRYAGAIN, ...) */
	unsigned long refreshes; /* slot maps read from the cluster */
	unsigned long connects;	 /* connections opened */
};
void rds_stats(const struct rds *d, struct rds_stats *out);
/* Closes every connection (the map is kept): after a failure the caller no longer trusts. */
void rds_reset(struct rds *d);

/* A command in printf form (hiredis's %s / %b / %d...), sent to the node that owns key's
 * slot (key NULL: any node). The reply is the caller's (freeReplyObject); an error reply
 * other than the redirections above is returned as it is. NULL when no answer could be had
 * (rds_error says why). */
redisReply *rds_cmd(struct rds *d, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same with an argument vector (lens NULL: strlen of each). */
redisReply *rds_cmdv(struct rds *d, const char *key, int argc, const char *const *argv,
		     const size_t *lens);
/* 1 when a command (by name, any case) only reads, so it may be resent after its connection
 * broke mid-way. */
int rds_read_only(const char *name, size_t len);

struct rscript;
/* Runs one of the contract's Lua scripts (rscript.h) by its SHA-1 (EVALSHA), sending the
 * text only when Redis does not know it yet (NOSCRIPT): the script is parsed once per
 * server, not once per call. Routed by its first key (every key of a script shares one
 * slot; nkeys 0: any node). args: nkeys keys then the other arguments (argc in all, at most
 * RDS_SCRIPT_MAX_ARGS), binary-safe with lens (NULL: strlen). Caller frees the reply with
 * freeReplyObject(); NULL when the connection failed or argc is too large. */
#define RDS_SCRIPT_MAX_ARGS 64
redisReply *rds_script(struct rds *d, const struct rscript *s, int nkeys, int argc,
		       const char *const *args, const size_t *lens);

/* After a command: 1 when it failed, with "redis: ..." in err: a NULL reply (rds_error
 * says why) or an error reply, which is freed here; 0 for any other reply, which stays the
 * caller's. */
int rds_reply_failed(struct rds *d, redisReply *rep, char *err, size_t errlen);

/* Durability: called right after a write (the last call on d, with the same key) that must
 * survive the loss of its master. Sends WAIT <wait_replicas> <wait_ms> on the connection
 * that carried the write, which counts the replicas that hold everything written on it.
 * 0 when wait_replicas is 0 or enough replicas acknowledged; -1 with a message in err when
 * fewer did, or the connection that wrote is gone (a WAIT on another connection would not
 * cover the write). The write itself is done: the caller answers 503 (retryable) so that
 * the client checks and retries; our writes are either idempotent or refuse a repeat. */
int rds_wait(struct rds *d, const char *key, char *err, size_t errlen);
/* The replicas rds_wait asks for (0: it sends nothing). */
long rds_wait_replicas(const struct rds *d);
/* What rds_wait goes by: the connection (and its serial) and the slot of the last command
 * answered. Commands sent between a write and its WAIT that must not move it (a drain of
 * other slots after a change: lib/jobstate.c) take it before (rds_mark_get) and put it back
 * after (rds_mark_set): the WAIT then goes to the connection that carried the write while
 * that connection stands, and is refused, as always, once it was replaced. */
struct rds_mark {
	int conn;
	unsigned long serial;
	unsigned slot;
};
struct rds_mark rds_mark_get(const struct rds *d);
void rds_mark_set(struct rds *d, struct rds_mark m);
/* rds_wait for a write followed by more commands before its WAIT (reads, other writes in
 * the same slot): since is rds_mark_get taken right after that write. A read may be sent
 * again on a reopened connection, and a WAIT there counts nothing the old one wrote, so the
 * WAIT is refused (as rds_wait refuses one whose connection is gone) unless the last
 * command went on the very connection that carried the write, never reopened since. */
int rds_wait_since(struct rds *d, struct rds_mark since, const char *key, char *err,
		   size_t errlen);

/* Pipelines: commands added with their keys are sent together, each to the node that owns
 * its key (a pipeline to one slot stays on one connection); replies come back in the order
 * of the adds. A redirection in a reply is followed for that command alone (synchronously).
 * For reads: a pipeline is never resent as a whole. */
#define RDS_PIPE_MAX 1024
struct rds_pipe;
struct rds_pipe *rds_pipe_new(struct rds *d);
/* Queues one command; -1 when out of memory, the pipe is full or the node cannot be
 * reached (the pipe is then failed: every later rds_pipe_reply gives NULL). */
int rds_pipe_add(struct rds_pipe *p, const char *key, int argc, const char *const *argv,
		 const size_t *lens);
/* The next reply, in order (caller frees); NULL on failure (rds_error says why). */
redisReply *rds_pipe_reply(struct rds_pipe *p);
/* Reads and drops replies not taken yet, then frees p. */
void rds_pipe_free(struct rds_pipe *p);

#endif

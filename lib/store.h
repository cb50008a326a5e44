/* store: the data layer of the API and the snapshotter, apart from HTTP.
 *
 * A struct store owns one PostgreSQL and one Redis connection of a process. Each has ONE
 * getter (store_pg, store_redis) that hands out a live connection, opening or reopening
 * it on demand. Every function of the layer (this file and the store_*.h modules: doc,
 * room, rooms, user, job, ai) returns an enum store_status and its data through out-parameters; none of them knows
 * about HTTP. The API turns a status into an answer with one table (fcgi/api.c,
 * api_fail); the snapshotter logs it.
 *
 * Why a call failed is in s->msg, in words for the person who asked ("the database is
 * unavailable", why an operation does not fit the document): never a server's error text,
 * which the store logs itself. It holds the last failure's and is overwritten by the next. */
#ifndef CC_STORE_H
#define CC_STORE_H

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stddef.h>

#include "rds.h"

enum store_status {
	STORE_OK = 0,
	STORE_NOT_FOUND,	 /* no such room, job, revision, … */
	STORE_CONFLICT,		 /* the expected SQLSTATE, a stale revision, a job already over */
	STORE_INVALID,		 /* the request does not fit what is stored (s->msg says why) */
	STORE_FORBIDDEN,	 /* the caller may not do this */
	STORE_TOO_LARGE,	 /* the result would pass a size limit */
	STORE_BUSY,		 /* lost the race too often: try again */
	STORE_UNAVAILABLE,	 /* PostgreSQL cannot be reached */
	STORE_REDIS_UNAVAILABLE, /* Redis cannot be reached or failed a command */
	STORE_LOST,		 /* the connection went inside BEGIN..COMMIT: outcome unknown */
	STORE_ERROR,		 /* a statement failed, stored data is damaged, out of memory */
	STORE__COUNT
};

/* "ok", "not_found", …: for logs; "" out of range. */
const char *store_status_name(enum store_status st);

struct store {
	const char *database_url; /* borrowed */
	/* Reads that may lag (below, "Reads from a replica"): the hot standby's URL (borrowed;
	 * NULL or "": none), its connection, opened on first use with the primary's reconnect
	 * rules, and after a failed connect the monotonic time before which it is not tried
	 * again (back-off), so a dead replica costs one refused connect now and then, not one
	 * per request. may_lag: set by STORE_MAY_LAG for the length of one call. */
	const char *database_read_url;
	PGconn *pg_read;
	long long read_retry_at;
	int read_attempt;
	int may_lag;
	struct rds_target redis_target;
	int redis_timeout_ms; /* connect and every command */
	PGconn *pg;
	struct rds *redis; /* opened by the first store_redis() */
	void (*progress)(void); /* store_on_progress */
	long pg_timeout_ms; /* PG_QUERY_TIMEOUT_MS (store_cfg_load) */
	/* inside BEGIN..COMMIT on pg: a lost connection is never silently replaced (the
	 * statements after it would run outside the transaction) */
	int in_tx;
	char msg[256];
	/* documents restored from PostgreSQL (lib/store_doc.c) since the owner last reset it:
	 * the API adds it to its metrics after each request */
	int restores;
	/* rooms whose Redis had lost writes their saved history holds, put back to the saved
	 * revision (lost_restored) or kept and saved as a new start of the history
	 * (lost_restarted), by store_doc_snapshot since the owner last reset them: the
	 * snapshotter adds them to its metrics */
	int lost_restored, lost_restarted;
};

/* No connection is opened here: the first getter call does. */
/* PG_QUERY_TIMEOUT_MS when unset: how long one statement may take */
#define STORE_PG_TIMEOUT_DEFAULT_MS 30000
/* Reads PG_QUERY_TIMEOUT_MS for every store initialised after it (each program once, at
 * start): the server ends a statement that runs longer (statement_timeout), and a server
 * that does not answer at all (stopped, a host gone quiet) is given up a second after that:
 * the connection is dropped and the call fails STORE_UNAVAILABLE (STORE_LOST inside a
 * transaction), instead of holding the process for as long as the server is silent.
 * 0; -1 with a message naming the setting. */
int store_cfg_load(char *err, int errlen);
void store_init(struct store *s, const char *database_url, const struct rds_target *redis);
void store_close(struct store *s);
/* fn is called between the steps of long work (each room of a batch, each batch of a large
 * delete) and handed to the Redis client (rds_on_progress), for a program's signs of life
 * (lib/alive.h). Single-threaded use only; NULL: none. */
void store_on_progress(struct store *s, void (*fn)(void));
/* Calls the store's progress function, if any. */
void store_progress(const struct store *s);

/* Reads from a replica (DATABASE_READ_URL): set the hot standby's URL (borrowed, NULL or ""
 * for none) once after store_init. Only calls wrapped in STORE_MAY_LAG use it: there every
 * plain SELECT outside a transaction (store_pg_repeatable) goes to the replica, and to the
 * primary when the replica cannot be reached or fails the statement; writes, SELECT ... FOR
 * UPDATE/SHARE and everything inside BEGIN..COMMIT stay on the primary. Everything not
 * wrapped (sign-in, membership and access checks, reads right after a write) reads the
 * primary. Which API reads are wrapped: docs/SCALING.md, "DATABASE_READ_URL". */
void store_set_read_url(struct store *s, const char *url);
void store_lag_begin(struct store *s);
enum store_status store_lag_end(struct store *s, enum store_status st);
/* `st = STORE_MAY_LAG(s, store_doc_history_list(s, ...));`: one store call whose reads may
 * be answered by the replica (a few milliseconds behind the primary, more under load). */
#define STORE_MAY_LAG(s, call) (store_lag_begin(s), store_lag_end((s), (call)))

/* The live PostgreSQL connection (borrowed, owned by s): STORE_OK with *out;
 * STORE_UNAVAILABLE when the server cannot be reached; STORE_LOST when the connection
 * died inside a transaction (it is dropped, never replaced silently). */
enum store_status store_pg(struct store *s, PGconn **out);
/* The Redis client (borrowed; lib/rds.h: one server or a cluster, commands routed by key):
 * STORE_OK with *out once some node answers (a connection is open), or
 * STORE_REDIS_UNAVAILABLE. */
enum store_status store_redis(struct store *s, struct rds **out);
/* After a failed Redis command: logs why (the client has already dropped a broken
 * connection and reopens on the next command). Returns STORE_REDIS_UNAVAILABLE, for
 * `return store_redis_failed(s);`. */
enum store_status store_redis_failed(struct store *s);

/* Runs a parameterised statement. STORE_OK with *out (caller PQclear()s) for a command or
 * rows; STORE_CONFLICT (nothing in *out) when the error's SQLSTATE is `conflict_state`
 * (e.g. "23505", may be NULL); STORE_UNAVAILABLE when the connection is gone (an idle
 * connection the server closed is found and replaced before the statement is sent; a
 * statement that failed with its connection is tried once more on a new one, outside a
 * transaction, only when it cannot have been carried out: the server said it was shutting
 * down, or the statement is a SELECT; a write that may have been done is never repeated);
 * STORE_LOST as store_pg; STORE_ERROR for any other failure (logged). */
enum store_status store_sql(struct store *s, PGresult **out, const char *conflict_state,
			    const char *sql, int n, const char *const *params);
/* 1 when a statement that failed with its connection cannot have been carried out, so
 * store_sql may send it again on a new connection: the server's SQLSTATE (may be NULL)
 * says it was shutting down (57P01, 57P02, 57P03), or sql is a SELECT without FOR
 * UPDATE/SHARE. 0 for every statement that may have changed something. */
int store_pg_repeatable(const char *state, const char *sql);

/* store_sql() for a statement that gives one row or none: STORE_OK with *out (the caller
 * PQclear()s) when it gave exactly one; otherwise nothing in *out and STORE_NOT_FOUND with
 * the message `missing` (printf-style), or store_sql()'s failure. */
enum store_status store_row(struct store *s, PGresult **out, const char *sql, int n,
			    const char *const *params, const char *missing, ...)
	__attribute__((format(printf, 6, 7)));

/* Transactions on s->pg. A failed statement inside one leaves it aborted: the caller ends
 * it with store_rollback() so the next request starts clean. store_commit() rolls back
 * itself when COMMIT fails. */
enum store_status store_begin(struct store *s);
enum store_status store_commit(struct store *s);
void store_rollback(struct store *s);

/* Whether each server answers now (SELECT 1, PING), reconnecting as the getters do. */
void store_health(struct store *s, int *pg_up, int *redis_up);

/* Sets s->msg and returns st: `return store_fail(s, STORE_ERROR, "…", …);`. */
enum store_status store_fail(struct store *s, enum store_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif

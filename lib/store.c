#include "store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "cfg.h"
#include "clock.h"
#include "errbuf.h"
#include "log.h"
#include "resolve.h"

#define STORE_REDIS_TIMEOUT_MS 2000
/* seconds a new PostgreSQL connection may take (libpq's connect_timeout; a DATABASE_URL that
 * names its own wins): a server that does not answer makes a request fail fast, not hang */
#define STORE_PG_CONNECT_TIMEOUT "3"

static const char *const status_names[STORE__COUNT] = {
	[STORE_OK] = "ok",
	[STORE_NOT_FOUND] = "not_found",
	[STORE_CONFLICT] = "conflict",
	[STORE_INVALID] = "invalid",
	[STORE_FORBIDDEN] = "forbidden",
	[STORE_TOO_LARGE] = "too_large",
	[STORE_BUSY] = "busy",
	[STORE_UNAVAILABLE] = "unavailable",
	[STORE_REDIS_UNAVAILABLE] = "redis_unavailable",
	[STORE_LOST] = "lost",
	[STORE_ERROR] = "error",
};

const char *store_status_name(enum store_status st)
{
	return (unsigned)st < STORE__COUNT ? status_names[st] : "";
}

enum store_status store_fail(struct store *s, enum store_status st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->msg, sizeof s->msg, fmt, ap);
	va_end(ap);
	return st;
}

/* a server that ends a statement at its statement_timeout says so within this much more;
 * past it the client gives up on a server that does not answer */
#define STORE_PG_GRACE_MS 1000
/* how often the server looks whether a running statement's client is still there */
#define STORE_PG_CHECK_MS 1000

static long pg_timeout_ms = STORE_PG_TIMEOUT_DEFAULT_MS;

int store_cfg_load(char *err, int errlen)
{
	return cfg_long("PG_QUERY_TIMEOUT_MS", STORE_PG_TIMEOUT_DEFAULT_MS, 100, 86400000L,
			&pg_timeout_ms, err, errlen);
}

void store_init(struct store *s, const char *database_url, const struct rds_target *redis)
{
	memset(s, 0, sizeof *s);
	s->database_url = database_url;
	if (redis)
		s->redis_target = *redis;
	s->redis_timeout_ms = STORE_REDIS_TIMEOUT_MS;
	s->pg_timeout_ms = pg_timeout_ms;
}

void store_set_read_url(struct store *s, const char *url)
{
	s->database_read_url = url && url[0] ? url : NULL;
}

void store_lag_begin(struct store *s)
{
	s->may_lag = 1;
}

enum store_status store_lag_end(struct store *s, enum store_status st)
{
	s->may_lag = 0;
	return st;
}

void store_close(struct store *s)
{
	if (s->pg_read)
		PQfinish(s->pg_read);
	s->pg_read = NULL;
	if (s->pg)
		PQfinish(s->pg);
	rds_free(s->redis);
	s->pg = NULL;
	s->redis = NULL;
	s->in_tx = 0;
}

/* 1 when an idle connection is gone: the server hung up on it (a PostgreSQL restart says
 * goodbye, 57P01, and closes every connection), which libpq only notices when it reads.
 * An idle connection has nothing to read unless that happened (or a notice came), so a
 * socket that polls readable is read here, and a closed one turns CONNECTION_BAD. Checked
 * before each use outside a transaction: a statement is then never sent on a connection
 * that is already dead, and the question whether it was carried out never comes up. */
static int pg_idle_gone(PGconn *pg)
{
	if (PQstatus(pg) != CONNECTION_OK)
		return 1;
	if (PQtransactionStatus(pg) != PQTRANS_IDLE || PQisBusy(pg))
		return 0;
	struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};
	if (p.fd < 0)
		return 1;
	if (poll(&p, 1, 0) <= 0)
		return 0;
	if (!PQconsumeInput(pg))
		return 1;
	return PQstatus(pg) != CONNECTION_OK;
}

/* 1 when a statement that failed with the connection was certainly not carried out, so
 * sending it again on a new connection cannot do it twice: the server said it was shutting
 * down or restarting (admin_shutdown, crash_shutdown, cannot_connect_now: it ended the
 * session before it ran the statement, or aborted it), or the statement only reads. A
 * write that may have reached the server is never repeated: its caller gets
 * STORE_UNAVAILABLE and the client decides. */
int store_pg_repeatable(const char *state, const char *sql)
{
	if (state && (!strcmp(state, "57P01") || !strcmp(state, "57P02") || !strcmp(state, "57P03")))
		return 1;
	while (*sql == ' ' || *sql == '\t' || *sql == '\n')
		sql++;
	/* a row lock (FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE, FOR KEY SHARE) or an advisory
	 * lock is not a plain read: it belongs to its transaction, and a replica takes none */
	return strncasecmp(sql, "SELECT", 6) == 0 && !strcasestr(sql, " FOR UPDATE") &&
	       !strcasestr(sql, " FOR NO KEY UPDATE") && !strcasestr(sql, " FOR SHARE") &&
	       !strcasestr(sql, " FOR KEY SHARE") && !strcasestr(sql, "pg_advisory");
}

/* The value of keyword in a parsed connection string, or NULL. */
static const char *conninfo_get(const PQconninfoOption *opts, const char *keyword)
{
	for (const PQconninfoOption *o = opts; o && o->keyword; o++)
		if (!strcmp(o->keyword, keyword))
			return o->val;
	return NULL;
}

/* The connection's options (libpq's `options`, command-line switches for the server): the
 * bound and the check of pg_open, then what the URL's own `options=` (or else PGOPTIONS) asks
 * for, so that a setting of an operator's (a search_path) no longer replaces ours, and one
 * they name themselves (a statement_timeout of their own) comes later and wins. NULL out of
 * memory. (A URL that does not parse is refused on connecting, with libpq's reason.) */
static char *pg_options(const PQconninfoOption *opts, long timeout_ms)
{
	char ours[96];
	snprintf(ours, sizeof ours, "-c statement_timeout=%ld -c client_connection_check_interval=%d",
		 timeout_ms, STORE_PG_CHECK_MS);
	const char *theirs = conninfo_get(opts, "options");
	if (!theirs) /* the URL's keywords are parsed without libpq's defaults */
		theirs = getenv("PGOPTIONS");
	size_t n = strlen(ours) + (theirs ? 1 + strlen(theirs) : 0) + 1;
	char *all = malloc(n);
	if (all)
		snprintf(all, n, "%s%s%s", ours, theirs && *theirs ? " " : "", theirs ? theirs : "");
	return all;
}

/* The servers to connect to, their names looked up within the connect bound (lib/resolve.h):
 * libpq resolves a host name with getaddrinfo, outside its connect_timeout, and waits as long
 * as resolv.conf lets it. */
struct pg_hosts {
	char *host, *hostaddr, *port; /* libpq's lists, for PQconnectdbParams */
	char *seen;		      /* "name = address, ..." for the log */
};

static void pg_hosts_free(struct pg_hosts *h)
{
	free(h->host);
	free(h->hostaddr);
	free(h->port);
	free(h->seen);
	memset(h, 0, sizeof *h);
}

/* Appends item to the list *list (grown), after sep unless the list is empty; -1 out of
 * memory. */
static int list_add(char **list, const char *sep, const char *item)
{
	size_t old = *list ? strlen(*list) : 0, s = *list ? strlen(sep) : 0, n = strlen(item);
	char *grown = realloc(*list, old + s + n + 1);
	if (!grown)
		return -1;
	memcpy(grown + old, sep, s);
	memcpy(grown + old + s, item, n + 1);
	*list = grown;
	return 0;
}

/* Splits a copy of a comma-separated list in place (strsep: an empty item, the default
 * socket, keeps its place); the count, PG_HOSTS_MAX + 1 when there are more, or -1 out of
 * memory. *copy is to be freed. */
#define PG_HOSTS_MAX 64
static int split_list(const char *list, char **copy, char *items[PG_HOSTS_MAX])
{
	*copy = strdup(list);
	if (!*copy)
		return -1;
	int n = 0;
	char *next = *copy;
	while (next && n < PG_HOSTS_MAX)
		items[n++] = strsep(&next, ",");
	return next ? PG_HOSTS_MAX + 1 : n; /* more than PG_HOSTS_MAX */
}

/* Whether an item of libpq's host list names a unix socket (empty: the default one; a
 * directory; an abstract socket) rather than a name or an address. */
static int pg_host_is_socket(const char *host)
{
	return !host[0] || host[0] == '/' || host[0] == '@';
}

/* Fills h with the hosts of the connection string (its `host`, else PGHOST), each name
 * looked up within the connect timeout (the string's connect_timeout, else ours; all names at
 * once, one bound for them all) and put once per address, with that address as `hostaddr`,
 * so that libpq tries every address as it would have (the name still serves TLS's checks).
 * 1 when h is to be used. 0 when libpq is left to do as before: nothing to look up (no host,
 * unix sockets and addresses only), an operator's own `hostaddr`/PGHOSTADDR, a service file
 * (`service`/PGSERVICE: its hosts come before PGHOST, and only libpq reads it), or lists libpq
 * will refuse (ports not matching the hosts). A host whose name is not resolved in time is
 * left out of a list, so the others are still tried; when none is left, -1 with err saying
 * why. Out of memory: -1. */
static int pg_resolve_hosts(const PQconninfoOption *opts, struct pg_hosts *h, char *err,
			    size_t errlen)
{
	memset(h, 0, sizeof *h);
	const char *hosts = conninfo_get(opts, "host");
	const char *ports = conninfo_get(opts, "port");
	const char *own = conninfo_get(opts, "hostaddr");
	const char *ct = conninfo_get(opts, "connect_timeout");
	const char *service = conninfo_get(opts, "service");
	if (!hosts || !*hosts)
		hosts = getenv("PGHOST");
	if (!ports || !*ports)
		ports = getenv("PGPORT");
	if (!own || !*own)
		own = getenv("PGHOSTADDR");
	if (!service || !*service)
		service = getenv("PGSERVICE");
	if (!hosts || !*hosts || (own && *own) || (service && *service))
		return 0;
	long bound_ms = 1000L * atol(ct && *ct ? ct : STORE_PG_CONNECT_TIMEOUT);
	if (bound_ms <= 0) /* libpq's 0, no bound at all: the lookup keeps ours */
		bound_ms = 1000L * atol(STORE_PG_CONNECT_TIMEOUT);
	char *hcopy = NULL, *pcopy = NULL, *hv[PG_HOSTS_MAX], *pv[PG_HOSTS_MAX];
	const char *names[PG_HOSTS_MAX];
	struct resolved *res = NULL;
	int rc = -1, nh = split_list(hosts, &hcopy, hv);
	int np = ports && strchr(ports, ',') ? split_list(ports, &pcopy, pv) : 0;
	if (nh < 0 || np < 0)
		goto out;
	rc = 0;
	if ((np > 0 && np != nh) || nh > PG_HOSTS_MAX)
		goto out; /* libpq says what does not match; a list that long is left to it */
	res = calloc((size_t)nh, sizeof *res);
	if (!res) {
		rc = -1;
		goto out;
	}
	int nn = 0, asked = 0, kept = 0;
	for (int i = 0; i < nh; i++)
		if (!pg_host_is_socket(hv[i]))
			names[nn++] = hv[i];
	if (nn > 0)
		resolve_hosts(names, nn, bound_ms, res);
	for (int i = 0; i < nn; i++)
		asked += res[i].name;
	if (asked == 0)
		goto out; /* addresses and sockets only: libpq as before */
	rc = -1;
	for (int i = 0, k = 0; i < nh; i++) {
		const char *port = np > 0 ? pv[i] : NULL;
		if (pg_host_is_socket(hv[i])) {
			if (list_add(&h->host, ",", hv[i]) < 0 || list_add(&h->hostaddr, ",", "") < 0 ||
			    (port && list_add(&h->port, ",", port) < 0))
				goto out;
			kept++;
			continue;
		}
		struct resolved *r = &res[k++];
		if (r->n == 0) {
			errbuf_set(err, errlen, "%s", r->err);
			if (nh > 1) /* one host alone: the caller says why it failed */
				log_warn("postgres: %s; that host is left out", r->err);
			continue;
		}
		for (int a = 0; a < r->n; a++) {
			if (list_add(&h->host, ",", hv[i]) < 0 || list_add(&h->hostaddr, ",", r->addr[a]) < 0 ||
			    (port && list_add(&h->port, ",", port) < 0) ||
			    list_add(&h->seen, ", ", hv[i]) < 0 || list_add(&h->seen, " = ", r->addr[a]) < 0)
				goto out;
			kept++;
		}
	}
	if (kept == 0)
		goto out; /* err holds the last host's reason */
	rc = 1;
out:
	if (rc < 0 && !err[0])
		errbuf_set(err, errlen, "out of memory");
	if (rc != 1)
		pg_hosts_free(h);
	free(res);
	free(hcopy);
	free(pcopy);
	return rc;
}

/* A new connection to url, or NULL (logged under `who`). Its statements end at the
 * server after timeout_ms (statement_timeout), or within STORE_PG_CHECK_MS of the program's
 * end or of the connection being dropped (client_connection_check_interval, PostgreSQL 14
 * and later): a statement whose answer nobody waits for any more (a process that ended,
 * pg_exec giving up) stops waiting on its locks and is never made later. */
static PGconn *pg_open(const char *url, const char *who, long timeout_ms)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(url, &perr);
	PQfreemem(perr);
	char *options = pg_options(opts, timeout_ms);
	struct pg_hosts hosts;
	char why[320] = "out of memory";
	int hrc = options ? pg_resolve_hosts(opts, &hosts, why, sizeof why) : -1;
	PQconninfoFree(opts);
	if (hrc < 0) {
		log_error("%s: %s", who, why);
		free(options);
		return NULL;
	}
	/* connect_timeout before the URL (whose keywords, expanded from dbname, win over it);
	 * options and the looked-up hosts after it, as they hold the URL's own */
	const char *keys[] = {"connect_timeout", "dbname", "options", NULL, NULL, NULL, NULL};
	const char *vals[] = {STORE_PG_CONNECT_TIMEOUT, url, options, NULL, NULL, NULL, NULL};
	if (hrc == 1) {
		int k = 3;
		keys[k] = "host";
		vals[k++] = hosts.host;
		keys[k] = "hostaddr";
		vals[k++] = hosts.hostaddr;
		if (hosts.port) {
			keys[k] = "port";
			vals[k++] = hosts.port;
		}
	}
	PGconn *pg = PQconnectdbParams(keys, vals, 1);
	free(options);
	if (!pg || PQstatus(pg) != CONNECTION_OK) {
		/* libpq names the address it was given, not the name: both are said */
		const char *msg = pg ? PQerrorMessage(pg) : "out of memory";
		int len = (int)strlen(msg);
		while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
			len--;
		log_error("%s: %.*s%s%s%s", who, len, msg, hrc == 1 ? " (hosts looked up: " : "",
			  hrc == 1 ? hosts.seen : "", hrc == 1 ? ")" : "");
		PQfinish(pg);
		if (hrc == 1)
			pg_hosts_free(&hosts);
		return NULL;
	}
	if (hrc == 1)
		pg_hosts_free(&hosts);
	/* non-blocking: sending a statement (a document's text) to a server that has stopped
	 * reading waits under pg_exec's bound, not in the kernel's send for good */
	if (PQsetnonblocking(pg, 1) != 0) {
		log_error("%s: %s", who, PQerrorMessage(pg));
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

enum store_status store_pg(struct store *s, PGconn **out)
{
	*out = NULL;
	if (s->pg && (s->in_tx ? PQstatus(s->pg) != CONNECTION_OK : pg_idle_gone(s->pg))) {
		PQfinish(s->pg);
		s->pg = NULL;
		if (s->in_tx) {
			/* the transaction died with the connection; its outcome is the server's to
			 * tell, and a new connection would run the rest of it unprotected. The
			 * caller rolls back (store_rollback), which ends it here too. */
			log_error("postgres: the connection was lost inside a transaction");
			return store_fail(s, STORE_LOST, "the database connection was lost during the "
						       "change; try again");
		}
	}
	if (!s->pg && s->in_tx) {
		/* dropped inside the transaction (pg_timed_out): never go on outside it */
		return store_fail(s, STORE_LOST, "the database connection was lost during the "
					       "change; try again");
	}
	if (!s->pg) {
		s->pg = pg_open(s->database_url, "postgres", s->pg_timeout_ms);
		if (!s->pg)
			return store_fail(s, STORE_UNAVAILABLE, "the database is unavailable");
	}
	*out = s->pg;
	return STORE_OK;
}

/* The replica's connection, under the same rules as the primary's (an idle connection the
 * server closed is replaced before use) and never inside a transaction; NULL when there is
 * no replica, or it cannot be reached (then it is not tried again before its back-off has
 * passed: RETRY_FIRST_MS doubling up to RETRY_MAX_MS). */
#define STORE_READ_RETRY_FIRST_MS 500
#define STORE_READ_RETRY_MAX_MS 10000
/* The replica is not asked again before a back-off (longer after each failure in a row). */
static void read_backoff(struct store *s)
{
	struct backoff b = {STORE_READ_RETRY_FIRST_MS, STORE_READ_RETRY_MAX_MS, s->read_attempt};
	s->read_retry_at = clock_mono_ms() + backoff_next(&b);
	s->read_attempt = b.attempt;
}

static PGconn *pg_read(struct store *s)
{
	if (!s->database_read_url || s->in_tx)
		return NULL;
	if (s->pg_read && pg_idle_gone(s->pg_read)) {
		log_warn("postgres replica: the connection was closed; opening a new one");
		PQfinish(s->pg_read);
		s->pg_read = NULL;
	}
	if (!s->pg_read) {
		if (clock_mono_ms() < s->read_retry_at)
			return NULL;
		s->pg_read = pg_open(s->database_read_url, "postgres replica", s->pg_timeout_ms);
		if (!s->pg_read) {
			read_backoff(s);
			return NULL;
		}
		s->read_attempt = 0;
	}
	return s->pg_read;
}

/* A replica's failure (it cannot be reached, or it gave up the statement, e.g. cancelled by
 * a conflict with recovery): logged, the connection dropped when it is broken; the caller
 * asks the primary instead. */
static void read_failed(struct store *s, PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	log_warn("postgres replica: a read failed (%s), asking the primary: %s",
		 state ? state : "-", PQerrorMessage(s->pg_read));
	if (PQstatus(s->pg_read) != CONNECTION_OK) {
		PQfinish(s->pg_read);
		s->pg_read = NULL;
	}
}

void store_on_progress(struct store *s, void (*fn)(void))
{
	s->progress = fn;
	if (s->redis)
		rds_on_progress(s->redis, fn);
}

void store_progress(const struct store *s)
{
	if (s->progress)
		s->progress();
}

enum store_status store_redis(struct store *s, struct rds **out)
{
	*out = NULL;
	if (!s->redis && !(s->redis = rds_new(&s->redis_target, s->redis_timeout_ms))) {
		log_error("redis: out of memory");
		return store_fail(s, STORE_REDIS_UNAVAILABLE, "the event store is unavailable");
	}
	rds_on_progress(s->redis, s->progress);
	if (rds_ready(s->redis) < 0) {
		log_error("%s", rds_error(s->redis));
		return store_fail(s, STORE_REDIS_UNAVAILABLE, "the event store is unavailable");
	}
	*out = s->redis;
	return STORE_OK;
}

enum store_status store_redis_failed(struct store *s)
{
	if (s->redis)
		log_warn("%s", rds_error(s->redis));
	return store_fail(s, STORE_REDIS_UNAVAILABLE, "the event store is unavailable");
}

/* One statement on pg (non-blocking: pg_open), sent and waited for at most the statement
 * timeout and its grace: its last result (NULL when it could not be sent, or the connection
 * failed before any), *timed_out set when the server did not take the statement or answer
 * in time, or the wait itself failed (the caller drops the connection: it is in the middle
 * of the statement). The store's progress function is called while it waits. */
static PGresult *pg_exec(const struct store *s, PGconn *pg, const char *sql, int n,
			 const char *const *params, int *timed_out)
{
	*timed_out = 0;
	if (!PQsendQueryParams(pg, sql, n, NULL, params, NULL, NULL, 0))
		return NULL;
	long long deadline = clock_mono_ms() + s->pg_timeout_ms + STORE_PG_GRACE_MS;
	PGresult *last = NULL, *r;
	int sending = 1; /* a large statement may not fit the socket at once */
	for (;;) {
		if (sending) {
			int f = PQflush(pg);
			if (f < 0)
				goto failed;
			sending = f == 1;
		}
		if (!sending && !PQisBusy(pg)) {
			r = PQgetResult(pg);
			if (!r)
				return last;
			PQclear(last);
			last = r;
			continue;
		}
		long long left = deadline - clock_mono_ms();
		if (left <= 0)
			break;
		store_progress(s);
		struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN | (sending ? POLLOUT : 0)};
		int w = poll(&p, 1, left < 1000 ? (int)left : 1000);
		if (w < 0 && errno != EINTR)
			break;
		/* whatever arrived (also after a quiet second: a TLS record may wait in the
		 * library, where poll does not see it) */
		if (!PQconsumeInput(pg))
			goto failed;
	}
	*timed_out = 1;
	PQclear(last);
	return NULL;
failed:
	/* the connection failed: what libpq made of it (an error result), no wait */
	while ((r = PQgetResult(pg))) {
		PQclear(last);
		last = r;
	}
	return last;
}

/* The statement on the primary did not answer in time: its connection goes (it is in the
 * middle of that statement), and the failure says so. */
static enum store_status pg_timed_out(struct store *s, const char *sql)
{
	log_error("postgres: no answer in %ld ms; dropping the connection (%.60s)",
		  s->pg_timeout_ms + STORE_PG_GRACE_MS, sql);
	PQfinish(s->pg);
	s->pg = NULL;
	/* the end of a transaction that may or may not have been made: not "try again" */
	if (strcmp(sql, "COMMIT") == 0)
		return store_fail(s, STORE_UNAVAILABLE, "the database did not answer in time; the "
						      "change may or may not have been made");
	if (s->in_tx)
		return store_fail(s, STORE_LOST, "the database did not answer in time during the "
					       "change; try again");
	return store_fail(s, STORE_UNAVAILABLE, "the database did not answer in time");
}

enum store_status store_sql(struct store *s, PGresult **out, const char *conflict_state,
			    const char *sql, int n, const char *const *params)
{
	*out = NULL;
	PGconn *rd;
	if (s->may_lag && store_pg_repeatable(NULL, sql) && (rd = pg_read(s))) {
		/* a read that may lag: the replica answers it, or the primary below */
		int late;
		PGresult *r = pg_exec(s, rd, sql, n, params, &late);
		if (r && PQresultStatus(r) == PGRES_TUPLES_OK) {
			*out = r;
			return STORE_OK;
		}
		if (late) {
			/* and not again at once: the next reads go to the primary for a while, as
			 * after a failed connect (pg_read) */
			log_warn("postgres replica: no answer in time, asking the primary");
			PQfinish(s->pg_read);
			s->pg_read = NULL;
			read_backoff(s);
		} else {
			read_failed(s, r);
		}
		PQclear(r);
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		PGconn *pg;
		enum store_status st = store_pg(s, &pg);
		if (st != STORE_OK)
			return st;
		int late;
		PGresult *r = pg_exec(s, pg, sql, n, params, &late);
		if (late)
			return pg_timed_out(s, sql);
		ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
		if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK) {
			*out = r;
			return STORE_OK;
		}
		const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		if (conflict_state && state && strcmp(state, conflict_state) == 0) {
			PQclear(r);
			return store_fail(s, STORE_CONFLICT, "the change conflicts with what is stored");
		}
		if (state && strcmp(state, "57014") == 0) {
			/* query_canceled: the server ended it at statement_timeout (a lock held
			 * elsewhere, a statement too slow); the connection is fine */
			log_error("postgres: a statement ran past its statement_timeout and was ended "
				  "(PG_QUERY_TIMEOUT_MS, %ld ms, unless DATABASE_URL's options or "
				  "PGOPTIONS set another): %.60s",
				  s->pg_timeout_ms, sql);
			PQclear(r);
			return store_fail(s, STORE_UNAVAILABLE, "the database did not answer in time");
		}
		if (PQstatus(pg) != CONNECTION_OK && attempt == 0 && !s->in_tx &&
		    store_pg_repeatable(state, sql)) {
			/* the server went away (restart): reconnect once and retry what cannot have
			 * been carried out or only reads; never inside a transaction, whose earlier
			 * statements were lost with the connection */
			PQclear(r);
			continue;
		}
		log_error("sql failed (%s): %s", state ? state : "-", PQerrorMessage(pg));
		PQclear(r);
		if (PQstatus(pg) != CONNECTION_OK)
			return store_fail(s, STORE_UNAVAILABLE, "the database is unavailable");
		return store_fail(s, STORE_ERROR, "a database error occurred");
	}
	return store_fail(s, STORE_UNAVAILABLE, "the database is unavailable");
}

enum store_status store_row(struct store *s, PGresult **out, const char *sql, int n,
			    const char *const *params, const char *missing, ...)
{
	PGresult *r;
	enum store_status st = store_sql(s, &r, NULL, sql, n, params);
	if (st != STORE_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		va_list ap;
		va_start(ap, missing);
		vsnprintf(s->msg, sizeof s->msg, missing, ap);
		va_end(ap);
		return STORE_NOT_FOUND;
	}
	*out = r;
	return STORE_OK;
}

enum store_status store_begin(struct store *s)
{
	PGresult *r;
	enum store_status st = store_sql(s, &r, NULL, "BEGIN", 0, NULL);
	if (st != STORE_OK)
		return st;
	PQclear(r);
	s->in_tx = 1;
	return STORE_OK;
}

void store_rollback(struct store *s)
{
	s->in_tx = 0;
	PGconn *pg = s->pg;
	if (pg && PQtransactionStatus(pg) != PQTRANS_IDLE) {
		int late;
		PGresult *r = pg_exec(s, pg, "ROLLBACK", 0, NULL, &late);
		if (late) {
			/* the server ends the transaction with the connection */
			log_warn("rollback: no answer in time; dropping the connection");
			PQfinish(s->pg);
			s->pg = NULL;
		} else if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			log_warn("rollback failed: %s", PQerrorMessage(pg));
		}
		PQclear(r);
	}
}

enum store_status store_commit(struct store *s)
{
	PGresult *r;
	enum store_status st = store_sql(s, &r, NULL, "COMMIT", 0, NULL);
	if (st != STORE_OK) {
		store_rollback(s);
		return st;
	}
	PQclear(r);
	s->in_tx = 0;
	return STORE_OK;
}

void store_health(struct store *s, int *pg_up, int *redis_up)
{
	PGresult *r;
	*pg_up = store_sql(s, &r, NULL, "SELECT 1", 0, NULL) == STORE_OK;
	if (*pg_up)
		PQclear(r);
	struct rds *rd;
	redisReply *rep = NULL;
	if (store_redis(s, &rd) == STORE_OK && !(rep = rds_cmd(rd, NULL, "PING")))
		store_redis_failed(s);
	*redis_up = rep && rep->type == REDIS_REPLY_STATUS;
	if (rep)
		freeReplyObject(rep);
}

/* codecollab-api: the stateless JSON API, as a FastCGI server (lighttpd spawns it with a
 * listening socket on fd 0) or, when started by a web server as a plain CGI program,
 * answering the one request in its environment. With arguments, an operator's command run
 * by hand with the API's environment (docs/OPERATIONS.md): `delete-account <username>` or
 * `delete-account --id <id>`. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <fcgiapp.h>

#include "start.h"
#include "api.h"
#include "api_metrics.h"
#include "log.h"
#include "metrics.h"
#include "handlers.h"
#include "route.h"
#include "store_user.h"

static volatile int api_stop;

static void on_term(int sig)
{
	(void)sig;
	api_stop = 1;
	/* libfcgi retries an interrupted accept() unless told a shutdown is pending */
	FCGX_ShutdownPending();
}

/* API_HANG_TIMEOUT_S: a request that runs longer ends the process (SIGALRM, its default
 * action, after one line in the log). Its calls all have bounds of their own, so only a
 * fault without one gets here (a loop that does not end, a lock never given back); the
 * process's state is then unknown, and ending it is what gives the socket back: the
 * request in flight is answered 502 by the front door (deploy/lighttpd/backend-error.lua),
 * scripts/keep-fcgi.sh starts the program again on the same socket, and requests waiting
 * there are served by the new process. What the line names: set while a request is served
 * (the request's own memory, not changed while it is served). */
static const char *volatile hang_method, *volatile hang_path;
static char hang_limit[24];

static void on_hang(int sig)
{
	const char *m = hang_method, *p = hang_path;
	const char *parts[] = {"a request ran past API_HANG_TIMEOUT_S (", hang_limit,
			       " s): ending this process, which is started again (", m ? m : "?",
			       " ", p ? p : "?", ")"};
	log_signal_line(LOG_ERROR, parts, (int)(sizeof parts / sizeof parts[0]));
	raise(sig); /* SA_RESETHAND: the default action now, the process ends */
}

/* Arms the bound for the next request, once at start. 0 or -1 (message logged). */
static int hang_guard_init(const struct api_config *cfg, const struct store *store)
{
	if (!cfg->hang_timeout_s)
		return 0;
	snprintf(hang_limit, sizeof hang_limit, "%ld", cfg->hang_timeout_s);
	if (cfg->hang_timeout_s * 1000 < store->pg_timeout_ms + 1000)
		log_warn("API_HANG_TIMEOUT_S (%ld s) is shorter than one PostgreSQL statement may "
			 "take (PG_QUERY_TIMEOUT_MS, %ld ms, and a second): a slow statement ends the "
			 "process instead of being answered 503",
			 cfg->hang_timeout_s, store->pg_timeout_ms);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_hang;
	sa.sa_flags = SA_RESETHAND | SA_NODEFER;
	if (sigemptyset(&sa.sa_mask) < 0 || sigaction(SIGALRM, &sa, NULL) < 0) {
		log_error("cannot install the API_HANG_TIMEOUT_S handler: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void serve(const struct api_config *cfg, struct store *store, struct http_io *io)
{
	struct http_req req;
	struct http_resp resp;
	struct api_ctx c;
	const char *why = NULL;
	long long t0 = api_metrics_now_us();
	memset(&c, 0, sizeof c);
	c.route = -1;
	http_resp_init(&resp);
	c.cfg = cfg;
	c.store = store;
	c.req = &req;
	c.resp = &resp;
	int st = http_read_request(io, &req, &why);
	/* armed once the request is read: its body comes at the client's pace, which the web
	 * server bounds (lighttpd reads it whole before handing it on; Apache's Timeout) */
	hang_method = req.method;
	hang_path = req.path;
	if (cfg->hang_timeout_s)
		alarm((unsigned)cfg->hang_timeout_s);
	/* lighttpd 1.4.69 answers 411 to every HTTP/1.x POST without a Content-Length, which
	 * HTTP/1.1 reads as an empty body (RFC 9112, section 6.3), and hands that refusal to
	 * its error handler (this API, lighttpd.conf) as a GET of the same URI: served here
	 * as the empty POST it was, wherever its path leads (api_bodyless_post). Nothing after
	 * the head is read: lighttpd closes the connection after a 411. */
	if (!st && req.redirect_status == 411) {
		strcpy(req.method, "POST");
		req.redirect_status = 0;
		api_bodyless_post(&c);
	} else if (req.redirect_status) {
		api_front_door_error(&c, req.redirect_status);
	} else if (st) {
		const char *code = st == 413 ? "payload_too_large" : st == 400 ? "invalid_request" : "internal";
		api_error(&c, st, code, "%s", why);
	} else {
		route_dispatch(&c);
	}
	if (http_send(io, &req, &resp) < 0)
		log_warn("could not write the answer to %s %s", req.method,
			 req.path ? req.path : "?");
	if (cfg->hang_timeout_s)
		alarm(0);
	hang_method = hang_path = NULL;
	api_metrics_request(c.route, resp.status, api_metrics_now_us() - t0);
	api_metrics_restores(store->restores);
	store->restores = 0;
	if (resp.status >= 500)
		log_error("%s %s -> %d %s", req.method, req.path ? req.path : "?", resp.status,
			  resp.body.data ? resp.body.data : "");
	cJSON_Delete(c.body);
	http_req_free(&req);
	http_resp_free(&resp);
}

/* delete-account: what DELETE /api/auth/me does, without the password (there is no admin
 * role: whoever can run the API with its settings is the operator). `id_text` names the
 * account by id instead of name: for one whose row is already gone (deleted in SQL alone),
 * whose tokens still pass until this revokes them. Prints what was done; 0 when the account
 * is gone, 1 otherwise. */
static int delete_account(const struct api_config *cfg, struct store *store, const char *name,
			  const char *id_text)
{
	long long id = 0;
	char label[160];
	if (id_text) {
		char *end;
		errno = 0;
		id = strtoll(id_text, &end, 10);
		if (errno || *end || id <= 0) {
			fprintf(stderr, "delete-account: --id takes an account's id (a whole number > 0), "
					"not \"%s\"\n", id_text);
			return 1;
		}
		snprintf(label, sizeof label, "account %lld", id);
	} else {
		char key[AUTH_NAME_KEY_MAX + 1];
		struct store_user u;
		if (auth_username_key(name, key, sizeof key) < 0) {
			fprintf(stderr, "delete-account: the username is too long\n");
			return 1;
		}
		enum store_status st = store_user_by_key(store, key, &u);
		store_user_free(&u);
		if (st == STORE_NOT_FOUND) {
			fprintf(stderr, "delete-account: no account is named \"%s\" (already deleted? "
					"an account whose row is gone is named by --id)\n", name);
			return 1;
		}
		if (st != STORE_OK) {
			fprintf(stderr, "delete-account: %s\n", store->msg);
			return 1;
		}
		id = u.id;
		snprintf(label, sizeof label, "account %lld (%s)", id, u.username);
	}
	struct http_req req;
	struct http_resp resp;
	struct api_ctx c;
	memset(&req, 0, sizeof req);
	memset(&c, 0, sizeof c);
	http_resp_init(&resp);
	c.cfg = cfg;
	c.store = store;
	c.req = &req;
	c.resp = &resp;
	c.route = -1;
	int owned = 0, left = 0;
	int rc = auth_account_delete(&c, id, &owned, &left);
	if (rc == 0)
		printf("%s deleted: %d room(s) it owned deleted, %d room(s) left; its tokens no "
		       "longer work\n", label, owned, left);
	else if (rc == 1)
		printf("%s does not exist (any more); every token it had no longer works\n", label);
	else
		fprintf(stderr, "delete-account: %s not (wholly) deleted: %s; run the command again\n",
			label, resp.body.data ? resp.body.data : "");
	http_resp_free(&resp);
	return rc < 0;
}

static int command(int argc, char **argv)
{
	const char *name = NULL, *id = NULL;
	if (argc == 3 && strcmp(argv[1], "delete-account") == 0 && strcmp(argv[2], "--id") != 0)
		name = argv[2];
	else if (argc == 4 && strcmp(argv[1], "delete-account") == 0 && strcmp(argv[2], "--id") == 0)
		id = argv[3];
	else {
		fprintf(stderr, "usage: codecollab-api delete-account <username>\n"
				"       codecollab-api delete-account --id <account id>\n"
				"(with the API's environment: DATABASE_URL, REDIS_URL or REDIS_CLUSTER, "
				"JWT_SECRET or JWT_SECRET_FILE, TOKEN_TTL)\n");
		return 2;
	}
	struct api_config cfg;
	struct store store;
	char err[512];
	if (api_config_load(&cfg, err, sizeof err) < 0) {
		fprintf(stderr, "configuration: %s\n", err);
		api_config_free(&cfg);
		return 1;
	}
	store_init(&store, cfg.database_url, &cfg.redis);
	int rc = delete_account(&cfg, &store, name, id);
	store_close(&store);
	api_config_free(&cfg);
	return rc;
}

int main(int argc, char **argv)
{
	struct api_config cfg;
	struct store store;
	char err[512];
	int rc = 1;

	if (start_program("codecollab-api", on_term) < 0)
		return 1;
	if (argc > 1) {
		int crc = command(argc, argv);
		curl_global_cleanup();
		return crc;
	}
	int cgi = FCGX_IsCGI();
	if (api_config_load(&cfg, err, sizeof err) < 0) {
		log_error("configuration: %s", err);
		if (cgi) {
			fputs("Status: 500 Internal Server Error\r\nContent-Type: application/json\r\n\r\n"
			      "{\"error\":\"misconfigured\",\"message\":\"the server is misconfigured\"}",
			      stdout);
		}
		api_config_free(&cfg);
		curl_global_cleanup();
		return 1;
	}

	store_init(&store, cfg.database_url, &cfg.redis);
	store_set_read_url(&store, cfg.database_read_url);
	if (hang_guard_init(&cfg, &store) < 0)
		goto out;
	if (cgi) {
		struct http_io io = {.cgi = 1};
		serve(&cfg, &store, &io);
		rc = 0;
		goto out;
	}

	/* the processes' shared counters (api_metrics.h); the API runs on without them */
	if (cfg.metrics_file && cfg.metrics_file[0] && !metrics_disabled_by_env()) {
		if (api_metrics_open(cfg.metrics_file, err, sizeof err) < 0)
			log_warn("%s: running without metrics", err);
	}
	if (FCGX_Init() != 0) {
		log_error("FCGX_Init failed");
		goto out;
	}
	FCGX_Request rq;
	if (FCGX_InitRequest(&rq, 0, 0) != 0) {
		log_error("FCGX_InitRequest failed");
		goto out;
	}
	while (!api_stop) {
		if (FCGX_Accept_r(&rq) < 0) {
			if (api_stop || errno == EINTR)
				break;
			log_error("FCGX_Accept_r failed");
			break;
		}
		struct http_io io = {.in = rq.in, .out = rq.out, .envp = rq.envp};
		serve(&cfg, &store, &io);
		FCGX_Finish_r(&rq);
	}
	FCGX_Free(&rq, 1);
	rc = 0;
out:
	api_metrics_close();
	store_close(&store);
	api_config_free(&cfg);
	curl_global_cleanup();
	return rc;
}

#include "route.h"

#include <string.h>

#include "handlers.h"
#include "id.h"

struct route {
	const char *method;
	const char *pattern;
	route_handler fn;
};

static const struct route routes[] = {
	{"GET", "/api/health", h_health},
	{"GET", "/api/streams", h_streams},
	{"POST", "/api/auth/register", h_register},
	{"POST", "/api/auth/login", h_login},
	{"GET", "/api/auth/me", h_me},
	{"DELETE", "/api/auth/me", h_account_delete},
	{"POST", "/api/auth/logout", h_logout},
	{"POST", "/api/auth/password", h_password},
	{"POST", "/api/rooms", h_room_create},
	{"GET", "/api/rooms", h_room_list},
	{"GET", "/api/rooms/*", h_room_get},
	{"PATCH", "/api/rooms/*", h_room_patch},
	{"DELETE", "/api/rooms/*", h_room_delete},
	{"POST", "/api/rooms/*/join", h_room_join},
	{"GET", "/api/rooms/*/members", h_room_members},
	{"PUT", "/api/rooms/*/members/*", h_member_put},
	{"DELETE", "/api/rooms/*/members/*", h_member_delete},
	{"POST", "/api/rooms/*/invite", h_invite_rotate},
	{"DELETE", "/api/rooms/*/invite", h_invite_disable},
	{"GET", "/api/rooms/*/document", h_document},
	{"PUT", "/api/rooms/*/document", h_document_replace},
	{"POST", "/api/rooms/*/operations", h_operations},
	{"PUT", "/api/rooms/*/presence", h_presence},
	{"GET", "/api/rooms/*/presence", h_presence_list},
	{"POST", "/api/rooms/*/stream-ticket", h_stream_ticket},
	{"GET", "/api/rooms/*/history", h_history},
	{"GET", "/api/rooms/*/history/*", h_history_one},
	{"POST", "/api/rooms/*/executions", h_execution_create},
	{"GET", "/api/rooms/*/executions", h_room_executions},
	{"GET", "/api/jobs/*", h_job_get},
	{"DELETE", "/api/jobs/*", h_job_cancel},
	{"GET", "/api/runtimes", h_runtimes},
	{"POST", "/api/rooms/*/ai/hint", h_ai_hint},
	{"POST", "/api/rooms/*/ai/review", h_ai_review},
	{"GET", "/metrics", h_metrics},
};

size_t route_count(void)
{
	return sizeof routes / sizeof routes[0];
}

const char *route_method(size_t i)
{
	return routes[i].method;
}

const char *route_pattern(size_t i)
{
	return routes[i].pattern;
}

/* Walks path along pattern: each '*' takes one segment, which must not be empty. An id
 * segment (id_valid, lib/id.h) goes into params. Any other segment ends the
 * walk with 0 when bad is NULL; otherwise the first '*' it met is noted in *bad (and params
 * is not filled: pass NULL). One trailing slash is forgiven: /api/rooms/ is /api/rooms. */
static int walk(const char *pattern, const char *path, char params[][API_ID_MAX + 1],
		int *nparams, const char **bad)
{
	const char *p = pattern, *s = path;
	int n = 0;
	while (*p) {
		if (*p == '*') {
			size_t len = strcspn(s, "/");
			if (len == 0)
				return 0;
			if (!id_valid(s, len)) {
				if (!bad)
					return 0;
				if (!*bad)
					*bad = p;
			} else if (params) {
				if (n >= API_MAX_PARAMS)
					return 0;
				memcpy(params[n], s, len);
				params[n][len] = '\0';
				n++;
			}
			s += len;
			p++;
			continue;
		}
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
	if (*s == '/' && s[1] == '\0')
		s++;
	if (*s)
		return 0;
	if (nparams)
		*nparams = n;
	return 1;
}

int route_match(const char *pattern, const char *path, char params[][API_ID_MAX + 1],
		int *nparams)
{
	return walk(pattern, path, params, nparams, NULL);
}

/* What a '*' of a pattern names, from the literal text before it. */
static const char *segment_kind(const char *pattern, const char *star)
{
	static const struct {
		const char *before;
		const char *kind;
	} kinds[] = {
		{"/api/rooms/", "room"},
		{"/api/jobs/", "job"},
		{"/members/", "member"},
		{"/history/", "revision"},
	};
	size_t at = (size_t)(star - pattern);
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		size_t n = strlen(kinds[i].before);
		if (at >= n && strncmp(star - n, kinds[i].before, n) == 0)
			return kinds[i].kind;
	}
	return NULL;
}

int route_match_malformed(const char *pattern, const char *path, const char **kind)
{
	const char *bad = NULL;
	return walk(pattern, path, NULL, NULL, &bad) && bad && (*kind = segment_kind(pattern, bad));
}

/* Adds method (and HEAD with GET) to the Allow list of a path's routes, once. */
static void allow_add(char *allow, size_t size, const char *method)
{
	if (strstr(allow, method))
		return;
	if (allow[0])
		strncat(allow, ", ", size - strlen(allow) - 1);
	strncat(allow, method, size - strlen(allow) - 1);
	if (strcmp(method, "GET") == 0)
		strncat(allow, ", HEAD", size - strlen(allow) - 1);
}

/* The path has routes, none for this method (RFC 9110, section 15.5.6: with Allow). */
static void answer_405(struct api_ctx *c, const char *allow)
{
	api_error(c, 405, "method_not_allowed", "%s is not allowed here; allowed: %s",
		  c->req->method, allow);
	http_resp_header(c->resp, "Allow", allow);
}

/* No route matched: when the path has the shape of one with an id that cannot be one (a
 * character outside [A-Za-z0-9_-], over 64 bytes, an escape), it names no such room, job,
 * member or revision, and is answered as a well-formed unknown one would be (405 for a
 * method the route does not take, 401 without a session, then the kind's 404), not as an
 * unknown path. 1 when answered. */
static int dispatch_malformed(struct api_ctx *c, const char *method)
{
	static const struct {
		const char *kind, *code, *message;
	} answers[] = {
		{"room", "room_not_found", "no such room: the id in the path is not a room id"},
		{"job", "job_not_found", "no such job: the id in the path is not a job id"},
		{"member", "member_not_found", "no such member: the id in the path is not a user id"},
		{"revision", "snapshot_not_found", "no snapshot at that revision: it is not a number"},
	};
	char allow[128] = "";
	const char *kind = NULL, *found = NULL;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (!route_match_malformed(routes[i].pattern, c->req->path, &kind))
			continue;
		if (strcmp(routes[i].method, method) == 0) {
			found = kind;
			break;
		}
		allow_add(allow, sizeof allow, routes[i].method);
	}
	if (!found && !allow[0])
		return 0;
	if (!found) {
		answer_405(c, allow);
		return 1;
	}
	if (api_require_user(c) < 0)
		return 1;
	for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++)
		if (strcmp(answers[i].kind, found) == 0) {
			api_error(c, 404, answers[i].code, "%s", answers[i].message);
			return 1;
		}
	api_error(c, 404, "not_found", "no such endpoint: %s", c->req->path);
	return 1;
}

void route_dispatch(struct api_ctx *c)
{
	char allow[128] = "";
	char params[API_MAX_PARAMS][API_ID_MAX + 1];
	int n = 0;
	/* HEAD is GET without the body (RFC 9110, section 9.3.2); http_send drops the body */
	const char *method = strcmp(c->req->method, "HEAD") == 0 ? "GET" : c->req->method;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (!route_match(routes[i].pattern, c->req->path, params, &n))
			continue;
		if (strcmp(routes[i].method, method) == 0) {
			memcpy(c->params, params, sizeof params);
			c->nparams = n;
			c->route = (int)i;
			routes[i].fn(c);
			return;
		}
		allow_add(allow, sizeof allow, routes[i].method);
	}
	if (allow[0]) {
		answer_405(c, allow);
		return;
	}
	if (dispatch_malformed(c, method))
		return;
	api_error(c, 404, "not_found", "no such endpoint: %s", c->req->path);
}

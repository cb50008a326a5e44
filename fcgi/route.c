#include "route.h"

#include <string.h>

#include "handlers.h"

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

static int id_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-';
}

int route_match(const char *pattern, const char *path, char params[][API_ID_MAX + 1],
		int *nparams)
{
	const char *p = pattern, *s = path;
	int n = 0;
	while (*p) {
		if (*p == '*') {
			size_t len = 0;
			while (s[len] && s[len] != '/') {
				if (!id_char(s[len]))
					return 0;
				len++;
			}
			if (len == 0 || len > API_ID_MAX || n >= API_MAX_PARAMS)
				return 0;
			memcpy(params[n], s, len);
			params[n][len] = '\0';
			n++;
			s += len;
			p++;
			continue;
		}
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
	/* one trailing slash is forgiven: /api/rooms/ is /api/rooms */
	if (*s == '/' && s[1] == '\0')
		s++;
	if (*s)
		return 0;
	*nparams = n;
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
		if (!strstr(allow, routes[i].method)) {
			if (allow[0])
				strncat(allow, ", ", sizeof allow - strlen(allow) - 1);
			strncat(allow, routes[i].method, sizeof allow - strlen(allow) - 1);
			if (strcmp(routes[i].method, "GET") == 0)
				strncat(allow, ", HEAD", sizeof allow - strlen(allow) - 1);
		}
	}
	if (allow[0]) {
		api_error(c, 405, "method_not_allowed", "%s is not allowed here; allowed: %s",
			  c->req->method, allow);
		http_resp_header(c->resp, "Allow", allow);
		return;
	}
	api_error(c, 404, "not_found", "no such endpoint: %s", c->req->path);
}

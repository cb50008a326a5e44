/* route: the API's table of endpoints and the dispatcher that matches a request to one. */
#ifndef CC_ROUTE_H
#define CC_ROUTE_H

#include "api.h"

typedef void (*route_handler)(struct api_ctx *c);

/* Matches c->req's method and path and runs the handler, or answers 404 / 405 (with
 * Allow). Path segments matched by '*' are copied into c->params; a segment that is not
 * an id (lib/id.h: 1..64 of [A-Za-z0-9_-]) does not match that route; a path that matches
 * none but has a route's shape with such a segment where an id goes is answered as an
 * unknown room, job, member or revision would be (route_match_malformed), any other path
 * 404 not_found. */
void route_dispatch(struct api_ctx *c);

/* The table, for the metrics' route labels: its size, and row i's method and pattern. */
size_t route_count(void);
const char *route_method(size_t i);
const char *route_pattern(size_t i);

/* Pure matcher, for tests: 1 when path matches pattern, with captures in params. */
/* Pure, for tests: 1 when path has pattern's shape (every '*' a non-empty segment) and a
 * segment that route_match refuses, *kind naming what the first such one stands for ("room",
 * "job", "member", "revision"); else 0. */
int route_match_malformed(const char *pattern, const char *path, const char **kind);

int route_match(const char *pattern, const char *path, char params[][API_ID_MAX + 1],
		int *nparams);

#endif

/* For the targets of the API's handlers: a request context over an empty request and a fresh
 * answer, as a handler sees one; the caller frees the answer (http_resp_free). */
#ifndef CC_FUZZ_API_H
#define CC_FUZZ_API_H

#include <string.h>

#include "../../fcgi/api.h"
#include "../../fcgi/http.h"

static inline void fuzz_api_ctx(struct api_ctx *c, struct http_req *req, struct http_resp *resp)
{
	memset(req, 0, sizeof *req);
	http_resp_init(resp);
	memset(c, 0, sizeof *c);
	c->req = req;
	c->resp = resp;
}

#endif

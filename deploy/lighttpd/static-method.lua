-- lighttpd mod_magnet, magnet.attract-physical-path-to for every path outside /api/ and
-- /events/ (lighttpd.conf): the pages and files of the browser client are only read, so a
-- method other than GET and HEAD is 405 with Allow: GET, HEAD, for a file that exists or
-- not (the method is looked at before the path, as the API does). Without this lighttpd
-- serves the file to a POST with a body and answers other methods 501. A POST without a
-- body never gets here: lighttpd refuses it with 411 first, and the API, its error handler,
-- answers that 411 the same way (api_bodyless_post in fcgi/api.c), in the same words as here.
local r = lighty.r
local method = r.req_attr["request.method"]
if method == "GET" or method == "HEAD" then
  return 0
end
r.resp_header["Allow"] = "GET, HEAD"
r.resp_header["Content-Type"] = "application/json"
r.resp_header["Cache-Control"] = "no-store"
r.resp_body.set({ '{"error":"method_not_allowed","message":"this method is not allowed here"}' })
return 405

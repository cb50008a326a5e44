-- lighttpd mod_magnet, magnet.attract-response-start-to for /api/ (lighttpd.conf): the
-- error pages lighttpd writes itself when the API cannot answer become JSON a client can act
-- on. lighttpd 1.4.69 answers 500 when the API process died with the request in flight,
-- 503 when no API process could be reached and 504 when one did not answer in time, each
-- with an HTML page. Here: 502 (500 and 502), 503 or 504, `{"error","message"}` as the rest
-- of the API answers, and Retry-After. Answers of the API itself are JSON already and pass
-- as they are.
-- Also for the requests lighttpd.conf gives no error handler (HTTP/2 needs it so), on every
-- path: a Content-Length of seven digits or more, or a PUT, PATCH or DELETE without one.
-- lighttpd's own 413 for a body over server.max-request-size becomes the API's
-- `payload_too_large`, and a failure of the broker on its paths `broker_unavailable`, as
-- the API words them.
local r = lighty.r
local status = r.req_item.http_status
if status ~= 413 and status ~= 500 and status ~= 502 and status ~= 503 and status ~= 504 then
  return 0
end
local ctype = r.resp_header["Content-Type"] or ""
if string.find(ctype, "json", 1, true) then
  return 0
end
if status == 413 then
  -- lighttpd refused it as soon as it read the head, before mod_setenv added the security
  -- headers (lighttpd.conf's var.csp, var.security_headers, var.hsts): the same values, held
  -- to them by tests/stack/walkthrough.test.mjs (HTTP) and tls.test.mjs (HTTPS)
  r.resp_header["Content-Security-Policy"] = "default-src 'self'; script-src 'self'; " ..
    "style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; " ..
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'; " ..
    "require-trusted-types-for 'script'; trusted-types codecollab"
  r.resp_header["X-Content-Type-Options"] = "nosniff"
  r.resp_header["Referrer-Policy"] = "no-referrer"
  r.resp_header["X-Frame-Options"] = "DENY"
  if r.req_attr["uri.scheme"] == "https" then
    r.resp_header["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
  end
  r.resp_header["Content-Type"] = "application/json"
  r.resp_header["Cache-Control"] = "no-store"
  r.resp_body.set({ '{"error":"payload_too_large","message":"the request body is larger than 1 MiB"}' })
  return 413
end
local code, message
local path = r.req_attr["uri.path"] or ""
if string.sub(path, 1, 8) == "/events/" then
  -- the broker's paths (here only with a request lighttpd.conf gives no error handler,
  -- whose answers the API words alike, fcgi/api.c)
  if status == 500 then status = 502 end
  code, message = "broker_unavailable", "the event broker is unavailable"
elseif status == 503 then
  code, message = "api_unavailable",
    "no API process could take the request; it was not carried out: try again"
elseif status == 504 then
  status = 504
  code, message = "gateway_timeout",
    "the API did not answer in time; the request may or may not have been carried out"
else
  status = 502
  code, message = "bad_gateway",
    "the API process handling the request stopped before it answered; the request may or " ..
    "may not have been carried out: try again (after a change, check whether it was made)"
end
r.resp_header["Content-Type"] = "application/json"
r.resp_header["Cache-Control"] = "no-store"
r.resp_header["Retry-After"] = "1"
r.resp_body.set({ '{"error":"' .. code .. '","message":"' .. message .. '"}' })
return status

-- request_prior(claim, digest): what a client's request id (its mark, the key `claim`,
-- K_JOB_REQUEST) already names. nil when nothing: no mark, or a mark whose job is gone
-- (it names nothing; the request makes a new job and mark). Else the reply to give: for
-- the same request (digest) {2, first job, its status, language, version}, counting a
-- repeat on the first job (a write, so that a WAIT after the script also covers that
-- job's creation); for another request {0, "reused", 0, first job}.
local function request_prior(claim, digest)
  local prior = redis.call('GET', claim)
  if not prior then return nil end
  local was, first = string.match(prior, '^([^:]*):(.+)$')
  if not first or redis.call('EXISTS', K_JOB(first)) == 0 then return nil end
  if was ~= digest then return {0, 'reused', 0, first} end
  redis.call('HINCRBY', K_JOB(first), 'repeats', 1)
  local j = redis.call('HMGET', K_JOB(first), 'status', 'language', 'version')
  return {2, first, j[1] or '', j[2] or '', j[3] or ''}
end

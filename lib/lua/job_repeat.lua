--! use jobreq
--! keys JOB_REQUEST
-- Is this request a repeat (lib/jobstate.h, jobstate_request_repeat)? KEYS: the request
-- id's mark (K_JOB_REQUEST). ARGV: 1 a digest of the request. The API asks before it does
-- any work for a run; job_create asks again, atomically with making the job, for copies
-- that raced past this. Returns job_create's answers for a repeat ({2, …}) or another
-- request under the id ({0, "reused", 0, first job}), or {1} when the id names nothing.
return request_prior(KEYS[1], ARGV[1]) or {1}

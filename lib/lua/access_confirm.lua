--! keys SESSION_REVOKED|USER_TOKGEN
-- KEYS[1] a key that revokes tokens: a session's sign-out mark ("1") or a user's token
-- generation (a number). Written again with its own value and expiry, and only if it is
-- there, so that the connection that runs this has a write after it that a WAIT can wait
-- for: a WAIT covers only the writes of its own connection, and the revocation may have
-- been written long ago by another (lib/access.c, access_revoked_confirm). INCRBY 0 keeps
-- the value and the expiry and is replicated like any write; it never lowers a generation
-- that another process raises meanwhile. 1 written again, 0 not there.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('INCRBY', KEYS[1], 0)
return 1

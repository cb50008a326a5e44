--! keys ROOM_DOC ROOM_OPS
-- KEYS doc, ops; ARGV revision, content, length, bytes. Creates the document unless it
-- exists.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'revision', ARGV[1], 'content', ARGV[2], 'crev', ARGV[1],
'length', ARGV[3], 'bytes', ARGV[4])
redis.call('DEL', KEYS[2]) return 1

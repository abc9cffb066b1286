-- Upgrading: hands back to dirty what flushers of the previous layout claimed (in a sorted set
-- per shard) and never acked, so nothing is stranded there; a worker whose claim was acked
-- after all is written once more.
-- KEYS: dirty set, the shard's legacy in-flight sorted set. ARGV: now ms.
-- Returns how many workers went back.
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], 'NX', ARGV[1], id) end
redis.call('DEL', KEYS[2])
return #ids

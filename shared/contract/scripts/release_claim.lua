-- Hands a claim's workers back to dirty at once when the flusher could not persist them (no
-- need to wait for the lease); a claim that expired and went back to dirty already is left.
-- KEYS: dirty set, claims hash. ARGV: the claim's name, now ms. Returns 1 if released, else 0.
local ids = redis.call('HGET', KEYS[2], ARGV[1])
if not ids then return 0 end
-- Back with the age they had (see claim_dirty.lua), or as new for a claim named without it.
local score = string.match(ARGV[1], '^%d+:%d+:(%d+)$$') or ARGV[2]
for id in string.gmatch(ids, '%S+') do
  redis.call('ZADD', KEYS[1], 'LT', score, id)
end
return redis.call('HDEL', KEYS[2], ARGV[1])

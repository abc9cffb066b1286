-- Brings registry entries in line with Postgres.
-- KEYS: worker hashes of one shard. ARGV: per worker its org, token version, and the heartbeat
-- and active ms Postgres holds ('' = none). Token versions only rise, so a sync that read
-- Postgres before a token rotation can't undo it; heartbeats are restored only into a hash that
-- lost them.
for i = 1, #KEYS do
  local b, key = (i - 1) * 4, KEYS[i]
  local cur = redis.call('HMGET', key, '${ORG}', '${TOKEN_VERSION}', '${HEARTBEAT}')
  if cur[1] ~= ARGV[b + 1] then redis.call('HSET', key, '${ORG}', ARGV[b + 1]) end
  if (not cur[2]) or tonumber(cur[2]) < tonumber(ARGV[b + 2]) then
    redis.call('HSET', key, '${TOKEN_VERSION}', ARGV[b + 2])
  end
  if (not cur[3]) and ARGV[b + 3] ~= '' then
    redis.call('HSET', key, '${HEARTBEAT}', ARGV[b + 3], '${PERSISTED}', ARGV[b + 3])
    if ARGV[b + 4] ~= '' then redis.call('HSETNX', key, '${ACTIVE}', ARGV[b + 4]) end
  end
end
return 0

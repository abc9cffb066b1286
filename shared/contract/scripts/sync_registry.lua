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
  -- The fleet index (keys.seen_key), rebuilt here too: after a data loss, and once for a
  -- deployment that ran before the index existed. It shares the worker hash's hash tag.
  local hb = cur[3] or ARGV[b + 3]
  if hb ~= '' then
    local tag, id = string.match(key, '^(.-}):w:(.*)$$')
    redis.call('ZADD', tag .. ':seen:' .. ARGV[b + 1], 'GT', hb, id)
  end
end
return 0

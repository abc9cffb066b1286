-- Forgets deleted workers: their registry entry, recent logs, dirty mark and fleet index entry.
-- KEYS: per worker its hash and its shard's dirty set. ARGV: the worker ids.
-- The org (which names the index key) is read from the hash before it goes; the index and
-- logs keys share the dirty set's hash tag, as in record_heartbeats.lua.
for i = 1, #KEYS, 2 do
  local key, dirty, id = KEYS[i], KEYS[i + 1], ARGV[(i + 1) / 2]
  local org = redis.call('HGET', key, '${ORG}')
  redis.call('DEL', key, string.sub(dirty, 1, -6) .. 'logs:' .. id)
  redis.call('ZREM', dirty, id)
  if org then redis.call('ZREM', string.sub(dirty, 1, -6) .. 'seen:' .. org, id) end
end
return 0

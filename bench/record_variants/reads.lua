-- A floor for `bench record --script`: writes.lua plus the one HMGET of the ten fields a Den
-- beat's checks read (the checks themselves not made). Not a correct record script.
local call = redis.call
local out, n, b = {}, 0, 3
for i = 1, #KEYS, 2 do
  local cur = call('HMGET', KEYS[i], '${ORG}', '${TOKEN_VERSION}', '${HEARTBEAT}', '${ACTIVE}',
    '${ACTIVE_RECENTLY}', '${OPEN_SESSIONS}', '${PERSISTED}', '${SKEW}', '${DISCONNECTED}',
    '${ANNOUNCED}')
  call('HSET', KEYS[i], '${HEARTBEAT}', ARGV[b + 3], '${ACTIVE}', ARGV[b + 4],
    '${ACTIVE_RECENTLY}', ARGV[b + 5], '${OPEN_SESSIONS}', ARGV[b + 6])
  call('ZADD', KEYS[i + 1], 'NX', ARGV[1], ARGV[b])
  out[n + 1] = '200'; out[n + 2] = ARGV[b + 3]; out[n + 3] = ARGV[b + 4]
  out[n + 4] = ARGV[b + 5]; out[n + 5] = cur[6] or ARGV[b + 6]
  n = n + 5; b = b + 9
end
return out

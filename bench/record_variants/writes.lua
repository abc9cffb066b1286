-- A floor for `bench record --script`: the plain reference's commands (an HSET of four
-- fields, a ZADD NX of the dirty set) run from a script, with no read and no check. Not a
-- correct record script.
local call = redis.call
local out, n, b = {}, 0, 3
for i = 1, #KEYS, 2 do
  call('HSET', KEYS[i], '${HEARTBEAT}', ARGV[b + 3], '${ACTIVE}', ARGV[b + 4],
    '${ACTIVE_RECENTLY}', ARGV[b + 5], '${OPEN_SESSIONS}', ARGV[b + 6])
  call('ZADD', KEYS[i + 1], 'NX', ARGV[1], ARGV[b])
  out[n + 1] = '200'; out[n + 2] = ARGV[b + 3]; out[n + 3] = ARGV[b + 4]
  out[n + 4] = ARGV[b + 5]; out[n + 5] = ARGV[b + 6]
  n = n + 5; b = b + 9
end
return out

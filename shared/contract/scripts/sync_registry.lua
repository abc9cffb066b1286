-- Brings registry entries in line with Postgres.
-- KEYS: worker hashes of one shard. ARGV: per worker its org, token version, the heartbeat and
-- active ms Postgres holds, and the disconnect it holds at or after that heartbeat: its ms,
-- reason, exit code and error message ('' = none). Token versions only rise, so a sync that read
-- Postgres before a token rotation can't undo it; heartbeats are restored only into a hash that
-- lost them.
for i = 1, #KEYS do
  local b, key = (i - 1) * 8, KEYS[i]
  local cur = redis.call('HMGET', key, '${ORG}', '${TOKEN_VERSION}', '${HEARTBEAT}',
    '${DISCONNECTED}')
  if cur[1] ~= ARGV[b + 1] then redis.call('HSET', key, '${ORG}', ARGV[b + 1]) end
  if (not cur[2]) or tonumber(cur[2]) < tonumber(ARGV[b + 2]) then
    redis.call('HSET', key, '${TOKEN_VERSION}', ARGV[b + 2])
  end
  if (not cur[3]) and ARGV[b + 3] ~= '' then
    redis.call('HSET', key, '${HEARTBEAT}', ARGV[b + 3], '${PERSISTED}', ARGV[b + 3])
    if ARGV[b + 4] ~= '' then redis.call('HSETNX', key, '${ACTIVE}', ARGV[b + 4]) end
  end
  if (not cur[3]) and (not cur[4]) and ARGV[b + 5] ~= '' then
    -- The disconnect goes with the heartbeat restored: without it the hash, newer on a tie,
    -- would read as online.
    cur[4] = ARGV[b + 5]
    local set = {'${DISCONNECTED}', cur[4], '${DISCONNECT_REASON}', ARGV[b + 6]}
    if ARGV[b + 7] ~= '' then set[#set + 1] = '${EXIT_CODE}'; set[#set + 1] = ARGV[b + 7] end
    if ARGV[b + 8] ~= '' then set[#set + 1] = '${ERROR_MESSAGE}'; set[#set + 1] = ARGV[b + 8] end
    redis.call('HSET', key, unpack(set))
  end
  -- The fleet index (keys.seen_key), rebuilt here too: after a data loss, and once for a
  -- deployment that ran before the index existed. It shares the worker hash's hash tag. A
  -- disconnected worker sits at 0 (offline) until its next beat.
  local hb = cur[3] or ARGV[b + 3]
  local gone = cur[4] and (hb == '' or tonumber(cur[4]) >= tonumber(hb))
  local tag, id = string.match(key, '^(.-}):w:(.*)$$')
  if gone then
    redis.call('ZADD', tag .. ':seen:' .. ARGV[b + 1], 0, id)
  elseif hb ~= '' then
    redis.call('ZADD', tag .. ':seen:' .. ARGV[b + 1], 'GT', hb, id)
  end
end
return 0

-- Claims up to a limit of a shard's dirty workers under a lease.
-- KEYS: dirty set, claims hash. ARGV: now ms, lease ms, how many, worker key prefix.
-- Claims whose lease expired go back to dirty first, so a flusher that died between claim and
-- ack loses nothing. A claim is named "<lease expiry>:<workers>:<oldest dirty since>" (ms). A
-- claim is one field of the claims hash (see `keys.claims_key`), not one entry per worker:
-- recording, acking and releasing it cost the same however many it holds.
-- Returns nothing when no worker is dirty, else the claim's name and then column by column: the
-- worker ids, then per Den field of LIVE_FIELDS one value per worker ('' = missing), then per
-- worker whose hash holds a Kubiya status or a disconnect its row number (from 1) and the ten
-- fields of LIVE_FIELDS after the Den ones (Kubiya's status fields, system info, disconnect).
-- The heartbeat read here is recorded as persisted right away: the claimed state stays in a
-- claim until Postgres has it (a failed write or a dead flusher puts it back in dirty), so the
-- mark only spares the dirty rule from re-marking the worker for what is in hand.
local now, limit, prefix = tonumber(ARGV[1]), tonumber(ARGV[3]), ARGV[4]
local taken = {}
for _, name in ipairs(redis.call('HKEYS', KEYS[2])) do
  local expiry, since = string.match(name, '^(%d+):%d+:?(%d*)$$')
  expiry = tonumber(expiry)
  if expiry <= now then
    -- Back with the age they had (LT keeps an older score a worker may have meanwhile), so the
    -- flush lag stays the age of the oldest beat Postgres lacks. Claims named before the age
    -- was recorded go back as new.
    local score = tonumber(since) or now
    for id in string.gmatch(redis.call('HGET', KEYS[2], name), '%S+') do
      redis.call('ZADD', KEYS[1], 'LT', score, id)
    end
    redis.call('HDEL', KEYS[2], name)
  else
    taken[expiry] = true
  end
end
local ids = redis.call('ZRANGE', KEYS[1], 0, limit - 1)
if #ids == 0 then return {} end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #ids - 1)
local expiry = now + tonumber(ARGV[2])
while taken[expiry] do expiry = expiry + 1 end
local name = tostring(expiry) .. ':' .. #ids .. ':' .. oldest
redis.call('HSET', KEYS[2], name, table.concat(ids, ' '))
local hb, act, iar, osc, skew, kubiya = {}, {}, {}, {}, {}, {}
for i = 1, #ids do
  local key = prefix .. ids[i]
  local h = redis.call('HMGET', key, '${HEARTBEAT}', '${ACTIVE}', '${ACTIVE_RECENTLY}',
    '${OPEN_SESSIONS}', '${SKEW}', '${STATUS}', '${DISCONNECTED}')
  if h[1] then redis.call('HSET', key, '${PERSISTED}', h[1]) end
  hb[i], act[i], iar[i] = h[1] or '', h[2] or '', h[3] or ''
  osc[i], skew[i] = h[4] or '', h[5] or ''
  if h[6] or h[7] then
    local k, n = redis.call('HMGET', key, '${TASKS}', '${TASK_ID}', '${ENVIRONMENT}',
      '${METADATA}', '${SYSTEM_INFO}', '${DISCONNECT_REASON}', '${EXIT_CODE}',
      '${ERROR_MESSAGE}'), #kubiya
    kubiya[n + 1], kubiya[n + 2], kubiya[n + 3] = i, h[6] or '', k[1] or ''
    kubiya[n + 4], kubiya[n + 5], kubiya[n + 6] = k[2] or '', k[3] or '', k[4] or ''
    kubiya[n + 7], kubiya[n + 8], kubiya[n + 9] = k[5] or '', h[7] or '', k[6] or ''
    kubiya[n + 10], kubiya[n + 11] = k[7] or '', k[8] or ''
  end
end
return {name, ids, hb, act, iar, osc, skew, kubiya}

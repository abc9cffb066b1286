-- Finds one shard's liveness transitions since its previous sweep, announces each once.
-- KEYS: the shard's revived set, swept mark, pending events, then the fleet index key of each
-- org (keys.seen_key). ARGV: now ms, stale ms, offline ms, then the orgs, in KEYS' order.
-- Atomic, with a watermark that only moves forward: however many flushers sweep, a window of
-- time is looked at once. Each worker's announced liveness (${ANNOUNCED} in its hash) guards
-- the order online -> stale -> offline -> online, so every transition is announced once.
-- Returns the new pending events (member strings: type|worker|org|at ms|heartbeat ms|previous).
local revived, swept, pending = KEYS[1], KEYS[2], KEYS[3]
local tag = string.sub(revived, 1, -9)
local now, stale, offline = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local last = tonumber(redis.call('GET', swept))
if last and last > now then now = last end
redis.call('SET', swept, now)
local out = {}

local function ms(value)
  if value == '' then return '' end  -- no heartbeat (a worker that disconnected before any)
  return string.format('%d', tonumber(value))
end

local function announce(kind, id, org, at, hb, previous)
  local member = kind .. '|' .. id .. '|' .. org .. '|' .. ms(at) .. '|' .. ms(hb) .. '|' .. previous
  redis.call('ZADD', pending, at, member)
  out[#out + 1] = member
end

-- Workers a beat or a disconnect may have changed: a disconnected one is offline from its
-- disconnect; one that beat is online now, unless the beat was already old.
local back = redis.call('ZRANGE', revived, 0, -1)
redis.call('DEL', revived)
for _, id in ipairs(back) do
  local key = tag .. ':w:' .. id
  local cur = redis.call('HMGET', key, '${ORG}', '${HEARTBEAT}', '${ANNOUNCED}', '${DISCONNECTED}')
  if cur[1] and cur[4] and ((not cur[2]) or tonumber(cur[4]) >= tonumber(cur[2])) then
    if cur[3] ~= 'offline' then
      redis.call('HSET', key, '${ANNOUNCED}', 'offline')
      announce('worker.offline', id, cur[1], cur[4], cur[2] or '', cur[3] or 'never')
    end
  elseif cur[1] and cur[2] and cur[3] ~= 'online' and tonumber(cur[2]) > now - stale then
    redis.call('HSET', key, '${ANNOUNCED}', 'online')
    announce('worker.online', id, cur[1], cur[2], cur[2], cur[3] or 'never')
  end
end

-- Workers whose last beat aged past a threshold inside (last, now]. The first sweep of a
-- shard (no mark) only sets the mark.
if last then
  for i = 4, #KEYS do
    local org = ARGV[i]
    local steps = {{'worker.stale', 'stale', stale, {online = true}},
                   {'worker.offline', 'offline', offline, {online = true, stale = true}}}
    for _, step in ipairs(steps) do
      local kind, value, after, from = step[1], step[2], step[3], step[4]
      local crossed = redis.call('ZRANGEBYSCORE', KEYS[i], '(' .. ms(last - after), ms(now - after),
        'WITHSCORES')
      for j = 1, #crossed, 2 do
        local id, hb = crossed[j], crossed[j + 1]
        local key = tag .. ':w:' .. id
        local was = redis.call('HGET', key, '${ANNOUNCED}')
        if was and from[was] then
          redis.call('HSET', key, '${ANNOUNCED}', value)
          announce(kind, id, org, tonumber(hb) + after, hb, was)
        end
      end
    end
  end
end
return out

-- Records a batch of beats. The placeholders are hash field names, from shared/contract/keys.py.
-- KEYS: per beat its worker hash and its shard's dirty set.
-- ARGV: now ms, persist interval ms, then per beat the fields `record.py` packs (9 for a Den
-- beat, 14 for a Kubiya one: the kind says which).
-- Returns per beat: code (200/401/404), heartbeat, active ('' = null), active recently, sessions.
local now = ARGV[1]
local persist = tonumber(ARGV[2])
local out = {}
local b = 3
for i = 1, #KEYS, 2 do
  local key, dirty = KEYS[i], KEYS[i + 1]
  local cur = redis.call('HMGET', key, '${ORG}', '${TOKEN_VERSION}', '${HEARTBEAT}', '${ACTIVE}',
    '${ACTIVE_RECENTLY}', '${OPEN_SESSIONS}', '${PERSISTED}', '${STATUS}', '${TASK_ID}',
    '${ENVIRONMENT}', '${SKEW}')
  if not cur[1] and redis.call('EXISTS', string.sub(dirty, 1, -6) .. 'synced') == 0 then
    -- No entry, and the shard's registry is not known to be complete (Redis lost its data and
    -- the flusher has not rebuilt it yet): a passing state, not a deleted worker. The mark
    -- shares the dirty set's hash tag, so this stays within the call's slot.
    out[#out + 1] = '503'; out[#out + 1] = ''; out[#out + 1] = ''; out[#out + 1] = ''
    out[#out + 1] = ''
  elseif not cur[1] or (ARGV[b + 2] ~= '' and ARGV[b + 2] ~= cur[1]) then
    out[#out + 1] = '404'; out[#out + 1] = ''; out[#out + 1] = ''; out[#out + 1] = ''
    out[#out + 1] = ''
  elseif ARGV[b + 1] ~= '' and ARGV[b + 1] ~= cur[2] then
    out[#out + 1] = '401'; out[#out + 1] = ''; out[#out + 1] = ''; out[#out + 1] = ''
    out[#out + 1] = ''
  else
    local set = {}
    local hb, old_hb = ARGV[b + 3], cur[3]
    local newest = (not old_hb) or tonumber(hb) >= tonumber(old_hb)
    local meaningful = false
    if newest then
      set[#set + 1] = '${HEARTBEAT}'; set[#set + 1] = hb
    else
      hb = old_hb
    end
    local act = cur[4]
    if ARGV[b + 4] ~= '' and ((not act) or tonumber(ARGV[b + 4]) > tonumber(act)) then
      act = ARGV[b + 4]
      set[#set + 1] = '${ACTIVE}'; set[#set + 1] = act
    end
    local iar, osc = cur[5], cur[6]
    if newest then
      if ARGV[b + 5] ~= '' then
        if ARGV[b + 5] ~= iar then meaningful = true end
        iar = ARGV[b + 5]
        set[#set + 1] = '${ACTIVE_RECENTLY}'; set[#set + 1] = iar
      end
      if ARGV[b + 6] ~= '' then
        if ARGV[b + 6] ~= osc then meaningful = true end
        osc = ARGV[b + 6]
        set[#set + 1] = '${OPEN_SESSIONS}'; set[#set + 1] = osc
      end
      if ARGV[b + 7] ~= '' then
        set[#set + 1] = '${SKEW}'; set[#set + 1] = ARGV[b + 7]
      elseif ARGV[b + 8] == 'd' and cur[11] then
        -- The skew is the newest beat's observation, and a Den beat without a client time made
        -- none: the stored one is stale. Dropping it counts as a change, so Postgres drops it
        -- at the next flush rather than a persist interval later.
        redis.call('HDEL', key, '${SKEW}')
        meaningful = true
      end
      if ARGV[b + 8] == 'k' then
        if ARGV[b + 9] ~= cur[8] or ARGV[b + 11] ~= (cur[9] or '') or ARGV[b + 12] ~= cur[10] then
          meaningful = true
        end
        set[#set + 1] = '${STATUS}'; set[#set + 1] = ARGV[b + 9]
        set[#set + 1] = '${TASKS}'; set[#set + 1] = ARGV[b + 10]
        set[#set + 1] = '${ENVIRONMENT}'; set[#set + 1] = ARGV[b + 12]
        set[#set + 1] = '${METADATA}'; set[#set + 1] = ARGV[b + 13]
        if ARGV[b + 11] == '' then
          redis.call('HDEL', key, '${TASK_ID}')
        else
          set[#set + 1] = '${TASK_ID}'; set[#set + 1] = ARGV[b + 11]
        end
      end
    end
    if #set > 0 then redis.call('HSET', key, unpack(set)) end
    -- Fleet index (keys.seen_key): the org's last heartbeats on this shard. GT: only forward.
    redis.call('ZADD', string.sub(dirty, 1, -6) .. 'seen:' .. cur[1], 'GT', hb, ARGV[b])
    -- Liveness events (flusher/liveness_sweep.py): a newer beat of a worker not announced
    -- online may have brought it online; the sweep decides and announces.
    if newest and redis.call('HGET', key, '${ANNOUNCED}') ~= 'online' then
      redis.call('ZADD', string.sub(dirty, 1, -6) .. 'revived', hb, ARGV[b])
    end
    if meaningful or tonumber(hb) - (tonumber(cur[7]) or 0) >= persist then
      redis.call('ZADD', dirty, 'NX', now, ARGV[b])
    end
    out[#out + 1] = '200'; out[#out + 1] = hb; out[#out + 1] = act or ''
    out[#out + 1] = iar or ''; out[#out + 1] = osc or ''
  end
  if ARGV[b + 8] == 'k' then b = b + 14 else b = b + 9 end
end
return out

-- Records a batch of beats (and disconnects). The placeholders are hash field names, from
-- shared/contract/keys.py.
-- KEYS: per beat its worker hash and its shard's dirty set.
-- ARGV: now ms, persist interval ms, then per beat the fields `record.py` packs: nine shared ones
-- (worker id, token version, org, heartbeat ms, active ms, active recently, open sessions, skew,
-- kind), then by kind:
--   'd' Den: nothing more (9 in all);
--   'k' Kubiya: status, tasks, task id, environment, metadata (14);
--   'w' a lightweight beat of Kubiya's per-worker route: status, tasks, task id, metadata (13);
--   'f' a full one: those four, system info ('' = none), log lines and log bytes kept, the
--       number of log lines, the lines (17 + lines);
--   'x' a disconnect, its time in the heartbeat's place: reason, exit code, error message (12).
-- Returns per beat: code (200/401/404/503), heartbeat, active ('' = null), active recently,
-- sessions.
local now = ARGV[1]
local persist = tonumber(ARGV[2])
local out = {}
local b = 3
for i = 1, #KEYS, 2 do
  local key, dirty = KEYS[i], KEYS[i + 1]
  local kind = ARGV[b + 8]
  local cur = redis.call('HMGET', key, '${ORG}', '${TOKEN_VERSION}', '${HEARTBEAT}', '${ACTIVE}',
    '${ACTIVE_RECENTLY}', '${OPEN_SESSIONS}', '${PERSISTED}', '${STATUS}', '${TASK_ID}',
    '${ENVIRONMENT}', '${SKEW}', '${DISCONNECTED}')
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
  elseif kind == 'x' then
    -- A disconnect is not a heartbeat: the last one stays. It is stamped no earlier than that
    -- heartbeat, so it reads as offline (disconnected at or after the last beat) even when
    -- replicas' clocks differ; the next beat clears it.
    local at = ARGV[b + 3]
    if cur[3] and tonumber(cur[3]) > tonumber(at) then at = cur[3] end
    local set = {'${DISCONNECTED}', at, '${DISCONNECT_REASON}', ARGV[b + 9]}
    local gone = {}
    if ARGV[b + 10] ~= '' then
      set[#set + 1] = '${EXIT_CODE}'; set[#set + 1] = ARGV[b + 10]
    else
      gone[#gone + 1] = '${EXIT_CODE}'
    end
    if ARGV[b + 11] ~= '' then
      set[#set + 1] = '${ERROR_MESSAGE}'; set[#set + 1] = ARGV[b + 11]
    else
      gone[#gone + 1] = '${ERROR_MESSAGE}'
    end
    redis.call('HSET', key, unpack(set))
    if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
    redis.call('ZADD', dirty, 'NX', now, ARGV[b])
    -- Fleet index: offline at once (0 is below every threshold) until a newer beat raises it;
    -- the sweep announces worker.offline unless it already did.
    local tag = string.sub(dirty, 1, -6)
    redis.call('ZADD', tag .. 'seen:' .. cur[1], 0, ARGV[b])
    if redis.call('HGET', key, '${ANNOUNCED}') ~= 'offline' then
      redis.call('ZADD', tag .. 'revived', at, ARGV[b])
    end
    out[#out + 1] = '200'; out[#out + 1] = cur[3] or ''; out[#out + 1] = cur[4] or ''
    out[#out + 1] = cur[5] or ''; out[#out + 1] = cur[6] or ''
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
      elseif kind == 'd' and cur[11] then
        -- The skew is the newest beat's observation, and a Den beat without a client time made
        -- none: the stored one is stale. Dropping it counts as a change, so Postgres drops it
        -- at the next flush rather than a persist interval later.
        redis.call('HDEL', key, '${SKEW}')
        meaningful = true
      end
      if cur[12] then
        -- Back after a disconnect: the worker is online again, and Postgres learns it at the
        -- next flush.
        redis.call('HDEL', key, '${DISCONNECTED}', '${DISCONNECT_REASON}', '${EXIT_CODE}',
          '${ERROR_MESSAGE}')
        meaningful = true
      end
      if kind ~= 'd' then
        -- Kubiya's status fields; only the older route names an environment (else it stays).
        local env, metadata = nil, ARGV[b + 12]
        if kind == 'k' then env, metadata = ARGV[b + 12], ARGV[b + 13] end
        if ARGV[b + 9] ~= cur[8] or ARGV[b + 11] ~= (cur[9] or '') or (env and env ~= cur[10]) then
          meaningful = true
        end
        set[#set + 1] = '${STATUS}'; set[#set + 1] = ARGV[b + 9]
        set[#set + 1] = '${TASKS}'; set[#set + 1] = ARGV[b + 10]
        set[#set + 1] = '${METADATA}'; set[#set + 1] = metadata
        if env then set[#set + 1] = '${ENVIRONMENT}'; set[#set + 1] = env end
        if ARGV[b + 11] == '' then
          if cur[9] then redis.call('HDEL', key, '${TASK_ID}') end
        else
          set[#set + 1] = '${TASK_ID}'; set[#set + 1] = ARGV[b + 11]
        end
        if kind == 'f' and ARGV[b + 13] ~= '' then
          -- A full beat's system info replaces the stored one; a lightweight beat keeps it.
          if ARGV[b + 13] ~= redis.call('HGET', key, '${SYSTEM_INFO}') then meaningful = true end
          set[#set + 1] = '${SYSTEM_INFO}'; set[#set + 1] = ARGV[b + 13]
        end
      end
    end
    local lines = kind == 'f' and tonumber(ARGV[b + 16]) or 0
    if lines > 0 then
      -- Recent logs (Redis only): appended, then the oldest lines dropped until at most `keep`
      -- lines of at most `cap` bytes remain. The list shares the worker hash's hash tag, and
      -- the hash holds its byte count, so only the lines dropped are read.
      local logs = string.sub(dirty, 1, -6) .. 'logs:' .. ARGV[b]
      local keep, cap = tonumber(ARGV[b + 14]), tonumber(ARGV[b + 15])
      local first, last = b + 17, b + 16 + lines
      local count
      for j = first, last, 100 do
        count = redis.call('RPUSH', logs, unpack(ARGV, j, math.min(j + 99, last)))
      end
      local total = 0
      if count > lines then total = tonumber(redis.call('HGET', key, '${LOG_BYTES}')) or 0 end
      for j = first, last do total = total + #ARGV[j] end
      local drop = 0
      while (count - drop > keep or total > cap) and drop < count do
        local want = math.max(count - drop - keep, 8)
        for _, line in ipairs(redis.call('LRANGE', logs, drop, drop + want - 1)) do
          if count - drop <= keep and total <= cap then break end
          total = total - #line
          drop = drop + 1
        end
      end
      if drop >= count then
        redis.call('DEL', logs)
        total = 0
      elseif drop > 0 then
        redis.call('LTRIM', logs, drop, -1)
      end
      set[#set + 1] = '${LOG_BYTES}'; set[#set + 1] = tostring(total)
    end
    if #set > 0 then redis.call('HSET', key, unpack(set)) end
    -- Fleet index (keys.seen_key): the org's last heartbeats on this shard. GT: only forward.
    -- An older beat leaves a disconnected worker where the disconnect put it (offline).
    if newest or not cur[12] then
      redis.call('ZADD', string.sub(dirty, 1, -6) .. 'seen:' .. cur[1], 'GT', hb, ARGV[b])
    end
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
  if kind == 'd' then
    b = b + 9
  elseif kind == 'k' then
    b = b + 14
  elseif kind == 'w' then
    b = b + 13
  elseif kind == 'x' then
    b = b + 12
  else
    b = b + 17 + tonumber(ARGV[b + 16])
  end
end
return out

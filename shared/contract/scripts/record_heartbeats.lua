-- Records a batch of beats (and disconnects). The placeholders are hash field names, from
-- shared/contract/keys.py.
-- KEYS: per beat its worker hash and its shard's dirty set; all in one slot on a cluster.
-- Or no KEYS: a cluster node's call (shared/redis/cluster_pipes.py) with the beats of every slot
-- the node serves. The same keys then follow ARGV's first two values, after their count, and a
-- beat whose hash the node does not serve (its slot moved or is moving) is answered 421 and
-- left untouched: ingest sends it again on a call of its own slot, which follows the redirect.
-- Such a call needs this script to have no `#!lua` first line: Redis 7 refuses keys of several
-- slots to a script with one (unless it names allow-cross-slot-keys, which Redis 6 can't read).
-- ARGV: now ms, persist interval ms, then per beat the fields `record.py` packs: nine shared ones
-- (worker id, token version, org, heartbeat ms, active ms, active recently, open sessions, skew,
-- kind), then by kind:
--   'd' Den: nothing more (9 in all);
--   'k' Kubiya: status, tasks, task id, environment, metadata (14);
--   'w' a lightweight beat of Kubiya's per-worker route: status, tasks, task id, metadata (13);
--   'f' a full one: those four, system info ('' = none), log lines and log bytes kept, the
--       lines' id ('' = none; the same beat sent again carries the same), the number of log
--       lines, the lines (18 + lines);
--   'x' a disconnect, its time in the heartbeat's place: reason, exit code, error message (12).
-- Returns per beat: code (200/401/404/421/503), heartbeat, active ('' = null), active recently,
-- sessions.
--
-- Redis' cost of a beat is the commands it runs and the arguments they carry. A steady Den beat
-- reads once (one HMGET of only what its checks need, the announced liveness included) and
-- writes only what changed (one HSET, usually of the heartbeat and active time), then raises its
-- fleet index entry; the revived and dirty sets only when the beat calls for it.
local call = redis.call
local now = ARGV[1]
local persist = tonumber(ARGV[2])
local out, n = {}, 0
-- Reused by every beat for HSET's arguments (field, value pairs; `m` of them in use).
local set = {}

local function refuse(code)
  out[n + 1] = code; out[n + 2] = ''; out[n + 3] = ''; out[n + 4] = ''; out[n + 5] = ''
  n = n + 5
end

local K, b, read = KEYS, 3, call
if #KEYS == 0 then
  local count = tonumber(ARGV[3])
  K = {}
  for i = 1, count do K[i] = ARGV[3 + i] end
  b = 4 + count
  -- An error (a key this node does not serve) comes back as a value, not raised: it refuses
  -- that beat only. The beat's other keys share its hash tag, so its first read decides.
  read = redis.pcall
end
for i = 1, #K, 2 do
  local key, dirty = K[i], K[i + 1]
  local id, kind = ARGV[b], ARGV[b + 8]
  local cur
  if kind == 'd' or kind == 'x' then
    cur = read('HMGET', key, '${ORG}', '${TOKEN_VERSION}', '${HEARTBEAT}', '${ACTIVE}',
      '${ACTIVE_RECENTLY}', '${OPEN_SESSIONS}', '${PERSISTED}', '${SKEW}', '${DISCONNECTED}',
      '${ANNOUNCED}')
  else
    cur = read('HMGET', key, '${ORG}', '${TOKEN_VERSION}', '${HEARTBEAT}', '${ACTIVE}',
      '${ACTIVE_RECENTLY}', '${OPEN_SESSIONS}', '${PERSISTED}', '${SKEW}', '${DISCONNECTED}',
      '${ANNOUNCED}', '${STATUS}', '${TASK_ID}', '${ENVIRONMENT}')
  end
  local org = cur[1]
  if cur.err then
    refuse('421')
  elseif not org and call('EXISTS', string.sub(dirty, 1, -6) .. 'synced') == 0 then
    -- No entry, and the shard's registry is not known to be complete (Redis lost its data and
    -- the flusher has not rebuilt it yet): a passing state, not a deleted worker. The mark
    -- shares the dirty set's hash tag, so this stays within the call's slot.
    refuse('503')
  elseif not org or (ARGV[b + 2] ~= '' and ARGV[b + 2] ~= org) then
    refuse('404')
  elseif ARGV[b + 1] ~= '' and ARGV[b + 1] ~= cur[2] then
    refuse('401')
  elseif kind == 'x' then
    -- A disconnect is not a heartbeat: the last one stays. It is stamped no earlier than that
    -- heartbeat, so it reads as offline (disconnected at or after the last beat) even when
    -- replicas' clocks differ; the next beat clears it.
    local at = ARGV[b + 3]
    if cur[3] and tonumber(cur[3]) > tonumber(at) then at = cur[3] end
    local fields = {'${DISCONNECTED}', at, '${DISCONNECT_REASON}', ARGV[b + 9]}
    local gone = {}
    if ARGV[b + 10] ~= '' then
      fields[#fields + 1] = '${EXIT_CODE}'; fields[#fields + 1] = ARGV[b + 10]
    else
      gone[#gone + 1] = '${EXIT_CODE}'
    end
    if ARGV[b + 11] ~= '' then
      fields[#fields + 1] = '${ERROR_MESSAGE}'; fields[#fields + 1] = ARGV[b + 11]
    else
      gone[#gone + 1] = '${ERROR_MESSAGE}'
    end
    call('HSET', key, unpack(fields))
    if #gone > 0 then call('HDEL', key, unpack(gone)) end
    call('ZADD', dirty, 'NX', now, id)
    -- Fleet index: offline at once (0 is below every threshold) until a newer beat raises it;
    -- the sweep announces worker.offline unless it already did.
    local tag = string.sub(dirty, 1, -6)
    call('ZADD', tag .. 'seen:' .. org, 0, id)
    if cur[10] ~= 'offline' then call('ZADD', tag .. 'revived', at, id) end
    out[n + 1] = '200'; out[n + 2] = cur[3] or ''; out[n + 3] = cur[4] or ''
    out[n + 4] = cur[5] or ''; out[n + 5] = cur[6] or ''
    n = n + 5
  else
    -- Only what changed is written; `set` holds field, value pairs, `gone` fields to delete.
    local m, gone = 0, nil
    local hb, old_hb = ARGV[b + 3], cur[3]
    local hb_ms = tonumber(hb)
    local newest = (not old_hb) or hb_ms >= tonumber(old_hb)
    local meaningful = false
    if newest then
      if hb ~= old_hb then set[1] = '${HEARTBEAT}'; set[2] = hb; m = 2 end
    else
      hb, hb_ms = old_hb, tonumber(old_hb)
    end
    local act = cur[4]
    if ARGV[b + 4] ~= '' and ((not act) or tonumber(ARGV[b + 4]) > tonumber(act)) then
      act = ARGV[b + 4]
      set[m + 1] = '${ACTIVE}'; set[m + 2] = act; m = m + 2
    end
    local iar, osc = cur[5], cur[6]
    if newest then
      local value = ARGV[b + 5]
      if value ~= '' and value ~= iar then
        meaningful = true
        iar = value
        set[m + 1] = '${ACTIVE_RECENTLY}'; set[m + 2] = iar; m = m + 2
      end
      value = ARGV[b + 6]
      if value ~= '' and value ~= osc then
        meaningful = true
        osc = value
        set[m + 1] = '${OPEN_SESSIONS}'; set[m + 2] = osc; m = m + 2
      end
      value = ARGV[b + 7]
      if value ~= '' then
        if value ~= cur[8] then set[m + 1] = '${SKEW}'; set[m + 2] = value; m = m + 2 end
      elseif kind == 'd' and cur[8] then
        -- The skew is the newest beat's observation, and a Den beat without a client time made
        -- none: the stored one is stale. Dropping it counts as a change, so Postgres drops it
        -- at the next flush rather than a persist interval later.
        gone = {'${SKEW}'}
        meaningful = true
      end
      if cur[9] then
        -- Back after a disconnect: the worker is online again, and Postgres learns it at the
        -- next flush.
        gone = gone or {}
        gone[#gone + 1] = '${DISCONNECTED}'; gone[#gone + 1] = '${DISCONNECT_REASON}'
        gone[#gone + 1] = '${EXIT_CODE}'; gone[#gone + 1] = '${ERROR_MESSAGE}'
        meaningful = true
      end
      if kind ~= 'd' then
        -- Kubiya's status fields; only the older route names an environment (else it stays).
        local env, metadata = nil, ARGV[b + 12]
        if kind == 'k' then env, metadata = ARGV[b + 12], ARGV[b + 13] end
        local status, task = ARGV[b + 9], ARGV[b + 11]
        if status ~= cur[11] then
          meaningful = true
          set[m + 1] = '${STATUS}'; set[m + 2] = status; m = m + 2
        end
        if env and env ~= cur[13] then
          meaningful = true
          set[m + 1] = '${ENVIRONMENT}'; set[m + 2] = env; m = m + 2
        end
        if task == '' then
          if cur[12] then
            meaningful = true
            gone = gone or {}
            gone[#gone + 1] = '${TASK_ID}'
          end
        elseif task ~= cur[12] then
          meaningful = true
          set[m + 1] = '${TASK_ID}'; set[m + 2] = task; m = m + 2
        end
        set[m + 1] = '${TASKS}'; set[m + 2] = ARGV[b + 10]
        set[m + 3] = '${METADATA}'; set[m + 4] = metadata
        m = m + 4
        if kind == 'f' and ARGV[b + 13] ~= '' then
          -- A full beat's system info replaces the stored one; a lightweight beat keeps it.
          if ARGV[b + 13] ~= call('HGET', key, '${SYSTEM_INFO}') then
            meaningful = true
            set[m + 1] = '${SYSTEM_INFO}'; set[m + 2] = ARGV[b + 13]; m = m + 2
          end
        end
      end
    end
    local lines = kind == 'f' and tonumber(ARGV[b + 17]) or 0
    local lines_id = kind == 'f' and ARGV[b + 16] or ''
    if lines > 0 and lines_id ~= '' and lines_id == call('HGET', key, '${LOGS_ID}') then
      -- This beat's lines are in the list already: the beat is being sent again (its reply was
      -- lost with a dropped connection, or a cluster node's call stopped part way).
      lines = 0
    end
    if lines > 0 then
      -- Recent logs (Redis only): appended, then the oldest lines dropped until at most `keep`
      -- lines of at most `cap` bytes remain. The list shares the worker hash's hash tag, and
      -- the hash holds its byte count, so only the lines dropped are read.
      local logs = string.sub(dirty, 1, -6) .. 'logs:' .. id
      local keep, cap = tonumber(ARGV[b + 14]), tonumber(ARGV[b + 15])
      local first, last = b + 18, b + 17 + lines
      local count
      for j = first, last, 100 do
        count = call('RPUSH', logs, unpack(ARGV, j, math.min(j + 99, last)))
      end
      local total = 0
      if count > lines then total = tonumber(call('HGET', key, '${LOG_BYTES}')) or 0 end
      for j = first, last do total = total + #ARGV[j] end
      local drop = 0
      while (count - drop > keep or total > cap) and drop < count do
        local want = math.max(count - drop - keep, 8)
        for _, line in ipairs(call('LRANGE', logs, drop, drop + want - 1)) do
          if count - drop <= keep and total <= cap then break end
          total = total - #line
          drop = drop + 1
        end
      end
      if drop >= count then
        call('DEL', logs)
        total = 0
      elseif drop > 0 then
        call('LTRIM', logs, drop, -1)
      end
      set[m + 1] = '${LOG_BYTES}'; set[m + 2] = tostring(total); m = m + 2
      if lines_id ~= '' then set[m + 1] = '${LOGS_ID}'; set[m + 2] = lines_id; m = m + 2 end
    end
    if m > 0 then call('HSET', key, unpack(set, 1, m)) end
    if gone then call('HDEL', key, unpack(gone)) end
    if newest then
      -- Fleet index (keys.seen_key): the org's last heartbeats on this shard. GT: only
      -- forward. An older beat leaves it alone: the newest raised it, or a disconnect put the
      -- worker at 0 (offline) and only a newer beat brings it back.
      local tag = string.sub(dirty, 1, -6)
      call('ZADD', tag .. 'seen:' .. org, 'GT', hb, id)
      -- Liveness events (flusher/liveness_sweep.py): a newer beat of a worker not announced
      -- online may have brought it online; the sweep decides and announces. It reads the
      -- heartbeat (and the disconnect) from the hash, so the score only orders the set: NX
      -- keeps the first entry's and makes a further beat before the sweep a lookup, not a move.
      if cur[10] ~= 'online' then call('ZADD', tag .. 'revived', 'NX', hb, id) end
    end
    if meaningful or hb_ms - (tonumber(cur[7]) or 0) >= persist then
      call('ZADD', dirty, 'NX', now, id)
    end
    out[n + 1] = '200'; out[n + 2] = hb; out[n + 3] = act or ''
    out[n + 4] = iar or ''; out[n + 5] = osc or ''
    n = n + 5
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
    b = b + 18 + tonumber(ARGV[b + 17])
  end
end
return out

"""The Redis storage contract: key names, shard hash tags and the Lua scripts all services share.

One hash per worker holds the registry entry (org, token version) and the hot heartbeat fields.
Every key of a shard carries the hash tag `{hb:N}`, so each script touches one cluster slot.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

from redis.asyncio import Redis

# Hash fields of a worker. Short names: a million workers keep them a million times.
F_ORG = "o"
F_TOKEN_VERSION = "v"
F_HEARTBEAT = "hb"  # last heartbeat, server-clamped, ms
F_ACTIVE = "act"  # last active, ms
F_ACTIVE_RECENTLY = "iar"  # "1" or "0"
F_OPEN_SESSIONS = "osc"
F_SKEW = "skew"  # client clock minus server clock at the newest beat, ms
F_STATUS = "ks"  # Kubiya reported status
F_TASKS = "kt"
F_TASK_ID = "kc"
F_ENVIRONMENT = "ke"
F_METADATA = "km"  # JSON text
F_PERSISTED = "p"  # the heartbeat ms that Postgres holds

# What the flusher persists and the read API merges, in this order.
LIVE_FIELDS = (
    F_HEARTBEAT, F_ACTIVE, F_ACTIVE_RECENTLY, F_OPEN_SESSIONS, F_SKEW,
    F_STATUS, F_TASKS, F_TASK_ID, F_ENVIRONMENT, F_METADATA,
)  # fmt: skip

API_KEYS = "hb:{apikeys}"
# Rows the flushers wrote to Postgres, all processes together (served by the API's /metrics).
ROWS_PERSISTED = "hb:{stats}:rows_persisted"


def shard_of(worker_id: str, shards: int) -> int:
    return zlib.crc32(worker_id.encode()) % shards


def shard_tag(shard: int) -> str:
    return f"{{hb:{shard}}}"


def worker_prefix(shard: int) -> str:
    return f"{shard_tag(shard)}:w:"


def worker_key(worker_id: str, shards: int) -> str:
    return worker_prefix(shard_of(worker_id, shards)) + worker_id


def dirty_key(shard: int) -> str:
    return f"{shard_tag(shard)}:dirty"


def claims_key(shard: int) -> str:
    """The shard's claims in flight: a hash from claim name to the claimed ids (space-separated).

    A claim's name is "<lease expiry ms>:<workers>"; the expiry is unique among the shard's
    claims. A flusher acks a claim by deleting its field (HDEL)."""
    return f"{shard_tag(shard)}:claims"


def legacy_inflight_key(shard: int) -> str:
    """Where flushers before the claims hash kept their claims: a sorted set of worker ids."""
    return f"{shard_tag(shard)}:inflight"


def inflight_workers(claim_names: Iterable[bytes | str]) -> int:
    """How many workers the named claims hold."""
    names = (n.decode() if isinstance(n, bytes) else n for n in claim_names)
    return sum(int(name.rpartition(":")[2]) for name in names)


# KEYS: per beat its worker hash and its shard's dirty set. On one Redis a whole batch is one
# call (shards mixed); on a cluster the caller sends one call per shard, so each touches one slot.
# ARGV: now ms, persist interval ms, then per beat: id, token version ('' = not checked), org
# ('' = not checked), heartbeat ms, active ms ('' = not active), isActiveRecently ('1'/'0'/''),
# openSessionCount (''), skew (''), kind ('d' Den, 'k' Kubiya); a Kubiya beat adds status,
# tasks, task id ('' = null), environment, metadata JSON. (Den beats skip those five: fewer
# arguments to pack on ingest's hot path.)
# Returns per beat: code (200/401/404), heartbeat, active ('' = null), active recently, sessions.
RECORD_HEARTBEATS = """
local now = ARGV[1]
local persist = tonumber(ARGV[2])
local out = {}
local b = 3
for i = 1, #KEYS, 2 do
  local key, dirty = KEYS[i], KEYS[i + 1]
  local cur = redis.call('HMGET', key, 'o', 'v', 'hb', 'act', 'iar', 'osc', 'p', 'ks', 'kc', 'ke')
  if not cur[1] or (ARGV[b + 2] ~= '' and ARGV[b + 2] ~= cur[1]) then
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
      set[#set + 1] = 'hb'; set[#set + 1] = hb
    else
      hb = old_hb
    end
    local act = cur[4]
    if ARGV[b + 4] ~= '' and ((not act) or tonumber(ARGV[b + 4]) > tonumber(act)) then
      act = ARGV[b + 4]
      set[#set + 1] = 'act'; set[#set + 1] = act
    end
    local iar, osc = cur[5], cur[6]
    if newest then
      if ARGV[b + 5] ~= '' then
        if ARGV[b + 5] ~= iar then meaningful = true end
        iar = ARGV[b + 5]
        set[#set + 1] = 'iar'; set[#set + 1] = iar
      end
      if ARGV[b + 6] ~= '' then
        if ARGV[b + 6] ~= osc then meaningful = true end
        osc = ARGV[b + 6]
        set[#set + 1] = 'osc'; set[#set + 1] = osc
      end
      if ARGV[b + 7] ~= '' then set[#set + 1] = 'skew'; set[#set + 1] = ARGV[b + 7] end
      if ARGV[b + 8] == 'k' then
        if ARGV[b + 9] ~= cur[8] or ARGV[b + 11] ~= (cur[9] or '') or ARGV[b + 12] ~= cur[10] then
          meaningful = true
        end
        set[#set + 1] = 'ks'; set[#set + 1] = ARGV[b + 9]
        set[#set + 1] = 'kt'; set[#set + 1] = ARGV[b + 10]
        set[#set + 1] = 'ke'; set[#set + 1] = ARGV[b + 12]
        set[#set + 1] = 'km'; set[#set + 1] = ARGV[b + 13]
        if ARGV[b + 11] == '' then
          redis.call('HDEL', key, 'kc')
        else
          set[#set + 1] = 'kc'; set[#set + 1] = ARGV[b + 11]
        end
      end
    end
    if #set > 0 then redis.call('HSET', key, unpack(set)) end
    if meaningful or tonumber(hb) - (tonumber(cur[7]) or 0) >= persist then
      redis.call('ZADD', dirty, 'NX', now, ARGV[b])
    end
    out[#out + 1] = '200'; out[#out + 1] = hb; out[#out + 1] = act or ''
    out[#out + 1] = iar or ''; out[#out + 1] = osc or ''
  end
  if ARGV[b + 8] == 'k' then b = b + 14 else b = b + 9 end
end
return out
"""

# KEYS: dirty set, claims hash. ARGV: now ms, lease ms, how many, worker key prefix.
# Claims whose lease expired go back to dirty first, so a flusher that died between claim and ack
# loses nothing. A claim is one field of the claims hash (see `claims_key`), not one entry per
# worker: recording, acking and releasing it cost the same however many workers it holds.
# Returns nothing when no worker is dirty, else the claim's name and then column by column: the
# worker ids, then per LIVE_FIELDS Den field one value per worker ('' = missing), then per worker
# whose hash holds a Kubiya status its row number (from 1) and the five Kubiya fields.
# The heartbeat read here is recorded as persisted (`p`) right away: the claimed state stays in
# a claim until Postgres has it (a failed write or a dead flusher puts it back in dirty), so `p`
# only spares the dirty rule from re-marking the worker for what is in hand.
CLAIM_DIRTY = """
local now, limit, prefix = tonumber(ARGV[1]), tonumber(ARGV[3]), ARGV[4]
local taken = {}
for _, name in ipairs(redis.call('HKEYS', KEYS[2])) do
  local expiry = tonumber(string.match(name, '^%d+'))
  if expiry <= now then
    for id in string.gmatch(redis.call('HGET', KEYS[2], name), '%S+') do
      redis.call('ZADD', KEYS[1], 'NX', now, id)
    end
    redis.call('HDEL', KEYS[2], name)
  else
    taken[expiry] = true
  end
end
local ids = redis.call('ZRANGE', KEYS[1], 0, limit - 1)
if #ids == 0 then return {} end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #ids - 1)
local expiry = now + tonumber(ARGV[2])
while taken[expiry] do expiry = expiry + 1 end
local name = tostring(expiry) .. ':' .. #ids
redis.call('HSET', KEYS[2], name, table.concat(ids, ' '))
local hb, act, iar, osc, skew, kubiya = {}, {}, {}, {}, {}, {}
for i = 1, #ids do
  local key = prefix .. ids[i]
  local h = redis.call('HMGET', key, 'hb', 'act', 'iar', 'osc', 'skew', 'ks')
  if h[1] then redis.call('HSET', key, 'p', h[1]) end
  hb[i], act[i], iar[i] = h[1] or '', h[2] or '', h[3] or ''
  osc[i], skew[i] = h[4] or '', h[5] or ''
  if h[6] then
    local k, n = redis.call('HMGET', key, 'kt', 'kc', 'ke', 'km'), #kubiya
    kubiya[n + 1], kubiya[n + 2], kubiya[n + 3] = i, h[6], k[1] or ''
    kubiya[n + 4], kubiya[n + 5], kubiya[n + 6] = k[2] or '', k[3] or '', k[4] or ''
  end
end
return {name, ids, hb, act, iar, osc, skew, kubiya}
"""

# KEYS: dirty set, claims hash. ARGV: the claim's name, now ms.
# Hands a claim's workers back to dirty at once when the flusher could not persist them (no need
# to wait for the lease); a claim that expired and went back to dirty already is left alone.
RELEASE_CLAIM = """
local ids = redis.call('HGET', KEYS[2], ARGV[1])
if not ids then return 0 end
for id in string.gmatch(ids, '%S+') do
  redis.call('ZADD', KEYS[1], 'NX', ARGV[2], id)
end
return redis.call('HDEL', KEYS[2], ARGV[1])
"""

# KEYS: dirty set, the shard's legacy in-flight sorted set. ARGV: now ms.
# Upgrading: hands back to dirty what flushers of the previous layout claimed and never acked,
# so nothing is stranded there; a worker whose claim was acked after all is written once more.
RETURN_LEGACY_CLAIMS = """
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], 'NX', ARGV[1], id) end
redis.call('DEL', KEYS[2])
return #ids
"""

# KEYS: worker hashes of one shard. ARGV: per worker its org, token version, and the heartbeat and
# active ms Postgres holds ('' = none). Token versions only rise, so a sync that read Postgres
# before a token rotation can't undo it; heartbeats are restored only into a hash that lost them.
SYNC_REGISTRY = """
for i = 1, #KEYS do
  local b, key = (i - 1) * 4, KEYS[i]
  local cur = redis.call('HMGET', key, 'o', 'v', 'hb')
  if cur[1] ~= ARGV[b + 1] then redis.call('HSET', key, 'o', ARGV[b + 1]) end
  if (not cur[2]) or tonumber(cur[2]) < tonumber(ARGV[b + 2]) then
    redis.call('HSET', key, 'v', ARGV[b + 2])
  end
  if (not cur[3]) and ARGV[b + 3] ~= '' then
    redis.call('HSET', key, 'hb', ARGV[b + 3], 'p', ARGV[b + 3])
    if ARGV[b + 4] ~= '' then redis.call('HSETNX', key, 'act', ARGV[b + 4]) end
  end
end
return 0
"""

# Written by the flusher's reconcile; its absence means Redis lost its data (restart without
# persistence, FLUSHALL) and the registry must be rebuilt from Postgres now.
REGISTRY_SYNCED = "hb:{registry}:synced"


async def register_worker(
    redis: Redis, shards: int, worker_id: str, org_id: str, token_version: int
) -> None:
    """Create or update a worker's registry entry; beats for it are accepted from then on."""
    key = worker_key(worker_id, shards)
    await redis.execute_command("HSET", key, F_ORG, org_id, F_TOKEN_VERSION, str(token_version))


async def unregister_worker(redis: Redis, shards: int, worker_id: str) -> None:
    """Forget a deleted worker: ingest answers 404 for it from now on."""
    shard = shard_of(worker_id, shards)
    pipe = redis.pipeline(transaction=False)
    pipe.delete(worker_prefix(shard) + worker_id)
    pipe.zrem(dirty_key(shard), worker_id)
    await pipe.execute()


async def register_api_key(redis: Redis, key_hash: str, org_id: str) -> None:
    await redis.execute_command("HSET", API_KEYS, key_hash, org_id)


async def revoke_api_key(redis: Redis, key_hash: str) -> None:
    await redis.execute_command("HDEL", API_KEYS, key_hash)


async def api_key_org(redis: Redis, key_hash: str) -> str | None:
    org = await redis.execute_command("HGET", API_KEYS, key_hash)
    return org.decode() if isinstance(org, bytes) else org


def decode_fields(values: Sequence[bytes | str | None]) -> dict[str, str]:
    """LIVE_FIELDS values as text, missing ones left out."""
    out: dict[str, str] = {}
    for name, value in zip(LIVE_FIELDS, values, strict=True):
        if value is None or value == b"" or value == "":
            continue
        out[name] = value.decode() if isinstance(value, bytes) else value
    return out


def all_shards(shards: int) -> Iterable[int]:
    return range(shards)

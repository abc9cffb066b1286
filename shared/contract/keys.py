"""The Redis layout every service shares: key names, shard hash tags and worker hash fields.

One hash per worker holds the registry entry (org, token version) and the hot heartbeat fields.
Every key of a shard carries the hash tag `{hb:N}`, so each script touches one cluster slot.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import NamedTuple

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
F_SYSTEM_INFO = "si"  # JSON text: the last `system_info` of a full beat (per-worker route)
F_DISCONNECTED = "dc"  # when the worker said it disconnected, ms; cleared by its next beat
F_DISCONNECT_REASON = "dr"
F_EXIT_CODE = "dx"
F_ERROR_MESSAGE = "de"
F_LOG_BYTES = "lb"  # the bytes of the lines its recent-logs list holds (see `logs_key`)
F_LOGS_ID = "li"  # the id of the last lines appended to that list: a beat sent again adds none
F_PERSISTED = "p"  # the heartbeat ms that Postgres holds

# The names the Lua scripts use for the fields above (`${HEARTBEAT}` and so on).
SCRIPT_FIELDS = {
    "ORG": F_ORG, "TOKEN_VERSION": F_TOKEN_VERSION, "HEARTBEAT": F_HEARTBEAT,
    "ACTIVE": F_ACTIVE, "ACTIVE_RECENTLY": F_ACTIVE_RECENTLY, "OPEN_SESSIONS": F_OPEN_SESSIONS,
    "SKEW": F_SKEW, "STATUS": F_STATUS, "TASKS": F_TASKS, "TASK_ID": F_TASK_ID,
    "ENVIRONMENT": F_ENVIRONMENT, "METADATA": F_METADATA, "PERSISTED": F_PERSISTED,
    "SYSTEM_INFO": F_SYSTEM_INFO, "DISCONNECTED": F_DISCONNECTED,
    "DISCONNECT_REASON": F_DISCONNECT_REASON, "EXIT_CODE": F_EXIT_CODE,
    "ERROR_MESSAGE": F_ERROR_MESSAGE, "LOG_BYTES": F_LOG_BYTES, "LOGS_ID": F_LOGS_ID,
}  # fmt: skip

# The liveness the sweep last announced for the worker ("online", "stale", "offline"; absent:
# none yet). Written by sweep_liveness.lua, read by record_heartbeats.lua.
F_ANNOUNCED = "lv"
SCRIPT_FIELDS["ANNOUNCED"] = F_ANNOUNCED

# What the flusher persists and the read API merges, in this order.
LIVE_FIELDS = (
    F_HEARTBEAT, F_ACTIVE, F_ACTIVE_RECENTLY, F_OPEN_SESSIONS, F_SKEW,
    F_STATUS, F_TASKS, F_TASK_ID, F_ENVIRONMENT, F_METADATA,
    F_SYSTEM_INFO, F_DISCONNECTED, F_DISCONNECT_REASON, F_EXIT_CODE, F_ERROR_MESSAGE,
)  # fmt: skip

API_KEYS = "hb:{apikeys}"
# Rows the flushers wrote to Postgres, all processes together (served by the API's /metrics).
ROWS_PERSISTED = "hb:{stats}:rows_persisted"
# Written by the flusher's reconcile; its absence means Redis lost its data (restart without
# persistence, FLUSHALL) and the registry must be rebuilt from Postgres now.
REGISTRY_SYNCED = "hb:{registry}:synced"


def shard_of(worker_id: str, shards: int) -> int:
    return zlib.crc32(worker_id.encode()) % shards


def shard_tag(shard: int) -> str:
    return f"{{hb:{shard}}}"


def worker_prefix(shard: int) -> str:
    return f"{shard_tag(shard)}:w:"


def worker_key(worker_id: str, shards: int) -> str:
    return worker_prefix(shard_of(worker_id, shards)) + worker_id


def logs_key(worker_id: str, shards: int) -> str:
    """The worker's recent log lines (a list, oldest first), kept in Redis only. It shares the
    worker hash's hash tag. (The record script derives it from `dirty_key` and the worker id:
    keep the two in step.)"""
    return f"{shard_tag(shard_of(worker_id, shards))}:logs:{worker_id}"


def dirty_key(shard: int) -> str:
    """The shard's dirty workers: a sorted set scored by when each became dirty (ms)."""
    return f"{shard_tag(shard)}:dirty"


def synced_key(shard: int) -> str:
    """Set once the flusher's reconcile wrote the shard's registry: without it, a missing worker
    may only be missing because Redis lost its data, and ingest answers 503 instead of 404.
    (The record script derives it from `dirty_key`: keep the two in step.)"""
    return f"{shard_tag(shard)}:synced"


def seen_key(shard: int, org_id: str) -> str:
    """The fleet index: an org's workers on this shard that ever beat, scored by their last
    heartbeat (ms). Counting score ranges gives the org's liveness counts without a scan.
    (The record script derives it from `dirty_key`: keep the two in step.)"""
    return f"{shard_tag(shard)}:seen:{org_id}"


def revived_key(shard: int) -> str:
    """Workers whose beat may have brought them online (their announced liveness was not
    online): the liveness sweep announces them. (The record script derives it from
    `dirty_key`.)"""
    return f"{shard_tag(shard)}:revived"


def swept_key(shard: int) -> str:
    """The server time (ms) up to which the shard's liveness sweep has looked."""
    return f"{shard_tag(shard)}:swept"


def pending_events_key(shard: int) -> str:
    """Liveness events the sweep found and no flusher has written to Postgres yet: a sorted
    set of `events.encode_event` members (score: when the transition happened, ms)."""
    return f"{shard_tag(shard)}:events"


def claims_key(shard: int) -> str:
    """The shard's claims in flight: a hash from claim name to the claimed ids (space-separated).

    A claim's name is "<lease expiry ms>:<workers>:<dirty since ms>", the last being the oldest
    dirty score among its workers (claims of earlier versions lack it); the expiry is unique
    among the shard's claims. A flusher acks a claim by deleting its field (HDEL)."""
    return f"{shard_tag(shard)}:claims"


def legacy_inflight_key(shard: int) -> str:
    """Where flushers before the claims hash kept their claims: a sorted set of worker ids."""
    return f"{shard_tag(shard)}:inflight"


class ClaimName(NamedTuple):
    workers: int
    dirty_since_ms: int | None  # None for a claim named by an earlier version


def parse_claim_name(name: bytes | str) -> ClaimName:
    parts = (name.decode() if isinstance(name, bytes) else name).split(":")
    return ClaimName(int(parts[1]), int(parts[2]) if len(parts) > 2 else None)


def inflight_workers(claim_names: Iterable[bytes | str]) -> int:
    """How many workers the named claims hold."""
    return sum(parse_claim_name(name).workers for name in claim_names)

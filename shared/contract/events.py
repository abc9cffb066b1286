"""Fleet event types, and the liveness sweep's pending events as `sweep_liveness.lua` writes
them (`keys.pending_events_key`)."""

from __future__ import annotations

from typing import Annotated, NamedTuple

import msgspec

from shared.contract import keys
from shared.contract.lua_scripts import load_script
from shared.contract.wire import DateTime, WorkerId
from shared.redis.lua import ScriptCall

SWEEP_LIVENESS = load_script("sweep_liveness")

WORKER_ONLINE = "worker.online"
WORKER_STALE = "worker.stale"
WORKER_OFFLINE = "worker.offline"
WORKER_CREATED = "worker.created"  # written by a trigger (migration 0006)
WORKER_DELETED = "worker.deleted"  # likewise
TYPES = (WORKER_ONLINE, WORKER_STALE, WORKER_OFFLINE, WORKER_CREATED, WORKER_DELETED)


EventId = Annotated[str, msgspec.Meta(pattern="^[0-9]{1,18}$", description="Opaque, growing.")]


class Event(msgspec.Struct):
    """An event as the API lists, streams and posts it to webhooks."""

    id: EventId
    type: str
    workerId: WorkerId
    at: DateTime
    data: Annotated[msgspec.Raw, msgspec.Meta(extra_json_schema={"type": "object"})]


class LivenessEvent(NamedTuple):
    type: str
    worker_id: str
    org_id: str
    at_ms: int  # when it happened: the beat, the beat plus the threshold, or the disconnect
    heartbeat_ms: int | None  # None: a worker that disconnected before any beat
    previous: str  # the liveness announced before ("never" for a first one)


def parse_pending(member: bytes | str) -> LivenessEvent:
    text = member.decode() if isinstance(member, bytes) else member
    kind, worker_id, org_id, at, hb, previous = text.split("|")
    return LivenessEvent(kind, worker_id, org_id, int(at), int(hb) if hb else None, previous)


def sweep_call(
    shard: int, org_ids: list[str], now_ms: int, stale_ms: int, offline_ms: int
) -> ScriptCall:
    """The SWEEP_LIVENESS call of one shard (all its keys share the shard's hash tag)."""
    call_keys = [keys.revived_key(shard), keys.swept_key(shard), keys.pending_events_key(shard)]
    call_keys += [keys.seen_key(shard, org) for org in org_ids]
    return call_keys, [str(now_ms), str(stale_ms), str(offline_ms), *org_ids]

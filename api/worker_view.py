"""Merging a worker's fresh Redis fields with its durable Postgres row, and its JSON shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import msgspec
from redis.asyncio import Redis

from shared.contract import keys
from shared.contract.liveness import Liveness, liveness_of
from shared.contract.times import format_ms
from shared.contract.wire import DateTime, OrgId, UserId, WorkerId
from shared.redis import resp
from shared.redis.connect import refusal_or_self
from shared.redis.pipe import RedisPipe
from shared.settings import Settings

# A worker's LIVE_FIELDS as Redis returned them (None = missing).
LiveFields = Sequence[bytes | None]
NO_LIVE_FIELDS: LiveFields = (None,) * len(keys.LIVE_FIELDS)

# HMGET's arguments after the key, packed once: a page's read is one write of N such commands.
_FIELDS_RESP = resp.bulk_strings(keys.LIVE_FIELDS).decode()
_HMGET_HEAD = f"*{2 + len(keys.LIVE_FIELDS)}\r\n$5\r\nHMGET\r\n"


async def read_live_fields(
    redis: Redis | RedisPipe, shards: int, worker_ids: Sequence[str]
) -> list[LiveFields]:
    """The hot fields of each worker, in one round trip (raises REDIS_DOWN)."""
    if not worker_ids:
        return []
    worker_keys = [keys.worker_key(worker_id, shards) for worker_id in worker_ids]
    if isinstance(redis, RedisPipe):
        # redis-py's pipeline packs each command and parses each reply through several layers:
        # for 50 workers that was over a third of the page's CPU. Keys are ASCII.
        packed = "".join([f"{_HMGET_HEAD}${len(k)}\r\n{k}\r\n{_FIELDS_RESP}" for k in worker_keys])
        replies = await redis.call_many(packed.encode(), len(worker_keys))
        for reply in replies:
            if isinstance(reply, Exception):
                raise refusal_or_self(reply)
        return replies
    # On a cluster, redis-py groups the HMGETs by node.
    pipe = redis.pipeline(transaction=False)
    for key in worker_keys:
        pipe.execute_command("HMGET", key, *keys.LIVE_FIELDS)
    return await pipe.execute()


async def read_worker_live(
    redis: Redis | RedisPipe, shards: int, worker_id: str
) -> tuple[LiveFields, list[bytes]]:
    """One worker's hot fields and recent log lines (oldest first), in one round trip (raises
    REDIS_DOWN). The two keys share a hash tag, so on a cluster they go to one node."""
    key, logs = keys.worker_key(worker_id, shards), keys.logs_key(worker_id, shards)
    if isinstance(redis, RedisPipe):
        hmget = f"{_HMGET_HEAD}${len(key)}\r\n{key}\r\n{_FIELDS_RESP}".encode()
        packed = hmget + resp.command("LRANGE", logs, "0", "-1")
        replies = await redis.call_many(packed, 2)
        for reply in replies:
            if isinstance(reply, Exception):
                raise refusal_or_self(reply)
        return replies[0], replies[1]
    pipe = redis.pipeline(transaction=False)
    pipe.execute_command("HMGET", key, *keys.LIVE_FIELDS)
    pipe.execute_command("LRANGE", logs, "0", "-1")
    fields, lines = await pipe.execute()
    return fields, lines


class WorkerInstance(msgspec.Struct, gc=False):
    provider: str
    region: str | None
    url: str | None
    status: str
    createdAt: DateTime
    updatedAt: DateTime


JsonObject = Annotated[msgspec.Raw, msgspec.Meta(extra_json_schema={"type": "object"})]


class Worker(msgspec.Struct, gc=False):
    """Den's worker, with the merged hot fields and the liveness derived from them."""

    id: WorkerId
    orgId: OrgId
    createdByUserId: UserId | None
    isMine: bool
    name: str
    description: str | None
    destination: str
    status: str
    imageVersion: str | None
    workspacePath: str | None
    sandboxBackend: str | None
    lastHeartbeatAt: DateTime | None
    lastActiveAt: DateTime | None
    createdAt: DateTime
    updatedAt: DateTime
    liveness: Liveness
    isActiveRecently: bool
    openSessionCount: int | None
    clockSkewMs: int | None
    reportedStatus: str | None
    tasksProcessed: int | None
    currentTaskId: str | None
    environmentName: str | None
    workerMetadata: JsonObject | None  # JSON text, passed through without re-parsing
    systemInfo: Annotated[
        JsonObject | None,
        msgspec.Meta(description="The last `system_info` a full Kubiya beat reported."),
    ]
    disconnectedAt: Annotated[
        DateTime | None,
        msgspec.Meta(
            description="When the worker said it disconnected; it is offline from then until "
            "its next beat, which clears the disconnect fields."
        ),
    ]
    disconnectReason: str | None
    exitCode: int | None
    errorMessage: str | None


class WorkerListItem(Worker, gc=False):
    """A worker of a list page, with its latest instance."""

    instance: WorkerInstance | None


class WorkerDetail(Worker, gc=False):
    """One worker, with its recent log lines."""

    recentLogs: Annotated[
        list[str],
        msgspec.Meta(
            description="The last log lines full Kubiya beats sent, oldest first (at most 100, "
            "and at most HB_MAX_LOG_BYTES together). Kept in Redis only: empty while Redis is "
            "unreachable or after it lost its data."
        ),
    ]


# The merged fields come as one tuple, which a type checker cannot count against the fields.
_list_item: Any = WorkerListItem
_detail: Any = WorkerDetail


class WorkerListResponse(msgspec.Struct, gc=False):
    workers: list[WorkerListItem]
    nextCursor: Annotated[
        str | None, msgspec.Meta(description="Pass back as `cursor` for the next page.")
    ]


class WorkerResponse(msgspec.Struct, gc=False):
    worker: WorkerDetail
    instance: WorkerInstance | None


def _raw(text: str | bytes | None) -> msgspec.Raw | None:
    return msgspec.Raw(text) if text else None


def worker_view(
    row: Mapping[str, Any],
    live: LiveFields,
    caller_user_id: str | None,
    now_ms: int,
    settings: Settings,
) -> Worker:
    """The worker's durable row with its fresh Redis fields merged in."""
    return Worker(*_merged_fields(row, live, caller_user_id, now_ms, settings))


def detail_view(
    row: Mapping[str, Any],
    live: LiveFields,
    logs: Sequence[bytes],
    caller_user_id: str | None,
    now_ms: int,
    settings: Settings,
) -> WorkerDetail:
    """`worker_view` with the worker's recent log lines."""
    fields = _merged_fields(row, live, caller_user_id, now_ms, settings)
    lines = [line.decode(errors="replace") for line in logs]
    detail: WorkerDetail = _detail(*fields, lines)
    return detail


def list_item_view(
    row: Mapping[str, Any],
    live: LiveFields,
    caller_user_id: str | None,
    now_ms: int,
    settings: Settings,
) -> WorkerListItem:
    """`worker_view` with the row's latest instance."""
    fields = _merged_fields(row, live, caller_user_id, now_ms, settings)
    item: WorkerListItem = _list_item(*fields, instance_view(row))
    return item


def _merged_fields(
    row: Mapping[str, Any],
    live: LiveFields,
    caller_user_id: str | None,
    now_ms: int,
    settings: Settings,
) -> tuple[Any, ...]:
    """The fields of the worker's durable row with its fresh Redis fields merged in, per field
    the newer.

    The two timestamps only move forward, so they are the max of both; the other hot fields
    come from whichever side holds the newer heartbeat, Redis on a tie (it has every beat
    Postgres has, and maybe more). An empty value in Redis counts as missing (hence the
    truthiness tests)."""
    hb, act, iar, osc, skew, ks, kt, kc, ke, km, si, dc, dr, dx, de = live
    heartbeat: int | None = row["last_heartbeat_ms"]
    redis_newer = False
    if hb and (heartbeat is None or int(hb) >= heartbeat):
        redis_newer = True
        heartbeat = int(hb)
    active: int | None = row["last_active_ms"]
    if act and (active is None or int(act) > active):
        active = int(act)

    if redis_newer:
        is_active = iar == b"1" if iar else row["is_active_recently"]
        sessions = int(osc) if osc else row["open_session_count"]
        skew_ms = int(skew) if skew else row["clock_skew_ms"]
    else:
        is_active = row["is_active_recently"]
        sessions = row["open_session_count"]
        skew_ms = row["clock_skew_ms"]
    # Kubiya's fields travel together: with a Kubiya beat in Redis, a missing task id means null.
    # Only Kubiya's older route names an environment: without one in Redis the stored one stays.
    if redis_newer and ks:
        kubiya: tuple[Any, ...] = (
            ks.decode(), int(kt) if kt else None, kc.decode() if kc else None,
            ke.decode() if ke else row["environment_name"], _raw(km),
        )  # fmt: skip
    else:
        kubiya = (
            row["reported_status"], row["tasks_processed"], row["current_task_id"],
            row["environment_name"], _raw(row["worker_metadata"]),
        )  # fmt: skip
    # A lightweight beat keeps the last system info: Redis' if it holds one (only a full beat
    # writes it, and Postgres has nothing newer), else the stored one.
    system_info = _raw(si) if si else _raw(row["system_info"])
    # The disconnect goes with the newer side (a beat after it cleared it in Redis); a worker
    # that disconnected without ever beating has it in Redis only.
    if redis_newer or (dc and not hb):
        disconnected = int(dc) if dc else None
        disconnect: tuple[Any, ...] = (
            None if disconnected is None else format_ms(disconnected),
            dr.decode() if dc and dr else None, int(dx) if dc and dx else None,
            de.decode() if dc and de else None,
        )  # fmt: skip
    else:
        disconnected = row["disconnected_ms"]
        disconnect = (
            None if disconnected is None else format_ms(disconnected),
            row["disconnect_reason"], row["exit_code"], row["error_message"],
        )  # fmt: skip

    created_by = row["created_by_user_id"]
    return (
        row["id"],
        row["org_id"],
        created_by,
        caller_user_id is not None and created_by == caller_user_id,
        row["name"],
        row["description"],
        row["destination"],
        row["status"],
        row["image_version"],
        row["workspace_path"],
        row["sandbox_backend"],
        None if heartbeat is None else format_ms(heartbeat),
        None if active is None else format_ms(active),
        row["created_at_text"],
        row["updated_at_text"],
        liveness_of(heartbeat, now_ms, settings.stale_after, settings.offline_after, disconnected),
        bool(is_active),
        sessions,
        skew_ms,
        *kubiya,
        system_info,
        *disconnect,
    )


def instance_view(row: Mapping[str, Any]) -> WorkerInstance | None:
    if row["instance_provider"] is None:
        return None
    return WorkerInstance(
        row["instance_provider"],
        row["instance_region"],
        row["instance_url"],
        row["instance_status"],
        row["instance_created_at_text"],
        row["instance_updated_at_text"],
    )

"""Merging a worker's fresh Redis fields with its durable Postgres row, and its JSON shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
from redis.asyncio import Redis, RedisCluster

from ingest import resp
from shared import hotstore
from shared.liveness import liveness_of
from shared.redis_conn import refusal_or_self
from shared.settings import Settings
from shared.timefmt import format_dt, format_ms, to_ms

H = hotstore


# HMGET's arguments after the key, packed once: a page's read is one write of N such commands.
_FIELDS_RESP = resp.bulk_strings(H.LIVE_FIELDS).decode()
_HMGET_HEAD = f"*{2 + len(H.LIVE_FIELDS)}\r\n$5\r\nHMGET\r\n"


async def read_live_fields(
    redis: Redis, shards: int, worker_ids: Sequence[str]
) -> list[dict[str, str]]:
    """The hot fields of each worker, in one round trip (raises REDIS_DOWN)."""
    if not worker_ids:
        return []
    keys = [hotstore.worker_key(worker_id, shards) for worker_id in worker_ids]
    if isinstance(redis, RedisCluster):
        # The cluster client groups the HMGETs by node itself.
        pipe = redis.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("HMGET", key, *H.LIVE_FIELDS)
        replies = await pipe.execute()
    else:
        # redis-py's pipeline packs each command and parses each reply through several layers:
        # for 50 workers that was over a third of the page's CPU. Keys are ASCII.
        commands = [f"{_HMGET_HEAD}${len(k)}\r\n{k}\r\n{_FIELDS_RESP}".encode() for k in keys]
        replies = await resp.send_all(redis, commands)
        for reply in replies:
            if isinstance(reply, Exception):
                raise refusal_or_self(reply)
    return [hotstore.decode_fields(values) for values in replies]


@dataclass(frozen=True, slots=True)
class LiveState:
    last_heartbeat_ms: int | None
    last_active_ms: int | None
    is_active_recently: bool
    open_session_count: int | None
    clock_skew_ms: int | None
    reported_status: str | None
    tasks_processed: int | None
    current_task_id: str | None
    environment_name: str | None
    worker_metadata: msgspec.Raw | None  # JSON text, passed through without re-parsing


def _max(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _int(value: str | None) -> int | None:
    return None if value is None else int(value)


def _raw(text: str | None) -> msgspec.Raw | None:
    return None if text is None else msgspec.Raw(text.encode())


def merge_live_state(row: asyncpg.Record, live: Mapping[str, str]) -> LiveState:
    """Per field, the newer of Redis (fresh) and Postgres (durable). The two timestamps only move
    forward, so they are the max of both; the other fields come from whichever side holds the
    newer heartbeat, Redis on a tie (it has every beat Postgres has, and maybe more)."""
    pg_heartbeat = to_ms(row["last_heartbeat_at"]) if row["last_heartbeat_at"] else None
    pg_active = to_ms(row["last_active_at"]) if row["last_active_at"] else None
    redis_heartbeat = _int(live.get(H.F_HEARTBEAT))
    redis_newer = redis_heartbeat is not None and (
        pg_heartbeat is None or redis_heartbeat >= pg_heartbeat
    )
    fresh = live if redis_newer else {}

    iar = fresh.get(H.F_ACTIVE_RECENTLY)
    sessions = fresh.get(H.F_OPEN_SESSIONS)
    skew = fresh.get(H.F_SKEW)
    # Kubiya's fields travel together: with a Kubiya beat in Redis, a missing task id means null.
    if H.F_STATUS in fresh:
        kubiya: tuple[Any, ...] = (
            fresh[H.F_STATUS], _int(fresh.get(H.F_TASKS)), fresh.get(H.F_TASK_ID),
            fresh.get(H.F_ENVIRONMENT), _raw(fresh.get(H.F_METADATA)),
        )  # fmt: skip
    else:
        kubiya = (
            row["reported_status"], row["tasks_processed"], row["current_task_id"],
            row["environment_name"], _raw(row["worker_metadata"]),
        )  # fmt: skip
    return LiveState(
        _max(pg_heartbeat, redis_heartbeat),
        _max(pg_active, _int(live.get(H.F_ACTIVE))),
        iar == "1" if iar is not None else bool(row["is_active_recently"]),
        int(sessions) if sessions is not None else row["open_session_count"],
        int(skew) if skew is not None else row["clock_skew_ms"],
        *kubiya,
    )


def _ms(value: int | None) -> str | None:
    return None if value is None else format_ms(value)


def worker_json(
    row: asyncpg.Record,
    state: LiveState,
    caller_user_id: str | None,
    now_ms: int,
    settings: Settings,
) -> dict[str, Any]:
    """Den's worker object, then the extra fields (the contract allows additional properties)."""
    created_by = row["created_by_user_id"]
    return {
        "id": row["id"],
        "orgId": row["org_id"],
        "createdByUserId": created_by,
        "isMine": caller_user_id is not None and created_by == caller_user_id,
        "name": row["name"],
        "description": row["description"],
        "destination": row["destination"],
        "status": row["status"],
        "imageVersion": row["image_version"],
        "workspacePath": row["workspace_path"],
        "sandboxBackend": row["sandbox_backend"],
        "lastHeartbeatAt": _ms(state.last_heartbeat_ms),
        "lastActiveAt": _ms(state.last_active_ms),
        "createdAt": format_dt(row["created_at"]),
        "updatedAt": format_dt(row["updated_at"]),
        "liveness": liveness_of(
            state.last_heartbeat_ms, now_ms, settings.stale_after, settings.offline_after
        ).value,
        "isActiveRecently": state.is_active_recently,
        "openSessionCount": state.open_session_count,
        "clockSkewMs": state.clock_skew_ms,
        "reportedStatus": state.reported_status,
        "tasksProcessed": state.tasks_processed,
        "currentTaskId": state.current_task_id,
        "environmentName": state.environment_name,
        "workerMetadata": state.worker_metadata,
    }


def instance_json(row: asyncpg.Record) -> dict[str, Any] | None:
    if row["instance_provider"] is None:
        return None
    return {
        "provider": row["instance_provider"],
        "region": row["instance_region"],
        "url": row["instance_url"],
        "status": row["instance_status"],
        "createdAt": format_dt(row["instance_created_at"]),
        "updatedAt": format_dt(row["instance_updated_at"]),
    }

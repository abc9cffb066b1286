from datetime import UTC, datetime

import msgspec
import pytest

from api.worker_view import NO_LIVE_FIELDS, read_live_fields, read_worker_live, worker_view
from shared.contract import keys
from shared.contract.times import format_ms, to_ms
from shared.redis.pipe import RedisPipe
from shared.settings import Settings
from tests.conftest import register

T0 = datetime(2025, 1, 1, tzinfo=UTC)
T0_MS = to_ms(T0)
SETTINGS = Settings()


def durable(**overrides):
    """A worker row as the page's statement returns it."""
    row = {
        "id": "wrk_01jqz3k5m2a8b9c0d1e2f3g4h5", "org_id": "org_01jqz3k5m2a8b9c0d1e2f3g4h5",
        "created_by_user_id": None, "name": "w", "description": None, "destination": "local",
        "status": "healthy", "image_version": None, "workspace_path": None,
        "sandbox_backend": None, "created_at_text": "2024-12-31T00:00:00.000Z",
        "updated_at_text": "2024-12-31T00:00:00.000Z",
        "last_heartbeat_ms": T0_MS, "last_active_ms": T0_MS, "is_active_recently": True,
        "open_session_count": 4, "clock_skew_ms": 0, "reported_status": "idle",
        "tasks_processed": 3, "current_task_id": "old-task", "environment_name": "prod",
        "worker_metadata": '{"v":1}', "system_info": None, "disconnected_ms": None,
        "disconnect_reason": None, "exit_code": None, "error_message": None,
    }  # fmt: skip
    return row | overrides


def live(**fields):
    """LIVE_FIELDS as Redis returns them, from field name to text."""
    return [
        None if fields.get(name) is None else fields[name].encode() for name in keys.LIVE_FIELDS
    ]


def merged(row, live_fields, now_ms=T0_MS):
    return worker_view(row, live_fields, None, now_ms, SETTINGS)


def test_redis_newer_heartbeat_wins_every_field_it_holds():
    worker = merged(durable(), live(hb=str(T0_MS + 30_000), iar="0", osc="1", skew="-20"))
    assert worker.lastHeartbeatAt == format_ms(T0_MS + 30_000)
    assert worker.lastActiveAt == format_ms(T0_MS)  # Redis has no newer activity
    assert (worker.isActiveRecently, worker.openSessionCount, worker.clockSkewMs) == (
        False, 1, -20,
    )  # fmt: skip
    assert worker.reportedStatus == "idle"  # no Kubiya beat in Redis: durable value stands


def test_postgres_newer_heartbeat_wins_the_non_monotonic_fields():
    # e.g. Redis lost its data and holds only beats older than what was persisted.
    worker = merged(
        durable(), live(hb=str(T0_MS - 60_000), act=str(T0_MS + 5), iar="0", osc="9", ks="busy")
    )
    assert worker.lastHeartbeatAt == format_ms(T0_MS)
    assert worker.lastActiveAt == format_ms(T0_MS + 5)  # timestamps are the max of both sides
    assert (worker.isActiveRecently, worker.openSessionCount) == (True, 4)
    assert worker.reportedStatus == "idle"


def test_on_a_tie_redis_wins():
    worker = merged(durable(), live(hb=str(T0_MS), osc="7"))
    assert worker.openSessionCount == 7


def test_a_kubiya_beat_in_redis_clears_the_task_id_it_no_longer_reports():
    worker = merged(durable(), live(hb=str(T0_MS + 1), ks="active", kt="4", ke="prod", km="{}"))
    assert worker.reportedStatus == "active"
    assert worker.tasksProcessed == 4
    assert worker.currentTaskId is None
    assert worker.environmentName == "prod"
    assert worker.workerMetadata == msgspec.Raw(b"{}")


def test_empty_values_in_redis_count_as_missing():
    worker = merged(durable(), live(hb=str(T0_MS + 1), osc="", skew=""))
    assert (worker.openSessionCount, worker.clockSkewMs) == (4, 0)


def test_without_redis_fields_the_durable_row_is_served():
    worker = merged(durable(), NO_LIVE_FIELDS)
    assert worker.lastHeartbeatAt == format_ms(T0_MS)
    assert worker.currentTaskId == "old-task"
    assert worker.workerMetadata == msgspec.Raw(b'{"v":1}')


def test_a_worker_that_never_beat_has_no_times_and_liveness_never():
    row = durable(last_heartbeat_ms=None, last_active_ms=None, is_active_recently=False)
    worker = merged(row, NO_LIVE_FIELDS)
    assert (worker.lastHeartbeatAt, worker.lastActiveAt, worker.liveness) == (None, None, "never")


def test_liveness_follows_the_merged_heartbeat():
    stale_at = T0_MS + int(SETTINGS.stale_after * 1000)
    assert merged(durable(), NO_LIVE_FIELDS, now_ms=stale_at - 1).liveness == "online"
    assert merged(durable(), NO_LIVE_FIELDS, now_ms=stale_at).liveness == "stale"
    fresh = live(hb=str(stale_at))
    assert merged(durable(), fresh, now_ms=stale_at).liveness == "online"


@pytest.mark.parametrize("client", ["pipe", "redis-py"])
async def test_one_read_returns_each_workers_fields_in_order(client, redis, settings):
    den, kubiya, bare = [await register(redis, settings) for _ in range(3)]
    await redis.hset(keys.worker_key(den.id, settings.shards), mapping={"hb": "5", "osc": "2"})
    await redis.hset(
        keys.worker_key(kubiya.id, settings.shards),
        mapping={"hb": "6", "ks": "busy", "km": '{"a":1}'},
    )
    missing = "wrk_01jqz3k5m2a8b9c0d1e2f3g4h5"

    reader = RedisPipe(settings.redis_url, settings.redis_timeout) if client == "pipe" else redis
    ids = [den.id, kubiya.id, bare.id, missing]
    replies = [list(r) for r in await read_live_fields(reader, settings.shards, ids)]
    if isinstance(reader, RedisPipe):
        reader.close()

    assert replies == [
        live(hb="5", osc="2"), live(hb="6", ks="busy", km='{"a":1}'), list(NO_LIVE_FIELDS),
        list(NO_LIVE_FIELDS),
    ]  # fmt: skip


def test_system_info_is_redis_when_it_holds_one_else_the_stored_one():
    row = durable(system_info='{"cpu_count":4}')
    assert merged(row, live(hb=str(T0_MS + 1), si='{"cpu_count":8}')).systemInfo == msgspec.Raw(
        b'{"cpu_count":8}'
    )
    # A lightweight beat in Redis (no system info there): the stored one stays.
    light = live(hb=str(T0_MS + 1), ks="idle", kt="1", km="{}")
    assert merged(row, light).systemInfo == msgspec.Raw(b'{"cpu_count":4}')
    assert merged(durable(), light).systemInfo is None


def test_the_environment_stays_when_redis_names_none():
    worker = merged(durable(), live(hb=str(T0_MS + 1), ks="idle", kt="1", km="{}"))
    assert (worker.reportedStatus, worker.environmentName) == ("idle", "prod")


def test_a_disconnect_in_redis_makes_the_worker_offline_at_once():
    fresh = live(hb=str(T0_MS + 1), dc=str(T0_MS + 1), dr="shutdown", dx="0")
    worker = merged(durable(), fresh, now_ms=T0_MS + 2)
    assert worker.liveness == "offline"
    assert worker.disconnectedAt == format_ms(T0_MS + 1)
    assert (worker.disconnectReason, worker.exitCode, worker.errorMessage) == ("shutdown", 0, None)


def test_a_newer_beat_in_redis_hides_a_stored_disconnect():
    row = durable(disconnected_ms=T0_MS, disconnect_reason="crash", exit_code=137,
                  error_message="oom")  # fmt: skip
    assert merged(row, NO_LIVE_FIELDS).liveness == "offline"
    worker = merged(row, live(hb=str(T0_MS + 5)), now_ms=T0_MS + 6)
    assert worker.liveness == "online"
    assert (worker.disconnectedAt, worker.disconnectReason, worker.exitCode) == (None, None, None)
    # Postgres newer than Redis (Redis lost data and holds an older beat): Postgres' disconnect.
    older = merged(row, live(hb=str(T0_MS - 5)), now_ms=T0_MS + 6)
    assert (older.liveness, older.disconnectReason, older.errorMessage) == (
        "offline", "crash", "oom",
    )  # fmt: skip


def test_a_disconnect_without_any_heartbeat_is_offline_not_never():
    row = durable(last_heartbeat_ms=None, last_active_ms=None)
    worker = merged(row, live(dc=str(T0_MS), dr="error"))
    assert (worker.liveness, worker.lastHeartbeatAt, worker.disconnectReason) == (
        "offline", None, "error",
    )  # fmt: skip


@pytest.mark.parametrize("client", ["pipe", "redis-py"])
async def test_one_read_returns_a_workers_fields_and_recent_logs(client, redis, settings):
    worker = await register(redis, settings)
    await redis.hset(keys.worker_key(worker.id, settings.shards), mapping={"hb": "5", "si": "{}"})
    await redis.rpush(keys.logs_key(worker.id, settings.shards), "one", "two")
    reader = RedisPipe(settings.redis_url, settings.redis_timeout) if client == "pipe" else redis
    fields, logs = await read_worker_live(reader, settings.shards, worker.id)
    missing = await read_worker_live(reader, settings.shards, "wrk_01jqz3k5m2a8b9c0d1e2f3g4h5")
    if isinstance(reader, RedisPipe):
        reader.close()
    assert (list(fields), logs) == (live(hb="5", si="{}"), [b"one", b"two"])
    assert (list(missing[0]), missing[1]) == (list(NO_LIVE_FIELDS), [])

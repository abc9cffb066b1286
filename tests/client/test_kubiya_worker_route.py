"""The heartbeater on Kubiya's per-worker route: lightweight beats, a full one (system info and
log lines) first and then every `full_interval`, and a disconnect when it stops.

The fake sleep moves the clock by each delay, so "every 300 s" is exact: with `FixedRandom(0.5)`
the beats go at 15 s, 45 s, 75 s ... after the start.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from heartbeat_client import Heartbeater, HeartbeatRejected, KubiyaState

from .fakes import INGEST_URL, NOW, TOKEN, WORKER_ID, FakeSleep, FixedRandom, ScriptedIngest, status

BEAT_PATH = f"/api/v1/workers/{WORKER_ID}/heartbeat"
DISCONNECT_PATH = f"/api/v1/workers/{WORKER_ID}/disconnect"
STATE = KubiyaState("busy", 3, "task-1", {"slots": 2})
LIGHT = {"status": "busy", "tasks_processed": 3, "current_task_id": "task-1",
         "worker_metadata": {"slots": 2}}  # fmt: skip


class MovingClock:
    """A clock that a fake sleep moves forward by each delay."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class ClockSleep(FakeSleep):
    def __init__(self, clock: MovingClock, stop_after: int) -> None:
        super().__init__(stop_after)
        self.clock = clock

    async def __call__(self, delay: float) -> None:
        self.clock.now += timedelta(seconds=delay)
        await super().__call__(delay)


def batches(*groups: list[str]) -> Any:
    """A `logs` callback returning each group in turn, then nothing."""
    queue = list(groups)
    return lambda: queue.pop(0) if queue else []


def worker_heartbeater(
    ingest: ScriptedIngest, beats: int, **options: Any
) -> tuple[Heartbeater, ClockSleep]:
    """Stops after `beats` beats (each preceded by a wait)."""
    clock = MovingClock()
    sleep = ClockSleep(clock, stop_after=beats + 1)
    hb = Heartbeater(
        INGEST_URL, WORKER_ID, TOKEN, route="kubiya-worker", state=lambda: STATE,
        transport=httpx.MockTransport(ingest), sleep=sleep, clock=clock, rng=FixedRandom(),
        **options,
    )  # fmt: skip
    sleep.on_limit = hb.stop
    return hb, sleep


async def test_the_first_beat_is_full_then_one_every_full_interval_and_a_stop_disconnects():
    ingest = ScriptedIngest(*[status(204)] * 12)
    hb, sleep = worker_heartbeater(
        ingest, 11, system_info=lambda: {"hostname": "node-3", "cpu_count": 4},
        logs=batches(["started"], ["step 1", "step 2"]),
    )  # fmt: skip
    await asyncio.wait_for(hb.run(), 5)

    assert sleep.delays == [15.0] + [30.0] * 11  # beats at 15 s, 45 s, ... 315 s
    paths = [request.url.path for request in ingest.requests]
    assert paths == [BEAT_PATH] * 11 + [DISCONNECT_PATH]
    bodies = ingest.bodies()
    full = {**LIGHT, "system_info": {"hostname": "node-3", "cpu_count": 4}}
    assert bodies[0] == {**full, "logs": ["started"]}
    assert bodies[1:10] == [LIGHT] * 9  # 45 s ... 285 s
    assert bodies[10] == {**full, "logs": ["step 1", "step 2"]}  # 315 s: 300 s after the first
    assert bodies[11] == {"reason": "shutdown"}
    assert ingest.requests[11].headers["authorization"] == f"Bearer {TOKEN}"
    assert hb.beats_sent == 11 and hb.error is None


async def test_a_full_beat_that_failed_keeps_its_lines_and_the_next_beat_is_full():
    ingest = ScriptedIngest(status(503), status(204), status(204), status(204))
    hb, _ = worker_heartbeater(
        ingest, 3, system_info=lambda: {"hostname": "node-3"}, logs=batches(["a"], ["b"])
    )
    await asyncio.wait_for(hb.run(), 5)

    bodies = ingest.bodies()
    assert bodies[0]["logs"] == ["a"]
    assert bodies[1] == {**LIGHT, "system_info": {"hostname": "node-3"}, "logs": ["a", "b"]}
    assert bodies[2] == LIGHT
    assert bodies[3] == {"reason": "shutdown"}


async def test_lines_beyond_what_ingest_keeps_are_not_sent():
    lines = [f"line {i}" for i in range(150)]
    ingest = ScriptedIngest(status(204), status(204))
    hb, _ = worker_heartbeater(ingest, 1, logs=batches(lines))
    await asyncio.wait_for(hb.run(), 5)
    assert ingest.bodies()[0]["logs"] == lines[50:]
    assert "system_info" not in ingest.bodies()[0]


async def test_the_blocks_error_is_the_disconnects_reason():
    beat = asyncio.Event()
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        beat.set()
        return httpx.Response(204)

    hb = Heartbeater(
        INGEST_URL, WORKER_ID, TOKEN, route="kubiya-worker",
        transport=httpx.MockTransport(answer), sleep=FakeSleep(), rng=FixedRandom(),
    )  # fmt: skip
    with pytest.raises(RuntimeError):
        async with hb:
            await asyncio.wait_for(beat.wait(), 5)
            raise RuntimeError("out of disk\x00")

    assert requests[-1].url.path == DISCONNECT_PATH
    assert json.loads(requests[-1].content) == {
        "reason": "error", "error_message": "RuntimeError: out of disk",
    }  # fmt: skip


async def test_a_refused_worker_sends_no_disconnect():
    ingest = ScriptedIngest(status(401))
    hb, _ = worker_heartbeater(ingest, 1)
    with pytest.raises(HeartbeatRejected):
        await asyncio.wait_for(hb.run(), 5)
    assert [request.url.path for request in ingest.requests] == [BEAT_PATH]


async def test_a_disconnect_that_fails_does_not_fail_the_stop():
    ingest = ScriptedIngest(status(204), httpx.ConnectError("gone"))
    hb, _ = worker_heartbeater(ingest, 1)
    await asyncio.wait_for(hb.run(), 5)
    assert hb.error is None and len(ingest.requests) == 2


async def test_system_info_that_is_not_a_mapping_stops_the_run():
    hb, _ = worker_heartbeater(ScriptedIngest(), 1, system_info=lambda: ["node-3"])
    with pytest.raises(TypeError, match="system_info"):
        await asyncio.wait_for(hb.run(), 5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"route": "den", "logs": lambda: []}, "kubiya-worker"),
        ({"route": "kubiya", "environment_name": "prod", "system_info": dict}, "kubiya-worker"),
        ({"route": "kubiya-worker", "full_interval": 0.0}, "full_interval"),
    ],
)
def test_misconfiguration_fails_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Heartbeater(INGEST_URL, WORKER_ID, TOKEN, **options)

"""The heartbeater in its own thread: start() returns at once, stop() ends it promptly.

The thread runs its own event loop and really sleeps: `FixedRandom(0.0)` puts the first beat
at offset zero and every later wait at 3,240 s (an hour minus 10 %), so a thread that ends
at all was woken by stop(). The tests synchronise through threading.Event, each wait bounded
only as a safety net against a hang.
"""

from __future__ import annotations

import threading

import httpx
import pytest
from heartbeat_client import Heartbeater, HeartbeatRejected

from .fakes import INGEST_URL, TOKEN, WORKER_ID, FixedRandom, ScriptedIngest, status

SAFETY = 5.0


class CountingIngest:
    def __init__(self, code: int = 200, body: str = "") -> None:
        self.code = code
        self.body = body
        self.requests = 0
        self.first = threading.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.first.set()
        return httpx.Response(self.code, text=self.body)


def threaded(ingest: CountingIngest, **options: object) -> Heartbeater:
    return Heartbeater(
        INGEST_URL,
        WORKER_ID,
        TOKEN,
        interval=3600.0,
        transport=httpx.MockTransport(ingest),
        rng=FixedRandom(0.0),
        **options,  # type: ignore[arg-type]
    )


def test_start_beats_in_the_background_and_stop_joins_promptly() -> None:
    ingest = CountingIngest()
    stops: list[BaseException | None] = []
    hb = threaded(ingest, on_stop=stops.append)

    hb.start()
    assert hb.running
    assert ingest.first.wait(SAFETY)
    assert hb.stop(timeout=SAFETY)  # the hour-long wait is abandoned

    assert not hb.running
    assert (ingest.requests, hb.beats_sent, hb.beats_failed) == (1, 1, 0)
    assert stops == [None] and hb.error is None


def test_a_rejection_ends_the_thread_and_reaches_on_stop() -> None:
    ingest = CountingIngest(404, '{"error":"worker_not_found"}')
    stopped = threading.Event()
    stops: list[BaseException | None] = []

    def on_stop(error: BaseException | None) -> None:
        stops.append(error)
        stopped.set()

    hb = threaded(ingest, on_stop=on_stop)
    hb.start()
    assert stopped.wait(SAFETY)
    assert hb.stop(timeout=SAFETY)

    [error] = stops
    assert isinstance(error, HeartbeatRejected) and error.status_code == 404
    assert hb.error is error and not hb.running
    assert ingest.requests == 1


def test_stop_right_after_start_ends_before_any_beat() -> None:
    ingest = CountingIngest()
    hb = Heartbeater(
        INGEST_URL,
        WORKER_ID,
        TOKEN,
        interval=3600.0,
        transport=httpx.MockTransport(ingest),
        rng=FixedRandom(0.5),  # the first beat half an hour away
    )
    hb.start()
    assert hb.stop(timeout=SAFETY)
    assert ingest.requests == 0 and not hb.running


def test_a_stopped_heartbeater_can_start_again() -> None:
    ingest = CountingIngest()
    hb = threaded(ingest)
    for _ in range(2):
        ingest.first.clear()
        hb.start()
        assert ingest.first.wait(SAFETY)
        assert hb.stop(timeout=SAFETY)
    assert hb.beats_sent == 2


def test_stop_from_a_hook_inside_the_thread_does_not_deadlock() -> None:
    ingest = CountingIngest()
    hb: Heartbeater
    stopped = threading.Event()

    def on_beat(code: int, latency: float) -> None:
        assert hb.stop()  # cannot join its own thread; asks and returns

    hb = threaded(ingest, on_beat=on_beat, on_stop=lambda _: stopped.set())
    hb.start()
    assert stopped.wait(SAFETY)
    assert hb.stop(timeout=SAFETY)
    assert ingest.requests == 1


def test_starting_twice_is_refused() -> None:
    hb = threaded(CountingIngest())
    hb.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            hb.start()
    finally:
        assert hb.stop(timeout=SAFETY)


def test_stop_before_start_is_harmless() -> None:
    assert threaded(CountingIngest()).stop()


async def test_thread_mode_refuses_an_injected_client() -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(ScriptedIngest(status(200)))
    ) as client:
        hb = Heartbeater(INGEST_URL, WORKER_ID, TOKEN, client=client)
        with pytest.raises(ValueError, match="transport"):
            hb.start()

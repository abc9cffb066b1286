"""The heartbeater in asyncio against a scripted ingest, with a fake sleep recording each wait.

`FixedRandom(0.5)` makes every delay exact: the first offset is half the interval (15 s), the
interval jitter is zero (30 s) and each backoff is half its ceiling (0.5, 1, 2, 4 ...).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any

import httpx
import pytest
from heartbeat_client import (
    DenState,
    Heartbeater,
    HeartbeatRejected,
    KubiyaState,
    __version__,
)
from heartbeat_client.timing import first_beat_delay

from .fakes import (
    INGEST_URL,
    NOW_TEXT,
    TOKEN,
    WORKER_ID,
    FakeSleep,
    FixedRandom,
    ScriptedIngest,
    fixed_clock,
    status,
)

DEN_PATH = f"/v1/workers/{WORKER_ID}/activity-heartbeat"
KUBIYA_PATH = "/api/v1/workers/heartbeat"


def make(
    ingest: ScriptedIngest, sleep: FakeSleep | None = None, **options: Any
) -> tuple[Heartbeater, FakeSleep]:
    """A heartbeater whose run ends once every scripted answer has been served and waited on."""
    sleep = sleep or FakeSleep(stop_after=len(ingest.answers) + 1)
    options.setdefault("rng", FixedRandom())
    hb = Heartbeater(
        INGEST_URL,
        WORKER_ID,
        TOKEN,
        transport=httpx.MockTransport(ingest),
        sleep=sleep,
        clock=fixed_clock,
        **options,
    )
    sleep.on_limit = hb.stop
    return hb, sleep


async def play(
    *answers: httpx.Response | Exception, **options: Any
) -> tuple[Heartbeater, ScriptedIngest, list[float]]:
    ingest = ScriptedIngest(*answers)
    hb, sleep = make(ingest, **options)
    await asyncio.wait_for(hb.run(), 5)  # a safety net against a hang, not a measurement
    return hb, ingest, sleep.delays


# -- payloads on the wire ----------------------------------------------------------------


async def test_den_beat_carries_the_token_the_state_and_the_local_clock() -> None:
    state = DenState(is_active_recently=True, open_session_count=2, last_activity_at=fixed_clock())
    hb, ingest, _ = await play(status(200, text="{}"), state=lambda: state)

    [request] = ingest.requests
    assert request.method == "POST"
    assert request.url == f"{INGEST_URL}{DEN_PATH}"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"heartbeat-client/{__version__}"
    assert json.loads(request.content) == {
        "isActiveRecently": True,
        "sentAt": NOW_TEXT,
        "openSessionCount": 2,
        "lastActivityAt": NOW_TEXT,
    }
    assert hb.beats_sent == 1 and hb.beats_failed == 0


async def test_den_state_is_asked_for_before_every_beat() -> None:
    counts = iter(range(10))

    def state() -> DenState:
        count = next(counts)
        return DenState(is_active_recently=count > 0, open_session_count=count)

    _, ingest, _ = await play(status(200), status(200), status(200), state=state)
    assert [(b["isActiveRecently"], b["openSessionCount"]) for b in ingest.bodies()] == [
        (False, 0),
        (True, 1),
        (True, 2),
    ]


async def test_den_without_a_state_callback_reports_alive_but_not_active() -> None:
    _, ingest, _ = await play(status(200))
    assert ingest.bodies() == [{"isActiveRecently": False, "sentAt": NOW_TEXT}]


async def test_den_worker_id_is_escaped_in_the_path() -> None:
    ingest = ScriptedIngest(status(200))
    sleep = FakeSleep(stop_after=2)
    hb = Heartbeater(
        INGEST_URL + "/prefix/",
        "wrk/../x y",
        TOKEN,
        transport=httpx.MockTransport(ingest),
        sleep=sleep,
        rng=FixedRandom(),
    )
    sleep.on_limit = hb.stop
    await asyncio.wait_for(hb.run(), 5)
    assert (
        ingest.requests[0].url.raw_path == b"/prefix/v1/workers/wrk%2F..%2Fx%20y/activity-heartbeat"
    )


async def test_kubiya_beat_carries_every_field_and_accepts_204() -> None:
    state = KubiyaState("busy", 12, "task-7", {"region": "eu-west-1"})
    hb, ingest, _ = await play(
        status(204), route="kubiya", environment_name="prod", state=lambda: state
    )

    [request] = ingest.requests
    assert request.url == f"{INGEST_URL}{KUBIYA_PATH}"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.content) == {
        "worker_id": WORKER_ID,
        "environment_name": "prod",
        "status": "busy",
        "tasks_processed": 12,
        "current_task_id": "task-7",
        "worker_metadata": {"region": "eu-west-1"},
    }
    assert hb.beats_sent == 1


async def test_an_async_state_callback_is_awaited() -> None:
    async def state() -> KubiyaState:
        await asyncio.sleep(0)
        return KubiyaState(status="idle")

    _, ingest, _ = await play(status(204), route="kubiya", environment_name="prod", state=state)
    assert ingest.bodies()[0]["status"] == "idle"


async def test_a_state_for_the_other_route_is_a_bug_and_stops_the_run() -> None:
    hb, _ = make(ScriptedIngest(), FakeSleep(), state=lambda: KubiyaState())
    with pytest.raises(TypeError, match="DenState"):
        await asyncio.wait_for(hb.run(), 5)
    assert isinstance(hb.error, TypeError)


# -- the schedule -------------------------------------------------------------------------


async def test_first_beat_waits_a_random_offset_then_the_jittered_interval() -> None:
    _, _, delays = await play(status(200), status(200), status(200), rng=random.Random(42))

    assert delays[0] == first_beat_delay(30.0, random.Random(42))
    assert all(27.0 <= delay <= 33.0 for delay in delays[1:])
    assert len(set(delays[1:])) == 3  # jittered, not a fixed period


async def test_honours_retry_after_on_503_and_429_then_resumes_the_interval() -> None:
    _, _, delays = await play(
        status(503, retry_after="7"),
        status(429, retry_after="12"),
        status(200),
    )
    # 15 s offset; 7 s and 12 s as told (above the 0.5 s and 1 s backoff); 30 s after success.
    assert delays == [15.0, 7.0, 12.0, 30.0]


async def test_retry_after_may_be_an_http_date() -> None:
    # The fake clock reads 01:02:03.456789; the date says 01:02:33.
    _, _, delays = await play(status(503, retry_after="Mon, 30 Nov 2026 01:02:33 GMT"))
    assert delays[1] == pytest.approx(29.543211)


async def test_retry_after_is_capped() -> None:
    _, _, delays = await play(status(503, retry_after="86400"), max_retry_after=120.0)
    assert delays[1] == 120.0


async def test_missing_or_garbled_retry_after_falls_back_to_backoff() -> None:
    _, _, delays = await play(status(503), status(429, retry_after="later"), status(200))
    assert delays == [15.0, 0.5, 1.0, 30.0]


async def test_retry_after_is_a_floor_so_a_long_outage_still_backs_off() -> None:
    answers = [status(503, retry_after="1") for _ in range(5)]
    _, _, delays = await play(*answers)
    assert delays == [15.0, 1.0, 1.0, 2.0, 4.0, 8.0]


async def test_backs_off_exponentially_on_errors_then_resumes_the_interval() -> None:
    hb, _, delays = await play(
        status(500),
        status(502),
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        status(504),
        status(200),
        status(200),
    )
    assert delays == [15.0, 0.5, 1.0, 2.0, 4.0, 8.0, 30.0, 30.0]
    assert hb.beats_failed == 5 and hb.beats_sent == 2
    assert hb.consecutive_failures == 0


async def test_backoff_is_capped() -> None:
    _, _, delays = await play(*[status(500) for _ in range(6)], max_backoff=4.0)
    assert delays == [15.0, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0]


async def test_backoff_restarts_from_the_bottom_after_a_success() -> None:
    _, _, delays = await play(status(500), status(500), status(200), status(500), status(200))
    assert delays == [15.0, 0.5, 1.0, 30.0, 0.5, 30.0]


async def test_real_randomness_keeps_backoff_within_its_ceilings() -> None:
    _, _, delays = await play(*[status(500) for _ in range(8)], rng=random.Random(5))
    for attempt, delay in enumerate(delays[1:]):
        assert 0.0 <= delay <= min(60.0, 2.0**attempt)


# -- giving up ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "body"),
    [
        (401, '{"error":"unauthorized","message":"Invalid heartbeat token"}'),
        (404, '{"error":"worker_not_found","message":"Worker not found"}'),
        (400, '{"error":"invalid_request","details":[{"path":["isActiveRecently"]}]}'),
        (413, '{"error":"payload_too_large"}'),
        (422, '{"detail":[{"loc":["body","worker_id"]}]}'),
        (403, "forbidden"),
        (308, ""),
    ],
)
async def test_stops_with_a_clear_error_instead_of_retrying(code: int, body: str) -> None:
    stops: list[BaseException | None] = []
    failures: list[tuple[BaseException | int, float | None]] = []
    hb, sleep = make(
        ScriptedIngest(status(code, text=body)),
        on_stop=stops.append,
        on_failure=lambda failure, delay: failures.append((failure, delay)),
    )

    with pytest.raises(HeartbeatRejected) as caught:
        await asyncio.wait_for(hb.run(), 5)

    rejection = caught.value
    assert rejection.status_code == code
    assert rejection.body == body
    assert f"HTTP {code}" in str(rejection)
    assert hb.error is rejection and stops == [rejection]
    assert failures == [(code, None)]
    assert hb.beats_failed == 1 and not hb.running
    assert sleep.delays == [15.0]  # no retry was scheduled


async def test_rejection_reasons_say_what_to_do() -> None:
    assert "revoked" in str(HeartbeatRejected(401, ""))
    assert "deleted" in str(HeartbeatRejected(404, ""))
    assert len(HeartbeatRejected(401, "x" * 100_000).body) == 4096


async def test_a_rejection_after_an_outage_still_stops() -> None:
    hb, sleep = make(ScriptedIngest(status(503, retry_after="1"), status(500), status(404)))
    with pytest.raises(HeartbeatRejected):
        await asyncio.wait_for(hb.run(), 5)
    assert sleep.delays == [15.0, 1.0, 1.0]
    assert hb.beats_failed == 3


# -- hooks and counters -------------------------------------------------------------------


async def test_hooks_see_every_answer_and_every_failure() -> None:
    beats: list[tuple[int, float]] = []
    failures: list[tuple[BaseException | int, float | None]] = []
    refused = httpx.ConnectError("connection refused")
    hb, _, _ = await play(
        status(200),
        status(503, retry_after="3"),
        refused,
        status(500),
        status(200),
        on_beat=lambda code, latency: beats.append((code, latency)),
        on_failure=lambda failure, delay: failures.append((failure, delay)),
    )

    assert [code for code, _ in beats] == [200, 503, 500, 200]
    assert all(isinstance(latency, float) and latency >= 0.0 for _, latency in beats)
    assert failures == [(503, 3.0), (refused, 1.0), (500, 2.0)]
    assert (hb.beats_sent, hb.beats_failed) == (2, 3)


async def test_a_broken_hook_does_not_stop_the_heartbeats(caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("metrics backend down")

    hb, _, _ = await play(status(500), status(200), on_beat=broken, on_failure=broken)
    assert (hb.beats_sent, hb.beats_failed) == (1, 1)
    assert "metrics backend down" in caplog.text


async def test_the_token_never_reaches_logs_errors_or_repr(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    hb, _ = make(
        ScriptedIngest(
            status(503, retry_after="1"),
            httpx.ConnectError("connection refused"),
            status(500),
            status(200),
            status(401, text='{"error":"unauthorized"}'),
        )
    )
    with pytest.raises(HeartbeatRejected) as caught:
        await asyncio.wait_for(hb.run(), 5)

    assert "heartbeat" in caplog.text  # something was logged ...
    assert TOKEN not in caplog.text  # ... but never the token
    assert TOKEN not in str(caught.value) and TOKEN not in repr(caught.value)
    assert TOKEN not in repr(hb)


# -- asyncio lifecycle --------------------------------------------------------------------


async def test_async_with_beats_beside_the_block_and_stops_at_its_end() -> None:
    three_beats = asyncio.Event()
    stops: list[BaseException | None] = []

    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if len(requests) == 3:
            three_beats.set()
        return httpx.Response(200)

    hb = Heartbeater(
        INGEST_URL,
        WORKER_ID,
        TOKEN,
        transport=httpx.MockTransport(answer),
        sleep=FakeSleep(),
        rng=FixedRandom(),
        on_stop=stops.append,
    )
    async with hb:
        await asyncio.wait_for(three_beats.wait(), 5)
        assert hb.running

    assert not hb.running
    assert hb.beats_sent >= 3 and hb.error is None
    assert stops == [None]


async def test_async_with_raises_the_rejection_when_the_block_ends() -> None:
    stopped = asyncio.Event()
    hb, _ = make(ScriptedIngest(status(404)), on_stop=lambda _: stopped.set())

    with pytest.raises(HeartbeatRejected) as caught:
        async with hb:
            await asyncio.wait_for(stopped.wait(), 5)
    assert caught.value.status_code == 404


async def test_async_with_lets_the_blocks_own_error_win() -> None:
    stopped = asyncio.Event()
    hb, _ = make(ScriptedIngest(status(401)), on_stop=lambda _: stopped.set())

    with pytest.raises(KeyError):
        async with hb:
            await asyncio.wait_for(stopped.wait(), 5)
            raise KeyError("the work itself failed")
    assert isinstance(hb.error, HeartbeatRejected)


async def test_stop_interrupts_a_long_wait_at_once() -> None:
    waiting = asyncio.Event()

    async def real_sleep(delay: float) -> None:
        waiting.set()
        await asyncio.sleep(delay)

    hb = Heartbeater(
        INGEST_URL,
        WORKER_ID,
        TOKEN,
        interval=3600.0,
        transport=httpx.MockTransport(ScriptedIngest()),
        sleep=real_sleep,
        rng=FixedRandom(),
    )
    run = asyncio.create_task(hb.run())
    await asyncio.wait_for(waiting.wait(), 5)
    hb.stop()
    await asyncio.wait_for(run, 5)  # an hour-long wait would time this out
    assert not hb.running and hb.error is None


async def test_stop_abandons_a_request_in_flight() -> None:
    in_flight = asyncio.Event()

    async def hanging(request: httpx.Request) -> httpx.Response:
        in_flight.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    hb = Heartbeater(
        INGEST_URL,
        WORKER_ID,
        TOKEN,
        transport=httpx.MockTransport(hanging),
        sleep=FakeSleep(),
        rng=FixedRandom(),
    )
    run = asyncio.create_task(hb.run())
    await asyncio.wait_for(in_flight.wait(), 5)
    hb.stop()
    await asyncio.wait_for(run, 5)
    assert (hb.beats_sent, hb.beats_failed) == (0, 0)


async def test_cancelling_run_stops_it_cleanly() -> None:
    stops: list[BaseException | None] = []
    waiting = asyncio.Event()

    async def forever(delay: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    hb = Heartbeater(
        INGEST_URL,
        WORKER_ID,
        TOKEN,
        transport=httpx.MockTransport(ScriptedIngest()),
        sleep=forever,
        on_stop=stops.append,
    )
    run = asyncio.create_task(hb.run())
    await asyncio.wait_for(waiting.wait(), 5)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert stops == [None] and not hb.running


async def test_an_injected_client_is_used_and_left_open() -> None:
    ingest = ScriptedIngest(status(200))
    sleep = FakeSleep(stop_after=2)
    async with httpx.AsyncClient(transport=httpx.MockTransport(ingest)) as client:
        hb = Heartbeater(INGEST_URL, WORKER_ID, TOKEN, client=client, sleep=sleep)
        sleep.on_limit = hb.stop
        await asyncio.wait_for(hb.run(), 5)
        assert not client.is_closed
    assert len(ingest.requests) == 1


async def test_running_twice_at_once_is_refused() -> None:
    hb, _ = make(ScriptedIngest(), sleep=FakeSleep())
    async with hb:
        with pytest.raises(RuntimeError, match="already running"):
            await hb.run()
        hb.stop()


# -- construction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"route": "kubiya"}, "environment_name"),
        ({"route": "grpc"}, "route"),
        ({"interval": 0.0}, "interval"),
        ({"interval": float("nan")}, "interval"),
        ({"jitter": 1.0}, "jitter"),
        ({"max_backoff": -1.0}, "max_backoff"),
        ({"max_retry_after": 0.0}, "max_retry_after"),
    ],
)
def test_misconfiguration_fails_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Heartbeater(INGEST_URL, WORKER_ID, TOKEN, **options)


async def test_client_and_transport_are_exclusive() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError, match="either"):
            Heartbeater(
                INGEST_URL,
                WORKER_ID,
                TOKEN,
                client=client,
                transport=httpx.MockTransport(ScriptedIngest()),
            )


@pytest.mark.parametrize("url", ["ftp://ingest", "ingest:8080", "", "http://[::1"])
def test_ingest_url_must_be_http(url: str) -> None:
    with pytest.raises(ValueError, match="ingest_url"):
        Heartbeater(url, WORKER_ID, TOKEN)


@pytest.mark.parametrize("token", ["", "two words", "line\nbreak", "ünïcode"])
def test_bad_tokens_are_refused_without_being_quoted(token: str) -> None:
    with pytest.raises(ValueError, match="token") as caught:
        Heartbeater(INGEST_URL, WORKER_ID, token)
    assert not token or token not in str(caught.value)

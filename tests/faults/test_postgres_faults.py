"""Postgres stopping or hanging under load: ingest does not depend on it, the backlog waits in
Redis and shows as flush lag, and every acknowledged beat reaches Postgres once it is back."""

from __future__ import annotations

import asyncio
import itertools
import time

import httpx

from tests.faults.harness import (
    FLUSH_INTERVAL,
    Load,
    Row,
    Stack,
    Timeline,
    catch_up,
    poll_until,
    tally,
)

OUTAGE = 3.0
LAG_OUTAGE = 5.0
LAG_SAMPLE_EVERY = 0.5
# Two samples of a gauge that tracks one fixed beat's age differ by the time between them; a
# drop larger than this means the gauge lost track of the oldest beat.
LAG_JITTER = 0.25


async def test_ingest_acknowledges_every_beat_while_postgres_is_stopped_and_none_is_lost(
    stack: Stack, row: Row
) -> None:
    async with Load(stack.ingest_url, stack.workers) as load:
        timeline = Timeline(load)
        await timeline.warm_up(stack)
        timeline.fault_began()
        await stack.stop_postgres()
        await timeline.hold(OUTAGE)
        await stack.start_postgres()
        timeline.fault_ended()
        first_ok = await timeline.first_ok()
    caught = await catch_up(stack, load.acked)
    row.fill(stack, load, timeline, caught, first_ok)

    assert set(tally(load.beats)) == {"2xx"}, f"ingest answered {dict(tally(load.beats))}"
    assert load.in_phase("fault"), "no beat was sent while Postgres was down"
    assert caught.lost == 0, str(caught)


async def test_no_acknowledged_beat_is_lost_when_postgres_hangs_and_resumes(
    stack: Stack, row: Row
) -> None:
    async with Load(stack.ingest_url, stack.workers) as load:
        timeline = Timeline(load)
        await timeline.warm_up(stack)
        stack.hang_postgres()
        timeline.fault_began()
        await timeline.hold(OUTAGE)
        timeline.fault_ended()
        stack.resume_postgres()
        first_ok = await timeline.first_ok()
    caught = await catch_up(stack, load.acked)
    row.fill(stack, load, timeline, caught, first_ok)

    assert caught.lost == 0, str(caught)


async def test_flush_lag_grows_through_a_postgres_outage_and_falls_after_it(
    stack: Stack, row: Row
) -> None:
    during: list[float | None] = []
    after: list[float | None] = []
    async with Load(stack.ingest_url, stack.workers) as load:
        timeline = Timeline(load)
        await timeline.warm_up(stack)
        await stack.stop_postgres()
        timeline.fault_began()
        while time.monotonic() - timeline.fault_start < LAG_OUTAGE:
            during.append(await stack.flush_lag())
            await asyncio.sleep(LAG_SAMPLE_EVERY)  # the sampling period, not a wait for anything
        during.append(await stack.flush_lag())
        await stack.start_postgres()
        timeline.fault_ended()

        async def fell() -> bool:
            lag = await stack.flush_lag()
            after.append(lag)
            return lag is not None and lag <= 2 * FLUSH_INTERVAL

        fell_in = await poll_until(fell, 30.0, interval=LAG_SAMPLE_EVERY)
        first_ok = await timeline.first_ok()
    caught = await catch_up(stack, load.acked)
    samples = [round(v, 1) if v is not None else None for v in during]
    fallen = [round(v, 1) if v is not None else None for v in after]
    row.fill(
        stack,
        load,
        timeline,
        caught,
        first_ok,
        notes=f"lag during outage {samples}; after {fallen}"
        + ("" if fell_in is None else f"; back under {2 * FLUSH_INTERVAL:g} s in {fell_in:.1f} s"),
    )

    assert None not in during, f"the API did not report hb_flush_lag_seconds: {samples}"
    lags = [v for v in during if v is not None]
    drops = [(a, b) for a, b in itertools.pairwise(lags) if b < a - LAG_JITTER]
    assert not drops, f"the lag fell while Postgres was down: {samples}"
    expected = LAG_OUTAGE - FLUSH_INTERVAL - LAG_SAMPLE_EVERY
    assert max(lags) >= expected, (
        f"the lag peaked at {max(lags):.1f} s through a {LAG_OUTAGE:g} s outage "
        f"(expected >= {expected:g} s): {samples}"
    )
    assert fell_in is not None, f"the lag did not fall after Postgres returned: {fallen}"


async def test_the_api_answers_503_rather_than_hang_while_postgres_hangs(stack: Stack) -> None:
    guard = httpx.Timeout(30.0)  # far beyond HB_POSTGRES_TIMEOUT: a hang fails the test
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=guard) as api:
        headers = {"x-api-key": stack.api_key}
        assert (await api.get("/v1/workers", headers=headers)).status_code == 200
        stack.hang_postgres()
        try:
            listed = await api.get("/v1/workers", headers=headers)
            ready = await api.get("/ready")
        finally:
            stack.resume_postgres()
        assert listed.status_code == 503, listed.text
        assert listed.headers["retry-after"]
        assert ready.status_code == 503

        async def served() -> bool:
            return (await api.get("/v1/workers", headers=headers)).status_code == 200

        assert await poll_until(served, within=30) is not None, "no read after Postgres resumed"

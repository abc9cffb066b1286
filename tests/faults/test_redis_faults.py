"""Redis stalled, busy or restarted empty under load: ingest says 503 (retry later) rather than
2xx it can't keep, 500, or 404 for a worker that exists, and recovers by itself."""

from __future__ import annotations

import asyncio
import time

from tests.faults.harness import (
    BusyRedis,
    Load,
    Row,
    Stack,
    Timeline,
    catch_up,
    poll_until,
    tally,
)

STALL = 2.0


async def test_ingest_answers_503_while_redis_is_stopped_and_loses_no_acknowledged_beat(
    stack: Stack, row: Row
) -> None:
    async with Load(stack.ingest_url, stack.workers) as load:
        timeline = Timeline(load)
        await timeline.warm_up(stack)
        stack.freeze_redis()
        timeline.fault_began()
        await timeline.hold(STALL)
        timeline.fault_ended()
        stack.thaw_redis()
        first_ok = await timeline.first_ok()
    caught = await catch_up(stack, load.acked)
    row.fill(stack, load, timeline, caught, first_ok)

    stalled = tally(load.sent_between(timeline.fault_start, timeline.fault_end))
    assert stalled["503"] > 0, f"no 503 while Redis was stopped: {dict(stalled)}"
    assert set(stalled) == {"503"}, f"answers while Redis was stopped: {dict(stalled)}"
    assert first_ok is not None, "no 2xx after Redis resumed"
    assert caught.lost == 0, str(caught)


async def test_ingest_answers_503_with_retry_after_while_redis_is_busy_and_recovers(
    stack: Stack, row: Row
) -> None:
    async with Load(stack.ingest_url, stack.workers) as load:
        timeline = Timeline(load)
        await timeline.warm_up(stack)
        busy = BusyRedis(stack)
        timeline.fault_began()
        try:
            await busy.start()
            busy_from = time.monotonic()  # Redis answers BUSY from here on
            await timeline.hold(STALL)
            timeline.fault_ended()
        finally:
            await busy.stop()
        first_ok = await timeline.first_ok()
    caught = await catch_up(stack, load.acked)
    row.fill(stack, load, timeline, caught, first_ok)

    window = load.sent_between(busy_from, timeline.fault_end)
    answers = tally(window)
    assert answers["503"] > 0, f"no 503 while Redis was busy: {dict(answers)}"
    assert set(answers) == {"503"}, f"answers while Redis was busy: {dict(answers)}"
    without = sum(1 for b in window if b.status == 503 and not b.retry_after)
    assert without == 0, f"{without} of {answers['503']} 503s came without Retry-After"
    assert first_ok is not None, "no 2xx after the script was killed"
    assert caught.lost == 0, str(caught)


async def test_after_redis_restarts_empty_ingest_answers_503_not_404_until_the_registry_is_rebuilt(
    stack: Stack, row: Row
) -> None:
    flusher_pid = stack.flusher.pid
    flusher_exit: list[tuple[float, int]] = []

    async def watch_flusher() -> None:
        def exited() -> bool:
            return stack.flusher.exit_code() is not None

        await poll_until(exited, 600.0, interval=0.1)  # cancelled when the scenario ends
        code = stack.flusher.exit_code()
        if code is not None:
            flusher_exit.append((time.monotonic(), code))

    watcher = asyncio.create_task(watch_flusher())
    try:
        async with Load(stack.ingest_url, stack.workers) as load:
            timeline = Timeline(load)
            await timeline.warm_up(stack)
            timeline.fault_began()
            await stack.restart_redis_empty()
            timeline.fault_ended()

            def served_again() -> bool:
                back = load.all_ok_after(timeline.fault_end) is not None
                return back or bool(flusher_exit)  # no flusher: nothing will rebuild it

            await poll_until(served_again, 20.0)
            rebuilt_in = load.all_ok_after(timeline.fault_end)
            first_ok = load.first_ok_after(timeline.fault_end)
    finally:
        watcher.cancel()
    caught = await catch_up(stack, load.acked)
    died = (
        f"flusher exited with {flusher_exit[0][1]} {flusher_exit[0][0] - timeline.fault_end:.1f} s "
        "after the restart"
        if flusher_exit
        else "flusher alive throughout"
    )
    every = "never" if rebuilt_in is None else f"{rebuilt_in:.1f} s"
    row.fill(
        stack, load, timeline, caught, first_ok, notes=f"every worker 2xx again: {every}; {died}"
    )

    since = tally(b for b in load.beats if b.phase != "before")
    assert since["404"] == 0, f"ingest answered 404 for registered workers: {dict(since)}"
    assert set(since) <= {"2xx", "503"}, f"answers after the restart: {dict(since)}"
    assert not flusher_exit and stack.flusher.pid == flusher_pid and stack.flusher.alive(), died
    assert rebuilt_in is not None, (
        f"not every worker was served again within 20 s: {dict(since)}; "
        f"{len(load.workers_ok_after(timeline.fault_end))} of {len(stack.workers)} served"
    )

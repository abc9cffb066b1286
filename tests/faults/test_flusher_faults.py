"""A flusher killed without warning: its claims come back to dirty when their lease expires, and
the flusher started in its place persists them."""

from __future__ import annotations

from tests.faults.harness import NOT_APPLICABLE, Load, Row, Stack, Timeline, catch_up, poll_until


async def test_a_flusher_killed_mid_run_loses_no_acknowledged_beat(stack: Stack, row: Row) -> None:
    async with Load(stack.ingest_url, stack.workers) as load:
        timeline = Timeline(load)
        await timeline.warm_up(stack)
        async with stack.redis_client() as redis:

            async def claimed() -> bool:
                return bool(await stack.claimed_workers(redis))

            # Kill it while it holds a claim if that can be caught (a flush of 50 workers takes
            # milliseconds), else wherever it is.
            caught_mid_flush = await poll_until(claimed, 10.0, interval=0.002) is not None
            timeline.fault_began()
            stack.kill_flusher()
            orphaned = await stack.claimed_workers(redis)
    # The load stops with the kill: a newer beat would reach Postgres through a fresh claim and
    # hide a lost one, so the killed flusher's claim must come back for its beats to get there.
    persisted = await stack.persisted_heartbeats() or {}
    pending = [w for w in orphaned if (persisted.get(w) or -1) < load.acked.get(w, -1)]
    stack.start_flusher()
    timeline.fault_ended()
    caught = await catch_up(stack, load.acked)
    row.fill(
        stack,
        load,
        timeline,
        caught,
        NOT_APPLICABLE,
        notes=f"killed while holding a claim: {'yes' if caught_mid_flush else 'not caught'}; "
        f"workers it left claimed: {len(orphaned)}, of which {len(pending)} with their newest "
        "beat not yet in Postgres; load stopped at the kill",
    )

    assert caught.lost == 0, str(caught)

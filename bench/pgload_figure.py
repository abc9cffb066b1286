"""Postgres load at default settings: statements and row writes per 10,000 beats.

Time is simulated: every worker beats every heartbeat interval (30 s) at its own phase, the
beats go through the ingest script with their simulated times, and the flusher's drain runs
every flush interval (5 s). The first simulated minutes (every worker's first persist) are a
warm-up; the figure counts the steady state after it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

import asyncpg

from bench import report
from bench.fleet import Fleet, den_beat, insert_fleet_rows, new_fleet, register_fleet
from bench.servers import TOKEN_KEYS, embedded_stores, time_limit, workdir
from shared.contract import keys
from shared.contract.record import RECORD_HEARTBEATS, record_call
from shared.contract.times import now_ms
from shared.redis.connect import connect_redis
from shared.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--minutes", type=int, default=10, help="simulated minutes counted")
    parser.add_argument("--warmup-minutes", type=int, default=2)


def run(args: argparse.Namespace) -> int:
    with time_limit(900), contextlib.ExitStack() as stack:
        directory = stack.enter_context(workdir())
        settings, _ = stack.enter_context(embedded_stores(directory))
        fleet = new_fleet(args.workers, TOKEN_KEYS)
        register_fleet(settings.redis_url, fleet, settings.shards)
        beats, statements, rows, tup_updated = asyncio.run(
            _simulate(settings, fleet, args.warmup_minutes * 60, args.minutes * 60)
        )

    per = 10_000 / beats
    table = [
        ["beats", beats, ""],
        ["Postgres statements (flusher)", statements, statements * per],
        ["rows written (UPDATE row count)", rows, rows * per],
        ["rows updated (pg_stat_user_tables)", tup_updated, tup_updated * per],
        ["rows written per beat", rows / beats, ""],
    ]
    report.print_figure(
        f"pgload: {args.workers:,} workers, {settings.heartbeat_interval:g} s beats, "
        f"persist every {settings.persist_interval:g} s, drain every {settings.flush_interval:g} s,"
        f" {args.minutes} simulated minutes after {args.warmup_minutes} of warm-up",
        ["measure", "total", "per 10,000 beats"],
        table,
    )
    return 0


async def _simulate(
    settings: Settings, fleet: Fleet, warmup_s: int, counted_s: int
) -> tuple[int, int, int, int]:
    from flusher.drain import drain_all
    from flusher.persist import PLANNER_SETTINGS

    statements = 0
    counting = False

    def count(record: Any) -> None:
        nonlocal statements
        if counting:
            statements += 1

    async def init(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(count)

    pool = await asyncpg.create_pool(
        settings.database_url, min_size=1, max_size=4, init=init, server_settings=PLANNER_SETTINGS
    )
    assert pool is not None
    redis = connect_redis(settings)
    try:
        await insert_fleet_rows(pool, fleet, with_instances=False)
        interval_ms = int(settings.heartbeat_interval * 1000)
        step_ms = int(settings.flush_interval * 1000)
        n = len(fleet.worker_ids)
        phases = [i * interval_ms // n for i in range(n)]  # beats spread evenly over 30 s
        start = now_ms() - 24 * 3_600_000  # in the past: the simulated clock never passes now
        beats = rows = rows_in_warmup = 0
        updated_before = 0
        for t in range(0, warmup_s * 1000 + counted_s * 1000, step_ms):
            if t == warmup_s * 1000:
                counting = True
                updated_before = await _settled_tup_updated(settings.database_url, rows_in_warmup)
            # Every worker whose beat falls in [t, t + step) beats, at its exact time.
            due = [
                (fleet.worker_ids[i], start + t + (phases[i] - t) % interval_ms)
                for i in range(n)
                if (phases[i] - t) % interval_ms < step_ms
            ]
            await _record(redis, settings, due, start + t + step_ms)
            written = await drain_all(redis, pool, settings, budget=60)
            if counting:
                beats += len(due)
                rows += written
            else:
                rows_in_warmup += written
        counting = False
        tup_updated = await _settled_tup_updated(settings.database_url, updated_before + rows)
        return beats, statements, rows, tup_updated - updated_before
    finally:
        await redis.aclose()
        await pool.close()


async def _record(redis: Any, settings: Settings, due: list[tuple[str, int]], now: int) -> None:
    """Beats through the contract's script, one call per shard (as on a cluster)."""
    by_shard: dict[int, list[tuple[str, int]]] = {}
    for worker_id, at in due:
        by_shard.setdefault(keys.shard_of(worker_id, settings.shards), []).append((worker_id, at))
    persist_ms = int(settings.persist_interval * 1000)
    for items in by_shard.values():
        beats = [den_beat(worker_id, at) for worker_id, at in items]
        await RECORD_HEARTBEATS(redis, *record_call(beats, settings.shards, now, persist_ms))


async def _tup_updated(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        value = await conn.fetchval(
            "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'workers'"
        )
        return int(value)
    finally:
        await conn.close()


async def _settled_tup_updated(database_url: str, expected: int) -> int:
    """Backends report their counters shortly after a transaction; wait (bounded) for them."""
    value = await _tup_updated(database_url)
    for _ in range(40):
        if value >= expected:
            break
        await asyncio.sleep(0.25)
        value = await _tup_updated(database_url)
    return value

"""Flush throughput: dirty workers drained from Redis into Postgres by one flusher's drain."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

from bench import report
from bench.fleet import Fleet, beat_fleet, insert_fleet_rows, new_fleet, register_fleet
from bench.servers import TOKEN_KEYS, embedded_stores, time_limit, workdir
from shared.redis_conn import connect_redis
from shared.settings import Settings
from shared.timefmt import from_ms, now_ms


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="drains (median reported)")
    parser.add_argument("--chunk", type=int, default=Settings.flush_chunk, help="HB_FLUSH_CHUNK")


def run(args: argparse.Namespace) -> int:
    with time_limit(900), contextlib.ExitStack() as stack:
        directory = stack.enter_context(workdir())
        settings = stack.enter_context(embedded_stores(directory, flush_chunk=args.chunk))
        fleet = new_fleet(args.workers, TOKEN_KEYS)
        register_fleet(settings.redis_url, fleet, settings.shards)
        results = asyncio.run(_drains(settings, fleet, args.runs))

    rows = [
        [f"drain {i + 1}", n, seconds, n / seconds, persisted]
        for i, (n, seconds, persisted) in enumerate(results)
    ]
    median = report.median([n / seconds for n, seconds, _ in results])
    rows.append(["median", "", "", median, ""])
    report.print_figure(
        f"flush: {args.workers:,} dirty workers, one process, chunks of {settings.flush_chunk:,}, "
        f"{settings.shards} shards",
        ["run", "rows written", "seconds", "workers/s", "rows holding the beat"],
        rows,
    )
    print(report.NOISE_NOTE)
    return 0


async def _drains(settings: Settings, fleet: Fleet, runs: int) -> list[tuple[int, float, int]]:
    from flusher.drain import drain_all
    from flusher.persist import create_flusher_pool

    pool = await create_flusher_pool(settings.database_url)
    redis = connect_redis(settings)
    try:
        await insert_fleet_rows(pool, fleet, with_instances=False)
        base = now_ms() - 3_600_000
        results = []
        for i in range(runs):
            # Each round's beat is a persist interval newer, so every worker is dirty again.
            beat_ms = base + i * int(settings.persist_interval * 1000 + 1000)
            beat_fleet(settings.redis_url, fleet, settings.shards, beat_ms, 60_000)
            started = time.perf_counter()
            written = await drain_all(redis, pool, settings, budget=600)
            seconds = time.perf_counter() - started
            persisted = await pool.fetchval(
                "SELECT count(*) FROM workers WHERE last_heartbeat_at = $1", from_ms(beat_ms)
            )
            results.append((written, seconds, int(persisted)))
        return results
    finally:
        await redis.aclose()
        await pool.close()

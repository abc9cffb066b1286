"""Flush throughput: dirty workers drained from Redis into Postgres by one flusher's drain."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench import report
from bench.cpu import cpu_seconds, tree_cpu_seconds
from bench.fleet import Fleet, beat_fleet, insert_fleet_rows, new_fleet, register_fleet
from bench.servers import TOKEN_KEYS, StorePids, embedded_stores, time_limit, workdir
from shared.contract.claims import Claim, LiveColumns
from shared.contract.times import from_ms, now_ms
from shared.redis.connect import connect_redis
from shared.settings import Settings

HEADERS = [
    "run", "rows written", "workers/s", "Postgres alone, workers/s", "ratio",
    "rows holding the beat", "CPU s: flusher", "Redis", "Postgres",
]  # fmt: skip


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="drains (median reported)")
    parser.add_argument("--chunk", type=int, default=Settings.flush_chunk, help="HB_FLUSH_CHUNK")


def run(args: argparse.Namespace) -> int:
    with time_limit(900), contextlib.ExitStack() as stack:
        directory = stack.enter_context(workdir())
        settings, pids = stack.enter_context(embedded_stores(directory, flush_chunk=args.chunk))
        fleet = new_fleet(args.workers, TOKEN_KEYS)
        register_fleet(settings.redis_url, fleet, settings.shards)
        results = asyncio.run(_drains(settings, pids, fleet, args.runs))

    rows: list[list[object]] = [
        [
            f"drain {i + 1}",
            d.written,
            d.rate,
            d.reference_rate,
            d.rate / d.reference_rate,
            d.persisted,
            *d.cpu,
        ]
        for i, d in enumerate(results)
    ]
    rows.append(
        [
            "median",
            "",
            report.median([d.rate for d in results]),
            report.median([d.reference_rate for d in results]),
            report.median([d.rate / d.reference_rate for d in results]),
            "",
        ]
        + [report.median([d.cpu[p] for d in results]) for p in range(3)]
    )
    report.print_figure(
        f"flush: {args.workers:,} dirty workers, one process, chunks of {settings.flush_chunk:,}, "
        f"{settings.shards} shards",
        HEADERS,
        rows,
    )
    print(
        "Postgres alone: the drain's own UPDATEs of the same workers (one beat newer) from "
        "columns already in memory, right after each drain: Postgres' part, which no flusher "
        "avoids. CPU s: each process's CPU time during the drain (Postgres: all its "
        f"processes); over the drain's seconds, how much of the {os.cpu_count()} cores it used."
    )
    print(report.NOISE_NOTE)
    return 0


@dataclass(frozen=True)
class Drain:
    written: int
    seconds: float
    reference_seconds: float
    persisted: int
    cpu: list[float]  # flusher, Redis, Postgres; -1 where /proc is not there

    @property
    def rate(self) -> float:
        return self.written / self.seconds

    @property
    def reference_rate(self) -> float:
        return self.written / self.reference_seconds


async def _drains(settings: Settings, pids: StorePids, fleet: Fleet, runs: int) -> list[Drain]:
    from flusher.drain import drain_all
    from flusher.persist import create_flusher_pool, persist_rows

    pool = await create_flusher_pool(settings.database_url)
    redis = connect_redis(settings)
    try:
        await insert_fleet_rows(pool, fleet, with_instances=False)
        base = now_ms() - 3_600_000
        results = []
        claimed: list[LiveColumns] = []

        async def keep(claims: Sequence[Claim]) -> None:
            claimed.extend(c.live for c in claims)

        for i in range(runs):
            # Each round's beat is a persist interval newer, so every worker is dirty again.
            beat_ms = base + i * int(settings.persist_interval * 1000 + 1000)
            beat_fleet(settings.redis_url, fleet, settings.shards, beat_ms, 60_000)
            claimed.clear()
            cpu_before = _cpu(pids)
            started = time.perf_counter()
            written = await drain_all(redis, pool, settings, after_claim=keep, budget=600)
            seconds = time.perf_counter() - started
            cpu_after = _cpu(pids)
            persisted = await pool.fetchval(
                "SELECT count(*) FROM workers WHERE last_heartbeat_at = $1", from_ms(beat_ms)
            )
            newer = _one_beat_newer(LiveColumns.join(claimed))
            started = time.perf_counter()
            rewritten = await persist_rows(pool, newer, settings.flush_chunk)
            reference_seconds = time.perf_counter() - started
            if rewritten != written:
                raise RuntimeError(f"Postgres alone wrote {rewritten} rows, the drain {written}")
            results.append(
                Drain(
                    written,
                    seconds,
                    reference_seconds,
                    int(persisted),
                    _spent(cpu_before, cpu_after),
                )
            )
        return results
    finally:
        await redis.aclose()
        await pool.close()


def _one_beat_newer(live: LiveColumns) -> LiveColumns:
    """The columns with every heartbeat 1 ms later, so that Postgres writes each row again."""
    columns = list(live.columns)
    columns[1] = [str(int(hb) + 1).encode() for hb in columns[1]]
    return LiveColumns(columns)


def _cpu(pids: StorePids) -> list[float | None]:
    """CPU seconds so far of this process, redis-server and Postgres; None without /proc."""
    return [cpu_seconds(os.getpid()), cpu_seconds(pids.redis), tree_cpu_seconds(pids.postgres)]


def _spent(before: list[float | None], after: list[float | None]) -> list[float]:
    return [-1.0 if b is None or a is None else a - b for b, a in zip(before, after, strict=True)]

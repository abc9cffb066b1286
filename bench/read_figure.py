"""Read throughput: `GET /v1/workers?limit=50` from wrk over 10,000 workers (Postgres + Redis)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import asyncpg
import httpx

from bench import load, report
from bench.fleet import beat_fleet, insert_fleet_rows, new_fleet, register_fleet
from bench.servers import (
    TOKEN_KEYS,
    embedded_stores,
    server_env,
    time_limit,
    uvicorn,
    workdir,
)
from shared.settings import Settings
from shared.timefmt import now_ms


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=50, help="page size asked for")
    parser.add_argument("--runs", type=int, default=3, help="runs (median reported)")
    parser.add_argument("--seconds", type=int, default=10, help="length of one run")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--latency-connections", type=int, default=1, help="a second, lightly loaded series"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")


def run(args: argparse.Namespace) -> int:
    load.wrk_binary()
    budget = 240 + 2 * args.runs * args.seconds + args.warmup
    with time_limit(budget), contextlib.ExitStack() as stack:
        directory = stack.enter_context(workdir())
        settings = stack.enter_context(embedded_stores(directory))
        fleet = new_fleet(args.workers, TOKEN_KEYS)
        api_key = asyncio.run(_seed(settings, fleet))
        register_fleet(settings.redis_url, fleet, settings.shards)
        beat_fleet(settings.redis_url, fleet, settings.shards, now_ms(), 60_000)

        path = f"/v1/workers?limit={args.limit}"
        headers = {"x-api-key": api_key}
        server = stack.enter_context(
            uvicorn(
                "api.app:app",
                server_env(settings.redis_url, settings.database_url),
                ready_path="/health",
            )
        )
        page = httpx.get(server.base_url + path, headers=headers, timeout=10)
        page.raise_for_status()
        returned = len(page.json()["workers"])
        script = directory / "read.lua"
        script.write_text(load.get_script(path, headers))
        load.run_wrk(server.base_url, script, args.warmup, args.connections, args.threads)
        series: dict[int, list[load.LoadResult]] = {
            args.connections: [],
            args.latency_connections: [],
        }
        for _ in range(args.runs):  # alternate, so both series see the same noise
            for connections, runs in series.items():
                threads = min(args.threads, connections)
                runs.append(
                    load.run_wrk(server.base_url, script, args.seconds, connections, threads)
                )

    rows = [
        [
            connections,
            report.median([r.requests_per_s for r in runs]),
            report.median([r.p50_ms for r in runs]),
            report.median([r.p99_ms for r in runs]),
            sum(r.non2xx + r.socket_errors for r in runs),
        ]
        for connections, runs in series.items()
    ]
    report.print_figure(
        f"read: GET {path} over {args.workers:,} workers in one org, "
        f"median of {args.runs} x {args.seconds} s",
        ["connections", "requests/s", "p50 ms", "p99 ms", "non-2xx"],
        rows,
    )
    print(f"workers per page: {returned}; each merged with its Redis hash")
    print(report.NOISE_NOTE)
    return 0


async def _seed(settings: Settings, fleet: object) -> str:
    """Rows for the fleet and an org API key (through the API's own admin functions)."""
    from redis.asyncio import Redis

    from api.admin import create_api_key
    from bench.fleet import Fleet

    assert isinstance(fleet, Fleet)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    assert pool is not None
    redis = Redis.from_url(settings.redis_url)
    try:
        await insert_fleet_rows(pool, fleet, with_instances=True)
        _, secret = await create_api_key(pool, redis, fleet.org_id, "bench")
        return secret
    finally:
        await redis.aclose()
        await pool.close()

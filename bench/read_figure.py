"""Read latency and throughput: `GET /v1/workers?limit=50` from wrk over 10,000 workers, at
several concurrency levels, against one API process (Postgres + Redis)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import httpx

from bench import load, report
from bench.cpu import cpu_seconds
from bench.fleet import beat_fleet, insert_fleet_rows, new_fleet, register_fleet
from bench.servers import (
    TOKEN_KEYS,
    embedded_stores,
    server_env,
    time_limit,
    uvicorn,
    workdir,
)
from shared.contract.times import now_ms
from shared.settings import Settings

TARGET_P99_MS = 10.0


def _levels(text: str) -> list[int]:
    try:
        levels = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,4,16,64, got {text!r}") from None
    if not levels or levels[0] < 1:
        raise argparse.ArgumentTypeError("connection counts must be 1 or more")
    return levels


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=50, help="page size asked for")
    parser.add_argument(
        "--connections", type=_levels, default=[1, 4, 16, 64], metavar="N[,N...]",
        help="wrk connections of each level (default 1,4,16,64)",
    )  # fmt: skip
    parser.add_argument("--runs", type=int, default=3, help="runs per level (median reported)")
    parser.add_argument("--seconds", type=int, default=8, help="length of one run")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=2, help="wrk threads (never more than connections)"
    )


@dataclass(frozen=True)
class Level:
    """The runs of one concurrency level, and the API process's CPU time per page in each."""

    connections: int
    runs: list[load.LoadResult]
    cpu_ms_per_page: list[float]

    def median(self, field: str) -> float:
        return report.median([getattr(run, field) for run in self.runs])

    @property
    def failures(self) -> int:
        return sum(run.non2xx + run.socket_errors for run in self.runs)


def _connections(n: int) -> str:
    return f"{n} connection" if n == 1 else f"{n} connections"


def verdict(levels: Sequence[Level], target_ms: float = TARGET_P99_MS) -> str:
    """Up to which concurrency the median p99 stays within the target, in one sentence."""
    within = []
    for level in levels:  # levels ascend; the first one over the target ends the range
        if level.median("p99_ms") > target_ms:
            break
        within.append(level)
    if not within:
        first = levels[0]
        return (
            f"One API process misses p99 <= {target_ms:g} ms at every level measured "
            f"(p99 {first.median('p99_ms'):.1f} ms at {_connections(first.connections)})."
        )
    best = within[-1]
    sentence = (
        f"One API process keeps p99 <= {target_ms:g} ms up to {_connections(best.connections)} "
        f"(p99 {best.median('p99_ms'):.1f} ms at {best.median('requests_per_s'):,.0f} pages/s)"
    )
    if len(within) < len(levels):
        over = levels[len(within)]
        sentence += f"; at {_connections(over.connections)} p99 is {over.median('p99_ms'):.1f} ms"
    return sentence + "."


def run(args: argparse.Namespace) -> int:
    load.wrk_binary()
    budget = 240 + 2 * len(args.connections) * args.runs * (args.seconds + 5) + 2 * args.warmup
    with time_limit(budget), contextlib.ExitStack() as stack:
        directory = stack.enter_context(workdir())
        settings, _ = stack.enter_context(embedded_stores(directory))
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
        page_file = directory / "page.json"
        page_file.write_bytes(page.content)
        reference = stack.enter_context(
            uvicorn(
                "bench.reference_app:app",
                server_env(settings.redis_url, HB_BENCH_PAGE_FILE=str(page_file)),
            )
        )
        script = directory / "read.lua"
        script.write_text(load.get_script(path, headers))
        assert server.proc is not None
        pid = server.proc.pid
        most = max(args.connections)
        for warm in (server, reference):
            load.run_wrk(warm.base_url, script, args.warmup, most, min(args.threads, most))

        runs: dict[int, list[load.LoadResult]] = {c: [] for c in args.connections}
        references: dict[int, list[load.LoadResult]] = {c: [] for c in args.connections}
        cpu: dict[int, list[float]] = {c: [] for c in args.connections}
        for _ in range(args.runs):  # levels and apps alternate, so all see the same noise
            for connections in args.connections:
                threads = min(args.threads, connections)
                before = cpu_seconds(pid)
                result = load.run_wrk(server.base_url, script, args.seconds, connections, threads)
                after = cpu_seconds(pid)
                if before is not None and after is not None:
                    pages = max(result.requests_per_s * args.seconds, 1)
                    cpu[connections].append(1000 * (after - before) / pages)
                runs[connections].append(result)
                references[connections].append(
                    load.run_wrk(reference.base_url, script, args.seconds, connections, threads)
                )
        degraded = "X-Heartbeat-Data" in httpx.get(server.base_url + path, headers=headers).headers

    levels = [Level(c, runs[c], cpu[c]) for c in args.connections]
    report.print_figure(
        f"read: GET {path} over {args.workers:,} workers in one org, one API process, "
        f"median of {args.runs} x {args.seconds} s per level",
        [
            "connections", "requests/s", "p50 ms", "p99 ms", "API CPU ms/page", "non-2xx",
            "reference requests/s", "reference p99 ms", "ratio",
        ],
        [
            [
                level.connections,
                level.median("requests_per_s"),
                level.median("p50_ms"),
                level.median("p99_ms"),
                report.median(level.cpu_ms_per_page) if level.cpu_ms_per_page else "-",
                level.failures,
                report.median([run.requests_per_s for run in references[level.connections]]),
                report.median([run.p99_ms for run in references[level.connections]]),
                report.median([
                    run.requests_per_s / ref.requests_per_s
                    for run, ref in zip(level.runs, references[level.connections], strict=True)
                ]),
            ]
            for level in levels
        ],
    )  # fmt: skip
    print(
        "reference: bare Starlette answering the same page from memory, same uvicorn settings, "
        "run right after each run of the API; ratio: the API's requests/s to it, run by run."
    )
    print("each run, in order (requests/s, p99 ms):")
    for level in levels:
        each = "; ".join(f"{run.requests_per_s:,.0f}, {run.p99_ms:.1f}" for run in level.runs)
        print(f"  {_connections(level.connections)}: {each}")
    print(f"workers per page: {returned}; each merged with its Redis hash")
    if degraded:
        print("WARNING: the API served durable-only pages (Redis unreachable); figures are off")
    print(verdict(levels))
    print(
        "wrk keeps every connection busy (a closed loop): past saturation, more connections only "
        "add queueing, about connections / (pages/s) each. Run more API processes for more."
    )
    print(report.NOISE_NOTE)
    return 0


async def _seed(settings: Settings, fleet: object) -> str:
    """Rows for the fleet and an org API key (through the API's own management functions)."""
    from redis.asyncio import Redis

    from api.management import create_api_key
    from bench.fleet import Fleet

    assert isinstance(fleet, Fleet)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    assert pool is not None
    redis = Redis.from_url(settings.redis_url)
    try:
        await insert_fleet_rows(pool, fleet, with_instances=True)
        _, secret, _ = await create_api_key(pool, redis, fleet.org_id, "bench")
        return secret
    finally:
        await redis.aclose()
        await pool.close()

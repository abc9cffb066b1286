"""Fleet queries over one large org (issue 14's targets), on embedded Redis and Postgres:

1. reads: `GET /v1/workers/summary` and filtered pages of `GET /v1/workers`, wrk at 1
   connection against one API process, beside bare Starlette serving a stored page;
2. what the fleet index costs ingest: the real app against one whose record script has the
   index and revived statements taken out (`bench/unindexed_ingest.py`), alternating runs;
3. one liveness sweep (`flusher.liveness_sweep.sweep_liveness`) in which `--transitions`
   workers cross the stale threshold, then one in which they cross the offline one;
4. detection delay: a real `hb flusher` and ingest with short thresholds; from each threshold's
   crossing to its event's row in Postgres, in flush intervals.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from redis import Redis

from bench import load, report
from bench.cpu import cpu_seconds
from bench.fleet import Fleet, den_beat, insert_fleet_rows, new_fleet
from bench.servers import (
    TOKEN_KEYS,
    embedded_stores,
    server_env,
    time_limit,
    uvicorn,
    workdir,
)
from bench.unindexed_record import without_fleet_index
from shared.contract import keys
from shared.contract.liveness import Liveness
from shared.contract.record import RECORD_HEARTBEATS, RESULT_WIDTH, record_call
from shared.contract.times import from_ms, now_ms, parse_ms
from shared.settings import OFFLINE_AFTER_BEATS, STALE_AFTER_BEATS, Settings

PARTS = ("reads", "ingest", "sweep", "detect")
# The fleet's liveness while the reads are measured, in this order of the shuffled workers.
MIX = ((Liveness.ONLINE, 0.85), (Liveness.STALE, 0.05), (Liveness.OFFLINE, 0.08),
       (Liveness.NEVER, 0.02))  # fmt: skip
TARGET_P99_MS = 10.0
TARGET_INDEX_COST = 0.05
TARGET_DELAY = 2.0  # flush intervals
BODY = '{"isActiveRecently":true,"openSessionCount":1}'
HB = Path(sys.executable).parent / "hb"
PERSIST_MS = 60_000
POLL_S = 0.02  # how often the detection part looks for new events in Postgres


def _parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"parts are {', '.join(PARTS)}; got {text!r}")
    return [p for p in PARTS if p in parts]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=100_000, help="workers in the one org")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--seconds", type=int, default=8, help="length of one wrk run of reads")
    parser.add_argument(
        "--ingest-seconds", type=int, default=10, help="length of one wrk run of ingest"
    )
    parser.add_argument("--connections", type=int, default=64, help="wrk connections of ingest")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per app")
    parser.add_argument(
        "--transitions", type=int, default=10_000, help="workers crossing a threshold per sweep"
    )
    parser.add_argument(
        "--detect-workers", type=int, default=300,
        help="workers per round of the detection part, each beating once",
    )  # fmt: skip
    parser.add_argument(
        "--detect-interval", type=float, default=2.0,
        help="HB_HEARTBEAT_INTERVAL of the detection part (stale and offline after 2.5 and 5 of "
        "it); HB_FLUSH_INTERVAL is 1",
    )  # fmt: skip
    parser.add_argument(
        "--parts", type=_parts, default=list(PARTS), metavar="PART[,PART...]",
        help=f"which parts to run (default all: {','.join(PARTS)})",
    )  # fmt: skip


def command(args: argparse.Namespace) -> str:
    """The command line that measures the same figure."""
    text = (
        f"python -m bench fleet --workers {args.workers} --runs {args.runs} "
        f"--seconds {args.seconds} --ingest-seconds {args.ingest_seconds} "
        f"--connections {args.connections} --warmup {args.warmup} "
        f"--transitions {args.transitions} --detect-workers {args.detect_workers} "
        f"--detect-interval {args.detect_interval:g}"
    )
    if list(args.parts) != list(PARTS):
        text += f" --parts {','.join(args.parts)}"
    return text


def run(args: argparse.Namespace) -> int:
    if "sweep" in args.parts and args.workers < (args.runs + 1) * args.transitions:
        raise SystemExit("--workers must be at least (--runs + 1) x --transitions")
    if {"reads", "ingest"} & set(args.parts):
        load.wrk_binary()  # before starting anything: a missing wrk says how to install it
    budget = (
        600 + args.workers // 200
        + args.runs * (6 * (args.seconds + 15) + 2 * (args.ingest_seconds + 10) + 60)
        + args.runs * (30 + 10 * args.detect_interval)
    )  # fmt: skip
    print(f"command: {command(args)}")
    with time_limit(int(budget)), workdir() as directory:
        if {"reads", "ingest", "sweep"} & set(args.parts):
            _large_fleet(args, directory / "fleet")
        if "detect" in args.parts:
            _detection(args, directory / "detect")
    print(report.NOISE_NOTE)
    return 0


# The fleet and its beats


class Beater:
    """Beats written through the contract's record script, as ingest writes them (500 a call,
    one pipeline per 10 calls); every beat must be accepted."""

    def __init__(self, redis_url: str, shards: int) -> None:
        self.client = Redis.from_url(redis_url)
        self.shards = shards
        self.sha: str = str(self.client.script_load(RECORD_HEARTBEATS.source))

    def close(self) -> None:
        self.client.close()

    def beat(self, beats: Sequence[tuple[str, int]], now: int) -> None:
        """One Den beat per (worker id, heartbeat ms)."""
        for start in range(0, len(beats), 5000):
            pipe = self.client.pipeline(transaction=False)
            for at in range(start, min(start + 5000, len(beats)), 500):
                chunk = [den_beat(w, hb) for w, hb in beats[at : at + 500]]
                call_keys, call_args = record_call(chunk, self.shards, now, PERSIST_MS)
                pipe.evalsha(self.sha, len(call_keys), *call_keys, *call_args)
            for reply in pipe.execute():
                codes = set(reply[0::RESULT_WIDTH])
                if codes != {b"200"}:
                    raise RuntimeError(f"the record script refused beats: {sorted(codes)}")


@dataclass(frozen=True)
class Mix:
    """Which workers are of which liveness, and how long before `now` each last beat."""

    workers: dict[Liveness, list[str]]
    age_ms: dict[str, int]

    def beats(self, now: int) -> list[tuple[str, int]]:
        return [(worker_id, now - age) for worker_id, age in self.age_ms.items()]


def liveness_mix(worker_ids: Sequence[str], settings: Settings, seed: int = 14) -> Mix:
    """MIX over the workers, shuffled (so each liveness is spread through the list's order),
    with beat ages well inside each range: the mix holds for tens of seconds after a beat."""
    rng = random.Random(seed)
    shuffled = list(worker_ids)
    rng.shuffle(shuffled)
    stale, offline = settings.stale_after * 1000, settings.offline_after * 1000
    ages = {
        Liveness.ONLINE: (0.0, 0.4 * stale),
        Liveness.STALE: (stale + 0.2 * (offline - stale), stale + 0.6 * (offline - stale)),
        Liveness.OFFLINE: (offline + 60_000, offline + 3_600_000),
    }
    workers: dict[Liveness, list[str]] = {}
    age_ms: dict[str, int] = {}
    start = 0
    for i, (liveness, share) in enumerate(MIX):
        end = len(shuffled) if i == len(MIX) - 1 else start + round(share * len(shuffled))
        workers[liveness] = shuffled[start:end]
        if liveness in ages:
            low, high = ages[liveness]
            for worker_id in workers[liveness]:
                age_ms[worker_id] = int(rng.uniform(low, high))
        start = end
    return Mix(workers, age_ms)


async def _seed(settings: Settings, fleet: Fleet) -> tuple[str, float, float]:
    """Rows in bulk (the triggers of migration 0006 write the created events and the counts),
    then the registry as the flusher's reconcile writes it. Returns an org API key and the
    seconds each step took."""
    from api.management import create_api_key
    from flusher.persist import create_flusher_pool
    from flusher.reconcile import reconcile_registry
    from shared.redis.connect import connect_redis

    pool = await create_flusher_pool(settings.database_url)
    redis = connect_redis(settings)
    try:
        started = time.perf_counter()
        await insert_fleet_rows(pool, fleet, with_instances=True)
        rows_s = time.perf_counter() - started
        started = time.perf_counter()
        await reconcile_registry(redis, pool, settings)
        registry_s = time.perf_counter() - started
        _, secret, _ = await create_api_key(pool, redis, fleet.org_id, "bench")
        return secret, rows_s, registry_s
    finally:
        await redis.aclose()
        await pool.close()


async def _sweep(settings: Settings, now: int) -> tuple[int, int]:
    """One liveness sweep at `now`, as the flusher runs it: (events found, events written)."""
    from flusher.liveness_sweep import sweep_liveness
    from flusher.persist import create_flusher_pool
    from shared.redis.connect import connect_redis

    pool = await create_flusher_pool(settings.database_url)
    redis = connect_redis(settings)
    try:
        swept = await sweep_liveness(redis, pool, settings, now)
        return swept.found, swept.written
    finally:
        await redis.aclose()
        await pool.close()


def _large_fleet(args: argparse.Namespace, directory: Path) -> None:
    with contextlib.ExitStack() as stack:
        settings, pids = stack.enter_context(embedded_stores(directory))
        fleet = new_fleet(args.workers, TOKEN_KEYS)
        api_key, rows_s, registry_s = asyncio.run(_seed(settings, fleet))
        beater = Beater(settings.redis_url, settings.shards)
        stack.callback(beater.close)
        mix = liveness_mix(fleet.worker_ids, settings)
        started = time.perf_counter()
        beater.beat(mix.beats(now_ms()), now_ms())
        beat_s = time.perf_counter() - started
        print(
            f"\nseeding {args.workers:,} workers in one org: rows, instances and their triggers' "
            f"events and counts in bulk SQL {rows_s:.1f} s; registry (reconcile_registry) "
            f"{registry_s:.1f} s; one beat each through the record script {beat_s:.1f} s"
        )
        if "reads" in args.parts:
            _reads(args, settings, fleet, api_key, beater, mix, directory)
        if "ingest" in args.parts:
            _ingest(args, settings, pids.redis, fleet, beater, directory)
        if "sweep" in args.parts:
            _sweeps(args, settings, fleet, beater)


# Part 1: reads


READS = (
    ("summary", "/v1/workers/summary", None),
    ("liveness=offline", "/v1/workers?limit=50&liveness=offline", Liveness.OFFLINE),
    ("liveness=online", "/v1/workers?limit=50&liveness=online", Liveness.ONLINE),
    ("liveness=stale", "/v1/workers?limit=50&liveness=stale", Liveness.STALE),
    ("unfiltered", "/v1/workers?limit=50", None),
)
REFERENCE = "reference: bare Starlette, stored page"
READ_TARGETS = {"summary", "liveness=offline"}


def _reads(
    args: argparse.Namespace,
    settings: Settings,
    fleet: Fleet,
    api_key: str,
    beater: Beater,
    mix: Mix,
    directory: Path,
) -> None:
    headers = {"x-api-key": api_key}
    expected = {lv.value: len(ids) for lv, ids in mix.workers.items()}
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(
            uvicorn("api.app:app", server_env(settings.redis_url, settings.database_url))
        )
        beater.beat(mix.beats(now_ms()), now_ms())
        checks: list[str] = []
        page_file = directory / "page.json"
        for name, path, liveness in READS:
            got = httpx.get(api.base_url + path, headers=headers, timeout=30)
            got.raise_for_status()
            if "X-Heartbeat-Data" in got.headers:
                checks.append(f"WARNING: {name} was served durable-only (Redis unreachable)")
            body = got.json()
            if path.endswith("/summary"):
                ok = body["liveness"] == expected and body["total"] == len(fleet.worker_ids)
                checks.append(f"summary {body['liveness']}, total {body['total']:,}" + (
                    "" if ok else f"; WARNING: expected {expected}"))  # fmt: skip
                continue
            workers = body["workers"]
            if liveness is Liveness.OFFLINE:
                page_file.write_bytes(got.content)
            wrong = [w["id"] for w in workers if liveness and w["liveness"] != liveness.value]
            checks.append(
                f"{name}: {len(workers)} workers"
                + (f"; WARNING: {len(wrong)} of another liveness" if wrong else "")
            )
        reference = stack.enter_context(
            uvicorn(
                "bench.reference_app:app",
                server_env(settings.redis_url, HB_BENCH_PAGE_FILE=str(page_file)),
            )
        )
        scripts: dict[str, Path] = {}
        for name, path, _ in READS:
            scripts[name] = directory / f"read-{len(scripts)}.lua"
            scripts[name].write_text(load.get_script(path, headers))
        scripts[REFERENCE] = scripts["liveness=offline"]
        servers = {name: api for name, _, _ in READS} | {REFERENCE: reference}
        assert api.proc is not None
        pid = api.proc.pid

        def hit(name: str, seconds: int) -> tuple[load.LoadResult, float | None]:
            beater.beat(mix.beats(now_ms()), now_ms())  # the fleet keeps beating: the mix holds
            before = cpu_seconds(pid)
            result = load.run_wrk(servers[name].base_url, scripts[name], seconds, 1, 1)
            after = cpu_seconds(pid)
            if before is None or after is None or name == REFERENCE:
                return result, None
            return result, 1000 * (after - before) / max(result.requests_per_s * seconds, 1)

        for name in servers:
            hit(name, args.warmup)
        results: dict[str, list[load.LoadResult]] = {name: [] for name in servers}
        cpu: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(args.runs):
            for name in servers:  # alternate, so all see the same noise
                result, ms = hit(name, args.seconds)
                results[name].append(result)
                if ms is not None:
                    cpu[name].append(ms)

    rows = []
    for name, runs in results.items():
        p99 = report.median([r.p99_ms for r in runs])
        rows.append([
            name,
            report.median([r.requests_per_s for r in runs]),
            report.median([r.p50_ms for r in runs]),
            p99,
            report.median(cpu[name]) if cpu[name] else "-",
            sum(r.non2xx + r.socket_errors for r in runs),
            f"p99 <= {TARGET_P99_MS:g} ms" if name in READ_TARGETS else "-",
            ("yes" if p99 <= TARGET_P99_MS else "no") if name in READ_TARGETS else "-",
        ])  # fmt: skip
    share = ", ".join(f"{share:.0%} {lv.value}" for lv, share in MIX)
    report.print_figure(
        f"fleet part 1, reads: {len(fleet.worker_ids):,} workers in one org ({share}), one API "
        f"process, wrk -t1 -c1, median of {args.runs} x {args.seconds} s",
        ["request", "requests/s", "p50 ms", "p99 ms", "API CPU ms/request", "non-2xx",
         "target", "met"],
        rows,
    )  # fmt: skip
    print(f"wrk: wrk -t 1 -c 1 -d {args.seconds}s -s <GET script with x-api-key> <url>")
    print("each run, in order (requests/s, p99 ms):")
    for name, runs in results.items():
        print(f"  {name}: " + "; ".join(f"{r.requests_per_s:,.0f}, {r.p99_ms:.1f}" for r in runs))
    print(
        "before each run the fleet beats once more through the record script (not timed), with "
        "the same ages, so the mix holds; reference: the same uvicorn settings answering the "
        "stored liveness=offline page from memory."
    )
    for line in checks:
        print("  check: " + line)


# Part 2: what the index costs ingest


WITH_INDEX, WITHOUT_INDEX = "ingest, fleet index", "ingest, index taken out"


def _index_lag(client: Redis, fleet: Fleet, shards: int, sample: int = 200) -> int:
    """Of the first `sample` workers, how many have a newer heartbeat than their index entry."""
    pipe = client.pipeline(transaction=False)
    ids = fleet.worker_ids[:sample]
    for worker_id in ids:
        shard = keys.shard_of(worker_id, shards)
        pipe.hget(keys.worker_key(worker_id, shards), keys.F_HEARTBEAT)
        pipe.zscore(keys.seen_key(shard, fleet.org_id), worker_id)
    replies = pipe.execute()
    return sum(
        1
        for hb, score in zip(replies[0::2], replies[1::2], strict=True)
        if hb is not None and (score is None or int(hb) > score)
    )


def _ingest(
    args: argparse.Namespace,
    settings: Settings,
    redis_pid: int,
    fleet: Fleet,
    beater: Beater,
    directory: Path,
) -> None:
    _, removed = without_fleet_index(RECORD_HEARTBEATS.source)
    # Steady state first: every worker beat and announced online, so a beat neither revives
    # a worker nor adds a new index entry.
    now = now_ms()
    beater.beat([(w, now) for w in fleet.worker_ids], now)
    asyncio.run(_sweep(settings, now_ms()))
    script = directory / "beats.lua"
    script.write_text(load.heartbeat_script(fleet.worker_ids, fleet.tokens, BODY))
    env = server_env(settings.redis_url, HB_SHARDS=str(settings.shards))
    lag_after: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        apps = {
            WITH_INDEX: stack.enter_context(uvicorn("ingest.app:app", env)),
            WITHOUT_INDEX: stack.enter_context(uvicorn("bench.unindexed_ingest:app", env)),
        }

        cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in apps}

        def hit(name: str, seconds: int) -> load.LoadResult:
            proc = apps[name].proc
            assert proc is not None
            redis_before, app_before = cpu_seconds(redis_pid), cpu_seconds(proc.pid)
            result = load.run_wrk(apps[name].base_url, script, seconds, args.connections, 2)
            redis_after, app_after = cpu_seconds(redis_pid), cpu_seconds(proc.pid)
            beats = max(result.requests_per_s * seconds, 1) / 1e6
            if None not in (redis_before, app_before, redis_after, app_after):
                assert redis_before is not None and redis_after is not None
                assert app_before is not None and app_after is not None
                spent = ((redis_after - redis_before) / beats, (app_after - app_before) / beats)
                cpu[name].append(spent)
            return result

        for name in apps:
            hit(name, args.warmup)
        for name in apps:
            cpu[name].clear()
        results: dict[str, list[load.LoadResult]] = {name: [] for name in apps}
        for _ in range(args.runs):
            for name in apps:  # with, without, with, ...: both see the same noise
                results[name].append(hit(name, args.ingest_seconds))
                lag_after[name] = _index_lag(beater.client, fleet, settings.shards)

    rows: list[list[object]] = []
    for name, runs in results.items():
        rows.append([
            name,
            report.median([r.requests_per_s for r in runs]),
            report.median([r.p50_ms for r in runs]),
            report.median([r.p99_ms for r in runs]),
            report.median([c[0] for c in cpu[name]]) if cpu[name] else "-",
            report.median([c[1] for c in cpu[name]]) if cpu[name] else "-",
            sum(r.non2xx + r.socket_errors for r in runs),
        ])  # fmt: skip
    with_runs, without_runs = results[WITH_INDEX], results[WITHOUT_INDEX]
    ratio = report.median([r.requests_per_s for r in with_runs]) / report.median(
        [r.requests_per_s for r in without_runs]
    )
    each = [
        a.requests_per_s / b.requests_per_s for a, b in zip(with_runs, without_runs, strict=True)
    ]
    rows.append(["ratio with / without", ratio, "", "", "", "", ""])
    report.print_figure(
        f"fleet part 2, ingest: Den beats over {len(fleet.worker_ids):,} workers in one org, "
        f"{args.connections} connections, runs alternating, median of {args.runs} x "
        f"{args.ingest_seconds} s",
        ["app", "beats/s", "p50 ms", "p99 ms", "Redis CPU us/beat", "ingest CPU us/beat",
         "non-2xx"],
        rows,
    )  # fmt: skip
    cost = 1 - ratio
    print(
        f"wrk: wrk -t 2 -c {args.connections} -d {args.ingest_seconds}s -s <Den beats, each "
        "worker's token> <url>"
    )
    print(f"per-run ratios with / without: {', '.join(f'{r:.3f}' for r in each)}")
    print(
        f"index cost: {cost:.1%} of beats/s as the ratio of the medians, "
        f"{1 - report.median(each):.1%} as the median of the per-run ratios "
        f"(target < {TARGET_INDEX_COST:.0%}: {'met' if cost < TARGET_INDEX_COST else 'not met'})"
    )
    print(
        f"without: record_heartbeats.lua with {removed} statements taken out (the ZADDs of the "
        "seen: index and of the revived set, with their conditions); of 200 sampled workers, "
        f"{lag_after.get(WITHOUT_INDEX, 0)} had a beat newer than their index entry after its "
        f"last run, {lag_after.get(WITH_INDEX, 0)} after the index's."
    )


# Part 3: one sweep, many transitions


@dataclass(frozen=True)
class SweepRun:
    stale_s: float
    stale_found: int
    stale_written: int
    offline_s: float
    offline_found: int
    offline_written: int
    stored: dict[str, int]  # events of the crossing workers in Postgres, by type


def _sweeps(args: argparse.Namespace, settings: Settings, fleet: Fleet, beater: Beater) -> None:
    runs = asyncio.run(_sweep_runs(args, settings, fleet, beater))
    rows: list[list[object]] = []
    for i, r in enumerate(runs):
        rows.append([
            f"run {i + 1}", args.transitions, r.stale_s, r.stale_found, r.stale_written,
            r.offline_s, r.offline_found, r.offline_written,
            f"{r.stored.get('worker.stale', 0):,} / {r.stored.get('worker.offline', 0):,}",
        ])  # fmt: skip
    rows.append([
        "median", "", report.median([r.stale_s for r in runs]), "", "",
        report.median([r.offline_s for r in runs]), "", "", "",
    ])  # fmt: skip
    report.print_figure(
        f"fleet part 3, sweep: {args.transitions:,} of {len(fleet.worker_ids):,} workers stop "
        "beating; one sweep_liveness call after they cross the stale threshold, one after "
        "the offline one",
        ["run", "crossing", "stale sweep s", "found", "written", "offline sweep s", "found",
         "written", "in Postgres: stale / offline"],
        rows,
    )  # fmt: skip
    ok = all(
        r.stale_found == r.stale_written == r.offline_found == r.offline_written
        == r.stored.get("worker.stale") == r.stored.get("worker.offline") == args.transitions
        for r in runs
    )  # fmt: skip
    print(
        "call: flusher.liveness_sweep.sweep_liveness(redis, pool, settings, now), now 1 s past "
        "the crossing (all shards' script calls, then the events' INSERT); the fleet's other "
        "workers beat just before each sweep, the crossing ones last beat at one instant"
    )
    print(
        f"every sweep found and wrote {args.transitions:,} events per threshold, and Postgres "
        f"holds them: {'yes' if ok else 'NO'}"
    )


async def _sweep_runs(
    args: argparse.Namespace, settings: Settings, fleet: Fleet, beater: Beater
) -> list[SweepRun]:
    from flusher.liveness_sweep import sweep_liveness, thresholds_ms
    from flusher.persist import create_flusher_pool
    from shared.redis.connect import connect_redis

    stale_ms, offline_ms = thresholds_ms(settings)
    pool = await create_flusher_pool(settings.database_url)
    redis = connect_redis(settings)
    try:
        # Everyone beats and is announced online (the sweep's clock runs ahead of the wall
        # clock from here on: this Redis and Postgres serve nothing else).
        t = now_ms() + 1000
        beater.beat([(w, t) for w in fleet.worker_ids], t)
        await sweep_liveness(redis, pool, settings, t + 1000)
        runs = []
        for i in range(args.runs):
            crossing = fleet.worker_ids[i * args.transitions : (i + 1) * args.transitions]
            others = fleet.worker_ids[(i + 1) * args.transitions :]  # earlier ones stay silent
            t0 = t + 2000 + i * (offline_ms + 10_000)
            beater.beat([(w, t0) for w in crossing + others], t0)
            timed = []
            for after in (stale_ms, offline_ms):
                at = t0 + after + 1000
                beater.beat([(w, at - 500) for w in others], at - 500)
                started = time.perf_counter()
                swept = await sweep_liveness(redis, pool, settings, at)
                timed.append((time.perf_counter() - started, swept.found, swept.written))
            rows = await pool.fetch(
                "SELECT type, count(*) AS n FROM events WHERE worker_id = ANY($1) AND at >= $2"
                " GROUP BY type",
                crossing, from_ms(t0),
            )  # fmt: skip
            runs.append(SweepRun(*timed[0], *timed[1], {r["type"]: r["n"] for r in rows}))
        return runs
    finally:
        await redis.aclose()
        await pool.close()


# Part 4: detection delay, with real processes


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@dataclass(frozen=True)
class Detected:
    type: str
    delay_ms: float  # from the crossing (the beat, for online) to the row seen in Postgres
    at_matches: bool  # the event's `at` is the crossing instant


def _detection(args: argparse.Namespace, directory: Path) -> None:
    interval = args.detect_interval
    overrides = {
        "heartbeat_interval": interval,
        "stale_after": interval * STALE_AFTER_BEATS,
        "offline_after": interval * OFFLINE_AFTER_BEATS,
        "flush_interval": 1.0,
    }
    with contextlib.ExitStack() as stack:
        settings, _ = stack.enter_context(embedded_stores(directory, **overrides))
        fleet = new_fleet(args.detect_workers * args.runs, TOKEN_KEYS)
        asyncio.run(_insert_rows(settings, fleet))
        env = server_env(
            settings.redis_url, settings.database_url,
            HB_HEARTBEAT_INTERVAL=f"{interval:g}", HB_FLUSH_INTERVAL="1",
        )  # fmt: skip
        flusher = stack.enter_context(_process([str(HB), "flusher"], env, directory / "fl.log"))
        ingest = stack.enter_context(uvicorn("ingest.app:app", env))
        _wait_for_sweeps(settings, flusher, directory / "fl.log")
        detected: list[Detected] = []
        for i in range(args.runs):
            ids = fleet.worker_ids[i * args.detect_workers : (i + 1) * args.detect_workers]
            tokens = fleet.tokens[i * args.detect_workers : (i + 1) * args.detect_workers]
            detected += asyncio.run(_detect_round(settings, ingest.base_url, ids, tokens))

    expected = args.detect_workers * args.runs
    rows: list[list[object]] = []
    for kind, crossing in (
        ("worker.online", "the beat"),
        ("worker.stale", "beat + HB_STALE_AFTER"),
        ("worker.offline", "beat + HB_OFFLINE_AFTER"),
    ):
        delays = sorted(d.delay_ms / 1000 for d in detected if d.type == kind)  # flush = 1 s
        rows.append([
            kind, crossing, f"{len(delays):,} of {expected:,}",
            report.median(delays) if delays else "-",
            delays[int(0.9 * (len(delays) - 1))] if delays else "-",
            delays[-1] if delays else "-",
            f"<= {TARGET_DELAY:g}" if kind != "worker.online" else "-",
            "-" if kind == "worker.online" else (
                "yes" if len(delays) == expected and delays[-1] <= TARGET_DELAY else "no"),
        ])  # fmt: skip
    report.print_figure(
        f"fleet part 4, detection: hb flusher + ingest, HB_HEARTBEAT_INTERVAL={interval:g} "
        f"(stale after {overrides['stale_after']:g} s, offline after "
        f"{overrides['offline_after']:g} s), HB_FLUSH_INTERVAL=1; {args.runs} rounds of "
        f"{args.detect_workers:,} workers beating once through ingest, spread over 3 s",
        ["event", "crossing", "seen", "median delay x flush", "p90", "max", "target", "met"],
        rows,
    )
    mismatched = sum(1 for d in detected if not d.at_matches)
    print(
        "delay: from the crossing instant (the beat's lastHeartbeatAt as ingest answered it, "
        f"plus the threshold) to the event's row being visible in Postgres (polled every "
        f"{POLL_S * 1000:g} ms), in HB_FLUSH_INTERVALs; events whose `at` is not that "
        f"instant: {mismatched}"
    )
    print("processes: hb flusher; uvicorn ingest.app:app; the same HB_* settings")


async def _insert_rows(settings: Settings, fleet: Fleet) -> None:
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        await insert_fleet_rows(pool, fleet, with_instances=False)
    finally:
        await pool.close()


def _wait_for_sweeps(settings: Settings, flusher: subprocess.Popen[bytes], log: Path) -> None:
    """Until the flusher has rebuilt the registry and swept every shard once (a first sweep
    only sets the shard's watermark)."""
    client = Redis.from_url(settings.redis_url)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if flusher.poll() is not None:
                raise RuntimeError(f"hb flusher exited: {log.read_text(errors='replace')}")
            marks = [keys.REGISTRY_SYNCED] + [keys.swept_key(s) for s in range(settings.shards)]
            if client.exists(*marks) == len(marks):
                time.sleep(1.5)  # one more sweep, after the watermarks
                return
            time.sleep(0.2)
        raise RuntimeError("hb flusher did not reconcile and sweep within 60 s")
    finally:
        client.close()


async def _detect_round(
    settings: Settings, ingest_url: str, ids: Sequence[str], tokens: Sequence[str]
) -> list[Detected]:
    from flusher.liveness_sweep import thresholds_ms

    stale_ms, offline_ms = thresholds_ms(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        last_id = await conn.fetchval("SELECT coalesce(max(id), 0) FROM events")
        expected: dict[tuple[str, str], int] = {}
        seen: dict[tuple[str, str], tuple[float, int]] = {}

        async def beat_all() -> None:
            rng = random.Random(len(ids))
            offsets = sorted(rng.uniform(0, 3.0) for _ in ids)
            start = time.monotonic()
            async with httpx.AsyncClient(base_url=ingest_url, timeout=10) as client:
                for worker_id, token, offset in zip(ids, tokens, offsets, strict=True):
                    await asyncio.sleep(max(0.0, start + offset - time.monotonic()))
                    r = await client.post(
                        f"/v1/workers/{worker_id}/activity-heartbeat",
                        content=BODY,
                        headers={"Authorization": f"Bearer {token}",
                                 "Content-Type": "application/json"},
                    )  # fmt: skip
                    r.raise_for_status()
                    hb = parse_ms(r.json()["lastHeartbeatAt"])
                    expected[("worker.online", worker_id)] = hb
                    expected[("worker.stale", worker_id)] = hb + stale_ms
                    expected[("worker.offline", worker_id)] = hb + offline_ms

        beats = asyncio.create_task(beat_all())
        deadline = time.monotonic() + 3.0 + settings.offline_after + 15
        wanted = ["worker.online", "worker.stale", "worker.offline"]
        mine = set(ids)
        while time.monotonic() < deadline:
            rows = await conn.fetch(
                "SELECT id, type, worker_id, floor(extract(epoch FROM at) * 1000)::int8 AS at"
                " FROM events WHERE id > $1 AND type = ANY($2) ORDER BY id",
                last_id, wanted,
            )  # fmt: skip
            seen_ms = time.time() * 1000
            for row in rows:
                last_id = row["id"]
                if row["worker_id"] in mine:
                    seen.setdefault((row["type"], row["worker_id"]), (seen_ms, row["at"]))
            if beats.done() and len(seen) >= 3 * len(ids):
                break
            await asyncio.sleep(POLL_S)
        await beats
        return [
            Detected(kind, seen_ms - expected[(kind, worker_id)], at == expected[(kind, worker_id)])
            for (kind, worker_id), (seen_ms, at) in seen.items()
        ]
    finally:
        await conn.close()

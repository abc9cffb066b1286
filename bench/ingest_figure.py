"""Ingest throughput: Den beats from wrk against bare Starlette (a) and the real ingest app (b);
optionally, on the same ingest process, a fleet that mixes Den beats with lightweight Kubiya
beats on the per-worker route (e), and Kubiya's lightweight beats alone (f)."""

from __future__ import annotations

import argparse
import contextlib

from redis import Redis

from bench import load, report
from bench.fleet import Fleet, new_fleet, register_fleet, register_org_api_key
from bench.servers import (
    TOKEN_KEYS,
    embedded_redis,
    server_env,
    time_limit,
    uvicorn,
    workdir,
)
from shared.contract import keys
from shared.settings import Settings

ROUTE = "/v1/workers/{id}/activity-heartbeat"
BODY = '{"isActiveRecently":true,"openSessionCount":1}'
KUBIYA_ROUTE = "/api/v1/workers/{id}/heartbeat"
# What Kubiya's released worker sends every interval (its full beat comes every 5 minutes).
LIGHTWEIGHT_BODY = (
    '{"status":"active","tasks_processed":0,"current_task_id":null,"worker_metadata":{}}'
)
REFERENCE, INGEST = "a: bare Starlette, 204", "b: ingest app + Redis"
UNTRACED = "c: ingest, tracing hooks taken out"
TRACED = "d: ingest, tracing on"
MIXED = "e: ingest, mixed fleet"
LIGHTWEIGHT = "f: ingest, Kubiya lightweight only"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=10_000, help="distinct registered workers")
    parser.add_argument("--runs", type=int, default=3, help="runs per app (median reported)")
    parser.add_argument("--seconds", type=int, default=10, help="length of one run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per app")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--shards", type=int, default=Settings.shards, help="HB_SHARDS")
    parser.add_argument(
        "--tracing-off-reference",
        action="store_true",
        help="also run (c) ingest with its tracing hooks taken out, and report b/c: what "
        "tracing costs while it is off",
    )
    parser.add_argument(
        "--tracing-on-ratio",
        type=float,
        metavar="R",
        help="also run (d) ingest with tracing on, tracing a share R of beats (spans dropped, "
        "not sent), and report d/b",
    )
    parser.add_argument(
        "--kubiya-share",
        type=float,
        metavar="S",
        help="also run, against the same ingest process as (b), (e) a fleet in which a share S "
        "of the workers send Kubiya's lightweight beats on POST /api/v1/workers/{id}/heartbeat "
        "with the org's API key (as its released worker does) and the rest Den beats, and (f) "
        "every worker on that route; report e/b and f/b",
    )


def run(args: argparse.Namespace) -> int:
    load.wrk_binary()  # before starting anything: a missing wrk says how to install it
    extra = int(args.tracing_off_reference) + int(args.tracing_on_ratio is not None)
    if args.kubiya_share is not None:
        if not 0 < args.kubiya_share <= 1:
            raise SystemExit("--kubiya-share must be more than 0 and at most 1")
        extra += 2
    budget = 120 + (2 + extra) * (args.runs * args.seconds + args.warmup + 5)
    with time_limit(budget), contextlib.ExitStack() as stack:
        directory = stack.enter_context(workdir())
        redis_url = stack.enter_context(embedded_redis(directory)).url
        fleet = new_fleet(args.workers, TOKEN_KEYS)
        register_fleet(redis_url, fleet, args.shards)
        script = directory / "beats.lua"
        script.write_text(load.heartbeat_script(fleet.worker_ids, fleet.tokens, BODY))
        scripts = {}
        if args.kubiya_share is not None:
            api_key = register_org_api_key(redis_url, fleet)
            scripts[MIXED] = directory / "mixed.lua"
            scripts[MIXED].write_text(_mixed_script(fleet, api_key, args.kubiya_share))
            scripts[LIGHTWEIGHT] = directory / "lightweight.lua"
            scripts[LIGHTWEIGHT].write_text(_mixed_script(fleet, api_key, 1.0))

        env = server_env(redis_url, HB_SHARDS=str(args.shards))
        apps = {
            REFERENCE: stack.enter_context(uvicorn("bench.reference_app:app", env)),
            INGEST: stack.enter_context(uvicorn("ingest.app:app", env)),
        }
        if args.tracing_off_reference:
            apps[UNTRACED] = stack.enter_context(uvicorn("bench.untraced_ingest:app", env))
        if args.tracing_on_ratio is not None:
            traced_env = {**env, "HB_TRACE_SAMPLE_RATIO": str(args.tracing_on_ratio)}
            apps[TRACED] = stack.enter_context(uvicorn("bench.traced_ingest:app", traced_env))
        for name in scripts:
            apps[name] = apps[INGEST]  # the same process, another fleet

        def hit(name: str, seconds: int) -> load.LoadResult:
            return load.run_wrk(
                apps[name].base_url, scripts.get(name, script), seconds, args.connections,
                args.threads,
            )  # fmt: skip

        for name in apps:
            hit(name, args.warmup)
        results: dict[str, list[load.LoadResult]] = {name: [] for name in apps}
        for _ in range(args.runs):
            for name in apps:  # alternate, so both see the same noise
                results[name].append(hit(name, args.seconds))
        stored = _workers_with_a_beat(redis_url, fleet.worker_ids, args.shards)
        kubiya_stored = _workers_with_a_beat(
            redis_url, fleet.worker_ids, args.shards, keys.F_STATUS
        )

    rows = []
    for name, runs in results.items():
        rows.append([
            name,
            report.median([r.requests_per_s for r in runs]),
            report.median([r.p50_ms for r in runs]),
            report.median([r.p99_ms for r in runs]),
            sum(r.non2xx + r.socket_errors for r in runs),
        ])  # fmt: skip
    reference, ingest = results[REFERENCE], results[INGEST]
    ratios = [b.requests_per_s / a.requests_per_s for a, b in zip(reference, ingest, strict=True)]
    ratio = report.median([r.requests_per_s for r in ingest]) / report.median(
        [r.requests_per_s for r in reference]
    )
    rows.append(["ratio b/a", ratio, "", "", ""])
    report.print_figure(
        f"ingest: Den beats over {args.workers:,} workers, {args.connections} connections, "
        f"median of {args.runs} x {args.seconds} s",
        ["app", "beats/s", "p50 ms", "p99 ms", "non-2xx"],
        rows,
    )
    print("per-run ratios b/a: " + ", ".join(f"{r:.2f}" for r in ratios))
    if UNTRACED in results:
        _print_ratio("tracing off: b / c (hooks taken out)", ingest, results[UNTRACED])
    if TRACED in results:
        _print_ratio(f"tracing on at {args.tracing_on_ratio:g}: d / b", results[TRACED], ingest)
    if MIXED in results:
        share = f"{args.kubiya_share:.0%} Kubiya lightweight, the rest Den"
        _print_ratio(f"mixed fleet ({share}): e / b", results[MIXED], ingest)
        _print_ratio("Kubiya lightweight beats only: f / b", results[LIGHTWEIGHT], ingest)
        print(f"workers whose Kubiya status Redis holds: {kubiya_stored:,} of {args.workers:,}")
    print(f"workers whose beat Redis holds: {stored:,} of {args.workers:,}")
    print(report.NOISE_NOTE)
    return 0


def _print_ratio(label: str, runs: list[load.LoadResult], against: list[load.LoadResult]) -> None:
    """The ratio of the median rates and each run's (the two ran alternately, run by run)."""
    median = report.median([r.requests_per_s for r in runs]) / report.median(
        [r.requests_per_s for r in against]
    )
    each = [r.requests_per_s / a.requests_per_s for r, a in zip(runs, against, strict=True)]
    print(f"{label}: {median:.3f} (per run {', '.join(f'{r:.3f}' for r in each)})")


def _mixed_script(fleet: Fleet, api_key: str, share: float) -> str:
    """Den beats with each worker's token, except a `share` of the workers, spread evenly
    through the fleet, which send Kubiya's lightweight beat on the per-worker route with the
    org's API key."""
    paths, bearers, bodies = [], [], []
    for i, (worker_id, token) in enumerate(zip(fleet.worker_ids, fleet.tokens, strict=True)):
        if int((i + 1) * share) > int(i * share):
            paths.append(KUBIYA_ROUTE.format(id=worker_id))
            bearers.append(api_key)
            bodies.append(LIGHTWEIGHT_BODY)
        else:
            paths.append(ROUTE.format(id=worker_id))
            bearers.append(token)
            bodies.append(BODY)
    return load.beats_script(paths, bearers, bodies)


def _workers_with_a_beat(
    redis_url: str, worker_ids: list[str], shards: int, field: str = keys.F_HEARTBEAT
) -> int:
    client = Redis.from_url(redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        for worker_id in worker_ids:
            pipe.hexists(keys.worker_key(worker_id, shards), field)
        return sum(1 for present in pipe.execute() if present)
    finally:
        client.close()

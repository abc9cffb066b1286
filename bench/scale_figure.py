"""Scale-out: N ingest processes behind one Redis (and, with `--cluster K`, behind a K-node
Redis Cluster too, in the same run), with wrk load over a large fleet, beside same-run
references.

For each N: beats/s, p50 and p99 of ingest and of bare Starlette (the same route answered 204,
the same uvicorn settings and N), the Redis CPU time per accepted beat (`INFO cpu`, all nodes)
and ingest's CPU time per beat. The "plain commands" reference is Redis's CPU time per beat for
a pipelined HSET of the fields a Den beat writes plus a ZADD NX of the dirty set, no script,
against the same server(s) in the same run. With a cluster, its runs alternate with one Redis's
at each N, and the cluster-to-one-Redis ratios are taken run by run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis as sync_redis

from bench import load, report
from bench.cpu import redis_cpu_seconds, tree_cpu_seconds
from bench.fleet import Fleet, new_fleet
from bench.servers import (
    TOKEN_KEYS,
    Uvicorn,
    embedded_redis,
    server_env,
    time_limit,
    uvicorn,
    workdir,
)
from hb.embedded import EmbeddedRedisCluster
from shared.contract import keys
from shared.settings import Settings

BODY = '{"isActiveRecently":true,"openSessionCount":1}'
PLAIN_BEATS = 50_000
PLAIN_BATCH = 200


def _default_processes() -> str:
    cores, n, levels = os.cpu_count() or 1, 1, []
    while n <= cores:
        levels.append(n)
        n *= 2
    if levels[-1] != cores:
        levels.append(cores)
    return ",".join(map(str, levels))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--processes", default=_default_processes(),
        help="ingest processes per level, comma-separated (default: 1, 2, 4, ... up to the cores)",
    )  # fmt: skip
    parser.add_argument(
        "--cluster", type=int, default=0, metavar="K",
        help="also a K-node Redis Cluster, beside one Redis in the same run",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=50_000, help="registered workers")
    parser.add_argument("--runs", type=int, default=3, help="runs per app and level (medians)")
    parser.add_argument("--seconds", type=int, default=8, help="length of one run")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections per process")
    parser.add_argument("--shards", type=int, default=Settings.shards, help="HB_SHARDS")


@dataclass(frozen=True)
class Run:
    load: load.LoadResult
    redis_cpu_per_beat_us: float
    ingest_cpu_per_beat_us: float


class Stores:
    """One Redis or a cluster: its URL, a client, and the CPU time all its nodes have used."""

    def __init__(self, directory: Path, cluster_nodes: int, stack: contextlib.ExitStack) -> None:
        self.cluster = cluster_nodes > 0
        if self.cluster:
            cluster = EmbeddedRedisCluster(directory / "cluster", cluster_nodes)
            stack.callback(cluster.stop)
            cluster.start()
            self.url = cluster.url
            self.ports = [node.port for node in cluster.nodes]
            self.client: sync_redis.Redis | sync_redis.RedisCluster = (
                sync_redis.RedisCluster.from_url(self.url)
            )
        else:
            server = stack.enter_context(embedded_redis(directory))
            self.url, self.ports = server.url, [server.port]
            self.client = sync_redis.Redis.from_url(self.url)
        stack.callback(self.client.close)

    def cpu_seconds(self) -> float:
        total = 0.0
        for port in self.ports:
            node = sync_redis.Redis(port=port)
            try:
                total += redis_cpu_seconds(node)
            finally:
                node.close()
        return total


def run(args: argparse.Namespace) -> int:
    load.wrk_binary()
    levels = [int(n) for n in args.processes.split(",")]
    setups = 2 if args.cluster else 1
    per_level = (1 + setups) * (args.runs * (args.seconds + 3) + 30)
    with time_limit(180 + len(levels) * per_level), contextlib.ExitStack() as stack:
        directory = stack.enter_context(workdir())
        fleet = new_fleet(args.workers, TOKEN_KEYS)
        all_stores = [Stores(directory, 0, stack)]
        if args.cluster:
            all_stores.append(Stores(directory, args.cluster, stack))
        for stores in all_stores:
            _register(stores, fleet, args.shards)
        script = directory / "beats.lua"
        script.write_text(load.heartbeat_script(fleet.worker_ids, fleet.tokens, BODY))
        envs = [_env(stores, args.shards) for stores in all_stores]
        threads = min(os.cpu_count() or 1, 4)

        rows: list[list[object]] = []
        versus: list[list[object]] = []
        for n in levels:
            bare: list[load.LoadResult] = []
            ingest: list[list[Run]] = [[] for _ in all_stores]
            plain: list[list[float]] = [[] for _ in all_stores]
            with contextlib.ExitStack() as apps:
                reference = apps.enter_context(
                    uvicorn("bench.reference_app:app", envs[0], workers=n)
                )
                ingest_apps = [
                    apps.enter_context(uvicorn("ingest.app:app", env, workers=n)) for env in envs
                ]
                connections = args.connections * n
                for server in (reference, *ingest_apps):  # warm-up
                    load.run_wrk(server.base_url, script, 2, connections, threads)
                for _ in range(args.runs):  # alternating, so all see the same noise
                    bare.append(
                        load.run_wrk(reference.base_url, script, args.seconds, connections, threads)
                    )
                    for i, (app, stores) in enumerate(zip(ingest_apps, all_stores, strict=True)):
                        ingest[i].append(
                            _measured(app, stores, script, args.seconds, connections, threads)
                        )
                        plain[i].append(_plain_commands(stores, fleet, args.shards))
            for i, stores in enumerate(all_stores):
                where = f"{args.cluster}-node cluster" if stores.cluster else "one"
                rows.append([where, *_row(n, bare, ingest[i], plain[i])])
            if args.cluster:
                versus.append(_versus(n, ingest[0], ingest[1]))

    report.print_figure(
        f"scale: Den beats over {args.workers:,} workers, ingest processes behind one Redis"
        + (f" and a {args.cluster}-node Redis Cluster" if args.cluster else "")
        + f", {args.connections} wrk connections per process, median of {args.runs} x "
        f"{args.seconds} s",
        ["Redis", "N", "bare beats/s", "ingest beats/s", "ratio", "ingest p50/p99 ms",
         "bare p99 ms", "Redis us/beat", "plain us/beat", "Redis/plain", "ingest us/beat",
         "non-2xx"],
        rows,
    )  # fmt: skip
    print(
        "Redis us/beat: Redis CPU time per accepted beat (all nodes). plain: the same server(s)"
        " taking a pipelined HSET of a Den beat's fields and a ZADD NX per beat, no script."
        " ingest us/beat: CPU time of the ingest processes per beat."
    )
    if versus:
        report.print_figure(
            f"scale: the {args.cluster}-node cluster against one Redis, run by run at the same N"
            " (medians of the per-run ratios)",
            ["N", "Redis us/beat", "ingest beats/s per process", "ingest us/beat",
             "ingest p99"],
            versus,
        )  # fmt: skip
    print(report.NOISE_NOTE)
    return 0


def _env(stores: Stores, shards: int) -> dict[str, str]:
    env = server_env(stores.url, HB_SHARDS=str(shards))
    if stores.cluster:
        env["HB_REDIS_CLUSTER"] = "true"
    return env


def _versus(n: int, one: Sequence[Run], cluster: Sequence[Run]) -> list[object]:
    """Cluster over one Redis, per run (runs alternate, so each pair saw the same noise)."""

    def ratio(of: Callable[[Run], float]) -> float:
        return report.median([of(c) / of(o) for o, c in zip(one, cluster, strict=True)])

    return [
        n,
        ratio(lambda r: r.redis_cpu_per_beat_us),
        ratio(lambda r: r.load.requests_per_s),
        ratio(lambda r: r.ingest_cpu_per_beat_us),
        ratio(lambda r: r.load.p99_ms),
    ]


def _measured(
    app: Uvicorn, stores: Stores, script: Path, seconds: int, connections: int, threads: int
) -> Run:
    assert app.proc is not None
    pid = app.proc.pid
    redis_before, ingest_before = stores.cpu_seconds(), tree_cpu_seconds(pid) or 0.0
    result = load.run_wrk(app.base_url, script, seconds, connections, threads)
    redis_cpu = stores.cpu_seconds() - redis_before
    ingest_cpu = (tree_cpu_seconds(pid) or 0.0) - ingest_before
    beats = max(1.0, result.requests_per_s * seconds)
    return Run(result, redis_cpu / beats * 1e6, ingest_cpu / beats * 1e6)


def _plain_commands(stores: Stores, fleet: Fleet, shards: int) -> float:
    """Redis CPU microseconds per beat of the plain-commands reference."""
    before = stores.cpu_seconds()
    ids = fleet.worker_ids
    beats = 0
    for start in range(0, PLAIN_BEATS, PLAIN_BATCH):
        pipe = stores.client.pipeline(transaction=False)
        for i in range(start, start + PLAIN_BATCH):
            worker_id = ids[i % len(ids)]
            shard = keys.shard_of(worker_id, shards)
            at = str(1_700_000_000_000 + i)
            pipe.hset(
                keys.worker_prefix(shard) + worker_id,
                mapping={keys.F_HEARTBEAT: at, keys.F_ACTIVE: at, keys.F_ACTIVE_RECENTLY: "1",
                         keys.F_OPEN_SESSIONS: "1"},
            )  # fmt: skip
            pipe.zadd(keys.dirty_key(shard), {worker_id: at}, nx=True)
            beats += 1
        pipe.execute()
    return (stores.cpu_seconds() - before) / beats * 1e6


def _row(
    n: int, bare: Sequence[load.LoadResult], ingest: Sequence[Run], plain: Sequence[float]
) -> list[object]:
    bare_rate = report.median([r.requests_per_s for r in bare])
    rate = report.median([r.load.requests_per_s for r in ingest])
    redis_us = report.median([r.redis_cpu_per_beat_us for r in ingest])
    plain_us = report.median(plain)
    return [
        n, bare_rate, rate, rate / bare_rate,
        f"{report.median([r.load.p50_ms for r in ingest]):.1f} / "
        f"{report.median([r.load.p99_ms for r in ingest]):.1f}",
        report.median([r.p99_ms for r in bare]),
        redis_us, plain_us, redis_us / plain_us,
        report.median([r.ingest_cpu_per_beat_us for r in ingest]),
        sum(r.load.non2xx + r.load.socket_errors for r in ingest),
    ]  # fmt: skip


def _register(stores: Stores, fleet: Fleet, shards: int) -> None:
    """What `registry.register_worker` writes, pipelined, plus the registry's synced marks."""
    for start in range(0, len(fleet.worker_ids), 1000):
        pipe = stores.client.pipeline(transaction=False)
        for worker_id in fleet.worker_ids[start : start + 1000]:
            pipe.hset(
                keys.worker_key(worker_id, shards),
                mapping={keys.F_ORG: fleet.org_id, keys.F_TOKEN_VERSION: "1"},
            )
        pipe.execute()
    pipe = stores.client.pipeline(transaction=False)
    for shard in range(shards):
        pipe.set(keys.synced_key(shard), "1")
    pipe.set(keys.REGISTRY_SYNCED, "1")
    pipe.execute()

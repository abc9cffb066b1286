"""Redis memory per worker after typical Den and Kubiya beats through the real ingest app.

Half the fleet beats on Den's route and half on Kubiya's (a worker speaks one contract). The
steady state is measured after the flusher's claim and ack scripts ran (without Postgres): then
each hash also holds its persisted mark and the dirty sets are empty again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

import httpx
from redis import Redis

from bench import report
from bench.fleet import Fleet, new_fleet, register_fleet
from bench.servers import TOKEN_KEYS, embedded_redis, time_limit, workdir
from shared.contract import keys
from shared.contract.claims import CLAIM_DIRTY, ack_command, claim_call, parse_claim
from shared.contract.times import format_ms, now_ms
from shared.settings import Settings, parse_token_keys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=Settings.shards, help="HB_SHARDS")


def run(args: argparse.Namespace) -> int:
    with time_limit(300), contextlib.ExitStack() as stack:
        directory = stack.enter_context(workdir())
        redis_url = stack.enter_context(embedded_redis(directory)).url
        client = Redis.from_url(redis_url)
        stack.callback(client.close)
        before = _used_memory(client)
        fleet = new_fleet(args.workers, TOKEN_KEYS)
        register_fleet(redis_url, fleet, args.shards)
        registered = _used_memory(client)
        settings = Settings(
            redis_url=redis_url, token_keys=parse_token_keys(TOKEN_KEYS), shards=args.shards
        )
        asyncio.run(_beat_every_worker(settings, fleet))
        beaten = _used_memory(client)
        worker_keys = [keys.worker_key(w, args.shards) for w in fleet.worker_ids]
        dirty_usage = _memory_usage(client, worker_keys)
        _persist_all(client, args.shards)
        steady = _used_memory(client)
        steady_usage = _memory_usage(client, worker_keys)
        den_keys, kubiya_keys = worker_keys[0::2], worker_keys[1::2]
        encodings = {client.object("encoding", k) for k in worker_keys[:100]}
        fields = (client.hlen(den_keys[0]), client.hlen(kubiya_keys[0]))

    n = args.workers
    half = {k: v for k, v in zip(worker_keys, steady_usage, strict=True)}
    rows = [
        ["MEMORY USAGE of a worker hash, mean of all", sum(steady_usage) / n],
        ["  of a Den worker", sum(half[k] for k in den_keys) / len(den_keys)],
        ["  of a Kubiya worker", sum(half[k] for k in kubiya_keys) / len(kubiya_keys)],
        ["used_memory delta / workers, steady state", (steady - before) / n],
        ["used_memory delta / workers, registry only", (registered - before) / n],
        ["used_memory delta / workers, all dirty (before flush)", (beaten - before) / n],
        ["MEMORY USAGE of a worker hash, before flush", sum(dirty_usage) / n],
    ]
    report.print_figure(
        f"memory: {n:,} workers (half Den, half Kubiya), {args.shards} shards",
        ["measure", "bytes/worker"],
        rows,
    )
    names = ", ".join(sorted(e.decode() if isinstance(e, bytes) else str(e) for e in encodings))
    print(f"hash fields: Den {fields[0]}, Kubiya {fields[1]}; encoding: {names}")
    return 0


def _used_memory(client: Redis) -> int:
    info: dict[str, Any] = client.info("memory")  # type: ignore[assignment]
    return int(info["used_memory"])


def _memory_usage(client: Redis, keys: list[str]) -> list[int]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return [int(v) for v in pipe.execute()]


def _persist_all(client: Redis, shards: int) -> None:
    """What a flusher does to Redis once Postgres has the beats: claim, then ack."""
    claim = client.register_script(CLAIM_DIRTY.source)
    for shard in range(shards):
        call_keys, args = claim_call(shard, now_ms(), 60_000, 1_000_000)
        claimed = parse_claim(shard, claim(keys=call_keys, args=args))
        if len(claimed):
            client.execute_command(*ack_command(claimed))


async def _beat_every_worker(settings: Settings, fleet: Fleet) -> None:
    from ingest.app import create_app

    app = create_app(settings)
    sent = format_ms(now_ms() - 1000)
    den = {"isActiveRecently": True, "openSessionCount": 2, "sentAt": sent,
           "lastActivityAt": sent}  # fmt: skip

    async def beat(http: httpx.AsyncClient, i: int) -> None:
        worker_id, auth = fleet.worker_ids[i], {"Authorization": f"Bearer {fleet.tokens[i]}"}
        if i % 2 == 0:
            path = f"/v1/workers/{worker_id}/activity-heartbeat"
            r = await http.post(path, json=den, headers=auth)
        else:
            kubiya = {
                "worker_id": worker_id, "environment_name": "production", "status": "busy",
                "tasks_processed": 1234, "current_task_id": f"task-{i:06d}",
                "worker_metadata": {"hostname": f"runner-{i:05d}", "version": "1.8.2"},
            }  # fmt: skip
            r = await http.post("/api/v1/workers/heartbeat", json=kubiya, headers=auth)
        r.raise_for_status()

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            for start in range(0, len(fleet.worker_ids), 200):
                end = min(start + 200, len(fleet.worker_ids))
                await asyncio.gather(*(beat(http, i) for i in range(start, end)))

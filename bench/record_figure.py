"""The record script alone: Redis CPU time per Den beat, beside the plain-commands reference.

No HTTP and no ingest: one redis-server, a registered fleet, and EVALSHA calls of `--batch` Den
beats each (workers from every shard, as a single Redis gets them), every worker beating once per
round with a newer heartbeat. Redis CPU time is the `INFO cpu` delta over the calls, divided by
the beats; `INFO commandstats` counts the commands the script ran per beat. Two fleet states:

- "bench": as `bench scale` leaves it (no flusher, no liveness sweep): every beat is due a flush
  and its worker was never announced online;
- "deployed": as a running deployment keeps it: the flusher persisted each worker's heartbeat
  recently and the sweep announced it online, so a steady beat changes its hash and the index
  only.

The plain reference is a pipelined HSET of the four fields a Den beat writes plus a ZADD NX of the
dirty set per beat, as in `bench scale`, measured in the "bench" state (each run, after the
scripts' rounds) and set beside both. `--script` adds variants of the script (earlier versions,
experiments), measured run by run in turn with the contract's on the same server and fleet.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from pathlib import Path
from string import Template
from typing import Any

import redis as sync_redis

from bench import floors_figure, report
from bench.cpu import redis_cpu_seconds
from bench.fleet import Fleet, registered_on_own_redis
from bench.servers import time_limit
from shared.contract import keys
from shared.contract.record import RECORD_HEARTBEATS, DenBeat, record_call
from shared.settings import Settings

START_MS = 1_700_000_000_000
PERSIST_MS = 60_000


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=20_000, help="registered workers")
    parser.add_argument("--batch", type=int, default=150, help="beats per script call")
    parser.add_argument("--rounds", type=int, default=3, help="beats per worker in one run")
    parser.add_argument("--runs", type=int, default=5, help="runs per state (medians)")
    parser.add_argument("--shards", type=int, default=Settings.shards, help="HB_SHARDS")
    parser.add_argument(
        "--script", type=Path, action="append", default=[],
        help="a variant of record_heartbeats.lua (same arguments and reply) to measure beside"
        " the contract's, run by run on the same server; repeatable",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    sources = {"contract": RECORD_HEARTBEATS.source}
    for path in args.script:
        sources[str(path)] = Template(path.read_text()).substitute(keys.SCRIPT_FIELDS)
    rows = []
    with time_limit(600 * len(sources)), contextlib.ExitStack() as stack:
        client, fleet = registered_on_own_redis(stack, args.workers, args.shards)
        for shard in range(args.shards):
            client.set(keys.synced_key(shard), "1")
        shas = {name: str(client.script_load(source)) for name, source in sources.items()}
        clock = [START_MS]
        _beat_round(client, shas["contract"], fleet, args, clock)  # every worker's first beat
        plain_us: list[float] = []
        for state in ("bench", "deployed"):
            script_us: dict[str, list[float]] = {name: [] for name in shas}
            per_beat: dict[str, dict[str, float]] = {}
            for _ in range(args.runs):
                for name, sha in shas.items():  # alternating, so all see the same noise
                    if state == "deployed":
                        _flushed_and_announced(client, fleet, args.shards, clock[0])
                    client.config_resetstat()
                    before = redis_cpu_seconds(client)
                    beats = 0
                    for _ in range(args.rounds):
                        beats += _beat_round(client, sha, fleet, args, clock)
                    script_us[name].append((redis_cpu_seconds(client) - before) / beats * 1e6)
                    per_beat[name] = _commands_per_beat(client, beats)
                if state == "bench":  # while every worker is in the dirty sets, as in bench scale
                    plain_us.append(_plain(client, fleet, args, clock))
            plain = statistics.median(plain_us)
            for name in shas:
                script = statistics.median(script_us[name])
                commands = ", ".join(
                    f"{command} {n:.2f}" for command, n in sorted(per_beat[name].items())
                )
                rows.append([name, state, script, plain, script / plain, commands])
    report.print_figure(
        f"record: Den beats over {args.workers:,} workers, {args.batch} beats per call, "
        f"median of {args.runs} runs of {args.rounds} rounds",
        ["script", "fleet state", "script us/beat", "plain us/beat", "script/plain",
         "commands per beat"],
        rows,
    )  # fmt: skip
    print(
        "us/beat: Redis CPU time (INFO cpu) per beat. plain: a pipelined HSET of a Den beat's"
        " four fields and a ZADD NX per beat, no script, on the same server."
    )
    print(report.NOISE_NOTE)
    return 0


def _beat_round(
    client: sync_redis.Redis, sha: str, fleet: Fleet, args: argparse.Namespace, clock: list[int]
) -> int:
    ids = fleet.worker_ids
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(ids), args.batch):
        clock[0] += 1
        at = clock[0]
        beats = [DenBeat(w, 1, at, at, True, 1, None) for w in ids[start : start + args.batch]]
        call_keys, call_args = record_call(beats, args.shards, at, PERSIST_MS)
        pipe.execute_command("EVALSHA", sha, len(call_keys), *call_keys, *call_args)
        if len(pipe) >= 20:
            _check(pipe.execute())
    _check(pipe.execute())
    return len(ids)


def _check(replies: list[Any]) -> None:
    for reply in replies:
        if any(code != b"200" for code in reply[::5]):
            raise RuntimeError("a beat was not stored")


def _flushed_and_announced(
    client: sync_redis.Redis, fleet: Fleet, shards: int, persisted_ms: int
) -> None:
    """What the flusher and the liveness sweep leave behind in a running deployment."""
    pipe = client.pipeline(transaction=False)
    for worker_id in fleet.worker_ids:
        pipe.hset(
            keys.worker_key(worker_id, shards),
            mapping={keys.F_PERSISTED: str(persisted_ms), keys.F_ANNOUNCED: "online"},
        )
    for shard in range(shards):
        pipe.delete(keys.dirty_key(shard), keys.revived_key(shard))
    pipe.execute()


def _plain(
    client: sync_redis.Redis, fleet: Fleet, args: argparse.Namespace, clock: list[int]
) -> float:
    return floors_figure.priced(client, fleet, args, clock, floors_figure.plain_beat)


def _commands_per_beat(client: sync_redis.Redis, beats: int) -> dict[str, float]:
    stats: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]
    skip = {"cmdstat_evalsha", "cmdstat_info", "cmdstat_config"}
    return {
        name.removeprefix("cmdstat_"): int(value["calls"]) / beats
        for name, value in stats.items()
        if name not in skip
    }

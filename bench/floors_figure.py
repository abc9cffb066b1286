"""What single commands cost Redis per beat, beside the plain-commands reference.

The record-cost target (issue 12: Redis CPU per Den beat within 1.25x the plain reference) is a
budget. This figure prices what a storage contract could spend it on: one redis-server, a fleet
whose worker hashes, fleet index, dirty sets, strings and streams all exist (as after a first
beat), and per beat one set of pipelined commands, `--batch` beats per round trip, every worker
once per run, the sets alternating run by run. Redis CPU time comes from `INFO cpu`.

Every conditional command is checked to have taken effect (the index raise answers 1, `SET XX`
OK, `XADD` an ID), so a figure never prices a refusal. The last row is a script call that carries a
record call's arguments and reply and runs no command (`bench/record_variants/noop.lua`).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis as sync_redis

from bench import report
from bench.cpu import redis_cpu_seconds
from bench.fleet import Fleet, registered_on_own_redis
from bench.servers import time_limit
from shared.contract import keys
from shared.contract.record import DenBeat, record_call
from shared.settings import Settings

START_MS = 1_700_000_000_000
NOOP_SCRIPT = Path(__file__).parent / "record_variants" / "noop.lua"
# The fields the record script's one read asks for on a Den beat.
CHECKED = (
    keys.F_ORG, keys.F_TOKEN_VERSION, keys.F_HEARTBEAT, keys.F_ACTIVE, keys.F_ACTIVE_RECENTLY,
    keys.F_OPEN_SESSIONS, keys.F_PERSISTED, keys.F_SKEW, keys.F_DISCONNECTED, keys.F_ANNOUNCED,
)  # fmt: skip

Pipe = Any  # redis-py's pipeline
Queue = Callable[[Pipe, str, int, str, str], None]  # pipe, worker id, shard, org, ms


def plain_beat(pipe: Pipe, worker_id: str, shard: int, org: str, at: str) -> None:
    pipe.execute_command(
        "HSET", keys.worker_prefix(shard) + worker_id, keys.F_HEARTBEAT, at, keys.F_ACTIVE, at,
        keys.F_ACTIVE_RECENTLY, "1", keys.F_OPEN_SESSIONS, "1",
    )  # fmt: skip
    pipe.execute_command("ZADD", keys.dirty_key(shard), "NX", at, worker_id)


def _hset_two(pipe: Pipe, worker_id: str, shard: int, org: str, at: str) -> None:
    pipe.execute_command(
        "HSET", keys.worker_prefix(shard) + worker_id, keys.F_HEARTBEAT, at, keys.F_ACTIVE, at
    )


def _index_raise(pipe: Pipe, worker_id: str, shard: int, org: str, at: str) -> None:
    pipe.execute_command("ZADD", keys.seen_key(shard, org), "XX", "GT", "CH", at, worker_id)


def _hset_two_and_index(pipe: Pipe, worker_id: str, shard: int, org: str, at: str) -> None:
    _hset_two(pipe, worker_id, shard, org, at)
    _index_raise(pipe, worker_id, shard, org, at)


def _hget_one(pipe: Pipe, worker_id: str, shard: int, org: str, at: str) -> None:
    pipe.execute_command("HGET", keys.worker_prefix(shard) + worker_id, keys.F_ORG)


def _hmget_checked(pipe: Pipe, worker_id: str, shard: int, org: str, at: str) -> None:
    pipe.execute_command("HMGET", keys.worker_prefix(shard) + worker_id, *CHECKED)


def _set_xx(pipe: Pipe, worker_id: str, shard: int, org: str, at: str) -> None:
    pipe.execute_command("SET", _string_key(shard, worker_id), f"{at}:{at}:1:1", "XX")


def _xadd(pipe: Pipe, worker_id: str, shard: int, org: str, at: str) -> None:
    pipe.execute_command(
        "XADD", _stream_key(shard, worker_id), "NOMKSTREAM", "MAXLEN", "1", f"{at}-0",
        keys.F_ACTIVE, at, keys.F_ACTIVE_RECENTLY, "1", keys.F_OPEN_SESSIONS, "1",
    )  # fmt: skip


# (name, what a beat sends, how to queue it, which of its replies must be truthy: the
# conditional writes, so that a refusal is never priced; None for none); the first is the
# reference.
SETS: list[tuple[str, str, Queue, slice | None]] = [
    ("plain", "HSET of 4 fields + ZADD NX of the dirty set (member present)", plain_beat, None),
    ("hset-2", "HSET of 2 fields (heartbeat, active)", _hset_two, None),
    ("index", "ZADD XX GT CH raising the fleet index entry", _index_raise, slice(None)),
    ("hset-2+index", "the two above", _hset_two_and_index, slice(1, None, 2)),
    ("hget-1", "HGET of 1 field", _hget_one, None),
    ("hmget-10", "HMGET of the 10 fields a Den beat's checks read", _hmget_checked, None),
    ("set-xx", "SET XX of one packed value", _set_xx, slice(None)),
    ("xadd", "XADD NOMKSTREAM MAXLEN 1 with the heartbeat as ID, 3 fields", _xadd, slice(None)),
]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=20_000, help="registered workers")
    parser.add_argument("--batch", type=int, default=150, help="beats per round trip")
    parser.add_argument("--runs", type=int, default=7, help="runs per set (medians)")
    parser.add_argument("--shards", type=int, default=Settings.shards, help="HB_SHARDS")


def run(args: argparse.Namespace) -> int:
    with time_limit(900), contextlib.ExitStack() as stack:
        client, fleet = registered_on_own_redis(stack, args.workers, args.shards)
        _after_first_beat(client, fleet, args.shards)
        noop = str(client.script_load(NOOP_SCRIPT.read_text()))
        clock = [START_MS]
        per_set: dict[str, list[float]] = {name: [] for name, *_ in SETS}
        per_set["script"] = []
        for _ in range(args.runs):  # alternating, so all see the same noise
            for name, _, queue, applied in SETS:
                per_set[name].append(priced(client, fleet, args, clock, queue, applied))
            per_set["script"].append(_priced_script(client, noop, fleet, args, clock))
    plain = report.median(per_set["plain"])
    described = [(name, text) for name, text, *_ in SETS]
    described.append(("script", "EVALSHA of a record call's arguments, no command (noop.lua)"))
    rows = [
        [name, text, report.median(per_set[name]), report.median(per_set[name]) / plain]
        for name, text in described
    ]
    report.print_figure(
        f"floors: Redis CPU per beat of single commands over {args.workers:,} workers, "
        f"{args.batch} beats per round trip, median of {args.runs} runs",
        ["set", "per beat", "us/beat", "over plain"],
        rows,
    )
    print("us/beat: Redis CPU time (INFO cpu) per beat. Every conditional write took effect.")
    print(report.NOISE_NOTE)
    return 0


def _string_key(shard: int, worker_id: str) -> str:
    return keys.shard_tag(shard) + ":floor-string:" + worker_id


def _stream_key(shard: int, worker_id: str) -> str:
    return keys.shard_tag(shard) + ":floor-stream:" + worker_id


def _after_first_beat(client: sync_redis.Redis, fleet: Fleet, shards: int) -> None:
    """Each worker's hash with a steady Den beat's fields, its index and dirty entries, and the
    string and stream that `set-xx` and `xadd` write."""
    first = str(START_MS)
    for start in range(0, len(fleet.worker_ids), 1000):
        pipe = client.pipeline(transaction=False)
        for worker_id in fleet.worker_ids[start : start + 1000]:
            shard = keys.shard_of(worker_id, shards)
            pipe.hset(
                keys.worker_prefix(shard) + worker_id,
                mapping={keys.F_HEARTBEAT: first, keys.F_ACTIVE: first,
                         keys.F_ACTIVE_RECENTLY: "1", keys.F_OPEN_SESSIONS: "1",
                         keys.F_PERSISTED: first, keys.F_SKEW: "3", keys.F_ANNOUNCED: "online"},
            )  # fmt: skip
            pipe.zadd(keys.seen_key(shard, fleet.org_id), {worker_id: START_MS})
            pipe.zadd(keys.dirty_key(shard), {worker_id: START_MS})
            pipe.set(_string_key(shard, worker_id), first)
            pipe.xadd(_stream_key(shard, worker_id), {keys.F_ACTIVE: first}, id=f"{first}-0")
        pipe.execute()


def priced(
    client: sync_redis.Redis, fleet: Fleet, args: argparse.Namespace, clock: list[int],
    queue: Queue, applied: slice | None = None,
) -> float:  # fmt: skip
    """Redis CPU microseconds per beat of one set, every worker once (`args.batch` beats per
    round trip over `args.shards` shards); the replies `applied` selects must all be truthy."""
    before = redis_cpu_seconds(client)
    ids = fleet.worker_ids
    for start in range(0, len(ids), args.batch):
        clock[0] += 1
        at = str(clock[0])
        pipe = client.pipeline(transaction=False)
        for worker_id in ids[start : start + args.batch]:
            queue(pipe, worker_id, keys.shard_of(worker_id, args.shards), fleet.org_id, at)
        _check(queue, applied, pipe.execute())
    return (redis_cpu_seconds(client) - before) / len(ids) * 1e6


def _priced_script(
    client: sync_redis.Redis, sha: str, fleet: Fleet, args: argparse.Namespace, clock: list[int]
) -> float:
    before = redis_cpu_seconds(client)
    ids = fleet.worker_ids
    for start in range(0, len(ids), args.batch):
        clock[0] += 1
        at = clock[0]
        beats = [DenBeat(w, 1, at, at, True, 1, None) for w in ids[start : start + args.batch]]
        call_keys, call_args = record_call(beats, args.shards, at, 60_000)
        reply = client.evalsha(sha, len(call_keys), *call_keys, *call_args)
        if len(reply) != 5 * len(beats):  # type: ignore[arg-type]
            raise RuntimeError("the script call did not answer every beat")
    return (redis_cpu_seconds(client) - before) / len(ids) * 1e6


def _check(queue: Queue, applied: slice | None, replies: list[Any]) -> None:
    if applied is not None and not all(replies[applied]):
        raise RuntimeError(f"a conditional write of {queue.__name__} did not apply")

"""`hb simulate`: a fleet of simulated workers that register through the API and beat through
ingest at a jittered rate, with a live progress line. Stops by itself after `--duration`.

Three in four workers speak Den's route, the rest Kubiya's (half on its older route, half on
the per-worker route its released worker uses, with a full beat of system info and a log line
every `FULL_EVERY` beats, and a disconnect when it falls silent), so a demo exercises them all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from shared.contract.times import format_ms, now_ms

JITTER = 0.2  # each wait is the interval times a random factor in [0.8, 1.2]
FULL_EVERY = 10  # on Kubiya's per-worker route, the first beat and every tenth is full
REGISTER_CONCURRENCY = 16


class SimulationError(Exception):
    """Registration failed in a way the user must fix (wrong URL, bad API key)."""


@dataclass
class SimulatedWorker:
    id: str
    token: str
    route: str  # "den", "kubiya" or "kubiya-worker"
    tasks: int = 0
    beats: int = 0


@dataclass
class Tally:
    sent: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    beating: int = 0  # workers beating now: the target rate is this over the interval
    fell_silent: list[str] = field(default_factory=list)  # ids of the workers that stopped

    @property
    def failed(self) -> int:
        return sum(self.errors.values())


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=10, help="simulated workers (default 10)")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="seconds between a worker's beats (default 5)"
    )
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds of beating, then stop (default 60)"
    )
    parser.add_argument(
        "--credentials", type=Path, metavar="FILE",
        help="the credentials file written by `hb dev` (URLs and API key)",
    )  # fmt: skip
    parser.add_argument("--ingest-url", help="ingest base URL (default: from --credentials)")
    parser.add_argument("--api-url", help="API base URL (default: from --credentials)")
    parser.add_argument("--api-key", help="org API key (default: from --credentials)")
    parser.add_argument(
        "--delete", action="store_true", help="delete the simulated workers when done"
    )
    parser.add_argument(
        "--quiet-fraction", type=float, default=0.0, metavar="F",
        help="this share of the workers (0-1) falls silent at a random moment of the first "
        "half of the run, so they go stale and offline (default 0)",
    )  # fmt: skip


def _endpoints(args: argparse.Namespace) -> tuple[str, str, str]:
    creds: dict[str, Any] = {}
    if args.credentials is not None:
        try:
            creds = json.loads(args.credentials.read_text())
        except (OSError, ValueError) as exc:
            raise SimulationError(f"cannot read credentials {args.credentials}: {exc}") from None
    ingest = args.ingest_url or creds.get("ingestUrl")
    api = args.api_url or creds.get("apiUrl")
    key = args.api_key or creds.get("apiKey")
    if not (ingest and api and key):
        raise SimulationError(
            "need --ingest-url, --api-url and --api-key, or --credentials FILE from `hb dev`"
        )
    return ingest.rstrip("/"), api.rstrip("/"), key


async def register_fleet(api: httpx.AsyncClient, api_key: str, count: int) -> list[SimulatedWorker]:
    gate = asyncio.Semaphore(REGISTER_CONCURRENCY)
    stamp = time.strftime("%H%M%S")

    async def register(i: int) -> SimulatedWorker:
        async with gate:
            response = await api.post(
                "/v1/workers",
                json={"name": f"sim-{stamp}-{i}", "description": "hb simulate"},
                headers={"x-api-key": api_key},
            )
        if response.status_code != 201:
            raise SimulationError(
                f"registering a worker failed: {response.status_code} {response.text[:200]}"
            )
        body = response.json()
        route = {3: "kubiya", 7: "kubiya-worker"}.get(i % 8, "den")
        return SimulatedWorker(body["worker"]["id"], body["heartbeatToken"], route)

    return list(await asyncio.gather(*(register(i) for i in range(count))))


def _beat_request(worker: SimulatedWorker, rng: random.Random) -> tuple[str, dict[str, Any]]:
    worker.beats += 1
    if worker.route != "den":
        busy = rng.random() < 0.5
        worker.tasks += busy
        body: dict[str, Any] = {
            "status": "busy" if busy else "idle",
            "tasks_processed": worker.tasks,
            "current_task_id": f"task-{worker.tasks}" if busy else None,
            "worker_metadata": {"simulated": True},
        }
        if worker.route == "kubiya":
            body = {"worker_id": worker.id, "environment_name": "simulated", **body}
            return "/api/v1/workers/heartbeat", body
        if worker.beats % FULL_EVERY == 1:
            body["system_info"] = {"hostname": f"sim-{worker.id[-6:]}", "cpu_count": 2}
            body["logs"] = [f"{worker.tasks} tasks done after {worker.beats - 1} beats"]
        return f"/api/v1/workers/{worker.id}/heartbeat", body
    active = rng.random() < 0.7
    return f"/v1/workers/{worker.id}/activity-heartbeat", {
        "sentAt": format_ms(now_ms()),
        "isActiveRecently": active,
        "openSessionCount": rng.randint(1, 4) if active else 0,
    }


async def beat_forever(
    ingest: httpx.AsyncClient,
    worker: SimulatedWorker,
    interval: float,
    tally: Tally,
    rng: random.Random,
    silent_after: float | None = None,
) -> None:
    """Beat until cancelled, or (`silent_after` seconds from now) fall silent."""
    loop = asyncio.get_running_loop()
    silent_at = None if silent_after is None else loop.time() + silent_after
    # A random first offset spreads the fleet over the interval instead of beating in lockstep.
    await asyncio.sleep(rng.uniform(0, interval))
    headers = {"Authorization": f"Bearer {worker.token}"}
    while True:
        if silent_at is not None and loop.time() >= silent_at:
            tally.beating -= 1
            tally.fell_silent.append(worker.id)
            if worker.route == "kubiya-worker":  # says so as it stops: offline at once
                path = f"/api/v1/workers/{worker.id}/disconnect"
                await _send(ingest, path, {"reason": "shutdown"}, headers, tally)
            return
        path, body = _beat_request(worker, rng)
        await _send(ingest, path, body, headers, tally)
        await asyncio.sleep(interval * rng.uniform(1 - JITTER, 1 + JITTER))


async def _send(
    ingest: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str],
    tally: Tally,
) -> None:  # fmt: skip
    tally.sent += 1
    try:
        response = await ingest.post(path, json=body, headers=headers)
    except httpx.HTTPError as exc:
        tally.errors[type(exc).__name__] += 1
        return
    if response.status_code in (200, 204):
        tally.ok += 1
    else:
        tally.errors[f"HTTP {response.status_code}"] += 1


async def report_progress(tally: Tally, interval: float, deadline: float, out: TextIO) -> None:
    live = out.isatty()
    last_ok, last_at, last_print = 0, time.monotonic(), 0.0
    while True:
        await asyncio.sleep(1.0)
        now = time.monotonic()
        rate = (tally.ok - last_ok) / (now - last_at)
        last_ok, last_at = tally.ok, now
        line = progress_line(tally, rate, interval, max(0.0, deadline - now))
        if live:
            out.write("\r" + line.ljust(90))
            out.flush()
        elif now - last_print >= 10:
            out.write(line + "\n")
            last_print = now


def progress_line(tally: Tally, rate: float, interval: float, left: float) -> str:
    """The achieved rate beside the target (beating workers over the interval)."""
    target = tally.beating / interval
    silent = f", {len(tally.fell_silent)} silent" if tally.fell_silent else ""
    return (f"beats {tally.ok} ok, {tally.failed} errors, {rate:.1f}/s of {target:.1f}/s "
            f"target{silent}, {left:.0f}s left")  # fmt: skip


async def simulate(
    ingest: httpx.AsyncClient,
    api: httpx.AsyncClient,
    api_key: str,
    workers: int,
    interval: float,
    duration: float,
    out: TextIO = sys.stderr,
    delete: bool = False,
    seed: int | None = None,
    quiet_fraction: float = 0.0,
) -> Tally:
    fleet = await register_fleet(api, api_key, workers)
    rng = random.Random(seed)
    quiet = set(rng.sample(range(len(fleet)), round(len(fleet) * quiet_fraction)))
    out.write(f"registered {len(fleet)} workers; beating every ~{interval:g}s for {duration:g}s"
              f" (target {len(fleet) / interval:.1f} beats/s)\n")  # fmt: skip
    if quiet:
        out.write(f"{len(quiet)} of them fall silent during the first {duration / 2:g}s\n")
    tally = Tally(beating=len(fleet))
    deadline = time.monotonic() + duration
    silent_after = [rng.uniform(0, duration / 2) if i in quiet else None for i in range(len(fleet))]
    tasks = [
        asyncio.create_task(beat_forever(ingest, w, interval, tally, rng, silent_after[i]))
        for i, w in enumerate(fleet)
    ]
    tasks.append(asyncio.create_task(report_progress(tally, interval, deadline, out)))
    try:
        await asyncio.sleep(duration)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if out.isatty():
        out.write("\n")
    if delete:
        for w in fleet:
            await api.delete(f"/v1/workers/{w.id}", headers={"x-api-key": api_key})
    return tally


async def _run(args: argparse.Namespace) -> Tally:
    ingest_url, api_url, api_key = _endpoints(args)
    limits = httpx.Limits(max_connections=min(256, max(8, args.workers)))
    timeout = httpx.Timeout(10.0)
    async with (
        httpx.AsyncClient(base_url=ingest_url, limits=limits, timeout=timeout) as ingest,
        httpx.AsyncClient(base_url=api_url, timeout=timeout) as api,
    ):
        try:
            return await simulate(
                ingest, api, api_key, args.workers, args.interval, args.duration,
                delete=args.delete, quiet_fraction=args.quiet_fraction,
            )  # fmt: skip
        except httpx.HTTPError as exc:
            raise SimulationError(f"cannot reach the API at {api_url}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    if args.workers < 1 or args.interval <= 0 or args.duration <= 0:
        print("hb simulate: --workers, --interval and --duration must be positive", file=sys.stderr)
        return 2
    if not 0 <= args.quiet_fraction <= 1:
        print("hb simulate: --quiet-fraction must be from 0 to 1", file=sys.stderr)
        return 2
    try:
        tally = asyncio.run(_run(args))
    except SimulationError as exc:
        print(f"hb simulate: {exc}", file=sys.stderr)
        return 1
    errors = ", ".join(f"{kind}: {n}" for kind, n in tally.errors.most_common()) or "none"
    print(f"sent {tally.sent} beats: {tally.ok} accepted; errors: {errors}")
    if tally.fell_silent:
        print(f"{len(tally.fell_silent)} workers fell silent: {' '.join(tally.fell_silent)}")
    return 0 if tally.failed == 0 else 1

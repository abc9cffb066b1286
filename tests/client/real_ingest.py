"""A real `hb ingest` process for the client's tests, the workers it accepts, and what a
heartbeater's hooks saw, with bounded waits for it to see more."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
from redis.asyncio import Redis

from hb.embedded import free_port
from shared.contract import keys, registry, typeid
from shared.contract.tokens import issue_worker_token
from tests.conftest import TOKEN_KEYS

HB = Path(sys.executable).parent / "hb"
TOKEN_KEYS_ENV = ",".join(f"{kid}:{secret.decode()}" for kid, secret in TOKEN_KEYS.items())
READY_WITHIN = 30.0
STOP_WITHIN = 10.0


def _ingest_env(redis_url: str, shards: int, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HB_")}
    env.update(HB_REDIS_URL=redis_url, HB_TOKEN_KEYS=TOKEN_KEYS_ENV, HB_SHARDS=str(shards), **extra)
    return env


@contextmanager
def running_ingest(redis_url: str, shards: int, log_dir: Path, **extra_env: str) -> Iterator[str]:
    """`hb ingest` on a free port of 127.0.0.1, ready to serve; yields its base URL.

    Its output goes to a file (a pipe nobody reads would fill up and stall it), quoted when it
    fails to start. The process is stopped by its pid on the way out, whatever happened.
    """
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"ingest-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(HB), "ingest", "--host", "127.0.0.1", "--port", str(port)],
            env=_ingest_env(redis_url, shards, extra_env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(proc, base, log)
        yield base
    finally:
        _stop(proc)


def _wait_until_ready(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while True:
        if proc.poll() is not None:
            output = log.read_text(errors="replace")
            raise AssertionError(f"hb ingest exited with {proc.returncode}:\n{output}")
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            output = log.read_text(errors="replace")
            raise AssertionError(f"hb ingest was not ready within {READY_WITHIN} s:\n{output}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_WITHIN)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class Worker:
    id: str
    org_id: str
    token: str


async def register_worker(redis: Redis, shards: int, version: int = 1) -> Worker:
    """A new worker in the registry, as the API registers one, with a token ingest accepts."""
    worker_id = typeid.new_id(typeid.WORKER)
    org_id = typeid.new_id(typeid.ORG)
    await registry.register_worker(redis, shards, worker_id, org_id, version)
    return Worker(worker_id, org_id, issue_worker_token(TOKEN_KEYS, "k1", worker_id, version))


async def register_fleet(redis: Redis, shards: int, count: int, version: int = 1) -> list[Worker]:
    """`count` workers of one org, registered in one pipeline with the fields that
    `registry.register_worker` writes, each with a token ingest accepts."""
    org_id = typeid.new_id(typeid.ORG)
    fleet = []
    pipe = redis.pipeline(transaction=False)
    for _ in range(count):
        worker_id = typeid.new_id(typeid.WORKER)
        token = issue_worker_token(TOKEN_KEYS, "k1", worker_id, version)
        fleet.append(Worker(worker_id, org_id, token))
        pipe.hset(
            keys.worker_key(worker_id, shards),
            mapping={keys.F_ORG: org_id, keys.F_TOKEN_VERSION: str(version)},
        )
    await pipe.execute()
    return fleet


class BeatLog:
    """What one heartbeater's `on_beat` and `on_failure` hooks reported, in order.

    The hooks run on the heartbeater's event loop (asyncio mode), so an asyncio.Event tells a
    waiting test that something new arrived; `wait_until` rechecks its condition on each report
    and fails, saying what it was waiting for, once its deadline has passed.
    """

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.failures: list[tuple[BaseException | int, float | None]] = []
        self._news = asyncio.Event()

    def on_beat(self, status: int, latency: float) -> None:
        self.statuses.append(status)
        self._news.set()

    def on_failure(self, failure: BaseException | int, delay: float | None) -> None:
        self.failures.append((failure, delay))
        self._news.set()

    async def wait_until(self, condition: Callable[[], bool], what: str, within: float) -> None:
        deadline = time.monotonic() + within
        while not condition():
            self._news.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"not seen within {within} s: {what} "
                    f"(statuses {self.statuses}, failures {self.failures})"
                )
            with suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), remaining)

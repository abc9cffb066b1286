"""A real `hb ingest` process for the client's tests, the workers it accepts, and what a
heartbeater's hooks saw, with bounded waits for it to see more."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.contract import keys, registry, typeid
from shared.contract.tokens import issue_worker_token
from tests.conftest import TOKEN_KEYS


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

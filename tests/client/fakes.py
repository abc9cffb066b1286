"""Stand-ins for randomness, time and ingest, so the heartbeater's schedule is exact in tests."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

NOW = datetime(2026, 11, 30, 1, 2, 3, 456789, tzinfo=UTC)
NOW_TEXT = "2026-11-30T01:02:03.456Z"
INGEST_URL = "http://ingest.test"
WORKER_ID = "wrk_01jdn5zq2ge6k9v8w3x4y5z6a7"
TOKEN = "hbw.k1.wrk_01jdn5zq2ge6k9v8w3x4y5z6a7.1.c2VjcmV0LXNpZ25hdHVyZQ"


class FixedRandom(random.Random):
    """Every draw returns `value`: uniform(a, b) lands at a + (b - a) * value.

    With 0.5 the first offset is half an interval, the jitter is zero and each backoff is half
    its ceiling, so a schedule can be compared with exact numbers.
    """

    def __init__(self, value: float = 0.5) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def fixed_clock() -> datetime:
    return NOW


class FakeSleep:
    """Records each requested delay and returns at once.

    After `stop_after` waits it calls `on_limit` (the heartbeater's stop), so a run ends
    exactly when the script of answers has been played and its last delay recorded.
    """

    def __init__(self, stop_after: int | None = None) -> None:
        self.delays: list[float] = []
        self.stop_after = stop_after
        self.on_limit: Callable[[], object] | None = None

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.stop_after is not None and len(self.delays) >= self.stop_after:
            assert self.on_limit is not None
            self.on_limit()
        await asyncio.sleep(0)


Answer = httpx.Response | Exception


class ScriptedIngest:
    """Answers each request with the next scripted answer (a response or an exception)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) > len(self.answers):
            raise AssertionError(f"unexpected request #{len(self.requests)}")
        answer = self.answers[len(self.requests) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def bodies(self) -> list[Any]:
        return [json.loads(request.content) for request in self.requests]


def status(code: int, *, retry_after: str | None = None, text: str = "") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(code, headers=headers, text=text)

"""Reading a Server-Sent Events stream in tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class StreamReader:
    """Collects a stream's events and comments in the background."""

    events: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    status: int | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        async with client.stream("GET", url, headers=headers) as r:
            self.status = r.status_code
            frame: dict[str, str] = {}
            async for line in r.aiter_lines():
                self.changed.set()
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif line == "":
                    if "data" in frame:
                        self.events.append(json.loads(frame["data"]))
                        self.ids.append(frame.get("id", ""))
                    frame = {}
                else:
                    name, _, value = line.partition(":")
                    frame[name] = value.removeprefix(" ")

    async def until(self, holds: Callable[[], bool], deadline: float = 15.0) -> None:
        """Wait (bounded) until `holds()` is true, checking after every line read."""
        async with asyncio.timeout(deadline):
            while not holds():
                self.changed.clear()
                await self.changed.wait()

    async def wait_for(self, count: int, deadline: float = 15.0) -> list[dict[str, Any]]:
        """The first `count` events, once that many arrived."""
        await self.until(lambda: len(self.events) >= count, deadline)
        return self.events[:count]

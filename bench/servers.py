"""Servers a figure runs against: embedded Redis and Postgres, and uvicorn child processes.

All of them listen on 127.0.0.1 only and are stopped when the figure's `ExitStack` closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hb.embedded import EmbeddedPostgres, EmbeddedRedis, ensure_database, free_port
from shared.postgres.migrate import migrate
from shared.settings import Settings, parse_token_keys
from shared.web.server_limits import PROTOCOL_PATH

# The benchmark's own signing key: tokens are minted and verified only inside one bench run.
TOKEN_KEYS = "b1:bench-signing-key-0123456789abcdef"


class TimeLimitExceeded(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Abort the figure (and so stop its servers) when it runs longer than `seconds`."""

    def expire(signum: int, frame: object) -> None:
        raise TimeLimitExceeded(f"the figure ran longer than its {seconds} s limit")

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, expire)
    previous_term = signal.signal(signal.SIGTERM, terminate)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        signal.signal(signal.SIGTERM, previous_term)


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hb-bench-") as path:
        yield Path(path)


@contextlib.contextmanager
def embedded_redis(directory: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(directory / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def embedded_postgres(directory: Path) -> Iterator[tuple[EmbeddedPostgres, str]]:
    """A fresh embedded server and the URL of its migrated `heartbeat` database."""
    server = EmbeddedPostgres(directory / "postgres")
    server.start()
    try:

        async def prepare() -> str:
            url = await ensure_database(server.url(), "heartbeat")
            await migrate(url)
            return url

        yield server, asyncio.run(prepare())
    finally:
        server.stop()


@dataclass(frozen=True)
class StorePids:
    """The embedded servers' processes (Postgres': its postmaster, parent of every backend)."""

    redis: int
    postgres: int


@contextlib.contextmanager
def embedded_stores(directory: Path, **overrides: Any) -> Iterator[tuple[Settings, StorePids]]:
    """Embedded Redis and a migrated Postgres under `directory`: the settings that reach them,
    and the servers' process ids for figures that count CPU time."""
    with (
        embedded_redis(directory) as redis,
        embedded_postgres(directory) as (postgres, database_url),
    ):
        assert redis.proc is not None and postgres.proc is not None
        settings = Settings(
            redis_url=redis.url,
            database_url=database_url,
            token_keys=parse_token_keys(TOKEN_KEYS),
            **overrides,
        )
        yield settings, StorePids(redis=redis.proc.pid, postgres=postgres.proc.pid)


def server_env(redis_url: str, database_url: str = "", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HB_")}
    env.update(HB_REDIS_URL=redis_url, HB_TOKEN_KEYS=TOKEN_KEYS, **extra)
    if database_url:
        env["HB_DATABASE_URL"] = database_url
    return env


class Uvicorn:
    """One uvicorn process (one worker unless told), uvloop + httptools (one write per
    response), access log off: the production mode, for every app a figure compares."""

    def __init__(self, app: str, env: dict[str, str], ready_path: str, workers: int = 1) -> None:
        self.app = app
        self.workers = workers
        self.port = free_port()
        self.env = env
        self.ready_path = ready_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [
            sys.executable, "-m", "uvicorn", self.app, "--host", "127.0.0.1",
            "--port", str(self.port), "--workers", str(self.workers), "--loop", "uvloop",
            "--http", PROTOCOL_PATH,
            "--no-access-log", "--no-proxy-headers", "--log-level", "warning",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args, env=self.env, cwd=Path(__file__).resolve().parents[1],
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn {self.app} exited with {self.proc.returncode}")
            try:
                r = httpx.get(self.base_url + self.ready_path, timeout=1)
                if r.status_code < 500:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"uvicorn {self.app} did not become ready on port {self.port}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def uvicorn(
    app: str, env: dict[str, str], ready_path: str = "/health", workers: int = 1
) -> Iterator[Uvicorn]:
    server = Uvicorn(app, env, ready_path, workers)
    try:
        server.start()
        yield server
    finally:
        server.stop()

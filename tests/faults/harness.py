"""The fault harness: ingest, the API and the flusher as real processes on a Redis and a Postgres
of their own, a bounded beat load that records every answer, and the faults to inject.

Everything here waits for conditions by polling with a deadline; the only fixed waits are the
load's pacing and the length of a fault, which is what a scenario is about.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from api.management import create_api_key, create_organization, create_worker
from hb.embedded import EmbeddedPostgres, EmbeddedRedis, ensure_database, free_port
from shared.contract import keys
from shared.postgres.migrate import migrate
from shared.postgres.pool import create_pool
from shared.redis.connect import connect_redis
from shared.settings import Settings, parse_token_keys

REPO = Path(__file__).resolve().parents[2]
DATABASE = "heartbeat"
TOKEN_KEYS = "fault1:fault-suite-signing-key-0123456789"
SHARDS = 8
# The flusher's cron schedule runs on whole seconds, so 1 s is the shortest flush interval (and
# reconcile interval) it honours; the lease is short so that a killed flusher's claim comes
# back within a scenario.
FLUSH_INTERVAL = 1.0
SERVICE_ENV = {
    "HB_TOKEN_KEYS": TOKEN_KEYS,
    "HB_SHARDS": str(SHARDS),
    "HB_FLUSH_INTERVAL": f"{FLUSH_INTERVAL:g}",
    "HB_PERSIST_INTERVAL": "1",
    "HB_REDIS_TIMEOUT": "0.5",
    "HB_RECONCILE_INTERVAL": "1",
    "HB_FLUSH_LEASE": "3",
    "HB_RETRY_AFTER": "1",
    "HB_LOG_LEVEL": "info",
}
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


# --- waiting ----------------------------------------------------------------------------------


async def poll_until(
    condition: Callable[[], bool | Awaitable[bool]], within: float, interval: float = 0.05
) -> float | None:
    """Seconds until `condition` held, checked every `interval`; None if not `within` seconds."""
    start = time.monotonic()
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            return None
        await asyncio.sleep(interval)


def rfc3339_ms(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def parse_rfc3339_ms(text: str) -> int:
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- processes --------------------------------------------------------------------------------


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _children(parent: int) -> list[int]:
    """Processes whose parent is `parent`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # The command name (in parentheses) may hold spaces; the parent's pid follows the state.
        if int(stat.rpartition(")")[2].split()[1]) == parent:
            found.append(int(entry.name))
    return found


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def service_env(redis_url: str, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HB_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(SERVICE_ENV, HB_REDIS_URL=redis_url, HB_DATABASE_URL=database_url)
    return env


class Service:
    """`python -m hb.cli <args>` in its own session (so its process group is its pid), logging
    to a file; a restart logs to a new file."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.args = list(args)
        self.env = env
        self.logs = logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.started = 0
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        if self._log is not None:  # the previous run's log
            self._log.close()
        self.started += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        self.log_path = self.logs / f"{self.name}-{self.started}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hb.cli", *self.args],
            env=self.env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group, no chance to clean up."""
        if self.proc is not None:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            _signal_group(self.proc.pid, signal.SIGKILL)  # whatever it left in its group
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass(frozen=True)
class WorkerCredentials:
    worker_id: str
    token: str


class Stack:
    """Embedded Redis and Postgres in `root`, a migrated database with one organization and
    `workers` workers, and `hb ingest`, `hb api` and `hb flusher` serving them."""

    def __init__(
        self,
        root: Path,
        workers: int = 50,
        redis_persist: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.extra_env = dict(env or {})  # HB_* settings for the three services
        self.worker_count = workers
        self.redis = EmbeddedRedis(root / "redis", persist=redis_persist)
        self.postgres = EmbeddedPostgres(root / "postgres")
        self.ingest_url = f"http://127.0.0.1:{free_port()}"
        self.api_url = f"http://127.0.0.1:{free_port()}"
        self.database_url = ""
        self.workers: list[WorkerCredentials] = []
        self.api_key = ""
        self.services: dict[str, Service] = {}
        self.settings: Settings | None = None

    # start and stop

    async def start(self) -> None:
        await asyncio.to_thread(self.redis.start)
        await asyncio.to_thread(self.postgres.start)
        self.database_url = await ensure_database(self.postgres.url(), DATABASE)
        await migrate(self.database_url)
        self.settings = Settings(
            redis_url=self.redis.url,
            database_url=self.database_url,
            token_keys=parse_token_keys(TOKEN_KEYS),
            shards=SHARDS,
        )
        await self._create_workers(self.settings)
        env = {**service_env(self.redis.url, self.database_url), **self.extra_env}
        logs = self.root / "logs"
        ingest_port, api_port = self.ingest_url.rpartition(":")[2], self.api_url.rpartition(":")[2]
        self.services = {
            "ingest": Service("ingest", ["ingest", "--port", ingest_port], env, logs),
            "api": Service("api", ["api", "--port", api_port], env, logs),
            "flusher": Service("flusher", ["flusher"], env, logs),
        }
        for service in self.services.values():
            service.start()
        await self._wait_ready()

    async def _create_workers(self, settings: Settings) -> None:
        pool = await create_pool(self.database_url, min_size=1, max_size=2)
        redis = connect_redis(settings, max_connections=2)
        try:
            org = await create_organization(pool, "Fault suite")
            self.api_key = (await create_api_key(pool, redis, org, "fault suite")).secret
            for n in range(self.worker_count):
                new = await create_worker(pool, redis, settings, org, f"fault-worker-{n}")
                assert new.registry_synced
                self.workers.append(WorkerCredentials(new.worker_id, new.heartbeat_token))
        finally:
            await redis.aclose()
            await pool.close()

    async def _wait_ready(self) -> None:
        async with httpx.AsyncClient(timeout=1.0) as client:

            async def ready(url: str) -> bool:
                try:
                    return (await client.get(url + "/ready")).status_code == 200
                except httpx.HTTPError:
                    return False

            async def all_ready() -> bool:
                exited = self.exited()
                if exited:
                    raise AssertionError(f"{exited} while starting\n{self.log_tails()}")
                return (
                    await ready(self.ingest_url)
                    and await ready(self.api_url)
                    and await self.registry_synced()
                )

            if await poll_until(all_ready, READY_TIMEOUT, interval=0.1) is None:
                raise AssertionError(f"the stack was not ready in {READY_TIMEOUT:g} s\n"
                                     f"{self.log_tails()}")  # fmt: skip

    def close(self) -> None:
        """Stop everything, whatever state a fault left it in (paused servers are resumed)."""
        for service in self.services.values():
            with contextlib.suppress(Exception):
                service.stop()
        for server in (self.redis, self.postgres):
            if server.proc is not None:
                _signal_group(server.proc.pid, signal.SIGCONT)
            with contextlib.suppress(Exception):
                server.stop()
            if server.proc is not None:  # stop() gave up: the group goes
                _signal_group(server.proc.pid, signal.SIGKILL)

    def exited(self) -> list[tuple[str, int]]:
        return [
            (name, code)
            for name, service in self.services.items()
            if (code := service.exit_code()) is not None
        ]

    def log_tails(self, lines: int = 40) -> str:
        parts = [f"--- {n} ({s.log_path}) ---\n{s.tail(lines)}" for n, s in self.services.items()]
        for name, path in (
            ("redis", self.redis.directory / "redis.log"),
            ("postgres", self.postgres.directory / "postgres.log"),
        ):
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            parts.append(f"--- {name} ({path}) ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    @property
    def flusher(self) -> Service:
        return self.services["flusher"]

    # observations

    def redis_client(self, timeout: float | None = 2.0) -> Redis:
        return Redis.from_url(self.redis.url, socket_timeout=timeout, socket_connect_timeout=2.0)

    async def registry_synced(self) -> bool:
        async with self.redis_client() as client:
            try:
                return bool(await client.exists(keys.REGISTRY_SYNCED))
            except RedisError:
                return False

    async def claimed_workers(self, client: Redis) -> set[str]:
        """Workers claimed by a flusher and not yet acknowledged, over all shards."""
        pipe = client.pipeline(transaction=False)
        for shard in range(SHARDS):
            pipe.hvals(keys.claims_key(shard))
        claims = [ids for replies in await pipe.execute() for ids in replies]
        return {worker.decode() for ids in claims for worker in ids.split()}

    async def persisted_heartbeats(self) -> dict[str, int | None] | None:
        """`workers.last_heartbeat_at` in ms per worker, or None when Postgres can't answer."""
        try:
            conn = await asyncpg.connect(self.database_url, timeout=2)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return None
        try:
            rows = await conn.fetch(
                "SELECT id, floor(extract(epoch FROM last_heartbeat_at) * 1000)::int8 AS hb"
                " FROM workers",
                timeout=2,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return None
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=1)
        return {r["id"]: r["hb"] for r in rows}

    async def flush_lag(self) -> float | None:
        """`hb_flush_lag_seconds` from the API's /metrics; None when it isn't reported."""
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                text = (await client.get(self.api_url + "/metrics")).text
        except httpx.HTTPError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "hb_flush_lag_seconds":
                    return float(sample.value)
        return None

    # faults (the blocking ones run in a thread, so the load keeps going meanwhile)

    async def stop_postgres(self) -> None:
        """Fast shutdown (SIGINT): clients are cut off at once."""
        await asyncio.to_thread(self.postgres.stop)

    async def start_postgres(self) -> None:
        """Start again on the same data directory and port."""
        await asyncio.to_thread(self.postgres.start)

    def _postgres_group(self) -> int:
        assert self.postgres.proc is not None
        return self.postgres.proc.pid

    def hang_postgres(self) -> None:
        """SIGSTOP the postmaster and every backend: connections stay open, nothing answers.
        (Backends leave the postmaster's process group, so they are found by parent.)"""
        for pid in (self._postgres_group(), *_children(self._postgres_group())):
            _signal(pid, signal.SIGSTOP)

    def resume_postgres(self) -> None:
        for pid in (self._postgres_group(), *_children(self._postgres_group())):
            _signal(pid, signal.SIGCONT)

    def _redis_group(self) -> int:
        assert self.redis.proc is not None
        return self.redis.proc.pid

    def freeze_redis(self) -> None:
        _signal_group(self._redis_group(), signal.SIGSTOP)

    def thaw_redis(self) -> None:
        _signal_group(self._redis_group(), signal.SIGCONT)

    async def restart_redis_empty(self) -> None:
        """Stop Redis, delete whatever data it kept, start it again on the same port."""
        await asyncio.to_thread(self.redis.stop)
        for path in self.redis.directory.iterdir():
            if path.name == "redis.log":
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        await asyncio.to_thread(self.redis.start)

    def kill_flusher(self) -> None:
        self.flusher.kill()

    def start_flusher(self) -> None:
        self.flusher.start()


class BusyRedis:
    """A Lua script spinning inside Redis: every other client gets BUSY replies until SCRIPT KILL.

    The script only reads (TIME), so SCRIPT KILL may end it; it ends by itself after
    `max_seconds` should nobody kill it."""

    SCRIPT = """
local limit = tonumber(ARGV[1])
local t = redis.call('TIME')
local began = tonumber(t[1]) + tonumber(t[2]) / 1000000
while true do
  t = redis.call('TIME')
  if tonumber(t[1]) + tonumber(t[2]) / 1000000 - began >= limit then return 'done' end
end
"""

    def __init__(self, stack: Stack, threshold_ms: int = 100, max_seconds: float = 20.0) -> None:
        self.stack = stack
        self.threshold_ms = threshold_ms
        self.max_seconds = max_seconds
        self._runner: Redis | None = None
        self._script: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        """Run the script and return once Redis answers BUSY."""
        async with self.stack.redis_client() as admin:
            try:  # Redis 7 names it busy-reply-threshold; 6.x lua-time-limit (default 5 s)
                await admin.config_set("busy-reply-threshold", self.threshold_ms)
            except ResponseError:
                await admin.config_set("lua-time-limit", self.threshold_ms)
            self._runner = self.stack.redis_client(timeout=None)
            self._script = asyncio.create_task(self._runner.eval(self.SCRIPT, 0, self.max_seconds))

            if await poll_until(self.answers_busy, 10.0, interval=0.02) is None:
                raise AssertionError("Redis never answered BUSY while the script ran")

    async def answers_busy(self) -> bool:
        """A PING on a raw connection gets `-BUSY ...` (redis-py's callbacks would hide it)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.stack.redis.port)
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            reply = await asyncio.wait_for(reader.readline(), 2.0)
        finally:
            writer.close()
        return reply.startswith(b"-BUSY")

    async def stop(self) -> None:
        """SCRIPT KILL, and wait for the script's connection to get its answer."""
        async with self.stack.redis_client() as admin:
            with contextlib.suppress(ResponseError):  # NOTBUSY: it ended already
                await admin.script_kill()
        if self._script is not None:
            with contextlib.suppress(RedisError):
                await asyncio.wait_for(self._script, 10)
        if self._runner is not None:
            await self._runner.aclose()


# --- load -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Beat:
    """One request the load made, and what it got."""

    worker: str
    phase: str
    sent: float  # time.monotonic() when sent
    done: float  # ... when answered (or failed)
    status: int | None  # None: no HTTP answer at all
    error: str = ""
    retry_after: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def outcome(self) -> str:
        """'2xx', '503', '404', or what else it was (another status, or the transport error)."""
        if self.ok:
            return "2xx"
        if self.status is None:
            return self.error
        return str(self.status)


def tally(beats: Iterable[Beat]) -> Counter[str]:
    return Counter(b.outcome for b in beats)


def summary_counts(beats: Iterable[Beat]) -> dict[str, int]:
    counts = tally(beats)
    main = {k: counts.pop(k, 0) for k in ("2xx", "503", "404")}
    return {**main, "other": sum(counts.values())}


class Load:
    """Beats every worker in turn at `rate` beats/s in total (at most `max_in_flight` at once),
    each with a strictly increasing `sentAt` per worker, and records every answer.

    Each beat flips `openSessionCount` between 0 and 1. A beat that changes nothing meaningful
    marks a worker dirty at most once per HB_PERSIST_INTERVAL by design (its heartbeat may stay
    in Redis only, merged by the read API); a changing session count makes every acknowledged
    beat one that the flusher must bring to Postgres, so "acknowledged but never persisted" is
    a loss and nothing else."""

    def __init__(
        self,
        base_url: str,
        workers: Sequence[WorkerCredentials],
        rate: float = 100.0,
        max_in_flight: int = 100,
        timeout: float = 5.0,
    ) -> None:
        self.base_url = base_url
        self.workers = list(workers)
        self.rate = rate
        self.timeout = timeout
        self.phase = "before"
        self.beats: list[Beat] = []
        self.acked: dict[str, int] = {}  # worker id -> newest lastHeartbeatAt acknowledged, ms
        self._last_sent: dict[str, int] = {}
        self._sequence: Counter[str] = Counter()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._pacer: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._max_in_flight = max_in_flight

    async def __aenter__(self) -> Load:
        limits = httpx.Limits(
            max_connections=self._max_in_flight, max_keepalive_connections=self._max_in_flight
        )
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, limits=limits
        )
        self._pacer = asyncio.create_task(self._pace())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop sending and wait for every beat under way to be answered (or time out)."""
        if self._pacer is not None:
            self._pacer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pacer
            self._pacer = None
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _pace(self) -> None:
        interval = 1.0 / self.rate
        due = time.monotonic()
        n = 0
        while True:
            await self._slots.acquire()
            worker = self.workers[n % len(self.workers)]
            n += 1
            task = asyncio.create_task(self._beat(worker))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            due += interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:  # behind (a stall held every slot): carry on from now, don't burst
                due = time.monotonic()

    async def _beat(self, worker: WorkerCredentials) -> None:
        try:
            assert self._client is not None
            sent_ms = max(now_ms(), self._last_sent.get(worker.worker_id, 0) + 1)
            self._last_sent[worker.worker_id] = sent_ms
            self._sequence[worker.worker_id] += 1
            body = {
                "isActiveRecently": True,
                "sentAt": rfc3339_ms(sent_ms),
                "openSessionCount": self._sequence[worker.worker_id] % 2,
            }
            phase, sent = self.phase, time.monotonic()
            try:
                response = await self._client.post(
                    f"/v1/workers/{worker.worker_id}/activity-heartbeat",
                    json=body,
                    headers={"Authorization": f"Bearer {worker.token}"},
                )
            except httpx.HTTPError as exc:
                self.beats.append(
                    Beat(worker.worker_id, phase, sent, time.monotonic(), None, type(exc).__name__)
                )
                return
            beat = Beat(
                worker.worker_id, phase, sent, time.monotonic(), response.status_code,
                retry_after="retry-after" in response.headers,
            )  # fmt: skip
            self.beats.append(beat)
            if beat.ok:
                acked = parse_rfc3339_ms(response.json()["lastHeartbeatAt"])
                if acked > self.acked.get(worker.worker_id, -1):
                    self.acked[worker.worker_id] = acked
        finally:
            self._slots.release()

    # what it saw

    def in_phase(self, phase: str) -> list[Beat]:
        return [b for b in self.beats if b.phase == phase]

    def sent_between(self, start: float, end: float) -> list[Beat]:
        """Beats sent at or after `start` and answered by `end`."""
        return [b for b in self.beats if b.sent >= start and b.done <= end]

    def first_ok_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the first 2xx answered after it."""
        times = [b.done for b in self.beats if b.ok and b.done >= moment]
        return min(times) - moment if times else None

    def workers_ok_after(self, moment: float) -> set[str]:
        return {b.worker for b in self.beats if b.ok and b.done >= moment}

    def all_ok_after(self, moment: float) -> float | None:
        """Seconds from `moment` until every worker had a 2xx answered after it (or None)."""
        firsts: dict[str, float] = {}
        for b in self.beats:
            if b.ok and b.done >= moment:
                firsts[b.worker] = min(firsts.get(b.worker, b.done), b.done)
        if len(firsts) < len(self.workers):
            return None
        return max(firsts.values()) - moment


# --- a scenario's timeline --------------------------------------------------------------------


@dataclass
class CatchUp:
    lost: int  # workers whose newest acknowledged heartbeat Postgres doesn't hold
    at: float | None  # time.monotonic() when Postgres held every one of them
    examples: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.lost} workers' newest acknowledged beat is not in Postgres: " + "; ".join(
            self.examples
        )


async def catch_up(stack: Stack, acked: dict[str, int], within: float = 20.0) -> CatchUp:
    """Wait until Postgres holds, for every worker, a heartbeat at least as new as the newest
    one ingest acknowledged for it (in ms): nothing acknowledged is lost."""
    result = CatchUp(lost=len(acked), at=None)

    async def caught_up() -> bool:
        flusher_alive = stack.flusher.alive()  # read first: a dead one persists nothing more
        persisted = await stack.persisted_heartbeats()
        if persisted is None:
            return False
        missing = sorted(w for w, ms in acked.items() if (persisted.get(w) or -1) < ms)
        result.lost = len(missing)
        result.examples = [
            f"{w}: acknowledged {rfc3339_ms(acked[w])}, Postgres "
            + (rfc3339_ms(v) if (v := persisted.get(w)) is not None else "null")
            for w in missing[:3]
        ]
        if missing and not flusher_alive:
            raise _NoFlusher
        return not missing

    with contextlib.suppress(_NoFlusher):
        if await poll_until(caught_up, within, interval=0.2) is not None:
            result.at = time.monotonic()
    return result


class _NoFlusher(Exception):
    """No flusher is running: what Postgres lacks now it will not get."""


class Timeline:
    """Marks the fault's start and end on the load, so its answers fall into phases."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.fault_start = 0.0
        self.fault_end = 0.0

    async def warm_up(self, stack: Stack, within: float = 30.0) -> None:
        """Until every worker has had a beat acknowledged."""
        everyone = {w.worker_id for w in stack.workers}
        if await poll_until(lambda: everyone <= self.load.acked.keys(), within) is None:
            raise AssertionError(
                f"not every worker got a 2xx within {within:g} s: "
                f"{dict(tally(self.load.beats))}\n{stack.log_tails()}"
            )

    def fault_began(self) -> None:
        self.fault_start = time.monotonic()
        self.load.phase = "fault"

    async def hold(self, seconds: float, min_beats: int = 20) -> None:
        """Keep the fault for `seconds`, and until the load sent `min_beats` during it."""
        started = self.fault_start

        def enough() -> bool:
            long_enough = time.monotonic() - started >= seconds
            return long_enough and len(self.load.in_phase("fault")) >= min_beats

        await poll_until(enough, seconds + 30, interval=0.05)

    def fault_ended(self) -> None:
        self.fault_end = time.monotonic()
        self.load.phase = "after"

    @property
    def fault_seconds(self) -> float:
        return self.fault_end - self.fault_start

    async def first_ok(self, within: float = 15.0) -> float | None:
        """Seconds from the end of the fault to the first 2xx, waiting up to `within` seconds."""
        waited = await poll_until(
            lambda: self.load.first_ok_after(self.fault_end) is not None, within
        )
        return None if waited is None else self.load.first_ok_after(self.fault_end)


# --- the report -------------------------------------------------------------------------------


NOT_APPLICABLE = "n/a"


@dataclass
class Row:
    scenario: str
    counts: dict[str, int] = field(default_factory=dict)
    lost: int | None = None
    first_ok: float | str | None = None  # NOT_APPLICABLE when ingest was not what failed
    caught_up: float | None = None
    notes: str = ""
    result: str = "not run"

    def fill(
        self,
        stack: Stack,
        load: Load,
        timeline: Timeline,
        caught: CatchUp | None,
        first_ok: float | str | None,
        notes: str = "",
    ) -> None:
        self.counts = summary_counts(load.beats)
        self.first_ok = first_ok
        if caught is not None:
            self.lost = caught.lost
            self.caught_up = None if caught.at is None else caught.at - timeline.fault_end
        others = {k: v for k, v in tally(load.beats).items() if k not in ("2xx", "503", "404")}
        parts = [f"fault {timeline.fault_seconds:.1f} s"]
        for phase, label in (("before", "before"), ("fault", "during"), ("after", "after")):
            counts = summary_counts(load.in_phase(phase))
            parts.append(f"{label}: " + (" ".join(f"{k}={v}" for k, v in counts.items() if v)
                                          or "none"))  # fmt: skip
        if others:
            parts.append(f"other: {dict(others)}")
        parts += [f"{name} exited with {code}" for name, code in stack.exited()]
        if notes:
            parts.append(notes)
        self.notes = "; ".join(parts)


def _seconds(value: float | str | None) -> str:
    if isinstance(value, str):
        return value
    return "never" if value is None else f"{value:.1f}"


def report_table(rows: Sequence[Row]) -> str:
    header = (
        "| scenario | 2xx | 503 | 404 | other | ack'd beats lost | s to first 2xx | "
        "s to catch-up | result | notes |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in rows:
        c = r.counts
        lines.append(
            f"| {r.scenario} | {c.get('2xx', 0)} | {c.get('503', 0)} | {c.get('404', 0)} | "
            f"{c.get('other', 0)} | {'-' if r.lost is None else r.lost} | "
            f"{_seconds(r.first_ok)} | {_seconds(r.caught_up)} | {r.result} | {r.notes} |"
        )
    lines += [
        "",
        "Counts are every answer ingest gave the load during the scenario (before, during and "
        'after the fault). "ack\'d beats lost": workers whose newest 2xx-acknowledged '
        "heartbeat Postgres did not hold by the catch-up deadline. Seconds are from the end "
        "of the fault.",
    ]
    return "\n".join(lines)

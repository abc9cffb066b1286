"""The arq worker: `arq flusher.worker.WorkerSettings` (or `hb flusher`) runs it.

Cron jobs are `unique`, so with several flusher processes each run happens once; should one
happen twice anyway, the claims and the idempotent write make that harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from arq.connections import RedisSettings
from arq.cron import CronJob, cron
from arq.worker import run_worker
from redis.exceptions import RedisError

from flusher.drain import drain_all
from flusher.liveness_sweep import delete_expired_events, sweep_liveness
from flusher.persist import create_flusher_pool
from flusher.reconcile import reconcile_registry
from flusher.webhook_delivery import deliver_due
from shared.contract import keys
from shared.contract.registry import registry_lost
from shared.postgres.pool import POSTGRES_DOWN
from shared.redis.connect import REDIS_DOWN, connect_redis
from shared.settings import Settings, load_settings
from shared.tracing import span, start_tracing, stop_tracing

log = logging.getLogger("hb.flusher")

UNAVAILABLE = POSTGRES_DOWN + REDIS_DOWN
PROBE_TIMEOUT = 1.0


class Backoff:
    """After a failure, skip runs for a delay that doubles up to `ceiling` seconds."""

    def __init__(self, first: float = 1.0, ceiling: float = 60.0) -> None:
        self.first, self.ceiling = first, ceiling
        self.delay = 0.0
        self.until = 0.0

    def ready(self) -> bool:
        return time.monotonic() >= self.until

    def failed(self) -> float:
        self.delay = min(self.ceiling, max(self.first, self.delay * 2))
        self.until = time.monotonic() + self.delay
        return self.delay

    def succeeded(self) -> None:
        self.delay, self.until = 0.0, 0.0


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    ctx["traced"] = start_tracing(settings, "hb-flusher")
    ctx["hot"] = connect_redis(settings, max_connections=16)
    # min_size=0: the worker starts (and keeps ingest's backlog in Redis) while Postgres is down.
    ctx["pool"] = await create_flusher_pool(settings.database_url, min_size=0)
    ctx["backoff"] = Backoff()
    ctx["reconcile_pending"] = False  # the reconcile job runs at startup


async def shutdown(ctx: dict[str, Any]) -> None:
    if "pool" in ctx:
        await ctx["pool"].close()
    if "hot" in ctx:
        await ctx["hot"].aclose()
    if ctx.get("traced"):
        stop_tracing()


async def _reconcile(ctx: dict[str, Any]) -> None:
    with span("reconcile"):
        await reconcile_registry(ctx["hot"], ctx["pool"], ctx["settings"])
    ctx["reconcile_pending"] = False


async def stores_answer(ctx: dict[str, Any]) -> bool:
    """Both stores answer a trivial request within PROBE_TIMEOUT: while backing off, this is
    what lets a flush run as soon as they are back rather than when the delay runs out."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await ctx["hot"].ping()
            await ctx["pool"].fetchval("SELECT 1")
    except UNAVAILABLE:
        return False
    return True


async def flush_dirty(ctx: dict[str, Any]) -> int:
    """Persist dirty workers; first rebuild the registry if Redis lost it. Returns rows written."""
    backoff: Backoff = ctx["backoff"]
    if not backoff.ready() and not await stores_answer(ctx):
        return 0
    try:
        # A span per run that reaches the stores (not per run skipped while backing off); an
        # exception leaving it is recorded on it before the backoff below takes it.
        with span("flush_dirty") as run:
            if ctx["reconcile_pending"] or await registry_lost(ctx["hot"], ctx["settings"].shards):
                await _reconcile(ctx)
            written = await drain_all(ctx["hot"], ctx["pool"], ctx["settings"])
            if written:
                await ctx["hot"].incrby(keys.ROWS_PERSISTED, written)
            run.set_attribute("hb.rows_written", written)
    except UNAVAILABLE as exc:
        delay = backoff.failed()
        log.warning("flush failed (%s: %s); dirty workers stay in Redis, retrying in %.0f s",
                    type(exc).__name__, exc, delay)  # fmt: skip
        return 0
    backoff.succeeded()
    if written:
        log.debug("persisted %d workers", written)
    return written


async def reconcile(ctx: dict[str, Any]) -> None:
    """Periodic (and at start) re-sync of the registry; on failure `flush_dirty` retries it."""
    try:
        await _reconcile(ctx)
    except UNAVAILABLE as exc:
        ctx["reconcile_pending"] = True
        log.warning("registry reconcile failed (%s: %s); retrying with the next flush",
                    type(exc).__name__, exc)  # fmt: skip


async def sweep_events(ctx: dict[str, Any]) -> int:
    """Announce liveness transitions as events and drop expired ones. Returns events written."""
    settings: Settings = ctx["settings"]
    try:
        with span("sweep_liveness") as run:
            swept = await sweep_liveness(ctx["hot"], ctx["pool"], settings)
            await delete_expired_events(ctx["pool"], settings.event_retention)
            run.set_attribute("hb.events_written", swept.written)
    except UNAVAILABLE as exc:
        # The watermark and pending events are in Redis: the next run picks up where this
        # one stopped.
        log.warning("liveness sweep failed (%s: %s); retrying with the next one",
                    type(exc).__name__, exc)  # fmt: skip
        return 0
    return swept.written


async def deliver_webhooks(ctx: dict[str, Any]) -> int:
    """Post the due webhook deliveries; returns how many were attempted."""
    try:
        with span("deliver_webhooks"):
            return len(await deliver_due(ctx["pool"], ctx["settings"]))
    except UNAVAILABLE as exc:
        log.warning("webhook delivery run failed (%s: %s); retrying with the next one",
                    type(exc).__name__, exc)  # fmt: skip
        return 0


def every(seconds: float) -> dict[str, Any]:
    """arq cron fields for "every `seconds`", rounded to what a cron schedule can say."""
    if seconds < 60:
        return {"second": set(range(0, 60, max(1, round(seconds))))}
    if seconds < 3600:
        return {"minute": set(range(0, 60, max(1, round(seconds / 60)))), "second": 0}
    return {"hour": set(range(0, 24, max(1, round(seconds / 3600)))), "minute": 0, "second": 0}


def cron_jobs(settings: Settings) -> list[CronJob]:
    # keep_result lets a slower worker see that a run was already taken and not enqueue it again.
    return [
        cron(flush_dirty, **every(settings.flush_interval), keep_result=60),
        cron(reconcile, **every(settings.reconcile_interval), run_at_startup=True, keep_result=60),
        cron(sweep_events, **every(settings.flush_interval), keep_result=60),
        # Every second, and each run bounded by HB_WEBHOOK_TIMEOUT: a slow receiver holds one
        # job slot at most that long.
        cron(deliver_webhooks, **every(1.0), keep_result=60),
    ]


def worker_settings(settings: Settings) -> type:
    """An arq WorkerSettings class for `settings`."""

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["settings"] = settings
        await startup(ctx)

    return type(
        "WorkerSettings",
        (),
        {
            "functions": [],
            "cron_jobs": cron_jobs(settings),
            # arq has no cluster client: with a Redis Cluster its queue lives elsewhere.
            "redis_settings": RedisSettings.from_dsn(
                settings.queue_redis_url or settings.redis_url
            ),
            "on_startup": on_startup,
            "on_shutdown": shutdown,
        },
    )


# Seconds before starting arq's worker again after it ended on an error: arq itself gives up on
# any error of its own Redis connection (a restart, a BUSY reply, a dropped socket).
RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0)
# A worker that ran this long before failing starts its delays from the first again.
STEADY_SECONDS = 60.0


def run_until_stopped(settings: Settings) -> None:
    """Run the arq worker until a signal stops it, starting it again whenever Redis (or the
    network) ends it, so flushes and reconciles resume by themselves."""
    failures = 0
    while True:
        asyncio.set_event_loop(asyncio.new_event_loop())
        started = time.monotonic()
        try:
            run_worker(worker_settings(settings))
            return  # a signal stopped it
        except (RedisError, OSError) as exc:
            if time.monotonic() - started > STEADY_SECONDS:
                failures = 0
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            failures += 1
            log.warning("flusher stopped (%s: %s); starting again in %.1f s",
                        type(exc).__name__, exc, delay)  # fmt: skip
            time.sleep(delay)


def __getattr__(name: str) -> type:
    # Built on first use, so importing this module doesn't require the environment to be set.
    if name == "WorkerSettings":
        return worker_settings(load_settings(require_token_keys=False))
    raise AttributeError(name)

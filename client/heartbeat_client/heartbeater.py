"""The loop that sends a worker's heartbeats, in asyncio or in a thread of its own.

A heartbeat client runs on every worker of a fleet, so its manners add up: it spreads its
beats (jitter), yields when ingest asks (Retry-After), backs off when ingest is failing, and
gives up loudly when retrying cannot help (a revoked token, a deleted worker, a body ingest
refuses) instead of hammering ingest for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, Self, TypeVar

import httpx

from .beats import (
    BeatSender,
    Clock,
    LogSource,
    OnBeat,
    OnFailure,
    Route,
    StateSource,
    SystemInfoSource,
    call_hook,
)
from .timing import Schedule

Sleep = Callable[[float], Awaitable[object]]
OnStop = Callable[[BaseException | None], object]

# A beat that needs more than this is failing; waiting longer only delays the retry.
DEFAULT_TIMEOUT: Final = httpx.Timeout(10.0, connect=5.0)
# The longest a stop waits for Kubiya's disconnect to be answered.
DISCONNECT_TIMEOUT: Final = 5.0

_T = TypeVar("_T")


class _Stopped:
    """Marks work abandoned because stop() was asked for."""


_STOPPED: Final = _Stopped()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Heartbeater:
    """Sends one worker's heartbeats every `interval` seconds until stopped.

    Run it with `start()`/`stop()` (a daemon thread with its own event loop), with
    `async with Heartbeater(...)` (a task beside the block), or with `await hb.run()`.

    The token is kept only in the request headers: it is never logged, and `repr()` leaves it
    out, so a heartbeater can be printed or logged freely.
    """

    def __init__(
        self,
        ingest_url: str,
        worker_id: str,
        token: str,
        *,
        interval: float = 30.0,
        route: Route = "den",
        state: StateSource | None = None,
        environment_name: str | None = None,
        system_info: SystemInfoSource | None = None,
        logs: LogSource | None = None,
        full_interval: float = 300.0,
        jitter: float = 0.1,
        backoff_base: float = 1.0,
        max_backoff: float = 60.0,
        max_retry_after: float = 300.0,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        rng: random.Random | None = None,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = _utc_now,
        on_beat: OnBeat | None = None,
        on_failure: OnFailure | None = None,
        on_stop: OnStop | None = None,
    ) -> None:
        """Check everything up front: a mistake here would otherwise surface as retries.

        `state` is called before every beat and returns a `DenState` or a `KubiyaState` (to
        match `route`), directly or as an awaitable; without it a Den beat says "alive, not
        active" and a Kubiya beat says "active". On the "kubiya-worker" route (Kubiya's
        per-worker route, as its released worker uses it) the first beat and then one every
        `full_interval` seconds is full: it adds what `system_info` returns and the lines `logs`
        returns (those logged since its last call, kept until a full beat is accepted), and a
        stop sends a disconnect. `rng` defaults to a fresh `random.Random()`
        seeded by the OS, never the shared module state, which forked workers would share.
        """
        if client is not None and transport is not None:
            raise ValueError("pass either client or transport, not both")
        schedule = Schedule(interval, jitter, backoff_base, max_backoff, max_retry_after)
        rng = rng if rng is not None else random.Random()
        self._beats = BeatSender(
            ingest_url=ingest_url,
            worker_id=worker_id,
            token=token,
            route=route,
            environment_name=environment_name,
            state=state,
            schedule=schedule,
            rng=rng,
            clock=clock,
            on_beat=on_beat,
            on_failure=on_failure,
            system_info=system_info,
            logs=logs,
            full_interval=full_interval,
        )
        self._schedule = schedule
        self._rng = rng
        self._timeout = timeout
        self._client = client
        self._transport = transport
        self._sleep = sleep
        self._on_stop = on_stop
        self._error: BaseException | None = None
        self._block_error: BaseException | None = None  # what ended an `async with` block
        # Shared with stop(), which may come from any thread.
        self._lock = threading.Lock()
        self._stop_requested = threading.Event()
        self._running = False
        self._generation = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (
            f"Heartbeater(worker_id={self._beats.worker_id!r}, route={self._beats.route!r}, "
            f"interval={self._schedule.interval!r}, running={self._running!r})"
        )

    @property
    def beats_sent(self) -> int:
        """Beats ingest accepted (2xx)."""
        return self._beats.beats_sent

    @property
    def beats_failed(self) -> int:
        """Beats that were not accepted: errors, timeouts, refusals."""
        return self._beats.beats_failed

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last accepted beat; the exponent of the current backoff."""
        return self._beats.consecutive_failures

    @property
    def error(self) -> BaseException | None:
        """Why the last run ended on its own (usually a `HeartbeatRejected`), else None."""
        return self._error

    @property
    def running(self) -> bool:
        return self._running

    # -- asyncio -------------------------------------------------------------------------

    async def run(self) -> None:
        """Beat until `stop()` (from any thread), cancellation, or a fatal answer.

        Raises `HeartbeatRejected` when ingest refuses in a way retrying cannot fix, and
        whatever the `state` callback raises: a beat that cannot say what it is would mislead.
        A `stop()` that came before `run()` makes it return at once (`start()` and
        `async with` clear it).
        """
        with self._lock:
            generation = self._claim()
        await self._run_claimed(generation)

    async def __aenter__(self) -> Self:
        with self._lock:
            generation = self._claim()
            self._stop_requested.clear()
        task = asyncio.create_task(
            self._run_claimed(generation), name=f"heartbeat {self._beats.worker_id}"
        )
        # A task cancelled before its first step never runs its own cleanup.
        task.add_done_callback(lambda _: self._finish(generation, None))
        self._task = task
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the task and surface its fatal error, unless the block is already raising.

        A worker whose heartbeats were refused should hear about it when its block ends,
        rather than find out from a dashboard that it went offline.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._block_error = exc
        self._request_stop()
        try:
            await task
        except Exception:
            if exc is None:
                raise
            # The block's own exception wins; this one stays available as `error`.

    # -- thread --------------------------------------------------------------------------

    def start(self) -> None:
        """Beat from a daemon thread with its own event loop; returns at once.

        A daemon thread, so a program that forgets `stop()` still exits. An injected
        `client` is refused here: an AsyncClient belongs to the loop that first used it,
        and this thread's loop is new; pass `transport=` instead.
        """
        if self._client is not None:
            raise ValueError("thread mode creates its own client; pass transport= instead")
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError("this Heartbeater is already running")
            generation = self._claim()
            self._stop_requested.clear()
            thread = threading.Thread(
                target=self._run_in_thread,
                args=(generation,),
                name=f"heartbeat {self._beats.worker_id}",
                daemon=True,
            )
            self._thread = thread
        try:
            thread.start()
        except BaseException:
            self._finish(generation, None)
            raise

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Ask the heartbeater to stop and, in thread mode, join its thread.

        Safe from any thread, from inside a hook, before `start()` and after the end. The
        wait and any request in flight are abandoned, so this returns within moments.
        Returns False only if the thread was still alive after `timeout` seconds.
        """
        self._request_stop()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run_in_thread(self, generation: int) -> None:
        try:
            asyncio.run(self._run_claimed(generation))
        except Exception:
            pass  # the run has recorded it as `error` and passed it to on_stop
        finally:
            self._finish(generation, None)  # in case the loop never ran the coroutine

    # -- lifecycle -----------------------------------------------------------------------

    def _claim(self) -> int:
        """Mark a run as started, synchronously, so that `running` is true from here on.

        Callers hold the lock. Each run gets a generation number so that the late cleanup
        of one run can never end the next.
        """
        if self._running:
            raise RuntimeError("this Heartbeater is already running")
        self._running = True
        self._error = None
        self._block_error = None
        self._generation += 1
        return self._generation

    async def _run_claimed(self, generation: int) -> None:
        wake = asyncio.Event()
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._wake = wake
        # After publishing the loop, so a concurrent stop() is seen one way or the other.
        if self._stop_requested.is_set():
            wake.set()
        error: BaseException | None = None
        try:
            async with self._open_client() as client:
                await self._beat_until_stopped(client, wake)
                if self._beats.route == "kubiya-worker":  # stopped as asked: say so
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._beats.disconnect(client, self._block_error), DISCONNECT_TIMEOUT
                        )
        except Exception as exc:
            error = exc
            raise
        finally:
            self._finish(generation, error)

    def _finish(self, generation: int, error: BaseException | None) -> None:
        """End a run once: record why and tell on_stop; later calls for it do nothing."""
        with self._lock:
            if not self._running or self._generation != generation:
                return
            self._running = False
            self._loop = None
            self._wake = None
            self._error = error
        call_hook(self._on_stop, error)

    def _request_stop(self) -> None:
        self._stop_requested.set()
        with self._lock:
            loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed while we looked
                loop.call_soon_threadsafe(wake.set)

    # -- the loop ------------------------------------------------------------------------

    def _open_client(self) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        if self._client is not None:
            return contextlib.nullcontext(self._client)  # the caller owns and closes it
        return httpx.AsyncClient(
            transport=self._transport, timeout=self._timeout, follow_redirects=False
        )

    async def _beat_until_stopped(self, client: httpx.AsyncClient, wake: asyncio.Event) -> None:
        delay = self._schedule.first_delay(self._rng)
        while True:
            if isinstance(await self._unless_stopped(self._sleep(delay), wake), _Stopped):
                return
            next_delay = await self._unless_stopped(self._beats.send(client), wake)
            if isinstance(next_delay, _Stopped):
                return
            delay = next_delay

    async def _unless_stopped(self, work: Awaitable[_T], wake: asyncio.Event) -> _T | _Stopped:
        """Await `work`, abandoning it as soon as stop() is asked for."""
        if self._stop_requested.is_set():
            if inspect.iscoroutine(work):
                work.close()
            return _STOPPED
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
        finally:
            task.cancel()
            waiter.cancel()
            await asyncio.wait((task, waiter))
        if task.cancelled():
            return _STOPPED
        return task.result()

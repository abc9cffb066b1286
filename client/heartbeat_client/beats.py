"""One beat: the request for the chosen route, its answer, and the wait before the next one.

Kept apart from the heartbeater's lifecycle (threads, tasks, stopping) so that what a beat
sends and how an answer is judged can be read in one place.
"""

from __future__ import annotations

import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx

from .errors import HeartbeatRejected
from .outcomes import Outcome, classify
from .payloads import (
    MAX_LOG_LINES,
    DenState,
    KubiyaState,
    check_log_lines,
    check_system_info,
    den_body,
    disconnect_body,
    kubiya_body,
    kubiya_worker_body,
)
from .timing import Schedule, parse_retry_after
from .version import __version__

Route = Literal["den", "kubiya", "kubiya-worker"]
ROUTES = ("den", "kubiya", "kubiya-worker")
State = DenState | KubiyaState
StateSource = Callable[[], State | Awaitable[State]]
SystemInfoSource = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]
LogSource = Callable[[], Sequence[str] | Awaitable[Sequence[str]]]
Clock = Callable[[], datetime]
OnBeat = Callable[[int, float], object]
OnFailure = Callable[[BaseException | int, float | None], object]

log = logging.getLogger("heartbeat_client")


class BeatSender:
    """Sends beats for one worker and counts how they went.

    Used from one event loop at a time; the counters are plain ints that other threads may
    read. The token lives only in the headers, and no message here ever includes them.
    """

    def __init__(
        self,
        *,
        ingest_url: str,
        worker_id: str,
        token: str,
        route: Route,
        environment_name: str | None,
        state: StateSource | None,
        schedule: Schedule,
        rng: random.Random,
        clock: Clock,
        on_beat: OnBeat | None,
        on_failure: OnFailure | None,
        system_info: SystemInfoSource | None = None,
        logs: LogSource | None = None,
        full_interval: float = 300.0,
    ) -> None:
        _check_url(ingest_url)
        if not isinstance(worker_id, str) or not worker_id:
            raise ValueError("worker_id must be a non-empty string")
        _check_token(token)
        if route not in ROUTES:
            raise ValueError(f"route must be one of {', '.join(ROUTES)}, got {route!r}")
        if route == "kubiya" and not environment_name:
            raise ValueError("Kubiya's route needs environment_name")
        if route != "kubiya-worker" and (system_info is not None or logs is not None):
            raise ValueError("system_info and logs go on the 'kubiya-worker' route only")
        if not full_interval > 0:
            raise ValueError(f"full_interval must be positive, got {full_interval!r}")

        self.worker_id = worker_id
        self.route: Route = route
        self._environment_name = environment_name or ""
        self._state: StateSource = state or (
            _default_den_state if route == "den" else _default_kubiya_state
        )
        self._schedule = schedule
        self._rng = rng
        self._clock = clock
        self._on_beat = on_beat
        self._on_failure = on_failure
        self._system_info = system_info
        self._logs = logs
        self._full_interval = full_interval
        # Kubiya's per-worker route: when the last full beat was accepted (None: none yet, so
        # the first beat is full), and the log lines taken since, kept until one is.
        self._last_full: datetime | None = None
        self._unsent_lines: list[str] = []
        self._full_at: datetime | None = None  # the beat in flight is full, taken at this time
        base = ingest_url.rstrip("/")
        worker_path = quote(worker_id, safe="")
        if route == "den":
            self._url = f"{base}/v1/workers/{worker_path}/activity-heartbeat"
        elif route == "kubiya":
            self._url = f"{base}/api/v1/workers/heartbeat"
        else:
            self._url = f"{base}/api/v1/workers/{worker_path}/heartbeat"
        self._disconnect_url = f"{base}/api/v1/workers/{worker_path}/disconnect"
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": f"heartbeat-client/{__version__}",
        }
        self.beats_sent = 0
        self.beats_failed = 0
        self.consecutive_failures = 0

    async def send(self, client: httpx.AsyncClient) -> float:
        """Send one beat; return the delay before the next, or raise HeartbeatRejected."""
        body = await self._body()
        started = time.perf_counter()
        try:
            response = await client.post(self._url, json=body, headers=self._headers)
        except httpx.RequestError as exc:
            delay = self._schedule.after_failure(self.consecutive_failures, self._rng)
            return self._failed(exc, delay)
        call_hook(self._on_beat, response.status_code, time.perf_counter() - started)
        return self._judge(response)

    def _judge(self, response: httpx.Response) -> float:
        status = response.status_code
        outcome = classify(status)
        if outcome is Outcome.ACCEPTED:
            if self.consecutive_failures:
                log.info(
                    "heartbeats for worker %s resumed after %d failed beats",
                    self.worker_id,
                    self.consecutive_failures,
                )
            self.beats_sent += 1
            self.consecutive_failures = 0
            if self._full_at is not None:
                self._last_full, self._unsent_lines = self._full_at, []
            return self._schedule.after_success(self._rng)
        if outcome is Outcome.REJECTED:
            self.beats_failed += 1
            call_hook(self._on_failure, status, None)
            rejection = HeartbeatRejected(status, response.text)
            log.error("heartbeats for worker %s stopped: %s", self.worker_id, rejection)
            raise rejection
        retry_after = None
        if outcome is Outcome.THROTTLED:
            retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
        delay = self._schedule.after_failure(self.consecutive_failures, self._rng, retry_after)
        return self._failed(status, delay)

    async def _body(self) -> dict[str, Any]:
        state: object = await _resolved(self._state())
        if self.route == "den":
            if not isinstance(state, DenState):
                raise TypeError(f"Den's route needs a DenState, got {type(state).__name__}")
            return den_body(state, self._clock())
        if not isinstance(state, KubiyaState):
            raise TypeError(f"Kubiya's route needs a KubiyaState, got {type(state).__name__}")
        if self.route == "kubiya":
            return kubiya_body(state, self.worker_id, self._environment_name)
        now = self._clock()
        last = self._last_full
        full = last is None or not 0 <= (now - last).total_seconds() < self._full_interval
        self._full_at = now if full else None
        if not full:
            return kubiya_worker_body(state, None, ())
        info = None
        if self._system_info is not None:
            info = check_system_info(await _resolved(self._system_info()))
        if self._logs is not None:
            self._unsent_lines += check_log_lines(await _resolved(self._logs()))
            del self._unsent_lines[:-MAX_LOG_LINES]  # ingest keeps no more
        return kubiya_worker_body(state, info, self._unsent_lines)

    async def disconnect(self, client: httpx.AsyncClient, error: BaseException | None) -> None:
        """Tell Kubiya's per-worker route that the worker stops (best effort: a failure is
        logged, not raised, since the worker is going away either way)."""
        try:
            response = await client.post(
                self._disconnect_url, json=disconnect_body(error), headers=self._headers
            )
        except httpx.RequestError as exc:
            log.warning("disconnect of worker %s failed (%s)", self.worker_id, type(exc).__name__)
            return
        if not response.is_success:
            log.warning(
                "disconnect of worker %s answered HTTP %d", self.worker_id, response.status_code
            )

    def _failed(self, failure: BaseException | int, delay: float) -> float:
        self.beats_failed += 1
        self.consecutive_failures += 1
        # One warning per outage, not one per retry: a long outage would flood the log.
        emit = log.warning if self.consecutive_failures == 1 else log.debug
        reason = f"HTTP {failure}" if isinstance(failure, int) else type(failure).__name__
        emit(
            "heartbeat for worker %s failed (%s); retrying in %.1f s",
            self.worker_id,
            reason,
            delay,
        )
        call_hook(self._on_failure, failure, delay)
        return delay


_T = TypeVar("_T")


async def _resolved(value: _T | Awaitable[_T]) -> _T:
    return await value if inspect.isawaitable(value) else value


def call_hook(hook: Callable[..., object] | None, *args: object) -> None:
    """Run a hook; a broken metrics hook must not stop a worker from looking alive."""
    if hook is None:
        return
    try:
        hook(*args)
    except Exception:
        log.exception("heartbeat hook %s raised", getattr(hook, "__name__", hook))


def _default_den_state() -> DenState:
    return DenState(is_active_recently=False)


def _default_kubiya_state() -> KubiyaState:
    return KubiyaState()


def _check_url(url: object) -> None:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError("ingest_url must be an http:// or https:// URL")
    try:
        httpx.URL(url)
    except httpx.InvalidURL:
        # Without the details: a URL may carry credentials.
        raise ValueError("ingest_url is not a valid URL") from None


def _check_token(token: object) -> None:
    # The message never quotes the token: it would end up in a traceback or a log.
    if not isinstance(token, str) or not token:
        raise ValueError("token must be a non-empty string")
    if not (token.isascii() and token.isprintable()) or any(c.isspace() for c in token):
        raise ValueError("token must be printable ASCII without spaces")

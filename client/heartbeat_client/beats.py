"""One beat: the request for the chosen route, its answer, and the wait before the next one.

Kept apart from the heartbeater's lifecycle (threads, tasks, stopping) so that what a beat
sends and how an answer is judged can be read in one place.
"""

from __future__ import annotations

import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx

from .errors import HeartbeatRejected
from .outcomes import Outcome, classify
from .payloads import DenState, KubiyaState, den_body, kubiya_body
from .timing import Schedule, parse_retry_after
from .version import __version__

Route = Literal["den", "kubiya"]
State = DenState | KubiyaState
StateSource = Callable[[], State | Awaitable[State]]
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
    ) -> None:
        _check_url(ingest_url)
        if not isinstance(worker_id, str) or not worker_id:
            raise ValueError("worker_id must be a non-empty string")
        _check_token(token)
        if route not in ("den", "kubiya"):
            raise ValueError(f"route must be 'den' or 'kubiya', got {route!r}")
        if route == "kubiya" and not environment_name:
            raise ValueError("Kubiya's route needs environment_name")

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
        base = ingest_url.rstrip("/")
        if route == "den":
            self._url = f"{base}/v1/workers/{quote(worker_id, safe='')}/activity-heartbeat"
        else:
            self._url = f"{base}/api/v1/workers/heartbeat"
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
        produced = self._state()
        state: object = await produced if inspect.isawaitable(produced) else produced
        if self.route == "den":
            if not isinstance(state, DenState):
                raise TypeError(f"Den's route needs a DenState, got {type(state).__name__}")
            return den_body(state, self._clock())
        if not isinstance(state, KubiyaState):
            raise TypeError(f"Kubiya's route needs a KubiyaState, got {type(state).__name__}")
        return kubiya_body(state, self.worker_id, self._environment_name)

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

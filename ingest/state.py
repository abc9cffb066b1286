"""What the ingest routes share in one process: settings, Redis, the group committer, metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import Histogram
from redis.asyncio import Redis

from ingest.group_commit import GroupCommitter
from shared.contract.registry import api_key_org
from shared.contract.tokens import WorkerClaim, hash_secret, verify_worker_token
from shared.redis.cluster_pipes import ClusterPipes
from shared.redis.pipe import RedisPipe
from shared.settings import Settings
from shared.web.metrics import ServiceMetrics

VERIFIED_TOKENS_KEPT = 200_000  # ~40 MB at most; a miss only costs one HMAC
OUTAGE_REPORT_EVERY = 10.0  # seconds between warnings while Redis keeps failing beats
# An outage is over once a beat is stored this long after the last refused one: a cluster with
# one node down stores some beats and refuses others all along, and is not "back" each time.
RECOVERED_AFTER = 1.0

log = logging.getLogger("hb.ingest")


class IngestMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__()
        self._accepted = self.tallied_counter(
            "hb_beats_accepted", "Heartbeats stored in Redis.", "contract"
        )
        self._rejected = self.tallied_counter(
            "hb_beats_rejected", "Heartbeats refused, by reason.", "reason"
        )
        self.batch_size = Histogram(
            "hb_group_commit_batch_size", "Beats per group-commit round trip.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=self.registry,
        )  # fmt: skip
        self.redis_latency = Histogram(
            "hb_redis_write_seconds", "Duration of one group-commit round trip to Redis.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )  # fmt: skip

    def accepted(self, contract: str) -> None:
        self._accepted[contract] += 1

    def rejected(self, reason: str) -> None:
        self._rejected[reason] += 1


class IngestState:
    """Created with the app; `start` connects it when the lifespan begins."""

    settings: Settings
    redis: Redis
    pipe: RedisPipe | ClusterPipes  # the beats' own connection(s)
    committer: GroupCommitter
    retry_after: list[tuple[bytes, bytes]]

    def __init__(self) -> None:
        self.metrics = IngestMetrics()
        self._verified: dict[str, WorkerClaim] = {}
        self._api_keys: dict[str, tuple[str, float]] = {}
        self.redis_failing = False  # beats were refused and no recovery was reported since
        self._refused = 0  # beats refused since the last report
        self._next_report = 0.0
        self._last_refused = 0.0

    def unavailable(self, exc: BaseException) -> None:
        """A beat answered 503 because Redis failed: counted, and logged once, then at most
        every OUTAGE_REPORT_EVERY seconds with how many beats were refused meanwhile."""
        self.metrics.rejected("unavailable")
        self._refused += 1
        self.redis_failing = True
        now = self._last_refused = time.monotonic()
        if now >= self._next_report:
            log.warning(
                "Redis unavailable (%s): beats are answered 503; %d refused since the last report",
                exc, self._refused,
            )  # fmt: skip
            self._refused = 0
            self._next_report = now + OUTAGE_REPORT_EVERY

    def available(self) -> None:
        """A beat was stored after beats were refused: once none was refused for
        RECOVERED_AFTER seconds, say the outage is over."""
        if time.monotonic() - self._last_refused < RECOVERED_AFTER:
            return
        log.warning(
            "Redis available again: beats are stored; %d refused since the last report",
            self._refused,
        )
        self.redis_failing = False
        self._refused = 0
        self._next_report = 0.0

    def start(
        self,
        settings: Settings,
        redis: Redis,
        committer: Callable[..., GroupCommitter] = GroupCommitter,
    ) -> None:
        self.settings = settings
        self.redis = redis
        if settings.redis_cluster:
            self.pipe = ClusterPipes(settings.redis_url, settings.redis_timeout)
        else:
            self.pipe = RedisPipe(settings.redis_url, settings.redis_timeout)
        self.committer = committer(
            redis, self.pipe, shards=settings.shards, persist_interval=settings.persist_interval,
            max_per_call=settings.max_beats_per_call, metrics=self.metrics,
        )  # fmt: skip
        self.retry_after = [(b"retry-after", str(settings.retry_after).encode())]

    def verify_token(self, token: str) -> WorkerClaim | None:
        """`verify_worker_token`, remembered: a worker sends the same token on every beat, and
        the HMAC is a tenth of a beat's cost. Only well-signed tokens are kept; revocation is
        still checked per beat against the registry."""
        claim = self._verified.get(token)
        if claim is None:
            claim = verify_worker_token(self.settings.token_keys, token)
            if claim is not None:
                if len(self._verified) >= VERIFIED_TOKENS_KEPT:
                    self._verified.clear()
                self._verified[token] = claim
        return claim

    async def api_key_org(self, api_key: str) -> str | None:
        """The org of an API key (as sent); cached briefly so revocation reaches ingest within
        the TTL. Unknown keys are not cached, so a key works in ingest as soon as it is created.
        Cached by the key itself, like verified tokens: a worker sends the same key on every
        beat, and its SHA-256 was a tenth of a beat's cost in this process."""
        now = time.monotonic()
        cached = self._api_keys.get(api_key)
        if cached is not None and cached[1] > now:
            return cached[0]
        org = await api_key_org(self.redis, hash_secret(api_key))
        if org is None:
            self._api_keys.pop(api_key, None)
            return None
        if len(self._api_keys) > 10_000:
            self._api_keys.clear()
        self._api_keys[api_key] = (org, now + self.settings.apikey_cache_ttl)
        return org

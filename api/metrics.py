"""`GET /metrics` of the API: how far the flusher is behind, read from the hot store.

The dirty sets are scored by when a worker first became dirty, so the lowest score over all
shards is the age of the oldest beat that Postgres does not have yet.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from api.state import ApiState
from shared.contract import keys
from shared.contract.times import now_ms
from shared.redis.connect import REDIS_DOWN
from shared.web.metrics import CONTENT_TYPE


async def flush_backlog(state: ApiState) -> tuple[float, int, int, int]:
    """(seconds since the oldest worker Postgres is behind on became dirty, dirty workers,
    claimed workers, rows the flushers persisted so far)."""
    pipe = state.redis.pipeline(transaction=False)
    pipe.get(keys.ROWS_PERSISTED)
    for shard in range(state.settings.shards):
        pipe.zrange(keys.dirty_key(shard), 0, 0, withscores=True)
        pipe.zcard(keys.dirty_key(shard))
        pipe.hkeys(keys.claims_key(shard))
    persisted, *replies = await pipe.execute()
    claims = [keys.parse_claim_name(name) for names in replies[2::3] for name in names]
    # Claimed workers are not in Postgres yet either: they count from when they became dirty.
    since = [float(r[0][1]) for r in replies[0::3] if r]
    since += [c.dirty_since_ms for c in claims if c.dirty_since_ms is not None]
    lag = max(0.0, (now_ms() - min(since)) / 1000) if since else 0.0
    return lag, sum(replies[1::3]), sum(c.workers for c in claims), int(persisted or 0)


class _Snapshot(Collector):
    """Values read for one scrape, exposed as they were read."""

    def __init__(self, *families: GaugeMetricFamily | CounterMetricFamily) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


async def metrics_endpoint(request: Request) -> Response:
    state: ApiState = request.app.state.api
    up = GaugeMetricFamily("hb_redis_up", "1 when the API reached Redis for this scrape.")
    try:
        lag, dirty, claimed, rows = await flush_backlog(state)
    except REDIS_DOWN:
        up.add_metric([], 0)
        snapshot = _Snapshot(up)
    else:
        up.add_metric([], 1)
        snapshot = _Snapshot(
            up,
            GaugeMetricFamily(
                "hb_flush_lag_seconds",
                "Age of the oldest heartbeat not yet persisted to Postgres.",
                value=lag,
            ),
            GaugeMetricFamily(
                "hb_dirty_workers", "Workers with heartbeats waiting to be persisted.", value=dirty
            ),
            GaugeMetricFamily(
                "hb_inflight_workers", "Workers claimed by a flusher right now.", value=claimed
            ),
            CounterMetricFamily(
                "hb_rows_persisted", "Worker rows the flushers wrote to Postgres.", value=rows
            ),
        )
    return Response(state.metrics.render([snapshot]), media_type=CONTENT_TYPE)

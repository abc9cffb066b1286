"""`GET /metrics` of the API: how far the flusher is behind, read from the hot store.

The dirty sets are scored by when a worker first became dirty, so the lowest score over all
shards is the age of the oldest beat that Postgres does not have yet.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.state import ApiState
from shared import hotstore, metrics
from shared.redis_conn import REDIS_DOWN
from shared.timefmt import now_ms


async def flush_backlog(state: ApiState) -> tuple[float, int, int, int]:
    """(seconds since the oldest dirty worker became dirty, dirty workers, claimed workers,
    rows the flushers persisted so far)."""
    pipe = state.redis.pipeline(transaction=False)
    pipe.get(hotstore.ROWS_PERSISTED)
    shards = list(hotstore.all_shards(state.settings.shards))
    for shard in shards:
        pipe.zrange(hotstore.dirty_key(shard), 0, 0, withscores=True)
        pipe.zcard(hotstore.dirty_key(shard))
        pipe.hkeys(hotstore.claims_key(shard))
    persisted, *replies = await pipe.execute()
    oldest = min((float(r[0][1]) for r in replies[0::3] if r), default=None)
    lag = 0.0 if oldest is None else max(0.0, (now_ms() - oldest) / 1000)
    claimed = sum(hotstore.inflight_workers(names) for names in replies[2::3])
    return lag, sum(replies[1::3]), claimed, int(persisted or 0)


async def metrics_endpoint(request: Request) -> Response:
    state: ApiState = request.app.state.api
    up = metrics.Gauge("hb_redis_up", "1 when the API reached Redis for this scrape.")
    lag = metrics.Gauge(
        "hb_flush_lag_seconds", "Age of the oldest heartbeat not yet persisted to Postgres."
    )
    dirty = metrics.Gauge("hb_dirty_workers", "Workers with heartbeats waiting to be persisted.")
    inflight = metrics.Gauge("hb_inflight_workers", "Workers claimed by a flusher right now.")
    persisted = metrics.Counter(
        "hb_rows_persisted_total", "Worker rows the flushers wrote to Postgres."
    )
    try:
        backlog = await flush_backlog(state)
    except REDIS_DOWN:
        up.set(0)
        return Response(metrics.render([up]), media_type=metrics.CONTENT_TYPE)
    up.set(1)
    *gauges, rows = backlog
    for gauge, value in zip((lag, dirty, inflight), gauges, strict=True):
        gauge.set(value)
    persisted.inc(rows)
    body = metrics.render([up, lag, dirty, inflight, persisted])
    return Response(body, media_type=metrics.CONTENT_TYPE)

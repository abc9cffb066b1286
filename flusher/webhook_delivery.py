"""Delivering webhooks: the flusher's `deliver_webhooks` job works through the outbox
(`webhook_deliveries`, filled by a trigger on `events`).

A run claims the due deliveries (SKIP LOCKED, and a lease: their next attempt moves past this
run's timeout, so a flusher that dies mid-run leaves them to be retried), posts them all at
once, each bounded by `HB_WEBHOOK_TIMEOUT`, and records each outcome. A slow or dead receiver
costs its own deliveries a timeout and nothing else: ingest and the drain never wait on it.
Failures retry after `HB_WEBHOOK_BACKOFF` doubling per attempt (capped, with jitter) until
`HB_WEBHOOK_RETRY_FOR` after the event, then the delivery is marked failed.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from urllib.parse import urlsplit

import asyncpg
import httpx
import msgspec

from shared.contract.events import Event
from shared.contract.webhook_signature import HEADER, sign
from shared.contract.wire import encoder
from shared.settings import Settings
from shared.web.address_guard import RefusedAddress, pinned_url, resolve_checked

BATCH = 200
MAX_DELAY = 3600.0
LEASE_MARGIN = 30.0  # beyond the timeout, before another run may retry a claimed delivery
MAX_ERROR = 500

_CLAIM = """
WITH due AS (
    SELECT d.id FROM webhook_deliveries d
      JOIN webhooks w ON w.id = d.webhook_id AND w.deleted_at IS NULL
     WHERE d.status = 'pending' AND d.next_attempt_at <= now()
     ORDER BY d.next_attempt_at LIMIT $1
       FOR UPDATE OF d SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $2)
      FROM due WHERE d.id = due.id
    RETURNING d.id, d.webhook_id, d.event_id, d.attempts, d.created_at
)
SELECT c.id, c.attempts, c.created_at, w.url, w.secret, e.id AS event_id, e.type,
       e.worker_id, to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at_text,
       e.data::text AS data
  FROM claimed c JOIN webhooks w ON w.id = c.webhook_id JOIN events e ON e.id = c.event_id
"""
_DELIVERED = """
UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, updated_at = now()
 WHERE id = $1
"""
_FAILED = """
UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, last_error = $3,
       next_attempt_at = $4, updated_at = now() WHERE id = $1
"""


class Outcome(NamedTuple):
    delivery_id: int
    error: str | None  # None: delivered


def retry_delay(attempts: int, base: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: exponential, capped, and
    jittered (half to all of it) so receivers that come back are not hit all at once."""
    return min(MAX_DELAY, base * 2 ** max(0, attempts - 1)) * random.uniform(0.5, 1.0)


async def _post(client: httpx.AsyncClient, row: asyncpg.Record, settings: Settings) -> Outcome:
    event = Event(str(row["event_id"]), row["type"], row["worker_id"], row["at_text"],
                  msgspec.Raw(row["data"]))  # fmt: skip
    body = encoder.encode(event)
    headers = {
        "Content-Type": "application/json",
        HEADER: sign(row["secret"], body, int(time.time())),
        "X-Heartbeat-Event": row["type"],
        "X-Heartbeat-Delivery": str(row["id"]),
    }
    url = row["url"]
    try:
        # Checked at each attempt: the name may resolve elsewhere than when it was registered.
        # The post goes to the address checked (the name stays in Host and in TLS, for SNI and
        # the certificate), not to whatever a second lookup of the name would answer.
        host, address = await resolve_checked(url, settings.webhook_allow_private)
        headers["Host"] = urlsplit(url).netloc.rpartition("@")[2]
        r = await client.post(
            pinned_url(url, address), content=body, headers=headers,
            extensions={"sni_hostname": host},
        )  # fmt: skip
    except RefusedAddress as exc:
        return Outcome(row["id"], f"refused: {exc}")
    except httpx.HTTPError as exc:
        return Outcome(row["id"], f"{type(exc).__name__}: {exc}"[:MAX_ERROR])
    if 200 <= r.status_code < 300:
        return Outcome(row["id"], None)
    return Outcome(row["id"], f"HTTP {r.status_code}")


async def deliver_due(pool: asyncpg.Pool, settings: Settings) -> list[Outcome]:
    """One run: claim, post and record the due deliveries. Returns their outcomes."""
    lease = settings.webhook_timeout + LEASE_MARGIN
    rows = await pool.fetch(_CLAIM, BATCH, lease)
    if not rows:
        return []
    timeout = httpx.Timeout(settings.webhook_timeout)
    # No connection is reused: one is keyed by the address it reached, and two webhooks' names
    # on one address must not share one (each TLS connection checked the certificate for one).
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, limits=limits) as client:
        async with asyncio.timeout(settings.webhook_timeout + 1):
            outcomes = await asyncio.gather(*(_post(client, r, settings) for r in rows))
    created = {r["id"]: (r["created_at"], r["attempts"]) for r in rows}
    now = datetime.now(UTC)
    for outcome in outcomes:
        if outcome.error is None:
            await pool.execute(_DELIVERED, outcome.delivery_id)
            continue
        created_at, attempts = created[outcome.delivery_id]
        next_at = now + timedelta(seconds=retry_delay(attempts + 1, settings.webhook_backoff))
        gave_up = next_at > created_at + timedelta(seconds=settings.webhook_retry_for)
        await pool.execute(
            _FAILED, outcome.delivery_id, "failed" if gave_up else "pending", outcome.error,
            next_at,
        )  # fmt: skip
    return list(outcomes)

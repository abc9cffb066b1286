"""Helpers of the fleet tests: workers with a chosen liveness, beaten through real ingest."""

from __future__ import annotations

from typing import Any

from api import management
from shared.contract.times import format_ms, now_ms

# Seconds ago of a last beat, per liveness, under the default thresholds (75 s and 150 s).
AGES = {"online": 1, "stale": 100, "offline": 1000}


async def add_worker(pool: Any, redis: Any, settings: Any, tenant: Any, name: str) -> Any:
    worker_id, token, _ = await management.create_worker(
        pool, redis, settings, tenant.org_id, name, tenant.user_id
    )
    return worker_id, token


async def beat(ingest: Any, worker_id: str, token: str, age_s: float = 0) -> None:
    """A Den beat sent `age_s` seconds ago (the server keeps a past `sentAt`)."""
    body: dict[str, Any] = {"isActiveRecently": False}
    if age_s:
        body["sentAt"] = format_ms(now_ms() - int(age_s * 1000))
    r = await ingest.post(
        f"/v1/workers/{worker_id}/activity-heartbeat",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text


async def fleet(ingest: Any, pool: Any, redis: Any, settings: Any, tenant: Any) -> dict[str, str]:
    """One worker per liveness, named after it; name -> id."""
    ids = {}
    for liveness in ("never", "online", "stale", "offline"):
        worker_id, token = await add_worker(pool, redis, settings, tenant, liveness)
        if liveness != "never":
            await beat(ingest, worker_id, token, AGES[liveness])
        ids[liveness] = worker_id
    return ids

"""The Postgres side of the read routes: one statement per page, caller check included.

The caller's credential is resolved in the same statement as the page (a CTE), so a list or
detail read costs one round trip to Postgres: no row at all means the credential is not valid;
a row whose worker columns are null means the caller's organization has no (such) worker.
"""

from __future__ import annotations

import asyncpg

from api.auth import CALLER, Credential
from api.cursor import Cursor


def _text(column: str) -> str:
    """RFC 3339 UTC with milliseconds, formatted by Postgres: half the CPU of doing it here."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


def _ms(column: str) -> str:
    """Milliseconds since the epoch (floored), to compare with the heartbeats Redis holds."""
    return f"floor(extract(epoch FROM {column}) * 1000)::int8"


WORKER_COLUMNS = f"""
    w.id, w.org_id, w.created_by_user_id, w.name, w.description, w.destination::text,
    w.status::text, w.image_version, w.workspace_path, w.sandbox_backend, w.created_at,
    {_text("w.created_at")} AS created_at_text, {_text("w.updated_at")} AS updated_at_text,
    {_ms("w.last_heartbeat_at")} AS last_heartbeat_ms, {_ms("w.last_active_at")} AS last_active_ms,
    w.is_active_recently, w.open_session_count, w.clock_skew_ms, w.reported_status,
    w.tasks_processed, w.current_task_id, w.environment_name, w.worker_metadata::text,
    w.system_info::text, {_ms("w.disconnected_at")} AS disconnected_ms, w.disconnect_reason,
    w.exit_code, w.error_message"""

# The worker lateral yields nothing for a caller without (matching) workers, so the instance
# lateral's join key is null and the caller row still comes back once.
SELECT_PAGE = f"""{CALLER}
SELECT c.org_id AS caller_org_id, c.user_id AS caller_user_id, w.*,
       i.provider AS instance_provider, i.region AS instance_region, i.url AS instance_url,
       i.status AS instance_status, i.created_at_text AS instance_created_at_text,
       i.updated_at_text AS instance_updated_at_text
  FROM caller c
  LEFT JOIN LATERAL (
    SELECT {WORKER_COLUMNS}
      FROM workers w
     WHERE w.org_id = c.org_id AND w.deleted_at IS NULL {{condition}}
     ORDER BY w.created_at DESC, w.id DESC
     LIMIT {{limit}}
  ) w ON true
  LEFT JOIN LATERAL (
    SELECT provider, region, url, status, {_text("created_at")} AS created_at_text,
           {_text("updated_at")} AS updated_at_text
      FROM worker_instances
     WHERE worker_id = w.id
     ORDER BY created_at DESC, id DESC
     LIMIT 1
  ) i ON true
 ORDER BY w.created_at DESC, w.id DESC
"""

FIRST_PAGE = SELECT_PAGE.format(condition="", limit="$3")
NEXT_PAGE = SELECT_PAGE.format(condition="AND (w.created_at, w.id) < ($4, $5)", limit="$3")
ONE_WORKER = SELECT_PAGE.format(condition="AND w.id = $3", limit="1")


async def fetch_page(
    conn: asyncpg.Connection | asyncpg.Pool,
    credential: Credential,
    limit: int,
    after: Cursor | None,
) -> list[asyncpg.Record]:
    """Up to `limit` rows of the caller's workers; empty when the credential is not valid."""
    args = (credential.session_hash, credential.api_key_hash, limit)
    if after is None:
        return await conn.fetch(FIRST_PAGE, *args)
    return await conn.fetch(NEXT_PAGE, *args, after.created_at, after.worker_id)


async def fetch_worker(
    conn: asyncpg.Connection | asyncpg.Pool, credential: Credential, worker_id: str
) -> asyncpg.Record | None:
    """The caller's row with the worker's columns (null when the org has no such live worker),
    or None when the credential is not valid."""
    row: asyncpg.Record | None = await conn.fetchrow(
        ONE_WORKER, credential.session_hash, credential.api_key_hash, worker_id
    )
    return row

"""The Postgres side of a filtered `GET /v1/workers` page: `worker_queries`' statement with
the filters' conditions, in the same keyset order (`created_at desc, id desc`)."""

from __future__ import annotations

from typing import Any, NamedTuple

import asyncpg

from api.auth import Credential
from api.cursor import Cursor
from api.fleet_filters import WorkerFilter, like_prefix
from api.fleet_index import Bounds, LivenessSelection
from api.worker_queries import SELECT_PAGE
from shared.contract.liveness import Liveness

# Up to this many matching ids, a page probes them by primary key and sorts them; with more, it
# walks the org's keyset index and keeps the matching rows (a hashed `= ANY`), which finds a
# page quickly as long as the matches are not rare among the org's workers.
PROBE_MAX = 2000

_WORKERS_OF_ORG = "FROM workers w\n     WHERE w.org_id = c.org_id"
_PROBED_WORKERS = (
    "FROM unnest($%d::text[]) AS m(id) JOIN workers w ON w.id = m.id\n"
    "     WHERE w.org_id = c.org_id"
)
# Liveness from the durable heartbeat alone, when Redis is unreachable ($n: online and stale
# lower bounds as timestamps).
_DURABLE_LIVENESS = """(CASE WHEN w.last_heartbeat_at IS NULL THEN 'never'
      WHEN w.last_heartbeat_at >= to_timestamp($%d / 1000.0) THEN 'online'
      WHEN w.last_heartbeat_at >= to_timestamp($%d / 1000.0) THEN 'stale'
      ELSE 'offline' END) = ANY($%d::text[])"""


class LivenessCondition(NamedTuple):
    """How the page applies a liveness filter: ids from the fleet index, or (Redis down) the
    durable heartbeats against these bounds."""

    selection: LivenessSelection | None
    durable: tuple[Bounds, frozenset[Liveness]] | None = None


def page_statement(
    credential: Credential,
    limit: int,
    after: Cursor | None,
    wanted: WorkerFilter,
    liveness: LivenessCondition | None,
) -> tuple[str, list[Any]]:
    """The statement and its arguments."""
    args: list[Any] = [credential.session_hash, credential.api_key_hash, limit]
    conditions: list[str] = []

    def arg(value: Any) -> int:
        args.append(value)
        return len(args)

    if after is not None:
        conditions.append(
            f"AND (w.created_at, w.id) < (${arg(after.created_at)}, ${arg(after.worker_id)})"
        )
    if wanted.status is not None:
        conditions.append(f"AND w.status = ANY(${arg(sorted(wanted.status))}::worker_status[])")
    if wanted.q is not None:
        pattern = arg(like_prefix(wanted.q))
        conditions.append(f"AND lower(w.name) LIKE lower(${pattern}) ESCAPE '\\'")
    source = _WORKERS_OF_ORG
    if liveness is not None and liveness.selection is not None:
        sel = liveness.selection
        if sel.include and len(sel.ids) <= PROBE_MAX:
            source = _PROBED_WORKERS % arg(sel.ids)
        elif sel.include:
            conditions.append(f"AND w.id = ANY(${arg(sel.ids)}::text[])")
        else:
            conditions.append(f"AND w.id <> ALL(${arg(sel.ids)}::text[])")
    elif liveness is not None and liveness.durable is not None:
        b, wanted_lv = liveness.durable
        online, stale = arg(b.online_min), arg(b.stale_min)
        conditions.append("AND " + _DURABLE_LIVENESS % (online, stale, arg(sorted(wanted_lv))))
    sql = SELECT_PAGE.format(condition=" ".join(conditions), limit="$3")
    return sql.replace(_WORKERS_OF_ORG, source, 1), args


def candidate_statement(
    org_id: str, after: tuple[Any, str] | None, wanted: WorkerFilter, limit: int
) -> tuple[str, list[Any]]:
    """The next `limit` keys (`id`, `created_at`) of the org's workers after `after` in the
    list's order, with the filters Postgres can apply (status, name prefix): an index-only
    walk of `workers_org_created` when there are none."""
    args: list[Any] = [org_id, limit]

    def arg(value: Any) -> int:
        args.append(value)
        return len(args)

    conditions = []
    if after is not None:
        conditions.append(f"AND (w.created_at, w.id) < (${arg(after[0])}, ${arg(after[1])})")
    if wanted.status is not None:
        conditions.append(f"AND w.status = ANY(${arg(sorted(wanted.status))}::worker_status[])")
    if wanted.q is not None:
        pattern = arg(like_prefix(wanted.q))
        conditions.append(f"AND lower(w.name) LIKE lower(${pattern}) ESCAPE '\\'")
    sql = f"""SELECT w.id, w.created_at FROM workers w
 WHERE w.org_id = $1 AND w.deleted_at IS NULL {" ".join(conditions)}
 ORDER BY w.created_at DESC, w.id DESC LIMIT $2"""
    return sql, args


async def fetch_candidates(
    conn: asyncpg.Connection | asyncpg.Pool,
    org_id: str,
    after: tuple[Any, str] | None,
    wanted: WorkerFilter,
    limit: int,
) -> list[asyncpg.Record]:
    sql, args = candidate_statement(org_id, after, wanted, limit)
    return await conn.fetch(sql, *args)


async def fetch_filtered_page(
    conn: asyncpg.Connection | asyncpg.Pool,
    credential: Credential,
    limit: int,
    after: Cursor | None,
    wanted: WorkerFilter,
    liveness: LivenessCondition | None,
) -> list[asyncpg.Record]:
    """Up to `limit` matching rows; empty when the credential is not valid."""
    sql, args = page_statement(credential, limit, after, wanted, liveness)
    return await conn.fetch(sql, *args)


assert _WORKERS_OF_ORG in SELECT_PAGE, "worker_queries.SELECT_PAGE changed its worker source"

"""The filters of `GET /v1/workers`: liveness, lifecycle status and a name prefix.

A filtered page's `nextCursor` carries its filters (`api.cursor`), so the next page is read
with the same ones however the client builds its next URL.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qs, urlencode

from starlette.datastructures import QueryParams

from shared.contract.liveness import Liveness

STATUSES = ("provisioning", "healthy", "failed", "stopped")  # Den's lifecycle (worker_status)
LIVENESS = tuple(lv.value for lv in Liveness)
MAX_PREFIX = 200


class WorkerFilter(NamedTuple):
    liveness: frozenset[Liveness] | None = None
    status: frozenset[str] | None = None
    q: str | None = None

    @property
    def active(self) -> bool:
        return self != NO_FILTER


NO_FILTER = WorkerFilter()


class InvalidFilter(ValueError):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _comma_list(raw: list[str], allowed: tuple[str, ...], param: str) -> frozenset[str] | None:
    if not raw:
        return None
    values = [v.strip() for text in raw for v in text.split(",")]
    if not all(v in allowed for v in values):
        raise InvalidFilter(f"Expected a comma list of: {', '.join(allowed)}.", param)
    return frozenset(values)


def parse_filter(params: QueryParams | dict[str, list[str]]) -> WorkerFilter:
    """The filters of a request's query (a repeated parameter adds to its list)."""
    get = params.getlist if isinstance(params, QueryParams) else (lambda k: params.get(k, []))
    liveness = _comma_list(get("liveness"), LIVENESS, "liveness")
    status = _comma_list(get("status"), STATUSES, "status")
    q_values = get("q")
    q = None
    if q_values:
        q = q_values[-1]
        if not q or len(q) > MAX_PREFIX or "\x00" in q or len(q_values) > 1:
            raise InvalidFilter(f"Expected one name prefix of 1 to {MAX_PREFIX} characters.", "q")
    return WorkerFilter(
        None if liveness is None else frozenset(Liveness(v) for v in liveness), status, q
    )


def filter_text(f: WorkerFilter) -> str:
    """The filters as a query string, for the cursor ('' without any)."""
    pairs = []
    if f.liveness is not None:
        pairs.append(("liveness", ",".join(sorted(f.liveness))))
    if f.status is not None:
        pairs.append(("status", ",".join(sorted(f.status))))
    if f.q is not None:
        pairs.append(("q", f.q))
    return urlencode(pairs)


def filter_from_text(text: str) -> WorkerFilter:
    """The inverse of `filter_text` (raises InvalidFilter)."""
    return parse_filter(parse_qs(text, keep_blank_values=True, strict_parsing=bool(text)))


def like_prefix(q: str) -> str:
    """A LIKE pattern (escape character backslash) matching names that start with `q`."""
    return q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

"""Why a heartbeater stopped on its own."""

from __future__ import annotations

# Enough of a body to show ingest's error code and message, not a proxy's whole HTML page.
MAX_BODY_CHARS = 4096

_REASONS = {
    400: "ingest refused the body or the worker id (a bug in what is sent)",
    401: "the heartbeat token is invalid or was revoked; issue a new one",
    403: "the credentials may not send heartbeats for this worker",
    404: "the worker is unknown or was deleted (or ingest_url points elsewhere)",
    413: "the body is larger than ingest accepts; send less worker_metadata",
    422: "ingest refused the body (a bug in what is sent)",
}


class HeartbeatError(Exception):
    """Base class of everything this package raises on purpose."""


class HeartbeatRejected(HeartbeatError):
    """Ingest answered in a way that retrying cannot fix, so the heartbeater stopped.

    Retrying a revoked token or a deleted worker forever would only add load and hide the
    problem; stopping with the status and ingest's own words lets the worker's owner act.
    """

    def __init__(self, status_code: int, body: str) -> None:
        self.status_code = status_code
        self.body = body[:MAX_BODY_CHARS]
        self.reason = _REASONS.get(status_code, "an answer that retrying would not change")
        snippet = self.body if len(self.body) <= 500 else self.body[:500] + "..."
        super().__init__(f"heartbeat rejected with HTTP {status_code}: {self.reason}: {snippet}")

"""What an HTTP status means for the next beat: carry on, wait as told, back off, or give up."""

from __future__ import annotations

import enum


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    """2xx: ingest holds the beat; back to the normal interval."""
    THROTTLED = "throttled"
    """429 or 503: the server is alive but asks for time; honour its Retry-After."""
    RETRY = "retry"
    """408 and other 5xx: likely transient (a replica restarting, a proxy timing out)."""
    REJECTED = "rejected"
    """Everything else: the same request would fail the same way, so stop."""


def classify(status_code: int) -> Outcome:
    """Map a status to an outcome.

    Unexpected 1xx and 3xx count as rejections: a redirect means ingest_url is wrong (the
    heartbeater does not follow it, since a POST redirected with 301/302 becomes a GET), and a
    wrong address does not fix itself by retrying.
    """
    if 200 <= status_code < 300:
        return Outcome.ACCEPTED
    if status_code in (429, 503):
        return Outcome.THROTTLED
    if status_code == 408 or 500 <= status_code < 600:
        return Outcome.RETRY
    return Outcome.REJECTED

"""Wire schemas of the Den and Kubiya heartbeat contracts: the msgspec Struct is the schema."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

from shared.contract.times import DATE_TIME_PATTERN

MAX_SAFE_INTEGER = 9007199254740991

DateTime = Annotated[str, msgspec.Meta(pattern=DATE_TIME_PATTERN)]
_SESSION_BOUNDS = msgspec.Meta(ge=0, le=MAX_SAFE_INTEGER)
SessionCount = Annotated[int, _SESSION_BOUNDS]


class DenHeartbeat(msgspec.Struct, forbid_unknown_fields=False):
    """Body of `POST /v1/workers/{id}/activity-heartbeat`."""

    isActiveRecently: bool
    sentAt: DateTime | msgspec.UnsetType = msgspec.UNSET
    lastActivityAt: DateTime | msgspec.UnsetType | None = msgspec.UNSET
    # A float is admitted so that 2.0 (an integer to JSON Schema) passes; the route rejects 2.5.
    openSessionCount: SessionCount | Annotated[float, _SESSION_BOUNDS] | msgspec.UnsetType = (
        msgspec.UNSET
    )


class DenHeartbeatResponse(msgspec.Struct):
    ok: bool
    workerId: str
    isActiveRecently: bool
    openSessionCount: int | None
    lastHeartbeatAt: str
    lastActiveAt: str | None


class KubiyaHeartbeat(msgspec.Struct, forbid_unknown_fields=False):
    """Body of `POST /api/v1/workers/heartbeat`."""

    worker_id: str
    environment_name: str
    status: str = "active"
    tasks_processed: int = 0
    current_task_id: str | None = None
    worker_metadata: dict[str, Any] = msgspec.field(default_factory=dict)


den_decoder = msgspec.json.Decoder(DenHeartbeat)
kubiya_decoder = msgspec.json.Decoder(KubiyaHeartbeat)
encoder = msgspec.json.Encoder()

_AT = re.compile(r" - at `\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)`$")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`")


def error_location(err: msgspec.ValidationError) -> tuple[str, list[str | int]]:
    """Split msgspec's message into the bare message and the path of the offending field."""
    # openSessionCount admits floats only so that 2.0 counts as an integer; say what is wanted.
    text = str(err).replace("`int | float`", "`int`")
    path: list[str | int] = []
    m = _AT.search(text)
    if m:
        text = text[: m.start()]
        for part in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]", m.group(1)):
            path.append(part[0] if part[0] else int(part[1]))
    missing = _MISSING.match(text)
    if missing:
        path.append(missing.group(1))
    return text, path


def is_missing_field(err: msgspec.ValidationError) -> bool:
    return _MISSING.match(str(err)) is not None

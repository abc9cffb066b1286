"""Wire bodies of the Den and Kubiya contracts: the msgspec Struct is the schema.

The services decode and encode with these types, and their OpenAPI documents are generated from
them (`shared.web.openapi`), so a field, a bound or an error body is written down once.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

from shared.contract import typeid
from shared.contract.times import DATE_TIME_PATTERN

MAX_SAFE_INTEGER = 9007199254740991

# The route refuses a negative count with Kubiya's 422 (ingest.kubiya_route.check_count); the
# bound is the document's only, so the refusal keeps Kubiya's error shape.
TaskCount = Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 0})]

DateTime = Annotated[
    str, msgspec.Meta(pattern=DATE_TIME_PATTERN, extra_json_schema={"format": "date-time"})
]


def TypeId(prefix: str) -> Any:
    """The string type of a TypeID with `prefix`: its pattern, lengths and format."""
    length = len(prefix) + 1 + typeid.SUFFIX_LEN
    return Annotated[
        str,
        msgspec.Meta(
            min_length=length,
            max_length=length,
            pattern=f"^{prefix}_[0-7][{typeid.ALPHABET}]{{{typeid.SUFFIX_LEN - 1}}}$",
            description=f"TypeID with '{prefix}_' prefix and a 26-character base32 suffix.",
            extra_json_schema={"format": "typeid"},
        ),
    ]


WorkerId = TypeId(typeid.WORKER)
OrgId = TypeId(typeid.ORG)
UserId = TypeId(typeid.USER)
ApiKeyId = TypeId(typeid.API_KEY)


class SessionCount(int):
    """`openSessionCount`: an integer as JSON Schema counts them, so 2.0 is one and 2.5 is not,
    from 0 to MAX_SAFE_INTEGER. Decoded by `decode_hook`; its schema comes from `schema_hook`."""

    SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_SAFE_INTEGER}


def decode_hook(kind: type, value: Any) -> Any:
    if kind is SessionCount:
        if type(value) is float and value.is_integer():
            value = int(value)
        if type(value) is not int:
            raise ValueError(f"Expected `int`, got `{type(value).__name__}`")
        if not 0 <= value <= MAX_SAFE_INTEGER:
            bound = ">= 0" if value < 0 else f"<= {MAX_SAFE_INTEGER}"
            raise ValueError(f"Expected `int` {bound}")
        return SessionCount(value)
    raise NotImplementedError(kind)


def schema_hook(kind: type) -> dict[str, Any]:
    if kind is SessionCount:
        return dict(SessionCount.SCHEMA)
    raise NotImplementedError(kind)


class DenHeartbeat(msgspec.Struct, forbid_unknown_fields=False):
    """Client times in the future are clamped to the server's receive time."""

    isActiveRecently: bool
    sentAt: DateTime | msgspec.UnsetType = msgspec.UNSET
    lastActivityAt: DateTime | msgspec.UnsetType | None = msgspec.UNSET
    openSessionCount: SessionCount | msgspec.UnsetType = msgspec.UNSET


class WorkerHeartbeatResponse(msgspec.Struct, gc=False):
    """Den's answer to a heartbeat."""

    ok: Literal[True]
    workerId: str
    isActiveRecently: bool
    openSessionCount: Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)] | None
    lastHeartbeatAt: DateTime
    lastActiveAt: DateTime | None


class WorkerHeartbeatRequest(msgspec.Struct, forbid_unknown_fields=False):
    """Kubiya's heartbeat body."""

    worker_id: str
    environment_name: str
    status: str = "active"
    tasks_processed: TaskCount = 0
    current_task_id: str | None = None
    worker_metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class WorkerSystemInfo(msgspec.Struct, forbid_unknown_fields=False, omit_defaults=True):
    """What a Kubiya worker reports of its host on a full beat; every field optional. Stored
    and served without its null fields (fields Kubiya does not describe are dropped)."""

    hostname: str | None = None
    platform: str | None = None
    os_name: str | None = None
    os_version: str | None = None
    python_version: str | None = None
    cli_version: str | None = None
    sdk_version: str | None = None
    pid: int | None = None
    cwd: str | None = None
    supported_runtimes: list[str] | None = None
    llm_gateway_url: str | None = None
    docker_available: bool | None = None
    docker_version: str | None = None
    cpu_count: int | None = None
    cpu_percent: float | None = None
    memory_total: int | None = None  # bytes
    memory_used: int | None = None
    memory_percent: float | None = None
    disk_total: int | None = None  # bytes
    disk_used: int | None = None
    disk_percent: float | None = None
    uptime_seconds: float | None = None


class WorkerHeartbeatSimple(msgspec.Struct, forbid_unknown_fields=False):
    """Kubiya's per-worker heartbeat body (the worker's id is in the path). A lightweight beat
    carries the status fields only; a full one adds `system_info` and the log lines since the
    previous full beat."""

    status: str = "active"
    tasks_processed: TaskCount = 0
    current_task_id: str | None = None
    worker_metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    system_info: WorkerSystemInfo | None = None
    logs: list[str] | None = None


class WorkerDisconnectRequest(msgspec.Struct, forbid_unknown_fields=False):
    """Kubiya's disconnect body: why the worker stops (`shutdown`, `error`, `crash`, ...)."""

    reason: str = "shutdown"
    exit_code: int | None = None
    error_message: str | None = None


# Den's error bodies, and ours in the same shape for what Den's contract does not cover.
class ErrorDetail(msgspec.Struct, omit_defaults=True):
    message: str
    path: list[str | float] | msgspec.UnsetType = msgspec.UNSET


class InvalidRequestError(msgspec.Struct):
    error: Literal["invalid_request"]
    details: list[ErrorDetail]


class UnauthorizedError(msgspec.Struct):
    error: Literal["unauthorized"]


class NotFoundError(msgspec.Struct, omit_defaults=True):
    error: str
    message: str | msgspec.UnsetType = msgspec.UNSET


class Error(msgspec.Struct):
    """What went wrong, as a code and a sentence."""

    error: str
    message: str


# Kubiya's error bodies.
class ValidationError(msgspec.Struct):
    loc: list[str | int]
    msg: str
    type: str


class HTTPValidationError(msgspec.Struct):
    detail: list[ValidationError]


class KubiyaError(msgspec.Struct):
    detail: str


den_decoder = msgspec.json.Decoder(DenHeartbeat, dec_hook=decode_hook)
kubiya_decoder = msgspec.json.Decoder(WorkerHeartbeatRequest)
kubiya_worker_decoder = msgspec.json.Decoder(WorkerHeartbeatSimple)
kubiya_disconnect_decoder = msgspec.json.Decoder(WorkerDisconnectRequest)
encoder = msgspec.json.Encoder()

_AT = re.compile(r" - at `\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)`$")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`")


def error_location(err: msgspec.ValidationError) -> tuple[str, list[str | int]]:
    """Split msgspec's message into the bare message and the path of the offending field."""
    text = str(err)
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

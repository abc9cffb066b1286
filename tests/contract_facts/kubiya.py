"""Kubiya's worker routes, as published: a JSON body in, 204 with no body out, and the
framework's 422 validation error for a body it cannot accept. The heartbeat with the worker id
in the body; and the two routes its released worker (kubiya-control-plane-api 1.0.2) calls
with the worker id in the path: the heartbeat (lightweight and full beats) and the disconnect.

Also what that worker sends on them (`released_worker_*`), for tests that replay it."""

from __future__ import annotations

from typing import Any

from tests.contract_facts.schema_parts import (
    BOOLEAN,
    STRING,
    Schema,
    array,
    document,
    integer,
    json_body,
    nullable,
    obj,
    one_of_types,
    operation,
    path_parameter,
    ref,
)

HEARTBEAT_PATH = "/api/v1/workers/heartbeat"
WORKER_HEARTBEAT_PATH = "/api/v1/workers/{worker_id}/heartbeat"
DISCONNECT_PATH = "/api/v1/workers/{worker_id}/disconnect"


def _with_default(schema: Schema, default: Any) -> Schema:
    return {**schema, "default": default}


HEARTBEAT_REQUEST = obj(
    {
        "worker_id": STRING,
        "environment_name": STRING,
        "status": _with_default(STRING, "active"),
        "tasks_processed": integer(default=0),
        "current_task_id": nullable(STRING),
        "worker_metadata": {"type": "object", "additionalProperties": True, "default": {}},
    },
    required=["worker_id", "environment_name"],
)

VALIDATION_ERROR = obj(
    {"loc": array(one_of_types("string", "integer")), "msg": STRING, "type": STRING},
    required=["loc", "msg", "type"],
)
# `detail` is described but not required.
HTTP_VALIDATION_ERROR = obj({"detail": array(ref("ValidationError"))})

NUMBER: Schema = {"type": "number"}

# Every field optional; the server keeps only those that are not null.
SYSTEM_INFO = obj(
    {
        **{
            name: nullable(STRING)
            for name in (
                "hostname", "platform", "os_name", "os_version", "python_version",
                "cli_version", "sdk_version",
            )
        },
        "pid": nullable(integer()),
        "cwd": nullable(STRING),
        "supported_runtimes": nullable(array(STRING)),
        "llm_gateway_url": nullable(STRING),
        "docker_available": nullable(BOOLEAN),
        "docker_version": nullable(STRING),
        "cpu_count": nullable(integer()),
        "cpu_percent": nullable(NUMBER),
        "memory_total": nullable(integer()),
        "memory_used": nullable(integer()),
        "memory_percent": nullable(NUMBER),
        "disk_total": nullable(integer()),
        "disk_used": nullable(integer()),
        "disk_percent": nullable(NUMBER),
        "uptime_seconds": nullable(NUMBER),
    }
)  # fmt: skip

WORKER_HEARTBEAT_REQUEST = obj(
    {
        "status": _with_default(STRING, "active"),
        "tasks_processed": integer(default=0),
        "current_task_id": nullable(STRING),
        "worker_metadata": {"type": "object", "additionalProperties": True, "default": {}},
        "system_info": nullable(ref("WorkerSystemInfo")),
        "logs": nullable(array(STRING)),
    }
)

DISCONNECT_REQUEST = obj(
    {
        "reason": _with_default(STRING, "shutdown"),
        "exit_code": nullable(integer()),
        "error_message": nullable(STRING),
    }
)

SCHEMAS: dict[str, Schema] = {
    "WorkerHeartbeatRequest": HEARTBEAT_REQUEST,
    "WorkerHeartbeatSimple": WORKER_HEARTBEAT_REQUEST,
    "WorkerSystemInfo": SYSTEM_INFO,
    "WorkerDisconnectRequest": DISCONNECT_REQUEST,
    "ValidationError": VALIDATION_ERROR,
    "HTTPValidationError": HTTP_VALIDATION_ERROR,
}

HEARTBEAT = operation(
    "worker_heartbeat_api_v1_workers_heartbeat_post",
    {204: None, 422: ref("HTTPValidationError")},
    body=json_body(ref("WorkerHeartbeatRequest")),
)


def heartbeat_document() -> Schema:
    return document("Kubiya: worker heartbeat", HEARTBEAT_PATH, "post", HEARTBEAT, SCHEMAS)


WORKER_ID_PARAMETER = path_parameter("worker_id", STRING)

WORKER_HEARTBEAT = operation(
    "worker_heartbeat_simple_api_v1_workers__worker_id__heartbeat_post",
    {204: None, 422: ref("HTTPValidationError")},
    parameters=[WORKER_ID_PARAMETER],
    body=json_body(ref("WorkerHeartbeatSimple")),
)

DISCONNECT = operation(
    "worker_disconnect_api_v1_workers__worker_id__disconnect_post",
    {204: None, 422: ref("HTTPValidationError")},
    parameters=[WORKER_ID_PARAMETER],
    body=json_body(ref("WorkerDisconnectRequest")),
)


def worker_heartbeat_document() -> Schema:
    return document(
        "Kubiya: worker heartbeat, id in the path", WORKER_HEARTBEAT_PATH, "post",
        WORKER_HEARTBEAT, SCHEMAS,
    )  # fmt: skip


def disconnect_document() -> Schema:
    return document("Kubiya: worker disconnect", DISCONNECT_PATH, "post", DISCONNECT, SCHEMAS)


# --- what the released worker sends ----------------------------------------------------------
# Every interval (60 s by default) a lightweight beat: the status fields only. Every 5 minutes a
# full beat instead, adding `system_info` and the log lines since the previous full beat. On
# shutdown and on a crash, a disconnect. All with `Authorization: Bearer <org API key>`; 200 or
# 204 counts as success. Kubiya's server keeps the last `system_info` across lightweight beats,
# appends the log lines and keeps the last 100, and on a disconnect removes the worker from its
# active list at once.

LIGHTWEIGHT_INTERVAL_S = 60
FULL_INTERVAL_S = 300
LOG_LINES_KEPT = 100


def released_worker_lightweight_beat(
    status: str = "active", tasks_processed: int = 0, current_task_id: str | None = None
) -> dict[str, Any]:
    return {
        "status": status,
        "tasks_processed": tasks_processed,
        "current_task_id": current_task_id,
        "worker_metadata": {},
    }


def released_worker_system_info() -> dict[str, Any]:
    """A realistic `system_info`, as the worker collects it on a Linux host."""
    return {
        "hostname": "ip-10-0-3-17",
        "platform": "Linux-6.1.0-18-cloud-amd64-x86_64-with-glibc2.36",
        "os_name": "Linux",
        "os_version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)",
        "python_version": "3.11.9",
        "cli_version": "1.0.2",
        "sdk_version": "1.0.2",
        "pid": 48213,
        "cwd": "/home/kubiya/worker",
        "supported_runtimes": ["default", "claude_code"],
        "llm_gateway_url": "https://llm-proxy.kubiya.ai",
        "docker_available": True,
        "docker_version": "24.0.7",
        "cpu_count": 8,
        "cpu_percent": 12.5,
        "memory_total": 33_554_432_000,
        "memory_used": 9_126_805_504,
        "memory_percent": 27.2,
        "disk_total": 107_374_182_400,
        "disk_used": 41_875_931_136,
        "disk_percent": 39.0,
        "uptime_seconds": 301.7,
    }


def released_worker_log_lines(count: int, start: int = 0) -> list[str]:
    """Log lines as the worker captures them (its logging handler's formatted records)."""
    return [
        f"2025-03-14 09:{(start + i) // 60 % 60:02d}:{(start + i) % 60:02d} INFO "
        f"control_plane_api.worker: processed activity {start + i} of execution "
        f"exec-{(start + i) % 7}"
        for i in range(count)
    ]


def released_worker_full_beat(
    logs: list[str],
    status: str = "active",
    tasks_processed: int = 0,
    current_task_id: str | None = None,
) -> dict[str, Any]:
    return {
        **released_worker_lightweight_beat(status, tasks_processed, current_task_id),
        "system_info": released_worker_system_info(),
        "logs": logs,
    }


def released_worker_disconnect(
    reason: str = "shutdown", exit_code: int | None = 0, error_message: str | None = None
) -> dict[str, Any]:
    return {"reason": reason, "exit_code": exit_code, "error_message": error_message}

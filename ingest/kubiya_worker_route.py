"""Kubiya's per-worker routes, as its released worker calls them:
`POST /api/v1/workers/{worker_id}/heartbeat` (lightweight and full beats) and
`POST /api/v1/workers/{worker_id}/disconnect`. 204 only once Redis holds what they say.

The checks, in order: the body (413, 422), the credentials (401; 503 while Redis cannot say
whose API key it is), the worker id (404 when it is not a worker TypeID, as on Kubiya's other
route), then the registry (404 for an unknown, deleted or another org's worker; 503 while it is
being rebuilt).
"""

from __future__ import annotations

import secrets

from starlette.types import Receive, Scope, Send

from ingest.asgi_io import send_response
from ingest.kubiya_route import (
    Refused,
    authorize,
    check_count,
    check_size,
    check_storable,
    decode_body,
    record,
)
from ingest.state import IngestState
from shared.contract.record import Disconnect, WorkerBeat, fit_log_lines
from shared.contract.times import now_ms
from shared.contract.wire import encoder, kubiya_disconnect_decoder, kubiya_worker_decoder

# Kubiya's server keeps a worker's last 100 log lines; HB_MAX_LOG_BYTES bounds their bytes.
MAX_LOG_LINES = 100


class KubiyaWorkerHeartbeatRoute:
    """A lightweight beat (status fields) or a full one (with `system_info` and log lines)."""

    def __init__(self, state: IngestState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        worker_id: str = scope["path_params"]["worker_id"]
        settings = state.settings
        try:
            beat = await decode_body(scope, receive, state, kubiya_worker_decoder)
            metadata = encoder.encode(beat.worker_metadata)
            check_count("tasks_processed", beat.tasks_processed)
            check_size("worker_metadata", metadata, settings.max_metadata_bytes)
            if beat.system_info is None:  # a lightweight beat
                check_storable(
                    (("tasks_processed", beat.tasks_processed),),
                    (("status", beat.status), ("current_task_id", beat.current_task_id)),
                    (("worker_metadata", metadata),),
                )  # fmt: skip
                system_info = None
            else:
                system_info = encoder.encode(beat.system_info)
                check_size("system_info", system_info, settings.max_metadata_bytes)
                check_storable(
                    (("tasks_processed", beat.tasks_processed),),
                    (("status", beat.status), ("current_task_id", beat.current_task_id)),
                    (("worker_metadata", metadata), ("system_info", system_info)),
                )  # fmt: skip
        except Refused as refused:
            return await send_response(send, refused.status, refused.body)
        credentials = await authorize(state, scope, send, worker_id)
        if credentials is None:
            return
        version, org = credentials
        logs = beat.logs
        if logs:
            logs = fit_log_lines(logs, MAX_LOG_LINES, settings.max_log_bytes)
        beat_record = WorkerBeat(
            worker_id, version, org, now_ms(), beat.status, beat.tasks_processed,
            beat.current_task_id, metadata.decode(),
            None if system_info is None else system_info.decode(), logs or (), MAX_LOG_LINES,
            settings.max_log_bytes, secrets.token_hex(8) if logs else "",
        )  # fmt: skip
        await record(state, send, beat_record, "kubiya")


class KubiyaDisconnectRoute:
    """The worker stops: offline at once, with why, until its next beat."""

    def __init__(self, state: IngestState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        worker_id: str = scope["path_params"]["worker_id"]
        limit = state.settings.max_metadata_bytes
        try:
            body = await decode_body(scope, receive, state, kubiya_disconnect_decoder)
            check_size("reason", body.reason.encode(), limit, "text")
            if body.error_message is not None:
                check_size("error_message", body.error_message.encode(), limit, "text")
            check_storable(
                (("exit_code", body.exit_code),),
                (("reason", body.reason), ("error_message", body.error_message)),
                (),
            )
        except Refused as refused:
            return await send_response(send, refused.status, refused.body)
        credentials = await authorize(state, scope, send, worker_id)
        if credentials is None:
            return
        version, org = credentials
        disconnect = Disconnect(
            worker_id, version, org, now_ms(), body.reason, body.exit_code, body.error_message
        )
        await record(state, send, disconnect, "kubiya_disconnect")

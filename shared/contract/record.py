"""Recording beats: the typed arguments and reply of `scripts/record_heartbeats.lua`.

Ingest's routes build DenBeat, KubiyaBeat, WorkerBeat and Disconnect values; group commit turns a
batch of them into one script call with `record_call` and hands each request its BeatResult from
`parse_results`. Nothing else packs the script's arguments or slices its reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from shared.contract import keys
from shared.contract.lua_scripts import load_script

RECORD_HEARTBEATS = load_script("record_heartbeats")

RESULT_WIDTH = 5  # values per beat in the script's reply
# A node call's answer for a beat whose hash the node does not serve: not stored, to be sent
# again on a call of its own slot.
ELSEWHERE = 421


class DenBeat(NamedTuple):
    """A beat on Den's route, its times already clamped to the server's clock."""

    worker_id: str
    token_version: int  # the token's; a registry holding another answers 401
    heartbeat_ms: int
    active_ms: int | None  # None: not active, `lastActiveAt` stays
    active_recently: bool
    open_sessions: int | None  # None: not reported, the stored count stays
    skew_ms: int | None  # client clock minus server clock, None when the client sent no time


class KubiyaBeat(NamedTuple):
    """A beat on Kubiya's route. Exactly one of `token_version` (a worker token) and `org_id`
    (an org API key: the worker must be in that org) is set."""

    worker_id: str
    token_version: int | None
    org_id: str | None
    heartbeat_ms: int
    status: str
    tasks_processed: int
    current_task_id: str | None
    environment_name: str
    metadata_json: str


class WorkerBeat(NamedTuple):
    """A beat on Kubiya's per-worker route. Lightweight: neither `system_info_json` nor `logs`;
    a full beat may carry both. The stored environment and system info stay when a beat does not
    name them. Credentials as for KubiyaBeat."""

    worker_id: str
    token_version: int | None
    org_id: str | None
    heartbeat_ms: int
    status: str
    tasks_processed: int
    current_task_id: str | None
    metadata_json: str
    system_info_json: str | None = None  # None: the stored one stays
    logs: Sequence[str] = ()  # appended to the worker's recent logs (see `fit_log_lines`)
    max_log_lines: int = 100
    max_log_bytes: int = 65536
    # Names `logs` once: a beat sent again with the same id (after a dropped connection) does not
    # append them twice. "" appends them every time.
    logs_id: str = ""


class Disconnect(NamedTuple):
    """A worker saying it stops: offline from now until its next beat, which clears this.
    Credentials as for KubiyaBeat."""

    worker_id: str
    token_version: int | None
    org_id: str | None
    disconnected_ms: int
    reason: str
    exit_code: int | None
    error_message: str | None


Beat = DenBeat | KubiyaBeat | WorkerBeat | Disconnect


class BeatResult(NamedTuple):
    """The script's answer for one beat, as Redis sent it (ASCII digits; b"" = none)."""

    # 200 stored, 401 token revoked, 404 unknown, deleted or another org's worker, 421 not
    # served by the node a `node_call` went to, 503 unknown while the registry is being rebuilt
    # (see `keys.synced_key`).
    code: int
    heartbeat_ms: bytes
    active_ms: bytes
    active_recently: bytes
    open_sessions: bytes


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def fit_log_lines(lines: Sequence[str], max_lines: int, max_bytes: int) -> list[str]:
    """The newest of `lines` that the recent logs can keep: at most `max_lines` of them, together
    at most `max_bytes` of UTF-8, a single longer line cut to `max_bytes` (at a character
    boundary). The script trims the stored list by the same rule, oldest lines first."""
    kept: list[str] = []
    total = 0
    for line in reversed(lines[-max_lines:]):
        size = len(line) if line.isascii() else len(line.encode())
        if size > max_bytes:
            line = line.encode()[:max_bytes].decode(errors="ignore")
            size = len(line.encode())
        if total + size > max_bytes:
            break
        kept.append(line)
        total += size
    kept.reverse()
    return kept


def beat_args(beat: Beat) -> list[str]:
    """One beat's arguments, in the order the script reads them."""
    if type(beat) is DenBeat:
        return [
            beat.worker_id, str(beat.token_version), "", str(beat.heartbeat_ms),
            _opt(beat.active_ms), "1" if beat.active_recently else "0",
            _opt(beat.open_sessions), _opt(beat.skew_ms), "d",
        ]  # fmt: skip
    if type(beat) is WorkerBeat:
        args = [
            beat.worker_id, _opt(beat.token_version), beat.org_id or "", str(beat.heartbeat_ms),
            "", "", "", "", "w", beat.status, str(beat.tasks_processed),
            beat.current_task_id or "", beat.metadata_json,
        ]  # fmt: skip
        if beat.system_info_json is None and not beat.logs:
            return args  # a lightweight beat
        args[8] = "f"
        args += [
            beat.system_info_json or "", str(beat.max_log_lines), str(beat.max_log_bytes),
            beat.logs_id, str(len(beat.logs)), *beat.logs,
        ]  # fmt: skip
        return args
    if type(beat) is Disconnect:
        return [
            beat.worker_id, _opt(beat.token_version), beat.org_id or "",
            str(beat.disconnected_ms), "", "", "", "", "x", beat.reason, _opt(beat.exit_code),
            beat.error_message or "",
        ]  # fmt: skip
    assert type(beat) is KubiyaBeat
    return [
        beat.worker_id, _opt(beat.token_version), beat.org_id or "", str(beat.heartbeat_ms),
        "", "", "", "", "k", beat.status, str(beat.tasks_processed),
        beat.current_task_id or "", beat.environment_name, beat.metadata_json,
    ]  # fmt: skip


def record_call(
    beats: Sequence[Beat], shards: int, now_ms: int, persist_ms: int
) -> tuple[list[str], list[str]]:
    """(keys, args) of one script call recording `beats`. On a single Redis the beats may come
    from any shards; on a cluster they must share one (one slot per call)."""
    call_keys: list[str] = []
    args = [str(now_ms), str(persist_ms)]
    for beat in beats:
        shard = keys.shard_of(beat.worker_id, shards)
        call_keys += (keys.worker_prefix(shard) + beat.worker_id, keys.dirty_key(shard))
        args += beat_args(beat)
    return call_keys, args


def node_call(beats: Sequence[Beat], shards: int, now_ms: int, persist_ms: int) -> list[str]:
    """The args of one script call, with no declared keys, recording `beats` of any shards that
    one cluster node serves: the keys `record_call` would declare follow the first two args."""
    call_keys, args = record_call(beats, shards, now_ms, persist_ms)
    return [*args[:2], str(len(call_keys)), *call_keys, *args[2:]]


def parse_results(reply: Sequence[bytes], count: int) -> list[BeatResult]:
    """The per-beat results of a call that carried `count` beats."""
    if len(reply) != count * RESULT_WIDTH:
        raise ValueError(f"expected {count * RESULT_WIDTH} values, got {len(reply)}")
    return [
        BeatResult(int(reply[i]), reply[i + 1], reply[i + 2], reply[i + 3], reply[i + 4])
        for i in range(0, len(reply), RESULT_WIDTH)
    ]

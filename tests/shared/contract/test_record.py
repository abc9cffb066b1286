"""The record script's arguments per kind of beat, and the log lines a full beat hands it."""

from __future__ import annotations

from shared.contract.record import (
    DenBeat,
    Disconnect,
    KubiyaBeat,
    WorkerBeat,
    beat_args,
    fit_log_lines,
    record_call,
)

WORKER = "wrk_01jqz3k5m2a8b9c0d1e2f3g4h5"
ORG = "org_01jqz3k5m2a8b9c0d1e2f3g4h5"


def light(**fields: object) -> WorkerBeat:
    values: dict[str, object] = {
        "worker_id": WORKER, "token_version": None, "org_id": ORG, "heartbeat_ms": 5,
        "status": "idle", "tasks_processed": 3, "current_task_id": None, "metadata_json": "{}",
    }  # fmt: skip
    values.update(fields)
    return WorkerBeat(**values)  # type: ignore[arg-type]


def test_a_lightweight_beat_sends_no_more_than_the_status_fields():
    den = beat_args(DenBeat(WORKER, 1, 5, 5, True, 1, None))
    kubiya = beat_args(KubiyaBeat(WORKER, 1, None, 5, "idle", 3, None, "prod", "{}"))
    args = beat_args(light())
    assert (len(den), len(args), len(kubiya)) == (9, 13, 14)
    assert args[8:] == ["w", "idle", "3", "", "{}"]


def test_a_full_beat_adds_system_info_and_counted_log_lines():
    args = beat_args(
        light(system_info_json='{"pid":1}', logs=["a", "b"], max_log_bytes=50, logs_id="l1")
    )
    assert args[8] == "f"
    assert args[13:] == ['{"pid":1}', "100", "50", "l1", "2", "a", "b"]
    logs_only = beat_args(light(logs=["a"]))
    assert logs_only[8] == "f" and logs_only[13:] == ["", "100", "65536", "", "1", "a"]


def test_a_disconnect_carries_its_time_in_the_heartbeats_place():
    args = beat_args(Disconnect(WORKER, 2, None, 77, "crash", None, "boom"))
    assert args == [WORKER, "2", "", "77", "", "", "", "", "x", "crash", "", "boom"]


def test_one_call_packs_every_kind_in_order():
    beats = [light(), Disconnect(WORKER, None, ORG, 6, "shutdown", 0, None)]
    call_keys, args = record_call(beats, 8, 10, 60_000)
    assert len(call_keys) == 4
    assert args[:2] == ["10", "60000"] and len(args) == 2 + 13 + 12


def test_fit_log_lines_keeps_the_newest_within_both_bounds():
    lines = [f"line {i}" for i in range(150)]
    assert fit_log_lines(lines, 100, 65536) == lines[50:]
    assert fit_log_lines(["aaaa", "bbbb", "cccc"], 100, 9) == ["bbbb", "cccc"]
    assert fit_log_lines(["x" * 20], 100, 8) == ["x" * 8]
    assert fit_log_lines(["ééééé"], 100, 5) == ["éé"]  # cut at a character boundary
    assert fit_log_lines([], 100, 10) == []

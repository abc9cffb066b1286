"""Real `hb` service processes for the tests: started on a free port, stopped by process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from hb.embedded import free_port
from tests.conftest import TOKEN_KEYS

HB = Path(sys.executable).parent / "hb"
TOKEN_KEYS_ENV = ",".join(f"{kid}:{secret.decode()}" for kid, secret in TOKEN_KEYS.items())
READY_WITHIN = 30.0
STOP_WITHIN = 10.0


def hb_env(**values: str) -> dict[str, str]:
    """This process's environment without its HB_* variables, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HB_")}
    env.update(values)
    return env


@contextmanager
def running_ingest(
    redis_url: str, shards: int, log_dir: Path | None = None, workers: int = 1, **settings: str
) -> Iterator[str]:
    """`hb ingest` (with HB_* `settings`) on a free port of 127.0.0.1, ready to serve: yields its
    base URL. Its output goes to a file (a pipe nobody reads would fill and stall it), quoted
    when it fails to start; it runs in its own process group, stopped with its workers."""
    port = free_port()
    with _log_folder(log_dir) as folder:
        log = folder / f"ingest-{port}.log"
        env = hb_env(
            HB_REDIS_URL=redis_url, HB_TOKEN_KEYS=TOKEN_KEYS_ENV, HB_SHARDS=str(shards), **settings
        )
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(HB), "ingest", "--host", "127.0.0.1", "--port", str(port),
                 "--workers", str(workers)],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_ready(proc, base, log)
            yield base
        finally:
            _stop(proc)


@contextmanager
def _log_folder(folder: Path | None) -> Iterator[Path]:
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="hb-test-logs-") as made:
        yield Path(made)


def _wait_until_ready(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while True:
        if proc.poll() is not None:
            output = log.read_text(errors="replace")
            raise AssertionError(f"hb ingest exited with {proc.returncode}:\n{output}")
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            output = log.read_text(errors="replace")
            raise AssertionError(f"hb ingest was not ready within {READY_WITHIN} s:\n{output}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_WITHIN)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with suppress(ProcessLookupError):  # anything left in its group
        os.killpg(proc.pid, signal.SIGKILL)

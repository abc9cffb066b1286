"""`hb ingest`: the console script serves the real app over HTTP, and refuses bad settings."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hb.embedded import free_port
from tests.conftest import TOKEN_KEYS, register
from tests.metrics_text import sample

HB = Path(sys.executable).parent / "hb"
TOKEN_KEYS_ENV = ",".join(f"{kid}:{secret.decode()}" for kid, secret in TOKEN_KEYS.items())


def hb_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HB_")}
    env.update(values)
    return env


@contextmanager
def running_ingest(redis_url: str, shards: int, workers: int = 1, **settings: str) -> Iterator[str]:
    """`hb ingest` as its own process group (with HB_* `settings`), stopped with its workers."""
    port = free_port()
    env = hb_env(
        HB_REDIS_URL=redis_url, HB_TOKEN_KEYS=TOKEN_KEYS_ENV, HB_SHARDS=str(shards), **settings
    )
    proc = subprocess.Popen(
        [str(HB), "ingest", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read().decode() if proc.stdout else ""
                raise AssertionError(f"hb ingest exited with {proc.returncode}: {output}")
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("hb ingest did not become ready")
            time.sleep(0.05)
        yield base
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def served_ingest(redis_url: str, settings) -> Iterator[str]:
    with running_ingest(redis_url, settings.shards) as base:
        yield base


async def test_hb_ingest_serves_beats_over_http(served_ingest, redis, settings):
    worker = await register(redis, settings)
    async with httpx.AsyncClient(base_url=served_ingest) as client:
        auth = {"Authorization": f"Bearer {worker.token}"}
        r = await client.post(
            f"/v1/workers/{worker.id}/activity-heartbeat",
            json={"isActiveRecently": True, "openSessionCount": 2},
            headers=auth,
        )
        assert r.status_code == 200, r.text
        assert r.json()["openSessionCount"] == 2
        r = await client.post(
            "/api/v1/workers/heartbeat",
            json={"worker_id": worker.id, "environment_name": "prod"},
            headers=auth,
        )
        assert r.status_code == 204
        r = await client.post("/v1/workers/nope/activity-heartbeat", content=b"{")
        assert r.status_code == 400
        assert (await client.get("/health")).json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"HB_SHARDS": "many", "HB_TOKEN_KEYS": TOKEN_KEYS_ENV}, "HB_SHARDS"),
        ({"HB_SHARDS": "0", "HB_TOKEN_KEYS": TOKEN_KEYS_ENV}, "HB_SHARDS"),
        ({}, "HB_TOKEN_KEYS"),
        ({"HB_TOKEN_KEYS": "k1:short"}, "HB_TOKEN_KEYS"),
        ({"HB_TOKEN_KEYS": TOKEN_KEYS_ENV, "HB_REDIS_TIMEOUT": "soon"}, "HB_REDIS_TIMEOUT"),
    ],
)
def test_hb_ingest_with_bad_settings_exits_naming_the_variable(env, variable):
    port = str(free_port())
    done = subprocess.run(
        [str(HB), "ingest", "--port", port], env=hb_env(**env), capture_output=True, timeout=60
    )
    assert done.returncode != 0
    assert variable in done.stderr.decode()
    assert "Traceback" not in done.stderr.decode() + done.stdout.decode()


async def test_metrics_under_several_worker_processes_report_the_sum_of_all(
    redis_url, redis, settings
):
    worker = await register(redis, settings)
    beats = 40
    with running_ingest(redis_url, settings.shards, workers=2) as base:
        auth = {"Authorization": f"Bearer {worker.token}"}
        for _ in range(beats):  # a new connection each: the kernel hands them to both processes
            async with httpx.AsyncClient(base_url=base) as client:
                r = await client.post(
                    f"/v1/workers/{worker.id}/activity-heartbeat",
                    json={"isActiveRecently": False},
                    headers=auth,
                )
                assert r.status_code == 200, r.text
        # Each process folds its counts in within a second; poll, bounded.
        deadline = time.monotonic() + 30
        while True:
            async with httpx.AsyncClient(base_url=base) as client:
                text = (await client.get("/metrics")).text
            accepted = sample(text, "hb_beats_accepted_total", contract="den")
            pids = {
                s.labels.get("pid")
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == "process_resident_memory_bytes"
            }
            if (accepted, len(pids)) == (beats, 2) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    assert accepted == beats
    assert len(pids) == 2  # both processes report, each under its own pid

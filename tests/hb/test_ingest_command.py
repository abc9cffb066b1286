"""`hb ingest`: the console script serves the real app over HTTP, and refuses bad settings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hb.embedded import free_port
from tests.conftest import TOKEN_KEYS, register

HB = Path(sys.executable).parent / "hb"
TOKEN_KEYS_ENV = ",".join(f"{kid}:{secret.decode()}" for kid, secret in TOKEN_KEYS.items())


def hb_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HB_")}
    env.update(values)
    return env


@pytest.fixture
def served_ingest(redis_url: str, settings) -> Iterator[str]:
    port = free_port()
    env = hb_env(
        HB_REDIS_URL=redis_url, HB_TOKEN_KEYS=TOKEN_KEYS_ENV, HB_SHARDS=str(settings.shards)
    )
    proc = subprocess.Popen(
        [str(HB), "ingest", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
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
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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

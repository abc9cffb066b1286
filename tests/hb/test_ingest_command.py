"""`hb ingest`: the console script serves the real app over HTTP, and refuses bad settings."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hb.embedded import free_port
from tests.conftest import register
from tests.metrics_text import sample
from tests.processes import HB, TOKEN_KEYS_ENV, hb_env, running_ingest


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

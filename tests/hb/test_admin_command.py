from __future__ import annotations

import asyncio
import json

from hb.cli import main
from tests.conftest import TOKEN_KEYS


def hb_admin(monkeypatch, capsys, settings, *argv):
    keys = ",".join(f"{kid}:{secret.decode()}" for kid, secret in TOKEN_KEYS.items())
    monkeypatch.setenv("HB_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HB_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("HB_TOKEN_KEYS", keys)
    monkeypatch.setenv("HB_SHARDS", str(settings.shards))
    code = main(["admin", *argv])
    out = capsys.readouterr()
    return code, json.loads(out.out) if code == 0 else out.err


async def test_admin_commands_bootstrap_a_working_tenant(monkeypatch, capsys, settings, api):
    # The CLI runs its own event loop, so it runs in a thread beside the test's loop.
    def run(*argv):
        return asyncio.to_thread(hb_admin, monkeypatch, capsys, settings, *argv)

    code, org = await run("create-org", "Initech")
    assert code == 0
    org_id = org["orgId"]
    code, user = await run("create-user", "--org", org_id, "--email", "p@initech.test")
    assert code == 0
    code, session = await run("create-session", "--user", user["userId"], "--org", org_id)
    code, key = await run("create-api-key", "--org", org_id, "--name", "ci")
    code, worker = await run("create-worker", "--org", org_id, "--name", "w", "--user",
                             user["userId"])  # fmt: skip
    assert code == 0 and worker["heartbeatToken"].startswith("hbw.")

    by_session = await api.get(
        f"/v1/workers/{worker['workerId']}",
        headers={"Authorization": f"Bearer {session['sessionToken']}"},
    )
    assert by_session.status_code == 200 and by_session.json()["worker"]["isMine"] is True
    by_key = await api.get("/v1/workers", headers={"x-api-key": key["apiKey"]})
    assert [w["id"] for w in by_key.json()["workers"]] == [worker["workerId"]]


async def test_admin_reports_an_unknown_organization_clearly(monkeypatch, capsys, settings):
    code, err = await asyncio.to_thread(
        hb_admin, monkeypatch, capsys, settings,
        "create-worker", "--org", "org_01jqz3k5m2a8b9c0d1e2f3g4h5", "--name", "w",
    )  # fmt: skip
    assert code == 1
    assert "unknown organization" in err


def test_admin_refuses_a_malformed_database_url(monkeypatch, capsys):
    monkeypatch.setenv("HB_DATABASE_URL", "notaurl")
    monkeypatch.setenv("HB_TOKEN_KEYS", "k1:0123456789abcdef0123")
    code = main(["admin", "create-org", "Initech"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("hb admin: configuration error: HB_DATABASE_URL ")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_admin_refuses_a_malformed_redis_url(monkeypatch, capsys):
    monkeypatch.setenv("HB_REDIS_URL", "localhost:6379")
    monkeypatch.setenv("HB_TOKEN_KEYS", "k1:0123456789abcdef0123")
    code = main(["admin", "create-org", "Initech"])
    err = capsys.readouterr().err
    assert code == 2
    assert "HB_REDIS_URL" in err and len(err.strip().splitlines()) == 1


def test_admin_says_in_one_line_where_postgres_could_not_be_reached(monkeypatch, capsys):
    from hb.embedded import free_port

    port = free_port()
    monkeypatch.setenv("HB_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{port}/heartbeat")
    monkeypatch.setenv("HB_TOKEN_KEYS", "k1:0123456789abcdef0123")
    code = main(["admin", "create-org", "Initech"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"hb admin: cannot reach Postgres at 127.0.0.1:{port}")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_admin_says_in_one_line_that_the_database_is_missing(monkeypatch, capsys, pg_server_url):
    url = pg_server_url.rpartition("/")[0] + "/no_such_database"
    monkeypatch.setenv("HB_DATABASE_URL", url)
    monkeypatch.setenv("HB_TOKEN_KEYS", "k1:0123456789abcdef0123")
    code = main(["admin", "create-org", "Initech"])
    err = capsys.readouterr().err
    assert code == 1
    assert "no_such_database" in err and err.startswith("hb admin: Postgres at ")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1

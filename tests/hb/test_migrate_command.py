"""`hb migrate`: applies the migrations, or says in one line why it could not."""

from __future__ import annotations

import secrets

import pytest

from hb.cli import main
from hb.embedded import free_port


def hb_migrate(monkeypatch, capsys, *argv: str, database_url: str | None = None):
    monkeypatch.delenv("HB_DATABASE_URL", raising=False)
    if database_url is not None:
        monkeypatch.setenv("HB_DATABASE_URL", database_url)
    code = main(["migrate", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line(err: str) -> None:
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_migrate_applies_pending_migrations_then_none(monkeypatch, capsys, pg_server_url):
    url = pg_server_url.rpartition("/")[0] + "/postgres"
    code, out, err = hb_migrate(monkeypatch, capsys, "--database-url", url)
    assert code == 0, err
    code, out, _ = hb_migrate(monkeypatch, capsys, "--database-url", url)
    assert (code, out.strip()) == (0, "applied 0 migration(s): none pending")


@pytest.mark.parametrize("url", ["notaurl", "http://db/heartbeat", "postgresql:///heartbeat"])
def test_a_malformed_database_url_is_a_configuration_error(monkeypatch, capsys, url):
    code, _, err = hb_migrate(monkeypatch, capsys, database_url=url)
    assert code == 2
    assert_one_line(err)
    assert err.startswith("hb migrate: configuration error: HB_DATABASE_URL ")


def test_a_malformed_url_option_is_named_as_the_option(monkeypatch, capsys):
    code, _, err = hb_migrate(monkeypatch, capsys, "--database-url", "notaurl")
    assert code == 2
    assert_one_line(err)
    assert "--database-url" in err


def test_an_unreachable_postgres_is_one_line_naming_where(monkeypatch, capsys):
    port = free_port()  # nothing listens there
    url = f"postgresql://postgres@127.0.0.1:{port}/heartbeat"
    code, _, err = hb_migrate(monkeypatch, capsys, database_url=url)
    assert code == 1
    assert_one_line(err)
    assert err.startswith(f"hb migrate: cannot reach Postgres at 127.0.0.1:{port}")


def test_a_missing_database_is_one_line(monkeypatch, capsys, pg_server_url):
    name = f"missing_{secrets.token_hex(4)}"
    url = pg_server_url.rpartition("/")[0] + "/" + name
    code, _, err = hb_migrate(monkeypatch, capsys, database_url=url)
    assert code == 1
    assert_one_line(err)
    assert name in err and "hb migrate: Postgres at " in err

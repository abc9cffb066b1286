"""`hb api` refuses malformed settings before it serves anything."""

from __future__ import annotations

import subprocess

import pytest

from hb.embedded import free_port
from tests.processes import HB, TOKEN_KEYS_ENV, hb_env


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"HB_DATABASE_URL": "notaurl"}, "HB_DATABASE_URL"),
        ({"HB_REDIS_URL": "localhost:6379"}, "HB_REDIS_URL"),
    ],
)
def test_hb_api_with_a_malformed_url_exits_2_naming_the_variable(env, variable):
    port = str(free_port())
    done = subprocess.run(
        [str(HB), "api", "--port", port],
        env=hb_env(HB_TOKEN_KEYS=TOKEN_KEYS_ENV, **env),
        capture_output=True,
        timeout=60,  # only against a hang: the refusal comes before the server starts
    )
    assert done.returncode == 2
    assert variable in done.stderr.decode()
    assert "Traceback" not in done.stderr.decode() + done.stdout.decode()

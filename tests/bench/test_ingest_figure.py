"""The mixed fleet of `bench ingest --kubiya-share`: which worker beats on which route."""

import re

from bench.fleet import new_fleet
from bench.ingest_figure import BODY, LIGHTWEIGHT_BODY, _mixed_script
from bench.load import lua_string
from bench.servers import TOKEN_KEYS


def routes_of(script: str) -> list[str]:
    paths = script.split("local paths = {", 1)[1].split("}", 1)[0]
    return re.findall(r'"(/[^"]+)"', paths)


def test_a_share_of_the_workers_spread_through_the_fleet_send_kubiyas_lightweight_beat():
    fleet = new_fleet(8, TOKEN_KEYS)
    script = _mixed_script(fleet, "hbk_key", 0.25)
    paths = routes_of(script)
    kubiya = [p for p in paths if p.startswith("/api/v1/workers/")]
    assert len(paths) == 8 and len(kubiya) == 2
    assert paths[3] == f"/api/v1/workers/{fleet.worker_ids[3]}/heartbeat"
    assert paths[0] == f"/v1/workers/{fleet.worker_ids[0]}/activity-heartbeat"
    assert lua_string(BODY) in script and lua_string(LIGHTWEIGHT_BODY) in script
    assert script.count('"hbk_key"') == 2


def test_a_share_of_one_puts_every_worker_on_the_per_worker_route():
    fleet = new_fleet(5, TOKEN_KEYS)
    paths = routes_of(_mixed_script(fleet, "hbk_key", 1.0))
    assert all(p.endswith("/heartbeat") and p.startswith("/api/") for p in paths)

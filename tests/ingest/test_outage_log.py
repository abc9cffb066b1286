"""What ingest logs while Redis refuses beats: a report, not a line per beat."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from ingest.state import IngestState


def test_an_outage_is_reported_every_ten_seconds_and_its_end_once_beats_stop_failing(
    monkeypatch, caplog
):
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr("ingest.state.time", SimpleNamespace(monotonic=lambda: clock.now))
    state = IngestState()
    caplog.set_level(logging.WARNING, logger="hb.ingest")

    def stored() -> None:  # as the routes do after a stored beat
        if state.redis_failing:
            state.available()

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "hb.ingest"]

    down = ConnectionError("node 2 down")
    for _ in range(50):  # one node of a cluster down: beats refused and stored, interleaved
        state.unavailable(down)
        stored()
        clock.now += 0.1
    assert len(lines()) == 1 and lines()[0].startswith("Redis unavailable"), lines()
    state.unavailable(down)  # 5 s after the first report: still within the report's period
    clock.now += 5.1
    state.unavailable(down)  # 10.1 s after it: the next report, with the count since
    assert len(lines()) == 2 and "51 refused" in lines()[1], lines()

    clock.now += 0.5
    stored()  # too soon after a refusal to call it over
    clock.now += 1.0
    stored()
    stored()
    assert len(lines()) == 3 and lines()[2].startswith("Redis available again"), lines()
    assert not state.redis_failing

"""`bench fleet`: the record script without its fleet index, the liveness mix, and one tiny run
of the whole figure (the output's shape only: timings on a shared machine prove nothing)."""

import shutil

import pytest

from bench.__main__ import main
from bench.fleet_figure import MIX, liveness_mix
from bench.unindexed_record import ScriptChanged, without_fleet_index
from shared.contract.liveness import liveness_of
from shared.contract.record import RECORD_HEARTBEATS
from shared.settings import Settings


def test_the_index_and_revived_statements_are_taken_out_of_the_record_script():
    text, removed = without_fleet_index(RECORD_HEARTBEATS.source)
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    assert removed >= 2
    assert "'seen:'" not in code and "'revived'" not in code
    assert "call('ZADD', dirty, 'NX', now, id)" in code  # the dirty mark stays
    assert text.count("\n") < RECORD_HEARTBEATS.source.count("\n")


@pytest.mark.parametrize(
    "source",
    [
        "return 1\n",  # nothing to take out: the script changed
        "local k = tag .. 'seen:' .. org\nredis.call('ZADD', k, 'GT', hb, id)\n",
    ],
)
def test_a_script_of_another_shape_fails_loudly(source):
    with pytest.raises(ScriptChanged):
        without_fleet_index(source)


def test_the_mix_splits_the_fleet_with_beats_well_inside_each_liveness():
    settings = Settings()
    ids = [f"w{i}" for i in range(1000)]
    mix = liveness_mix(ids, settings)
    assert {lv: len(ws) for lv, ws in mix.workers.items()} == {
        lv: round(share * 1000) for lv, share in MIX
    }
    assert sorted(w for ws in mix.workers.values() for w in ws) == sorted(ids)
    for lv, workers in mix.workers.items():
        for worker_id in workers:
            age = mix.age_ms.get(worker_id)
            for later in (0, 30_000):  # the mix still holds 30 s after a beat
                hb = None if age is None else 1_000_000_000 - age - later
                assert liveness_of(hb, 1_000_000_000, 75, 150) == lv


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_a_tiny_run_prints_a_table_per_part(capsys):
    code = main([
        "fleet", "--workers", "300", "--runs", "1", "--seconds", "1", "--ingest-seconds", "1",
        "--warmup", "1", "--connections", "8", "--transitions", "100", "--detect-workers", "5",
        "--detect-interval", "0.2",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("command: python -m bench fleet --workers 300 ")
    for title in ("part 1, reads", "part 2, ingest", "part 3, sweep", "part 4, detection"):
        assert f"fleet {title}: " in out
    for row in ("| summary ", "| liveness=offline ", "| liveness=online ", "| liveness=stale ",
                "| unfiltered ", "| reference: bare Starlette", "| ingest, fleet index ",
                "| ingest, index taken out ", "| ratio with / without ", "| run 1 ", "| median ",
                "| worker.online ", "| worker.stale ", "| worker.offline "):  # fmt: skip
        assert row in out
    assert "index cost: " in out and "per-run ratios with / without: " in out

from bench.load import LoadResult
from bench.read_figure import Level, verdict


def level(connections: int, *p99_ms: float, rate: float = 1000.0) -> Level:
    runs = [LoadResult(rate, p99 / 2, p99, 0, 0) for p99 in p99_ms]
    return Level(connections, runs, [0.5] * len(runs))


def test_verdict_names_the_highest_level_within_the_target_and_the_next_one():
    levels = [level(1, 2, 9, 3), level(4, 5, 6, 30), level(16, 12, 11, 9), level(64, 60, 70, 80)]
    assert verdict(levels) == (
        "One API process keeps p99 <= 10 ms up to 4 connections (p99 6.0 ms at 1,000 pages/s); "
        "at 16 connections p99 is 11.0 ms."
    )


def test_a_level_within_the_target_above_one_that_missed_it_does_not_count():
    levels = [level(1, 3), level(4, 12), level(16, 8)]
    assert verdict(levels).startswith("One API process keeps p99 <= 10 ms up to 1 connection ")


def test_verdict_when_every_level_is_within_or_none_is():
    assert verdict([level(1, 2), level(64, 9)]).endswith(
        "up to 64 connections (p99 9.0 ms at 1,000 pages/s)."
    )
    assert verdict([level(1, 25)]) == (
        "One API process misses p99 <= 10 ms at every level measured (p99 25.0 ms at 1 connection)."
    )

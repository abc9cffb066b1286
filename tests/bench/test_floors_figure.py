"""`bench floors`: every command set priced, each conditional write checked to have applied."""

import pytest

from bench import floors_figure
from bench.__main__ import main


def test_floors_prices_every_set_beside_the_plain_reference(capsys):
    assert main(["floors", "--workers", "300", "--batch", "50", "--runs", "1"]) == 0

    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]
    assert [c[0] for c in cells] == [
        "plain", "hset-2", "index", "hset-2+index", "hget-1", "hmget-10", "set-xx", "xadd",
        "script",
    ]  # fmt: skip
    assert cells[0][3] == "1.00"
    assert all(float(c[2]) > 0 for c in cells)


def test_a_refused_conditional_write_stops_the_figure():
    sets = {name: (queue, applied) for name, _, queue, applied in floors_figure.SETS}

    def check(name: str, replies: list[object]) -> None:
        floors_figure._check(*sets[name], replies)

    with pytest.raises(RuntimeError, match="did not apply"):
        check("index", [1, 0, 1])
    with pytest.raises(RuntimeError, match="did not apply"):
        check("hset-2+index", [1, 1, 0, 0])
    with pytest.raises(RuntimeError, match="did not apply"):
        check("xadd", [b"1-0", None])
    check("hset-2+index", [0, 1, 0, 1])  # HSET's 0: no new field

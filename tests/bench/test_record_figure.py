"""`bench record`: the script beside a variant, and the commands a steady beat runs."""

from pathlib import Path

from bench.__main__ import main
from shared.contract import lua_scripts


def test_record_measures_the_contracts_script_beside_a_variant(capsys):
    variant = Path(lua_scripts.__file__).parent / "scripts" / "record_heartbeats.lua"
    argv = ["record", "--workers", "300", "--batch", "50", "--runs", "1", "--rounds", "1"]

    assert main([*argv, "--script", str(variant)]) == 0

    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]
    assert [(c[0], c[1]) for c in cells] == [
        ("contract", "bench"), (str(variant), "bench"),
        ("contract", "deployed"), (str(variant), "deployed"),
    ]  # fmt: skip
    deployed = cells[2]
    assert deployed[5] == "hmget 1.00, hset 1.00, zadd 1.00"
    assert all(float(c[2]) > 0 and float(c[3]) > 0 for c in cells)

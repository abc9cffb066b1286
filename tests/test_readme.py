"""The README documents what the code does: every setting, and the two quickstart commands."""

from dataclasses import fields
from pathlib import Path

from shared.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme_table():
    missing = [f"{PREFIX}{f.name.upper()}" for f in fields(Settings)]
    missing = [name for name in missing if f"| `{name}` |" not in README]
    assert missing == []


def test_ci_runs_the_test_command_exactly_as_the_readme_prints_it():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"```sh\n{ci}\n```" in README

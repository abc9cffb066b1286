"""The distribution stays what workers can install next to anything: one dependency, typed."""

from __future__ import annotations

import tomllib
from pathlib import Path

import heartbeat_client

CLIENT = Path(__file__).resolve().parents[2] / "client"


def test_metadata_matches_the_package() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "heartbeat-client"
    assert project["version"] == heartbeat_client.__version__
    assert project["requires-python"] == ">=3.11"
    assert project["dependencies"] == ["httpx>=0.27"]


def test_the_package_ships_its_type_information() -> None:
    assert (Path(heartbeat_client.__file__).parent / "py.typed").is_file()

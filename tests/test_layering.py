"""Imports point down: services use shared/, shared/ uses none of them, and nothing at run time
imports the tooling in hb/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("ingest", "api", "flusher")
TOOLING = "hb"


def imported_packages(package: str) -> dict[str, set[str]]:
    """Top-level package of every import in each module of `package`, by module path."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package", ["shared", *SERVICES])
def test_nothing_that_runs_in_production_imports_the_tooling(package: str) -> None:
    offenders = {m: n for m, n in imported_packages(package).items() if TOOLING in n}
    assert offenders == {}


def test_shared_imports_none_of_the_services() -> None:
    offenders = {
        module: names & set(SERVICES)
        for module, names in imported_packages("shared").items()
        if names & set(SERVICES)
    }
    assert offenders == {}


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service(service: str) -> None:
    others = set(SERVICES) - {service}
    offenders = {m: n & others for m, n in imported_packages(service).items() if n & others}
    assert offenders == {}


def test_the_check_sees_imports_inside_functions() -> None:
    """`hb/demo_seed.py` once imported `api` inside a function; the walk must see such imports."""
    assert "api" in imported_packages("hb")["hb/demo_seed.py"]

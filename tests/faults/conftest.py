"""A fresh stack per scenario, and the report table every scenario adds a row to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.faults.harness import Row, Stack, report_table

ROWS: list[Row] = []
REPORT_NAME = "faults-report.md"
_ROW = pytest.StashKey[Row]()
_CALL = pytest.StashKey[pytest.TestReport]()
_report_path: list[Path] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if report.when == "call":
        item.stash[_CALL] = report
        row = item.stash.get(_ROW, None)
        if row is not None:
            if report.passed:
                row.result = "passed"
            else:
                crash = getattr(report.longrepr, "reprcrash", None)
                message = crash.message.splitlines()[0] if crash is not None else ""
                row.result = f"FAILED: {message[:200]}".replace("|", "/")
    return report


@pytest.fixture(scope="session", autouse=True)
def fault_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Writes the table of every scenario that ran to <basetemp>/faults-report.md (the terminal
    summary shows it too, captured output or not)."""
    path = tmp_path_factory.getbasetemp() / REPORT_NAME
    _report_path.append(path)
    yield
    if ROWS:
        path.write_text(report_table(ROWS) + "\n")


def pytest_terminal_summary(terminalreporter) -> None:
    if ROWS and _report_path:
        terminalreporter.section("fault scenarios")
        terminalreporter.write_line(report_table(ROWS))
        terminalreporter.write_line(f"(written to {_report_path[0]})")


@pytest.fixture
def row(request: pytest.FixtureRequest) -> Row:
    """This scenario's row of the report; its result is filled in when the test ends."""
    entry = Row(scenario=request.node.name)
    request.node.stash[_ROW] = entry
    ROWS.append(entry)
    return entry


@pytest.fixture
async def stack(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    """Redis, Postgres, ingest, the API and the flusher, all stopped afterwards whatever
    happened; their logs are printed when the scenario failed."""
    started = Stack(tmp_path / "stack")
    try:
        await started.start()
        yield started
    finally:
        await asyncio.to_thread(started.close)
        report = request.node.stash.get(_CALL, None)
        if report is None or report.failed:
            print(f"\nlogs of the failed scenario:\n{started.log_tails()}")

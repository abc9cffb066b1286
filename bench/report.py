"""Printing a figure: a small aligned table and a note on where it was measured."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence

NOISE_NOTE = (
    "The machine is shared and noisy and nothing is pinned: compare ratios from the same run, "
    "not absolute numbers across runs."
)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}, " + (
        f"Python {platform.python_version()}"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    text = [[str(h) for h in headers], *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in text) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
        for row in text
    ]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_figure(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    print(f"\n{title}  ({machine()})")
    print(table(headers, rows))

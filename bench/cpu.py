"""CPU time of the processes a figure runs, read from Linux's /proc (None elsewhere), and of a
redis-server, as it reports it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import redis as sync_redis

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children: bool = False) -> float | None:
    """User + system CPU time of a process so far; with `children`, also of those it has reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICKS


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU time of a process and all its descendants, the running and the reaped (a postmaster
    and its backends, say)."""
    total = cpu_seconds(pid, children=True)
    if total is None:
        return None
    for child in _children(pid):
        total += tree_cpu_seconds(child) or 0.0
    return total


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            children.append(int(entry.name))
    return children


def redis_cpu_seconds(client: sync_redis.Redis) -> float:
    """User + system CPU time the redis-server behind `client` has used (`INFO cpu`)."""
    cpu: dict[str, Any] = client.info("cpu")  # type: ignore[assignment]
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])

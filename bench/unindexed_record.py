"""The record script without its fleet index: `record_heartbeats.lua` with the statements that
write the org's last-heartbeat index (`seen:`) and the revived set taken out, for measuring what
they cost ingest (`bench fleet`). The substitution is checked: when the script no longer has
them in the shape expected here, it fails rather than measure something else."""

from __future__ import annotations

import re

# `if <condition> then <ZADD of the index or the revived set> end`, on one line or three: the
# whole block goes, the condition's own reads with it.
_GUARDED = re.compile(
    r"^[ \t]*if [^\n]* then\n[ \t]*(?:redis\.)?call\('ZADD', [^\n]*'(?:seen:|revived)'[^\n]*\)\n"
    r"[ \t]*end\n",
    re.MULTILINE,
)
_GUARDED_LINE = re.compile(
    r"^[ \t]*if [^\n]* then (?:redis\.)?call\('ZADD', [^\n]*'(?:seen:|revived)'[^\n]*\) end\n",
    re.MULTILINE,
)
# A ZADD of the index or the revived set on a line of its own.
_PLAIN = re.compile(
    r"^[ \t]*(?:redis\.)?call\('ZADD', [^\n]*'(?:seen:|revived)'[^\n]*\)\n", re.MULTILINE
)
_LEFT = re.compile(r"'(?:seen:|revived)'")


class ScriptChanged(RuntimeError):
    """The record script no longer matches what the substitution takes out."""


def without_fleet_index(source: str) -> tuple[str, int]:
    """`source` without its fleet-index and revived statements, and how many were taken out."""
    text, guarded = _GUARDED.subn("", source)
    text, one_line = _GUARDED_LINE.subn("", text)
    text, plain = _PLAIN.subn("", text)
    guarded += one_line
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    left = _LEFT.findall(code)
    if left or guarded + plain == 0:
        raise ScriptChanged(
            "record_heartbeats.lua changed: the fleet index statements could not be taken out "
            f"({guarded + plain} removed, {len(left)} left); update bench/unindexed_record.py"
        )
    return text, guarded + plain

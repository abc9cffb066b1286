"""HTTP load from `wrk`: a generated Lua script, and the figures read back from its `done` hook."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = (
    "wrk is not installed. Install it with `apt-get install -y wrk` (Debian/Ubuntu) or "
    "`brew install wrk` (macOS), then run the figure again."
)

# Appended to every script: wrk calls `done` once, with the stats of all threads merged.
REPORT_LUA = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non2xx": %d, '
    .. '"socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


class WrkMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissing(INSTALL_HINT)
    return found


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII text is a valid Lua string literal


def heartbeat_script(worker_ids: Sequence[str], tokens: Sequence[str], body: str) -> str:
    """Den beats cycling over the given workers, each with its own token; threads start apart."""
    paths = [f"/v1/workers/{worker_id}/activity-heartbeat" for worker_id in worker_ids]
    return beats_script(paths, tokens, [body] * len(paths))


def beats_script(paths: Sequence[str], bearers: Sequence[str], bodies: Sequence[str]) -> str:
    """POSTs cycling over `paths`, the i-th with `Bearer <bearers[i]>` and body `bodies[i]`
    (a fleet that mixes routes and credentials); threads start apart."""
    distinct = list(dict.fromkeys(bodies))
    index = {body: i + 1 for i, body in enumerate(distinct)}
    path_list = ",\n".join(lua_string(p) for p in paths)
    bearer_list = ",\n".join(lua_string(b) for b in bearers)
    body_list = ", ".join(lua_string(b) for b in distinct)
    which = ",".join(str(index[b]) for b in bodies)
    return (
        f"""
local paths = {{{path_list}}}
local bearers = {{{bearer_list}}}
local bodies = {{{body_list}}}
local which = {{{which}}}
local requests = {{}}
local n = 0
local threads = 0

function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
end

function init(args)
  for i = 1, #paths do
    local headers = {{["Content-Type"] = "application/json",
                     ["Authorization"] = "Bearer " .. bearers[i]}}
    requests[i] = wrk.format("POST", paths[i], headers, bodies[which[i]])
  end
  n = (offset or 0) * 4999 % #requests
end

function request()
  n = n % #requests + 1
  return requests[n]
end
"""
        + REPORT_LUA
    )


def get_script(path: str, headers: dict[str, str]) -> str:
    lines = [f"wrk.path = {lua_string(path)}"]
    lines += [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n" + REPORT_LUA


def run_wrk(
    url: str, script: Path, seconds: int, connections: int = 64, threads: int = 2
) -> LoadResult:
    args = [
        wrk_binary(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
        "--timeout", "5s", "-s", str(script), url,
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            stats = json.loads(line[6:])
            return LoadResult(
                requests_per_s=stats["requests"] / (stats["duration_us"] / 1e6),
                p50_ms=stats["p50_us"] / 1000,
                p99_ms=stats["p99_us"] / 1000,
                non2xx=stats["non2xx"],
                socket_errors=stats["socket_errors"],
            )
    raise RuntimeError(f"wrk gave no result (exit {done.returncode}): {done.stderr.strip()}")

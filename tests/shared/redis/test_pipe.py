"""The hot path's own Redis connection: replies in order, errors in place, and every way a
connection can fail ends in an exception the routes answer with 503, then a fresh connection."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import trustme
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hb.embedded import EmbeddedRedis
from ingest.app import create_app
from shared.redis.connect import REDIS_DOWN, connect_redis
from shared.redis.keepalive import IDLE_SECONDS
from shared.redis.pipe import RedisPipe
from shared.redis.resp import command
from tests.conftest import asgi_client, register

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def pipe(redis_url: str) -> AsyncIterator[RedisPipe]:
    pipe = RedisPipe(redis_url, timeout=5)
    yield pipe
    pipe.close()


async def test_concurrent_calls_each_get_their_own_reply(pipe):
    replies = await asyncio.gather(*(pipe.call(command("ECHO", f"n{i}")) for i in range(500)))
    assert replies == [f"n{i}".encode() for i in range(500)]


async def test_commands_written_together_get_their_replies_together(pipe):
    await pipe.call(command("SET", "text", "not a number"))
    many = command("ECHO", "a") + command("INCR", "text") + command("ECHO", "b")
    together, alone, one = await asyncio.gather(
        pipe.call_many(many, 3),
        pipe.call(command("ECHO", "c")),
        pipe.call_many(command("ECHO", "a"), 1),
    )
    assert together[0] == b"a" and together[2] == b"b"
    assert isinstance(together[1], ResponseError)
    assert (alone, one) == (b"c", [b"a"])


async def test_an_error_reply_is_returned_in_place_not_raised(pipe):
    await pipe.call(command("SET", "text", "not a number"))
    replies = await asyncio.gather(
        pipe.call(command("INCR", "text")), pipe.call(command("INCR", "counter"))
    )
    assert isinstance(replies[0], ResponseError)
    assert replies[1] == 1


async def test_password_and_database_from_the_url_are_used(tmp_path: Path):
    server = EmbeddedRedis(tmp_path / "redis", extra_args=["--requirepass", "s3cret-pw"])
    server.start()
    try:
        url = f"redis://:s3cret-pw@127.0.0.1:{server.port}/3"
        pipe = RedisPipe(url, timeout=5)
        assert await pipe.call(command("SET", "where", "db3")) == b"OK"
        pipe.close()
        direct = Redis.from_url(url)
        assert await direct.get("where") == b"db3"
        await direct.aclose()

        wrong = RedisPipe(f"redis://:wrong@127.0.0.1:{server.port}/0", timeout=5)
        with pytest.raises(AuthenticationError) as refused:
            await wrong.call(command("PING"))
        assert isinstance(refused.value, REDIS_DOWN)  # so a beat is answered 503, not 500
    finally:
        server.stop()


async def test_a_unix_socket_url_is_served(tmp_path: Path):
    socket_path = tmp_path / "redis.sock"
    server = EmbeddedRedis(tmp_path / "redis", extra_args=["--unixsocket", str(socket_path)])
    server.start()
    try:
        pipe = RedisPipe(f"unix://{socket_path}?db=1", timeout=5)
        assert await pipe.call(command("PING")) == b"PONG"
        pipe.close()
    finally:
        server.stop()


@pytest.fixture
async def tls_redis(redis_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """The test Redis behind a TLS terminator with a certificate of a private CA; yields the
    terminator's address and the CA's certificate file."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    target = urlsplit(redis_url)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=server_context)
    yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}", ca_file
    server.close()


async def test_a_tls_url_is_served_with_the_certificate_verified(tls_redis):
    address, ca_file = tls_redis
    pipe = RedisPipe(f"rediss://{address}/0?ssl_ca_certs={ca_file}", timeout=5)
    assert await pipe.call(command("PING")) == b"PONG"
    pipe.close()

    unverifiable = RedisPipe(f"rediss://{address}/0", timeout=5)  # the system's CAs only
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        await unverifiable.call(command("PING"))
    assert isinstance(refused.value, REDIS_DOWN)

    unverified = RedisPipe(f"rediss://{address}/0?ssl_cert_reqs=none", timeout=5)
    assert await unverified.call(command("PING")) == b"PONG"
    unverified.close()


@pytest.fixture
async def fake_redis() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """A TCP server behaving as each test scripts it: a Redis that hangs or hangs up."""
    servers: list[asyncio.Server] = []

    async def serve(handler: Handler) -> str:
        async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await handler(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(closing, "127.0.0.1", 0)
        servers.append(server)
        return f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"

    yield serve
    for server in servers:
        server.close()


async def test_no_reply_within_the_timeout_fails_the_calls_under_way(fake_redis):
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads everything, answers nothing

    pipe = RedisPipe(await fake_redis(silent), timeout=0.2)
    calls = [pipe.call(command("PING")) for _ in range(3)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, RedisTimeoutError) for r in results)
    assert all(isinstance(r, REDIS_DOWN) for r in results)
    pipe.close()


async def test_a_dropped_connection_fails_its_calls_and_the_next_call_reconnects(fake_redis):
    connections = 0

    async def hangs_up_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readline()
        if connections == 1:
            writer.close()
            return
        await reader.readline()  # "$4", then "PING"
        await reader.readline()
        writer.write(b"+PONG\r\n")
        await writer.drain()

    pipe = RedisPipe(await fake_redis(hangs_up_once), timeout=5)
    with pytest.raises(RedisConnectionError):
        await pipe.call(command("PING"))
    assert await pipe.call(command("PING")) == b"PONG"
    assert connections == 2
    pipe.close()


async def test_nothing_listening_is_an_outage(tmp_path: Path):
    server = EmbeddedRedis(tmp_path / "redis")  # a free port, never started
    pipe = RedisPipe(server.url, timeout=1)
    with pytest.raises(REDIS_DOWN):
        await pipe.call(command("PING"))


async def test_beats_still_land_after_redis_forgets_its_scripts(redis, settings):
    worker = await register(redis, settings)
    async for client in asgi_client(create_app(settings)):

        async def beat(client: httpx.AsyncClient = client) -> httpx.Response:
            return await client.post(
                f"/v1/workers/{worker.id}/activity-heartbeat",
                json={"isActiveRecently": True},
                headers={"Authorization": f"Bearer {worker.token}"},
            )

        assert (await beat()).status_code == 200
        await redis.script_flush()
        r = await beat()
        assert r.status_code == 200, r.text


def _probes_when_idle(sock: socket.socket) -> bool:
    """SO_KEEPALIVE on, first probe after IDLE_SECONDS of silence (where Linux tells)."""
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE):
        return False
    if hasattr(socket, "TCP_KEEPIDLE"):
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == IDLE_SECONDS
    return True


async def test_idle_connections_are_probed_so_a_silently_dropped_one_is_replaced(
    redis_url: str, settings
):
    if redis_url.startswith("unix:"):
        pytest.skip("keepalive is a TCP matter")
    pipe = RedisPipe(redis_url, timeout=5)
    assert await pipe.call(command("PING")) == b"PONG"
    assert pipe._conn is not None and pipe._conn.transport is not None
    assert _probes_when_idle(pipe._conn.transport.get_extra_info("socket"))
    pipe.close()

    pool = connect_redis(settings).connection_pool  # the flusher's, the API's, the cluster's
    connection = pool.connection_class(**pool.connection_kwargs)
    await connection.connect()
    try:
        assert connection._writer is not None
        assert _probes_when_idle(connection._writer.transport.get_extra_info("socket"))
    finally:
        await connection.disconnect()

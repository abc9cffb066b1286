"""One Redis connection for the hot paths: each write goes out the moment it is ready and its
replies are handed to the caller straight from the socket's data callback, in order.

redis-py's asyncio client reads through a StreamReader with a pooled connection and a timeout
scope around every call; for ingest's one script call per batch that cost more CPU than the
batch itself (measured with `python -m bench ingest`: ~15% more beats/s without it). Redis
answers commands of one connection in order, so a queue of futures is all the matching needed.
Ingest's beats and the API's page reads use it on a single Redis; on a cluster ingest keeps one
per primary (`cluster_pipes.py`) and the API keeps redis-py, which routes each command to its
slot's node.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any, cast

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.redis.keepalive import enable_keepalive
from shared.redis.resp import command


class _Call:
    """A write waiting for its reply, or (`expected` > 0) for the list of its commands' replies."""

    __slots__ = ("expected", "future", "replies", "timer")

    def __init__(self, future: asyncio.Future[Any], timer: asyncio.TimerHandle, expected: int):
        self.future, self.timer, self.expected = future, timer, expected
        self.replies: list[Any] = []


class _Replies(asyncio.Protocol):
    """Feeds the socket's bytes to hiredis and resolves the oldest waiting call per reply."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[_Call] = deque()
        self.closed: Exception | None = None
        # Error replies become exception objects (NoScriptError, OutOfMemoryError, ...) that are
        # returned in the reply's place, nested ones included, as redis-py's parser does.
        self._reader = hiredis.Reader(protocolError=InvalidResponse, replyError=_parse_error)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not registered as such

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                call = self.waiting[0]
                if call.expected:
                    call.replies.append(reply)
                    if len(call.replies) < call.expected:
                        continue
                    reply = call.replies
                self.waiting.popleft()
                call.timer.cancel()
                if not call.future.done():
                    call.future.set_result(reply)
        except (InvalidResponse, IndexError) as exc:  # garbage, or a reply nobody asked for
            self.fail(RedisConnectionError(f"Redis protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError("Connection to Redis lost."), close=False)

    def fail(self, error: Exception, close: bool = True) -> None:
        """Every call under way fails with `error`; the connection is not used again."""
        if self.closed is None:
            self.closed = error
        while self.waiting:
            call = self.waiting.popleft()
            call.timer.cancel()
            if not call.future.done():
                call.future.set_exception(error)
        if close and self.transport is not None:
            self.transport.close()


def _parse_error(message: str) -> Exception:
    return BaseParser.parse_error(message)


class RedisPipe:
    """Calls on one connection, (re)opened on demand; a reply that takes longer than `timeout`
    fails every call under way and drops the connection (its later replies would be out of step).
    """

    def __init__(self, url: str, timeout: float, address: tuple[str, int] | None = None) -> None:
        """`address`: another node than the URL's (a cluster node), with the URL's credentials
        and TLS settings."""
        self._options: dict[str, Any] = dict(parse_url(url))
        if address is not None:
            self._options.pop("path", None)
            self._options["host"], self._options["port"] = address
        self._timeout = timeout
        self._conn: _Replies | None = None
        self._connecting: asyncio.Future[_Replies] | None = None

    async def call(self, packed: bytes) -> Any:
        """The reply to one RESP-packed command; an error reply is returned, not raised."""
        conn = self._conn
        if conn is None or conn.closed is not None:
            conn = await self._connected()
        return await self._send(conn, packed)

    async def call_many(self, packed: bytes, commands: int) -> list[Any]:
        """The replies to `commands` RESP-packed commands written together, in one round trip."""
        conn = self._conn
        if conn is None or conn.closed is not None:
            conn = await self._connected()
        replies: list[Any] = await self._send(conn, packed, commands)
        return replies

    def write_many(self, packed: bytes, commands: int) -> asyncio.Future[list[Any]] | None:
        """As `call_many`, but written before returning when the connection is open: the future
        of the replies (so that writes to several nodes leave in one step of the event loop).
        None when the connection must be opened first: then use `call_many`."""
        conn = self._conn
        if conn is None or conn.closed is not None:
            return None
        return self._send(conn, packed, commands)

    def _send(self, conn: _Replies, packed: bytes, commands: int = 0) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        timer = loop.call_later(self._timeout, self._expire, conn, future)
        conn.waiting.append(_Call(future, timer, commands))
        assert conn.transport is not None
        conn.transport.write(packed)
        return future

    def _expire(self, conn: _Replies, future: asyncio.Future[Any]) -> None:
        if not future.done():
            conn.fail(RedisTimeoutError(f"No reply from Redis within {self._timeout} s."))

    async def _connected(self) -> _Replies:
        if self._connecting is None:  # one attempt at a time; callers meanwhile share it
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None

    async def _connect(self) -> _Replies:
        loop = asyncio.get_running_loop()
        options = self._options
        async with asyncio.timeout(self._timeout):
            if "path" in options:
                _, conn = await loop.create_unix_connection(_Replies, options["path"])
            else:
                transport, conn = await loop.create_connection(
                    _Replies,
                    options.get("host", "localhost"),
                    options.get("port", 6379),
                    ssl=_tls_context(options),
                )
                enable_keepalive(transport.get_extra_info("socket"))
        try:
            await self._handshake(conn)
        except BaseException:
            conn.fail(RedisConnectionError("Redis handshake failed."))
            raise
        self._conn = conn
        return conn

    async def _handshake(self, conn: _Replies) -> None:
        options = self._options
        if options.get("password"):
            auth = [options["username"]] if options.get("username") else []
            await self._check(conn, command("AUTH", *auth, options["password"]))
        if options.get("db"):
            await self._check(conn, command("SELECT", str(options["db"])))

    async def _check(self, conn: _Replies, packed: bytes) -> None:
        reply = await self._send(conn, packed)
        if isinstance(reply, Exception):
            raise reply

    def close(self) -> None:
        if self._conn is not None:
            self._conn.fail(RedisConnectionError("Closed."))
            self._conn = None


def _tls_context(options: dict[str, Any]) -> ssl.SSLContext | None:
    """TLS for `rediss://` URLs: verified by default; `?ssl_cert_reqs=none` turns that off."""
    if options.get("connection_class") is not SSLConnection:
        return None
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context

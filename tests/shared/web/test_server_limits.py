"""Every connection keeps to the server limits: header size, request time, connection count."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.processes import running_ingest

GUARD = 30.0  # seconds a socket waits before the test gives up (a hang is a failure)


@pytest.fixture
def limited_ingest(redis_url: str, settings) -> Iterator[tuple[str, int]]:
    with running_ingest(
        redis_url, settings.shards, HB_MAX_HEADER_BYTES="2048", HB_REQUEST_TIMEOUT="1"
    ) as base:
        parts = urlsplit(base)
        assert parts.hostname is not None and parts.port is not None
        yield parts.hostname, parts.port


def exchange(address: tuple[str, int], data: bytes) -> bytes:
    """Send `data`, then read until the server closes the connection."""
    with socket.create_connection(address, timeout=GUARD) as sock:
        if data:
            sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_headers_beyond_the_limit_get_431_and_the_connection_closes(limited_ingest) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 4096 + b"\r\n\r\n"
    reply = exchange(limited_ingest, request)
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert b"headers_too_large" in reply


def test_headers_within_the_limit_are_served(limited_ingest) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert exchange(limited_ingest, request).startswith(b"HTTP/1.1 200 ")


def test_a_connection_that_sends_nothing_is_closed_with_408(limited_ingest) -> None:
    assert exchange(limited_ingest, b"").startswith(b"HTTP/1.1 408 ")


def test_a_request_that_never_completes_is_closed_with_408(limited_ingest) -> None:
    reply = exchange(limited_ingest, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    assert reply.startswith(b"HTTP/1.1 408 ")


def test_connections_beyond_the_limit_get_503(redis_url, settings) -> None:
    with running_ingest(redis_url, settings.shards, HB_MAX_CONNECTIONS="2") as base:
        parts = urlsplit(base)
        address = (parts.hostname or "", parts.port or 0)
        held = [socket.create_connection(address, timeout=GUARD) for _ in range(2)]
        try:
            for sock in held:  # both connections are open and known to the server
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            request = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            assert exchange(address, request).startswith(b"HTTP/1.1 503 ")
        finally:
            for sock in held:
                sock.close()

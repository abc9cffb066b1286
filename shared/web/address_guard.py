"""Refusing webhook URLs that reach into the deployment's own network.

A webhook URL is chosen by a customer but fetched from inside our network: without this check
it could point at the metadata service, Redis or an internal admin page. The host is resolved
and every address must be public; checked when the webhook is created and again before each
delivery (DNS can change in between). A delivery connects to the address it checked
(`resolve_checked`), so a name that answers differently the next time it is looked up (DNS
rebinding) cannot slip a private address in between the check and the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class RefusedAddress(ValueError):
    pass


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url_shape(url: str) -> str:
    """The URL's host, when the URL is http(s) with a host (raises RefusedAddress)."""
    try:
        parts = urlsplit(url)
        scheme, host, _ = parts.scheme, parts.hostname, parts.port  # .port raises if malformed
    except ValueError:
        scheme, host = "", None
    if scheme not in ("http", "https") or not host:
        raise RefusedAddress("Expected an http or https URL with a host.")
    return host


async def _addresses(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def check_url(url: str, allow_private: bool) -> None:
    """Raise RefusedAddress unless the URL is http(s) and (unless allowed) its host resolves
    only to public addresses."""
    check_url_shape(url)
    if not allow_private:
        await resolve_checked(url, allow_private)


async def resolve_checked(url: str, allow_private: bool) -> tuple[str, str]:
    """The URL's host and the address to connect to, from one lookup: unless allowed, every
    address the host resolves to must be public (else RefusedAddress, as for no address)."""
    host = check_url_shape(url)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await _addresses(host, port)
    except (OSError, UnicodeError, ValueError) as exc:
        raise RefusedAddress(f"The host {host!r} does not resolve.") from exc
    if not addresses:
        raise RefusedAddress(f"The host {host!r} does not resolve.")
    if not allow_private and not all(_public(a) for a in addresses):
        raise RefusedAddress(f"The host {host!r} resolves to a private or loopback address.")
    return host, addresses[0]


def pinned_url(url: str, address: str) -> str:
    """`url` with its host replaced by `address` (what `resolve_checked` chose)."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    host = f"[{address}]" if ":" in address else address
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{userinfo}{at}{host}{port}").geturl()

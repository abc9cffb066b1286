"""Refusing webhook URLs that reach into the deployment's own network.

A webhook URL is chosen by a customer but fetched from inside our network: without this check
it could point at the metadata service, Redis or an internal admin page. The host is resolved
and every address must be public; checked when the webhook is created and again before each
delivery (DNS can change in between).
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


async def check_url(url: str, allow_private: bool) -> None:
    """Raise RefusedAddress unless the URL is http(s) and (unless allowed) its host resolves
    only to public addresses."""
    host = check_url_shape(url)
    if allow_private:
        return
    port = urlsplit(url).port or 443
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        raise RefusedAddress(f"The host {host!r} does not resolve.") from exc
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or not all(_public(a) for a in addresses):
        raise RefusedAddress(f"The host {host!r} resolves to a private or loopback address.")

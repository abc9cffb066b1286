"""TCP keepalive for the Redis connections.

A connection that sits idle (an API pod nobody asks, say) can be dropped without a word by a NAT
gateway or a load balancer in between; the next call would then wait the whole Redis timeout for
a reply that never comes. Probing after a minute of silence keeps such middleboxes' state alive,
and a peer that stopped answering is noticed within about 90 s, so the connection is replaced
before anyone needs it.
"""

from __future__ import annotations

import socket

IDLE_SECONDS = 60
INTERVAL_SECONDS = 10
PROBES = 3


def keepalive_options() -> dict[int, int]:
    """The socket options (TCP level) this platform supports, for redis-py's connections."""
    wanted = {
        # Linux names the idle time TCP_KEEPIDLE, macOS TCP_KEEPALIVE.
        "TCP_KEEPIDLE": IDLE_SECONDS,
        "TCP_KEEPALIVE": IDLE_SECONDS,
        "TCP_KEEPINTVL": INTERVAL_SECONDS,
        "TCP_KEEPCNT": PROBES,
    }
    return {getattr(socket, name): value for name, value in wanted.items() if hasattr(socket, name)}


def enable_keepalive(sock: socket.socket) -> None:
    """Keepalive on a connected TCP socket, with the probing above."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in keepalive_options().items():
        sock.setsockopt(socket.IPPROTO_TCP, option, value)

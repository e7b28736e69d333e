"""How the application is served: uvicorn's HTTP/1.1 protocol with Nagle's algorithm off.

uvicorn started with ``--workers`` (or ``immos serve --workers``) binds the listening socket
itself as ``socket.socket(family)``, whose protocol number is 0, and asyncio sets
``TCP_NODELAY`` only on sockets whose protocol number says TCP. The connections of such a
server keep Nagle's algorithm on: a response goes out as two writes (headers, then body), the
second waits for the client to acknowledge the first, and the client delays that
acknowledgement by up to 40 ms on a kept-alive connection. Every request after a connection's
first then took 40 ms more (measured: 44 ms for ``/api/health`` with curl or httpx on a
reused connection, 1.5 ms on a fresh one). :class:`H11Protocol` turns the delay off on every
connection it is given, whatever made the socket.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import suppress

from uvicorn.protocols.http.h11_impl import H11Protocol as _UvicornH11Protocol

#: The ``--http`` value (uvicorn's command line) or ``http=`` (``uvicorn.run``) selecting it.
HTTP_PROTOCOL = "immigrationos.api.serving:H11Protocol"


def no_delay(transport: asyncio.BaseTransport) -> bool:
    """Turn Nagle's algorithm off on ``transport``'s TCP socket; False if it has none."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    with suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return True
    return False


class H11Protocol(_UvicornH11Protocol):
    """uvicorn's h11 protocol, each connection's socket set to ``TCP_NODELAY`` first."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        no_delay(transport)
        super().connection_made(transport)

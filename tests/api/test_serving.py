"""Serving: every connection gets ``TCP_NODELAY``, also the sockets uvicorn's worker mode binds
itself (protocol number 0, which asyncio leaves alone); ``immos serve --workers`` uses it and
refuses SQLite."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from immigrationos.api import serving
from immigrationos.cli.main import app


class _Transport(asyncio.Transport):
    def __init__(self, sock: socket.socket | None) -> None:
        super().__init__()
        self.sock = sock

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.sock if name == "socket" else default


@pytest.fixture
def accepted() -> Iterator[socket.socket]:
    """A server-side connection accepted on a socket made as uvicorn's workers make theirs."""
    with closing(socket.socket(socket.AF_INET)) as listener:  # protocol number 0
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with closing(socket.create_connection(listener.getsockname())):
            conn, _ = listener.accept()
            with closing(conn):
                yield conn


def _no_delay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_connections_of_a_self_bound_socket_get_no_delay(accepted: socket.socket) -> None:
    assert accepted.proto == 0 and _no_delay(accepted) == 0  # what asyncio would leave
    assert serving.no_delay(_Transport(accepted)) is True
    assert _no_delay(accepted) == 1


def test_a_transport_without_a_tcp_socket_is_left_alone(tmp_path: Path) -> None:
    assert serving.no_delay(_Transport(None)) is False
    with closing(socket.socket(socket.AF_UNIX)) as unix:
        unix.bind(str(tmp_path / "s"))
        assert serving.no_delay(_Transport(unix)) is False


async def _asgi(scope: Any, receive: Any, send: Any) -> None:
    """An application for uvicorn to load (never called)."""


def test_uvicorn_loads_the_protocol_by_its_name() -> None:
    config = uvicorn.Config(_asgi, http=serving.HTTP_PROTOCOL)
    config.load()
    assert config.http_protocol_class is serving.H11Protocol


def test_serving_with_workers_needs_postgresql(env_settings: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--workers", "2"])
    assert result.exit_code != 0 and "need PostgreSQL" in result.output

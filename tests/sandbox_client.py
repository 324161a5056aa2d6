"""An aiohttp client for talking to a sandbox at the HTTP/WebSocket level in tests."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from _waiting import await_until

from podmagic.sandbox import Sandbox


@contextlib.asynccontextmanager
async def api_client(
    sandbox: Sandbox, *, token: str | None = "sandbox"
) -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session trusting the sandbox's CA; ``token="sandbox"`` sends the real token."""
    assert sandbox.ca_pem is not None
    context = ssl.create_default_context(cadata=sandbox.ca_pem.decode())
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {sandbox.token if token == 'sandbox' else token}"
    sockets: list[socket.socket] = []

    def socket_factory(address: Any) -> socket.socket:
        family, kind, proto, _, _ = address
        sockets.append(socket.socket(family, kind, proto))
        return sockets[-1]

    connector = aiohttp.TCPConnector(ssl=context, limit=0, socket_factory=socket_factory)
    async with aiohttp.ClientSession(
        base_url=sandbox.url, headers=headers, connector=connector
    ) as session:
        yield session
    # A connection closed last (an upgraded WebSocket, which the connector no longer tracks)
    # finishes closing in later loop callbacks: wait for them so no socket outlives the loop.
    await await_until(
        lambda: all(sock.fileno() == -1 for sock in sockets),
        what="every socket of the session closed",
        interval=0.005,
    )

"""Exec connections resume a kept TLS session, offered as it is (not copied per connection),
and stay correct when a server gives no tickets or a session has been spent."""

from __future__ import annotations

import asyncio
import gc
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from podmagic import _kubeapi, _tls_resume
from podmagic._kubeapi import _resuming
from podmagic.sandbox._tls import ServingCertificates, generate_certificates

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the resuming context works on asyncio's own TLS


@pytest.fixture(scope="module")
def certificates() -> ServingCertificates:
    return generate_certificates(("127.0.0.1",))


def _client_context(certificates: ServingCertificates) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=certificates.ca_pem.decode())
    return context


async def _serve(
    certificates: ServingCertificates, tickets: int = 2
) -> AsyncIterator[tuple[str, int]]:
    server_context = certificates.server_ssl_context()
    server_context.num_tickets = tickets

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A line in, a line out: by then the client has read the server's tickets too.
        try:
            if await reader.readline():
                writer.write(b"ok\n")
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass  # the client that drops its connection at once
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context)
    async with server:
        yield "127.0.0.1", server.sockets[0].getsockname()[1]


@pytest.fixture
async def server(certificates: ServingCertificates) -> AsyncIterator[tuple[str, int]]:
    async for address in _serve(certificates):
        yield address


@pytest.fixture
async def ticketless_server(certificates: ServingCertificates) -> AsyncIterator[tuple[str, int]]:
    async for address in _serve(certificates, tickets=0):
        yield address


async def _exchange(address: tuple[str, int], context: Any) -> bool:
    """One connection that talks to the end; whether it resumed a session."""
    reader, writer = await asyncio.open_connection(*address, ssl=context)
    writer.write(b"hello\n")
    assert await reader.readline() == b"ok\n"
    reused = bool(writer.get_extra_info("ssl_object").session_reused)
    writer.close()
    await writer.wait_closed()
    return reused


@pytest.fixture
def shares(monkeypatch: pytest.MonkeyPatch) -> list[bool | None]:
    """What every offer of a kept session through :func:`share_session` returned."""
    seen: list[bool | None] = []
    real: Callable[..., bool | None] = _tls_resume.share_session

    def counting(*args: Any) -> bool | None:
        result = real(*args)
        seen.append(result)
        return result

    monkeypatch.setattr(_kubeapi, "share_session", counting)
    return seen


async def test_connections_resume_the_kept_session_offered_without_a_copy(
    server: tuple[str, int], certificates: ServingCertificates, shares: list[bool | None]
) -> None:
    assert _tls_resume.sharing_available()  # CPython with its ssl module linked to libssl
    context = _resuming(_client_context(certificates))
    reused = [await _exchange(server, context) for _ in range(6)]
    assert reused[0] is False  # nothing to resume yet
    assert reused[-3:] == [True, True, True]
    assert shares and all(result is True for result in shares)
    assert reused.count(True) == len(shares)


async def test_a_server_that_gives_no_tickets_gets_full_handshakes_that_work(
    ticketless_server: tuple[str, int], certificates: ServingCertificates, shares: list[bool | None]
) -> None:
    context = _resuming(_client_context(certificates))
    reused = [await _exchange(ticketless_server, context) for _ in range(4)]
    assert reused == [False] * 4
    assert shares == []  # no session was ever there to offer


async def test_a_session_spent_by_an_aborted_connection_is_replaced_not_offered_again(
    server: tuple[str, int], certificates: ServingCertificates, shares: list[bool | None]
) -> None:
    context = _resuming(_client_context(certificates))
    for _ in range(3):
        await _exchange(server, context)
    assert shares[-1] is True
    # A connection that resumed the shared session and is dropped at once — before the
    # server's tickets are read, without a TLS goodbye — makes OpenSSL mark the session it
    # holds, the shared one, as not to be resumed.
    reader, writer = await asyncio.open_connection(*server, ssl=context)
    writer.transport.abort()
    del reader, writer
    for _ in range(3):  # the transport lets go of its SSL object on a later turn
        await asyncio.sleep(0)
    gc.collect()
    reused = [await _exchange(server, context) for _ in range(6)]
    assert None in shares  # the spent session was noticed ...
    assert reused[-3:] == [True, True, True]  # ... and a new one is resumed
    assert shares[-1] is True


def test_sharing_refuses_a_session_of_another_context(certificates: ServingCertificates) -> None:
    one, other = _client_context(certificates), _client_context(certificates)
    sslobj = one.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="127.0.0.1")
    # A session object of `other`: only a handshake makes one, so borrow the layout check
    # itself — `one`'s connection is not `other`'s.
    assert _tls_resume.share_session(sslobj, _any_session(certificates, other), one) is False


def _any_session(certificates: ServingCertificates, context: ssl.SSLContext) -> ssl.SSLSession:
    """A session of ``context``, from a handshake over memory buffers with a local server."""
    server_context = certificates.server_ssl_context()
    client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(client_in, client_out, server_hostname="127.0.0.1")
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
    server.write(b"x")
    client_in.write(server_out.read())
    client.read(1)  # the tickets come before the data
    session = client.session
    assert session is not None and session.has_ticket
    return session

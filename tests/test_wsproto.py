"""podmagic's own WebSocket client (podmagic._wsproto): the handshake, frames, pings, closing.

Most tests drive the protocol object by hand, byte by byte where it matters, with a transport
that records what the client writes; the last ones open real connections to a scripted server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from podmagic._wsproto import (
    BadHandshake,
    ConnectionEnded,
    ExecSocket,
    Refused,
    open_exec_socket,
)

pytestmark = pytest.mark.anyio

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = base64.b64encode(b"0123456789abcdef")
V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"


class RecordingTransport(asyncio.Transport):
    """What the client wrote, and whether it closed or aborted."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def accept_for(key: bytes) -> str:
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()


def upgrade(protocol: str | None = V5, accept: str | None = None, extra: str = "") -> bytes:
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept or accept_for(KEY)}",
    ]
    if protocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def server_frame(opcode: int, payload: bytes, *, final: bool = True, mask: bool = False) -> bytes:
    """A frame as a server sends it (unmasked unless ``mask``)."""
    first = (0x80 if final else 0) | opcode
    size = len(payload)
    mask_bit = 0x80 if mask else 0
    if size < 126:
        head = bytes((first, mask_bit | size))
    elif size < 0x10000:
        head = bytes((first, mask_bit | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, mask_bit | 127)) + size.to_bytes(8, "big")
    if mask:
        key = b"\x01\x02\x03\x04"
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


def client_frames(data: bytes) -> list[tuple[int, bool, bytes]]:
    """``(opcode, masked, payload)`` of every frame the client wrote (unmasked)."""
    frames = []
    position = 0
    while position < len(data):
        first, second = data[position], data[position + 1]
        size, head = second & 0x7F, 2
        if size == 126:
            size, head = int.from_bytes(data[position + 2 : position + 4], "big"), 4
        elif size == 127:
            size, head = int.from_bytes(data[position + 2 : position + 10], "big"), 10
        masked = bool(second & 0x80)
        key = data[position + head : position + head + 4] if masked else b"\0\0\0\0"
        start = position + head + (4 if masked else 0)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(data[start : start + size]))
        frames.append((first & 0x0F, masked, payload))
        position = start + size
    return frames


def connected(
    *, max_size: int | None = None, ping_interval: float | None = None, **options: Any
) -> tuple[ExecSocket, RecordingTransport]:
    """A client whose request is written, before any answer."""
    sock = ExecSocket(
        b"GET / HTTP/1.1\r\n\r\n",
        KEY,
        (V5, V4),
        max_size=max_size,
        ping_interval=ping_interval,
        ping_timeout=options.pop("ping_timeout", None),
        **options,
    )
    transport = RecordingTransport()
    sock.connection_made(transport)
    assert transport.written == b"GET / HTTP/1.1\r\n\r\n"
    transport.written.clear()
    return sock, transport


def opened(**options: Any) -> tuple[ExecSocket, RecordingTransport]:
    sock, transport = connected(**options)
    sock.data_received(upgrade())
    assert sock._opened.done() and sock._opened.exception() is None
    return sock, transport


async def read_all(sock: ExecSocket, until: bytes | None = None) -> tuple[bool, list[bytes]]:
    """Read messages until one equals ``until`` (or the connection ends)."""
    messages: list[bytes] = []

    def consumer(message: bytes) -> bool:
        messages.append(message)
        return message == until

    done = await asyncio.wait_for(sock.read(consumer), 10)
    return done, messages


# -- the opening handshake --------------------------------------------------------------------


async def test_upgrade_answer_split_byte_by_byte_opens_with_the_chosen_subprotocol() -> None:
    sock, _ = connected()
    answer = upgrade(V4) + server_frame(2, b"\x01hello")
    for index in range(len(answer)):
        sock.data_received(answer[index : index + 1])
    assert sock.subprotocol == V4
    done, messages = await read_all(sock, until=b"\x01hello")
    assert done and messages == [b"\x01hello"]


@pytest.mark.parametrize(
    ("pieces", "body_steps"),
    [
        ((upgrade(),), 0),  # whole at once: nothing for a timer to do
        ((upgrade()[:20], upgrade()[20:]), 1),  # the head in two pieces
        ((b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nno", b"pe"), 1),
        ((b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope",), 0),
    ],
)
async def test_the_answer_begun_step_is_reported_once_and_only_for_an_answer_in_pieces(
    pieces: tuple[bytes, ...], body_steps: int
) -> None:
    steps: list[str] = []
    sock, _ = connected(on_first_byte=lambda: steps.append("body"))
    for piece in pieces:
        sock.data_received(piece)
    assert sock._opened.done()
    assert steps == ["body"] * body_steps
    if sock._opened.exception() is not None:
        assert isinstance(sock._opened.exception(), Refused)


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (upgrade(accept="d3Jvbmc="), "Sec-WebSocket-Accept"),
        (upgrade("v9.channel.k8s.io"), "not offered: v9.channel.k8s.io"),
        (upgrade(extra="Sec-WebSocket-Extensions: permessage-deflate\r\n"), "extension"),
        (b"HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n\r\n", "no WebSocket"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "did not receive a valid HTTP response"),
    ],
    ids=["accept", "subprotocol", "extension", "no-upgrade", "not-http"],
)
async def test_an_answer_that_is_no_valid_upgrade_is_refused(answer: bytes, words: str) -> None:
    sock, transport = connected()
    sock.data_received(answer)
    with pytest.raises(BadHandshake, match=words):
        await sock._opened
    assert transport.aborted


async def test_no_subprotocol_chosen_opens_with_none() -> None:
    sock, _ = connected()
    sock.data_received(upgrade(None))
    await sock._opened
    assert sock.subprotocol is None


@pytest.mark.parametrize(
    ("head", "pieces", "body"),
    [
        ("Content-Length: 13\r\n", [b"forbidden: ", b"no"], b"forbidden: no"),
        (
            "Transfer-Encoding: chunked\r\n",
            [b"4\r\nno p", b"\r\n8\r\nods here\r\n0\r\n\r\n"],
            b"no pods here",
        ),
    ],
    ids=["content-length", "chunked"],
)
async def test_a_refused_upgrade_is_read_whole(head: str, pieces: list[bytes], body: bytes) -> None:
    sock, _ = connected()
    sock.data_received(f"HTTP/1.1 403 Forbidden\r\nRetry-After: 3\r\n{head}\r\n".encode())
    for piece in pieces:
        assert not sock._opened.done()
        sock.data_received(piece)
    with pytest.raises(Refused) as refused:
        await sock._opened
    assert refused.value.status == 403
    assert refused.value.body == body
    assert refused.value.headers["retry-after"] == "3"


async def test_a_refused_upgrade_without_a_length_is_read_to_the_end_of_the_connection() -> None:
    sock, _ = connected()
    sock.data_received(b"HTTP/1.1 500 Internal Server Error\r\n\r\nerror dialing")
    sock.data_received(b" backend")
    assert not sock._opened.done()
    sock.eof_received()
    sock.connection_lost(None)
    with pytest.raises(Refused) as refused:
        await sock._opened
    assert refused.value.status == 500 and refused.value.body == b"error dialing backend"


async def test_a_connection_that_ends_before_any_answer_is_no_valid_response() -> None:
    sock, _ = connected()
    sock.connection_lost(None)
    with pytest.raises(BadHandshake, match="did not receive a valid HTTP response"):
        await sock._opened


# -- frames -----------------------------------------------------------------------------------


async def test_messages_before_the_reader_are_kept_and_large_frames_split_anywhere_join() -> None:
    sock, _ = opened()
    big = bytes(range(256)) * 1000  # a 64-bit length
    medium = b"m" * 300  # a 16-bit length
    stream = server_frame(2, b"\x01early") + server_frame(2, medium) + server_frame(2, big)
    stream += server_frame(2, b"\x03{}")
    sock.data_received(stream[:7])  # the first frame, and nothing of the rest
    for start in range(7, len(stream), 997):
        sock.data_received(stream[start : start + 997])
    done, messages = await read_all(sock, until=b"\x03{}")
    assert done and messages == [b"\x01early", medium, big, b"\x03{}"]
    assert all(type(message) is bytes for message in messages)


async def test_fragmented_messages_are_joined_and_pings_answered_between_fragments() -> None:
    sock, transport = opened()
    sock.data_received(
        server_frame(2, b"\x01par", final=False)
        + server_frame(9, b"are you there")
        + server_frame(0, b"tial ", final=False)
        + server_frame(0, b"output", final=True)
    )
    (done, messages), _ = await asyncio.wait_for(
        asyncio.gather(read_all(sock), _close_from_server(sock)), 10
    )
    assert not done and messages == [b"\x01partial output"]
    frames = client_frames(bytes(transport.written))
    assert frames[0] == (0xA, True, b"are you there")  # the pong, masked
    assert frames[1] == (0x8, True, (1000).to_bytes(2, "big"))  # the close, echoed


async def _close_from_server(sock: ExecSocket) -> None:
    await asyncio.sleep(0)
    sock.data_received(server_frame(8, (1000).to_bytes(2, "big")))


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (server_frame(2, b"\x01x", mask=True), 1002),
        (bytes((0xC2, 1)) + b"x", 1002),  # a reserved bit (no extension was agreed)
        (server_frame(0, b"orphan"), 1002),
        (server_frame(9, b"p", final=False), 1002),
        (server_frame(2, b"x" * 101), 1009),
    ],
    ids=["masked", "reserved-bit", "orphan-continuation", "fragmented-ping", "too-large"],
)
async def test_a_frame_the_protocol_forbids_closes_with_its_code(frame: bytes, code: int) -> None:
    sock, transport = opened(max_size=100)
    sock.data_received(frame)
    done, messages = await read_all(sock)
    assert not done and messages == []
    assert sock.close_code == code
    assert client_frames(bytes(transport.written))[0][:2] == (0x8, True)
    assert transport.closing


@pytest.mark.parametrize(
    ("payload", "code", "reason"),
    [
        ((1011).to_bytes(2, "big") + b"backend went away", 1011, "backend went away"),
        (b"", 1005, ""),
    ],
)
async def test_the_servers_close_is_answered_with_its_code(
    payload: bytes, code: int, reason: str
) -> None:
    sock, transport = opened()
    sock.data_received(server_frame(2, b"\x01partial") + server_frame(8, payload))
    done, messages = await read_all(sock)
    assert not done and messages == [b"\x01partial"]
    assert (sock.close_code, sock.close_reason) == (code, reason)
    [(opcode, masked, echoed)] = client_frames(bytes(transport.written))
    assert (opcode, masked, echoed) == (0x8, True, payload)
    with pytest.raises(ConnectionEnded):
        await sock.send(b"\x00late stdin")


async def test_a_connection_dropped_without_a_close_frame_has_no_close_code() -> None:
    sock, _ = opened()
    sock.data_received(server_frame(2, b"\x01partial"))
    reading = asyncio.ensure_future(read_all(sock))
    await asyncio.sleep(0)
    sock.connection_lost(ConnectionResetError())
    done, messages = await reading
    assert not done and messages == [b"\x01partial"] and sock.close_code is None


async def test_a_consumer_that_raises_gets_nothing_more_and_the_reader_raises() -> None:
    sock, _ = opened()
    seen: list[bytes] = []

    def consumer(message: bytes) -> bool:
        seen.append(message)
        raise KeyError("from the callback")

    sock.data_received(server_frame(2, b"\x01one") + server_frame(2, b"\x01two"))
    with pytest.raises(KeyError, match="from the callback"):
        await sock.read(consumer)
    sock.data_received(server_frame(2, b"\x01three"))
    assert seen == [b"\x01one"]


async def test_sent_messages_are_masked_binary_frames_of_any_size() -> None:
    sock, transport = opened()
    payloads = [b"", b"\x04" + b"{}" * 10, b"\x00" + b"s" * 70_000]
    for payload in payloads:
        await sock.send(payload)
    frames = client_frames(bytes(transport.written))
    assert frames == [(0x2, True, payload) for payload in payloads]


# -- keepalive --------------------------------------------------------------------------------


async def test_keepalive_pings_are_sent_and_an_unanswered_one_closes_with_1011() -> None:
    sock, transport = opened(ping_interval=0.05, ping_timeout=0.1)
    reading = asyncio.ensure_future(read_all(sock))
    # The first ping is answered: the next one follows.
    for _ in range(200):
        await asyncio.sleep(0.01)
        if transport.written:
            break
    [(opcode, masked, payload)] = client_frames(bytes(transport.written))
    assert opcode == 0x9 and masked
    transport.written.clear()
    sock.data_received(server_frame(0xA, payload))
    done, _ = await reading  # the second ping goes unanswered
    assert not done
    assert (sock.close_code, sock.close_reason) == (1011, "keepalive ping timeout")
    assert [frame[0] for frame in client_frames(bytes(transport.written))] == [0x9, 0x8]
    assert transport.aborted


# -- over real connections --------------------------------------------------------------------


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def read_request(reader: asyncio.StreamReader) -> dict[str, str]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {"": lines[0]}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return headers


async def test_open_sends_the_handshake_and_the_callers_headers_and_reads_over_tcp() -> None:
    seen: dict[str, str] = {}
    steps: list[str] = []
    echoed = bytearray()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.update(await read_request(reader))
        key = seen["sec-websocket-key"].encode()
        writer.write(upgrade(V5, accept=accept_for(key)) + server_frame(2, b"\x01hi\n"))
        writer.write(server_frame(2, b'\x03{"status":"Success"}'))
        writer.write(server_frame(8, (1000).to_bytes(2, "big")))
        await writer.drain()
        echoed.extend(await reader.readexactly(8))  # the client's close: 2 + 4 (mask) + 2
        writer.close()

    server, port = await serve(handler)
    async with server:
        sock = await open_exec_socket(
            "127.0.0.1",
            port,
            "/api/v1/namespaces/ns/pods/p/exec?command=hostname&container=c&stdout=true",
            [("Host", f"127.0.0.1:{port}"), ("Authorization", "Bearer t0ken")],
            (V5, V4),
            on_tcp=lambda: steps.append("tcp"),
            on_answer=lambda: steps.append("answer"),
            on_first_byte=lambda: steps.append("body"),
        )
        done, messages = await read_all(sock, until=b'\x03{"status":"Success"}')
        await asyncio.wait_for(sock.wait_closed(), 10)
    assert done and messages == [b"\x01hi\n", b'\x03{"status":"Success"}']
    # The 101 came whole in one piece: no "answer begun" step of its own (see below).
    assert steps == ["tcp", "answer"]
    assert client_frames(bytes(echoed)) == [(0x8, True, (1000).to_bytes(2, "big"))]
    assert seen[""] == (
        "GET /api/v1/namespaces/ns/pods/p/exec?command=hostname&container=c&stdout=true HTTP/1.1"
    )
    assert seen["host"] == f"127.0.0.1:{port}" and seen["authorization"] == "Bearer t0ken"
    assert seen["upgrade"] == "websocket" and seen["connection"] == "Upgrade"
    assert seen["sec-websocket-version"] == "13"
    assert seen["sec-websocket-protocol"] == f"{V5}, {V4}"
    assert len(base64.b64decode(seen["sec-websocket-key"])) == 16


async def test_open_raises_refused_with_the_body_and_connection_errors_as_they_are() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        body = b'{"kind":"Status","message":"pods \\"x\\" not found","code":404}'
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    server, port = await serve(handler)
    async with server:
        with pytest.raises(Refused) as refused:
            await open_exec_socket("127.0.0.1", port, "/", [("Host", "h")], (V5,))
    assert refused.value.status == 404 and b'pods \\"x\\" not found' in refused.value.body
    with pytest.raises(ConnectionRefusedError):
        await open_exec_socket("127.0.0.1", port, "/", [("Host", "h")], (V5,))


# -- where the exec transport points it -------------------------------------------------------


def test_direct_target_keeps_a_path_prefix_and_leaves_credentials_in_the_url_to_websockets() -> (
    None
):
    from podmagic._transport import _direct_target

    target = _direct_target("https://api.example:6443/k8s/clusters/c-1")
    assert target is not None
    host, port, host_header, path_at = target
    url = "wss://api.example:6443/k8s/clusters/c-1/api/v1/namespaces/ns/pods/p/exec?command=x"
    assert (host, port, host_header) == ("api.example", 6443, "api.example:6443")
    assert url[path_at:] == "/k8s/clusters/c-1/api/v1/namespaces/ns/pods/p/exec?command=x"
    assert _direct_target("https://[::1]:8443")[:3] == ("::1", 8443, "[::1]:8443")  # type: ignore[index]
    assert _direct_target("http://api.example")[:3] == ("api.example", 80, "api.example")  # type: ignore[index]
    assert _direct_target("https://user:secret@api.example") is None


async def test_wait_closed_with_a_timeout_says_whether_the_connection_ended() -> None:
    sock, _ = opened()
    assert await sock.wait_closed(0.01) is False  # the server keeps it open
    waiting = asyncio.ensure_future(sock.wait_closed(30))
    await asyncio.sleep(0)
    sock.connection_lost(None)
    assert await asyncio.wait_for(waiting, 10) is True
    assert await sock.wait_closed(0) is True and sock.closed

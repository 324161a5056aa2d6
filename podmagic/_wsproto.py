"""A minimal WebSocket client (RFC 6455) for exec connections, on :class:`asyncio.Protocol`.

An exec is one short connection: an HTTP upgrade, a few binary frames in, a close. A general
WebSocket library pays for what an exec never uses (a queue of received messages and a task
waking the reader for each, a generator-based protocol parser, a keepalive task per
connection); this client hands every message straight to a callback from ``data_received``
and keeps one timer per connection for its keepalive pings. With the TLS handshake, that is
what the fan-out costs per exec on the client.

What it does, and all it does:

* the opening handshake: ``GET`` with ``Upgrade: websocket``, a fresh ``Sec-WebSocket-Key``
  whose ``Sec-WebSocket-Accept`` is checked, the offered subprotocols (the server's choice
  must be one of them); an answer other than 101 is read whole — its body by
  ``Content-Length``, chunked, or to the end of the connection, at most
  :data:`MAX_BODY_SIZE` — and raised as :class:`Refused` with its status, headers and body;
* frames: client frames masked, server frames unmasked (a masked one is a protocol error),
  fragmented messages joined, at most ``max_size`` bytes per message (``None``: no limit),
  reserved bits refused (no extension is negotiated);
* pings from the server answered with a pong carrying the same payload; a ping of its own
  every ``ping_interval`` seconds, and a connection whose pong does not come within
  ``ping_timeout`` closed with 1011 "keepalive ping timeout";
* the closing handshake: a server's close frame answered with the same code, then the
  server's end of the TCP connection awaited (:meth:`ExecSocket.close`); a close of our own
  sends 1000 and gives the server a bounded time to answer before the socket is dropped.

How a connection ended is :attr:`ExecSocket.close_code` / :attr:`close_reason`: the code
received (or, when none was, the one sent), 1005 for a close frame without a code, and
``None`` for a connection that ended without any close frame (1006).

It does not do compression, proxies, text decoding or redirects: the exec transport uses it
for direct connections and keeps the ``websockets`` library for connections through a proxy
(see :mod:`podmagic._transport`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "MAX_BODY_SIZE",
    "BadHandshake",
    "ConnectionEnded",
    "ExecSocket",
    "Refused",
    "open_exec_socket",
]

_apply_mask_c: Callable[[bytes, bytes], bytes] | None
try:  # websockets' C helper, present wherever websockets was built with it
    from websockets.speedups import apply_mask as _apply_mask_c
except ImportError:  # pragma: no cover - depends on the wheel
    _apply_mask_c = None

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Largest body read from a refused upgrade (what websockets reads, too).
MAX_BODY_SIZE = 1024 * 1024
#: Largest status line and headers of the upgrade's answer.
MAX_HEAD_SIZE = 64 * 1024

_OP_CONTINUATION, _OP_TEXT, _OP_BINARY = 0x0, 0x1, 0x2
_OP_CLOSE, _OP_PING, _OP_PONG = 0x8, 0x9, 0xA

_CONNECTING, _OPEN, _CLOSING, _CLOSED = range(4)

_DIGITS = re.compile(rb"[0-9]+")
_HEX = re.compile(rb"[0-9a-fA-F]+")


class Refused(Exception):
    """The server answered the upgrade with another status than 101 (its whole answer)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__(f"the server answered the upgrade with HTTP {status}")
        self.status = status
        self.headers = headers
        self.body = body


class BadHandshake(Exception):
    """The answer to the upgrade was no valid WebSocket handshake (or no HTTP at all)."""


class ConnectionEnded(Exception):
    """Raised by :meth:`ExecSocket.send` once the connection is closing or closed."""


def _mask(payload: bytes, mask: bytes) -> bytes:
    if _apply_mask_c is not None:
        return _apply_mask_c(payload, mask)
    size = len(payload)  # pragma: no cover - without the C helper
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")  # pragma: no cover
    return (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big")  # pragma: no cover


def _frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame: masked, as every frame a client sends must be."""
    size = len(payload)
    first = 0x80 | opcode
    if size < 126:
        head = bytes((first, 0x80 | size))
    elif size < 0x10000:
        head = bytes((first, 0xFE)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, 0xFF)) + size.to_bytes(8, "big")
    mask = os.urandom(4)
    return head + mask + _mask(payload, mask) if size else head + mask


def _close_payload(code: int, reason: str) -> bytes:
    return b"" if code == 1005 else code.to_bytes(2, "big") + reason.encode()


def _accept(key: bytes) -> str:
    return base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()


def _body(status: int, headers: dict[str, str], data: bytes, eof: bool) -> bytes | None:
    """The body of a refused upgrade once ``data`` (what followed the headers) holds all of
    it, else None; raises :class:`BadHandshake` for a body that cannot be read."""
    if 100 <= status < 200 or status in (204, 304):
        return b""
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if coding.strip().lower() != "chunked":
            raise BadHandshake(f"transfer coding {coding} isn't supported")
        body: list[bytes] = []
        position = 0
        while True:
            line_end = data.find(b"\r\n", position)
            if line_end < 0:
                break
            size_text = data[position:line_end].split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                raise BadHandshake("invalid chunk size in the answer's body")
            size = int(size_text, 16)
            if size == 0:
                return b"".join(body)  # the trailer, if any, is not needed
            if sum(len(piece) for piece in body) + size > MAX_BODY_SIZE:
                raise BadHandshake(f"the answer's body exceeds {MAX_BODY_SIZE} bytes")
            start = line_end + 2
            if len(data) < start + size + 2:
                break
            body.append(data[start : start + size])
            position = start + size + 2
        if eof:
            raise BadHandshake("the connection closed in the middle of the answer's body")
        return None
    length_text = headers.get("content-length")
    if length_text is not None:
        if not _DIGITS.fullmatch(length_text.strip().encode("latin-1")):
            raise BadHandshake(f"invalid content length: {length_text}")
        length = int(length_text)
        if length > MAX_BODY_SIZE:
            raise BadHandshake(f"the answer's body exceeds {MAX_BODY_SIZE} bytes")
        if len(data) >= length:
            return data[:length]
        if eof:
            raise BadHandshake("the connection closed in the middle of the answer's body")
        return None
    if len(data) > MAX_BODY_SIZE:
        raise BadHandshake(f"the answer's body exceeds {MAX_BODY_SIZE} bytes")
    return data if eof else None


class ExecSocket(asyncio.Protocol):
    """One client WebSocket connection; made by :func:`open_exec_socket`.

    Messages go to the consumer given to :meth:`read` as they arrive, in order (those that
    came before it was given are kept until then). :meth:`send` sends one binary message.
    """

    def __init__(
        self,
        request: bytes,
        key: bytes,
        subprotocols: Sequence[str],
        *,
        max_size: int | None,
        ping_interval: float | None,
        ping_timeout: float | None,
        on_tcp: Callable[[], None] | None = None,
        on_answer: Callable[[], None] | None = None,
        on_first_byte: Callable[[], None] | None = None,
        write_limit: int = 64 * 1024,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._request = request
        self._key = key
        self._offered = subprotocols
        self._max_size = max_size
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._on_answer = on_answer
        self._on_first_byte = on_first_byte
        self._write_limit = write_limit
        if on_tcp is not None:
            on_tcp()  # made by the event loop once the TCP connection stands, before TLS
        self.transport: asyncio.Transport | None = None
        #: The subprotocol the server chose (``None``: it named none).
        self.subprotocol: str | None = None
        self._state = _CONNECTING
        self._buffer = b""  # the handshake's answer so far
        #: Received bytes of a frame not complete yet, and how many the frame needs.
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._need = 0
        self._head: tuple[int, dict[str, str]] | None = None
        self._opened: asyncio.Future[None] = self._loop.create_future()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._consumer: Callable[[bytes], bool] | None = None
        self._early: list[bytes] = []
        self._reading: asyncio.Future[bool] | None = None
        self._done = False  # the consumer has what it waited for
        self._failure: BaseException | None = None
        self._fragments: list[bytes] | None = None
        self._fragments_size = 0
        self._received_close: tuple[int, str] | None = None
        self._sent_close: tuple[int, str] | None = None
        self._paused = False
        self._drain: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=self._write_limit)
        if self._on_answer is not None:
            self._on_answer()
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._state == _CONNECTING:
            self._handshake_data(data)
        elif self._state != _CLOSED:
            self._frames(data)

    def eof_received(self) -> bool | None:
        if self._state == _CONNECTING and self._head is not None:
            self._answer(eof=True)  # a refused upgrade's body may run to the end
        return None  # close the transport: the server has nothing more to say

    def connection_lost(self, exc: Exception | None) -> None:
        if self._state == _CONNECTING and not self._opened.done():
            if self._head is not None:
                self._answer(eof=True)
            if not self._opened.done():
                self._opened.set_exception(
                    BadHandshake("did not receive a valid HTTP response") if exc is None else exc
                )
        self._state = _CLOSED
        self._cancel_timer()
        self._finish(False)
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionEnded())
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- the opening handshake -----------------------------------------------------------------

    def _handshake_data(self, data: bytes) -> None:
        self._buffer += data
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_SIZE:
                    self._fail_handshake(BadHandshake("the answer's headers are too long"))
                else:
                    self._answer_begun()
                return
            head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
            try:
                self._head = _parse_head(head)
            except BadHandshake as exc:
                self._fail_handshake(exc)
                return
        self._answer(eof=False)
        if self._state == _CONNECTING:
            self._answer_begun()

    def _answer_begun(self) -> None:
        """The answer has begun and is not complete: tell ``on_first_byte`` (once). An
        answer complete in its first piece — an exec's 101, as a rule — needs no step of its
        own, and the caller is spared moving its timers twice."""
        if self._on_first_byte is not None:
            self._on_first_byte()
            self._on_first_byte = None

    def _answer(self, eof: bool) -> None:
        assert self._head is not None
        status, headers = self._head
        if status != 101:
            try:
                body = _body(status, headers, self._buffer, eof)
            except BadHandshake as exc:
                self._fail_handshake(exc)
                return
            if body is not None:
                self._fail_handshake(Refused(status, headers, body))
            return
        try:
            self.subprotocol = self._check_upgrade(headers)
        except BadHandshake as exc:
            self._fail_handshake(exc)
            return
        self._state = _OPEN
        self._opened.set_result(None)
        self._schedule_ping()
        rest, self._buffer = self._buffer, b""
        if rest:
            self._frames(rest)

    @property
    def close_code(self) -> int | None:
        """How the connection ended: the close code received, else the one sent (1005: a
        close frame without a code); ``None`` without any close frame (1006)."""
        ending = self._received_close or self._sent_close
        return ending[0] if ending is not None else None

    @property
    def close_reason(self) -> str:
        """The reason that came with :attr:`close_code`."""
        ending = self._received_close or self._sent_close
        return ending[1] if ending is not None else ""

    def _check_upgrade(self, headers: dict[str, str]) -> str | None:
        if headers.get("upgrade", "").strip().lower() != "websocket":
            raise BadHandshake("the answer upgrades to no WebSocket")
        if "upgrade" not in [
            token.strip() for token in headers.get("connection", "").lower().split(",")
        ]:
            raise BadHandshake("the answer's Connection header does not say Upgrade")
        if headers.get("sec-websocket-accept", "").strip() != _accept(self._key):
            raise BadHandshake("the answer's Sec-WebSocket-Accept does not match the key")
        if headers.get("sec-websocket-extensions"):
            raise BadHandshake("the server chose an extension that was not offered")
        chosen = headers.get("sec-websocket-protocol")
        if chosen is None:
            return None
        chosen = chosen.strip()
        if chosen not in self._offered:
            raise BadHandshake(f"the server chose a subprotocol that was not offered: {chosen}")
        return chosen

    def _fail_handshake(self, exc: Exception) -> None:
        if not self._opened.done():
            self._opened.set_exception(exc)
        self._state = _CLOSED
        if self.transport is not None:
            self.transport.abort()

    # -- frames --------------------------------------------------------------------------------

    def _frames(self, data: bytes) -> None:
        if self._pending:
            # Pieces of one frame are joined once it is complete, not once per piece.
            self._pending.append(data)
            self._pending_size += len(data)
            if self._pending_size < self._need:
                return
            data = b"".join(self._pending)
            self._pending = []
        size = len(data)
        position = 0
        need = 0  # bytes the incomplete frame at ``position`` needs, when its header says
        while size - position >= 2:
            first, second = data[position], data[position + 1]
            length = second & 0x7F
            head = 2
            if length == 126:
                head = 4
                if size - position < head:
                    break
                length = int.from_bytes(data[position + 2 : position + 4], "big")
            elif length == 127:
                head = 10
                if size - position < head:
                    break
                length = int.from_bytes(data[position + 2 : position + 10], "big")
            end = position + head + length
            if second & 0x80 or first & 0x70:
                self._protocol_error(1002, "masked or reserved-bit frame from the server")
                return
            if self._max_size is not None and length > self._max_size:
                self._protocol_error(1009, f"frame exceeds limit of {self._max_size} bytes")
                return
            if end > size:
                need = end - position
                break
            payload = data[position + head : end]
            position = end
            if not self._frame_received(first, payload) or self._state == _CLOSED:
                return
        if position < size:
            rest = data[position:] if position else data
            self._pending = [rest]
            self._pending_size = len(rest)
            # Without a complete header, any further byte may complete it.
            self._need = need or self._pending_size + 1

    def _frame_received(self, first: int, payload: bytes) -> bool:
        """Handle one frame; False once nothing more is to be read."""
        opcode = first & 0x0F
        final = first & 0x80
        if opcode == _OP_BINARY or opcode == _OP_TEXT:
            if self._fragments is not None:
                self._protocol_error(1002, "a new message began inside a fragmented one")
                return False
            if final:
                return self._message(payload)
            self._fragments, self._fragments_size = [payload], len(payload)
            return True
        if opcode == _OP_CONTINUATION:
            if self._fragments is None:
                self._protocol_error(1002, "a continuation frame without a message")
                return False
            self._fragments.append(payload)
            self._fragments_size += len(payload)
            if self._max_size is not None and self._fragments_size > self._max_size:
                self._protocol_error(1009, f"message exceeds limit of {self._max_size} bytes")
                return False
            if final:
                pieces, self._fragments = self._fragments, None
                return self._message(b"".join(pieces))
            return True
        if not final or len(payload) > 125:
            self._protocol_error(1002, "a fragmented or oversized control frame")
            return False
        if opcode == _OP_PING:
            if self._state == _OPEN:
                self._write(_frame(_OP_PONG, payload))
            return True
        if opcode == _OP_PONG:
            if self._ping_payload is not None and payload == self._ping_payload:
                self._ping_payload = None
                self._schedule_ping()
            return True
        if opcode == _OP_CLOSE:
            self._close_received(payload)
            return False
        self._protocol_error(1002, f"unknown opcode {opcode}")
        return False

    def _message(self, payload: bytes) -> bool:
        consumer = self._consumer
        if consumer is None:
            self._early.append(payload)
            return True
        if self._done:
            return True  # nothing more is wanted: read on only to see the close frame
        try:
            if consumer(payload):
                self._finish(True)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which re-raises it
            # Nothing more goes to a consumer that failed.
            self._failure = exc
            self._finish(True)
            return False
        return True

    def _close_received(self, payload: bytes) -> None:
        if len(payload) >= 2:
            code = int.from_bytes(payload[:2], "big")
            reason = payload[2:].decode("utf-8", "replace")
        elif payload:
            self._protocol_error(1002, "a close frame of one byte")
            return
        else:
            code, reason = 1005, ""
        self._received_close = (code, reason)
        if self._state == _OPEN:
            # Answered with the same code; the server then ends the TCP connection.
            self._sent_close = (code, reason)
            self._write(_frame(_OP_CLOSE, _close_payload(code, reason)))
        self._state = _CLOSING
        self._cancel_timer()
        self._finish(False)

    def _protocol_error(self, code: int, reason: str) -> None:
        """A frame the protocol forbids: close with ``code`` and drop the connection."""
        if self._state == _OPEN:
            self._sent_close = (code, reason)
            self._write(_frame(_OP_CLOSE, _close_payload(code, reason)))
        self._state = _CLOSING
        self._finish(False)
        if self.transport is not None:
            self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _finish(self, done: bool) -> None:
        """The reader's wait ends: ``done`` (the consumer has what it wanted), or not."""
        if done:
            self._done = True
        reading = self._reading
        if reading is not None and not reading.done():
            reading.set_result(done)

    # -- keepalive -----------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        self._cancel_timer()
        if self._ping_interval is not None and self._state == _OPEN:
            self._timer = self._loop.call_later(self._ping_interval, self._ping)

    def _ping(self) -> None:
        self._timer = None
        if self._state != _OPEN:
            return
        self._ping_payload = os.urandom(4)
        self._write(_frame(_OP_PING, self._ping_payload))
        if self._ping_timeout is not None:
            self._timer = self._loop.call_later(self._ping_timeout, self._ping_lost)

    def _ping_lost(self) -> None:
        self._timer = None
        if self._state == _OPEN:
            self._sent_close = (1011, "keepalive ping timeout")
            self._write(_frame(_OP_CLOSE, _close_payload(1011, "keepalive ping timeout")))
            self._state = _CLOSING
        self._finish(False)
        if self.transport is not None:
            self.transport.abort()  # the link is dead: no answer to wait for

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the caller's side ---------------------------------------------------------------------

    async def read(self, consumer: Callable[[bytes], bool]) -> bool:
        """Hand every message to ``consumer`` until it returns True (then True is returned)
        or the connection ends first (False: :attr:`close_code` says how). An exception
        the consumer raised is raised here."""
        self._consumer = consumer
        early, self._early = self._early, []
        for payload in early:
            if not self._message(payload):
                break
        if not self._done and self._failure is None and self._state == _OPEN:
            self._reading = self._loop.create_future()
            try:
                await self._reading
            finally:
                self._reading = None
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        return self._done

    async def send(self, data: bytes) -> None:
        """Send ``data`` as one binary message, waiting while the write buffer is full."""
        if self._state != _OPEN or self.transport is None:
            raise ConnectionEnded()
        self.transport.write(_frame(_OP_BINARY, data))
        if self._paused:
            self._drain = self._loop.create_future()
            await self._drain

    @property
    def closed(self) -> bool:
        return self._state == _CLOSED

    async def wait_closed(self, timeout: float | None = None) -> bool:
        """Until the TCP connection has ended, or ``timeout`` seconds have passed; whether
        it ended. One timer of the loop's own bounds the wait (no cancel scope per close)."""
        closed = self._closed
        if closed.done():
            return True
        waiter = self._loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        closed.add_done_callback(wake)
        timer = self._loop.call_later(timeout, wake) if timeout is not None else None
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            closed.remove_done_callback(wake)
        return closed.done()

    def start_closing(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (if none was sent or received yet); the server answers it and
        ends the connection."""
        if self._state == _OPEN:
            self._sent_close = (code, reason)
            self._write(_frame(_OP_CLOSE, _close_payload(code, reason)))
            self._state = _CLOSING
            self._cancel_timer()

    def abort(self) -> None:
        """Drop the connection now."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """``(status, headers)`` of an HTTP/1.1 answer's head (header names lowercased)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or parts[0] != b"HTTP/1.1" or not _DIGITS.fullmatch(parts[1]):
        raise BadHandshake("did not receive a valid HTTP response")
    status = int(parts[1])
    if not 100 <= status < 600:
        raise BadHandshake("did not receive a valid HTTP response")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise BadHandshake("did not receive a valid HTTP response")
        key = name.decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return status, headers


async def open_exec_socket(
    host: str,
    port: int,
    target: str,
    headers: Sequence[tuple[str, str]],
    subprotocols: Sequence[str],
    *,
    ssl: Any = None,
    server_hostname: str | None = None,
    max_size: int | None = None,
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
    write_limit: int = 64 * 1024,
    on_tcp: Callable[[], None] | None = None,
    on_answer: Callable[[], None] | None = None,
    on_first_byte: Callable[[], None] | None = None,
) -> ExecSocket:
    """Connect to ``host:port`` (TLS with ``ssl``) and upgrade ``GET target`` to a WebSocket.

    ``headers`` are sent as given after the handshake's own (``Host`` included: the caller
    knows how the server is named). ``on_tcp`` is called once the TCP connection stands,
    ``on_answer`` once TLS is done and the request is sent, ``on_first_byte`` when the
    answer has begun but not yet ended (not for an answer that arrives whole at once). Raises :class:`Refused` for an answer other than 101,
    :class:`BadHandshake` for one that is no valid upgrade, and ``OSError`` when the server
    cannot be reached (or its certificate is not trusted).
    """
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {target} HTTP/1.1",
        *(f"{name}: {value}" for name, value in headers),
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}",
    ]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    loop = asyncio.get_running_loop()

    def protocol() -> ExecSocket:
        return ExecSocket(
            request,
            key,
            subprotocols,
            max_size=max_size,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            on_tcp=on_tcp,
            on_answer=on_answer,
            on_first_byte=on_first_byte,
            write_limit=write_limit,
        )

    extra: dict[str, Any] = {}
    if ssl is not None:
        extra["ssl"] = ssl
        extra["server_hostname"] = server_hostname or host
    _, sock = await loop.create_connection(protocol, host, port, **extra)
    try:
        await sock._opened
    except BaseException:
        sock.abort()
        raise
    return sock

"""The port-forward endpoint (``pods/NAME/portforward``): a pod's TCP ports, as the kubelet
forwards them, over the three framings clients use.

- WebSocket channels (``v4.channel.k8s.io``, ``v4.base64.channel.k8s.io``,
  ``portforward.k8s.io`` or none), what the official Python client, kubernetes_asyncio and
  kr8s speak: ``?ports=80,81`` names the ports, port *i* gets data channel ``2i`` and error
  channel ``2i+1``, and the server's first frame on each is the port as 2 little-endian
  bytes. Every port is dialled at once; when all are done the WebSocket closes.
- SPDY/3.1 over an HTTP Upgrade (``Upgrade: SPDY/3.1``, ``X-Stream-Protocol-Version:
  portforward.k8s.io``): kubectl 1.30. Each local connection opens an error stream then a
  data stream (headers ``streamType``, ``port``, ``requestID``); the server replies to each,
  copies bytes between the data stream and the pod's port, writes a failure to the error
  stream, and ends both.
- The same SPDY frames inside WebSocket binary messages (subprotocol
  ``SPDY/3.1+portforward.k8s.io``): kubectl 1.31 and later.

The connection goes to the port on the pod's loopback: ``127.0.0.1`` (then ``::1``) of this
host for plain-process pods; with isolation, the socket is made in the pod's network
namespace (a socket keeps the namespace it was made in), so it reaches the pod's own
loopback. A refused connection is reported in the containerd CRI's words.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import WSMsgType, web

from . import _status as status
from ._api import cluster_of
from ._containers import stand_ins_listening
from ._isolation import container_isolation, isolation_problem
from ._runner import entered_namespaces
from ._spdy import Data, GoAway, Headers, Ping, RstStream, SpdyError, SpdyFramer, SynStream
from ._state import Cluster, ManifestError, PodEntry

__all__ = ["PortForwardError", "dial_pod", "handle_portforward"]

log = logging.getLogger(__name__)

PORTFORWARD_PROTOCOL = "portforward.k8s.io"
SPDY_UPGRADE = "SPDY/3.1"
TUNNEL_PROTOCOL = f"{SPDY_UPGRADE}+{PORTFORWARD_PROTOCOL}"
V4_BINARY = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"

#: How long the other direction may still run once one direction of a forward ended (containerd
#: gives it a second, as socat does).
_LINGER_SECONDS = 1.0
_CHUNK = 32 * 1024

Send = Callable[[bytes], Awaitable[None]]


class PortForwardError(Exception):
    """The pod's port could not be reached; the message is what the error stream carries."""


def _sandbox_id(entry: PodEntry) -> str:
    """A stable stand-in for the pod sandbox's 64-hex container ID, which the CRI names."""
    uid = str(entry.pod["metadata"].get("uid", entry.name))
    return hashlib.sha256(uid.encode()).hexdigest()


def _netns_path(entry: PodEntry) -> str:
    uid = str(entry.pod["metadata"].get("uid", entry.name))
    return f"/var/run/netns/cni-{uuid.uuid5(uuid.NAMESPACE_URL, uid)}"


def _pod_network(cluster: Cluster, entry: PodEntry) -> int | None:
    """The pod's network namespace descriptor (None: plain processes share this host's)."""
    if isolation_problem() is not None:
        return None
    containers = entry.pod["spec"].get("containers") or []
    if not containers:
        return None
    container = containers[0]
    cluster.working_dir(entry, container)  # container_isolation expects the folder made
    isolation = container_isolation(cluster, entry, container)
    if isolation is None:
        return None
    # The pod's namespaces come net first (see _isolation._POD_NAMESPACES).
    return isolation.namespaces[0]


def _refused(port: int, family: str, address: str, error: OSError) -> str:
    # Go's wording: the errno's text in lower case ("connection refused").
    reason = os.strerror(error.errno).lower() if error.errno else str(error)
    return f"dial {family} {address}:{port}: connect: {reason}"


async def dial_pod(
    cluster: Cluster, entry: PodEntry, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to ``port`` on the pod's loopback; :class:`PortForwardError` (the
    kubelet's message) when nothing accepts it."""
    await stand_ins_listening(entry)  # as a real image's server, listening once it runs
    try:
        network = _pod_network(cluster, entry)
    except (ManifestError, OSError) as error:
        raise PortForwardError(
            f"error forwarding port {port} to pod {_sandbox_id(entry)}, uid : "
            f"failed to find the pod's network namespace: {error}"
        ) from None
    failures = []
    for family, address, tag in (
        (socket.AF_INET, "127.0.0.1", "tcp4"),
        (socket.AF_INET6, "::1", "tcp6"),
    ):
        if network is None:
            sock = socket.socket(family, socket.SOCK_STREAM)
        else:
            # Made inside the pod's network namespace, it stays there once this thread leaves.
            with entered_namespaces((network,)):
                sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (address, port))
        except OSError as error:
            sock.close()
            shown = f"[{address}]" if ":" in address else address
            failures.append(_refused(port, tag, shown, error))
            continue
        return await asyncio.open_connection(sock=sock)
    sandbox = _sandbox_id(entry)
    raise PortForwardError(
        f"error forwarding port {port} to pod {sandbox}, uid : failed to execute portforward "
        f'in network namespace "{_netns_path(entry)}": failed to connect to localhost:{port} '
        f'inside namespace "{sandbox}", IPv4: {failures[0]} IPv6 {failures[1]} '
    )


async def _cancelled(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended (their errors are of no interest)."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def _forward(
    cluster: Cluster,
    entry: PodEntry,
    port: int,
    incoming: asyncio.Queue[bytes | None],
    send: Send,
) -> str | None:
    """Copy ``incoming`` (None: the client sent its last byte) to the pod's ``port`` and
    the port's bytes to ``send`` until either side ends; the error message, if any."""
    try:
        reader, writer = await dial_pod(cluster, entry, port)
    except PortForwardError as error:
        return str(error)

    async def to_pod() -> None:
        while (chunk := await incoming.get()) is not None:
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    async def from_pod() -> None:
        while chunk := await reader.read(_CHUNK):
            await send(chunk)

    tasks = [asyncio.create_task(to_pod()), asyncio.create_task(from_pod())]
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            # The other direction gets a moment to finish (an answer to a half-closed request).
            await asyncio.wait(pending, timeout=_LINGER_SECONDS)
    finally:
        await _cancelled(tasks)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return None


# -- WebSocket channels ---------------------------------------------------------------------------


def _ports(request: web.Request) -> list[int]:
    """``?ports=`` as the kubelet parses it (repeated and comma-separated)."""
    values = request.query.getall("ports", [])
    if not values:
        raise status.bad_request('query parameter "ports" is required')
    ports = []
    for value in values:
        if not value:
            raise status.bad_request('query parameter "ports" cannot be empty')
        for part in value.split(","):
            if not part.isdigit() or int(part) > 65535:
                raise status.bad_request(
                    f'unable to parse "{value}" as a port: strconv.ParseUint: parsing '
                    f'"{part}": invalid syntax'
                )
            if int(part) < 1:
                raise status.bad_request(f'port "{value}" must be > 0')
            ports.append(int(part))
    return ports


async def _serve_channels(
    request: web.Request, entry: PodEntry, ports: list[int], protocol: str
) -> web.WebSocketResponse:
    cluster = cluster_of(request)
    ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), compress=False)
    await ws.prepare(request)
    as_text = protocol == V4_BASE64
    lock = asyncio.Lock()

    async def send(channel: int, payload: bytes) -> None:
        async with lock:
            if ws.closed:
                raise ConnectionResetError("the client closed the port-forward connection")
            if as_text:
                await ws.send_str(chr(ord("0") + channel) + base64.b64encode(payload).decode())
            else:
                await ws.send_bytes(bytes([channel]) + payload)

    queues: list[asyncio.Queue[bytes | None]] = [asyncio.Queue() for _ in ports]
    for index, port in enumerate(ports):
        announce = port.to_bytes(2, "little")
        await send(2 * index, announce)
        await send(2 * index + 1, announce)

    async def one_port(index: int, port: int) -> None:
        async def data(chunk: bytes) -> None:
            await send(2 * index, chunk)

        with contextlib.suppress(ConnectionError, RuntimeError):
            failure = await _forward(cluster, entry, port, queues[index], data)
            if failure:
                await send(2 * index + 1, failure.encode())

    async def read_client() -> None:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                frame: bytes = message.data
                channel, payload = (frame[0], frame[1:]) if frame else (-1, b"")
            elif message.type == WSMsgType.TEXT and as_text and message.data:
                channel = ord(message.data[0]) - ord("0")
                payload = base64.b64decode(message.data[1:])
            else:
                continue
            if channel >= 0 and channel % 2 == 0 and channel // 2 < len(queues) and payload:
                queues[channel // 2].put_nowait(payload)

    reader = asyncio.create_task(read_client())
    forwards = asyncio.gather(*(one_port(i, port) for i, port in enumerate(ports)))
    both: list[asyncio.Future[Any]] = [reader, forwards]
    try:
        await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await _cancelled(both)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close()
    return ws


# -- SPDY -----------------------------------------------------------------------------------------


class _Stream:
    def __init__(self, stream_id: int, headers: dict[str, str]) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.reset = False


class SpdySession:
    """One SPDY port-forward connection: streams paired by ``requestID``, each pair a forward.

    ``send`` writes bytes to the client (one call per frame, in order); received bytes go to
    :meth:`feed`. The session ends with :meth:`close`.
    """

    def __init__(self, cluster: Cluster, entry: PodEntry, send: Send) -> None:
        self.cluster = cluster
        self.entry = entry
        self._send = send
        self._framer = SpdyFramer()
        self._streams: dict[int, _Stream] = {}
        self._pairs: dict[str, dict[str, _Stream]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self.closed = asyncio.Event()

    async def _write(self, make: Callable[[], bytes]) -> None:
        # The header compressor is one stream: frames are made and sent in the same order.
        async with self._lock:
            if not self.closed.is_set():
                await self._send(make())

    async def feed(self, data: bytes) -> None:
        """Act on the frames in ``data``; a protocol error ends the session."""
        try:
            frames = self._framer.feed(data)
        except SpdyError as error:
            log.info("port-forward connection ended: %s", error)
            self.closed.set()
            return
        for frame in frames:
            if isinstance(frame, SynStream):
                await self._open(frame)
            elif isinstance(frame, Data):
                stream = self._streams.get(frame.stream_id)
                if stream is not None:
                    if frame.payload:
                        stream.incoming.put_nowait(frame.payload)
                    if frame.fin:
                        stream.incoming.put_nowait(None)
            elif isinstance(frame, Headers) and frame.fin:
                stream = self._streams.get(frame.stream_id)
                if stream is not None:
                    stream.incoming.put_nowait(None)
            elif isinstance(frame, RstStream):
                stream = self._streams.pop(frame.stream_id, None)
                if stream is not None:
                    stream.reset = True
                    stream.incoming.put_nowait(None)
            elif isinstance(frame, Ping):
                await self._write(functools.partial(SpdyFramer.ping, frame.ping_id))
            elif isinstance(frame, GoAway):
                self.closed.set()

    async def _open(self, frame: SynStream) -> None:
        stream = _Stream(frame.stream_id, frame.headers)
        kind, port = frame.headers.get("streamtype", ""), frame.headers.get("port", "")
        if kind not in ("data", "error") or not port.isdigit() or not 0 < int(port) < 65536:
            # The kubelet rejects such a stream: a reset, the connection goes on.
            await self._write(lambda: SpdyFramer.rst_stream(frame.stream_id, 1))
            return
        self._streams[frame.stream_id] = stream
        if frame.fin:
            stream.incoming.put_nowait(None)
        await self._write(lambda: self._framer.syn_reply(frame.stream_id, {}))
        request_id = frame.headers.get("requestid") or str(
            frame.stream_id if kind == "error" else frame.stream_id - 2
        )
        pair = self._pairs.setdefault(request_id, {})
        pair[kind] = stream
        if len(pair) == 2:
            del self._pairs[request_id]
            task = asyncio.create_task(self._forward(pair["data"], pair["error"], int(port)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _forward(self, data: _Stream, error: _Stream, port: int) -> None:
        async def send(chunk: bytes) -> None:
            if data.reset:
                raise ConnectionResetError("the client reset the data stream")
            await self._write(lambda: SpdyFramer.data(data.stream_id, chunk))

        failure = await _forward(self.cluster, self.entry, port, data.incoming, send)
        if failure:
            message = failure.encode()
            await self._write(lambda: SpdyFramer.data(error.stream_id, message))
        # Both streams end, the error stream first: the client reads it to its end.
        await self._write(lambda: SpdyFramer.data(error.stream_id, b"", fin=True))
        await self._write(lambda: SpdyFramer.data(data.stream_id, b"", fin=True))
        self._streams.pop(data.stream_id, None)
        self._streams.pop(error.stream_id, None)

    async def close(self) -> None:
        """End every forward of this connection."""
        self.closed.set()
        await _cancelled(list(self._tasks))


class _UpgradedReader:
    """Takes the place of aiohttp's HTTP parser once the connection speaks SPDY."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)


async def _serve_spdy_upgrade(request: web.Request, entry: PodEntry) -> web.StreamResponse:
    offered = [p.strip() for p in request.headers.getall("X-Stream-Protocol-Version", [])]
    offered = [p for value in offered for p in value.split(",") if p.strip()]
    if offered and PORTFORWARD_PROTOCOL not in [p.strip() for p in offered]:
        raise status.ApiFailure(
            403,
            "Forbidden",
            f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
            f"server supports [{PORTFORWARD_PROTOCOL}]",
        )
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client left before the upgrade")
    response = web.StreamResponse(
        status=101,
        headers={
            "Connection": "Upgrade",
            "Upgrade": SPDY_UPGRADE,
            "X-Stream-Protocol-Version": PORTFORWARD_PROTOCOL,
        },
    )
    # The bytes after the 101 are SPDY frames, not HTTP: they go to this reader instead.
    reader = _UpgradedReader()
    request.protocol.set_parser(reader)  # type: ignore[arg-type]
    request.protocol.keep_alive(False)
    response.force_close()
    await response.prepare(request)

    async def send(frame: bytes) -> None:
        if transport.is_closing():
            raise ConnectionResetError("the client closed the port-forward connection")
        transport.write(frame)

    session = SpdySession(cluster_of(request), entry, send)
    await _pump(session, reader.queue)
    transport.close()
    return response


async def _pump(session: SpdySession, inbound: asyncio.Queue[bytes | None]) -> None:
    """Feed ``inbound`` to ``session`` until the client leaves or says GOAWAY."""
    ended = asyncio.create_task(session.closed.wait())
    try:
        while not session.closed.is_set():
            getter = asyncio.create_task(inbound.get())
            await asyncio.wait([getter, ended], return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                break
            data = getter.result()
            if data is None:
                break
            await session.feed(data)
    finally:
        ended.cancel()
        await session.close()


async def _serve_spdy_tunnel(request: web.Request, entry: PodEntry) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=(TUNNEL_PROTOCOL,), compress=False)
    await ws.prepare(request)

    async def send(frame: bytes) -> None:
        await ws.send_bytes(frame)

    session = SpdySession(cluster_of(request), entry, send)
    inbound: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def read_client() -> None:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                inbound.put_nowait(message.data)
        inbound.put_nowait(None)

    reader = asyncio.create_task(read_client())
    try:
        await _pump(session, inbound)
    finally:
        await _cancelled([reader])
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close()
    return ws


def _offered(request: web.Request) -> list[str]:
    header = ",".join(request.headers.getall("Sec-WebSocket-Protocol", []))
    return [p.strip() for p in header.split(",") if p.strip()]


async def handle_portforward(request: web.Request) -> web.StreamResponse:
    """``GET|POST /api/v1/namespaces/{ns}/pods/{name}/portforward``."""
    cluster = cluster_of(request)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    entry = cluster.get_pod(namespace, name)
    if entry is None:
        raise status.not_found("pods", name)
    upgrade = request.headers.get("Upgrade", "").lower()
    if "websocket" in upgrade:
        offered = _offered(request)
        if TUNNEL_PROTOCOL in offered:
            return await _serve_spdy_tunnel(request, entry)
        ports = _ports(request)
        protocol = next(
            (p for p in (V4_BINARY, V4_BASE64, PORTFORWARD_PROTOCOL) if p in offered), ""
        )
        if offered and not protocol:
            raise status.bad_request(
                f"unable to upgrade websocket connection: the client's subprotocols {offered} "
                f"are none of {V4_BINARY}, {V4_BASE64}, {TUNNEL_PROTOCOL}"
            )
        return await _serve_channels(request, entry, ports, protocol)
    if SPDY_UPGRADE.lower() in upgrade:
        return await _serve_spdy_upgrade(request, entry)
    raise status.bad_request("Upgrade request required")

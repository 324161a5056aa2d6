"""One exec in one container over Kubernetes' WebSocket channel protocol.

:func:`run_exec` opens ``GET .../pods/{pod}/exec`` as a WebSocket (offering
``v5.channel.k8s.io`` then ``v4.channel.k8s.io``), feeds stdin, collects stdout and stderr,
and turns the status frame into an exit code. It knows nothing of fan-out or display: the
caller runs many of these concurrently and passes ``on_output`` to stream chunks onwards.

Frames are ``[channel][payload]``: 0 stdin, 1 stdout, 2 stderr, 3 status (one JSON document,
sent last), 4 terminal size, 255 close (v5 only; ``[255, 0]`` is stdin EOF).

What is guaranteed:

* An exit code comes only from a status frame. A connection that ends without one — a TCP
  drop, a close 1006/1011, even a clean close — raises
  :class:`~podmagic.StreamLostError` with the output received so far as its
  ``partial`` attribute (an :class:`ExecOutcome`). It is never reported as success.
* Before the upgrade nothing has run, so a refused upgrade is retried where that can help
  (401 once with a fresh token, 429 honouring ``Retry-After``, 5xx and connect errors with
  backoff: the policy of every API request, :meth:`~podmagic._kubeapi.KubeApi.request`);
  after it, nothing is retried, because the command may have run.
* Output is handled per frame, never per byte; what exceeds ``capture_limit`` is counted
  and handed to ``on_output`` but not kept.
* Cancelling the task closes the WebSocket within about a second and re-raises.

The opening handshake has its own limits: ``connect_timeout`` to reach the server (TCP and
TLS, retries of refused connections included) and ``read_timeout`` for the answer to the
upgrade; a timeout there is a :class:`~podmagic.HandshakeError` saying which step
stalled, and it is not retried. The time a command may run is the caller's: wrap the call in
an anyio cancel scope, and pass a :class:`~podmagic._kubeapi.Reach` as ``reach`` to learn how far
the opening had got when that scope ran out. A cancelled exec sends its close frame and
drops the connection within :data:`CANCEL_CLOSE_TIMEOUT`, without waiting for the server.

The WebSocket itself is podmagic's own minimal client (:mod:`podmagic._wsproto`, on
``asyncio.Protocol``: messages go straight from the socket to the collector, with no queue
and no task per connection), except through an HTTP proxy, where the ``websockets`` library
connects. Until the next release the ``websockets`` path can be chosen for every exec, to
compare the two: set :data:`WEBSOCKET_CLIENT` to ``"websockets"`` (or start Python with
``PODMAGIC_EXEC_WEBSOCKET=websockets``). Both behave alike: the same retries and limits, the
same errors, a refused upgrade's body shown, keepalive pings, v4 and v5.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import select
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.lowlevel
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State
from websockets.typing import Subprotocol

from ._channels import CLOSE, RESIZE, STATUS, STDERR, STDIN, STDOUT
from ._errors import HandshakeError, StreamLostError
from ._kubeapi import (
    READ_TIMEOUT,
    Answer,
    Reach,
    RetryPolicy,
    Unreachable,
    _segment,
    parse_retry_after,
)
from ._wsproto import BadHandshake, ConnectionEnded, ExecSocket, Refused, open_exec_socket

if TYPE_CHECKING:
    from ._kubeapi import KubeApi

__all__ = [
    "READY_MARKER",
    "STDIN_CHUNK",
    "SUBPROTOCOLS",
    "TERMINAL_EOF",
    "V4",
    "V5",
    "ExecOutcome",
    "ExecSpec",
    "LoaderInput",
    "OutputCallback",
    "interpret_status",
    "partial_outcome",
    "run_exec",
]

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
#: Offered in this order; the server picks v5 when it speaks it.
SUBPROTOCOLS: tuple[str, ...] = (V5, V4)

#: Largest stdin payload per frame.
STDIN_CHUNK = 64 * 1024

#: What podmagic's stdin loader prints on a terminal when it is ready for the next part of its
#: stdin (an APC escape sequence: nothing else prints it, and terminals show nothing for it).
#: The client removes it from the output.
READY_MARKER = b"\x1b_podmagic:ready\x1b\\"
#: What the loader's client types on a terminal when the user gave no stdin: ^D, the EOF
#: character of a terminal in its normal (canonical) mode, where the loader left it. Not the
#: v5 close frame: containerd hangs up a terminal whose stdin is closed, and v4 has none.
TERMINAL_EOF = b"\x04"

#: Seconds between keepalive pings, and to wait for each pong before declaring the link dead.
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0
#: Seconds the closing handshake may take before the socket is simply dropped.
CLOSE_TIMEOUT = 1.0
#: ... and when the exec is cancelled (a timeout, an interrupt): the close frame is sent, but
#: a per-pod timeout must not grow by a server's slow goodbye.
CANCEL_CLOSE_TIMEOUT = 0.25
#: Bytes asyncio asks OpenSSL for per read on an exec connection (see :func:`_tune_tls_reads`).
TLS_READ_SIZE = 64 * 1024
#: Which WebSocket client execs use: ``"lean"`` (:mod:`podmagic._wsproto`; through a proxy,
#: websockets all the same) or ``"websockets"``. Private, kept for one release to compare.
WEBSOCKET_CLIENT = os.environ.get("PODMAGIC_EXEC_WEBSOCKET", "lean")


class _NoDebugLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets logs every handshake header, Authorization included, at DEBUG level:
    never let it, whatever level the application sets."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_WS_LOGGER = _NoDebugLogger(logging.getLogger("websockets.client"), {})
log = logging.getLogger(__name__)

#: ``on_output(channel, chunk)``: channel 1 (stdout) or 2 (stderr), chunk as received.
OutputCallback = Callable[[int, bytes], None]


@dataclass(frozen=True)
class LoaderInput:
    """Stdin for podmagic's script loader (:data:`podmagic._command.LOADER`).

    ``payload`` is what the loader reads; ``rest`` is the command's own stdin (``None``: none).
    Without a tty both are sent at once, then EOF. With a tty the loader prints
    :data:`READY_MARKER` once it has switched off the terminal's echo and line editing, and
    again once it has read the payload and restored them: ``payload`` goes only after the first,
    ``rest`` and EOF only after the second. With ``rest`` None the terminal's EOF character
    (:data:`TERMINAL_EOF`, ^D) is typed after the second marker instead, and stdin stays open:
    ``sh -c`` with a terminal and no stdin channel gets the same from the sandbox (a terminal
    whose first read ends at once), so ``read`` and ``cat`` end alike on both paths. So nothing of
    the payload is echoed or cut at the terminal's line limit, and the user's stdin meets the
    terminal as the script set it.
    """

    payload: bytes
    rest: bytes | None = None

    @property
    def data(self) -> bytes:
        """Everything, in order: what is sent without a tty."""
        return self.payload + (self.rest or b"")

    def __repr__(self) -> str:
        # The payload holds env values (-e, env=): sizes only, never the bytes.
        rest = "None" if self.rest is None else f"<{len(self.rest)} bytes>"
        return f"LoaderInput(payload=<{len(self.payload)} bytes>, rest={rest})"


@dataclass(frozen=True)
class ExecSpec:
    """What to run where.

    ``command`` is the argv (no shell is added). ``stdin`` is sent and then closed (on v5);
    ``None`` opens no stdin channel; a :class:`LoaderInput` is sent as it describes. With
    ``tty`` the command gets a terminal of ``width`` x ``height`` and all its output arrives
    as stdout. ``capture_limit`` bounds how many bytes
    of each stream are kept (``None``: all). ``connect_timeout`` bounds reaching the server
    (TCP and TLS, retries included), ``read_timeout`` the wait for the upgrade's answer.

    On a v4-only server there is no way to close stdin without closing the connection: the
    data is sent, but a command that reads until EOF (``cat``, ``sort``) then waits forever.
    Such callers should make the command stop by itself (``head -c N``) or use a timeout.

    A command that exits without reading all of a large ``stdin`` makes the server close the
    connection while stdin still arrives, and the reset that follows can, rarely, overtake
    the exit status; that exec then ends in ``StreamLostError`` saying so, never in success.
    """

    namespace: str
    pod: str
    container: str
    command: tuple[str, ...]
    stdin: bytes | LoaderInput | None = None
    tty: bool = False
    width: int = 80
    height: int = 24
    capture_limit: int | None = 16 * 1024 * 1024
    connect_timeout: float = 10.0
    read_timeout: float = READ_TIMEOUT


@dataclass
class ExecOutcome:
    """How an exec ended and what it printed.

    ``exit_code`` is ``None`` when the server reported a failure that is not an exit code
    (``error`` holds its message, e.g. "executable file not found"). ``stdout``/``stderr`` keep
    the first ``capture_limit`` bytes of each stream; ``*_dropped`` count the rest.
    ``status`` is the parsed status frame (``{}`` when none arrived), ``protocol`` the
    negotiated subprotocol.
    """

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    status: dict[str, Any] = field(default_factory=dict)
    protocol: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the command ran and exited 0."""
        return self.exit_code == 0


def partial_outcome(error: StreamLostError) -> ExecOutcome | None:
    """The output an exec had received when its connection was lost (``error.partial``)."""
    partial = getattr(error, "partial", None)
    return partial if isinstance(partial, ExecOutcome) else None


def interpret_status(status: dict[str, Any]) -> tuple[int | None, str | None]:
    """``(exit_code, error)`` from a status frame, the way kubectl reads it.

    ``Success`` is 0. ``Failure`` with reason ``NonZeroExitCode`` carries the code in the
    cause whose reason is ``ExitCode`` (searched for, not assumed first). Any other failure
    is an error without an exit code.
    """
    outcome = status.get("status")
    if outcome == "Success":
        return 0, None
    message = status.get("message")
    error = message if isinstance(message, str) and message else None
    if status.get("reason") == "NonZeroExitCode":
        details = status.get("details")
        causes = details.get("causes") if isinstance(details, dict) else None
        for cause in causes if isinstance(causes, list) else ():
            if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
                try:
                    return int(str(cause.get("message", "")).strip()), None
                except ValueError:
                    break
    if error is None:
        error = f"the exec ended with status {outcome or 'unknown'} and no message"
    return None, error


_JSON = json.JSONDecoder()


def _parse_status(buffer: bytearray) -> dict[str, Any] | None:
    """The status document once ``buffer`` holds a complete one, else None."""
    text = bytes(buffer).decode("utf-8", "replace").lstrip()
    if not text:
        return None
    try:
        document, _ = _JSON.raw_decode(text)
    except ValueError:
        return None  # incomplete so far: more pieces may follow
    return document if isinstance(document, dict) else {"status": "Failure", "message": text}


class _Collector:
    """Accumulates one exec's frames.

    The work is per frame, never per byte: kept output is a list of slices joined once at the
    end (one copy), and a slice is copied into ``bytes`` only when ``on_output`` wants it.

    With ``markers`` > 0 the first that many :data:`READY_MARKER` on stdout are removed from
    it, each setting the next of ``ready`` (a marker may be split across frames: a tail that
    could start one is held back until the next frame, or the end, shows what it was).
    """

    def __init__(
        self, limit: int | None, on_output: OutputCallback | None, markers: int = 0
    ) -> None:
        self.ready = [anyio.Event() for _ in range(markers)]
        self._markers_seen = 0
        self._held = b""
        self.limit = limit
        self.on_output = on_output
        self.chunks: dict[int, list[bytes | memoryview]] = {STDOUT: [], STDERR: []}
        self.kept: dict[int, int] = {STDOUT: 0, STDERR: 0}
        self.dropped: dict[int, int] = {STDOUT: 0, STDERR: 0}
        self.status_buffer = bytearray()
        self.status: dict[str, Any] | None = None
        self.stdin_cut = False  # the connection ended while stdin was being sent

    def feed(self, frame: bytes) -> bool:
        """Take one frame; True once the status is complete (nothing else is expected)."""
        if len(frame) < 2:
            return False  # the server's empty greeting frame, or nothing at all
        channel = frame[0]
        if channel == STDOUT and self._markers_seen < len(self.ready):
            self._output(STDOUT, self._strip_markers(frame[1:]))
        elif channel == STDOUT or channel == STDERR:
            self._output(channel, frame, 1)
        elif channel == STATUS and self.status is None:
            self.status_buffer += memoryview(frame)[1:]
            self.status = _parse_status(self.status_buffer)
            if self.status is not None:
                self.flush()
            return self.status is not None
        return False

    def _strip_markers(self, data: bytes) -> bytes:
        """``data`` without the markers still expected; signals each one found."""
        data = self._held + data
        self._held = b""
        kept = []
        while self._markers_seen < len(self.ready):
            found = data.find(READY_MARKER)
            if found < 0:
                # Hold back the longest tail that could be the start of a marker.
                for size in range(min(len(data), len(READY_MARKER) - 1), 0, -1):
                    if READY_MARKER.startswith(data[-size:]):
                        self._held = data[-size:]
                        data = data[:-size]
                        break
                break
            kept.append(data[:found])
            data = data[found + len(READY_MARKER) :]
            self.ready[self._markers_seen].set()
            self._markers_seen += 1
        kept.append(data)
        return b"".join(kept)

    def flush(self) -> None:
        """Hand on the held-back tail: the exec has ended, so it was no marker."""
        held, self._held = self._held, b""
        self._output(STDOUT, held)

    def _output(self, channel: int, frame: bytes, start: int = 0) -> None:
        """Keep (within the limit) and pass on ``frame[start:]``, output of ``channel``."""
        size = len(frame) - start
        if size <= 0:
            return
        room = size if self.limit is None else self.limit - self.kept[channel]
        on_output = self.on_output
        chunk = (frame[start:] if start else frame) if on_output is not None else None
        if room >= size:
            self.chunks[channel].append(chunk if chunk is not None else memoryview(frame)[start:])
            self.kept[channel] += size
        else:
            if room > 0:
                self.chunks[channel].append(memoryview(frame)[start : start + room])
                self.kept[channel] += room
            self.dropped[channel] += size - max(room, 0)
        if on_output is not None and chunk is not None:
            on_output(channel, chunk)

    def outcome(self, protocol: str) -> ExecOutcome:
        self.flush()
        status = self.status or {}
        exit_code, error = interpret_status(status) if self.status is not None else (None, None)
        return ExecOutcome(
            exit_code=exit_code,
            stdout=b"".join(self.chunks[STDOUT]),
            stderr=b"".join(self.chunks[STDERR]),
            stdout_dropped=self.dropped[STDOUT],
            stderr_dropped=self.dropped[STDERR],
            status=status,
            protocol=protocol,
            error=error,
        )


def _close_detail(code: int | None, reason: str) -> str:
    """How the connection ended (the close code received, else the one sent; ``None``: no
    close frame at all), for a StreamLostError's message."""
    if code is None:
        return "the connection dropped (1006)"
    if code in (1000, 1001):
        return "the server closed the stream without an exit status"
    return f"close code {code}{f': {reason}' if reason else ''}"


class _TracedConnection(ClientConnection):
    """A ClientConnection that tells a :class:`~podmagic._kubeapi.Reach` how far the opening got.

    websockets creates it once the TCP connection stands (through a proxy: once the proxy
    has connected), asyncio calls ``connection_made`` once TLS is done (and the upgrade
    request is sent right after), and the first bytes received begin the answer.
    """

    def __init__(self, protocol: Any, *, reach: Reach, **kwargs: Any) -> None:
        super().__init__(protocol, **kwargs)
        reach.tcp = True
        self._reach: Reach | None = reach

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._reach is not None:
            self._reach.advance("answer")

    def data_received(self, data: bytes) -> None:
        reach = self._reach
        if reach is not None:
            self._reach = None  # from here on, nothing per read
            reach.advance("body")
        super().data_received(data)


def _refused_answer(status: int, body: bytes | None, retry_after: str | None) -> Answer[Any]:
    return Answer(status, body, parse_retry_after(retry_after))


def _not_an_upgrade(exc: Exception) -> Unreachable:
    """The server cut the connection or spoke something else than HTTP."""
    return Unreachable(
        exc,
        f"the exec upgrade failed ({exc})",
        "check that the server address points at the Kubernetes API server",
    )


async def _connect(
    api: KubeApi,
    spec: ExecSpec,
    policy: RetryPolicy,
    reach: Reach,
    attempt: Callable[[Mapping[str, str], Reach], Any],
) -> _Link:
    """Open the WebSocket under :meth:`KubeApi.request`'s policy: before the upgrade nothing
    has run, so what may help is retried (401 once with fresh credentials, 429 and 5xx with
    backoff, refused or reset connections within ``spec.connect_timeout`` overall).

    A timeout is not retried: the server had its chance, and a retry would multiply the
    wait. A refused upgrade is a :class:`~podmagic.HandshakeError` with the server's own
    message; a timeout or an unreachable server one with ``http_status`` 0.
    """
    reach.connect_timeout, reach.read_timeout = spec.connect_timeout, spec.read_timeout

    def fail(message: str, hint: str) -> HandshakeError:
        # http_status 0: no HTTP answer at all (the convention of the official client).
        return HandshakeError(
            http_status=0,
            server_message=message,
            hint=hint,
            pod=spec.pod,
            namespace=spec.namespace,
            container=spec.container,
        )

    answer = await api.request(
        f"exec in pod {spec.namespace}/{spec.pod}",
        attempt,
        retry=policy,
        reach=reach,
        noun="exec upgrade",
        fail=fail,
    )
    if answer.value is None:
        raise HandshakeError.from_status(
            answer.status,
            answer.body,
            pod=spec.pod,
            namespace=spec.namespace,
            container=spec.container,
        ) from None
    link: _Link = answer.value
    return link


def _websockets_attempt(
    api: KubeApi, url: str, subprotocols: Sequence[str]
) -> Callable[[Mapping[str, str], Reach], Any]:
    """One try at the upgrade with the ``websockets`` library (a proxy, or chosen)."""
    ssl_context = api.websocket_ssl()
    extra: dict[str, Any] = {}
    if ssl_context is not None and api.server_hostname:
        # kubeconfig's tls-server-name: the name for SNI and certificate verification.
        extra["server_hostname"] = api.server_hostname

    async def attempt(headers: Mapping[str, str], reach: Reach) -> Answer[_Link]:
        try:
            ws = await connect(
                url,
                ssl=ssl_context,
                proxy=api.proxy,
                additional_headers=headers,
                user_agent_header=api.user_agent,
                subprotocols=[Subprotocol(p) for p in subprotocols],
                # Outputs are often already compressed or binary; deflate costs CPU per byte.
                compression=None,
                max_size=None,
                # The request's scope bounds each step with its own limit.
                open_timeout=None,
                ping_interval=PING_INTERVAL,
                ping_timeout=PING_TIMEOUT,
                close_timeout=CLOSE_TIMEOUT,
                # Up to 64 received frames (64 KiB each from a typical server) may wait for
                # the reader; stdin waits while more than one frame is unsent.
                max_queue=64,
                write_limit=STDIN_CHUNK,
                logger=_WS_LOGGER,
                create_connection=functools.partial(  # type: ignore[arg-type]
                    _TracedConnection, reach=reach
                ),
                **extra,
            )
        except InvalidStatus as refused:
            response = refused.response
            return _refused_answer(
                response.status_code,
                bytes(response.body) if response.body is not None else None,
                response.headers.get("Retry-After"),
            )
        except InvalidHandshake as exc:
            if isinstance(exc, OSError):
                raise Unreachable(exc) from exc
            raise _not_an_upgrade(exc) from exc
        except TimeoutError:
            raise
        except OSError as exc:
            raise Unreachable(exc) from exc
        return Answer(101, value=_WebsocketsLink(ws))

    return attempt


#: A pod name :meth:`KubeApi.exec_url` leaves as it is: where it lands in a URL, any pod's goes.
_POD_MARK = "podmagic-pod-name-mark"
#: The exec URL before and after the pod's name, per (server, namespace, container, command,
#: stdin, tty): a fan-out runs one command in many pods, and the query (the argv, quoted)
#: and the path around the pod are the same for every one of them. Small: one entry serves
#: a whole run.
_URL_AROUND_POD: dict[tuple[object, ...], tuple[str, str]] = {}
_URL_CACHE_SIZE = 8


def _exec_url(api: KubeApi, spec: ExecSpec) -> str:
    """``api.exec_url`` for ``spec``, built once per command and container, not per pod."""
    stdin = spec.stdin is not None
    key = (api.server, spec.namespace, spec.container, spec.command, stdin, spec.tty)
    around = _URL_AROUND_POD.get(key)
    if around is None:

        def build(pod: str) -> str:
            return api.exec_url(
                spec.namespace,
                pod,
                container=spec.container,
                command=spec.command,
                stdin=stdin,
                stdout=True,
                stderr=not spec.tty,
                tty=spec.tty,
            )

        before, mark, after = build(_POD_MARK).partition(_POD_MARK)
        if not mark or _POD_MARK in after:  # e.g. the mark is in the argv too: no shortcut
            return build(spec.pod)
        if len(_URL_AROUND_POD) >= _URL_CACHE_SIZE:
            _URL_AROUND_POD.clear()
        around = _URL_AROUND_POD[key] = (before, after)
    return around[0] + _segment(spec.pod) + around[1]


@functools.lru_cache(maxsize=32)
def _direct_target(server: str) -> tuple[str, int, str, int] | None:
    """``(host, port, Host header, where the path starts in an exec URL)`` of an API server
    the lean client can reach directly; None for one it leaves to websockets (credentials in
    the URL, which websockets turns into Basic authentication)."""
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    scheme = "wss" if parts.scheme == "https" else "ws"
    return parts.hostname, port, parts.netloc, len(f"{scheme}://{parts.netloc}")


class _Steps:
    """Tells a :class:`~podmagic._kubeapi.Reach` how far the lean client's opening got."""

    __slots__ = ("reach",)

    def __init__(self, reach: Reach) -> None:
        self.reach = reach

    def tcp(self) -> None:
        self.reach.tcp = True

    def answer(self) -> None:
        self.reach.advance("answer")

    def body(self) -> None:
        self.reach.advance("body")


def _lean_attempt(
    api: KubeApi,
    url: str,
    subprotocols: Sequence[str],
    target: tuple[str, int, str, int],
) -> Callable[[Mapping[str, str], Reach], Any]:
    """One try at the upgrade with podmagic's own client (:mod:`podmagic._wsproto`)."""
    host, port, host_header, path_at = target
    ssl_context = api.websocket_ssl()
    server_hostname = (api.server_hostname or host) if ssl_context is not None else None
    fixed = (("Host", host_header), ("User-Agent", api.user_agent))

    async def attempt(headers: Mapping[str, str], reach: Reach) -> Answer[_Link]:
        steps = _Steps(reach)
        try:
            sock = await open_exec_socket(
                host,
                port,
                url[path_at:],
                (*fixed, *headers.items()),
                subprotocols,
                ssl=ssl_context,
                server_hostname=server_hostname,
                max_size=None,
                ping_interval=PING_INTERVAL,
                ping_timeout=PING_TIMEOUT,
                # stdin waits while more than one frame is unsent.
                write_limit=STDIN_CHUNK,
                on_tcp=steps.tcp,
                on_answer=steps.answer,
                on_first_byte=steps.body,
            )
        except Refused as refused:
            return _refused_answer(refused.status, refused.body, refused.headers.get("retry-after"))
        except BadHandshake as exc:
            raise _not_an_upgrade(exc) from exc
        except TimeoutError:
            raise
        except OSError as exc:
            raise Unreachable(exc) from exc
        return Answer(101, value=_LeanLink(sock))

    return attempt


def _tune_tls_reads(transport: asyncio.BaseTransport | None) -> None:
    """Let asyncio read at most :data:`TLS_READ_SIZE` bytes per call on this connection.

    asyncio's TLS transport asks for 256 KiB per read and gets one TLS record (16 KiB), so
    every record allocates, then shrinks, a 256 KiB buffer. glibc serves that outside the
    heap or at its very top, and a large stream turns into a storm of mmap/trim cycles and
    page faults: up to 0.4 s of system time per 256 MiB, more than the decryption costs. A
    64 KiB buffer stays inside the heap. The read size is an attribute of the transport's
    TLS protocol object, not an API: left alone where it is not found.
    """
    protocol = getattr(transport, "_ssl_protocol", None)
    size = getattr(protocol, "max_size", None)
    if isinstance(size, int) and size > TLS_READ_SIZE:
        protocol.max_size = TLS_READ_SIZE  # type: ignore[union-attr]


class _Link:
    """One exec WebSocket, whichever client made it: what :func:`run_exec` needs of it."""

    __slots__ = ("subprotocol", "transport")

    def __init__(self, transport: asyncio.BaseTransport | None, subprotocol: str | None) -> None:
        self.transport = transport
        self.subprotocol = subprotocol

    async def send(self, data: bytes) -> None:
        """Send one binary message (raises :class:`ConnectionEnded` once closed)."""
        raise NotImplementedError

    async def read(self, collector: _Collector) -> str | None:
        """Feed messages to ``collector`` until its status is complete (None) or the
        connection ends first (how it ended, for the error's message)."""
        raise NotImplementedError

    async def close(self, *, server_closing: bool) -> None:
        """Close promptly, even while the calling task is being cancelled.

        With ``server_closing`` (the status frame has arrived, and the server closes right
        after it) the server's own close is awaited first, which costs less than starting
        a closing handshake of our own; a close of our own follows only if the server did
        not close in time. An exec that did not end by itself (timed out, cancelled,
        broken) only sends its close frame. No socket is left open behind the caller.
        """
        raise NotImplementedError


class _LeanLink(_Link):
    __slots__ = ("sock",)

    def __init__(self, sock: ExecSocket) -> None:
        super().__init__(sock.transport, sock.subprotocol)
        self.sock = sock

    async def send(self, data: bytes) -> None:
        await self.sock.send(data)

    async def read(self, collector: _Collector) -> str | None:
        sock = self.sock
        if await sock.read(collector.feed):
            return None
        return _close_detail(sock.close_code, sock.close_reason)

    async def close(self, *, server_closing: bool) -> None:
        sock = self.sock
        if sock.closed:
            return  # the server closed already: nothing to wait for
        with anyio.CancelScope(shield=True):
            try:
                grace = CANCEL_CLOSE_TIMEOUT
                if server_closing:
                    if await sock.wait_closed(CLOSE_TIMEOUT):
                        return
                    grace = 0.5
                if not sock.closed:
                    sock.start_closing()
                    await sock.wait_closed(grace)
            except Exception:  # closing must not hide how the exec ended
                log.debug("closing an exec WebSocket failed", exc_info=True)
            finally:
                sock.abort()


class _WebsocketsLink(_Link):
    __slots__ = ("ws",)

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(ws.transport, ws.subprotocol)
        self.ws = ws

    async def send(self, data: bytes) -> None:
        try:
            await self.ws.send(data)
        except ConnectionClosed as exc:
            raise ConnectionEnded() from exc

    async def read(self, collector: _Collector) -> str | None:
        ws = self.ws
        try:
            while True:
                frame = await ws.recv(decode=False)
                if collector.feed(frame if isinstance(frame, bytes) else bytes(frame)):
                    return None
        except ConnectionClosed as exc:
            ending = exc.rcvd or exc.sent
            return _close_detail(*((ending.code, ending.reason) if ending else (None, "")))

    async def close(self, *, server_closing: bool) -> None:
        ws = self.ws
        with anyio.CancelScope(shield=True):
            try:
                # close() gives the server CLOSE_TIMEOUT to answer, then drops the socket
                # itself; the outer bound covers a close that is stuck for any other reason.
                with anyio.move_on_after(
                    CLOSE_TIMEOUT + 0.5 if server_closing else CANCEL_CLOSE_TIMEOUT
                ):
                    if server_closing:
                        with anyio.move_on_after(CLOSE_TIMEOUT):
                            await ws.wait_closed()
                    if ws.state is not State.CLOSED:
                        await ws.close()
            except Exception:  # closing must not hide how the exec ended
                log.debug("closing an exec WebSocket failed", exc_info=True)
            finally:
                if ws.transport is not None and not ws.transport.is_closing():
                    ws.transport.abort()


def _input_pending(link: _Link) -> bool:
    """Whether the socket holds received bytes the event loop has not read yet."""
    transport = link.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    try:
        fd = sock.fileno() if sock is not None else -1
        if fd < 0:
            return False
        if hasattr(select, "poll"):  # select() cannot take descriptors above FD_SETSIZE
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([fd], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):
        return False


async def _send_stdin(
    link: _Link, data: bytes, protocol: str, collector: _Collector, *, eof: bool = True
) -> None:
    """Send stdin in frames of at most STDIN_CHUNK bytes, then (``eof``) EOF on v5."""
    view = memoryview(data)
    try:
        for offset in range(0, len(view), STDIN_CHUNK):
            # A command that exits without reading all its input makes the server close while
            # stdin is still arriving; its kernel then answers our next frame with a reset.
            # asyncio tears the transport down on that send error without reading what had
            # already arrived — the exit status. So let the loop read pending input first:
            # once the status is read, the reader stops this task.
            for _ in range(8):
                if not _input_pending(link):
                    break
                await anyio.lowlevel.checkpoint()
            await link.send(b"\x00" + view[offset : offset + STDIN_CHUNK])
        if eof and protocol == V5:
            await link.send(bytes((CLOSE, STDIN)))
    except ConnectionEnded:
        # The command ended or the link broke: the reader reports which.
        collector.stdin_cut = True


async def _send_loader_input(
    link: _Link, stdin: LoaderInput, protocol: str, collector: _Collector
) -> None:
    """Send a loader's stdin on a terminal: each part only once the loader asked for it.

    Each wait ends when the marker arrives, or when this task is cancelled because the exec
    ended first (the status frame, e.g. after the loader found no ``stty``) or timed out.
    """
    first, second = collector.ready
    await first.wait()
    await _send_stdin(link, stdin.payload, protocol, collector, eof=False)
    await second.wait()
    if stdin.rest is not None:
        await _send_stdin(link, stdin.rest, protocol, collector)
    else:
        # No stdin of the user's: as for `sh -c` without a stdin channel (the sandbox types
        # ^D then), the script's first read of the terminal ends at once. The terminal itself
        # stays, so `[ -t 0 ]` still holds.
        await _send_stdin(link, TERMINAL_EOF, protocol, collector, eof=False)


async def run_exec(
    api: KubeApi,
    spec: ExecSpec,
    *,
    on_output: OutputCallback | None = None,
    on_started: Callable[[], None] | None = None,
    retry: RetryPolicy | None = None,
    subprotocols: Sequence[str] = SUBPROTOCOLS,
    reach: Reach | None = None,
) -> ExecOutcome:
    """Run ``spec.command`` in one container and return how it ended.

    ``on_started()`` is called once the upgrade succeeded (the command is starting);
    ``on_output(channel, chunk)`` for every output chunk as it arrives, also beyond the
    capture limit. ``retry`` governs the handshake only (default: ``api.retry``);
    ``subprotocols`` is what to offer, in order of preference; ``reach``, when given, records
    how far the opening got (its ``step`` is ``done`` once the command started).

    Raises :class:`~podmagic.HandshakeError` when the upgrade is refused (404 for a
    missing pod, 403 for RBAC, ...) or, with ``http_status`` 0, when the server cannot be
    reached or its certificate is not trusted; and :class:`~podmagic.StreamLostError`
    (see :func:`partial_outcome`) when the connection ends before the exit status.
    """
    url = _exec_url(api, spec)
    target = None
    if WEBSOCKET_CLIENT != "websockets" and api.proxy is None:
        target = _direct_target(api.server)
    attempt = (
        _lean_attempt(api, url, subprotocols, target)
        if target is not None
        else _websockets_attempt(api, url, subprotocols)
    )
    link = await _connect(
        api, spec, retry or api.retry, reach if reach is not None else Reach(), attempt
    )
    _tune_tls_reads(link.transport)
    status_received = False
    try:
        protocol = link.subprotocol or ""
        if protocol not in (V5, V4):
            raise HandshakeError(
                http_status=101,
                server_message=f"the server agreed on no known exec protocol "
                f"({protocol or 'none'})",
                pod=spec.pod,
                namespace=spec.namespace,
                container=spec.container,
                hint="the API server must speak v5.channel.k8s.io or v4.channel.k8s.io",
            )
        if on_started is not None:
            on_started()
        if spec.tty:
            # The size goes first, so the command starts at the caller's terminal size.
            size = json.dumps({"Width": spec.width, "Height": spec.height})
            await link.send(bytes((RESIZE,)) + size.encode())
        stdin = spec.stdin
        # On a terminal the loader asks for its payload (see LoaderInput); elsewhere it
        # simply reads it, and everything is sent at once.
        handshake = spec.tty and isinstance(stdin, LoaderInput)
        collector = _Collector(spec.capture_limit, on_output, markers=2 if handshake else 0)
        if stdin is None:
            # Nothing to send: no second task, and no task group to pay for on every exec.
            ended = await link.read(collector)
        else:
            failure: Exception | None = None
            async with anyio.create_task_group() as group:
                # Concurrently with reading: a command that echoes its input (cat) fills the
                # output pipe long before a large stdin is fully sent.
                if handshake:
                    assert isinstance(stdin, LoaderInput)
                    group.start_soon(_send_loader_input, link, stdin, protocol, collector)
                else:
                    data = stdin.data if isinstance(stdin, LoaderInput) else stdin
                    group.start_soon(_send_stdin, link, data, protocol, collector)
                try:
                    ended = await link.read(collector)
                except Exception as exc:  # noqa: BLE001 - e.g. from on_output; re-raised below
                    # Raised inside the task group it would come out wrapped in an
                    # ExceptionGroup.
                    failure, ended = exc, None
                group.cancel_scope.cancel()
            if failure is not None:
                raise failure
        if ended is not None:  # no status: the outcome is unknown, never success
            detail = ended
            if collector.stdin_cut:
                detail += (
                    "; the connection broke while stdin was being sent: the command may "
                    "have exited without reading all of it"
                )
            error = StreamLostError(
                pod=spec.pod, namespace=spec.namespace, container=spec.container, detail=detail
            )
            # The output so far, for the caller to keep (StreamLostError declares no field).
            setattr(error, "partial", collector.outcome(protocol))  # noqa: B010
            raise error
        status_received = True
        return collector.outcome(protocol)
    finally:
        await link.close(server_closing=status_received)

"""The Kubernetes REST API: one pooled HTTP client per cluster, with retries.

:class:`KubeApi` reads what the engine needs (pods, namespaces, workloads) over a single
``aiohttp.ClientSession`` — one connection pool, so listing and resolving many targets reuses
TLS connections instead of paying a handshake per request. It also owns what the exec
transport (:mod:`podmagic._transport`) needs to open its WebSockets: the exec URL, the TLS
context and the proxy.

Failures become one-line :mod:`podmagic._errors` exceptions: an error status is an
:class:`~podmagic.ApiError` with the server's own message; an unreachable or untrusted
server is a :class:`~podmagic.ConfigError` naming the server URL and what to check.
Neither shows the transport's traceback chain (they are raised ``from None``); the low-level
exception stays available as ``__context__``.

Every request goes through one choke point, :meth:`KubeApi.request` — the REST reads and
the exec transport's WebSocket upgrade alike — so there is one policy: credentials fetched
(and refreshed) before each attempt; a 401 invalidates the token (an exec-plugin token may
have expired) and is retried once; transient trouble — connect errors, 429 (honouring
``Retry-After``), 500/502/503/504 — is retried with exponential backoff and jitter under a
:class:`RetryPolicy`; each step has its time limit (:class:`Reach`), and a timeout is never
retried.

asyncio only (aiohttp and websockets are asyncio libraries); run it under anyio's asyncio
backend or plain asyncio.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import errno
import ipaddress
import json
import math
import random
import socket
import ssl
import time
import urllib.request
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import aiohttp
import anyio
from yarl import URL

from . import __version__
from ._errors import ApiError, ConfigError, RequestTimeoutError
from ._kinds import WORKLOAD_KINDS, kind_named
from ._tls_resume import share_session

if TYPE_CHECKING:
    from ._credentials import ClusterCredentials

__all__ = [
    "CONNECT_TIMEOUT",
    "PAGE_SIZE",
    "READ_TIMEOUT",
    "REQUEST_TIMEOUT",
    "RETRY_STATUSES",
    "Answer",
    "Attempt",
    "Backoff",
    "KubeApi",
    "Reach",
    "RetryPolicy",
    "Unreachable",
    "describe_connect_error",
    "describe_timeout",
    "format_seconds",
    "is_certificate_error",
    "parse_retry_after",
]

#: Items per page when listing (what kubectl asks for).
PAGE_SIZE = 500

#: Seconds to reach the API server: the TCP connect and the TLS handshake (through a proxy:
#: its CONNECT too), retries of refused or reset connections included.
CONNECT_TIMEOUT = 10.0
#: Seconds to wait for the API server's answer once a request is sent (its response headers,
#: or an exec's upgrade), and then for each further piece of the answer.
READ_TIMEOUT = 15.0
#: Seconds one request may take from its first connect attempt to the last byte of its
#: answer, however steadily a slow server keeps sending (``READ_TIMEOUT`` is an idle limit).
REQUEST_TIMEOUT = 60.0


#: How each step reads after "the timeout of Ns passed before ...".
_BEFORE_STEP = {
    "tcp": "a TCP connection to {where} was made",
    "tls": "the TLS handshake with {where} finished",
    "answer": "{where} answered the {what}",
    "answer-total": "{where} answered the {what}",
    "body": "{where} finished answering the {what}",
    "body-total": "{where} finished answering the {what}",
}


def format_seconds(value: float) -> str:
    """``value`` as the user wrote it, as near as a number allows: the shortest text that
    reads back as the same float (``1.23456789``, ``0.0001``, ``2.5``), without a trailing
    ``.0`` (``2``). Unlike ``:g``, never rounds what was asked to six digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


#: Statuses that mean "try again later": throttling and a struggling server or proxy.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

USER_AGENT = f"podmagic/{__version__}"


# --------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a request that failed for a transient reason.

    ``attempts`` counts every try, the first one included. The wait before retry *n* is
    exponential (``base_delay * 2**(n-1)``, at most ``max_delay``) with jitter, so that many
    clients throttled at once do not come back in step; a server's ``Retry-After`` is honoured
    instead when it asks for longer (up to ``max_retry_after``). ``deadline`` is an absolute
    time on :func:`anyio.current_time`'s clock: no retry is started, and no wait runs, past it.
    """

    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 5.0
    deadline: float | None = None
    max_retry_after: float = 60.0

    def start(self) -> Backoff:
        """A fresh retry counter for one request."""
        return Backoff(self)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        # "Equal jitter": at least half the exponential step, so the backoff still grows.
        delay = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None and retry_after > 0:
            # A little extra on top of what the server asked for spreads a throttled herd.
            honoured = min(retry_after, self.max_retry_after)
            delay = max(delay, honoured * random.uniform(1.0, 1.1))
        return delay


class Backoff:
    """Counts the retries of one request and sleeps between them (see :class:`RetryPolicy`)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.retries = 0

    async def wait(
        self, retry_after: float | None = None, *, deadline: float | None = None
    ) -> bool:
        """Sleep before the next retry and return True, or return False at once when no retry
        is left: every attempt is used, or the wait would end past the deadline (the
        policy's, or ``deadline`` if that is sooner)."""
        if self.retries + 1 >= self.policy.attempts:
            return False
        delay = self.policy.delay(self.retries + 1, retry_after)
        limits = [t for t in (self.policy.deadline, deadline) if t is not None]
        if limits and anyio.current_time() + delay >= min(limits):
            return False
        self.retries += 1
        await anyio.sleep(delay)
        return True


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


# --------------------------------------------------------------------------------------------
# Connection failures in words
# --------------------------------------------------------------------------------------------


def _display_server(server: str) -> str:
    """The server URL without any user:password part (never shown to users)."""
    parts = urlsplit(server)
    if parts.username is not None or parts.password is not None:
        netloc = parts.hostname or ""
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    return server


def _root_cause(exc: BaseException) -> BaseException:
    """The OS or TLS error underneath a client library's wrapper."""
    for attribute in ("certificate_error", "os_error"):
        inner = getattr(exc, attribute, None)
        if isinstance(inner, BaseException):
            return inner
    return exc


def is_certificate_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed TLS certificate verification (not worth retrying)."""
    return isinstance(exc, (aiohttp.ClientConnectorCertificateError, ssl.SSLCertVerificationError))


def describe_connect_error(
    server: str, exc: BaseException, *, timeout: float | None = None
) -> tuple[str, str]:
    """``(message, hint)`` for a failure to reach the API server at all.

    Used for the REST client and the exec WebSockets alike, so both word a broken server
    address, a wrong CA or a dead cluster the same way.
    """
    where = _display_server(server)
    host = urlsplit(server).hostname or where
    cause = _root_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError) or is_certificate_error(exc):
        detail = getattr(cause, "verify_message", None) or getattr(cause, "reason", None)
        message = f"certificate verify failed for {where}"
        if detail:
            message += f" ({detail})"
        if detail and "hostname" in str(detail).lower():
            return message, ("check the server address, or tls-server-name in your kubeconfig")
        return message, "check certificate-authority in your kubeconfig"
    if isinstance(cause, ssl.SSLError):
        reason = getattr(cause, "reason", None) or type(cause).__name__
        return (
            f"TLS handshake with {where} failed ({reason})",
            "check that the server address in your kubeconfig is the API server's https URL",
        )
    if isinstance(cause, socket.gaierror) or isinstance(exc, aiohttp.ClientConnectorDNSError):
        return (
            f"cannot resolve the host {host} of {where}",
            "check the server address in your kubeconfig, and your network or VPN",
        )
    if isinstance(cause, (TimeoutError, asyncio.TimeoutError)) or isinstance(
        exc, (aiohttp.ServerTimeoutError, TimeoutError)
    ):
        within = f" within {format_seconds(timeout)}s" if timeout is not None else ""
        return (
            f"no answer from {where}{within}",
            "check that the cluster is reachable (network, VPN, firewall or proxy)",
        )
    text = str(cause).lower()
    if (
        isinstance(cause, ConnectionRefusedError)
        or getattr(cause, "errno", None) == errno.ECONNREFUSED
        or "refused" in text
        or "connect call failed" in text
    ):
        hint = (
            "check that the cluster is running and the server address in your kubeconfig "
            "(or pick another --context)"
        )
        return f"connection refused by {where}", hint
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return (
            f"{where} closed the connection without answering",
            "check that the server address points at the Kubernetes API server",
        )
    strerror = getattr(cause, "strerror", None) or type(cause).__name__
    return (
        f"cannot connect to {where} ({strerror})",
        "check the server address in your kubeconfig and that the cluster is reachable",
    )


# --------------------------------------------------------------------------------------------
# How far a request got, and its time limits
# --------------------------------------------------------------------------------------------


class Reach:
    """How far one attempt to talk to the API server got, and the time it may take.

    Steps, in order: ``credentials`` (obtaining the token, e.g. from an exec plugin),
    ``connect`` (no connection yet: TCP connect, then TLS handshake), ``answer`` (the request
    is sent, nothing has come back), ``body`` (the answer has begun), ``done``. Reaching the
    server — every connect step — may take ``connect_timeout`` seconds; waiting for the
    answer, and then for each further piece of it, ``read_timeout`` (an idle limit, restarted
    by every piece that arrives: :meth:`progress`). ``total_timeout`` bounds the attempt as a
    whole, from :meth:`bind` to the last byte, however steadily the server sends. A cancel
    scope given to
    :meth:`bind` gets its deadline moved as the steps advance, so one scope bounds every step
    with its own limit; on a timeout, :meth:`stalled_step` says which step it was, in words
    that match what happened (``describe_timeout``).
    """

    ORDER = ("credentials", "connect", "answer", "body", "done")

    def __init__(
        self,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        total_timeout: float | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self.step = "credentials"
        #: When the attempt as a whole must end (``total_timeout`` after :meth:`bind`).
        self._total_by = math.inf
        #: Whether the scope's deadline is ``_total_by`` rather than a step's own limit.
        self._total_bound = False
        #: Whether the TCP connection stands (for a timeout in ``connect``: TCP or TLS?).
        self.tcp = False
        #: The sockets this attempt opened (see :meth:`tcp_connected`).
        self.sockets: list[socket.socket] = []
        #: Why the previous attempt failed, while waiting to retry.
        self.last_failure: str | None = None
        self._scope: anyio.CancelScope | None = None

    def bind(self, scope: anyio.CancelScope | None, connect_deadline: float | None = None) -> None:
        """Start a new attempt under ``scope``: it must reach the server by
        ``connect_deadline`` (default: ``connect_timeout`` from now)."""
        self._scope = scope
        self.step = "connect"
        self.tcp = False
        self.sockets = []
        now = anyio.current_time()
        self._total_by = now + self.total_timeout if self.total_timeout is not None else math.inf
        self._limit(
            connect_deadline if connect_deadline is not None else now + self.connect_timeout
        )

    def _limit(self, step_deadline: float) -> None:
        """Move the scope's deadline to ``step_deadline``, or to the end of the whole
        attempt if that comes first (remembered, to word a timeout right)."""
        self._total_bound = self._total_by < step_deadline
        if self._scope is not None:
            self._scope.deadline = min(step_deadline, self._total_by)

    def progress(self) -> None:
        """A piece of the answer arrived: the idle limit starts again."""
        if self.step == "body":
            self._limit(anyio.current_time() + self.read_timeout)

    def advance(self, step: str) -> None:
        """Note that ``step`` was reached (never moves back within an attempt)."""
        if self.ORDER.index(step) <= self.ORDER.index(self.step):
            return
        self.step = step
        if step in ("answer", "body"):
            self._limit(anyio.current_time() + self.read_timeout)
        elif step == "done" and self._scope is not None:
            self._total_bound = False
            self._scope.deadline = math.inf

    def tcp_connected(self) -> bool:
        """Whether the TCP connection of this attempt stands (or stood until the timeout)."""
        if self.tcp:
            return True
        for sock in self.sockets:
            # The socket is still open when the timeout is handled: asyncio closes a
            # cancelled connection's socket on a later turn of the loop.
            try:
                if sock.fileno() != -1:
                    sock.getpeername()
                    return True
            except OSError:
                continue
        return False

    def cut(self) -> None:
        """Shut this attempt's sockets down after a timeout: the connection then closes at
        once, rather than waiting up to half a minute for the TLS goodbye of a server that
        does not answer."""
        for sock in self.sockets:
            try:
                if sock.fileno() != -1:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue

    def stalled_step(self) -> str:
        """The step a timeout cut: ``credentials``, ``tcp``, ``tls``, ``answer``, ``body``,
        or — when the limit for the whole attempt ran out first — ``answer-total`` (no
        answer yet) or ``body-total`` (the answer was still arriving)."""
        if self.step == "connect":
            return "tls" if self.tcp_connected() else "tcp"
        if self._total_bound and self.step in ("answer", "body"):
            return f"{self.step}-total"
        return self.step

    def limit(self, step: str) -> float:
        """The seconds ``step`` (as :meth:`stalled_step` names it) was allowed."""
        if step.endswith("-total") and self.total_timeout is not None:
            return self.total_timeout
        return self.read_timeout if step in ("answer", "body") else self.connect_timeout


T = TypeVar("T")


@dataclass(frozen=True)
class Answer(Generic[T]):
    """What the API server answered one attempt of a request (see :meth:`KubeApi.request`).

    ``status`` is the HTTP status, ``body`` the answer's body (``None`` when it was not
    read), ``retry_after`` the seconds a ``Retry-After`` header asked for, and ``value``
    what a successful attempt opened (the exec's WebSocket), if anything.
    """

    status: int
    body: bytes | None = None
    retry_after: float | None = None
    value: T | None = None


class Unreachable(Exception):
    """Raised by an attempt of :meth:`KubeApi.request` that got no answer from the server
    (refused, reset, dropped, or something else than the API server spoke).

    ``cause`` is the low-level error; ``message`` and ``hint`` word it when the attempt
    knows better than :func:`describe_connect_error`.
    """

    def __init__(
        self, cause: BaseException, message: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message or type(cause).__name__)
        self.cause = cause
        self.message = message
        self.hint = hint


#: One try of a request: ``attempt(headers, reach)`` sends it with the auth ``headers``,
#: tells ``reach`` how far it got, and returns the :class:`Answer` (or raises
#: :class:`Unreachable`).
Attempt = Callable[[Mapping[str, str], "Reach"], Awaitable[Answer[T]]]


def describe_timeout(
    server: str,
    step: str,
    seconds: float | None,
    *,
    what: str = "request",
    proxy: bool = False,
    https: bool = True,
) -> tuple[str, str]:
    """``(message, hint)`` for a step of a request to ``server`` that did not finish in time.

    ``step`` is :meth:`Reach.stalled_step`'s; ``seconds`` the limit that ran out (``None``:
    leave the time out of the words); ``what`` names the request ("request", "exec upgrade").
    """
    where = _display_server(server)
    within = f" within {format_seconds(seconds)}s" if seconds is not None else ""
    for_ = f" for {format_seconds(seconds)}s" if seconds is not None else ""
    hint = "check that the cluster is reachable (network, VPN, firewall or proxy)"
    if step in ("tcp", "tls", "connect") and proxy:
        message = f"no connection to {where} through the proxy{within}"
        hint = (
            "check the proxy (proxy-url in the kubeconfig, or HTTPS_PROXY) and that it can "
            "reach the cluster"
        )
    elif step == "tcp" or (step == "tls" and not https):
        message = f"no TCP connection to {where}{within}"
    elif step in ("tls", "connect"):
        message = (
            f"{where} accepted the TCP connection but the TLS handshake did not finish{within}"
        )
        hint = (
            "check that the server address is the API server's https URL, and for a "
            "firewall or proxy that holds connections"
        )
    elif step == "answer":
        message = f"{where} accepted the {what} but sent no answer{within}"
        hint = (
            "the API server (or a proxy in front of it) is stuck or overloaded; check the "
            "cluster's health, and that the address is the API server's"
        )
    elif step == "body":
        message = f"{where} began answering the {what}, then sent nothing more{for_}"
        hint = (
            "the API server (or a proxy in front of it) stalled; try again, and check the "
            "cluster's health"
        )
    elif step == "answer-total":
        message = (
            f"{where} accepted the {what} but sent no answer{within} (the limit for "
            "the whole request)"
        )
        hint = (
            "the API server (or a proxy in front of it) is stuck or overloaded; check the "
            "cluster's health, or allow more time"
        )
    elif step == "body-total":
        message = (
            f"{where} began answering the {what} but did not finish its answer{within} "
            "(the limit for the whole request)"
        )
        hint = (
            "the answer arrives too slowly (a slow link, or an overloaded API server or "
            "proxy); allow more time, or ask for less (a narrower selector)"
        )
    elif step == "credentials":
        message = f"the credentials for {where} were not ready{within}"
        hint = "check the kubeconfig user's exec plugin or token source"
    else:
        message = f"no answer from {where}{within}"
    return message, hint


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


def _environment_proxy(server: str) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``/``NO_PROXY``...) names for ``server``,
    which is what kubectl uses when the kubeconfig sets no ``proxy-url``. Like Go's
    ``http.ProxyFromEnvironment``, loopback addresses are never proxied."""
    parts = urlsplit(server)
    host = parts.hostname
    if not host or host == "localhost" or _is_loopback(host):
        return None
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy:
        return None
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if urllib.request.proxy_bypass(netloc):
        return None
    return proxy


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _segment(value: str) -> str:
    """One path segment, percent-encoded (a name never adds a path level)."""
    return quote(value, safe="")


#: The :class:`Reach` of the request being made in this context (for the socket factory).
_REACH: contextvars.ContextVar[Reach | None] = contextvars.ContextVar(
    "podmagic_reach", default=None
)


def _socket_factory(addr_info: Any) -> socket.socket:
    """A socket for aiohttp's connector, remembered by the request's :class:`Reach`: on a
    connect timeout, whether it is connected tells a stalled TLS handshake from a TCP one."""
    family, type_, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family=family, type=type_, proto=proto)
    reach = _REACH.get()
    if reach is not None:
        reach.sockets.append(sock)
    return sock


async def _on_connection_ready(session: aiohttp.ClientSession, context: Any, params: Any) -> None:
    reach = getattr(context, "trace_request_ctx", None)
    if isinstance(reach, Reach):
        reach.tcp = True
        reach.advance("answer")


_TRACE = aiohttp.TraceConfig()
_TRACE.on_connection_create_end.append(_on_connection_ready)
_TRACE.on_connection_reuseconn.append(_on_connection_ready)
_TRACE.freeze()


class KubeApi:
    """The Kubernetes API of one cluster: REST reads and what exec connections need.

    Build it from a :class:`~podmagic._credentials.ClusterCredentials`; use it as an async
    context manager or call :meth:`aclose`. The HTTP session is created on first use inside
    the running event loop and stays bound to that loop.

    Args:
        credentials: where the server is and how to authenticate.
        retry: the default :class:`RetryPolicy` (methods take a per-call one too).
        limit: the most simultaneous HTTP connections in the pool.
        connect_timeout: seconds to reach the server — TCP connect and TLS handshake —
            retries of refused or reset connections included (default 10).
        read_timeout: seconds to wait for the answer once a request is sent, and then for
            each further piece of it (default 15): an idle limit, restarted by every piece.
        request_timeout: seconds one attempt at a request may take as a whole, from the
            first connect to the last byte (default 60; ``None``: no such limit).
        timeout: the caller's per-pod timeout: every limit above is at most this, and a
            request it cuts raises :class:`~podmagic.RequestTimeoutError` that says so.
        credentials_timeout: seconds to wait for the credentials of a request (an exec
            plugin that is still running is stopped then); ``None`` leaves it to the
            plugin's own ``plugin_timeout``.

    A timeout is never retried: the server had its chance, and retrying would multiply the
    wait. The error says which step stalled and for how long (see :class:`Reach`).
    """

    def __init__(
        self,
        credentials: ClusterCredentials,
        *,
        retry: RetryPolicy | None = None,
        limit: int = 64,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        request_timeout: float | None = REQUEST_TIMEOUT,
        credentials_timeout: float | None = None,
        timeout: float | None = None,
    ) -> None:
        self.credentials = credentials
        self.retry = retry if retry is not None else RetryPolicy()
        self.limit = limit
        #: The caller's per-pod timeout, which bounds every request as a whole.
        self.timeout = timeout if timeout is not None and timeout > 0 else None
        if self.timeout is not None:
            connect_timeout = min(connect_timeout, self.timeout)
            read_timeout = min(read_timeout, self.timeout)
            request_timeout = (
                self.timeout if request_timeout is None else min(request_timeout, self.timeout)
            )
            credentials_timeout = (
                self.timeout
                if credentials_timeout is None
                else min(credentials_timeout, self.timeout)
            )
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.request_timeout = request_timeout
        self.credentials_timeout = credentials_timeout
        self.server = credentials.server.rstrip("/")
        self._https = urlsplit(self.server).scheme == "https"
        #: The HTTP proxy to reach the server through (kubeconfig ``proxy-url``, else the
        #: environment's), or None for a direct connection. May embed credentials.
        self.proxy: str | None = credentials.proxy_url or _environment_proxy(self.server)
        #: The name to present (SNI) and verify the server's certificate for, when it is not
        #: the URL's host: kubeconfig ``tls-server-name``, as kubectl uses it.
        self.server_hostname: str | None = credentials.tls_server_name if self._https else None
        self.user_agent = USER_AGENT
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._ws_ssl: ssl.SSLContext | None = None
        #: The client whose HTTP session this one borrows (see :meth:`sharing`).
        self._pool: KubeApi | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._session else "idle"
        return f"<KubeApi {_display_server(self.server)} {state}>"

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> KubeApi:  # noqa: PYI034 - Self needs Python 3.11
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def sharing(self, *, timeout: float | None = None) -> KubeApi:
        """A client on this one's connection pool with its own per-pod ``timeout``.

        It borrows this client's HTTP session (made on first use, per event loop) and its
        exec TLS context, so that successive runs reuse connections and TLS sessions; closing
        it leaves them open. Its limits are at most this client's (``timeout`` only lowers
        them), which the session's own socket limits leave room for.
        """
        view = KubeApi(self.credentials, retry=self.retry, limit=self.limit, timeout=timeout)
        view._pool = self
        return view

    @property
    def usable(self) -> bool:
        """Whether requests can still be made: not closed, and its session (if made yet)
        neither closed nor bound to an event loop that has closed."""
        if self._pool is not None:
            return not self._closed and self._pool.usable
        if self._closed or self._session is None:
            return not self._closed
        return not self._session.closed and not (self._loop is not None and self._loop.is_closed())

    async def aclose(self) -> None:
        """Close the connection pool (a client made by :meth:`sharing` leaves its lender's
        open). The client cannot be used afterwards."""
        self._closed = True
        if self._pool is not None:
            return
        session, self._session = self._session, None
        if session is not None:
            # Shielded: an interrupted close would leave sockets for the garbage collector.
            with anyio.CancelScope(shield=True):
                await session.close()

    def discard(self) -> None:
        """Let go of a session whose event loop has closed without closing it first (nothing
        can run there any more): it is marked closed, so that it is not reported as leaked;
        its connection went with the loop. The client cannot be used afterwards."""
        self._closed = True
        session, self._session = self._session, None
        if session is None or self._loop is None or not self._loop.is_closed():
            return
        # On a closed loop, aiohttp's close has nothing to wait for: it finishes in one step.
        closing = session.close()
        try:
            closing.send(None)
        except StopIteration:
            return
        closing.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this KubeApi is closed")
        if self._pool is not None:
            return self._pool._get_session()
        loop = asyncio.get_running_loop()
        if self._session is None:
            proxy = self.proxy
            if proxy and urlsplit(proxy).scheme not in ("http", "https"):
                raise ConfigError(
                    f"the proxy for {_display_server(self.server)} is a "
                    f"{urlsplit(proxy).scheme}:// proxy, which is not supported",
                    hint="use an http:// proxy (proxy-url in the kubeconfig or HTTPS_PROXY)",
                )
            connector = aiohttp.TCPConnector(
                ssl=self.credentials.ssl_context(), limit=self.limit, socket_factory=_socket_factory
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.connect_timeout, sock_read=self.read_timeout
                ),
                headers={"Accept": "application/json", "User-Agent": self.user_agent},
                trace_configs=[_TRACE],
            )
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "this KubeApi belongs to another event loop; create one KubeApi per loop"
            )
        return self._session

    # -- requests --------------------------------------------------------------------------

    def url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """The full URL of an API path (``/api/v1/...``) with an encoded query."""
        url = self.server + path
        if params:
            url += "?" + urlencode(list(params.items()), quote_via=quote, safe="")
        return url

    async def get_json(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        what: str,
        retry: RetryPolicy | None = None,
    ) -> dict[str, Any]:
        """``GET`` an API path and return the JSON object it answers.

        ``what`` names the request in error messages ("list pods in namespace web").
        Raises :class:`~podmagic.ApiError` for an error status (after retries, for the
        transient ones), :class:`~podmagic.ConfigError` when the server cannot be
        reached or its certificate is not trusted, and
        :class:`~podmagic.RequestTimeoutError` when the caller's ``timeout`` cut it.
        """
        session = self._get_session()
        url = URL(self.url(path, params), encoded=True)

        async def attempt(headers: Mapping[str, str], reach: Reach) -> Answer[None]:
            try:
                # No redirects: they could carry the Authorization header to another host,
                # and the API server does not redirect reads.
                async with session.get(
                    url,
                    headers=headers,
                    proxy=self.proxy,
                    allow_redirects=False,
                    server_hostname=self.server_hostname,
                    trace_request_ctx=reach,
                ) as response:
                    reach.advance("body")
                    # Piece by piece, so that each one restarts the idle limit.
                    pieces: list[bytes] = []
                    async for piece in response.content.iter_any():
                        pieces.append(piece)
                        reach.progress()
                    return Answer(
                        response.status,
                        b"".join(pieces),
                        parse_retry_after(response.headers.get("Retry-After")),
                    )
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                if isinstance(exc, TimeoutError):  # aiohttp's own idle limits
                    raise
                # A GET is safe to repeat, so a dropped connection is retried too.
                raise Unreachable(exc) from exc

        answer = await self.request(what, attempt, retry=retry)
        if answer.status < 300:
            return _json_object(answer.body or b"", answer.status, what)
        raise ApiError.from_status(answer.status, answer.body, what=what) from None

    async def request(
        self,
        what: str,
        attempt: Attempt[T],
        *,
        retry: RetryPolicy | None = None,
        reach: Reach | None = None,
        noun: str = "request",
        fail: Callable[[str, str], Exception] | None = None,
    ) -> Answer[T]:
        """Make one request to the API server under podmagic's whole request policy.

        Every request goes through here — REST reads and the exec WebSocket upgrade alike —
        so both get the same policy:

        * credentials are fetched (refreshed when expired) before each attempt, within
          ``credentials_timeout``;
        * a 401 invalidates the token (an exec-plugin or file token may have expired since it
          was read) and is retried once with fresh credentials;
        * 429 (honouring ``Retry-After``) and 500/502/503/504 are retried under ``retry``
          (default :attr:`retry`), with exponential backoff and jitter;
        * a connection that cannot be made (refused, reset, dropped before the answer) is
          retried within one ``connect_timeout`` budget, which starts again once the server
          has answered; an untrusted certificate is not retried;
        * every step has its limit (:class:`Reach`: connect, answer, idle, whole request),
          and a timeout is never retried.

        ``attempt(headers, reach)`` makes one try with the given auth headers, reporting its
        progress to ``reach``; it returns the server's :class:`Answer` or raises
        :class:`Unreachable` when no answer came. The last answer is returned, whatever its
        status (the caller turns an error status into its own error). A timeout or an
        unreachable server raises ``fail(message, hint)`` — by default a
        :class:`~podmagic.ConfigError` headed by ``what``, or a
        :class:`~podmagic.RequestTimeoutError` when the caller's own ``timeout`` cut it.
        ``noun`` names the request in timeout messages ("request", "exec upgrade");
        ``reach`` (default: a new one with this client's limits) records how far it got.
        """
        backoff = (retry or self.retry).start()
        if reach is None:
            reach = Reach(self.connect_timeout, self.read_timeout, self.request_timeout)
        reauthenticated = False
        # Reaching the server has one budget, however many refused or reset connections are
        # retried; it starts again once the server has answered (a 429 or a 503).
        reach_by: float | None = None
        while True:
            reach.step = "credentials"
            headers = await self._auth_headers(what)
            if reach_by is None:
                reach_by = anyio.current_time() + reach.connect_timeout
            failure: BaseException | None = None
            unreachable: Unreachable | None = None
            token = _REACH.set(reach)
            try:
                with anyio.CancelScope() as scope:
                    reach.bind(scope, reach_by)
                    try:
                        answer = await attempt(headers, reach)
                        reach.advance("done")
                    except Unreachable as exc:
                        unreachable, failure = exc, exc.cause
                    except (TimeoutError, asyncio.TimeoutError) as exc:
                        failure = exc
            finally:
                _REACH.reset(token)
            if scope.cancelled_caught or isinstance(failure, (TimeoutError, asyncio.TimeoutError)):
                raise self._timed_out(what, reach, noun, fail) from None
            if unreachable is not None:
                message, hint = unreachable.message, unreachable.hint
                if message is None or hint is None:
                    message, hint = describe_connect_error(self.server, unreachable.cause)
                reach.last_failure = message
                # An untrusted certificate will not fix itself.
                if not is_certificate_error(unreachable.cause) and await backoff.wait(
                    deadline=reach_by
                ):
                    continue
                if fail is not None:
                    raise fail(message, hint) from None
                raise ConfigError(f"{what}: {message}", hint=hint) from None
            reach_by = None
            if answer.status == 401 and not reauthenticated:
                reauthenticated = True
                self.credentials.invalidate_token(headers)
                continue
            if answer.status in RETRY_STATUSES and await backoff.wait(answer.retry_after):
                continue
            return answer

    def _timed_out(
        self,
        what: str,
        reach: Reach,
        noun: str,
        fail: Callable[[str, str], Exception] | None,
    ) -> Exception:
        """The error for an attempt that ran out of time, in words naming the step."""
        step = reach.stalled_step()
        reach.cut()
        limit = reach.limit(step)
        own = self.timeout is not None and limit >= self.timeout
        if fail is None and own and step in _BEFORE_STEP:
            assert self.timeout is not None
            # The caller's own timeout ran out, not a default limit: say so.
            if step == "tls" and not self._https:
                step = "tcp"
            before = _BEFORE_STEP[step].format(where=_display_server(self.server), what=noun)
            return RequestTimeoutError(
                f"{what}: the timeout of {format_seconds(self.timeout)}s passed before {before}",
                timeout=self.timeout,
                hint="allow more time with --timeout (timeout=...), or check the cluster's health",
            )
        message, hint = describe_timeout(
            self.server, step, limit, what=noun, proxy=bool(self.proxy), https=self._https
        )
        if fail is not None:
            return fail(message, hint)
        return ConfigError(f"{what}: {message}", hint=hint)

    async def _auth_headers(self, what: str) -> dict[str, str]:
        """The credentials for a request, within ``credentials_timeout`` when one is set."""
        limit = self.credentials_timeout
        if limit is None:
            return await self.credentials.auth_headers()
        with anyio.move_on_after(limit):
            return await self.credentials.auth_headers()
        # Cancelled: a plugin still running was stopped (see ClusterCredentials.auth_headers).
        source = self.credentials.credential_source()
        hint = (
            "run it by hand to see what it waits for (a login, the network); allow more "
            "time with --timeout (timeout=...)"
        )
        message = (
            f"{what}: the timeout of {format_seconds(limit)}s passed while waiting for "
            f"the {source}, which was stopped"
        )
        if self.timeout is not None and limit >= self.timeout:
            raise RequestTimeoutError(message, timeout=self.timeout, hint=hint)
        raise ConfigError(message, hint=hint)

    async def _get_or_none(self, path: str, *, what: str) -> dict[str, Any] | None:
        try:
            return await self.get_json(path, what=what)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    async def _list(
        self, path: str, params: Mapping[str, str], *, what: str
    ) -> list[dict[str, Any]]:
        query = {key: value for key, value in params.items() if value}
        query["limit"] = str(PAGE_SIZE)
        items: list[dict[str, Any]] = []
        while True:
            page = await self.get_json(path, query, what=what)
            items.extend(page.get("items") or ())
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            query["continue"] = str(token)

    # -- reads -----------------------------------------------------------------------------

    async def list_pods(
        self,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[dict[str, Any]]:
        """Every pod matching the selectors, in ``namespace`` (``None``: all namespaces).

        Pages of :data:`PAGE_SIZE` are fetched one after another and joined.
        """
        if namespace is None:
            path, where = "/api/v1/pods", "in all namespaces"
        else:
            path, where = (
                f"/api/v1/namespaces/{_segment(namespace)}/pods",
                f"in namespace {namespace}",
            )
        return await self._list(
            path,
            {"labelSelector": label_selector, "fieldSelector": field_selector},
            what=f"list pods {where}",
        )

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The pod, or ``None`` if there is no such pod."""
        return await self._get_or_none(
            f"/api/v1/namespaces/{_segment(namespace)}/pods/{_segment(name)}",
            what=f"get pod {namespace}/{name}",
        )

    async def get_namespace(self, name: str) -> dict[str, Any] | None:
        """The namespace, or ``None`` if there is no such namespace."""
        return await self._get_or_none(
            f"/api/v1/namespaces/{_segment(name)}", what=f"get namespace {name}"
        )

    async def list_namespaces(self) -> list[dict[str, Any]]:
        """Every namespace."""
        return await self._list("/api/v1/namespaces", {}, what="list namespaces")

    async def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A Deployment, StatefulSet, DaemonSet, ReplicaSet or Job, or ``None`` if missing.

        ``kind`` is matched case-insensitively in any spelling kubectl accepts (``deploy``,
        ``sts``, ``statefulsets.apps`` ...); any other kind raises ``ValueError``.
        """
        found = kind_named(kind)
        if found is None or found.name not in WORKLOAD_KINDS:
            raise ValueError(
                f"unsupported workload kind {kind!r} (expected one of {', '.join(WORKLOAD_KINDS)})"
            )
        return await self._get_or_none(
            f"{found.path(_segment(namespace))}/{_segment(name)}",
            what=f"get {found.name.lower()} {namespace}/{name}",
        )

    # -- exec ------------------------------------------------------------------------------

    def exec_url(
        self,
        namespace: str,
        pod: str,
        *,
        container: str,
        command: Sequence[str],
        stdin: bool,
        stdout: bool,
        stderr: bool,
        tty: bool,
    ) -> str:
        """The ``ws(s)://`` URL of an exec, with its query encoded the way kubectl does it.

        One ``command=`` per argv element, ``container`` always, flags only when true, and
        with ``tty`` no ``stderr`` (a terminal has one output stream). Keys are sorted like Go's
        ``url.Values.Encode``. The URL lands in the API server's audit log: callers must not
        put secrets in ``command``.
        """
        if isinstance(command, str):
            raise TypeError("command must be a sequence of argv strings, not one string")
        if not command:
            raise ValueError("an exec needs at least one command argument")
        if tty:
            stderr = False
        if not (stdin or stdout or stderr):
            raise ValueError("an exec needs at least one of stdin, stdout, stderr")
        query: list[tuple[str, str]] = [("command", arg) for arg in command]
        query.append(("container", container))
        for flag, value in (("stderr", stderr), ("stdin", stdin), ("stdout", stdout), ("tty", tty)):
            if value:
                query.append((flag, "true"))
        parts = urlsplit(self.server)
        scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
        path = (
            f"{parts.path.rstrip('/')}/api/v1/namespaces/{_segment(namespace)}"
            f"/pods/{_segment(pod)}/exec"
        )
        return urlunsplit(
            (scheme, parts.netloc, path, urlencode(query, quote_via=quote, safe=""), "")
        )

    def websocket_ssl(self) -> ssl.SSLContext | None:
        """The ``ssl`` argument for an exec WebSocket: ``None`` for a plain-http server, else
        the credentials' context — or, with ``insecure-skip-tls-verify`` (where the credentials
        say ``False``), a context that does not verify.

        On asyncio's own event loops the context comes wrapped so that each connection resumes
        the TLS session of an earlier one (see :class:`_ResumingContext`)."""
        if not self._https:
            return None
        if self._pool is not None:
            return self._pool.websocket_ssl()
        context = self.credentials.ssl_context()
        if not isinstance(context, ssl.SSLContext):
            if self._ws_ssl is None:
                unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                unverified.check_hostname = False
                unverified.verify_mode = ssl.CERT_NONE
                self._ws_ssl = unverified
            context = self._ws_ssl
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return context
        if not isinstance(loop, asyncio.BaseEventLoop):
            return context  # another loop implementation (uvloop) may insist on a real SSLContext
        return _resuming(context)


#: Per SSL context, the wrapper that remembers its sessions: shared by every KubeApi (and so
#: every run) that uses the same credentials.
_RESUMING: weakref.WeakKeyDictionary[ssl.SSLContext, _ResumingContext] = weakref.WeakKeyDictionary()


def _resuming(context: ssl.SSLContext) -> ssl.SSLContext:
    wrapper = _RESUMING.get(context)
    if wrapper is None:
        wrapper = _RESUMING[context] = _ResumingContext(context)
    return wrapper  # type: ignore[return-value]  # stands in for the context it wraps


class _ResumingContext:
    """An SSL context stand-in whose client connections resume an earlier TLS session.

    Every exec is a connection of its own (the WebSocket upgrade takes the connection over),
    so a fan-out over 500 pods makes 500 TLS handshakes. Resuming a session the server issued
    to an earlier connection (a TLS 1.3 ticket) skips sending and verifying the certificate
    chain, which saves CPU on both ends. Sessions come only from connections this same
    context made — whose certificate it verified — and are offered only for the same server
    name; a server that does not resume (a restarted one, or one without tickets) simply
    completes a full handshake.

    A ticket arrives after the handshake, so a connection cannot be asked for its session as
    soon as it is made: the last few connections are kept (strongly: one exec at a time must
    resume too) until one of them yields a session, which then serves until it expires.
    Asking a connection for its session costs a copy of it, so each is asked once, and a
    server whose connections bring no tickets is left alone for a while.

    asyncio calls only ``wrap_bio``; every other attribute is the wrapped context's.
    """

    #: Connections kept per server name while no session is known.
    _RECENT = 8
    #: Connections without a ticket after which a server name is left alone, and for how long.
    _GIVE_UP_AFTER = 16
    _GIVE_UP_FOR = 600.0

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._sessions: dict[str | None, ssl.SSLSession] = {}
        self._recent: dict[str | None, deque[ssl.SSLObject]] = {}
        self._misses: dict[str | None, int] = {}
        self._resting_until: dict[str | None, float] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        if server_side or session is not None:
            return self._context.wrap_bio(incoming, outgoing, server_side, server_hostname, session)
        now = time.monotonic()
        if self._resting_until.get(server_hostname, 0.0) > now:
            return self._context.wrap_bio(incoming, outgoing, False, server_hostname)
        session = self._session_for(server_hostname, now)
        sslobj = self._context.wrap_bio(incoming, outgoing, False, server_hostname)
        if session is not None:
            # Offered as it is where that can be done safely (CPython's own setter copies
            # it, certificate and all, for every connection: see podmagic._tls_resume).
            shared = share_session(sslobj, session, self._context)
            if shared:
                return sslobj
            if shared is None:  # spent: this connection brings a new one (see below)
                self._sessions.pop(server_hostname, None)
            else:
                try:
                    sslobj.session = session
                    return sslobj
                except ValueError:  # a session this context cannot use after all
                    self._sessions.pop(server_hostname, None)
        recent = self._recent.get(server_hostname)
        if recent is None:
            recent = self._recent[server_hostname] = deque(maxlen=self._RECENT)
        recent.append(sslobj)
        return sslobj

    def _session_for(self, server_hostname: str | None, now: float) -> ssl.SSLSession | None:
        session = self._sessions.get(server_hostname)
        if session is not None:
            if _session_valid(session):
                return session
            del self._sessions[server_hostname]
        recent = self._recent.get(server_hostname)
        if not recent:
            return None
        for sslobj in list(reversed(recent)):  # the newest first
            try:
                if sslobj.version() is None:
                    continue  # still in its handshake: ask it later
                # The getter copies the session (i2d/d2i): each connection is asked once.
                candidate = sslobj.session
            except (AttributeError, ValueError, ssl.SSLError):
                candidate = None
            recent.remove(sslobj)
            if candidate is not None and _session_valid(candidate):
                self._sessions[server_hostname] = candidate
                self._misses.pop(server_hostname, None)
                recent.clear()
                return candidate
            misses = self._misses[server_hostname] = self._misses.get(server_hostname, 0) + 1
            if misses >= self._GIVE_UP_AFTER:
                self._misses.pop(server_hostname, None)
                self._resting_until[server_hostname] = now + self._GIVE_UP_FOR
                recent.clear()
                return None
        return None


def _session_valid(session: ssl.SSLSession) -> bool:
    """Whether ``session`` can be offered: it has a ticket that has not expired."""
    return session.has_ticket and time.time() < session.time + min(
        session.timeout, session.ticket_lifetime_hint or session.timeout
    )


def _json_object(body: bytes, status: int, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        # A proxy or a web server that is not the API server answered.
        raise ApiError(
            status,
            "the answer is not a JSON object",
            what=what,
            hint="check that the server address points at the Kubernetes API server",
        ) from None
    return data

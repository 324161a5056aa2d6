"""Bounded time, accurate words: servers that never answer, or stop half-way, and exec
credential plugins that never exit.

Each server is made here, in a thread, from a plain socket: one that accepts and never reads,
one that completes the TLS handshake and then says nothing, one that sends response headers
and stalls the body, one that completes the WebSocket upgrade slowly and then ignores
everything. Every test checks that the error's words name the step that stalled and the
limit as given, that the token in the kubeconfig never appears, and, by counting what the
server accepted, that a timeout is not retried. How long a failure takes is the benchmarks'
business: a test here only proves, through one generous bound (``NOT_HUNG``), that the limit
it set ended the wait rather than a default, the server's hold or the test's own timeout.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _waiting import assert_ended_before, wait_until

from podmagic import Cluster
from podmagic import _transport as transport_module
from podmagic._command import build_command
from podmagic._credentials import DEFAULT_PLUGIN_TIMEOUT, load_credentials
from podmagic._engine import ExecOptions, run_fanout
from podmagic._errors import ConfigError, HandshakeError, RequestTimeoutError, SelectionError
from podmagic._kubeapi import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    REQUEST_TIMEOUT,
    KubeApi,
    RetryPolicy,
    format_seconds,
)
from podmagic._magics import PodMagic
from podmagic._resolve import PodTarget, Selection
from podmagic._results import ExecStatus
from podmagic._transport import ExecSpec, run_exec
from podmagic.sandbox import Sandbox
from podmagic.sandbox._tls import ServingCertificates, generate_certificates

TOKEN = "sekrit-token-never-shown-0123456789"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# The one time bound a test here asserts (see _waiting.assert_ended_before): far above every
# limit the tests set (at most 2 s), yet below what a lost limit would fall back to (the
# 10 s connect and 15 s read defaults, the 30 s close wait, the 60 s plugin timeout) and
# the fake servers' 120 s hold, so a limit that is ignored still fails the test.
NOT_HUNG = 9.0

# A handler gets the accepted (and, with TLS, wrapped) connection and a stop event.
Handler = Callable[[socket.socket, threading.Event], None]


class StallServer:
    """A TCP server on 127.0.0.1 whose connections are handled by ``handler`` in threads.

    ``tls`` wraps each accepted connection (the handshake runs in the handler's thread).
    Every thread ends when the server stops.
    """

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.connections: list[socket.socket] = []
        self.accepted = 0
        self._accepting = threading.Thread(target=self._accept, name="stall-accept", daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            self.connections.append(conn)
            thread = threading.Thread(
                target=self._serve, args=(conn,), name="stall-conn", daemon=True
            )
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn.settimeout(10)
                conn = self.tls.wrap_socket(conn, server_side=True)
                self.connections.append(conn)
            self.handler(conn, self.stop)
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        self._accepting.join(5)
        for thread in self.threads:
            thread.join(5)
        for conn in self.connections:
            conn.close()
        self.listener.close()


def hold(conn: socket.socket, stop: threading.Event) -> None:
    """Keep the connection open, reading nothing, until the server stops."""
    stop.wait(120)


def read_request(conn: socket.socket, stop: threading.Event) -> bytes:
    """Read up to the end of the request headers."""
    conn.settimeout(0.1)
    data = b""
    while b"\r\n\r\n" not in data and not stop.is_set():
        try:
            chunk = conn.recv(65536)
        except (TimeoutError, ssl.SSLWantReadError):
            continue
        if not chunk:
            break
        data += chunk
    return data


def drain(conn: socket.socket, stop: threading.Event) -> None:
    """Read and ignore everything (a close frame included) until the server stops."""
    conn.settimeout(0.1)
    while not stop.is_set():
        try:
            if not conn.recv(65536):
                stop.wait(120)
                return
        except (TimeoutError, ssl.SSLWantReadError):
            continue


def silent_after_request(conn: socket.socket, stop: threading.Event) -> None:
    read_request(conn, stop)
    drain(conn, stop)


def headers_then_stall(conn: socket.socket, stop: threading.Event) -> None:
    read_request(conn, stop)
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"kind": '
    )
    drain(conn, stop)


POD_JSON = b'{"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "namespace": "ns"}}'


def drip(body: bytes, every: float) -> Handler:
    """Answer with headers at once, then ``body`` one byte every ``every`` seconds: a slow
    server that never goes quiet."""

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn, stop)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        for index in range(len(body)):
            if stop.wait(every):
                return
            conn.sendall(body[index : index + 1])
        drain(conn, stop)

    return handler


def slow_upgrade(delay: float) -> Handler:
    """Answer the WebSocket upgrade after ``delay`` seconds, then send nothing at all."""

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        request = read_request(conn, stop).decode("latin-1")
        key = next(
            line.split(":", 1)[1].strip()
            for line in request.split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        )
        if stop.wait(delay):
            return
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        conn.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n"
                "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n"
            ).encode()
        )
        drain(conn, stop)

    return handler


@pytest.fixture(scope="module")
def certificates() -> ServingCertificates:
    return generate_certificates()


@pytest.fixture
def serve(certificates: ServingCertificates) -> Iterator[Callable[..., StallServer]]:
    servers: list[StallServer] = []

    def start(handler: Handler, *, tls: bool = False) -> StallServer:
        server = StallServer(handler, certificates.server_ssl_context() if tls else None)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def kubeconfig_for(
    path: Path, server: str, certificates: ServingCertificates, user: dict[str, Any] | None = None
) -> Path:
    cluster: dict[str, Any] = {"server": server}
    if server.startswith("https"):
        cluster["certificate-authority-data"] = base64.b64encode(certificates.ca_pem).decode()
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "stall",
        "clusters": [{"name": "stall", "cluster": cluster}],
        "contexts": [
            {"name": "stall", "context": {"cluster": "stall", "user": "someone", "namespace": "ns"}}
        ],
        "users": [{"name": "someone", "user": user or {"token": TOKEN}}],
    }
    path.write_text(yaml.safe_dump(document))
    return path


def api_for(
    server: StallServer,
    tmp_path: Path,
    certificates: ServingCertificates,
    *,
    https: bool = False,
    **limits: float,
) -> KubeApi:
    scheme = "https" if https else "http"
    kubeconfig = kubeconfig_for(
        tmp_path / "kubeconfig", f"{scheme}://127.0.0.1:{server.port}", certificates
    )
    return KubeApi(
        load_credentials(kubeconfig=kubeconfig),
        retry=RetryPolicy(base_delay=0.01, max_delay=0.02),
        **limits,
    )


def one_pod() -> Selection:
    target = PodTarget(
        namespace="ns",
        pod="p",
        container="c",
        node=None,
        containers=("c",),
        pod_uid="uid",
        restarts=0,
    )
    return Selection(run=(target,), skipped=(), description="pod ns/p")


# -- REST requests ---------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_black_hole_request_fails_within_the_read_limit_saying_no_answer(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(hold)
    began = time.monotonic()
    async with api_for(server, tmp_path, certificates, read_timeout=1.0) as api:
        with pytest.raises(ConfigError) as caught:
            await api.get_pod("ns", "p")
    assert_ended_before(began, NOT_HUNG, "a request to a black hole with read_timeout=1")
    message = str(caught.value)
    assert "accepted the request but sent no answer within 1s" in message
    assert server.accepted == 1  # a timeout is not retried
    assert TOKEN not in message


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_stalled_tls_handshake_is_named_with_the_connect_limit(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(hold)  # accepts, never answers the ClientHello
    began = time.monotonic()
    async with api_for(server, tmp_path, certificates, https=True, connect_timeout=1.0) as api:
        with pytest.raises(ConfigError) as caught:
            await api.get_pod("ns", "p")
    assert_ended_before(began, NOT_HUNG, "a stalled TLS handshake with connect_timeout=1")
    message = str(caught.value)
    assert "accepted the TCP connection but the TLS handshake did not finish within 1s" in message
    assert server.accepted == 1  # a timeout is not retried
    assert TOKEN not in message


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_silence_after_the_tls_handshake_is_no_answer(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(silent_after_request, tls=True)
    began = time.monotonic()
    async with api_for(server, tmp_path, certificates, https=True, read_timeout=1.0) as api:
        with pytest.raises(ConfigError) as caught:
            await api.list_pods("ns")
    assert_ended_before(began, NOT_HUNG, "a request answered by silence with read_timeout=1")
    message = str(caught.value)
    assert message.startswith("list pods in namespace ns: https://127.0.0.1:")
    assert "accepted the request but sent no answer within 1s" in message
    assert server.accepted == 1  # a timeout is not retried
    assert TOKEN not in message


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_stalled_body_is_named(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(headers_then_stall)
    began = time.monotonic()
    async with api_for(server, tmp_path, certificates, read_timeout=1.0) as api:
        with pytest.raises(ConfigError) as caught:
            await api.get_pod("ns", "p")
    assert_ended_before(began, NOT_HUNG, "a stalled body with read_timeout=1")
    message = str(caught.value)
    assert "began answering the request, then sent nothing more for 1s" in message
    assert server.accepted == 1  # a timeout is not retried
    assert TOKEN not in message


@pytest.mark.timeout(90)
def test_default_limits_fail_a_black_hole_within_15_seconds(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    assert CONNECT_TIMEOUT <= 15 and READ_TIMEOUT <= 15
    server = serve(hold)
    kubeconfig = kubeconfig_for(tmp_path / "kc", f"http://127.0.0.1:{server.port}", certificates)
    began = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        Cluster(kubeconfig=kubeconfig).run("true", "p")
    # Proves the default read limit ended it, not the server's 120 s hold.
    assert_ended_before(began, READ_TIMEOUT + 10, "a black hole under the default limits")
    assert f"sent no answer within {READ_TIMEOUT:g}s" in str(caught.value)
    assert server.accepted == 1  # a timeout is not retried
    assert TOKEN not in str(caught.value)


@pytest.mark.timeout(60)
def test_per_pod_timeout_bounds_finding_the_pods(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(silent_after_request, tls=True)
    kubeconfig = kubeconfig_for(tmp_path / "kc", f"https://127.0.0.1:{server.port}", certificates)
    began = time.monotonic()
    with pytest.raises(RequestTimeoutError) as caught:
        Cluster(kubeconfig=kubeconfig).run("true", "p", timeout=2)
    assert_ended_before(began, NOT_HUNG, "finding the pods under a per-pod timeout of 2s")
    assert str(caught.value).startswith(
        f"get pod ns/p: the timeout of 2s passed before https://127.0.0.1:{server.port} "
        "answered the request;"
    )
    assert not isinstance(caught.value, ConfigError)
    assert TOKEN not in str(caught.value)


# -- exec handshakes and per-pod timeouts ---------------------------------------------------


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_exec_upgrade_without_answer_is_named(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(silent_after_request, tls=True)
    spec = ExecSpec(
        namespace="ns",
        pod="p",
        container="c",
        command=("true",),
        connect_timeout=1.0,
        read_timeout=1.0,
    )
    began = time.monotonic()
    async with api_for(server, tmp_path, certificates, https=True) as api:
        with pytest.raises(HandshakeError) as caught:
            await run_exec(api, spec)
    assert_ended_before(began, NOT_HUNG, "an unanswered exec upgrade with read_timeout=1")
    message = str(caught.value)
    assert "pod ns/p (container c)" in message
    assert "accepted the exec upgrade but sent no answer within 1s" in message
    assert server.accepted == 1  # a timeout is not retried
    assert TOKEN not in message


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_exec_tls_stall_is_named(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(hold)
    spec = ExecSpec(namespace="ns", pod="p", container="c", command=("true",), connect_timeout=1.0)
    async with api_for(server, tmp_path, certificates, https=True) as api:
        with pytest.raises(HandshakeError) as caught:
            await run_exec(api, spec)
    assert "TLS handshake did not finish within 1s" in str(caught.value)


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_per_pod_timeout_covers_a_slow_upgrade_and_a_server_that_ignores_the_close(
    serve: Callable[..., StallServer],
    tmp_path: Path,
    certificates: ServingCertificates,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A server that never answers the close would hold a polite client for CLOSE_TIMEOUT;
    # a timed-out exec must not wait for it (made long here so that waiting shows).
    monkeypatch.setattr(transport_module, "CLOSE_TIMEOUT", 30.0)
    server = serve(slow_upgrade(0.5), tls=True)
    command = build_command(script="sleep 100")
    began = time.monotonic()
    async with api_for(server, tmp_path, certificates, https=True) as api:
        results = await run_fanout(api, one_pod(), command, ExecOptions(timeout=2), context="stall")
    assert_ended_before(began, NOT_HUNG, "a timed-out exec whose close is never answered")
    [result] = results
    assert result.status is ExecStatus.TIMEOUT
    assert result.error == "no exit status within the 2s timeout; the command may still be running"


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_per_pod_timeout_before_the_upgrade_names_the_step(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(slow_upgrade(30), tls=True)
    began = time.monotonic()
    async with api_for(server, tmp_path, certificates, https=True) as api:
        results = await run_fanout(
            api, one_pod(), build_command(script="true"), ExecOptions(timeout=1.5), context="stall"
        )
    assert_ended_before(began, NOT_HUNG, "an exec upgrade answered after 30s, timeout 1.5s")
    [result] = results
    assert result.status is ExecStatus.TIMEOUT
    assert result.error is not None
    assert result.error.startswith("the exec did not start within the 1.5s timeout: https://")
    assert result.error.endswith("accepted the exec upgrade but sent no answer")
    assert server.accepted == 1  # a timeout is not retried


# -- hints and deadlines, against the sandbox ------------------------------------------------


@pytest.mark.timeout(60)
def test_plain_sleep_timeout_has_no_background_hint(sandbox: Sandbox) -> None:
    [result] = Cluster(kubeconfig=sandbox.kubeconfig, namespace="conf").run(
        "sleep 30", "solo", timeout=1
    )
    assert result.status is ExecStatus.TIMEOUT
    assert result.error == "no exit status within the 1s timeout; the command may still be running"
    assert "background" not in str(result)


@pytest.mark.timeout(60)
def test_background_job_holding_stdout_gets_the_hint(sandbox: Sandbox) -> None:
    [result] = Cluster(kubeconfig=sandbox.kubeconfig, namespace="conf").run(
        "sleep 30 & echo started", "solo", timeout=2
    )
    assert result.status is ExecStatus.TIMEOUT
    assert result.stdout == b"started\n"
    assert result.error is not None
    assert "a background process it started with & keeps stdout/stderr open" in result.error
    assert "cmd >/dev/null 2>&1 &" in result.error


@pytest.mark.timeout(60)
def test_deadline_message_shows_the_deadline_as_asked(sandbox: Sandbox) -> None:
    [result] = Cluster(kubeconfig=sandbox.kubeconfig, namespace="conf").run(
        "sleep 30", "solo", deadline=2
    )
    assert result.status is ExecStatus.TIMEOUT
    assert result.error == "overall deadline of 2s reached"


@pytest.mark.timeout(60)
def test_deadline_counted_from_an_earlier_listing_still_shows_the_deadline_as_asked(
    sandbox: Sandbox,
) -> None:
    cluster = Cluster(kubeconfig=sandbox.kubeconfig, namespace="conf")
    started = time.monotonic()
    selection = cluster.select("solo")
    [result] = cluster.run("sleep 30", selection=selection, deadline=2, started_at=started)
    assert result.error == "overall deadline of 2s reached"
    assert_ended_before(started, NOT_HUNG, "a `sleep 30` under a deadline of 2s")


# -- exec credential plugins -----------------------------------------------------------------


def sleepy_plugin(tmp_path: Path) -> tuple[Path, Path]:
    """A plugin that starts a child which never exits (it holds the plugin's stdout too)
    and records both process ids."""
    pids = tmp_path / "pids"
    script = tmp_path / "sleepy-login"
    script.write_text(f"#!/bin/sh\necho $$ > {pids}\nsleep 1000 &\necho $! >> {pids}\nwait\n")
    script.chmod(0o755)
    return script, pids


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):  # gone while read
        return False


@pytest.mark.timeout(60)
def test_exec_plugin_that_never_exits_is_stopped_and_named(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(hold)
    script, pids = sleepy_plugin(tmp_path)
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(script),
            "args": ["--secret", TOKEN],
            "env": [{"name": "SECRET", "value": TOKEN}],
            "interactiveMode": "Never",
        }
    }
    kubeconfig = kubeconfig_for(
        tmp_path / "kc", f"http://127.0.0.1:{server.port}", certificates, user
    )
    began = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        Cluster(kubeconfig=kubeconfig, plugin_timeout=1).run("true", "p")
    assert_ended_before(began, NOT_HUNG, "a plugin that never exits, plugin_timeout=1")
    message = str(caught.value)
    assert (
        'exec credential plugin "sleepy-login" of user "someone" did not finish within 1s'
        in message
    )
    assert "plugin_timeout" in message
    assert TOKEN not in message
    assert server.accepted == 0  # nothing was sent without credentials
    # The plugin and what it started are gone: nothing is left holding its pipe.
    assert_stopped(pids)


def test_plugin_timeout_defaults_to_60_seconds_and_reaches_the_plugin(
    tmp_path: Path, certificates: ServingCertificates
) -> None:
    script, _ = sleepy_plugin(tmp_path)
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(script)}}
    kubeconfig = kubeconfig_for(tmp_path / "kc", "http://127.0.0.1:1", certificates, user)
    assert DEFAULT_PLUGIN_TIMEOUT == 60
    assert Cluster(kubeconfig=kubeconfig).credentials._auth._timeout == 60  # type: ignore[attr-defined]
    magic = PodMagic(shell=None)
    assert magic.plugin_timeout == 60
    magic.plugin_timeout = 2.5
    cluster = magic._cluster(None, str(kubeconfig))
    assert cluster.credentials._auth._timeout == 2.5  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="plugin_timeout must be a positive number of seconds"):
        Cluster(kubeconfig=kubeconfig, plugin_timeout=0)
    with pytest.raises(TypeError, match="plugin_timeout must be a number of seconds or None"):
        Cluster(kubeconfig=kubeconfig, plugin_timeout="60")  # type: ignore[arg-type]


# -- a server that keeps sending, slowly; limits as asked; who is waited for ----------------


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_body_that_keeps_arriving_is_not_cut_by_the_idle_limit(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    # One byte every 0.05 s: several times the idle limit in all, never idle for long.
    assert len(POD_JSON) * 0.05 > 3
    server = serve(drip(POD_JSON, 0.05))
    async with api_for(server, tmp_path, certificates, read_timeout=1.0) as api:
        pod = await api.get_pod("ns", "p")
    assert pod is not None and pod["metadata"]["name"] == "p"


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_dripping_body_is_cut_by_the_whole_request_limit_in_words_that_fit(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(drip(POD_JSON * 10, 0.1))
    began = time.monotonic()
    async with api_for(
        server, tmp_path, certificates, read_timeout=1.0, request_timeout=2.0
    ) as api:
        with pytest.raises(ConfigError) as caught:
            await api.get_pod("ns", "p")
    assert_ended_before(began, NOT_HUNG, "a dripping body with request_timeout=2")
    message = str(caught.value)
    assert (
        f"http://127.0.0.1:{server.port} began answering the request but did not finish "
        "its answer within 2s (the limit for the whole request)"
    ) in message
    assert "sent nothing more" not in message
    assert server.accepted == 1  # a timeout is not retried
    assert REQUEST_TIMEOUT <= 60


@pytest.mark.timeout(60)
def test_per_pod_timeout_bounds_a_dripping_answer_as_a_whole(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(drip(POD_JSON * 10, 0.1))
    kubeconfig = kubeconfig_for(tmp_path / "kc", f"http://127.0.0.1:{server.port}", certificates)
    began = time.monotonic()
    with pytest.raises(RequestTimeoutError) as caught:
        Cluster(kubeconfig=kubeconfig).run("true", "p", timeout=2)
    assert_ended_before(began, NOT_HUNG, "a dripping answer under a per-pod timeout of 2s")
    assert str(caught.value).startswith(
        f"get pod ns/p: the timeout of 2s passed before http://127.0.0.1:{server.port} "
        "finished answering the request;"
    )
    assert server.accepted == 1  # a timeout is not retried
    assert TOKEN not in str(caught.value)


@pytest.mark.timeout(60)
def test_tiny_timeout_says_the_timeout_passed_and_is_no_config_error(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(hold)
    kubeconfig = kubeconfig_for(tmp_path / "kc", f"https://127.0.0.1:{server.port}", certificates)
    with pytest.raises(RequestTimeoutError) as caught:
        Cluster(kubeconfig=kubeconfig).run("true", "p", timeout=1e-3)
    message = str(caught.value)
    assert not isinstance(caught.value, ConfigError)
    assert caught.value.timeout == 1e-3
    assert message.startswith("get pod ns/p: the timeout of 0.001s passed before ")
    assert "did not finish within" not in message


@pytest.mark.timeout(60)
def test_tiny_deadline_while_finding_the_pods_does_not_blame_the_api_server(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(silent_after_request)
    kubeconfig = kubeconfig_for(tmp_path / "kc", f"http://127.0.0.1:{server.port}", certificates)
    with pytest.raises(SelectionError) as caught:
        Cluster(kubeconfig=kubeconfig).run("true", "p", deadline=0.0001)
    message = str(caught.value)
    assert message.startswith("the overall deadline of 0.0001s passed while finding the pods")
    assert "slow or throttling" not in message
    assert "allow more time with deadline=" in message


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (2, "2"),
        (2.0, "2"),
        (2.5, "2.5"),
        (1.23456789, "1.23456789"),
        (0.0001, "0.0001"),
        (1e-3, "0.001"),
        (1.98716, "1.98716"),
        (86400.0, "86400"),
        (1e-7, "1e-07"),
    ],
)
def test_seconds_are_shown_as_given(value: float, shown: str) -> None:
    assert format_seconds(value) == shown


@pytest.mark.timeout(60)
def test_deadline_with_many_digits_is_shown_as_asked(sandbox: Sandbox) -> None:
    [result] = Cluster(kubeconfig=sandbox.kubeconfig, namespace="conf").run(
        "sleep 30", "solo", deadline=1.23456789
    )
    assert result.status is ExecStatus.TIMEOUT
    assert result.error == "overall deadline of 1.23456789s reached"


@pytest.mark.timeout(60)
def test_background_job_holding_stdout_gets_the_hint_under_the_deadline_too(
    sandbox: Sandbox,
) -> None:
    [result] = Cluster(kubeconfig=sandbox.kubeconfig, namespace="conf").run(
        "sleep 30 & echo started", "solo", deadline=2.5
    )
    assert result.status is ExecStatus.TIMEOUT
    assert result.stdout == b"started\n"
    assert result.error is not None
    assert result.error.startswith("overall deadline of 2.5s reached; ")
    assert "a background process it started with & keeps stdout/stderr open" in result.error
    assert "cmd >/dev/null 2>&1 &" in result.error


def plugin_user(script: Path) -> dict[str, Any]:
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(script),
            "args": ["--secret", TOKEN],
            "interactiveMode": "Never",
        }
    }


def assert_stopped(pids: Path) -> None:
    """The plugin and the child it started are gone (stopping them may take a moment)."""
    started = [int(pid) for pid in pids.read_text().split()]
    wait_until(
        lambda: not any(alive(pid) for pid in started),
        what=f"the plugin and its child (pids {started}) were stopped",
    )


@pytest.mark.timeout(60)
def test_deadline_during_an_exec_plugin_names_the_plugin(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(hold)
    script, pids = sleepy_plugin(tmp_path)
    kubeconfig = kubeconfig_for(
        tmp_path / "kc", f"http://127.0.0.1:{server.port}", certificates, plugin_user(script)
    )
    began = time.monotonic()
    with pytest.raises(SelectionError) as caught:
        Cluster(kubeconfig=kubeconfig).run("true", "p", deadline=1.5)
    assert_ended_before(began, NOT_HUNG, "a plugin that never exits, deadline=1.5")
    message = str(caught.value)
    assert message.startswith(
        "the overall deadline of 1.5s passed while waiting for the exec "
        'credential plugin "sleepy-login" of user "someone"'
    )
    assert "API server" not in message
    assert TOKEN not in message
    assert server.accepted == 0
    assert_stopped(pids)


@pytest.mark.timeout(60)
def test_per_pod_timeout_bounds_an_exec_plugin_and_names_it(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(hold)
    script, pids = sleepy_plugin(tmp_path)
    kubeconfig = kubeconfig_for(
        tmp_path / "kc", f"http://127.0.0.1:{server.port}", certificates, plugin_user(script)
    )
    began = time.monotonic()
    with pytest.raises(RequestTimeoutError) as caught:
        Cluster(kubeconfig=kubeconfig).run("true", "p", timeout=1.5)  # plugin_timeout: 60
    assert_ended_before(began, NOT_HUNG, "a plugin that never exits, timeout=1.5")
    message = str(caught.value)
    assert message.startswith(
        "get pod ns/p: the timeout of 1.5s passed while waiting for the "
        'exec credential plugin "sleepy-login" of user "someone", which '
        "was stopped;"
    )
    assert TOKEN not in message
    assert server.accepted == 0
    assert_stopped(pids)


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_per_pod_timeout_during_the_exec_login_names_the_plugin(
    serve: Callable[..., StallServer], tmp_path: Path, certificates: ServingCertificates
) -> None:
    server = serve(hold)
    script, pids = sleepy_plugin(tmp_path)
    kubeconfig = kubeconfig_for(
        tmp_path / "kc", f"http://127.0.0.1:{server.port}", certificates, plugin_user(script)
    )
    async with KubeApi(load_credentials(kubeconfig=kubeconfig)) as api:
        results = await run_fanout(
            api, one_pod(), build_command(script="true"), ExecOptions(timeout=1.5), context="stall"
        )
    [result] = results
    assert result.status is ExecStatus.TIMEOUT
    assert result.error == (
        "the exec did not start within the 1.5s timeout: still waiting for "
        'the exec credential plugin "sleepy-login" of user "someone", which '
        "was stopped"
    )
    assert server.accepted == 0
    assert_stopped(pids)

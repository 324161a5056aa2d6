"""Port-forward (``pods/NAME/portforward``) with the clients that use it: the official
client's ``portforward()`` (WebSocket channels), kubectl 1.30 (SPDY/3.1 over an HTTP
Upgrade), kubectl 1.33 (SPDY inside a WebSocket) and kr8s.

The servers run inside the pod (started with ``kubectl exec``), so the same tests hold whether
pods are plain processes or isolated in their own network namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import select
import socket
import ssl
import struct
import subprocess
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import KubectlRunner, kubectl_folder, missing_tool

from podmagic.sandbox import Sandbox
from podmagic.sandbox._isolation import ISOLATION_VARIABLE, isolation_problem
from podmagic.sandbox._spdy import HEADER_DICTIONARY, Data, Ping, SpdyFramer, SynStream

NAMESPACE = "pf"
POD = "ports"

MANIFEST = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: {POD}, namespace: {NAMESPACE}}}
spec:
  containers: [{{name: main, image: python}}]
"""

# Echo servers on the first ports, an HTTP server answering "hello from the pod" on the last;
# "ready" once all listen; ends when its stdin closes.
SERVERS = r"""
import http.server, socket, sys, threading
ports = [int(p) for p in sys.argv[1:]]
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from the pod\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
def echo(conn):
    while data := conn.recv(65536):
        conn.sendall(data)
    conn.close()
def accept(listener):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()
for port in ports[:-1]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    threading.Thread(target=accept, args=(listener,), daemon=True).start()
web = http.server.ThreadingHTTPServer(("127.0.0.1", ports[-1]), Hello)
threading.Thread(target=web.serve_forever, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""


def _free_ports(count: int) -> list[int]:
    """Ports nothing on this host listens on (a plain-process pod's loopback is the host's)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@contextlib.contextmanager
def _servers_in_pod(kubectl: str, env: dict[str, str], ports: list[int]) -> Iterator[None]:
    """The echo and HTTP servers running in the pod (``kubectl exec``) until the block ends."""
    server = subprocess.Popen(
        [kubectl, "exec", "-i", "-n", NAMESPACE, POD, "--", "python3", "-u", "-c", SERVERS]
        + [str(port) for port in ports],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert server.stdout is not None
    ready, _, _ = select.select([server.stdout], [], [], 60)
    line = server.stdout.readline() if ready else b""
    try:
        assert line == b"ready\n", (line, server.poll())
        yield
    finally:
        try:
            server.communicate(timeout=30)  # closes its stdin: the servers end
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


@pytest.fixture(scope="module")
def pod_ports(
    sandbox: Sandbox, kubectl_factory: Callable[[str], KubectlRunner]
) -> Iterator[tuple[int, int, int, int]]:
    """(echo, echo, http, closed) ports of the pod, the servers running inside it."""
    sandbox.apply(MANIFEST)
    kubectl = kubectl_factory("1.33")
    echo_a, echo_b, http_port, closed = _free_ports(4)
    try:
        with _servers_in_pod(kubectl.binary, kubectl.env, [echo_a, echo_b, http_port]):  # type: ignore[attr-defined]
            yield echo_a, echo_b, http_port, closed
    finally:
        assert sandbox.cluster is not None
        sandbox.call(sandbox.cluster.delete_namespace, NAMESPACE)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    sock.settimeout(30)
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_official_client_portforward_echoes_on_each_port_and_reports_a_refused_one(
    sandbox: Sandbox, pod_ports: tuple[int, int, int, int]
) -> None:
    from kubernetes import client, config
    from kubernetes.stream import portforward

    echo_a, echo_b, _, closed = pod_ports
    with config.new_client_from_config(str(sandbox.kubeconfig)) as api_client:
        _forward_and_check(client.CoreV1Api(api_client), portforward, echo_a, echo_b, closed)


def _forward_and_check(api: Any, portforward: Any, echo_a: int, echo_b: int, closed: int) -> None:
    forward = portforward(
        api.connect_get_namespaced_pod_portforward,
        POD,
        NAMESPACE,
        ports=f"{echo_a},{echo_b},{closed}",
    )
    assert forward.connected
    first, second = forward.socket(echo_a), forward.socket(echo_b)
    first.setblocking(True)
    second.setblocking(True)
    first.sendall(b"to the first port")
    second.sendall(b"to the second port")
    assert _recv_exactly(first, 17) == b"to the first port"
    assert _recv_exactly(second, 18) == b"to the second port"

    refused = forward.socket(closed)
    refused.setblocking(True)
    refused.settimeout(30)
    assert refused.recv(1024) == b""  # the client closes a port whose error channel spoke
    error = forward.error(closed)
    assert error is not None
    assert f"error forwarding port {closed} to pod " in error
    assert f"failed to connect to localhost:{closed} inside namespace" in error
    assert f"dial tcp4 127.0.0.1:{closed}: connect: connection refused" in error

    for sock in (first, second, refused):
        sock.close()
    deadline = time.monotonic() + 30
    while forward.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not forward.connected  # all local sockets closed: the client ends the WebSocket
    assert forward.error(echo_a) is None and forward.error(echo_b) is None


def _start_port_forward(
    kubectl: KubectlRunner, remote: int, namespace: str = NAMESPACE, pod: str = POD
) -> tuple[subprocess.Popen[bytes], int]:
    """``kubectl port-forward`` of a random local port to ``remote``; the process and port."""
    process = subprocess.Popen(
        [kubectl.binary, "port-forward", "-n", namespace, f"pod/{pod}", f":{remote}"],  # type: ignore[attr-defined]
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=kubectl.env,  # type: ignore[attr-defined]
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)
    line = process.stdout.readline().decode() if ready else ""
    found = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", line)
    if found is None:
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"kubectl port-forward did not start: {line!r} {stderr!r}")
    return process, int(found.group(1))


@pytest.mark.parametrize("version", ["1.30", "1.33"])
def test_kubectl_port_forward_reaches_the_pods_http_server(
    version: str,
    pod_ports: tuple[int, int, int, int],
    kubectl_factory: Callable[[str], KubectlRunner],
) -> None:
    """1.30 speaks SPDY/3.1 over an HTTP Upgrade, 1.33 tunnels SPDY through a WebSocket."""
    _, _, http_port, _ = pod_ports
    process, local = _start_port_forward(kubectl_factory(version), http_port)
    try:
        for _ in range(3):  # each request is a connection of its own: a new stream pair
            with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=30) as answer:
                assert answer.status == 200
                assert answer.read() == b"hello from the pod\n"
        assert process.poll() is None
    finally:
        process.kill()
        process.communicate()


@pytest.mark.parametrize("version", ["1.30", "1.33"])
def test_kubectl_port_forward_to_a_closed_port_prints_the_kubelets_error(
    version: str,
    pod_ports: tuple[int, int, int, int],
    kubectl_factory: Callable[[str], KubectlRunner],
) -> None:
    _, _, _, closed = pod_ports
    process, local = _start_port_forward(kubectl_factory(version), closed)
    try:
        with socket.create_connection(("127.0.0.1", local), timeout=30) as conn:
            conn.settimeout(30)
            assert conn.recv(1024) == b""
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.communicate()
    text = stderr.decode()
    assert f"an error occurred forwarding {local} -> {closed}" in text
    assert f"dial tcp4 127.0.0.1:{closed}: connect: connection refused" in text
    assert "error: lost connection to pod" in text
    assert process.returncode == 1


@pytest.mark.anyio
async def test_kr8s_portforward_serves_the_pods_port(
    sandbox: Sandbox, pod_ports: tuple[int, int, int, int]
) -> None:
    import kr8s.asyncio
    from kr8s.asyncio.objects import Pod

    _, _, http_port, _ = pod_ports

    def fetch(local: int) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=30) as answer:
            return bytes(answer.read())

    api = await kr8s.asyncio.api(kubeconfig=str(sandbox.kubeconfig))
    try:
        pod = await Pod.get(POD, namespace=NAMESPACE, api=api)
        async with pod.portforward(remote_port=http_port, local_port="auto") as local:
            assert await asyncio.to_thread(fetch, local) == b"hello from the pod\n"
    finally:
        if api._session is not None:  # kr8s keeps its HTTP session open
            await api._session.aclose()


def test_portforward_to_a_missing_pod_is_a_404_status(sandbox: Sandbox) -> None:
    request = urllib.request.Request(
        f"{sandbox.url}/api/v1/namespaces/default/pods/nope/portforward?ports=80",
        headers={"Authorization": f"Bearer {sandbox.token}"},
    )
    context = ssl.create_default_context(cadata=(sandbox.ca_pem or b"").decode())
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30, context=context)
    with raised.value as error:
        assert error.code == 404
        assert json.loads(error.read())["message"] == 'pods "nope" not found'


def test_port_forward_reaches_an_isolated_pods_own_loopback(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """With namespaces, a server on the pod's 127.0.0.1 is not on the host's: port-forward
    reaches it all the same (the socket is made in the pod's network namespace)."""
    folder = kubectl_folder()
    kubectl = str(folder / "kubectl.1.33") if folder else ""
    if not kubectl or not os.access(kubectl, os.X_OK):
        missing_tool("kubectl.1.33 not found beside `kubectl` on PATH")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ISOLATION_VARIABLE, "namespaces")
        problem = isolation_problem()
        if problem is not None:
            missing_tool(f"pods cannot be isolated here: {problem}")
        state = tmp_path_factory.mktemp("pf-iso")
        with Sandbox(MANIFEST, state_dir=state / "state", kubeconfig=state / "kc") as isolated:
            env = {
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(state),
                "KUBECONFIG": str(isolated.kubeconfig),
            }
            echo_port, http_port = _free_ports(2)
            with _servers_in_pod(kubectl, env, [echo_port, http_port]):
                with pytest.raises(ConnectionRefusedError):  # not on this host's loopback
                    socket.create_connection(("127.0.0.1", http_port), timeout=30).close()
                from kubernetes import client, config
                from kubernetes.stream import portforward

                with config.new_client_from_config(str(isolated.kubeconfig)) as api_client:
                    forward = portforward(
                        client.CoreV1Api(api_client).connect_get_namespaced_pod_portforward,
                        POD,
                        NAMESPACE,
                        ports=str(http_port),
                    )
                    conn = forward.socket(http_port)
                    conn.setblocking(True)
                    conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    answer = _recv_exactly(conn, 4096)
                    conn.close()
                    # The server ended the WebSocket (every port done); the client leaves its
                    # socket to the garbage collector then.
                    forward.websocket.shutdown()
                assert answer.startswith(b"HTTP/1.0 200 OK")
                assert answer.endswith(b"hello from the pod\n")
                assert forward.error(http_port) is None


# -- SPDY framing -----------------------------------------------------------------------------


def _client_syn_stream(deflate: zlib._Compress, stream_id: int, headers: dict[str, str]) -> bytes:
    """A SYN_STREAM as spdystream writes one (header names lower-cased, zlib sync-flushed)."""
    block = struct.pack(">I", len(headers))
    for name, value in headers.items():
        block += struct.pack(">I", len(name)) + name.encode()
        block += struct.pack(">I", len(value)) + value.encode()
    compressed = deflate.compress(block) + deflate.flush(zlib.Z_SYNC_FLUSH)
    payload = struct.pack(">IIBB", stream_id, 0, 0, 0) + compressed
    return struct.pack(">HHI", 0x8003, 1, len(payload)) + payload


def test_spdy_framer_reads_streams_across_one_zlib_context_and_split_reads() -> None:
    deflate = zlib.compressobj(9, zlib.DEFLATED, 15, zdict=HEADER_DICTIONARY)
    wire = _client_syn_stream(deflate, 1, {"streamtype": "error", "port": "80", "requestid": "0"})
    wire += _client_syn_stream(deflate, 3, {"streamtype": "data", "port": "80", "requestid": "0"})
    wire += SpdyFramer.data(3, b"GET / HTTP/1.0\r\n\r\n", fin=True)
    wire += SpdyFramer.ping(1)
    framer = SpdyFramer()
    frames = []
    for index in range(0, len(wire), 7):  # frames cut anywhere still parse
        frames += framer.feed(wire[index : index + 7])
    assert frames == [
        SynStream(1, {"streamtype": "error", "port": "80", "requestid": "0"}, False),
        SynStream(3, {"streamtype": "data", "port": "80", "requestid": "0"}, False),
        Data(3, b"GET / HTTP/1.0\r\n\r\n", True),
        Ping(1),
    ]


def test_spdy_syn_replies_share_one_compression_stream_a_client_can_inflate() -> None:
    framer = SpdyFramer()
    first, second = framer.syn_reply(1, {}), framer.syn_reply(3, {})
    inflate = zlib.decompressobj(zdict=HEADER_DICTIONARY)
    for frame, stream_id in ((first, 1), (second, 3)):
        assert frame[:4] == b"\x80\x03\x00\x02"  # control, version 3, SYN_REPLY
        assert struct.unpack(">I", frame[8:12])[0] == stream_id
        assert inflate.decompress(frame[12:]) == b"\x00\x00\x00\x00"  # no headers

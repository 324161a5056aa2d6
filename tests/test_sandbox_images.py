"""Images whose default command the sandbox knows (podmagic/sandbox/_images.py): an nginx
container without a command runs a stand-in for nginx on port 80 in its own network
namespace, reached by port-forward as the official client's e2e test_portforward_http and
kr8s's port-forward tests reach a real nginx; its files are the container's own.
"""

from __future__ import annotations

import gc
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _waiting import wait_until
from conftest import KubectlRunner, missing_tool
from test_sandbox_clients import _required, ok
from test_sandbox_portforward import _start_port_forward

from podmagic.sandbox import Sandbox, _nginx
from podmagic.sandbox._images import emulated_main, image_argv, repository
from podmagic.sandbox._isolation import isolation_problem

# The official client's exec leaves its TLS socket to the garbage collector when the server
# ends the stream (tests/test_official_client.py says the same): its warning is expected here.
pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

NAMESPACE = "images"
MANIFEST = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: {NAMESPACE}}}
spec:
  containers: [{{name: nginx, image: "nginx:1.27.3", ports: [{{containerPort: 80}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: web2, namespace: {NAMESPACE}}}
spec:
  containers: [{{name: nginx, image: docker.io/library/nginx}}]
"""
NGINX_404 = (
    b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
    b"<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.27.3</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def _official(sandbox: Sandbox) -> tuple[Any, Any]:
    kubernetes = _required("kubernetes")
    return kubernetes, kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig))


@pytest.fixture(scope="module")
def nginx_pods(sandbox: Sandbox) -> Iterator[Any]:
    """The official client's CoreV1Api, with two nginx pods (no command) Running and ready."""
    if isolation_problem() is not None:
        missing_tool(f"pods cannot be isolated here: {isolation_problem()}")
    sandbox.apply(MANIFEST)
    kubernetes, client = _official(sandbox)
    core = kubernetes.client.CoreV1Api(client)

    def ready() -> bool:
        pods = core.list_namespaced_pod(NAMESPACE).items
        return len(pods) == 2 and all(
            p.status.container_statuses and p.status.container_statuses[0].ready for p in pods
        )

    try:
        wait_until(ready, what="the two nginx pods Running and ready", timeout=60)
        yield core
    finally:
        client.close()
        # The client's abandoned sockets collected here, not in a later module's test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        assert sandbox.cluster is not None
        sandbox.call(sandbox.cluster.delete_namespace, NAMESPACE)


def _http_through_portforward(core: Any, pod: str, path: str) -> tuple[int, Any, bytes]:
    """One GET of ``path`` from the pod's port 80 over the official client's port-forward, as
    its e2e test_portforward_http does: status, headers, body."""
    from kubernetes.stream import portforward

    forward = portforward(core.connect_get_namespaced_pod_portforward, pod, NAMESPACE, ports="80")
    sock = forward.socket(80)
    sock.setblocking(True)
    sock.settimeout(30)
    try:
        # Kept alive: the local socket is closed first, so the client ends its WebSocket
        # (when the pod's side closes first, the client leaves its TLS socket to the GC).
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {pod}\r\n\r\n".encode())
        answer = http.client.HTTPResponse(sock, method="GET")
        answer.begin()
        return answer.status, answer.headers, answer.read()
    finally:
        sock.close()
        wait_until(lambda: not forward.connected, what="the port-forward WebSocket closed")


def test_an_nginx_pod_without_a_command_serves_the_welcome_page_over_port_forward(
    nginx_pods: Any,
) -> None:
    status, headers, body = _http_through_portforward(nginx_pods, "web", "/")
    assert status == 200
    assert headers["Server"] == "nginx/1.27.3"
    assert headers["Content-Type"] == "text/html"
    assert b"<h1>Welcome to nginx!</h1>" in body and len(body) == 615


def test_an_nginx_pod_answers_a_missing_page_with_nginx_404(nginx_pods: Any) -> None:
    status, _, body = _http_through_portforward(nginx_pods, "web", "/foo")
    assert (status, body) == (404, NGINX_404)


def test_every_nginx_pod_has_its_own_port_80(nginx_pods: Any) -> None:
    # Each in its own network namespace: the second one is not refused its port.
    servers = {}
    for pod in ("web", "web2"):
        status, headers, _ = _http_through_portforward(nginx_pods, pod, "/")
        assert status == 200
        servers[pod] = headers["Server"]
        pod_status = nginx_pods.read_namespaced_pod(pod, NAMESPACE).status
        assert pod_status.container_statuses[0].restart_count == 0
    # A tag naming no version: the version of nginx:latest.
    assert servers == {"web": "nginx/1.27.3", "web2": "nginx/1.27.5"}


def test_a_page_written_into_the_nginx_html_folder_is_served_and_stays_in_the_container(
    nginx_pods: Any,
) -> None:
    # kr8s's nginx fixture writes /usr/share/nginx/html/foo.dat with dd, then GETs it.
    from kubernetes.stream import stream

    script = (
        "dd if=/dev/urandom of=/usr/share/nginx/html/foo.dat bs=65536 count=4 2>/dev/null"
        " && ls /usr/share"
    )
    listed = stream(
        nginx_pods.connect_get_namespaced_pod_exec,
        "web",
        NAMESPACE,
        command=["sh", "-c", script],
        stderr=True,
        stdout=True,
    )
    status, headers, body = _http_through_portforward(nginx_pods, "web", "/foo.dat")
    assert status == 200
    assert headers["Content-Type"] == "application/octet-stream"
    assert len(body) == 4 * 65536
    # The host's /usr/share is still all there (read-only), beside the image's nginx folder.
    assert sorted(listed.split()) == sorted([*os.listdir("/usr/share"), "nginx"])
    assert not Path("/usr/share/nginx/html/foo.dat").exists()
    assert _http_through_portforward(nginx_pods, "web2", "/foo.dat")[0] == 404


def test_port_forward_to_an_nginx_pod_as_soon_as_it_is_running_finds_it_listening(
    nginx_pods: Any,
) -> None:
    # The official client's e2e test_portforward_http connects once the phase is no longer
    # Pending: a real nginx listens by then, and so must the stand-in.
    nginx_pods.create_namespaced_pod(
        NAMESPACE,
        {"metadata": {"name": "fresh"}, "spec": {"containers": [{"name": "n", "image": "nginx"}]}},
    )
    wait_until(
        lambda: nginx_pods.read_namespaced_pod("fresh", NAMESPACE).status.phase != "Pending",
        what="the new nginx pod past Pending",
        interval=0.005,
    )
    status, _, body = _http_through_portforward(nginx_pods, "fresh", "/")
    assert status == 200 and b"<h1>Welcome to nginx!</h1>" in body


@pytest.mark.parametrize("version", ["1.30", "1.33"])
def test_kubectl_port_forward_and_urllib_reach_nginx_and_the_log_shows_the_requests(
    version: str,
    nginx_pods: Any,
    kubectl_factory: Callable[[str], KubectlRunner],
) -> None:
    kubectl = kubectl_factory(version)
    process, local = _start_port_forward(kubectl, 80, NAMESPACE, "web")
    agent = f"urllib-{version}"
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{local}/", headers={"User-Agent": agent}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
            assert b"<h1>Welcome to nginx!</h1>" in answer.read()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{local}/nope", timeout=30)
        assert missing.value.code == 404
        assert missing.value.read() == NGINX_404
    finally:
        process.kill()
        process.communicate()
    log = ok(kubectl("logs", "-n", NAMESPACE, "web"))
    assert "/docker-entrypoint.sh: Configuration complete; ready for start up" in log
    assert re.search(rf'"GET / HTTP/1.1" 200 615 "-" "{re.escape(agent)}" "-"', log), log


# -- the image table ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("nginx", "nginx"),
        ("nginx:1.27", "nginx"),
        ("docker.io/library/nginx:latest", "nginx"),
        ("library/nginx@sha256:" + "0" * 64, "nginx"),
        ("localhost:5000/nginx:1.2", "nginx"),
        ("registry.k8s.io/coredns/coredns:v1.11.3", "coredns/coredns"),
        ("bitnami/nginx:1.27", "bitnami/nginx"),
    ],
)
def test_an_image_reference_names_its_repository(image: str, expected: str) -> None:
    assert repository(image) == expected


def test_only_an_isolated_nginx_container_without_command_or_args_gets_the_stand_in() -> None:
    nginx = {"name": "c", "image": "nginx:1.25.4"}
    argv = emulated_main(nginx, isolated=True)
    assert argv is not None and argv[:4] == ["python3", "-I", "-S", "-c"]
    assert argv[-2:] == ["--version", "1.25.4"]
    assert emulated_main(nginx, isolated=False) is None  # plain processes share one port 80
    assert emulated_main({**nginx, "command": ["sleep", "1"]}, isolated=True) is None
    assert emulated_main({**nginx, "args": ["nginx", "-g", "x"]}, isolated=True) is None
    assert emulated_main({"name": "c", "image": "busybox"}, isolated=True) is None
    assert emulated_main({"name": "c", "image": "bitnami/nginx"}, isolated=True) is None


def test_python_in_a_python_image_is_the_hosts_python3_where_the_host_has_no_python(
    tmp_path: Path,
) -> None:
    (tmp_path / "python3").symlink_to(sys.executable)
    env = {"PATH": str(tmp_path)}
    container = {"name": "c", "image": "python:3.12"}
    assert image_argv(container, ["python", "-u", "x.py"], env) == ["python3", "-u", "x.py"]
    (tmp_path / "python").symlink_to(sys.executable)  # the host has one: left alone
    assert image_argv(container, ["python", "-u", "x.py"], env) == ["python", "-u", "x.py"]
    other = {"name": "c", "image": "busybox"}
    assert image_argv(other, ["python"], {"PATH": "/nonexistent"}) == ["python"]


# -- the nginx stand-in itself ----------------------------------------------------------------------


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    """The stand-in serving ``tmp_path/html`` on a free loopback port."""
    root = tmp_path / "html"
    (root / "folder").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "index.html").write_text("home\n")
    (root / "folder" / "index.html").write_text("inside\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        # As the sandbox runs it: the standard library only, nothing of podmagic.
        [sys.executable, "-I", "-S", _nginx.__file__]
        + ["--root", str(root), "--listen", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert process.stdout is not None
    try:
        # The access log's first line is printed once the port is bound.
        assert "ready for start up" in process.stdout.readline()
        yield process, port, root
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_the_stand_in_redirects_a_folder_forbids_one_without_index_and_keeps_connections(
    stand_in: tuple[subprocess.Popen[str], int, Path],
) -> None:
    _, port, _ = stand_in
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    answers = {}
    for method, path in [
        ("GET", "/folder"),
        ("GET", "/folder/"),
        ("GET", "/empty/"),
        ("HEAD", "/"),
        ("POST", "/"),
        ("GET", "/../etc/passwd"),
    ]:
        connection.request(method, path)
        answer = connection.getresponse()
        answers[method, path] = (answer.status, answer.getheader("Location"), answer.read())
        if answer.getheader("Connection") == "close":
            connection.close()
    connection.close()
    assert answers["GET", "/folder"][:2] == (301, f"http://127.0.0.1:{port}/folder/")
    assert answers["GET", "/folder/"] == (200, None, b"inside\n")
    assert answers["GET", "/empty/"] == (403, None, _nginx.error_page(403, "Forbidden", "1.27.5"))
    assert answers["HEAD", "/"] == (200, None, b"")
    assert answers["POST", "/"] == (405, None, _nginx.error_page(405, "Not Allowed", "1.27.5"))
    assert answers["GET", "/../etc/passwd"][0] == 400


def test_the_stand_in_ends_with_status_0_on_sigterm_as_nginx_does(
    stand_in: tuple[subprocess.Popen[str], int, Path],
) -> None:
    process, _, _ = stand_in
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "[notice] 1#1: signal 15 (SIGTERM) received, exiting" in stderr

"""The official ``kubernetes`` Python client against the sandbox (its own e2e patterns)."""

from __future__ import annotations

import gc
import gzip
import os
import time
import warnings
from collections.abc import Iterator

import pytest
from _waiting import wait_until

from podmagic.sandbox import Sandbox

pytestmark = [
    pytest.mark.official_client,
    # The official client's stream() leaves its own WebSocket sockets for the garbage collector;
    # that is the client's leak, reported as an unraisable ResourceWarning in this process.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

try:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    from kubernetes.stream import stream
except ImportError:  # pragma: no cover - the test extra installs it
    client = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def core(sandbox: Sandbox) -> Iterator[client.CoreV1Api]:
    if client is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("the kubernetes package is required under CI=true")
        pytest.skip("the kubernetes package is not installed")
    api_client = config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    with api_client:
        yield client.CoreV1Api(api_client)
    # Collect the client's abandoned sockets here, where their warnings are expected, rather
    # than in whichever later test the garbage collector happens to run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_list_pods_with_selector(core) -> None:  # type: ignore[no-untyped-def]
    pods = core.list_namespaced_pod("conf", label_selector="app=web")
    assert len(pods.items) == 3
    for pod in pods.items:
        assert pod.status.phase == "Running"
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
        assert pod.metadata.owner_references[0].kind == "ReplicaSet"
        assert pod.spec.node_name.startswith("sandbox-node-")


def test_exec_returncode(core) -> None:  # type: ignore[no-untyped-def]
    for command, code in ((["false"], 1), (["sh", "-c", "sleep 0.2; exit 3"], 3), (["true"], 0)):
        resp = stream(
            core.connect_get_namespaced_pod_exec,
            "solo",
            "conf",
            command=command,
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
        )
        resp.run_forever(timeout=10)
        assert resp.returncode == code, command


def test_exec_text_output(core) -> None:  # type: ignore[no-untyped-def]
    output = stream(
        core.connect_get_namespaced_pod_exec,
        "solo",
        "conf",
        command=["sh", "-c", "echo $HOSTNAME"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert output.strip() == "solo"


def test_exec_binary_gzip_round_trip(core) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(200_000)
    packed = gzip.compress(payload)
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        "solo",
        "conf",
        command=["sh", "-c", "gzip -dc"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=False,
        binary=True,
        _preload_content=False,
    )
    resp.write_stdin(packed)
    resp.update(timeout=1)
    resp.close_channel(0)
    received = b""
    deadline = time.monotonic() + 20
    while resp.is_open() and time.monotonic() < deadline:
        resp.update(timeout=1)
        received += resp.read_stdout() if resp.peek_stdout() else b""
    received += resp.read_stdout() if resp.peek_stdout() else b""
    assert resp.returncode == 0
    assert received == payload


def test_exec_close_channel_ends_cat(core) -> None:  # type: ignore[no-untyped-def]
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        "solo",
        "conf",
        command=["cat"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    resp.write_stdin("hello\n")
    resp.close_channel(0)
    resp.run_forever(timeout=10)
    assert resp.read_stdout() == "hello\n"
    assert resp.returncode == 0


def test_interactive_shell_over_stdin(core) -> None:  # type: ignore[no-untyped-def]
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        "solo",
        "conf",
        command=["/bin/sh"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    resp.write_stdin("echo one\n")
    output = ""
    deadline = time.monotonic() + 10
    while "one" not in output and time.monotonic() < deadline:
        resp.update(timeout=1)
        output += resp.read_stdout() if resp.peek_stdout() else ""
    assert output == "one\n"
    resp.write_stdin("exit 7\n")
    resp.run_forever(timeout=10)
    assert resp.returncode == 7


def test_pod_lifecycle_like_the_client_e2e(core) -> None:  # type: ignore[no-untyped-def]
    core.read_namespaced_service_account("default", "conf")
    name = "e2e-busybox"
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "image": "busybox",
                    "name": "sleep",
                    "args": ["/bin/sh", "-c", "while true;do date;sleep 5; done"],
                }
            ]
        },
    }
    core.create_namespaced_pod(body=manifest, namespace="conf")
    try:
        pod = core.read_namespaced_pod(name, "conf")
        assert pod.status.phase != "Pending"
        output = stream(
            core.connect_get_namespaced_pod_exec,
            name,
            "conf",
            command=["sh", "-c", "echo ok"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
        )
        assert output == "ok\n"
        assert any(p.metadata.name == name for p in core.list_pod_for_all_namespaces().items)
    finally:
        core.delete_namespaced_pod(name, "conf")

    # Deletion is graceful: Terminating until the main process ended on SIGTERM, then gone.
    def gone() -> bool:
        return name not in {p.metadata.name for p in core.list_namespaced_pod("conf").items}

    wait_until(gone, what="the deleted pod is gone")
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod(name, "conf")
    assert info.value.status == 404


def test_handshake_404_surfaces(core) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiException) as info:
        stream(
            core.connect_get_namespaced_pod_exec,
            "nope",
            "conf",
            command=["true"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
        )
    assert "404" in str(info.value)

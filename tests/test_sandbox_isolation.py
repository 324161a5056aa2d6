"""Isolated pods: each pod in its own PID, UTS, IPC, network and mount namespaces.

A sandbox of this module's own, with ``PODMAGIC_SANDBOX_ISOLATION=namespaces``; every
command goes through kubectl 1.33, as a user's would.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import kubectl_folder, missing_tool

from podmagic.sandbox import Sandbox
from podmagic.sandbox._isolation import ISOLATION_VARIABLE, isolation_mode, isolation_problem

MANIFEST = """
apiVersion: v1
kind: Pod
metadata: {name: alpha, namespace: iso}
spec:
  containers:
  - name: main
    image: busybox
    workingDir: /work
    volumeMounts: [{name: shared, mountPath: /shared}, {name: host, mountPath: /host, readOnly: true}]
  - name: side
    image: busybox
    volumeMounts: [{name: shared, mountPath: /mnt/shared}]
  volumes:
  - {name: shared, emptyDir: {}}
  - {name: host, hostPath: {path: HOST_FOLDER}}
---
apiVersion: v1
kind: Pod
metadata: {name: beta, namespace: iso}
spec:
  containers:
  - {name: main, image: busybox}
"""


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ISOLATION_VARIABLE, "namespaces")
        problem = isolation_problem()
        if problem is not None:
            missing_tool(f"pods cannot be isolated here: {problem}")
        host = tmp_path_factory.mktemp("iso-host")
        (host / "from-host.txt").write_text("host file\n")
        manifest = MANIFEST.replace("HOST_FOLDER", str(host))
        with Sandbox(manifest, state_dir=tmp_path_factory.mktemp("iso-state")) as sandbox:
            yield sandbox


@pytest.fixture(scope="module")
def kubectl(isolated: Sandbox, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = kubectl_folder()
    binary = folder / "kubectl.1.33" if folder else None
    if binary is None or not os.access(binary, os.X_OK):
        missing_tool("kubectl.1.33 not found beside `kubectl` on PATH")
    cache = tmp_path_factory.mktemp("iso-kubecache")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cache),
        "KUBECONFIG": str(isolated.kubeconfig),
    }

    def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binary), "-n", "iso", *args],
            input=input.decode() if input else None,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    return run


def sh(kubectl, pod: str, script: str, container: str = "main") -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return kubectl("exec", pod, "-c", container, "--", "sh", "-c", script)  # type: ignore[no-any-return]


def test_sandbox_reports_namespaces_when_asked_and_available(isolated: Sandbox) -> None:
    assert isolated.isolation == "namespaces"


def test_isolation_is_reported_off_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ISOLATION_VARIABLE, "none")
    assert isolation_mode().startswith("none (") and ISOLATION_VARIABLE in isolation_mode()


def test_a_file_in_one_pods_tmp_is_neither_on_the_host_nor_in_another_pod(kubectl) -> None:  # type: ignore[no-untyped-def]
    name = f"iso-{uuid.uuid4().hex}"
    assert (
        sh(kubectl, "alpha", f"echo secret > /tmp/{name} && cat /tmp/{name}").stdout == "secret\n"
    )
    assert not Path("/tmp", name).exists()
    other = sh(kubectl, "beta", f"cat /tmp/{name}")
    assert other.returncode != 0 and "No such file" in other.stderr
    # Each container has a root of its own, as in Kubernetes (only volumes are shared).
    assert sh(kubectl, "alpha", f"test -e /tmp/{name}", container="side").returncode == 1


def test_host_system_files_are_readable_but_read_only(kubectl) -> None:  # type: ignore[no-untyped-def]
    assert sh(kubectl, "alpha", "cat /etc/os-release").stdout == Path("/etc/os-release").read_text()
    written = sh(kubectl, "alpha", "touch /usr/podmagic-iso-test")
    assert written.returncode != 0 and "Read-only file system" in written.stderr
    assert not Path("/usr/podmagic-iso-test").exists()


def test_ps_lists_only_the_pods_processes(kubectl) -> None:  # type: ignore[no-untyped-def]
    pids = sh(kubectl, "alpha", "ls /proc | grep -E '^[0-9]+$'").stdout.split()
    assert 2 <= len(pids) < 20
    listed = sh(kubectl, "alpha", "ps -e -o pid=,comm=").stdout
    assert "ps" in listed and "python" not in listed and "pytest" not in listed


def test_hostname_and_kubelet_files_name_the_pod(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = sh(kubectl, "alpha", "hostname; cat /etc/hostname; cat /etc/hosts")
    lines = result.stdout.splitlines()
    assert lines[:3] == ["alpha", "alpha", "# Kubernetes-managed hosts file."]
    assert "127.0.0.1\tlocalhost" in lines and lines[-1].endswith("\talpha")


def test_a_host_process_cannot_be_killed_from_a_pod(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = sh(kubectl, "alpha", f"kill -9 {os.getpid()}")
    assert result.returncode != 0 and "No such process" in result.stderr


def test_rm_rf_tmp_in_a_pod_leaves_the_hosts_tmp_alone(kubectl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = Path("/tmp", f"iso-keep-{uuid.uuid4().hex}")
    marker.write_text("keep")
    try:
        assert (
            sh(kubectl, "alpha", "rm -rf /tmp/* /tmp/.[!.]* ; ls -A /tmp | wc -l").stdout == "0\n"
        )
        assert marker.read_text() == "keep"
    finally:
        marker.unlink()


def test_the_working_folder_is_the_containers_own(kubectl) -> None:  # type: ignore[no-untyped-def]
    assert sh(kubectl, "alpha", "pwd; echo x > here; cat /work/here").stdout == "/work\nx\n"
    assert sh(kubectl, "beta", "test -e /work/here").returncode == 1


def test_kubectl_cp_into_a_pod_lands_in_that_pod_only(kubectl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name = f"iso-cp-{uuid.uuid4().hex}"
    source = tmp_path / "payload.txt"
    source.write_text("copied\n")
    copied = kubectl("cp", str(source), f"alpha:/tmp/{name}", "-c", "main")
    assert copied.returncode == 0, copied.stderr
    assert sh(kubectl, "alpha", f"cat /tmp/{name}").stdout == "copied\n"
    assert not Path("/tmp", name).exists()
    assert sh(kubectl, "beta", f"test -e /tmp/{name}").returncode == 1


def test_pods_have_only_a_loopback_network(kubectl) -> None:  # type: ignore[no-untyped-def]
    devices = sh(kubectl, "alpha", "tail -n +3 /proc/net/dev | cut -d: -f1").stdout.split()
    assert devices == ["lo"]


def test_an_empty_dir_volume_is_shared_by_the_pods_containers_only(kubectl) -> None:  # type: ignore[no-untyped-def]
    assert sh(kubectl, "alpha", "echo both > /shared/note").returncode == 0
    assert sh(kubectl, "alpha", "cat /mnt/shared/note", container="side").stdout == "both\n"
    assert sh(kubectl, "beta", "test -e /shared/note").returncode == 1


def test_a_host_path_volume_shows_the_hosts_folder_read_only_when_asked(kubectl) -> None:  # type: ignore[no-untyped-def]
    assert sh(kubectl, "alpha", "cat /host/from-host.txt").stdout == "host file\n"
    written = sh(kubectl, "alpha", "touch /host/new")
    assert written.returncode != 0 and "Read-only file system" in written.stderr

"""Isolated pods: each pod in its own PID, UTS, IPC, network and mount namespaces.

A sandbox of this module's own, in the default mode (isolated wherever bubblewrap works);
every command goes through kubectl 1.33, as a user's would. The process mode
(``PODMAGIC_SANDBOX_ISOLATION=processes``) is said loudly wherever it runs.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _waiting import wait_until
from conftest import kubectl_folder, missing_tool
from sandbox_pods import pod_object

from podmagic.sandbox import Sandbox, _isolation
from podmagic.sandbox._isolation import (
    ISOLATION_VARIABLE,
    isolation_marker,
    isolation_mode,
    isolation_problem,
    pod_socket,
)

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
---
apiVersion: v1
kind: Pod
metadata: {name: gamma, namespace: iso}
spec:
  shareProcessNamespace: true
  containers:
  - {name: one, image: busybox}
  - {name: two, image: busybox}
---
apiVersion: v1
kind: Pod
metadata: {name: delta, namespace: iso}
spec:
  hostname: web
  subdomain: sub
  hostAliases: [{ip: 10.1.2.3, hostnames: [db.local, db]}]
  containers:
  - {name: main, image: busybox}
---
apiVersion: v1
kind: Pod
metadata: {name: private, namespace: iso}
spec:
  automountServiceAccountToken: false
  containers:
  - {name: main, image: busybox}
"""


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(ISOLATION_VARIABLE, raising=False)  # the default
        problem = isolation_problem()
        if problem is not None:
            missing_tool(f"pods cannot be isolated here: {problem}")
        host = tmp_path_factory.mktemp("iso-host")
        (host / "from-host.txt").write_text("host file\n")
        manifest = MANIFEST.replace("HOST_FOLDER", str(host))
        with Sandbox(manifest, state_dir=tmp_path_factory.mktemp("iso-state")) as sandbox:
            yield sandbox


# Pods whose processes the tests below kill (a manifest of their own: the sandbox that
# test_stopping_the_sandbox_leaves_no_pod_process starts has no main process to start).
VICTIMS = """
apiVersion: v1
kind: Pod
metadata: {name: idle-victim, namespace: iso}
spec:
  containers:
  - {name: main, image: busybox}
---
apiVersion: v1
kind: Pod
metadata:
  name: main-victim
  namespace: iso
  annotations: {sandbox.podmagic.io/restart-backoff: "0.2"}
spec:
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata:
  name: holder-victim
  namespace: iso
  annotations: {sandbox.podmagic.io/restart-backoff: "0.2"}
spec:
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: shared-victim, namespace: iso}
spec:
  shareProcessNamespace: true
  containers:
  - {name: main, image: busybox}
"""


@pytest.fixture(scope="module")
def victims(isolated: Sandbox) -> Sandbox:
    isolated.apply(VICTIMS)
    return isolated


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


def test_pods_are_isolated_by_default_where_bubblewrap_works(isolated: Sandbox) -> None:
    assert os.environ.get(ISOLATION_VARIABLE) is None
    assert isolated.isolation == "namespaces"


def test_isolation_is_reported_off_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ISOLATION_VARIABLE, "none")
    assert isolation_mode().startswith("processes (") and ISOLATION_VARIABLE in isolation_mode()


def test_process_mode_is_chosen_explicitly_and_said_loudly_at_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv(ISOLATION_VARIABLE, "processes")
    caplog.set_level(logging.WARNING, logger="podmagic.sandbox")
    with Sandbox([], state_dir=tmp_path / "state") as sandbox:
        assert (
            sandbox.isolation == f"processes ({ISOLATION_VARIABLE}=processes chose plain processes)"
        )
        # The run header of a %pod against it carries the marker while it serves.
        assert "NOT isolated" in isolation_marker(sandbox.context)
        assert isolation_marker("prod") == ""
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("pods are NOT isolated" in text for text in warnings), warnings
    assert isolation_marker("podmagic-sandbox") == ""  # stopped: no longer said


def test_a_missing_bubblewrap_is_named_with_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ISOLATION_VARIABLE, raising=False)
    monkeypatch.setattr(_isolation, "_tool", lambda name: None if name == "bwrap" else "/bin/true")
    _isolation._probe.cache_clear()
    try:
        problem = isolation_problem()
    finally:
        monkeypatch.undo()
        _isolation._probe.cache_clear()
    assert problem is not None and "apt install bubblewrap" in problem


def test_a_bad_isolation_value_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ISOLATION_VARIABLE, "yes")
    problem = isolation_problem()
    assert problem is not None and "neither namespaces nor processes" in problem


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


def test_etc_is_the_containers_own_and_writable(kubectl) -> None:  # type: ignore[no-untyped-def]
    name = f"iso-etc-{uuid.uuid4().hex}"
    wrote = sh(
        kubectl, "alpha", f"echo mine > /etc/{name} && echo extra >> /etc/passwd && cat /etc/{name}"
    )
    assert wrote.stdout == "mine\n", wrote.stderr
    assert not Path("/etc", name).exists()
    assert "extra" not in Path("/etc/passwd").read_text()
    assert sh(kubectl, "alpha", f"test -e /etc/{name}", container="side").returncode == 1
    assert sh(kubectl, "beta", f"test -e /etc/{name}").returncode == 1
    # Seeded from the host's: its users and tools' configuration are there.
    assert sh(kubectl, "beta", "grep -c ^root: /etc/passwd").stdout == "1\n"


def test_home_is_roots_as_in_a_container_running_as_root(kubectl) -> None:  # type: ignore[no-untyped-def]
    assert sh(kubectl, "beta", 'echo "$HOME"; cd && pwd').stdout == "/root\n/root\n"


def _holders(kubectl, pod: str, container: str) -> int:  # type: ignore[no-untyped-def]
    """How many idle processes (``sleep infinity``: pause, container holders) it sees."""
    script = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done"
    lines = sh(kubectl, pod, script, container=container).stdout.splitlines()
    return lines.count("sleep infinity ")


def test_each_container_has_a_process_namespace_of_its_own(kubectl) -> None:  # type: ignore[no-untyped-def]
    assert sh(kubectl, "alpha", "true", container="side").returncode == 0
    # Only its own idle process: neither the pod's pause nor the other container's.
    assert _holders(kubectl, "alpha", "main") == 1


def test_share_process_namespace_puts_a_pods_containers_in_one(kubectl) -> None:  # type: ignore[no-untyped-def]
    assert sh(kubectl, "gamma", "true", container="two").returncode == 0
    # The pause process and both containers' idle processes.
    assert _holders(kubectl, "gamma", "one") == 3


def test_hostname_subdomain_and_host_aliases_as_the_kubelet_writes_them(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = sh(kubectl, "delta", "hostname; cat /etc/hostname; cat /etc/hosts")
    lines = result.stdout.splitlines()
    assert lines[:2] == ["web", "web"]
    assert lines[-3:] == ["", "# Entries added by HostAliases.", "10.1.2.3\tdb.local\tdb"]
    assert lines[-4].endswith("\tweb.sub.iso.svc.cluster.local\tweb")


def test_the_service_account_token_ca_and_namespace_are_projected(
    kubectl,
    isolated: Sandbox,  # type: ignore[no-untyped-def]
) -> None:
    folder = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert sh(kubectl, "beta", f"cat {folder}/namespace").stdout == "iso"
    assert sh(kubectl, "beta", f"cat {folder}/ca.crt").stdout.encode() == isolated.ca_pem
    token = sh(kubectl, "beta", f"cat {folder}/token").stdout
    assert sh(kubectl, "beta", f"readlink {folder}/token").stdout == "..data/token\n"
    whoami = kubectl(
        "auth", "whoami", f"--token={token}", "-o", "jsonpath={.status.userInfo.username}"
    )
    assert whoami.stdout == "system:serviceaccount:iso:default", whoami.stderr
    assert sh(kubectl, "private", f"test -e {folder}").returncode == 1


def test_a_socket_from_pod_socket_is_in_the_pods_network(kubectl, isolated: Sandbox) -> None:  # type: ignore[no-untyped-def]
    listener = isolated.call(pod_socket, isolated.cluster, "iso", "beta")
    assert listener is not None
    with listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        # Not this host's loopback: nothing listens there.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
        script = (
            f"import socket; socket.create_connection(('127.0.0.1', {port})).sendall(b'from pod')"
        )
        sent = kubectl("exec", "beta", "--", "python3", "-c", script)
        assert sent.returncode == 0, sent.stderr
        listener.settimeout(30)
        connection, _ = listener.accept()
        with connection:
            assert connection.recv(100) == b"from pod"


def test_stopping_the_sandbox_leaves_no_pod_process(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(ISOLATION_VARIABLE, raising=False)
        if isolation_problem() is not None:
            missing_tool(f"pods cannot be isolated here: {isolation_problem()}")
        with Sandbox(MANIFEST.replace("HOST_FOLDER", str(tmp_path)), state_dir=state) as sandbox:
            from podmagic.sandbox._isolation import container_placement

            def start_all() -> None:
                for entry in list(sandbox.cluster.pods.values()):
                    for container in entry.pod["spec"]["containers"]:
                        container_placement(sandbox.cluster, entry, container, {})

            sandbox.call(start_all)
            assert _processes_under(state)
        assert _processes_under(state) == []


def _processes_under(folder: Path) -> list[str]:
    """Command lines of this host's processes that name ``folder`` (pods' bwrap holders)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in cmdline:
            found.append(cmdline)
    return found


NOT_ISOLATED = """
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "podmagic")
shell.run_line_magic("pod_sandbox", "start")
shell.run_line_magic("pod", "-n demo db-0 -- true")
shell.run_line_magic("pod_sandbox", "stop")
"""


def test_pod_sandbox_and_the_run_header_say_when_pods_are_not_isolated(tmp_path: Path) -> None:
    home = tmp_path / "home"  # no ~/.kube/config, no KUBECONFIG: only the sandbox can serve
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    done = subprocess.run(
        [sys.executable, "-c", NOT_ISOLATED],
        env={**env, "HOME": str(home), ISOLATION_VARIABLE: "processes"},
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"WARNING: pods NOT isolated, they are plain processes of this host: processes "
        f"({ISOLATION_VARIABLE}=processes chose plain processes)"
    ) in done.stdout.splitlines()
    header = next(line for line in done.stdout.splitlines() if "$ true" in line)
    assert header.startswith(
        "context podmagic-sandbox [sandbox pods NOT isolated: plain host processes] · "
    ), header
    assert "pods are NOT isolated" in done.stderr  # the sandbox's start, logged


def test_pod_sandbox_says_pods_are_isolated(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", ISOLATION_VARIABLE)}
    if isolation_problem() is not None:
        missing_tool(f"pods cannot be isolated here: {isolation_problem()}")
    done = subprocess.run(
        [sys.executable, "-c", NOT_ISOLATED],
        env={**env, "HOME": str(home)},
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "pods isolated: each in its own namespaces" in done.stdout
    header = next(line for line in done.stdout.splitlines() if "$ true" in line)
    assert header.startswith("context podmagic-sandbox · "), header


def test_pod_processes_keep_only_a_container_runtimes_capabilities(kubectl) -> None:  # type: ignore[no-untyped-def]
    status = sh(kubectl, "beta", "grep CapEff /proc/self/status").stdout.split()
    effective = int(status[1], 16)
    cap_sys_admin, cap_mknod, cap_sys_module, cap_kill = 21, 27, 16, 5
    assert not effective & (1 << cap_sys_admin | 1 << cap_mknod | 1 << cap_sys_module)
    assert effective & (1 << cap_kill)
    mounted = sh(kubectl, "beta", "mount -t tmpfs none /tmp")
    assert mounted.returncode != 0 and "permission denied" in mounted.stderr
    made = sh(kubectl, "beta", "mknod /tmp/disk b 8 0")
    assert made.returncode != 0 and "not permitted" in made.stderr


def _status(sandbox: Sandbox, pod: str) -> dict[str, object]:
    status: dict[str, object] = pod_object(sandbox, "iso", pod)["status"]["containerStatuses"][0]
    return status


def test_kill_all_inside_a_container_spares_its_init_and_exec_goes_on(
    kubectl, victims: Sandbox
) -> None:  # type: ignore[no-untyped-def]
    assert sh(kubectl, "idle-victim", "true").returncode == 0
    # kill -1 reaches every process but the namespace's init, and SIGKILL sent from inside
    # the namespace never reaches its init: the container stays as it was.
    sh(kubectl, "idle-victim", "kill -9 -1")
    after = sh(kubectl, "idle-victim", "echo still here")
    assert (after.returncode, after.stdout) == (0, "still here\n"), after.stderr
    status = _status(victims, "idle-victim")
    assert status["restartCount"] == 0 and status["ready"] is True, status


def test_a_shared_process_namespace_recovers_from_kill_all_in_a_container(
    kubectl, victims: Sandbox
) -> None:  # type: ignore[no-untyped-def]
    assert sh(kubectl, "shared-victim", "true").returncode == 0
    sh(kubectl, "shared-victim", "kill -9 -1")
    after = sh(kubectl, "shared-victim", "echo still here")
    assert (after.returncode, after.stdout) == (0, "still here\n"), after.stderr


def test_killing_the_main_process_from_an_exec_restarts_the_container(
    kubectl, victims: Sandbox
) -> None:  # type: ignore[no-untyped-def]
    wait_until(lambda: "running" in _status(victims, "main-victim")["state"], what="it runs")  # type: ignore[operator]
    sh(kubectl, "main-victim", "kill -9 -1")
    status = wait_until(
        lambda: (
            (s := _status(victims, "main-victim"))["restartCount"] == 1
            and "running" in s["state"]  # type: ignore[operator]
            and s
        ),
        what="the container restarted",
    )
    assert status["lastState"]["terminated"]["exitCode"] == 137  # type: ignore[index]
    after = sh(kubectl, "main-victim", "echo back")
    assert (after.returncode, after.stdout) == (0, "back\n"), after.stderr


def test_a_container_whose_namespaces_ended_restarts_and_exec_works_again(
    kubectl, victims: Sandbox
) -> None:  # type: ignore[no-untyped-def]
    wait_until(lambda: "running" in _status(victims, "holder-victim")["state"], what="it runs")  # type: ignore[operator]

    def holder() -> int:
        pod = _isolation.pod_sandboxes(victims.cluster).find("iso", "holder-victim")
        assert pod is not None
        return pod.containers["main"].holder.pid

    # As if the container's namespaces ended under it (its holder killed from the host).
    os.kill(victims.call(holder), 9)
    status = wait_until(
        lambda: (
            (s := _status(victims, "holder-victim"))["restartCount"] == 1
            and "running" in s["state"]  # type: ignore[operator]
            and s
        ),
        what="the container restarted",
    )
    assert status["lastState"]["terminated"]["exitCode"] == 137  # type: ignore[index]
    after = wait_until(
        lambda: (r := sh(kubectl, "holder-victim", "echo back")).returncode == 0 and r,
        what="exec works again",
    )
    assert after.stdout == "back\n"


def test_the_containers_init_reaps_the_orphans_left_to_it(kubectl, victims: Sandbox) -> None:  # type: ignore[no-untyped-def]
    # A background process whose parent ended is the init's to reap, as in a container.
    assert sh(kubectl, "idle-victim", "sh -c 'true & exit 0'").returncode == 0
    zombies = "cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == \"Z\"' | wc -l"
    wait_until(
        lambda: sh(kubectl, "idle-victim", zombies).stdout.strip() == "0",
        what="no zombie is left in the container",
    )


def test_an_exec_whose_container_ends_as_it_starts_says_so_and_the_next_exec_works(
    kubectl, victims: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from podmagic.sandbox import _exec

    assert sh(kubectl, "idle-victim", "true").returncode == 0
    real_start = _exec.start_process

    async def start_in_ended_container(spec):  # type: ignore[no-untyped-def]
        # The container's namespaces end between the exec's placement and its start.
        pod = _isolation.pod_sandboxes(victims.cluster).find("iso", "idle-victim")
        assert pod is not None
        holder = pod.containers["main"].holder
        holder.kill()
        holder.wait(timeout=30)
        return await real_start(spec)

    monkeypatch.setattr(_exec, "start_process", start_in_ended_container)
    failed = sh(kubectl, "idle-victim", "echo never")
    monkeypatch.setattr(_exec, "start_process", real_start)
    assert failed.returncode != 0
    assert "the container's processes ended as the exec started" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    after = sh(kubectl, "idle-victim", "echo back")
    assert (after.returncode, after.stdout) == (0, "back\n"), after.stderr

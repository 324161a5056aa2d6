"""What keeps a thousand pods with main processes quick to start: a pod's namespaces held by
descriptors (no pause process to start), main processes spawned off the event loop (and a
start cancelled meanwhile leaves nothing running), tools looked up once."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _waiting import await_until, wait_until
from conftest import missing_tool

from podmagic.sandbox import Sandbox, _isolation
from podmagic.sandbox import _runner as runner
from podmagic.sandbox._isolation import ISOLATION_VARIABLE, isolation_problem, pod_sandboxes
from podmagic.sandbox._runner import ProcessSpec, start_process

MANIFEST = """
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: speed}
spec:
  containers:
  - {name: main, image: busybox, command: [sleep, '3600']}
---
apiVersion: v1
kind: Pod
metadata: {name: shared, namespace: speed}
spec:
  shareProcessNamespace: true
  containers:
  - {name: one, image: busybox, command: [sleep, '3600']}
"""


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(ISOLATION_VARIABLE, raising=False)
        problem = isolation_problem()
        if problem is not None:
            missing_tool(f"pods cannot be isolated here: {problem}")
        with Sandbox(MANIFEST, state_dir=tmp_path_factory.mktemp("speed-state")) as sandbox:
            yield sandbox


def _main_pid(sandbox: Sandbox, pod: str) -> int:
    """Host pid of ``pod``'s main process once it runs (0 before)."""
    from podmagic.sandbox._containers import _runtimes

    def find() -> int:
        runtime = _runtimes.get(sandbox.cluster)  # type: ignore[arg-type]
        for record in runtime.pods.values() if runtime is not None else ():
            if record.name == pod:
                for container in record.containers.values():
                    instance = container.instance
                    if instance is not None and instance.process is not None:
                        return instance.process.pid
        return 0

    return sandbox.call(find)


def _wait_for_main(sandbox: Sandbox, pod: str) -> int:
    return wait_until(lambda: _main_pid(sandbox, pod), what=f"{pod}'s main process runs")


def test_a_pods_namespaces_need_no_pause_process_when_the_sandbox_may_make_them(
    isolated: Sandbox,
) -> None:
    if os.geteuid() != 0:
        missing_tool("only root makes a pod's namespaces without a process")
    pid = _wait_for_main(isolated, "solo")
    held = isolated.call(lambda: pod_sandboxes(isolated.cluster).find("speed", "solo"))
    assert held is not None and held.pause is None
    # The main process is in the pod's namespaces all the same: its own host name, and a
    # network namespace that is not the sandbox's.
    assert Path(f"/proc/{pid}/root/etc/hostname").read_text() == "solo\n"
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{pid}/ns/uts") != os.readlink("/proc/self/ns/uts")
    # The descriptors the sandbox holds name exactly the namespaces the process is in.
    for fd, kind in zip(held.namespace_fds, ("net", "uts", "ipc")):
        assert os.readlink(f"/proc/self/fd/{fd}") == os.readlink(f"/proc/{pid}/ns/{kind}")


def test_a_pod_sharing_its_process_namespace_keeps_a_pause_process(isolated: Sandbox) -> None:
    _wait_for_main(isolated, "shared")
    held = isolated.call(lambda: pod_sandboxes(isolated.cluster).find("speed", "shared"))
    assert held is not None and held.pause is not None and held.pause.poll() is None


def _open_namespaces() -> set[str]:
    """The namespaces (``net:[4026532...]``) this process holds descriptors of."""
    names = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            names.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass  # closed since listed
    return {name for name in names if name.split(":")[0] in ("net", "uts", "ipc")}


def test_a_deleted_pod_lets_go_of_its_namespace_descriptors(isolated: Sandbox) -> None:
    _wait_for_main(isolated, "solo")
    held = isolated.call(lambda: pod_sandboxes(isolated.cluster).find("speed", "solo"))
    assert held is not None
    names = {os.readlink(f"/proc/self/fd/{fd}") for fd in held.namespace_fds}
    assert len(names) == 3 and names <= _open_namespaces()
    isolated.delete_pod("solo", namespace="speed")
    wait_until(lambda: isolated.pods("speed") == ["shared"], what="solo is gone")
    wait_until(
        lambda: not names & _open_namespaces(), what="solo's namespace descriptors are closed"
    )


def test_tools_are_looked_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    _isolation._which.cache_clear()
    calls: list[str] = []
    real = _isolation.shutil.which

    def which(name: str, **kwargs: object) -> str | None:
        calls.append(name)
        return real(name, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_isolation.shutil, "which", which)
    for _ in range(3):
        _isolation._tool("nsenter")
    assert calls == ["nsenter"]


# ---- main processes spawned off the event loop --------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_an_off_loop_start_spawns_in_another_thread_and_runs_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[threading.Thread] = []
    real = runner._spawn

    def spawn(*args: object) -> object:
        threads.append(threading.current_thread())
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "_spawn", spawn)
    spec = ProcessSpec(
        argv=["sh", "-c", "echo off; exit 3"], env={"PATH": "/usr/bin:/bin"}, cwd=Path("/")
    )
    process = await start_process(spec, off_loop=True)
    try:
        output = [chunk async for chunk in process.read_output()]
        assert await asyncio.wait_for(process.wait(), 30) == 3
    finally:
        await process.aclose()
    assert b"".join(data for _, data in output) == b"off\n"
    assert threads and threads[0] is not threading.current_thread()


@pytest.mark.anyio
async def test_a_start_cancelled_while_a_thread_spawns_leaves_no_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entered, release = threading.Event(), threading.Event()
    spawned: list[int] = []
    real = runner._spawn

    def spawn(*args: object) -> object:
        entered.set()
        release.wait(30)
        popen = real(*args)  # type: ignore[arg-type]
        spawned.append(popen.pid)
        return popen

    monkeypatch.setattr(runner, "_spawn", spawn)
    fds_before = set(os.listdir("/proc/self/fd"))
    spec = ProcessSpec(argv=["sleep", "3600"], env={"PATH": "/usr/bin:/bin"}, cwd=Path("/"))
    task = asyncio.get_running_loop().create_task(start_process(spec, off_loop=True))
    await await_until(entered.is_set, what="the spawn began in its thread")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    await await_until(lambda: bool(spawned), what="the thread spawned the process")

    def gone() -> bool:
        try:
            os.kill(spawned[0], 0)
        except ProcessLookupError:
            return True  # killed and reaped (a zombie still answers kill 0)
        return False

    await await_until(gone, what="the abandoned process was killed and reaped")
    await await_until(
        lambda: set(os.listdir("/proc/self/fd")) <= fds_before,
        what="the abandoned start's pipes are closed",
    )

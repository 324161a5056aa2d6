"""A sandbox cleans up when its process ends without stopping it.

A script that exits, or a kernel that is shut down or sent SIGTERM, with a sandbox still
running (no ``stop()``, no ``%pod_sandbox stop``) leaves no temporary folder, no kubeconfig
and no pod process behind. Each case runs in a real subprocess: a Python script, or a kernel
started by jupyter_client as a notebook's would be. A pod process is running at that moment:
``sh`` with a background ``sleep`` of its own, both of which must be gone afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from _waiting import wait_until
from jupyter_client.manager import KernelManager
from test_sandbox_cli import Process

pytestmark = pytest.mark.timeout(120)

#: The pod's command: it records its pid and its background child's (background.pid appears
#: whole, by a rename, once both are written), then waits.
POD_SCRIPT = (
    "echo $$ > {marks}/pod.pid; sleep 300 & echo $! > {marks}/bg;"
    " mv {marks}/bg {marks}/background.pid; wait"
)

#: A script that starts a sandbox and a long exec in it, then waits for a line on its stdin
#: (then ends, never stopping the sandbox) or for SIGTERM.
SCRIPT = """
import sys, threading, time
from pathlib import Path
from podmagic import Cluster
from podmagic.sandbox import Sandbox

marks, command = Path(sys.argv[1]), sys.argv[2]
sandbox = Sandbox().start()
print(sandbox.state_dir, sandbox.kubeconfig, flush=True)
cluster = Cluster(kubeconfig=str(sandbox.kubeconfig))
threading.Thread(
    target=cluster.run, args=(command, "db-0"), kwargs={"namespace": "demo"}, daemon=True
).start()
deadline = time.monotonic() + 60
while not (marks / "background.pid").exists() and time.monotonic() < deadline:
    time.sleep(0.01)
print("running", flush=True)
sys.stdin.readline()
"""


def pod_processes(marks: Path, leftovers: list[Process]) -> list[Process]:
    """The pod's processes, once it wrote their pids (also into ``leftovers``)."""
    wait_until((marks / "background.pid").exists, what="the pod's command started", timeout=60)
    pids = [int((marks / name).read_text()) for name in ("pod.pid", "background.pid")]
    processes = [Process.running_now(pid) for pid in pids]
    leftovers.extend(processes)
    return processes


def wait_until_ended(processes: list[Process]) -> list[Process]:
    """Those still running after a while: SIGKILLed processes may take a moment to end."""
    deadline = time.monotonic() + 30
    while any(process.running() for process in processes) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [process for process in processes if process.running()]


def assert_cleaned_up(state_dir: Path, kubeconfig: Path, processes: list[Process]) -> None:
    assert wait_until_ended(processes) == [], "pod processes survived"
    assert not kubeconfig.exists(), "the kubeconfig was left behind"
    assert not state_dir.exists(), "the sandbox's temporary folder was left behind"


@pytest.fixture
def leftovers() -> Iterator[list[Process]]:
    """Processes to kill after the test, should the cleanup under test fail."""
    processes: list[Process] = []
    yield processes
    for process in processes:
        process.kill()


@pytest.mark.parametrize("how", ["exit", "sigterm"])
def test_a_script_that_ends_without_stop_leaves_nothing_behind(
    how: str, tmp_path: Path, leftovers: list[Process]
) -> None:
    script = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path), POD_SCRIPT.format(marks=tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Plain processes: the pod writes its host pids into a host folder (isolated pods'
        # cleanup is tests/test_sandbox_isolation.py's).
        env={**os.environ, "HOME": str(tmp_path), "PODMAGIC_SANDBOX_ISOLATION": "processes"},
    )
    try:
        assert script.stdout is not None
        state_dir, kubeconfig = (Path(part) for part in script.stdout.readline().split())
        pods = pod_processes(tmp_path, leftovers)
        assert script.stdout.readline() == "running\n"
        assert state_dir.is_dir() and kubeconfig.is_file()
        if how == "sigterm":
            script.send_signal(signal.SIGTERM)
            script.wait(timeout=60)  # stdin stays open: the script ends by the signal alone
        _, stderr = script.communicate(None if how == "sigterm" else "\n", timeout=60)
    finally:
        if script.poll() is None:
            script.kill()
            script.communicate()
    # SIGTERM still ends the script as SIGTERM does; a normal exit is still a success.
    assert script.returncode == (-signal.SIGTERM if how == "sigterm" else 0), stderr
    assert_cleaned_up(state_dir, kubeconfig, pods)


@pytest.mark.parametrize("how", ["shutdown", "sigterm"])
def test_a_kernel_that_ends_without_pod_sandbox_stop_leaves_nothing_behind(
    how: str, tmp_path: Path, leftovers: list[Process]
) -> None:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(
        cwd=str(tmp_path),
        env={
            **os.environ,
            "HOME": str(tmp_path),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PODMAGIC_SANDBOX_ISOLATION": "processes",  # as above: host pids in a host folder
        },
    )
    client = manager.client()
    client.start_channels()
    lines: list[str] = []

    def keep(message: dict[str, object]) -> None:
        content = message["content"]
        if message["msg_type"] == "stream" and isinstance(content, dict):
            lines.extend(str(content["text"]).splitlines())

    try:
        client.wait_for_ready(timeout=60)
        command = POD_SCRIPT.format(marks=tmp_path)
        reply = client.execute_interactive(
            "%load_ext podmagic\n"
            "sandbox = %pod_sandbox start\n"
            f"h = %pod db-0 -n demo --bg -q -- {command}\n"
            "import os\n"
            "print(os.getpid(), sandbox.state_dir, sandbox.kubeconfig)",
            timeout=60,
            output_hook=keep,
        )
        assert reply["content"]["status"] == "ok", (reply["content"], lines)
        kernel_pid, state_dir, kubeconfig = lines[-1].split()
        pods = pod_processes(tmp_path, leftovers)
        if how == "sigterm":
            os.kill(int(kernel_pid), signal.SIGTERM)
            wait_until(
                lambda: not manager.is_alive(), what="the kernel ended on SIGTERM", timeout=60
            )
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)
    assert_cleaned_up(Path(state_dir), Path(kubeconfig), pods)


def test_kill_unreaped_kills_the_groups_a_stopped_loop_left_running(
    tmp_path: Path, leftovers: list[Process]
) -> None:
    # What Sandbox.stop() does after its loop stopped: a process still running then (never
    # closed) dies with the background job it started.
    from podmagic.sandbox._runner import ProcessSpec, kill_unreaped, start_process

    spec = ProcessSpec(
        ["sh", "-c", POD_SCRIPT.format(marks=tmp_path)],
        env={"PATH": os.environ["PATH"]},
        cwd=tmp_path,
    )
    loop, other = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        process = loop.run_until_complete(start_process(spec))
        bystander = other.run_until_complete(start_process(replace(spec, argv=["sleep", "300"])))
        pods = pod_processes(tmp_path, leftovers)
        assert pods[0].pid == process.pid

        assert kill_unreaped(loop) == 1  # only the processes of that loop
        assert wait_until_ended(pods) == []
        assert Process.running_now(bystander.pid)  # unreaped: its pid cannot come round again
    finally:
        other.run_until_complete(bystander.aclose())
        loop.run_until_complete(process.aclose())  # reaps the zombie
        loop.close()
        other.close()

"""``python -m podmagic.sandbox serve`` as a subprocess: start-up, kubeconfig, signals, refusals."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import anyio
import pytest
import yaml
from _waiting import await_until

REPO = Path(__file__).resolve().parent.parent
CLUSTER = REPO / "tests" / "manifests" / "cluster.yaml"
REFUSAL = "error: refusing to overwrite your own ~/.kube/config; pass another --kubeconfig path\n"


def environment(home: Path) -> dict[str, str]:
    """The child's environment, with a HOME of its own so the real ~/.kube is never at risk."""
    home.mkdir(parents=True, exist_ok=True)
    # Plain processes: the tests follow an exec's process by the pid it prints, a host pid
    # only then (isolated pods' cleanup is tests/test_sandbox_isolation.py's).
    return {**os.environ, "HOME": str(home), "PODMAGIC_SANDBOX_ISOLATION": "processes"}


def run_cli(*args: str, home: Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podmagic.sandbox", *args],
        capture_output=True,
        text=True,
        env=environment(home),
        cwd=cwd,
        timeout=30,
        check=False,
    )


@contextlib.contextmanager
def serving(*args: str, home: Path) -> Iterator[subprocess.Popen[str]]:
    # A test run started with nohup has SIGHUP ignored, and the server would inherit that
    # (and rightly keep it): these tests are about a server that hears it. A handler, unlike
    # "ignored", is not inherited across exec.
    ignored = signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "podmagic.sandbox", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(home),
            cwd=REPO,
        )
    finally:
        if ignored:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def wait_for_kubeconfig(
    path: Path, process: subprocess.Popen[str], timeout: float = 30
) -> dict[str, Any]:
    """Poll for the kubeconfig; the moment it exists it must be complete and the server up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = path.read_text()
        except FileNotFoundError:
            assert process.poll() is None, f"the sandbox exited early: {process.communicate()}"
            assert time.monotonic() < deadline, "no kubeconfig appeared"
            time.sleep(0.002)
            continue
        config = yaml.safe_load(text)  # never a partial file: it always parses whole
        assert config["current-context"] == "podmagic-sandbox"
        server = urlsplit(config["clusters"][0]["cluster"]["server"])
        assert server.hostname and server.port
        socket.create_connection(
            (server.hostname, server.port), timeout=2
        ).close()  # accepting already
        return config  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def client_for(config: dict[str, Any]) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """An aiohttp session built from a kubeconfig document, and the server URL."""
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    context = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
    )
    sockets: list[socket.socket] = []

    def socket_factory(address: Any) -> socket.socket:
        family, kind, proto, _, _ = address
        sockets.append(socket.socket(family, kind, proto))
        return sockets[-1]

    connector = aiohttp.TCPConnector(ssl=context, socket_factory=socket_factory)
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {user['token']}"}, connector=connector
    ) as session:
        yield session, cluster["server"]
    await await_until(
        lambda: all(sock.fileno() == -1 for sock in sockets),
        what="every socket of the session closed",
        interval=0.005,
    )


@contextlib.asynccontextmanager
async def sleeping_exec(
    session: aiohttp.ClientSession, pod_url: str
) -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, Process]]:
    """An exec that sleeps in the pod, and its process (running)."""
    params = [
        ("command", "sh"),
        ("command", "-c"),
        ("command", "echo $$; exec sleep 1000"),
        ("stdout", "true"),
    ]
    async with session.ws_connect(
        f"{pod_url}/exec", params=params, protocols=["v5.channel.k8s.io"], autoclose=False
    ) as ws:
        output = b""
        while not output.endswith(b"\n"):
            message = await ws.receive(timeout=10)
            assert message.type is aiohttp.WSMsgType.BINARY
            output += message.data[1:]
        yield ws, Process.running_now(int(output))


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (the state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


@dataclass(frozen=True)
class Process:
    """A process by pid and start time: pids come round again (pid_max may be 32768), and a
    later process given the same pid is never taken for this one, nor killed in its place."""

    pid: int
    started: str

    @classmethod
    def running_now(cls, pid: int) -> Process:
        fields = _stat(pid)
        assert fields is not None and fields[0] not in ("Z", "X"), f"process {pid} is not running"
        return cls(pid, fields[19])  # field 22 of stat: the start time, in clock ticks

    def running(self) -> bool:
        fields = _stat(self.pid)
        # A zombie has ended: it only waits to be reaped.
        return fields is not None and fields[0] not in ("Z", "X") and fields[19] == self.started

    def kill(self) -> None:
        if self.running():
            os.kill(self.pid, signal.SIGKILL)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("signum", "manifest", "namespace", "pod"),
    [
        (signal.SIGTERM, None, "demo", "db-0"),
        (signal.SIGINT, CLUSTER, "conf", "solo"),
    ],
    ids=["demo-SIGTERM", "manifest-SIGINT"],
)
async def test_serve_until_signalled(
    tmp_path: Path, signum: signal.Signals, manifest: Path | None, namespace: str, pod: str
) -> None:
    out = tmp_path / "out" / "kubeconfig"
    args = ["--kubeconfig", str(out)] + (["--manifest", str(manifest)] if manifest else [])
    with serving(*args, home=tmp_path / "home") as process:
        config = wait_for_kubeconfig(out, process)
        assert stat.S_IMODE(out.stat().st_mode) == 0o600  # it holds a token
        assert sorted(os.listdir(out.parent)) == ["kubeconfig"]  # no temporary file left beside it
        assert config["contexts"][0]["context"]["namespace"] == "default"

        async with client_for(config) as (session, server):
            async with session.get(f"{server}/api/v1/namespaces/{namespace}/pods") as response:
                assert response.status == 200
                pods = [item["metadata"]["name"] for item in (await response.json())["items"]]
            if manifest is None:
                assert len(pods) == 12 and {"db-0", "db-1", "toolbox"} <= set(pods)
                assert sum(name.startswith("web-") for name in pods) == 3
                assert sum(name.startswith("node-agent-") for name in pods) == 3
            else:
                assert pods[:8] == [
                    "db-0",
                    "db-1",
                    "done",
                    "multi",
                    "multi-default",
                    "pending",
                    "solo",
                    "unready",
                ]
                assert len(pods) == 11

            async with sleeping_exec(
                session, f"{server}/api/v1/namespaces/{namespace}/pods/{pod}"
            ) as (
                ws,
                sleeper,
            ):
                process.send_signal(signum)
                # The exec sleeps 1000 s: stopping does not wait for it (the bound is a hang's).
                code = await anyio.to_thread.run_sync(lambda: process.wait(timeout=30))
                frames = []
                with anyio.fail_after(5):
                    while (message := await ws.receive()).type is aiohttp.WSMsgType.BINARY:
                        frames.append(message.data)
                await ws.close()

    stdout, stderr = process.communicate()
    assert code == 0, stderr
    assert not out.exists()  # removed on the way out
    assert not sleeper.running()  # the exec's sleep did not outlive the sandbox
    assert stdout.splitlines()[0].startswith("podmagic sandbox serving https://127.0.0.1:")
    assert f"kubeconfig {out} (context podmagic-sandbox)" in stdout.splitlines()[0]
    assert stdout.splitlines()[-1] == "podmagic sandbox stopped"
    # The exec was told its command was killed, then the stream closed normally.
    assert [frame[0] for frame in frames] == [3]
    assert json.loads(frames[0][1:])["details"]["causes"][0] == {
        "reason": "ExitCode",
        "message": "137",
    }
    assert message.type is aiohttp.WSMsgType.CLOSE and message.data == 1000


def test_missing_manifest_is_exit_2_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "kubeconfig"
    missing = tmp_path / "nowhere.yaml"
    result = run_cli(
        "serve", "--manifest", str(missing), "--kubeconfig", str(out), home=tmp_path / "home"
    )
    assert result.returncode == 2
    assert (
        result.stderr == f"error: manifest {missing} does not exist; pass a Kubernetes YAML file\n"
    )
    assert result.stdout == ""
    assert not out.exists()


def test_bad_manifest_is_exit_2_with_one_line(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n"
        "    sandbox.podmagic.io/ready: maybe\nspec: {containers: [{name: c, image: i}]}\n"
    )
    out = tmp_path / "kubeconfig"
    result = run_cli(
        "serve", "--manifest", str(manifest), "--kubeconfig", str(out), home=tmp_path / "home"
    )
    assert result.returncode == 2
    assert result.stderr == (
        f'error: {manifest}: Pod "p" is invalid: metadata.annotations[sandbox.podmagic.io/ready]: '
        'Invalid value: "maybe": expected true or false\n'
    )
    assert not out.exists()


def test_refuses_the_users_own_kubeconfig(tmp_path: Path) -> None:
    home = tmp_path / "home"
    own = home / ".kube" / "config"
    link = tmp_path / "looks-harmless"
    link.symlink_to(own)
    for exists in (False, True):
        if exists:
            own.parent.mkdir(parents=True)
            own.write_text("sentinel: keep me\n")
        for spelling in ("~/.kube/config", str(own), str(link), ".kube/../.kube/config"):
            result = run_cli("serve", "--empty", "--kubeconfig", spelling, home=home, cwd=home)
            assert (result.returncode, result.stderr, result.stdout) == (2, REFUSAL, ""), spelling
            if exists:
                assert own.read_text() == "sentinel: keep me\n"
            else:
                assert not own.exists() and not own.parent.exists()


@pytest.mark.anyio
async def test_serve_cleans_up_on_sighup(tmp_path: Path) -> None:
    # A closed terminal: the CLI handles SIGINT and SIGTERM itself; SIGHUP still ends it, as
    # by default, but only after the sandbox stopped: neither its kubeconfig nor a pod is left.
    out = tmp_path / "kubeconfig"
    with serving("--kubeconfig", str(out), home=tmp_path / "home") as process:
        config = wait_for_kubeconfig(out, process)
        async with client_for(config) as (session, server):
            pod_url = f"{server}/api/v1/namespaces/demo/pods/db-0"
            async with sleeping_exec(session, pod_url) as (ws, pod):
                process.send_signal(signal.SIGHUP)
                code = await anyio.to_thread.run_sync(lambda: process.wait(timeout=30))
                await ws.close()
    deadline = time.monotonic() + 30
    while pod.running() and time.monotonic() < deadline:
        await anyio.sleep(0.02)
    survived = pod.running()
    pod.kill()  # not left behind by this test either
    assert not survived
    assert code == -signal.SIGHUP
    assert not out.exists()

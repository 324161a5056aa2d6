"""The sandbox the benchmarks run against, in a process of its own.

The server runs as ``python -m podmagic.sandbox serve`` so that the client processes being
measured share nothing with it but the machine. Its own CPU time (and that of the pod
processes it has reaped) is read from ``/proc`` so every measurement can say how busy the
server was.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .cores import affinity, pin_to

NAMESPACE = "bench"
#: Pods carry ``s<N>: "y"`` for every group size N they belong to, so ``-l s100=y`` names the
#: first 100 pods. Names sort in index order: ``p0000`` ...
GROUPS = (1, 5, 10, 20, 50, 100, 200, 500, 1000)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def pod_name(index: int) -> str:
    return f"p{index:04d}"


def pod_names(count: int) -> list[str]:
    return [pod_name(i) for i in range(count)]


def selector(count: int) -> str:
    if count not in GROUPS:
        raise ValueError(f"group sizes are {GROUPS}, not {count}")
    return f"s{count}=y"


def manifest(pods: int) -> str:
    """Namespace ``bench`` with ``pods`` single-container pods on four nodes."""
    docs = [f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n"]
    for node in range(4):
        docs.append(f"apiVersion: v1\nkind: Node\nmetadata: {{name: node-{node}}}\n")
    for index in range(pods):
        labels = ", ".join(f's{size}: "y"' for size in GROUPS if index < size)
        docs.append(
            "apiVersion: v1\nkind: Pod\n"
            f"metadata: {{name: {pod_name(index)}, namespace: {NAMESPACE}, "
            f"labels: {{app: bench, {labels}}}}}\n"
            f"spec: {{nodeName: node-{index % 4}, containers: [{{name: main, image: busybox}}]}}\n"
        )
    return "---\n".join(docs)


def _proc_cpu(pid: int) -> float:
    """utime+stime of ``pid`` and of the children it has reaped, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[1].split()
    # After the ")": state is field 3; utime 14, stime 15, cutime 16, cstime 17 (1-based).
    return sum(int(value) for value in fields[11:15]) / CLK_TCK


def proc_status_kib(pid: int, key: str) -> int:
    """A ``kB`` line of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _running(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and all(c.get("ready") for c in containers)


@dataclass
class SandboxProcess:
    """``python -m podmagic.sandbox serve`` with a generated manifest; a context manager."""

    pods: int
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="podmagic-bench-")))
    #: More ``serve`` options (``--insecure-http``: plain HTTP, to measure without TLS).
    options: tuple[str, ...] = ()
    #: The cores the server (and its pods) may use; None: wherever the system puts it.
    cores: frozenset[int] | None = None
    process: subprocess.Popen[bytes] | None = None
    #: Seconds until the server answered (its kubeconfig written).
    started_in: float = 0.0
    #: Seconds after that until every pod ran and the server was idle (see :meth:`settle`).
    settled_in: float = 0.0

    @property
    def kubeconfig(self) -> Path:
        return self.folder / "kubeconfig"

    def start(self, timeout: float = 300.0) -> SandboxProcess:
        path = self.folder / "manifest.yaml"
        path.write_text(manifest(self.pods), encoding="utf-8")
        log = open(self.folder / "sandbox.log", "wb")  # noqa: SIM115 - closed by the child's exit
        began = time.perf_counter()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "podmagic.sandbox",
                "serve",
                "--manifest",
                str(path),
                "--kubeconfig",
                str(self.kubeconfig),
                "--state-dir",
                str(self.folder / "state"),
                *self.options,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # The processes that start sandboxes run no threads, so a preexec_fn is safe.
            preexec_fn=pin_to(self.cores),  # noqa: PLW1509
        )
        log.close()
        deadline = time.monotonic() + timeout
        # The kubeconfig is written once the server accepts connections.
        while not self.kubeconfig.exists():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the sandbox exited with {self.process.returncode}: "
                    + (self.folder / "sandbox.log").read_text(errors="replace")
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the sandbox did not start within {timeout:g}s")
            time.sleep(0.05)
        self.started_in = time.perf_counter() - began
        try:
            self.settle(deadline)
        except BaseException:
            self.stop()
            raise
        self.settled_in = time.perf_counter() - began - self.started_in
        return self

    #: The server counts as idle once it spends at most this share of a core over a window.
    IDLE_SHARE = 0.05
    IDLE_WINDOW = 0.5

    def settle(self, deadline: float) -> None:
        """Wait until every pod runs and the server is idle, by ``deadline`` (monotonic).

        The server answers before its pods have started (pods start Pending, as in a cluster;
        with isolation, hundreds take tens of seconds), and starting them keeps its core
        busy: a measurement begun then times the start-up, not the client. So nothing is
        measured before all :attr:`pods` are Running and the server has spent at most
        :data:`IDLE_SHARE` of its core for a whole :data:`IDLE_WINDOW`.
        """
        while self.running_pods() < self.pods:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the sandbox exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {self.running_pods()} of the sandbox's {self.pods} pods run "
                    f"after {self.started_in:.0f}s+"
                )
            time.sleep(0.5)
        while time.monotonic() < deadline:
            before = self.cpu_seconds()
            time.sleep(self.IDLE_WINDOW)
            if self.cpu_seconds() - before <= self.IDLE_SHARE * self.IDLE_WINDOW:
                return
        # Still busy: measured anyway, and said so.
        print("the sandbox was still busy when the measurements began", file=sys.stderr)

    def running_pods(self) -> int:
        """How many pods of namespace ``bench`` are Running with every container ready.

        Asked with a plain HTTPS request (the kubeconfig's CA and token): the processes that
        start the workers must run no threads (``preexec_fn``), so no podmagic here.
        """
        config = yaml.safe_load(self.kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        token = config["users"][0]["user"].get("token")
        parts = urlsplit(cluster["server"])
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            context = ssl.create_default_context(
                cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
            )
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, context=context, timeout=30
            )
        else:
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            connection.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods", headers=headers)
            answer = connection.getresponse()
            body = answer.read()
        except OSError:
            return 0
        finally:
            connection.close()
        if answer.status != 200:
            return 0
        items: list[dict[str, Any]] = json.loads(body).get("items", [])
        return sum(1 for pod in items if _running(pod))

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return _proc_cpu(self.process.pid)

    def affinity(self) -> list[int]:
        """The cores the server process may run on, as the system reports them."""
        assert self.process is not None
        return affinity(self.process.pid)

    def rss_mib(self) -> float:
        assert self.process is not None
        return proc_status_kib(self.process.pid, "VmRSS") / 1024

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        subprocess.run(["rm", "-rf", str(self.folder)], check=False)

    def __enter__(self) -> SandboxProcess:  # noqa: PYI034 - Self needs Python 3.11
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

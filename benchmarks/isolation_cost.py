"""What isolating the sandbox's pods costs: main processes starting, pod start, exec latency.

    .venv/bin/python -m benchmarks.isolation_cost [--start-pods 1000] [--repeat 3]
                                                  [--pods 200] [--execs 50]

Each measurement runs in both modes (``processes``, ``namespaces``: the
``PODMAGIC_SANDBOX_ISOLATION`` variable), in a process of its own, the modes interleaved:

* **main processes start** (``--start-pods``; 0 skips it): a sandbox is started with that many
  single-container pods whose command is ``sleep 3600``; the time from ``Sandbox.start()``
  until every pod's main process is running (the container runtime holds a started process
  for each, and none failed), and the CPU the sandbox's process spent meanwhile (its own: the
  pods' processes are not reaped until they end). ``--repeat`` times; the median and the
  range. The sandbox's state folder (the pods' roots, ``/etc`` layers, volumes and logs) is
  a new temporary folder, as by default, or one under ``--state-parent`` (``/dev/shm``, say:
  on a slow disk the pods' files cost more than their processes).
* **exec** (``--pods``, ``--execs``; 0 skips it): a sandbox is served in a process of its own
  (``python -m podmagic.sandbox serve``) with ``--pods`` pods without a command, and podmagic's
  ``Cluster`` runs ``true`` in every pod at once, twice. The first run makes each pod's
  sandbox (its namespaces, root, ``/etc``, volumes, service account token) as the first exec
  in a pod does; the second finds them made. Their difference is what starting the pods
  cost, in wall time and in the server's CPU (its own and its reaped children's, from
  ``/proc``). Then ``--execs`` runs of ``true`` in one pod, one after the other: the median
  wall time of a run, and the server's CPU per exec (with the ``nsenter`` and ``setpriv`` it
  reaps when isolated).

The machine's load average is printed with each measurement: on a shared machine the wall
times say as much about the load as about the sandbox.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from podmagic import Cluster

CLK_TCK = os.sysconf("SC_CLK_TCK")
MODES = ("processes", "namespaces")
_VARIABLE = "PODMAGIC_SANDBOX_ISOLATION"


def _manifest(pods: int, command: str = "") -> str:
    docs = ["apiVersion: v1\nkind: Namespace\nmetadata: {name: cost}\n"]
    for index in range(pods):
        docs.append(
            "apiVersion: v1\nkind: Pod\n"
            f"metadata: {{name: p{index:04d}, namespace: cost, labels: {{app: cost}}}}\n"
            f"spec:\n  containers:\n  - {{name: main, image: busybox{command}}}\n"
        )
    return "---\n".join(docs)


def _cpu(pid: int) -> float:
    """Seconds of CPU of ``pid`` and of the children it has reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLK_TCK


def _load() -> str:
    return "load average " + " ".join(f"{value:.1f}" for value in os.getloadavg())


# ---- main processes starting ---------------------------------------------------------------


def _main_processes(cluster: Any) -> tuple[int, int]:
    """(running, failed) main processes of ``cluster``'s pods (on the sandbox's loop)."""
    from podmagic.sandbox._containers import _runtimes
    from podmagic.sandbox._runner import RunningProcess

    running = failed = 0
    runtime = _runtimes.get(cluster)
    for pod in runtime.pods.values() if runtime is not None else ():
        for container in pod.containers.values():
            instance = container.instance
            if instance is not None and isinstance(instance.process, RunningProcess):
                running += 1
            elif "terminated" in container.state:
                failed += 1
    return running, failed


def start_child(pods: int, limit: float, state_parent: str | None) -> None:
    """In a process of its own: start a sandbox of ``pods`` pods with main processes, wait
    until they all run, print the figures as one JSON line."""
    from podmagic.sandbox import Sandbox

    manifest = _manifest(pods, ", command: [sleep, '3600']")
    state = tempfile.mkdtemp(prefix="podmagic-cost-", dir=state_parent) if state_parent else None
    before = os.times()
    started = time.perf_counter()
    sandbox = Sandbox(manifest, state_dir=state).start()
    try:
        running = failed = 0
        while time.perf_counter() - started < limit:
            running, failed = sandbox.call(_main_processes, sandbox.cluster)
            if running + failed >= pods:
                break
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        after = os.times()
        figures = {
            "mode": sandbox.isolation,
            "running": running,
            "failed": failed,
            "seconds": seconds,
            "cpu_s": (after.user + after.system) - (before.user + before.system),
        }
    finally:
        sandbox.stop()
        if state is not None:  # a state folder given to the sandbox is the caller's to remove
            shutil.rmtree(state, ignore_errors=True)
    print(json.dumps(figures), flush=True)


def measure_start(mode: str, pods: int, limit: float, state_parent: str | None) -> dict[str, Any]:
    """:func:`start_child` in a new process with pods isolated (or not) as ``mode`` says."""
    where = ["--state-parent", state_parent] if state_parent else []
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.isolation_cost", "--start-child", str(pods), *where],
        env={**os.environ, _VARIABLE: mode},
        capture_output=True,
        text=True,
        timeout=limit + 300,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the {mode} start measurement failed: {done.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(lines[-1])
    if figures["running"] != pods:
        raise RuntimeError(f"{mode}: {figures['running']} of {pods} main processes ran: {figures}")
    return figures


# ---- execs -----------------------------------------------------------------------------------


def measure_execs(mode: str, pods: int, execs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="podmagic-cost-") as folder:
        manifest = Path(folder, "cluster.yaml")
        manifest.write_text(_manifest(pods))
        kubeconfig = Path(folder, "kubeconfig")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "podmagic.sandbox",
                "serve",
                "--manifest",
                str(manifest),
                "--kubeconfig",
                str(kubeconfig),
            ],
            env={**os.environ, _VARIABLE: mode},
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            print(f"  {server.stdout.readline().strip()}", file=sys.stderr)
            print(f"  {server.stdout.readline().strip()}", file=sys.stderr)
            cluster = Cluster(kubeconfig=str(kubeconfig))
            walls, cpus = [], []
            for _ in range(2):
                cpu, start = _cpu(server.pid), time.perf_counter()
                results = cluster.run("true", selector="app=cost", namespace="cost", yes=True)
                walls.append(time.perf_counter() - start)
                cpus.append(_cpu(server.pid) - cpu)
                assert results.ok, results
            latencies = []
            cpu = _cpu(server.pid)
            for _ in range(execs):
                start = time.perf_counter()
                assert cluster.run("true", "p0000", namespace="cost").ok
                latencies.append(time.perf_counter() - start)
            exec_cpu = (_cpu(server.pid) - cpu) / execs
            cluster.close()
        finally:
            server.terminate()
            server.wait(timeout=60)
    return {
        "first run (s)": walls[0],
        "second run (s)": walls[1],
        "pod start, wall (ms/pod)": (walls[0] - walls[1]) / pods * 1000,
        "pod start, server CPU (ms/pod)": (cpus[0] - cpus[1]) / pods * 1000,
        "exec latency, median (ms)": statistics.median(latencies) * 1000,
        "server CPU per exec (ms)": exec_cpu * 1000,
    }


def _spread(values: list[float], digits: int = 1) -> str:
    median = f"{statistics.median(values):.{digits}f}"
    if len(values) == 1:
        return median
    return f"{median} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start-pods", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--execs", type=int, default=50)
    parser.add_argument("--limit", type=float, default=600.0, help="seconds a start may take")
    parser.add_argument(
        "--state-parent", help="make the start's state folders here (default: the temp folder)"
    )
    parser.add_argument("--start-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.start_child is not None:
        start_child(args.start_child, args.limit, args.state_parent)
        return
    if args.start_pods:
        starts: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for round_number in range(args.repeat):
            for mode in MODES:
                print(f"start {round_number + 1}/{args.repeat}, {mode}: {_load()}", file=sys.stderr)
                figures = measure_start(mode, args.start_pods, args.limit, args.state_parent)
                print(f"  {figures}", file=sys.stderr)
                starts[mode].append(figures)
        where = f"state in {args.state_parent}" if args.state_parent else "state in the temp folder"
        print(
            f"| {args.start_pods} pods with main processes, {where}, {args.repeat} runs: "
            "median (min–max) | processes | namespaces |"
        )
        print("|---|---|---|")
        for key, shown in (("seconds", "all main processes running, s"), ("cpu_s", "CPU, s")):
            cells = [_spread([run[key] for run in starts[mode]]) for mode in MODES]
            print(f"| {shown} | {cells[0]} | {cells[1]} |")
        print()
    if args.pods and args.execs:
        table = {}
        for mode in MODES:
            print(f"execs, {mode}: {_load()}", file=sys.stderr)
            table[mode] = measure_execs(mode, args.pods, args.execs)
        print(f"| {args.pods} pods, {args.execs} execs | processes | namespaces |")
        print("|---|---|---|")
        for key in table["processes"]:
            print(f"| {key} | {table['processes'][key]:.1f} | {table['namespaces'][key]:.1f} |")
    print(f"at the end: {_load()}", file=sys.stderr)


if __name__ == "__main__":
    main()

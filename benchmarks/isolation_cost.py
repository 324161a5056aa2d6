"""What isolating the sandbox's pods costs: pod start and exec latency, in both modes.

    .venv/bin/python -m benchmarks.isolation_cost [--pods 200] [--execs 50]

For each mode (``processes``, then ``namespaces``) a sandbox is served in a process of its
own (``python -m podmagic.sandbox serve``) with ``--pods`` single-container pods, and
podmagic's ``Cluster`` runs against it:

* **pod start**: ``true`` in every pod at once, twice. The first run makes each pod's
  sandbox (its namespaces, root, ``/etc``, volumes, service account token) as the first exec
  in a pod does; the second finds them made. Their difference is what starting the pods
  cost, in wall time and in the server's CPU (its own and its reaped children's, from
  ``/proc``).
* **exec latency**: ``--execs`` runs of ``true`` in one pod, one after the other: the median
  wall time of a run, and the server's CPU per exec.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from podmagic import Cluster

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _manifest(pods: int) -> str:
    docs = ["apiVersion: v1\nkind: Namespace\nmetadata: {name: cost}\n"]
    for index in range(pods):
        docs.append(
            "apiVersion: v1\nkind: Pod\n"
            f"metadata: {{name: p{index:04d}, namespace: cost, labels: {{app: cost}}}}\n"
            "spec:\n  containers:\n  - {name: main, image: busybox}\n"
        )
    return "---\n".join(docs)


def _cpu(pid: int) -> float:
    """Seconds of CPU of ``pid`` and of the children it has reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLK_TCK


def measure(mode: str, pods: int, execs: int) -> dict[str, float]:
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
            env={**os.environ, "PODMAGIC_SANDBOX_ISOLATION": mode},
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--execs", type=int, default=50)
    args = parser.parse_args()
    table = {}
    for mode in ("processes", "namespaces"):
        print(f"{mode}:", file=sys.stderr)
        table[mode] = measure(mode, args.pods, args.execs)
    print(f"| {args.pods} pods, {args.execs} execs | processes | namespaces |")
    print("|---|---|---|")
    for key in table["processes"]:
        print(f"| {key} | {table['processes'][key]:.1f} | {table['namespaces'][key]:.1f} |")


if __name__ == "__main__":
    main()

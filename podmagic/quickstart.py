"""``python -m podmagic.quickstart``: a short tour against the embedded sandbox cluster.

Starts the demo sandbox, runs a command in one pod, fans one out across a Deployment's pods,
shows the skipped pods and their reasons, and turns every pod's ``df`` output into one table.
"""

from __future__ import annotations

import sys

from .client import Cluster
from .sandbox import Sandbox


def main() -> int:
    with Sandbox() as sandbox:
        cluster = Cluster(kubeconfig=sandbox.kubeconfig, namespace="demo")
        print(f"sandbox cluster at {sandbox.url}, context {cluster.context}, namespace {cluster.namespace}")
        print(f"pods: {', '.join(sandbox.pods('demo'))}\n")

        print("== one pod: hostname in db-0")
        one = cluster.run("hostname; echo $PGDATA", "db-0")
        print(one.stdout_text)

        print("== fan-out: every pod of deploy/web")
        web = cluster.run("echo $POD_NAME on $NODE_NAME; cat /proc/loadavg | cut -d' ' -f1", "deploy/web")
        print(web)

        print("\n== a selector with unready pods: tier=backend (skipped pods are reported, not run)")
        backend = cluster.run("uptime", selector="tier=backend")
        print(backend.to_dataframe()[["pod", "status", "exit_code", "error"]].to_string(index=False))

        print("\n== one table from many pods: df -P . parsed across app=web")
        frame = cluster.run("df -P .", selector="app=web").check().parse("table")
        print(frame.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

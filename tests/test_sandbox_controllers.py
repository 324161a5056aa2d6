"""The sandbox's controllers as kubectl 1.30/1.33 and the official client see them: deleted pods
come back (a new name for a Deployment's, the same for a StatefulSet's), ``scale`` and PATCH of
``spec.replicas`` add and remove pods, ``rollout status`` finishes, Jobs complete or fail, a
deleted workload takes its pods, and podmagic's targets skip the pods that are not running.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from _waiting import wait_until
from conftest import KubectlRunner, missing_tool

from podmagic import Cluster
from podmagic.sandbox import Sandbox

START_DELAY = "sandbox.podmagic.io/start-delay"


@pytest.fixture(params=["1.30", "1.33"], scope="module")
def kubectl(request: pytest.FixtureRequest, kubectl_factory: Any) -> KubectlRunner:
    runner: KubectlRunner = kubectl_factory(request.param)
    return runner


@pytest.fixture
def ns(sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own in the session's sandbox, removed afterwards."""
    assert sandbox.cluster is not None
    name = "ctl-" + str(abs(hash(request.node.nodeid)) % 10**8)
    sandbox.call(sandbox.cluster.add_namespace, name)
    yield name
    sandbox.call(sandbox.cluster.delete_namespace, name)


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def workload(
    kind: str, name: str, replicas: int = 2, annotations: dict[str, str] | None = None
) -> bytes:
    group = "batch/v1" if kind == "Job" else "apps/v1"
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}, "annotations": annotations or {}},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
        },
    }
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        spec["replicas"] = replicas
    if kind == "Job":
        del spec["selector"]
        spec["template"]["spec"]["restartPolicy"] = "Never"
    body = {"apiVersion": group, "kind": kind, "metadata": {"name": name}, "spec": spec}
    return json.dumps(body).encode()


def pods(kubectl: KubectlRunner, ns: str, selector: str) -> list[str]:
    out = ok(kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "name"))
    return sorted(line.removeprefix("pod/") for line in out.split())


def live_pods(sandbox: Sandbox, ns: str, prefix: str) -> list[str]:
    """The pods named ``prefix...`` that are not being deleted."""
    assert sandbox.cluster is not None
    cluster = sandbox.cluster

    def names() -> list[str]:
        return sorted(
            pod["metadata"]["name"]
            for pod in cluster.list_pods(ns)
            if pod["metadata"]["name"].startswith(prefix)
            and "deletionTimestamp" not in pod["metadata"]
        )

    return sandbox.call(names)


def uid_of(kubectl: KubectlRunner, ns: str, pod: str) -> str:
    return ok(kubectl("get", "pod", pod, "-n", ns, "-o", "jsonpath={.metadata.uid}")).strip()


# -- Deployments and ReplicaSets --------------------------------------------------------------


def test_a_deleted_deployment_pod_is_replaced_under_a_new_name(
    kubectl: KubectlRunner, ns: str, sandbox: Sandbox
) -> None:
    ok(kubectl("apply", "-n", ns, "-f", "-", input=workload("Deployment", "web", 3)))
    before = pods(kubectl, ns, "app=web")
    assert len(before) == 3
    ok(kubectl("delete", "pod", before[0], "-n", ns, "--timeout=60s"))
    after = wait_until(
        lambda: (names := live_pods(sandbox, ns, "web-")) and len(names) == 3 and names,
        what="the Deployment has 3 pods again",
    )
    assert before[0] not in after and set(before[1:]) <= set(after)
    (new,) = set(after) - set(before)
    assert new.startswith(before[0].rsplit("-", 1)[0] + "-")  # the same ReplicaSet's
    ok(kubectl("rollout", "status", "deploy/web", "-n", ns, "--timeout=60s"))
    row = ok(kubectl("get", "deploy", "web", "-n", ns, "--no-headers")).split()
    assert row[1:4] == ["3/3", "3", "3"]
    events = ok(kubectl("get", "events", "-n", ns, "--field-selector", "reason=SuccessfulCreate"))
    assert f"Created pod: {new}" in events


def test_scale_and_a_patch_of_replicas_add_and_remove_pods_and_rollout_status_finishes(
    kubectl: KubectlRunner, ns: str, sandbox: Sandbox
) -> None:
    ok(kubectl("apply", "-n", ns, "-f", "-", input=workload("Deployment", "api", 1)))
    ok(kubectl("scale", "deploy/api", "-n", ns, "--replicas=3"))
    assert len(live_pods(sandbox, ns, "api-")) == 3
    ok(kubectl("patch", "deploy", "api", "-n", ns, "-p", '{"spec":{"replicas":2}}'))
    wait_until(lambda: len(live_pods(sandbox, ns, "api-")) == 2, what="2 pods are left")
    out = ok(kubectl("rollout", "status", "deploy/api", "-n", ns, "--timeout=60s"))
    assert out.strip() == 'deployment "api" successfully rolled out'
    deploy = json.loads(ok(kubectl("get", "deploy", "api", "-n", ns, "-o", "json")))
    status = deploy["status"]
    assert status["observedGeneration"] == deploy["metadata"]["generation"]
    assert (status["replicas"], status["readyReplicas"], status["updatedReplicas"]) == (2, 2, 2)
    assert {c["type"]: c["reason"] for c in status["conditions"]} == {
        "Available": "MinimumReplicasAvailable",
        "Progressing": "NewReplicaSetAvailable",
    }
    scaled = ok(kubectl("get", "events", "-n", ns, "--field-selector", "reason=ScalingReplicaSet"))
    assert "Scaled up replica set" in scaled and "from 1 to 3" in scaled
    assert "Scaled down replica set" in scaled and "from 3 to 2" in scaled


def test_a_new_template_rolls_out_a_new_replicaset_and_rollout_status_waits_for_it(
    kubectl: KubectlRunner, ns: str, sandbox: Sandbox
) -> None:
    ok(kubectl("apply", "-n", ns, "-f", "-", input=workload("Deployment", "app", 2)))
    old_rs = ok(kubectl("get", "rs", "-n", ns, "-o", "name")).split()
    ok(kubectl("set", "image", "deploy/app", "main=busybox:1.37", "-n", ns))
    out = ok(kubectl("rollout", "status", "deploy/app", "-n", ns, "--timeout=60s"))
    assert out.strip().endswith('deployment "app" successfully rolled out')
    rs = json.loads(ok(kubectl("get", "rs", "-n", ns, "-o", "json")))["items"]
    replicas = {r["metadata"]["name"]: r["spec"]["replicas"] for r in rs}
    (new_rs,) = [name for name in replicas if f"replicaset.apps/{name}" not in old_rs]
    assert replicas == {new_rs: 2, old_rs[0].removeprefix("replicaset.apps/"): 0}
    revisions = {
        r["metadata"]["name"]: r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        for r in rs
    }
    assert revisions[new_rs] == "2"
    wait_until(
        lambda: (
            all(p.startswith(new_rs + "-") for p in live_pods(sandbox, ns, "app-"))
            and len(live_pods(sandbox, ns, "app-")) == 2
        ),
        what="only the new ReplicaSet's pods run",
    )


# -- StatefulSets -----------------------------------------------------------------------------


def test_a_deleted_statefulset_pod_comes_back_under_its_name_with_a_new_uid(
    kubectl: KubectlRunner, ns: str, sandbox: Sandbox
) -> None:
    ok(kubectl("apply", "-n", ns, "-f", "-", input=workload("StatefulSet", "db", 2)))
    assert pods(kubectl, ns, "app=db") == ["db-0", "db-1"]
    before = uid_of(kubectl, ns, "db-0")
    # kubectl delete returns once the old db-0 is gone (the new one comes a moment later).
    ok(kubectl("delete", "pod", "db-0", "-n", ns, "--timeout=60s"))
    wait_until(lambda: live_pods(sandbox, ns, "db-") == ["db-0", "db-1"], what="db-0 is back")
    ok(kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/db-0", "--timeout=60s"))
    assert uid_of(kubectl, ns, "db-0") != before
    out = ok(kubectl("rollout", "status", "sts/db", "-n", ns, "--timeout=60s"))
    assert "roll out complete: 2 new pods" in out


def test_an_ordered_statefulset_makes_one_pod_at_a_time_and_scales_down_from_the_top(
    kubectl: KubectlRunner, ns: str, sandbox: Sandbox
) -> None:
    body = workload("StatefulSet", "q", 3, {START_DELAY: "1"})
    ok(kubectl("apply", "-n", ns, "-f", "-", input=body))
    # q-0 is ContainerCreating: q-1 waits until it is Running and Ready.
    assert pods(kubectl, ns, "app=q") == ["q-0"]
    out = ok(kubectl("rollout", "status", "sts/q", "-n", ns, "--timeout=60s"))
    assert "Waiting for" in out and "roll out complete: 3 new pods" in out
    assert pods(kubectl, ns, "app=q") == ["q-0", "q-1", "q-2"]
    ok(kubectl("scale", "sts/q", "-n", ns, "--replicas=1"))
    wait_until(lambda: live_pods(sandbox, ns, "q-") == ["q-0"], what="only q-0 is left")
    events = ok(kubectl("get", "events", "-n", ns, "--field-selector", "reason=SuccessfulDelete"))
    assert "delete Pod q-2 in StatefulSet q successful" in events


# -- DaemonSets, Jobs, ReplicationControllers -------------------------------------------------


def test_a_daemonset_keeps_one_pod_per_node(
    kubectl: KubectlRunner, ns: str, sandbox: Sandbox
) -> None:
    ok(kubectl("apply", "-n", ns, "-f", "-", input=workload("DaemonSet", "agent")))
    wide = ok(kubectl("get", "pods", "-n", ns, "-o", "wide", "--no-headers")).splitlines()
    nodes = sorted(row.split()[6] for row in wide)
    assert nodes == ["sandbox-node-1", "sandbox-node-2", "sandbox-node-3"]
    victim = wide[0].split()[0]
    ok(kubectl("delete", "pod", victim, "-n", ns, "--timeout=60s"))
    wait_until(
        lambda: len(names := live_pods(sandbox, ns, "agent-")) == 3 and victim not in names,
        what="the DaemonSet has a pod on every node again",
    )
    ok(kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=60s"))


def test_a_job_runs_its_completions_one_after_another_and_completes(
    kubectl: KubectlRunner, ns: str
) -> None:
    body = json.loads(
        workload("Job", "batch", annotations={"sandbox.podmagic.io/phase": "Succeeded"})
    )
    body["spec"].update({"completions": 3, "parallelism": 1})
    ok(kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(body).encode()))
    out = ok(kubectl("wait", "-n", ns, "--for=condition=complete", "job/batch", "--timeout=60s"))
    assert out.strip() == "job.batch/batch condition met"
    job = json.loads(ok(kubectl("get", "job", "batch", "-n", ns, "-o", "json")))
    assert job["status"]["succeeded"] == 3 and "active" not in job["status"]
    assert job["status"]["completionTime"]
    assert len(pods(kubectl, ns, "job-name=batch")) == 3


def test_a_job_whose_pods_fail_stops_after_its_backoff_limit(
    kubectl: KubectlRunner, ns: str
) -> None:
    body = json.loads(workload("Job", "flaky", annotations={"sandbox.podmagic.io/phase": "Failed"}))
    body["spec"]["backoffLimit"] = 2
    ok(kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(body).encode()))
    ok(kubectl("wait", "-n", ns, "--for=condition=failed", "job/flaky", "--timeout=60s"))
    job = json.loads(ok(kubectl("get", "job", "flaky", "-n", ns, "-o", "json")))
    assert job["status"]["failed"] == 3  # the first try and 2 retries
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"


def test_a_replication_controller_keeps_its_replicas(sandbox: Sandbox, ns: str) -> None:
    try:
        from kubernetes import client, config
    except ImportError:
        missing_tool("the kubernetes package is not installed (pip install '.[test]')")
        raise
    with config.new_client_from_config(config_file=str(sandbox.kubeconfig)) as api_client:
        core = client.CoreV1Api(api_client)
        core.create_namespaced_replication_controller(
            ns,
            {
                "metadata": {"name": "rc"},
                "spec": {
                    "replicas": 2,
                    "selector": {"app": "rc"},
                    "template": {
                        "metadata": {"labels": {"app": "rc"}},
                        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
                    },
                },
            },
        )
        names = [
            p.metadata.name for p in core.list_namespaced_pod(ns, label_selector="app=rc").items
        ]
        assert len(names) == 2 and all(n.startswith("rc-") for n in names)
        core.delete_namespaced_pod(names[0], ns)
        wait_until(
            lambda: (
                len(live_pods(sandbox, ns, "rc-")) == 2
                and names[0] not in live_pods(sandbox, ns, "rc-")
            ),
            what="the ReplicationController replaced the deleted pod",
        )
        core.patch_namespaced_replication_controller("rc", ns, {"spec": {"replicas": 3}})
        wait_until(lambda: len(live_pods(sandbox, ns, "rc-")) == 3, what="3 pods")
        rc = core.read_namespaced_replication_controller("rc", ns)
        assert (rc.status.replicas, rc.status.ready_replicas) == (3, 3)
        core.delete_namespaced_replication_controller("rc", ns)
        wait_until(lambda: live_pods(sandbox, ns, "rc-") == [], what="its pods are deleted")


# -- deletion of workloads ----------------------------------------------------------------------


def test_deleting_a_deployment_deletes_its_replicaset_and_pods_and_orphan_keeps_them(
    kubectl: KubectlRunner, ns: str, sandbox: Sandbox
) -> None:
    ok(kubectl("apply", "-n", ns, "-f", "-", input=workload("Deployment", "gone", 2)))
    ok(kubectl("apply", "-n", ns, "-f", "-", input=workload("Deployment", "kept", 2)))
    ok(kubectl("delete", "deploy", "gone", "-n", ns))
    wait_until(lambda: live_pods(sandbox, ns, "gone-") == [], what="its pods are deleted")
    ok(kubectl("delete", "deploy", "kept", "-n", ns, "--cascade=orphan"))
    assert len(live_pods(sandbox, ns, "kept-")) == 2
    left = ok(kubectl("get", "rs", "-n", ns, "-o", "name")).split()
    assert len(left) == 1 and left[0].startswith("replicaset.apps/kept-")
    rs = json.loads(ok(kubectl("get", left[0], "-n", ns, "-o", "json")))
    assert "ownerReferences" not in rs["metadata"]


def test_deletecollection_of_deployments_honours_the_selector(sandbox: Sandbox, ns: str) -> None:
    try:
        from kubernetes import client, config
    except ImportError:
        missing_tool("the kubernetes package is not installed (pip install '.[test]')")
        raise
    with config.new_client_from_config(config_file=str(sandbox.kubeconfig)) as api_client:
        apps = client.AppsV1Api(api_client)
        for name, tier in (("a", "x"), ("b", "x"), ("c", "y")):
            body = json.loads(workload("Deployment", name, 1))
            body["metadata"]["labels"] = {"tier": tier}
            apps.create_namespaced_deployment(ns, body)
        apps.delete_collection_namespaced_deployment(ns, label_selector="tier=x")
        left = [d.metadata.name for d in apps.list_namespaced_deployment(ns).items]
        assert left == ["c"]
        wait_until(
            lambda: live_pods(sandbox, ns, "a-") == live_pods(sandbox, ns, "b-") == [],
            what="their pods are deleted",
        )
        assert len(live_pods(sandbox, ns, "c-")) == 1


# -- podmagic's own targets -------------------------------------------------------------------


def test_podmagic_runs_in_running_ready_pods_only_skipping_creating_and_terminating_ones(
    kubectl: KubectlRunner, ns: str, sandbox: Sandbox
) -> None:
    ok(kubectl("apply", "-n", ns, "-f", "-", input=workload("Deployment", "mix", 2)))
    running = pods(kubectl, ns, "app=mix")
    # One pod Terminating (its process ignores SIGTERM), one ContainerCreating.
    stubborn = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "mix-stubborn", "labels": {"app": "mix"}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": [
                        "sh",
                        "-c",
                        "trap '' TERM; echo ready; while true; do sleep 0.05; done",
                    ],
                }
            ]
        },
    }
    ok(kubectl("create", "-n", ns, "-f", "-", input=json.dumps(stubborn).encode()))
    ok(kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/mix-stubborn", "--timeout=60s"))
    wait_until(
        lambda: "ready" in kubectl("logs", "mix-stubborn", "-n", ns).stdout.decode(),
        what="its main process set its SIGTERM trap",
    )
    ok(kubectl("delete", "pod", "mix-stubborn", "-n", ns, "--wait=false", "--grace-period=30"))
    creating = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "mix-creating",
            "labels": {"app": "mix"},
            "annotations": {START_DELAY: "600"},
        },
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }
    ok(kubectl("create", "-n", ns, "-f", "-", input=json.dumps(creating).encode()))
    cluster = Cluster(kubeconfig=sandbox.kubeconfig, namespace=ns)
    results = cluster.run("echo hi", selector="app=mix")
    assert sorted(r.pod for r in results if r.ok) == running
    skipped = {r.pod: r.error for r in results if r.status.value == "skipped"}
    assert set(skipped) == {"mix-stubborn", "mix-creating"}, skipped
    ok(kubectl("delete", "pod", "mix-stubborn", "-n", ns, "--grace-period=0", "--force"))


def test_kubectl_scale_of_a_replication_controller_adds_and_removes_pods(
    kubectl: KubectlRunner, ns: str, sandbox: Sandbox
) -> None:
    rc = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "old"},
        "spec": {
            "replicas": 1,
            "selector": {"app": "old"},
            "template": {
                "metadata": {"labels": {"app": "old"}},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            },
        },
    }
    ok(kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(rc).encode()))
    assert len(live_pods(sandbox, ns, "old-")) == 1
    ok(kubectl("scale", "rc/old", "-n", ns, "--replicas=3"))
    wait_until(lambda: len(live_pods(sandbox, ns, "old-")) == 3, what="3 pods")
    ok(kubectl("scale", "rc/old", "-n", ns, "--replicas=1"))
    wait_until(lambda: len(live_pods(sandbox, ns, "old-")) == 1, what="1 pod is left")

"""A pod's life in the sandbox as real clients see it: Pending → ContainerCreating → Running
(with the ``sandbox.podmagic.io/start-delay`` annotation), graceful deletion (Terminating for
the grace period, SIGTERM then SIGKILL, then gone), and deletecollection.

Checked with kubectl 1.30 and 1.33, the official client's ``watch.Watch``, kr8s and the raw API.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from _waiting import await_until, wait_until
from conftest import KubectlRunner, missing_tool
from sandbox_client import api_client

from podmagic.sandbox import Sandbox

pytestmark = pytest.mark.anyio

START_DELAY = "sandbox.podmagic.io/start-delay"
# A main process that takes SIGTERM as a cue to finish its work for a moment, then exits 0.
GRACEFUL = [
    "sh",
    "-c",
    "trap 'sleep 0.3; exit 0' TERM; echo ready; while true; do sleep 0.05; done",
]
# One that ignores SIGTERM: only SIGKILL (at the end of the grace period) ends it.
STUBBORN = ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.05; done"]


@pytest.fixture(params=["1.30", "1.33"], scope="module")
def kubectl(request: pytest.FixtureRequest, kubectl_factory: Any) -> KubectlRunner:
    runner: KubectlRunner = kubectl_factory(request.param)
    return runner


@pytest.fixture
def ns(sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own in the session's sandbox, removed afterwards."""
    assert sandbox.cluster is not None
    name = "life-" + str(abs(hash(request.node.nodeid)) % 10**8)
    sandbox.call(sandbox.cluster.add_namespace, name)
    yield name
    sandbox.call(sandbox.cluster.delete_namespace, name)


def pod_body(name: str, *, command: list[str] | None = None, **annotations: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox:1.36"}
    if command:
        container["command"] = command
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [container]},
    }


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def conditions(pod: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}


async def send(session: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with session.request(method, path, json=body) as response:
        return response.status, await response.json(content_type=None)


async def trap_set(session: Any, ns: str, pod: str) -> None:
    """Wait until the pod's main process has set its SIGTERM trap (it then logs ``ready``)."""

    async def logged() -> bool:
        async with session.get(f"/api/v1/namespaces/{ns}/pods/{pod}/log") as response:
            return response.status == 200 and "ready" in await response.text()

    await await_until(logged, what=f"the main process of {pod} set its trap")


def kubectl_trap_set(kubectl: KubectlRunner, ns: str, pod: str) -> None:
    """``trap_set`` through ``kubectl logs``."""
    wait_until(
        lambda: "ready" in kubectl("logs", pod, "-n", ns).stdout.decode(),
        what=f"the main process of {pod} set its trap",
    )


async def next_event(response: Any) -> dict[str, Any]:
    with anyio.fail_after(30):
        line = await response.content.readline()
    return json.loads(line)  # type: ignore[no-any-return]


# -- start ----------------------------------------------------------------------------------------


async def test_a_new_pod_is_pending_then_scheduled_then_creating_then_running_each_a_watch_event(
    sandbox: Sandbox, ns: str
) -> None:
    async with api_client(sandbox) as session:
        _, listed = await send(session, "GET", f"/api/v1/namespaces/{ns}/pods")
        version = listed["metadata"]["resourceVersion"]
        async with session.get(
            f"/api/v1/namespaces/{ns}/pods",
            params={"watch": "true", "resourceVersion": version},
        ) as response:
            code, _ = await send(
                session,
                "POST",
                f"/api/v1/namespaces/{ns}/pods",
                pod_body("p", **{START_DELAY: "0.5"}),
            )
            assert code == 201
            events = [await next_event(response) for _ in range(4)]
    types = [event["type"] for event in events]
    assert types == ["ADDED", "MODIFIED", "MODIFIED", "MODIFIED"]
    added, scheduled, creating, running = (event["object"] for event in events)
    # The apiserver stores it unscheduled; the scheduler binds it; the kubelet takes it.
    assert added["status"]["phase"] == "Pending" and "nodeName" not in added["spec"]
    assert scheduled["spec"]["nodeName"].startswith("sandbox-node-")
    assert conditions(scheduled) == {"PodScheduled": "True"}
    assert creating["status"]["phase"] == "Pending"
    assert creating["status"]["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "ContainerCreating"}
    }
    assert conditions(creating) == {
        "PodReadyToStartContainers": "False",
        "Initialized": "True",
        "Ready": "False",
        "ContainersReady": "False",
        "PodScheduled": "True",
    }
    assert "podIP" not in creating["status"]
    assert running["status"]["phase"] == "Running" and running["status"]["podIP"]
    assert conditions(running)["Ready"] == "True"
    times = {c["type"]: c["lastTransitionTime"] for c in running["status"]["conditions"]}
    before = {c["type"]: c["lastTransitionTime"] for c in creating["status"]["conditions"]}
    assert times["PodScheduled"] == before["PodScheduled"]  # unchanged status, unchanged time
    versions = [int(event["object"]["metadata"]["resourceVersion"]) for event in events]
    assert versions == sorted(versions) and len(set(versions)) == 4
    async with api_client(sandbox) as session:
        _, events_list = await send(
            session,
            "GET",
            f"/api/v1/namespaces/{ns}/events",
        )
    reasons = [e["reason"] for e in events_list["items"] if e["involvedObject"]["name"] == "p"]
    assert reasons[:1] == ["Scheduled"] and {"Pulled", "Created", "Started"} <= set(reasons)


def test_kubectl_shows_container_creating_until_the_start_delay_ends_and_waits_for_ready(
    kubectl: KubectlRunner, ns: str
) -> None:
    body = json.dumps(pod_body("slow", **{START_DELAY: "2"})).encode()
    ok(kubectl("create", "-n", ns, "-f", "-", input=body))
    row = ok(kubectl("get", "pod", "slow", "-n", ns, "--no-headers")).split()
    assert row[1:3] == ["0/1", "ContainerCreating"]
    out = ok(kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/slow", "--timeout=60s"))
    assert out.strip() == "pod/slow condition met"
    row = ok(kubectl("get", "pod", "slow", "-n", ns, "--no-headers")).split()
    assert row[1:3] == ["1/1", "Running"]


def test_a_start_delay_out_of_range_is_refused_in_the_annotation_s_name(
    kubectl: KubectlRunner, ns: str
) -> None:
    body = json.dumps(pod_body("bad", **{START_DELAY: "forever"})).encode()
    result = kubectl("create", "-n", ns, "-f", "-", input=body)
    assert result.returncode != 0
    assert f"metadata.annotations[{START_DELAY}]" in result.stderr.decode()


# -- graceful deletion ------------------------------------------------------------------------


async def test_delete_is_graceful_terminating_then_gone_with_the_kubelet_s_steps(
    sandbox: Sandbox, ns: str
) -> None:
    async with api_client(sandbox) as session:
        path = f"/api/v1/namespaces/{ns}/pods"
        code, created = await send(session, "POST", path, pod_body("g", command=GRACEFUL))
        assert code == 201
        await trap_set(session, ns, "g")
        version = created["metadata"]["resourceVersion"]
        async with session.get(
            path, params={"watch": "true", "resourceVersion": version}
        ) as response:
            code, deleted = await send(session, "DELETE", f"{path}/g")
            assert code == 200
            metadata = deleted["metadata"]
            # The default grace period, 30 s from now; the pod still there, Terminating.
            assert metadata["deletionGracePeriodSeconds"] == 30
            assert metadata["deletionTimestamp"] > created["metadata"]["creationTimestamp"]
            events = []
            while not events or events[-1]["type"] != "DELETED":
                events.append(await next_event(response))
    # From the create's resourceVersion: its start, then its deletion.
    modified = [
        e["object"]
        for e in events
        if e["type"] == "MODIFIED" and "deletionTimestamp" in e["object"]["metadata"]
    ]
    assert modified[0]["metadata"]["deletionTimestamp"] == metadata["deletionTimestamp"]
    assert conditions(modified[0])["Ready"] == "True"  # Terminating, still ready until it stops
    last = modified[-1]
    state = last["status"]["containerStatuses"][0]["state"]
    # It ended by itself after SIGTERM (0 from its trap, or 143 where a wrapper around it, the
    # isolation's, died of the signal first); the phase follows the exit code.
    code = state["terminated"]["exitCode"]
    assert code in (0, 143), state
    assert last["status"]["phase"] == ("Succeeded" if code == 0 else "Failed")
    assert conditions(last)["Ready"] == "False"
    async with api_client(sandbox) as session:
        code, _ = await send(session, "GET", f"{path}/g")
        assert code == 404
        _, listed = await send(session, "GET", f"/api/v1/namespaces/{ns}/events")
    killing = [e for e in listed["items"] if e["reason"] == "Killing"]
    assert [e["message"] for e in killing] == ["Stopping container main"]


async def test_sigkill_comes_when_the_grace_period_ends_and_a_shorter_one_moves_it_closer(
    sandbox: Sandbox, ns: str
) -> None:
    async with api_client(sandbox) as session:
        path = f"/api/v1/namespaces/{ns}/pods"
        await send(session, "POST", path, pod_body("s", command=STUBBORN))
        await trap_set(session, ns, "s")
        code, first = await send(session, "DELETE", f"{path}/s")
        assert (code, first["metadata"]["deletionGracePeriodSeconds"]) == (200, 30)
        # It ignores SIGTERM: 30 s of Terminating ahead.
        code, still = await send(session, "GET", f"{path}/s")
        assert code == 200 and still["metadata"]["deletionTimestamp"]
        # A longer grace period changes nothing; a shorter one moves the deadline.
        code, same = await send(session, "DELETE", f"{path}/s", {"gracePeriodSeconds": 60})
        assert same["metadata"]["deletionGracePeriodSeconds"] == 30
        code, shorter = await send(session, "DELETE", f"{path}/s", {"gracePeriodSeconds": 1})
        assert shorter["metadata"]["deletionGracePeriodSeconds"] == 1
        assert shorter["metadata"]["deletionTimestamp"] < first["metadata"]["deletionTimestamp"]
        version = shorter["metadata"]["resourceVersion"]
        async with session.get(
            path, params={"watch": "true", "resourceVersion": version}
        ) as response:
            events = []
            while not events or events[-1]["type"] != "DELETED":
                events.append(await next_event(response))
    terminated = events[-2]["object"]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 137  # SIGKILL
    assert events[-2]["object"]["status"]["phase"] == "Failed"


async def test_grace_period_zero_removes_the_pod_at_once(sandbox: Sandbox, ns: str) -> None:
    async with api_client(sandbox) as session:
        path = f"/api/v1/namespaces/{ns}/pods"
        await send(session, "POST", path, pod_body("f", command=STUBBORN))
        async with session.delete(f"{path}/f", params={"gracePeriodSeconds": "0"}) as response:
            assert response.status == 200
            body = await response.json()
        assert body["metadata"]["deletionGracePeriodSeconds"] == 0
        code, _ = await send(session, "GET", f"{path}/f")
        assert code == 404


def test_kubectl_delete_returns_promptly_and_wait_for_delete_sees_the_pod_go(
    kubectl: KubectlRunner, ns: str
) -> None:
    for name, command in (("a", GRACEFUL), ("b", STUBBORN)):
        body = json.dumps(pod_body(name, command=command)).encode()
        ok(kubectl("create", "-n", ns, "-f", "-", input=body))
    ok(kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/a", "pod/b", "--timeout=60s"))
    kubectl_trap_set(kubectl, ns, "b")
    # kubectl delete waits for the pod to be gone: its process ends on SIGTERM.
    assert ok(kubectl("delete", "pod", "a", "-n", ns, "--timeout=60s")).strip() == 'pod "a" deleted'
    # b ignores SIGTERM: Terminating until SIGKILL ends the 5 s grace period.
    ok(kubectl("delete", "pod", "b", "-n", ns, "--wait=false", "--grace-period=5"))
    row = ok(kubectl("get", "pod", "b", "-n", ns, "--no-headers")).split()
    assert row[:3] == ["b", "1/1", "Terminating"]
    out = ok(kubectl("wait", "-n", ns, "--for=delete", "pod/b", "--timeout=60s"))
    assert out.strip() == "pod/b condition met"
    assert ok(kubectl("get", "pods", "-n", ns, "-o", "name")).strip() == ""


def test_kubectl_get_watch_shows_each_step_of_a_pod_s_life(
    kubectl: KubectlRunner, ns: str, sandbox: Sandbox
) -> None:
    binary, env = kubectl.binary, kubectl.env  # type: ignore[attr-defined]
    watcher = subprocess.Popen(
        [binary, "get", "pods", "-n", ns, "-w", "--output-watch-events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(line.decode() for line in iter(watcher.stdout.readline, b"")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    try:
        wait_until(
            lambda: any(
                f"/namespaces/{ns}/pods?" in r.path_qs and "watch=true" in r.path_qs
                for r in sandbox.requests()
            ),
            what="kubectl get -w started its watch",
        )
        body = json.dumps(pod_body("w", command=GRACEFUL, **{START_DELAY: "0.5"})).encode()
        ok(kubectl("create", "-n", ns, "-f", "-", input=body))
        ok(kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/w", "--timeout=60s"))
        ok(kubectl("delete", "pod", "w", "-n", ns, "--timeout=60s"))
        wait_until(
            lambda: any(line.startswith("DELETED") for line in lines),
            what="kubectl get -w printed the DELETED event",
        )
    finally:
        watcher.kill()
        watcher.wait()
        reader.join(timeout=30)
        watcher.stdout.close()  # type: ignore[union-attr]
    rows = [line.split() for line in lines[1:]]
    steps = [(row[0], row[3]) for row in rows]
    assert steps[0] == ("ADDED", "Pending")
    for step in (
        ("MODIFIED", "ContainerCreating"),
        ("MODIFIED", "Running"),
        ("MODIFIED", "Terminating"),
    ):
        assert step in steps, steps
    assert steps[-1][0] == "DELETED"
    assert steps.index(("MODIFIED", "ContainerCreating")) < steps.index(("MODIFIED", "Running"))


# -- other clients ----------------------------------------------------------------------------


def test_official_client_watch_sees_a_pod_start_and_go(sandbox: Sandbox, ns: str) -> None:
    kubernetes = _kubernetes()
    api_client_ = kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    with api_client_:
        core = kubernetes.client.CoreV1Api(api_client_)
        version = core.list_namespaced_pod(ns).metadata.resource_version
        core.create_namespaced_pod(ns, pod_body("o", command=GRACEFUL, **{START_DELAY: "0.3"}))
        watch = kubernetes.watch.Watch()
        seen: list[tuple[str, str, bool]] = []
        for event in watch.stream(
            core.list_namespaced_pod, ns, resource_version=version, timeout_seconds=60
        ):
            pod = event["object"]
            ready = any(
                c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
            )
            seen.append((event["type"], pod.status.phase, ready))
            if ready and len([s for s in seen if s[2]]) == 1:
                core.delete_namespaced_pod("o", ns)
            if event["type"] == "DELETED":
                watch.stop()
    assert seen[0] == ("ADDED", "Pending", False)
    assert ("MODIFIED", "Running", True) in seen
    assert seen[-1][0] == "DELETED"
    assert seen[-2][2] is False  # not ready once its container stopped


def _kubernetes() -> Any:
    try:
        import kubernetes
    except ImportError:
        missing_tool("the kubernetes package is not installed (pip install '.[test]')")
        raise
    return kubernetes


async def test_kr8s_waits_for_ready_then_for_not_ready_and_delete(
    sandbox: Sandbox, ns: str
) -> None:
    try:
        import kr8s
    except ImportError:
        missing_tool("the kr8s package is not installed (pip install '.[test]')")
        raise
    api = await kr8s.asyncio.api(kubeconfig=str(sandbox.kubeconfig))
    try:
        pod = await kr8s.asyncio.objects.Pod(
            pod_body("k", command=GRACEFUL, **{START_DELAY: "0.5"}), namespace=ns, api=api
        )
        await pod.create()
        # The create answered the stored pod, so a watch from it sees the steps that follow
        # (kr8s's own test_pod_watch).
        assert pod.raw["status"]["phase"] == "Pending"
        with anyio.fail_after(60):
            async for event, _ in pod.watch():
                assert event == "MODIFIED"
                break
        assert not await pod.ready()
        with anyio.fail_after(60):
            await pod.wait("condition=Ready")
        assert await pod.ready()
        await pod.delete(grace_period=10)
        with anyio.fail_after(60):
            await pod.wait("condition=Ready=False")  # as kr8s's own test_pod_wait_ready
            await pod.wait("delete")
        assert not await pod.exists()
    finally:
        if api._session is not None:
            await api._session.aclose()


# -- deletecollection -------------------------------------------------------------------------


async def test_deletecollection_of_pods_deletes_only_what_the_selector_matches(
    sandbox: Sandbox, ns: str
) -> None:
    async with api_client(sandbox) as session:
        path = f"/api/v1/namespaces/{ns}/pods"
        for name, app in (("x1", "x"), ("x2", "x"), ("y1", "y")):
            body = pod_body(name)
            body["metadata"]["labels"] = {"app": app}
            assert (await send(session, "POST", path, body))[0] == 201
        async with session.delete(path, params={"labelSelector": "app=x"}) as response:
            assert response.status == 200
            deleted = await response.json()
        assert deleted["kind"] == "PodList"
        assert sorted(item["metadata"]["name"] for item in deleted["items"]) == ["x1", "x2"]
        assert all(item["metadata"]["deletionTimestamp"] for item in deleted["items"])

        async def names() -> list[str]:
            _, listed = await send(session, "GET", path)
            return sorted(item["metadata"]["name"] for item in listed["items"])

        await await_until(lambda: _equal(names(), ["y1"]), what="only y1 is left")


async def _equal(value: Any, expected: Any) -> bool:
    return await value == expected  # type: ignore[no-any-return]


def test_kubectl_delete_pods_all_and_by_label(kubectl: KubectlRunner, ns: str) -> None:
    for name, app in (("p1", "x"), ("p2", "y"), ("p3", "y")):
        body = pod_body(name)
        body["metadata"]["labels"] = {"app": app}
        ok(kubectl("create", "-n", ns, "-f", "-", input=json.dumps(body).encode()))
    ok(kubectl("delete", "pods", "-n", ns, "-l", "app=y", "--timeout=60s"))
    assert ok(kubectl("get", "pods", "-n", ns, "-o", "name")).split() == ["pod/p1"]
    ok(kubectl("delete", "pods", "-n", ns, "--all", "--timeout=60s"))
    assert ok(kubectl("get", "pods", "-n", ns, "-o", "name")).strip() == ""

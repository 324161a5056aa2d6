"""Main processes and restartPolicy: restarts with lastState and a crash-loop back-off, pods
that end Succeeded or Failed, the events a kubelet records, and ``kubectl get pods``."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from _waiting import wait_until
from conftest import KubectlRunner
from sandbox_pods import pod_events, pod_object

from podmagic.sandbox import Sandbox
from podmagic.sandbox._containers import go_duration

NAMESPACE = "restarts"
MANIFEST = f"""
apiVersion: v1
kind: Pod
metadata:
  name: crashing
  namespace: {NAMESPACE}
  annotations: {{sandbox.podmagic.io/restart-backoff: "0.5"}}
spec:
  containers:
  - {{name: main, image: busybox, command: [sh, -c, 'echo "run"; exit 3']}}
---
apiVersion: v1
kind: Pod
metadata: {{name: finishes, namespace: {NAMESPACE}}}
spec:
  restartPolicy: Never
  containers:
  - {{name: main, image: busybox, command: [sh, -c, 'echo done']}}
---
apiVersion: v1
kind: Pod
metadata: {{name: fails, namespace: {NAMESPACE}}}
spec:
  restartPolicy: Never
  containers:
  - {{name: main, image: busybox, command: [sh, -c, 'exit 7']}}
---
apiVersion: v1
kind: Pod
metadata:
  name: retries
  namespace: {NAMESPACE}
  annotations: {{sandbox.podmagic.io/restart-backoff: "0.2"}}
spec:
  restartPolicy: OnFailure
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'if [ -e tried-flag ]; then echo second; exit 0; fi; touch tried-flag; exit 1']
---
apiVersion: v1
kind: Pod
metadata: {{name: missing, namespace: {NAMESPACE}, annotations: {{sandbox.podmagic.io/restart-backoff: "5"}}}}
spec:
  containers:
  - {{name: main, image: busybox, command: [no-such-program]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: sleeper, namespace: {NAMESPACE}}}
spec:
  containers:
  - {{name: main, image: busybox, command: [sleep, "3600"]}}
"""


@pytest.fixture(scope="module")
def restarts(sandbox: Sandbox) -> Iterator[Sandbox]:
    sandbox.apply(MANIFEST)
    yield sandbox
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.delete_namespace, NAMESPACE)


def _pod(sandbox: Sandbox, name: str) -> Any:
    return pod_object(sandbox, NAMESPACE, name)


def _container(sandbox: Sandbox, name: str) -> Any:
    return _pod(sandbox, name)["status"]["containerStatuses"][0]


def _events(sandbox: Sandbox, name: str) -> list[tuple[str, str, str]]:
    return pod_events(sandbox, NAMESPACE, name)


def test_always_restarts_with_last_state_and_a_crash_loop_back_off(restarts: Sandbox) -> None:
    wait_until(
        lambda: _container(restarts, "crashing")["restartCount"] >= 3,
        what="the crashing container restarted three times",
    )
    waiting = wait_until(
        lambda: _container(restarts, "crashing")["state"].get("waiting"),
        what="the crashing container waits in its back-off",
    )
    pod = _pod(restarts, "crashing")
    status = pod["status"]["containerStatuses"][0]
    assert waiting["reason"] == "CrashLoopBackOff"
    assert re.fullmatch(
        rf"back-off [0-9.]+m?s restarting failed container=main "
        rf"pod=crashing_{NAMESPACE}\({pod['metadata']['uid']}\)",
        waiting["message"],
    )
    last = status["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (3, "Error")
    assert last["containerID"] == status["containerID"]
    assert last["startedAt"] <= last["finishedAt"]
    assert status["ready"] is False and status["started"] is False
    assert pod["status"]["phase"] == "Running"  # restartPolicy Always: never done
    ready = {c["type"]: c for c in pod["status"]["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")


def test_crash_loop_events_are_the_kubelets(restarts: Sandbox) -> None:
    wait_until(
        lambda: any(reason == "BackOff" for _, reason, _ in _events(restarts, "crashing")),
        what="a BackOff event",
    )
    events = _events(restarts, "crashing")
    pod = _pod(restarts, "crashing")
    assert (
        "Warning",
        "BackOff",
        (
            f"Back-off restarting failed container main in pod crashing_{NAMESPACE}"
            f"({pod['metadata']['uid']})"
        ),
    ) in events
    # Each start again is counted on the one Started Event, as the kubelet's recorder does.
    cluster = restarts.cluster
    assert cluster is not None
    started = restarts.call(
        lambda: [
            (e["type"], e["message"], e["count"])
            for e in cluster.objects["events"].values()
            if e["involvedObject"]["name"] == "crashing" and e["reason"] == "Started"
        ]
    )
    assert len(started) == 1 and started[0][:2] == ("Normal", "Started container main")
    assert started[0][2] >= 2
    assert ("Normal", "Created", "Created container: main") in events


def test_back_off_doubles_as_the_kubelets_and_is_printed_as_go_durations() -> None:
    assert [go_duration(s) for s in (10, 20, 40, 80, 160, 300)] == [
        "10s",
        "20s",
        "40s",
        "1m20s",
        "2m40s",
        "5m0s",
    ]
    assert go_duration(0.5) == "500ms"


def test_never_ends_succeeded_or_failed(restarts: Sandbox) -> None:
    wait_until(
        lambda: _pod(restarts, "finishes")["status"]["phase"] == "Succeeded", what="Succeeded"
    )
    wait_until(lambda: _pod(restarts, "fails")["status"]["phase"] == "Failed", what="Failed")
    done = _container(restarts, "finishes")
    assert done["state"]["terminated"]["reason"] == "Completed"
    assert done["state"]["terminated"]["exitCode"] == 0
    assert done["restartCount"] == 0
    failed = _container(restarts, "fails")["state"]["terminated"]
    assert (failed["exitCode"], failed["reason"]) == (7, "Error")
    ready = {c["type"]: c for c in _pod(restarts, "fails")["status"]["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")


def test_on_failure_restarts_until_it_succeeds(restarts: Sandbox) -> None:
    wait_until(
        lambda: _pod(restarts, "retries")["status"]["phase"] == "Succeeded", what="Succeeded"
    )
    status = _container(restarts, "retries")
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 0
    assert status["state"]["terminated"]["reason"] == "Completed"


def test_a_command_that_cannot_start_is_a_start_error(restarts: Sandbox) -> None:
    last = wait_until(
        lambda: _container(restarts, "missing")["lastState"].get("terminated"),
        what="the start failed",
    )
    assert (last["exitCode"], last["reason"]) == (128, "StartError")
    assert 'exec: "no-such-program": executable file not found in $PATH' in last["message"]
    assert any(
        kind == "Warning" and reason == "Failed" and "no-such-program" in message
        for kind, reason, message in _events(restarts, "missing")
    )


def test_exec_fault_restart_restarts_the_main_process(restarts: Sandbox) -> None:
    before = wait_until(
        lambda: _container(restarts, "sleeper")["state"].get("running"),
        what="the sleeper runs",
    )
    assert restarts.cluster is not None
    restarts.call(restarts.cluster.restart_pod, NAMESPACE, "sleeper")
    status = wait_until(
        lambda: (
            (s := _container(restarts, "sleeper"))["restartCount"] == 1
            and "running" in s["state"]
            and s
        ),
        what="the sleeper restarted",
    )
    assert status["lastState"]["terminated"]["exitCode"] == 137
    assert status["lastState"]["terminated"]["startedAt"] == before["startedAt"]


@pytest.fixture(params=["1.30", "1.33"], scope="module")
def kubectl(request: pytest.FixtureRequest, kubectl_factory: Any) -> KubectlRunner:
    runner: KubectlRunner = kubectl_factory(request.param)
    return runner


def test_kubectl_get_pods_shows_restarts_and_crash_loop(
    restarts: Sandbox, kubectl: KubectlRunner
) -> None:
    wait_until(
        lambda: _container(restarts, "crashing")["state"].get("waiting"),
        what="the crashing container waits in its back-off",
    )
    wait_until(lambda: _pod(restarts, "fails")["status"]["phase"] == "Failed", what="Failed")
    wait_until(lambda: _pod(restarts, "finishes")["status"]["phase"] == "Succeeded", what="done")

    def rows() -> dict[str, list[str]]:
        result: subprocess.CompletedProcess[bytes] = kubectl("get", "pods", "-n", NAMESPACE)
        assert result.returncode == 0, result.stderr.decode()
        lines = result.stdout.decode().splitlines()
        return {line.split()[0]: re.split(r"\s{2,}", line.strip())[1:] for line in lines[1:]}

    table = wait_until(
        lambda: (found := rows())["crashing"][1] == "CrashLoopBackOff" and found,
        what="kubectl shows CrashLoopBackOff",
    )
    ready, shown, restarted = table["crashing"][:3]
    assert (ready, shown) == ("0/1", "CrashLoopBackOff")
    assert re.fullmatch(r"\d+ \(\d+s ago\)", restarted) and int(restarted.split()[0]) >= 1
    assert table["finishes"][:3] == ["0/1", "Completed", "0"]
    assert table["fails"][:3] == ["0/1", "Error", "0"]
    assert table["sleeper"][1] == "Running"


def test_a_sandbox_stopped_while_main_processes_start_ends_them_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: starting, namespace: default}
spec:
  containers: [{name: main, image: busybox, command: [sleep, "3600"]}]
"""
    with caplog.at_level("WARNING", logger="podmagic.sandbox"), Sandbox(manifest):
        pass  # stopped at once, while the main process may still be starting
    assert not [r for r in caplog.records if "did not end" in r.getMessage()]

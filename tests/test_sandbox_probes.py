"""Probes: exec, tcpSocket and httpGet; startup, readiness and liveness, as the kubelet runs
them, driving ``ready``, ``started``, the pod's conditions, restarts and Unhealthy events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _waiting import wait_until
from sandbox_pods import pod_events, pod_object

from podmagic.sandbox import Sandbox

NAMESPACE = "probes"
# A flag file in the working folder, which is the container's own in both pod modes.
MANIFEST = f"""
apiVersion: v1
kind: Pod
metadata: {{name: gets-ready, namespace: {NAMESPACE}}}
spec:
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'sleep 2; touch ready-flag; sleep 3600']
    readinessProbe:
      exec: {{command: [test, -e, ready-flag]}}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: dies
  namespace: {NAMESPACE}
  annotations: {{sandbox.podmagic.io/restart-backoff: "0.2"}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'echo started; sleep 3600']
    livenessProbe:
      exec: {{command: [sh, -c, 'echo not alive; exit 1']}}
      periodSeconds: 1
      failureThreshold: 2
---
apiVersion: v1
kind: Pod
metadata: {{name: slow-start, namespace: {NAMESPACE}}}
spec:
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'sleep 2; touch started-flag; sleep 3600']
    startupProbe:
      exec: {{command: [test, -e, started-flag]}}
      periodSeconds: 1
      failureThreshold: 30
    livenessProbe:
      exec: {{command: [test, -e, started-flag]}}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: {NAMESPACE}}}
spec:
  containers:
  - name: main
    image: python
    command: [sh, -c, 'mkdir -p site && echo fine > site/ok && exec python3 -m http.server 18081 --bind 127.0.0.1 --directory site']
    ports: [{{name: http, containerPort: 18081}}]
    readinessProbe:
      httpGet: {{path: /ok, port: http}}
      periodSeconds: 1
    livenessProbe:
      tcpSocket: {{port: 18081}}
      periodSeconds: 1
      initialDelaySeconds: 1
      failureThreshold: 5
---
apiVersion: v1
kind: Pod
metadata: {{name: never-ready, namespace: {NAMESPACE}}}
spec:
  containers:
  - name: main
    image: python
    command: [sh, -c, 'mkdir -p site && exec python3 -m http.server 18082 --bind 127.0.0.1 --directory site']
    readinessProbe:
      httpGet: {{path: /missing, port: 18082}}
      periodSeconds: 1
  - name: side
    image: busybox
    command: [sleep, "3600"]
    readinessProbe:
      tcpSocket: {{port: 18083}}
      periodSeconds: 1
"""


@pytest.fixture(scope="module")
def probes(sandbox: Sandbox) -> Iterator[Sandbox]:
    sandbox.apply(MANIFEST)
    yield sandbox
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.delete_namespace, NAMESPACE)


def _pod(sandbox: Sandbox, name: str) -> Any:
    return pod_object(sandbox, NAMESPACE, name)


def _ready(pod: Any) -> str:
    return str({c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"])


def _events(sandbox: Sandbox, name: str) -> list[tuple[str, str, str]]:
    return pod_events(sandbox, NAMESPACE, name)


def test_readiness_probe_gates_ready_until_it_passes(probes: Sandbox) -> None:
    pod = wait_until(
        lambda: _ready(p := _pod(probes, "gets-ready")) == "True" and p,
        what="the readiness probe passed",
    )
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] is True and status["started"] is True
    assert status["restartCount"] == 0
    assert any(
        (kind, reason) == ("Warning", "Unhealthy") and message.startswith("Readiness probe failed")
        for kind, reason, message in _events(probes, "gets-ready")
    )


def test_probes_keep_a_new_pod_unready_and_unstarted_from_its_first_status(
    probes: Sandbox,
) -> None:
    probes.apply(
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: starts-unready, namespace: {NAMESPACE}}}
spec:
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
    readinessProbe: {{exec: {{command: ["false"]}}, periodSeconds: 1}}
  - name: late
    image: busybox
    command: [sleep, "3600"]
    startupProbe: {{exec: {{command: ["false"]}}, periodSeconds: 1, failureThreshold: 1000}}
"""
    )
    pod = _pod(probes, "starts-unready")
    assert pod["status"]["phase"] == "Running"
    assert _ready(pod) == "False"
    main, late = pod["status"]["containerStatuses"]
    assert (main["ready"], main["started"]) == (False, True)
    assert (late["ready"], late["started"]) == (False, False)


def test_failing_liveness_kills_and_restarts_the_container(probes: Sandbox) -> None:
    status = wait_until(
        lambda: (
            (s := _pod(probes, "dies")["status"]["containerStatuses"][0])["restartCount"] >= 1 and s
        ),
        what="the liveness probe restarted the container",
    )
    assert status["lastState"]["terminated"]["exitCode"] in (137, 143)
    events = _events(probes, "dies")
    assert ("Warning", "Unhealthy", "Liveness probe failed: not alive\n") in events
    assert (
        "Normal",
        "Killing",
        "Container main failed liveness probe, will be restarted",
    ) in events


def test_startup_probe_holds_started_and_liveness_until_it_passes(probes: Sandbox) -> None:
    pod = wait_until(
        lambda: (
            (p := _pod(probes, "slow-start"))["status"]["containerStatuses"][0]["started"] and p
        ),
        what="the startup probe passed",
    )
    status = pod["status"]["containerStatuses"][0]
    # The liveness probe (which fails until the flag exists) did not run before: no restart.
    assert status["restartCount"] == 0
    assert status["ready"] is True
    assert not any(
        message.startswith("Liveness") for _, _, message in _events(probes, "slow-start")
    )


def test_http_and_tcp_probes_reach_the_pods_own_ports(probes: Sandbox) -> None:
    pod = wait_until(
        lambda: _ready(p := _pod(probes, "web")) == "True" and p,
        what="the HTTP readiness probe passed",
    )
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0


def test_failing_http_and_tcp_probes_say_why_in_the_kubelets_words(probes: Sandbox) -> None:
    events = wait_until(
        lambda: (
            (found := [m for _, r, m in _events(probes, "never-ready") if r == "Unhealthy"])
            and any("statuscode" in m for m in found)
            and any("dial tcp" in m for m in found)
            and found
        ),
        what="both readiness probes failed",
    )
    ip = _pod(probes, "never-ready")["status"]["podIP"]
    assert "Readiness probe failed: HTTP probe failed with statuscode: 404" in events
    assert f"Readiness probe failed: dial tcp {ip}:18083: connect: connection refused" in events
    pod = _pod(probes, "never-ready")
    assert _ready(pod) == "False"
    ready = {c["type"]: c for c in pod["status"]["conditions"]}["Ready"]
    assert ready["message"] == "containers with unready status: [main side]"


def test_probes_get_the_api_servers_defaults(probes: Sandbox) -> None:
    container = _pod(probes, "web")["spec"]["containers"][0]
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/ok", "port": "http", "scheme": "HTTP"},
        "periodSeconds": 1,
        "timeoutSeconds": 1,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert container["livenessProbe"]["tcpSocket"] == {"port": 18081}
    assert container["livenessProbe"]["failureThreshold"] == 5

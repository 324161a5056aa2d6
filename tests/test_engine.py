"""The engine end to end against the sandbox: fan-out, statuses, limits, cancellation."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import anyio
import pytest
from _waiting import assert_ended_before, wait_until

from podmagic._client import Cluster
from podmagic._engine import RunControl
from podmagic._events import PodFinished, PodOutput, PodStarted, RunFinished, RunStarted
from podmagic._portal import THREAD_NAME, shutdown_portal
from podmagic._results import ExecStatus
from podmagic.sandbox import Sandbox


@pytest.fixture(scope="module")
def cluster(sandbox: Sandbox) -> Cluster:
    return Cluster(kubeconfig=sandbox.kubeconfig, namespace="conf")


def by_pod(results):  # type: ignore[no-untyped-def]
    return {result.pod: result for result in results}


def test_fan_out_over_a_deployment(cluster: Cluster, sandbox: Sandbox) -> None:
    results = cluster.run("echo $HOSTNAME", "deploy/web")
    assert len(results) == 3 and results.ok
    web_pods = sorted(p for p in sandbox.pods("conf") if p.startswith("web-"))
    assert [r.pod for r in results] == web_pods
    assert [r.stdout for r in results] == [f"{pod}\n".encode() for pod in web_pods]
    assert {r.container for r in results} == {"nginx"}
    assert all(r.node and r.node.startswith("sandbox-node-") for r in results)
    assert all(r.context == "podmagic-sandbox" and r.namespace == "conf" for r in results)


def test_skipped_pods_carry_reasons(cluster: Cluster) -> None:
    results = cluster.run("true", selector="app in (batch, flaky, solo)")
    statuses = {r.pod: (r.status, r.error) for r in results}
    assert statuses["solo"] == (ExecStatus.OK, None)
    assert statuses["pending"][0] is ExecStatus.SKIPPED and "Pending" in statuses["pending"][1]
    assert statuses["done"][0] is ExecStatus.SKIPPED and "completed" in statuses["done"][1]
    assert statuses["unready"] == (ExecStatus.SKIPPED, "not ready")
    included = cluster.run("true", selector="app=flaky", include_unready=True)
    assert [(r.pod, r.status) for r in included] == [("unready", ExecStatus.OK)]


@pytest.mark.parametrize("code", [0, 1, 42, 137])
def test_exit_codes(cluster: Cluster, code: int) -> None:
    script = "kill -9 $$" if code == 137 else f"exit {code}"
    [result] = cluster.run(script, "solo")
    assert result.exit_code == code
    assert result.status is (ExecStatus.OK if code == 0 else ExecStatus.FAILED)


def test_command_not_found_explains(cluster: Cluster) -> None:
    [shell] = cluster.run("no-such-tool --version", "solo")
    assert shell.exit_code == 127 and "command not found" in (shell.error or "")
    [direct] = cluster.run(["no-such-tool"], "solo")
    assert direct.status is ExecStatus.ERROR and direct.exit_code is None
    assert "executable file not found" in (direct.error or "")
    # It already was a direct argv: no advice to run one (tests/test_missing_program_hint.py).
    assert "check the program's name" in (direct.error or "")


def test_one_hung_pod_does_not_hold_up_the_others(cluster: Cluster) -> None:
    script = 'case "$HOSTNAME" in db-0) sleep 30;; esac; echo done'
    started = time.monotonic()
    results = cluster.run(script, selector="app in (db, solo)", timeout=1.5)
    assert_ended_before(started, 20, "a run with timeout=1.5 where db-0 sleeps 30s")
    outcome = by_pod(results)
    assert outcome["db-0"].status is ExecStatus.TIMEOUT and "timeout" in (
        outcome["db-0"].error or ""
    )
    assert outcome["db-1"].stdout == b"done\n" and outcome["solo"].ok


def test_overall_deadline(cluster: Cluster) -> None:
    results = cluster.run(
        "echo start; sleep 30", selector="app=web", deadline=1.0, max_concurrency=2
    )
    statuses = sorted(r.status.value for r in results)
    assert statuses == ["not started", "timeout", "timeout"]
    timed_out = [r for r in results if r.status is ExecStatus.TIMEOUT]
    assert all(r.stdout == b"start\n" and "deadline" in (r.error or "") for r in timed_out)


def test_concurrency_limit_is_respected(cluster: Cluster, sandbox: Sandbox) -> None:
    # Timed-out execs of earlier tests may still be winding down in the sandbox: the high
    # water mark must count this run's execs only.
    wait_until(lambda: sandbox.exec_stats()["active"] == 0, what="earlier tests' execs ended")
    sandbox.reset_exec_stats()
    results = cluster.run("sleep 0.3", selector="app in (web, db, multi, solo)", max_concurrency=2)
    assert results.ok and len(results) == 8
    assert sandbox.exec_stats()["high_water"] == 2


def test_env_values_stay_out_of_the_url(cluster: Cluster, sandbox: Sandbox) -> None:
    sandbox.clear_requests()
    [result] = cluster.run("printenv SECRET | wc -c", "solo", env={"SECRET": "hunter2-xyz"})
    assert result.stdout.strip() == b"12"
    paths = [request.path_qs for request in sandbox.requests()]
    assert any("/exec?" in path for path in paths)
    assert not any("hunter2" in path for path in paths)
    assert "hunter2" not in repr(result) and "hunter2" not in str(result.command)


def test_events_arrive_in_order_per_pod(cluster: Cluster) -> None:
    events: list[object] = []
    cluster.run("echo a; echo b >&2", selector="app=db", on_event=events.append)
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    for pod in ("db-0", "db-1"):
        mine = [
            e
            for e in events
            if getattr(getattr(e, "target", None), "pod", None) == pod
            or getattr(getattr(e, "result", None), "pod", None) == pod
        ]
        assert isinstance(mine[0], PodStarted) and isinstance(mine[-1], PodFinished)
        chunks = {(e.stream, e.data) for e in mine if isinstance(e, PodOutput)}
        assert chunks == {(1, b"a\n"), (2, b"b\n")}


def test_capture_limit_counts_what_was_dropped(cluster: Cluster) -> None:
    [result] = cluster.run("head -c 100000 /dev/zero", "solo", capture_limit=1000)
    assert len(result.stdout) == 1000 and result.stdout_dropped == 99000


def test_missing_container_is_a_per_pod_error(cluster: Cluster) -> None:
    results = cluster.run("true", selector="app in (multi, solo)", container="second")
    outcome = by_pod(results)
    assert outcome["multi"].ok and outcome["multi-default"].ok
    assert outcome["solo"].status is ExecStatus.ERROR and "second" in (outcome["solo"].error or "")


def test_dropped_stream_is_never_success(cluster: Cluster, sandbox: Sandbox) -> None:
    sandbox.set_fault("solo", "drop", namespace="conf", fault_after=0.3)
    try:
        [result] = cluster.run("echo partial; sleep 5; echo never", "solo")
    finally:
        sandbox.set_fault("solo", None, namespace="conf", fault_after=None)
    assert result.status is ExecStatus.ERROR and result.exit_code is None
    assert "connection lost" in (result.error or "") and result.stdout == b"partial\n"


def test_pod_vanishing_between_listing_and_exec(sandbox: Sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: brief, labels: {app: brief}}
spec: {containers: [{name: main, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: stays, labels: {app: brief}}
spec: {containers: [{name: main, image: busybox}]}
"""
    with Sandbox(manifest, kubeconfig=tmp_path / "kc") as own:
        cluster = Cluster(kubeconfig=own.kubeconfig)
        selection = cluster.select(selector="app=brief")
        own.delete_pod("brief")
        outcome = by_pod(cluster.run("true", selection=selection))
        assert outcome["stays"].ok
        assert outcome["brief"].status is ExecStatus.ERROR and "gone (404)" in (
            outcome["brief"].error or ""
        )


def test_pod_deleted_mid_exec_is_reported(sandbox: Sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: doomed, annotations: {sandbox.podmagic.io/exec-fault: delete, sandbox.podmagic.io/fault-after: "0.3"}}
spec: {containers: [{name: main, image: busybox}]}
"""
    with Sandbox(manifest, kubeconfig=tmp_path / "kc") as own:
        [result] = Cluster(kubeconfig=own.kubeconfig).run("sleep 5", "doomed")
        assert result.status in (ExecStatus.FAILED, ExecStatus.ERROR)
        assert "deleted" in (result.error or "")


def test_cancel_returns_partial_results(cluster: Cluster, sandbox: Sandbox) -> None:
    control = RunControl()
    ups: list[PodOutput] = []

    def cancel_once_three_run(event: object) -> None:
        # Cancel when the three execs allowed at once have all printed "up".
        if isinstance(event, PodOutput) and event.data == b"up\n":
            ups.append(event)
            if len(ups) == 3:
                control.cancel()

    started = time.monotonic()
    results = cluster.run(
        "echo up; sleep 30",
        selector="app in (web, db, multi, solo)",
        max_concurrency=3,
        control=control,
        on_event=cancel_once_three_run,
    )
    assert_ended_before(started, 20, "a cancelled run of `sleep 30`")
    statuses = [r.status for r in results]
    assert statuses.count(ExecStatus.CANCELLED) == 3
    assert statuses.count(ExecStatus.NOT_STARTED) == 5
    assert all(r.stdout == b"up\n" for r in results if r.status is ExecStatus.CANCELLED)
    wait_until(lambda: sandbox.exec_stats()["active"] == 0, what="the cancelled execs ended")


@pytest.mark.parametrize("receiver", ["process", "loop thread"])
@pytest.mark.usefixtures("python_sigint")
def test_keyboard_interrupt_on_the_blocking_api(
    cluster: Cluster, sandbox: Sandbox, receiver: str
) -> None:
    """Ctrl-C stops a blocking run, whichever thread the kernel hands the signal to.

    A process-wide SIGINT may land on any thread (a Jupyter kernel's interrupt often does);
    the "loop thread" case sends it to the event-loop thread on purpose, where the Python
    handler can only run once the waiting main thread wakes up.
    """
    if threading.current_thread() is not threading.main_thread():
        pytest.fail("this test must run in the main thread: Python runs signal handlers there")
    web_pods = len(cluster.select(selector="app=web").run)
    running: list[PodStarted] = []
    sent: list[float] = []

    def interrupt_once_all_run(event: object) -> None:
        # Ctrl-C once every exec is connected, so each one has something to cancel.
        if isinstance(event, PodStarted):
            running.append(event)
            if len(running) == web_pods:
                sent.append(time.monotonic())
                if receiver == "process":
                    os.kill(os.getpid(), signal.SIGINT)
                else:
                    signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    results = cluster.run("sleep 30", selector="app=web", on_event=interrupt_once_all_run)
    # Which failed, if this fails: the Ctrl-C was never sent (fewer pods started than
    # selected), or it was sent and the run went on.
    assert sent, f"{len(running)} of {web_pods} pods started: {[r.status for r in results]}"
    assert_ended_before(sent[0], 20, "a run of `sleep 30` after Ctrl-C")
    assert {r.status for r in results} == {ExecStatus.CANCELLED}
    # The next run works.
    assert cluster.run("true", "solo").ok


@pytest.mark.anyio
async def test_async_api(cluster: Cluster) -> None:
    results = await cluster.arun(["printf", "%s", "x y"], "solo")
    assert results.stdout == b"x y"
    with anyio.fail_after(10):
        selection = await cluster.aselect(selector="app=db")
    assert [t.pod for t in selection.run] == ["db-0", "db-1"]


def test_no_thread_left_after_shutdown(cluster: Cluster) -> None:
    cluster.run("true", "solo")
    assert any(t.name == THREAD_NAME for t in threading.enumerate())
    shutdown_portal()
    assert not any(t.name == THREAD_NAME for t in threading.enumerate())
    assert cluster.run("true", "solo").ok  # the portal starts again on demand


@pytest.fixture(scope="module")
def big_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    manifest = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: fleet}
spec:
  replicas: 200
  selector: {matchLabels: {app: fleet}}
  template:
    metadata: {labels: {app: fleet}}
    spec: {containers: [{name: app, image: busybox}]}
"""
    with Sandbox(manifest, kubeconfig=tmp_path_factory.mktemp("big") / "kc") as running:
        yield running


@pytest.mark.slow
def test_two_hundred_pod_fan_out(big_sandbox: Sandbox) -> None:
    cluster = Cluster(kubeconfig=big_sandbox.kubeconfig)
    started = time.monotonic()
    results = cluster.run(
        "echo $HOSTNAME", "deploy/fleet", max_concurrency=100, yes=True
    )  # 200 pods
    print(f"200 pods in {time.monotonic() - started:.2f}s")
    assert len(results) == 200 and results.ok
    assert sorted(r.stdout.decode().strip() for r in results) == sorted(big_sandbox.pods())


def test_capture_budget_is_shared_across_a_fan_out(cluster: Cluster) -> None:
    # 8 execs share a 1 MiB budget: 64 KiB per stream each; one pod alone keeps the pod limit.
    results = cluster.run(
        "head -c 200000 /dev/zero",
        selector="app in (web, db, multi, solo)",
        capture_limit=1_000_000,
        capture_budget=1024 * 1024,
    )
    assert len(results) == 8
    assert {len(r.stdout) for r in results} == {65536}
    assert {r.stdout_dropped for r in results} == {200000 - 65536}
    [alone] = cluster.run("head -c 200000 /dev/zero", "solo", capture_budget=1024 * 1024)
    assert len(alone.stdout) == 200000 and alone.stdout_dropped == 0


def test_explicit_uncapped_capture_keeps_everything(cluster: Cluster) -> None:
    [result] = cluster.run("head -c 3000000 /dev/zero", "solo", capture_limit=None)
    assert len(result.stdout) == 3000000 and result.stdout_dropped == 0


def test_deadline_covers_finding_the_pods(cluster: Cluster, sandbox: Sandbox) -> None:
    from podmagic._errors import SelectionError

    sandbox.throttle(5, retry_after=2)
    sandbox.clear_requests()
    try:
        with pytest.raises(SelectionError, match="deadline of 1s passed while finding the pods"):
            cluster.run("true", selector="app=db", deadline=1.0)
        # A Retry-After that would end past the deadline is not waited for: no second try.
        assert len(sandbox.requests()) == 1, sandbox.requests()
    finally:
        sandbox.throttle(0)
    assert cluster.run("true", selector="app=db", deadline=5.0).ok

"""What the fan-out does not spend: no task per queued pod, no event nobody listens to."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podmagic import _engine
from podmagic._client import Cluster
from podmagic._events import PodFinished, PodStarted
from podmagic._results import ExecStatus
from podmagic.sandbox import Sandbox

EIGHT = "app in (web, db, multi, solo)"  # 8 execs in namespace conf


@pytest.fixture(scope="module")
def cluster(sandbox: Sandbox) -> Cluster:
    return Cluster(kubeconfig=sandbox.kubeconfig, namespace="conf")


def test_queued_pods_cost_no_task_of_their_own(cluster: Cluster) -> None:
    tasks: list[int] = []

    def count(event: Any) -> None:
        if isinstance(event, PodStarted):  # on the loop's thread, while the run goes on
            tasks.append(len(asyncio.all_tasks()))

    results = cluster.run("true", selector=EIGHT, max_concurrency=2, on_event=count)
    assert len(results) == 8 and results.ok
    # Two workers (and the run's own few tasks), not one task per pod: 8 would be ≥ 9.
    assert len(tasks) == 8 and max(tasks) <= 5


def test_no_event_is_built_when_nobody_listens(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []

    def recording(name: str, kind: Any) -> Any:
        def make(*args: Any, **kwargs: Any) -> Any:
            built.append(name)
            return kind(*args, **kwargs)

        return make

    for name in ("PodStarted", "PodOutput", "PodFinished"):
        monkeypatch.setattr(_engine, name, recording(name, getattr(_engine, name)))
    results = cluster.run("echo out; echo err >&2", selector=EIGHT)
    assert len(results) == 8 and results.ok and built == []
    assert {r.stdout for r in results} == {b"out\n"} and {r.stderr for r in results} == {b"err\n"}
    events: list[Any] = []
    cluster.run("echo out", "solo", on_event=events.append)
    assert built == ["PodStarted", "PodOutput", "PodFinished"]


def test_pods_still_queued_when_the_run_is_cancelled_are_not_started_with_the_reason(
    cluster: Cluster,
) -> None:
    control = _engine.RunControl()
    finished: list[Any] = []

    def cancel_once_one_started(event: Any) -> None:
        if isinstance(event, PodStarted):
            control.cancel("stopped by the test")
        if isinstance(event, PodFinished):
            finished.append(event.result)

    results = cluster.run(
        "sleep 30",
        selector=EIGHT,
        max_concurrency=1,
        control=control,
        on_event=cancel_once_one_started,
    )
    statuses = sorted(r.status.value for r in results)
    assert statuses == ["cancelled"] + ["not started"] * 7
    queued = [r for r in results if r.status is ExecStatus.NOT_STARTED]
    assert {r.error for r in queued} == {"not started: stopped by the test"}
    assert len(finished) == 8  # every pod's PodFinished, the queued ones' too

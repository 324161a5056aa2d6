"""Logs across pods, end to end against the sandbox: ``Cluster.logs`` and ``%pod_logs`` read
every pod's log at once (targets as ``%pod`` finds them), in time order, as data; errors are
per-pod results; ``--follow`` streams into the live view's events until the pods end or the
timeout passes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace

import pytest
from _waiting import wait_until
from conftest import quiet_podmagic_shell
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from sandbox_pods import pod_manifest

from podmagic import Cluster
from podmagic._engine import RunControl
from podmagic._events import Event, PodFinished, PodOutput, PodStarted, RunFinished, RunStarted
from podmagic._logs import LogOptions, PodLogs, read_logs
from podmagic._portal import run_blocking
from podmagic._results import ExecStatus
from podmagic.sandbox import Sandbox

NAMESPACE = "podlogs"
NAMESPACE_AND_WEB = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {NAMESPACE}}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: logs-web}}}}
  template:
    metadata: {{labels: {{app: logs-web}}}}
    spec:
      containers:
      - name: web
        image: busybox
        command: [sh, -c]
        args: ['i=0; while [ $i -lt 5 ]; do echo "$(hostname) line $i"; i=$((i+1)); sleep 0.05; done; echo "ERROR in $(hostname)"; sleep 3600']
"""
MANIFEST = "\n---\n".join(
    [
        NAMESPACE_AND_WEB,
        pod_manifest(
            "pair",
            NAMESPACE,
            {"first": "echo from-first; sleep 3600", "second": "echo from-second; sleep 3600"},
            labels={"app": "pair"},
        ),
        pod_manifest("binary", NAMESPACE, r'printf "caf\351 ok\n"; sleep 3600'),
        pod_manifest("done", NAMESPACE, "echo finished-work", restart_policy="Never"),
        pod_manifest(
            "crasher",
            NAMESPACE,
            'echo "run of $(hostname)"; sleep 0.3; exit 2',
            annotations={"sandbox.podmagic.io/restart-backoff": "0.2"},
        ),
        pod_manifest(
            "short",
            NAMESPACE,
            'sleep 1; i=0; while [ $i -lt 3 ]; do echo "tick $i"; i=$((i+1)); sleep 0.3; done',
            labels={"app": "short"},
            restart_policy="Never",
        ),
    ]
)


@pytest.fixture(scope="module")
def logs(sandbox: Sandbox) -> Iterator[Sandbox]:
    sandbox.apply(MANIFEST)
    yield sandbox
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.delete_namespace, NAMESPACE)


@pytest.fixture(scope="module")
def cluster(logs: Sandbox) -> Iterator[Cluster]:
    with Cluster(kubeconfig=logs.kubeconfig, namespace=NAMESPACE) as running:
        wait_until(
            lambda: sum("ERROR" in line.text for line in running.logs("deploy/web")) == 3,
            what="the three web pods logged their lines",
        )
        yield running


@pytest.fixture(scope="module")
def ip(logs: Sandbox, cluster: Cluster) -> Iterator[InteractiveShell]:
    with quiet_podmagic_shell(logs.kubeconfig, NAMESPACE) as shell:
        yield shell


def test_logs_of_a_deployment_are_every_pods_lines_in_time_order(cluster: Cluster) -> None:
    logs = cluster.logs("deploy/web")
    pods = {line.pod for line in logs}
    assert len(pods) == 3 and all(pod.startswith("web-") for pod in pods)
    assert len(logs) == 3 * 6
    times = [line.time_ns for line in logs]
    assert times == sorted(times)
    for pod in pods:
        own = [line.text for line in logs if line.pod == pod]
        assert own == [f"{pod} line {i}" for i in range(5)] + [f"ERROR in {pod}"]
    assert [r.status for r in logs.results] == [ExecStatus.OK] * 3


def test_logs_to_dataframe_has_the_stern_columns_with_utc_times(cluster: Cluster) -> None:
    frame = cluster.logs("deploy/web").to_dataframe()
    assert list(frame.columns) == ["context", "namespace", "pod", "container", "timestamp", "line"]
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert frame["timestamp"].is_monotonic_increasing
    assert set(frame["container"]) == {"web"} and set(frame["namespace"]) == {NAMESPACE}
    now = dt.datetime.now(dt.timezone.utc)
    assert (now - frame["timestamp"].max().to_pydatetime()) < dt.timedelta(hours=1)


def test_grep_keeps_matching_lines_and_tail_counts_per_container(cluster: Cluster) -> None:
    errors = cluster.logs(selector="app=logs-web", grep=r"^ERROR")
    assert len(errors) == 3 and all(line.text.startswith("ERROR in web-") for line in errors)
    last = cluster.logs("deploy/web", tail=2)
    assert len(last) == 6
    for pod in {line.pod for line in last}:
        assert [line.text for line in last if line.pod == pod] == [
            f"{pod} line 4",
            f"ERROR in {pod}",
        ]


def test_since_and_since_time_bound_the_lines_by_age(cluster: Cluster) -> None:
    assert len(cluster.logs("deploy/web", since="1h")) == 18
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
    assert len(cluster.logs("deploy/web", since_time=later)) == 0
    assert LogOptions(since_seconds=0.5).query("web")["sinceSeconds"] == "1"
    assert LogOptions(since_time=later.replace(tzinfo=None)).query("web")["sinceTime"].endswith("Z")


def test_a_bad_grep_or_since_is_one_clear_line(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="not a valid Python regular expression") as bad:
        cluster.logs("deploy/web", grep="ERROR[")
    assert "\n" not in str(bad.value)
    with pytest.raises(ValueError, match=r"write e\.g\. 10m"):
        cluster.logs("deploy/web", since="ten minutes")


def test_a_pod_with_several_containers_gives_every_containers_log(cluster: Cluster) -> None:
    logs = cluster.logs("pair")
    assert sorted((line.container, line.text) for line in logs) == [
        ("first", "from-first"),
        ("second", "from-second"),
    ]
    only = cluster.logs("pair", container="second")
    assert [line.text for line in only] == ["from-second"]


def test_lines_that_are_not_utf8_stay_exact(cluster: Cluster) -> None:
    logs = cluster.logs("binary")
    assert [line.data for line in logs] == [b"caf\xe9 ok"]
    assert logs[0].text == "caf\\xe9 ok"
    assert logs.to_dataframe()["line"].tolist() == ["caf\\xe9 ok"]


def test_a_completed_pods_log_is_read(cluster: Cluster) -> None:
    wait_until(
        lambda: [line.text for line in cluster.logs("done")] == ["finished-work"],
        what="the completed pod's log",
    )


def test_errors_are_per_pod_results_not_a_crash(cluster: Cluster) -> None:
    logs = cluster.logs(["pair", "binary"], previous=True)
    assert len(logs) == 0
    assert [r.status for r in logs.results] == [ExecStatus.ERROR] * 3
    assert all("previous terminated container" in (r.error or "") for r in logs.results)
    assert "not read" in logs.summary()


def test_a_container_missing_in_some_pods_is_their_error(cluster: Cluster) -> None:
    logs = cluster.logs(["pair", "binary"], container="second")
    assert [line.text for line in logs] == ["from-second"]
    by_pod = {r.pod: r for r in logs.results}
    assert by_pod["pair"].status is ExecStatus.OK
    assert by_pod["binary"].status is ExecStatus.ERROR
    assert by_pod["binary"].error == 'container "second" not found (containers: main)'


def test_a_pod_gone_since_it_was_found_is_its_error(cluster: Cluster) -> None:
    found = cluster.select("pair", container="first")
    gone = replace(found, run=(replace(found.run[0], pod="gone-since"), *found.run))

    async def read() -> PodLogs:
        async with cluster._api(None) as api:
            return await read_logs(api, cluster.context, gone, LogOptions())

    logs = run_blocking(read)
    assert [line.text for line in logs] == ["from-first"]
    assert [r.status for r in logs.results] == [ExecStatus.ERROR, ExecStatus.OK]
    assert 'pods "gone-since" not found' in (logs.results[0].error or "")


def test_previous_reads_the_crashed_instance(cluster: Cluster) -> None:
    wait_until(
        lambda: (
            [line.text for line in cluster.logs("crasher", previous=True)] == ["run of crasher"]
        ),
        what="the crashed instance's log",
    )


def test_follow_streams_lines_as_events_until_the_pod_ends(cluster: Cluster) -> None:
    events: list[Event] = []
    logs = cluster.logs("short", follow=True, timeout=60, on_event=events.append)
    assert [line.text for line in logs] == ["tick 0", "tick 1", "tick 2"]
    kinds = [type(event) for event in events]
    assert kinds[0] is RunStarted and kinds[1] is PodStarted and kinds[-1] is RunFinished
    outputs = [event.data for event in events if isinstance(event, PodOutput)]
    assert outputs == [b"tick 0\n", b"tick 1\n", b"tick 2\n"]
    assert isinstance(events[-2], PodFinished) and events[-2].result.ok


def test_follow_stops_at_the_timeout_with_what_was_read(cluster: Cluster) -> None:
    logs = cluster.logs("deploy/web", follow=True, timeout=1.5)
    assert len(logs) == 18
    assert [r.status for r in logs.results] == [ExecStatus.OK] * 3


def test_stopping_a_follow_keeps_what_was_read(cluster: Cluster) -> None:
    control = RunControl()
    seen: list[bytes] = []

    def on_event(event: Event) -> None:
        # What Ctrl-C does (the magic and Cluster.logs cancel their control on an interrupt).
        if isinstance(event, PodOutput):
            seen.append(event.data)
            if len(seen) == 6:
                control.cancel("interrupted")

    logs = run_blocking(
        lambda: cluster.alogs("deploy/web", follow=True, on_event=on_event, control=control)
    )
    assert len(logs) >= 6
    # A stream that was being read is ok; one whose answer had not come yet was cancelled
    # (or not started, when the stop came first).
    streamed = {line.pod for line in logs}
    assert {r.status for r in logs.results if r.pod in streamed} == {ExecStatus.OK}
    assert {r.status for r in logs.results} <= {
        ExecStatus.OK,
        ExecStatus.CANCELLED,
        ExecStatus.NOT_STARTED,
    }


def test_the_live_views_header_counts_completed_pods_as_read(cluster: Cluster) -> None:
    wait_until(lambda: bool(cluster.logs("done")), what="the completed pod's log")
    events: list[Event] = []
    cluster.logs(["done", "pair"], on_event=events.append)
    started = events[0]
    assert isinstance(started, RunStarted)
    assert sorted(t.pod for t in started.selection.run) == ["done", "pair", "pair"]
    assert started.selection.skipped == ()
    assert started.command == "logs"


# -- the magic ---------------------------------------------------------------------------------


def test_pod_logs_magic_returns_the_logs_and_resolves_targets_as_pod_does(
    ip: InteractiveShell,
) -> None:
    logs = ip.run_line_magic("pod_logs", "-l app=logs-web --grep ERROR")
    assert isinstance(logs, PodLogs)
    assert sorted(line.pod for line in logs) == sorted({line.pod for line in logs})
    assert len(logs) == 3
    ip.run_line_magic("pod_logs", "deploy/web --tail 1 -o last")
    assert len(ip.user_ns["last"]) == 3


def test_pod_logs_magic_takes_results_as_targets(ip: InteractiveShell) -> None:
    ip.user_ns["earlier"] = ip.run_line_magic("pod", "pair -- true")
    logs = ip.run_line_magic("pod_logs", "{{earlier}} -c second")
    assert [line.text for line in logs] == ["from-second"]


def test_pod_logs_magic_bad_options_are_one_line(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="not a valid Python regular expression"):
        ip.run_line_magic("pod_logs", "deploy/web --grep '('")
    with pytest.raises(UsageError, match="not a duration"):
        ip.run_line_magic("pod_logs", "deploy/web --since soon")


def test_pod_logs_and_log_line_are_public_names() -> None:
    import podmagic

    assert podmagic.PodLogs is PodLogs and "PodLogs" in podmagic.__all__
    assert "LogLine" in podmagic.__all__ and "LogLine" in dir(podmagic)

"""Many clusters in one run: ``Cluster.many``, ``--context`` repeated or as a glob, end to end.

One sandbox serving two clusters (``Sandbox(manifests=[...])``): contexts ``podmagic-sandbox``
(A) and ``podmagic-sandbox-2`` (B), the same cluster but for the web pods' ``GREETING``:
``hello`` in A, ``hola`` in B, so a command can fail in one cluster only. The kubeconfig the
tests use adds two contexts: ``unreachable``, whose server nobody listens on, and ``broken``,
whose client certificate file does not exist.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _waiting import wait_until
from conftest import MANIFESTS, quiet_podmagic_shell

from podmagic import (
    Cluster,
    ClustersStarted,
    ConfigError,
    PodResults,
    PodStarted,
    RefusedError,
    RunControl,
    SelectionError,
    read_provenance,
)
from podmagic._render import TextRenderer
from podmagic.sandbox import Sandbox

A, B = "podmagic-sandbox", "podmagic-sandbox-2"
SCRIPT = 'echo "$GREETING from $MY_POD"; test "$GREETING" = hello'


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Two clusters: the test manifest, and the same with the web pods greeting ``hola``."""
    folder = tmp_path_factory.mktemp("two-clusters")
    hola = folder / "hola.yaml"
    text = (MANIFESTS / "cluster.yaml").read_text()
    assert "{name: GREETING, value: hello}" in text
    hola.write_text(text.replace("{name: GREETING, value: hello}", "{name: GREETING, value: hola}"))
    with Sandbox(
        manifests=[MANIFESTS / "cluster.yaml", hola], kubeconfig=folder / "kubeconfig"
    ) as running:
        assert running.contexts == (A, B)
        yield running


@pytest.fixture(scope="module")
def kubeconfig(clusters: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sandbox's kubeconfig with a context more, ``unreachable``; once the web and db pods
    run in both clusters."""
    assert clusters.kubeconfig is not None
    document = yaml.safe_load(Path(clusters.kubeconfig).read_text())
    first = document["contexts"][0]["context"]
    dead = next(c for c in document["clusters"] if c["name"] == first["cluster"])["cluster"]
    document["clusters"].append(
        {"name": "unreachable", "cluster": dict(dead, server=f"https://127.0.0.1:{_closed_port()}")}
    )
    document["contexts"].append(
        {"name": "unreachable", "context": dict(first, cluster="unreachable", namespace="conf")}
    )
    document["users"].append(
        {"name": "broken", "user": {"client-certificate": "/nonexistent/cert.pem"}}
    )
    document["contexts"].append(
        {"name": "broken", "context": dict(first, user="broken", namespace="conf")}
    )
    for context in document["contexts"]:
        context["context"]["namespace"] = "conf"
    path = tmp_path_factory.mktemp("merged") / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    for context in (A, B):
        with Cluster(context, kubeconfig=path) as one:

            def all_running(one: Cluster = one) -> bool:
                try:
                    return len(one.select(["deploy/web", "sts/db"]).run) == 5
                except SelectionError:
                    return False

            wait_until(all_running, what=f"the web and db pods running in {context}")
    return path


@pytest.fixture
def fleet(kubeconfig: Path) -> Iterator[Any]:
    with Cluster.many([A, B], kubeconfig=kubeconfig) as clusters:
        yield clusters


def test_many_runs_in_every_context_into_one_results_with_a_context_column(fleet: Any) -> None:
    results = fleet.run(SCRIPT, "deploy/web")
    assert isinstance(results, PodResults)
    assert [(r.context, r.pod) for r in results][:1] == [(A, results[0].pod)]
    assert sorted({r.context for r in results}) == [A, B]
    assert len(results) == 6
    by_context = {r.context: r for r in results}
    assert by_context[A].ok and by_context[A].stdout_text.startswith("hello")
    assert not by_context[B].ok and by_context[B].stdout_text.startswith("hola")
    frame = results.to_dataframe()
    assert frame["context"].tolist().count(B) == 3
    parsed = results.parse("lines")
    assert list(parsed.columns[:2]) == ["context", "pod"]
    assert parsed.groupby("context").size().to_dict() == {A: 3, B: 3}


def test_same_pod_names_in_two_contexts_are_told_apart_in_labels_and_groups(fleet: Any) -> None:
    results = fleet.run("hostname", "sts/db")
    assert results.labels == [
        f"{A}:conf/db-0",
        f"{A}:conf/db-1",
        f"{B}:conf/db-0",
        f"{B}:conf/db-1",
    ]
    # db-0 says db-0 in both clusters: one group of two pods (not two containers of one).
    groups = results.groups()
    assert set(groups[0].pods) == {f"{A}:conf/db-0", f"{B}:conf/db-0"}
    assert groups[0].label.endswith("— 2 pods, exit 0")
    assert str(results).startswith("4 pods in 2 contexts: 4 ok")


def test_summary_has_a_section_per_context_with_its_own_provenance(fleet: Any) -> None:
    results = fleet.run(SCRIPT, "deploy/web")
    text = str(results)
    assert text.splitlines()[0] == "6 pods in 2 contexts: 3 ok, 3 failed"
    assert f"3 pods in context {A}, namespace conf: 3 ok" in text
    assert f"3 pods in context {B}, namespace conf: 3 failed" in text
    assert text.count("Provenance: context podmagic-sandbox") == 2
    assert set(results.provenances) == {A, B}
    markup = results._repr_html_()
    assert markup.count('class="podmagic-context"') == 2
    # A saved notebook keeps each context's provenance beside the summary.
    _, metadata = results._repr_mimebundle_()
    saved = metadata["podmagic"]["provenances"]
    assert sorted(saved) == [A, B] and saved[B]["context"] == B
    assert len(saved[A]["pods"]) == 3


def test_a_parquet_file_of_a_run_across_contexts_keeps_each_contexts_provenance(
    fleet: Any, tmp_path: Path
) -> None:
    results = fleet.run("hostname", "deploy/web")
    path = tmp_path / "web.parquet"
    results.to_parquet(path)
    assert read_provenance(path, context=B) == results.provenances[B]
    assert read_provenance(path, context=A) == results.provenances[A]
    assert read_provenance(path, context="elsewhere") is None
    with pytest.raises(ValueError, match=rf"2 contexts \({A}, {B}\).*context={A!r}"):
        read_provenance(path)


def test_a_glob_names_the_contexts_it_matches_and_repeats_count_once(kubeconfig: Path) -> None:
    clusters = Cluster.many(["podmagic-sandbox*", A, B], kubeconfig=kubeconfig)
    assert clusters.contexts == (A, B)
    with pytest.raises(ConfigError) as caught:
        Cluster.many("Podmagic-*", kubeconfig=kubeconfig)  # case-sensitive, as names are
    message = str(caught.value)
    assert "'Podmagic-*' matches no context" in message
    assert "podmagic-sandbox, podmagic-sandbox-2, unreachable, broken" in message


def test_every_protected_context_needs_yes_and_is_named(kubeconfig: Path) -> None:
    with Cluster.many([A, B], kubeconfig=kubeconfig, protected_contexts=["*-2"]) as clusters:
        with pytest.raises(RefusedError) as caught:
            clusters.run("true", "deploy/web")
        # Judged across the contexts, before anything ran: the protected one named.
        assert f"context \"{B}\" (matches '*-2'; 3 pods) is protected" in str(caught.value)
        assert f'"{A}"' not in str(caught.value)
        results = clusters.run("true", "deploy/web", yes=True)
    assert {r.context for r in results} == {A, B}
    assert results.ok


def test_a_context_that_cannot_be_reached_does_not_sink_the_others(kubeconfig: Path) -> None:
    with Cluster.many([A, "unreachable"], kubeconfig=kubeconfig, timeout=20) as fleet:
        results = fleet.run("echo up", "deploy/web")
    up = [r for r in results if r.context == A]
    down = [r for r in results if r.context == "unreachable"]
    assert len(up) == 3 and all(r.ok for r in up)
    assert [(r.pod, r.status.value) for r in down] == [("deploy/web", "error")]
    assert down[0].error is not None and down[0].error.startswith(
        "context unreachable could not run"
    )
    assert "unreachable" in str(results) and "error" in str(results)


LONELY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: lonely, namespace: conf}
spec:
  replicas: 1
  selector:
    matchLabels: {app: lonely}
  template:
    metadata:
      labels: {app: lonely}
    spec:
      containers:
        - {name: main, image: busybox}
"""


def _running(context: str, kubeconfig: Path, pod: str) -> None:
    with Cluster(context, kubeconfig=kubeconfig) as one:

        def there() -> bool:
            try:
                return len(one.select(pod).run) == 1
            except SelectionError:
                return False

        wait_until(there, what=f"pod {pod} running in {context}")


def test_a_target_missing_in_one_context_fails_there_only_and_reruns_there_anew(
    clusters: Sandbox, kubeconfig: Path, fleet: Any
) -> None:
    clusters.in_context(B).apply(LONELY)
    _running(B, kubeconfig, "deploy/lonely")
    first = fleet.run("echo here", "deploy/lonely")
    assert [(r.context, r.pod.split("-")[0], r.status.value) for r in first] == [
        (A, "deploy/lonely", "error"),
        (B, "lonely", "ok"),
    ]
    assert first[0].error is not None
    assert first[0].error.startswith(f"context {A} could not run: ")
    assert "lonely" in first[0].error and "not found" in first[0].error
    # Once the pod is there too, re-running the failed runs what was asked, anew, in A.
    clusters.in_context(A).apply(LONELY)
    _running(A, kubeconfig, "deploy/lonely")
    again = first.rerun(failed=True)
    assert [(r.context, r.pod.split("-")[0], r.stdout_text) for r in again] == [
        (A, "lonely", "here\n")
    ]
    # The error that stood in for A's target gives way to A's pod: the runbook loop ends ok.
    merged = first.merge(again)
    assert merged.ok and [(r.context, r.attempt) for r in merged] == [(A, 2), (B, 1)]


def test_a_context_whose_credentials_cannot_be_loaded_does_not_sink_the_others(
    kubeconfig: Path,
) -> None:
    with Cluster.many([A, "broken"], kubeconfig=kubeconfig) as fleet:
        assert list(fleet.failed) == ["broken"] and "cert.pem" in fleet.failed["broken"]
        results = fleet.run("echo up", "deploy/web")
    assert [(r.context, r.status.value) for r in results] == [(A, "ok")] * 3 + [("broken", "error")]
    assert results[3].error is not None and results[3].error.startswith(
        "context broken could not run: "
    )
    with pytest.raises(ConfigError, match="no context could be used: broken: "):
        Cluster.many("broken", kubeconfig=kubeconfig)


def test_a_wrong_argument_is_one_error_not_one_per_context(fleet: Any) -> None:
    with pytest.raises(TypeError, match="did you mean timeout=") as misspelt:
        fleet.run("true", "deploy/web", timout=5)
    assert type(misspelt.value) is TypeError
    with pytest.raises(TypeError, match="timeout must be a number of seconds") as typed:
        fleet.run("true", "deploy/web", timeout="5")
    assert type(typed.value) is TypeError  # not an ExceptionGroup of one per context
    with pytest.raises(SelectionError, match="no context could run") as nowhere:
        fleet.run("true", "deploy/nothing-here")
    assert str(nowhere.value).count("not found") == 2


def test_max_concurrency_caps_each_cluster(fleet: Any) -> None:
    running: dict[str, int] = {}
    most: dict[str, int] = {}

    def on_event(event: Any) -> None:
        if isinstance(event, PodStarted):
            context = event.target.namespace.split(":")[0]
            running[context] = running.get(context, 0) + 1
            most[context] = max(most.get(context, 0), running[context])
        elif type(event).__name__ == "PodFinished":
            context = event.result.namespace.split(":")[0]
            running[context] = running.get(context, 0) - 1

    results = fleet.run("echo hi", "deploy/web", max_concurrency=1, on_event=on_event)
    assert len(results) == 6
    assert most == {A: 1, B: 1}


def test_cancelling_a_run_across_contexts_cancels_it_in_every_context(fleet: Any) -> None:
    control = RunControl()
    started: list[str] = []

    def on_event(event: Any) -> None:
        if isinstance(event, PodStarted):
            started.append(event.target.namespace)
            if len(started) == 6:  # every exec of both clusters is running: stop them all
                control.cancel("interrupted")

    results = fleet.run("sleep 60", "deploy/web", control=control, on_event=on_event)
    assert [(r.context, r.status.value, r.error) for r in results] == [
        (context, "cancelled", "interrupted") for context in (A, A, A, B, B, B)
    ]


def test_rerun_of_failed_runs_each_pod_in_its_own_context(fleet: Any) -> None:
    results = fleet.run(SCRIPT, "deploy/web")
    again = results.rerun(failed=True)
    assert {r.context for r in again} == {B} and len(again) == 3
    merged = results.merge(again)
    frame = merged.to_dataframe()
    assert frame.loc[frame["context"] == B, "attempt"].tolist() == [2, 2, 2]
    assert frame.loc[frame["context"] == A, "attempt"].tolist() == [1, 1, 1]


def test_live_header_has_a_line_per_cluster(fleet: Any) -> None:
    out = io.StringIO()
    renderer = TextRenderer(out, colour=False, show_summary=False)
    seen: list[Any] = []

    def on_event(event: Any) -> None:
        seen.append(event)
        renderer.handle_event(event)

    fleet.run("echo hi", "deploy/web", on_event=on_event)
    renderer.close()
    started = [e for e in seen if isinstance(e, ClustersStarted)]
    assert len(started) == 1 and [c.context for c in started[0].clusters] == [
        A,
        B,
    ]
    header = out.getvalue().splitlines()
    assert f"in 2 contexts ({A}, {B}) · 6 pods · $ echo hi" in header[0]
    assert header[1].startswith(f"  context {A} (https://127.0.0.1:")
    assert header[1].endswith(": 3 pods")
    assert header[2].startswith(f"  context {B} (https://127.0.0.1:")
    # The same pod names in the two clusters are two pods on screen.
    assert sum(1 for line in header if line.startswith(f"{A}:conf/")) >= 3


def test_live_view_header_and_chips_name_each_cluster(fleet: Any) -> None:
    from podmagic import RunFinished
    from podmagic._render import LiveRenderer

    events: list[Any] = []
    fleet.run("echo hi", "sts/db", on_event=events.append)
    # Played to the view as they came, but for the run's end (which puts up the summary).
    renderer = LiveRenderer(display=False, show_after=0)
    try:
        for event in events:
            if not isinstance(event, RunFinished):
                renderer.handle_event(event)
        wait_until(
            lambda: renderer.widget is not None and renderer.widget.progress.get("done") == 4,
            what="the live view counts four pods done",
        )
        widget = renderer.widget
        assert widget is not None
        where = widget.header["where"].split("\n")
        assert where[0].endswith(f"in 2 contexts ({A}, {B}) · 4 pods")
        assert where[1].startswith(f"context {A} (https://127.0.0.1:")
        assert where[1].endswith(": 2 pods")
        assert where[2].startswith(f"context {B} (https://127.0.0.1:")
        assert [p[0] for p in widget.pods] == [
            f"{A}:conf/db-0",
            f"{A}:conf/db-1",
            f"{B}:conf/db-0",
            f"{B}:conf/db-1",
        ]
    finally:
        renderer.close()


# -- the magic ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shell(kubeconfig: Path) -> Iterator[Any]:
    with quiet_podmagic_shell(kubeconfig) as ip:
        yield ip


def test_magic_context_repeated_runs_in_both(shell: Any) -> None:
    shell.run_line_magic("pod", f"deploy/web --context {A} --context {B} -o many -- echo hi")
    many = shell.user_ns["many"]
    assert sorted({r.context for r in many}) == [A, B]
    assert len(many) == 6 and many.ok


def test_magic_context_glob_and_results_from_several_contexts(shell: Any) -> None:
    shell.run_line_magic("pod", f"deploy/web --context 'podmagic-sandbox*' -o first -- {SCRIPT}")
    first = shell.user_ns["first"]
    assert sorted({r.context for r in first}) == [A, B]
    # Results from two contexts as targets: each pod runs in its own context.
    shell.run_line_magic("pod", "{{first}} -o again -- echo $GREETING")
    again = shell.user_ns["again"]
    assert {(r.context, r.stdout_text) for r in again} == {
        (A, "hello\n"),
        (B, "hola\n"),
    }
    shell.run_line_magic("pod", "--rerun first.failed -o third")
    assert {r.context for r in shell.user_ns["third"]} == {B}


def test_magic_protected_context_among_several_needs_yes(shell: Any) -> None:
    from IPython.core.error import UsageError

    with pytest.raises((RefusedError, UsageError)) as caught:
        shell.run_line_magic("config", "PodMagic.protected_contexts = ['*-2']")
        try:
            shell.run_line_magic("pod", f"deploy/web --context {A} --context {B} -- true")
        finally:
            shell.run_line_magic("config", "PodMagic.protected_contexts = ['*prod*']")
    # Judged across the contexts: the protected one named, the run refused as a whole.
    assert f"\"{B}\" (matches '*-2'; 3 pods) is protected" in str(caught.value)
    assert "--yes" in str(caught.value)


def test_magic_dry_run_lists_each_context(shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_line_magic("pod", f"sts/db --context {A} --context {B} --dry-run -o plan")
    plan = shell.user_ns["plan"]
    assert plan.contexts == (A, B)
    assert [t.pod for t in plan.run] == ["db-0", "db-1", "db-0", "db-1"]
    shown = capsys.readouterr().out
    for context in (A, B):
        assert f"context {context}: sts/db in namespace conf — 2 to run" in shown
    assert shown.count("  run   conf/db-0 [postgres]") == 2


def test_magic_default_target_with_a_glob_context_and_a_background_run(shell: Any) -> None:
    shell.run_line_magic("pod_target", "sts/db --context 'podmagic-sandbox*'")
    try:
        handle = shell.run_line_magic("pod", "--bg -- hostname")
        results = handle.result(timeout=120)
    finally:
        shell.run_line_magic("pod_target", "--clear")
    assert [(r.context, r.stdout_text) for r in results] == [
        (A, "db-0\n"),
        (A, "db-1\n"),
        (B, "db-0\n"),
        (B, "db-1\n"),
    ]


def test_magic_glob_matching_nothing_lists_the_contexts(shell: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        shell.run_line_magic("pod", "deploy/web --context 'qa-*' -- true")
    assert "--context 'qa-*' matches no context" in str(caught.value)
    assert "podmagic-sandbox, podmagic-sandbox-2, unreachable, broken" in str(caught.value)

"""Many clusters in one run: ``Cluster.many``, ``--context`` repeated or as a glob, end to end.

Two sandboxes are two clusters; one kubeconfig written here names them ``staging-a`` and
``staging-b`` (the web pods say ``GREETING=hello`` in a, ``hola`` in b, so a command can fail
in one cluster only), ``prod-b`` (b again, under a protected name) and ``staging-down`` (a
server nobody listens on).
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
    SelectionError,
)
from podmagic._render import TextRenderer
from podmagic.sandbox import Sandbox

SCRIPT = 'echo "$GREETING from $MY_POD"; test "$GREETING" = hello'


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _entries(kubeconfig: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    document = yaml.safe_load(kubeconfig.read_text())
    return document["clusters"][0]["cluster"], document["users"][0]["user"], "conf"


@pytest.fixture(scope="module")
def second(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Another cluster: the same manifest, the web pods greeting ``hola``."""
    folder = tmp_path_factory.mktemp("second")
    manifest = folder / "cluster.yaml"
    text = (MANIFESTS / "cluster.yaml").read_text()
    assert "{name: GREETING, value: hello}" in text
    manifest.write_text(
        text.replace("{name: GREETING, value: hello}", "{name: GREETING, value: hola}")
    )
    with Sandbox(manifest, kubeconfig=folder / "kubeconfig") as running:
        yield running


@pytest.fixture(scope="module")
def kubeconfig(sandbox: Sandbox, second: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One kubeconfig naming both sandboxes (and a protected name, and a dead server)."""
    assert sandbox.kubeconfig is not None and second.kubeconfig is not None
    cluster_a, user_a, _ = _entries(Path(sandbox.kubeconfig))
    cluster_b, user_b, _ = _entries(Path(second.kubeconfig))
    dead = dict(cluster_a, server=f"https://127.0.0.1:{_closed_port()}")
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "staging-a",
        "clusters": [
            {"name": "a", "cluster": cluster_a},
            {"name": "b", "cluster": cluster_b},
            {"name": "down", "cluster": dead},
        ],
        "users": [{"name": "user-a", "user": user_a}, {"name": "user-b", "user": user_b}],
        "contexts": [
            {"name": name, "context": {"cluster": cluster, "user": user, "namespace": "conf"}}
            for name, cluster, user in (
                ("staging-a", "a", "user-a"),
                ("staging-b", "b", "user-b"),
                ("prod-b", "b", "user-b"),
                ("staging-down", "down", "user-a"),
            )
        ],
    }
    path = tmp_path_factory.mktemp("merged") / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    for context in ("staging-a", "staging-b"):
        with Cluster(context, kubeconfig=path) as one:

            def web_running(one: Cluster = one) -> bool:
                try:
                    return len(one.select("deploy/web").run) == 3
                except SelectionError:
                    return False

            wait_until(web_running, what=f"the three web pods running in {context}")
    return path


@pytest.fixture
def fleet(kubeconfig: Path) -> Iterator[Any]:
    with Cluster.many(["staging-a", "staging-b"], kubeconfig=kubeconfig) as clusters:
        yield clusters


def test_many_runs_in_every_context_into_one_results_with_a_context_column(fleet: Any) -> None:
    results = fleet.run(SCRIPT, "deploy/web")
    assert isinstance(results, PodResults)
    assert [(r.context, r.pod) for r in results][:1] == [("staging-a", results[0].pod)]
    assert sorted({r.context for r in results}) == ["staging-a", "staging-b"]
    assert len(results) == 6
    by_context = {r.context: r for r in results}
    assert by_context["staging-a"].ok and by_context["staging-a"].stdout_text.startswith("hello")
    assert not by_context["staging-b"].ok and by_context["staging-b"].stdout_text.startswith("hola")
    frame = results.to_dataframe()
    assert frame["context"].tolist().count("staging-b") == 3
    parsed = results.parse("lines")
    assert list(parsed.columns[:2]) == ["context", "pod"]
    assert parsed.groupby("context").size().to_dict() == {"staging-a": 3, "staging-b": 3}


def test_same_pod_names_in_two_contexts_are_told_apart_in_labels_and_groups(fleet: Any) -> None:
    results = fleet.run("hostname", "sts/db")
    assert results.labels == [
        "staging-a:conf/db-0",
        "staging-a:conf/db-1",
        "staging-b:conf/db-0",
        "staging-b:conf/db-1",
    ]
    # db-0 says db-0 in both clusters: one group, its four members named apart.
    groups = results.groups()
    assert sorted(groups[0].pods) == ["staging-a:conf/db-0", "staging-b:conf/db-0"]


def test_summary_has_a_section_per_context_with_its_own_provenance(fleet: Any) -> None:
    results = fleet.run(SCRIPT, "deploy/web")
    text = str(results)
    assert text.splitlines()[0] == "6 pods in 2 contexts: 3 ok, 3 failed"
    assert "3 pods in context staging-a, namespace conf: 3 ok" in text
    assert "3 pods in context staging-b, namespace conf: 3 failed" in text
    assert text.count("Provenance: context staging-") == 2
    assert set(results.provenances) == {"staging-a", "staging-b"}
    markup = results._repr_html_()
    assert markup.count('class="podmagic-context"') == 2


def test_a_glob_names_the_contexts_it_matches_and_repeats_count_once(kubeconfig: Path) -> None:
    clusters = Cluster.many(["staging-[ab]", "staging-a", "staging-b"], kubeconfig=kubeconfig)
    assert clusters.contexts == ("staging-a", "staging-b")
    with pytest.raises(ConfigError) as caught:
        Cluster.many("Staging-*", kubeconfig=kubeconfig)  # case-sensitive, as names are
    message = str(caught.value)
    assert "'Staging-*' matches no context" in message
    assert "staging-a, staging-b, prod-b, staging-down" in message


def test_every_protected_context_needs_yes_and_is_named(kubeconfig: Path) -> None:
    with Cluster.many(["staging-a", "prod-*"], kubeconfig=kubeconfig) as clusters:
        with pytest.raises(RefusedError) as caught:
            clusters.run("true", "deploy/web")
        assert "\"prod-b\" (matches '*prod*'; 3 pods) is protected" in str(caught.value)
        assert "staging-a" not in str(caught.value)
        results = clusters.run("true", "deploy/web", yes=True)
    assert {r.context for r in results} == {"staging-a", "prod-b"}
    assert results.ok


def test_a_context_that_cannot_be_reached_does_not_sink_the_others(kubeconfig: Path) -> None:
    with Cluster.many(["staging-a", "staging-down"], kubeconfig=kubeconfig, timeout=20) as fleet:
        results = fleet.run("echo up", "deploy/web")
    up = [r for r in results if r.context == "staging-a"]
    down = [r for r in results if r.context == "staging-down"]
    assert len(up) == 3 and all(r.ok for r in up)
    assert [(r.pod, r.status.value) for r in down] == [("deploy/web", "error")]
    assert down[0].error is not None and down[0].error.startswith(
        "context staging-down could not run"
    )
    assert "staging-down" in str(results) and "error" in str(results)


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
    assert most == {"staging-a": 1, "staging-b": 1}


def test_rerun_of_failed_runs_each_pod_in_its_own_context(fleet: Any) -> None:
    results = fleet.run(SCRIPT, "deploy/web")
    again = results.rerun(failed=True)
    assert {r.context for r in again} == {"staging-b"} and len(again) == 3
    merged = results.merge(again)
    frame = merged.to_dataframe()
    assert frame.loc[frame["context"] == "staging-b", "attempt"].tolist() == [2, 2, 2]
    assert frame.loc[frame["context"] == "staging-a", "attempt"].tolist() == [1, 1, 1]


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
        "staging-a",
        "staging-b",
    ]
    header = out.getvalue().splitlines()
    assert "in 2 contexts (staging-a, staging-b) · 6 pods · $ echo hi" in header[0]
    assert header[1].startswith("  context staging-a (https://127.0.0.1:")
    assert header[1].endswith(": 3 pods")
    assert header[2].startswith("  context staging-b (https://127.0.0.1:")
    # The same pod names in the two clusters are two pods on screen.
    assert sum(1 for line in header if line.startswith("staging-a:conf/")) >= 3


# -- the magic ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shell(kubeconfig: Path) -> Iterator[Any]:
    with quiet_podmagic_shell(kubeconfig) as ip:
        yield ip


def test_magic_context_repeated_runs_in_both(shell: Any) -> None:
    shell.run_line_magic(
        "pod", "deploy/web --context staging-a --context staging-b -o many -- echo hi"
    )
    many = shell.user_ns["many"]
    assert sorted({r.context for r in many}) == ["staging-a", "staging-b"]
    assert len(many) == 6 and many.ok


def test_magic_context_glob_and_results_from_several_contexts(shell: Any) -> None:
    shell.run_line_magic("pod", f"deploy/web --context 'staging-[ab]' -o first -- {SCRIPT}")
    first = shell.user_ns["first"]
    assert sorted({r.context for r in first}) == ["staging-a", "staging-b"]
    # Results from two contexts as targets: each pod runs in its own context.
    shell.run_line_magic("pod", "{{first}} -o again -- echo $GREETING")
    again = shell.user_ns["again"]
    assert {(r.context, r.stdout_text) for r in again} == {
        ("staging-a", "hello\n"),
        ("staging-b", "hola\n"),
    }
    shell.run_line_magic("pod", "--rerun first.failed -o third")
    assert {r.context for r in shell.user_ns["third"]} == {"staging-b"}


def test_magic_protected_context_among_several_needs_yes(shell: Any) -> None:
    from IPython.core.error import UsageError

    with pytest.raises((RefusedError, UsageError)) as caught:
        shell.run_line_magic("pod", "deploy/web --context staging-a --context prod-b -- true")
    # Judged across the contexts: the protected one named, the run refused as a whole.
    assert "\"prod-b\" (matches '*prod*'; 3 pods) is protected" in str(caught.value)
    assert "--yes" in str(caught.value)


def test_magic_glob_matching_nothing_lists_the_contexts(shell: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        shell.run_line_magic("pod", "deploy/web --context 'qa-*' -- true")
    assert "--context 'qa-*' matches no context" in str(caught.value)
    assert "staging-a, staging-b, prod-b, staging-down" in str(caught.value)

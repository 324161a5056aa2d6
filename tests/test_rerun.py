"""Results as targets, re-runs and merges, end to end against the sandbox.

Earlier results name their pods: ``Cluster.run(cmd, res.failed)`` and ``%pod {{res.failed}}
-- cmd`` run there, each pod in its own namespace and container; ``res.rerun()`` and
``%pod --rerun res`` repeat the very run (command, env, stdin, options); ``res.merge(new)``
keeps the latest attempt per pod and the earlier ones as history.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable, Iterator

import pytest
from _waiting import wait_until
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from podmagic import Cluster
from podmagic._errors import ConfigError, PodsFailedError, RefusedError, SelectionError
from podmagic._events import RunStarted
from podmagic._results import ExecStatus, PodResult, PodResults
from podmagic.sandbox import Sandbox

OTHER = "rerun-other"
# db-0 fails and db-1 succeeds, whatever ran before.
ONLY_DB_1 = 'test "$HOSTNAME" = db-1'


@pytest.fixture(scope="module")
def other(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session's sandbox with a namespace ``rerun-other`` holding pod ``elsewhere``."""
    sandbox.apply(
        f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {OTHER}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: elsewhere, namespace: {OTHER}}}
spec:
  containers:
    - {{name: main, image: busybox}}
"""
    )
    yield sandbox
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.delete_namespace, OTHER)


@pytest.fixture(scope="module")
def cluster(other: Sandbox) -> Iterator[Cluster]:
    with Cluster(kubeconfig=other.kubeconfig, namespace="conf") as running:
        yield running


@pytest.fixture(scope="module")
def ip(other: Sandbox) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "podmagic")
    shell.run_line_magic("config", f"PodMagic.kubeconfig = {str(other.kubeconfig)!r}")
    shell.run_line_magic("config", "PodMagic.namespace = 'conf'")
    shell.run_line_magic("config", "PodMagic.quiet = True")
    yield shell
    shell.run_line_magic("config", "PodMagic.quiet = False")


def _execs(sandbox: Sandbox) -> int:
    return int(sandbox.exec_stats()["total"])


def _where(results: PodResults) -> list[tuple[str, str, str | None]]:
    return [(r.namespace, r.pod, r.container) for r in results]


# -- results as targets, from Python -------------------------------------------------------------


def test_failed_results_as_the_target_run_only_in_those_pods(cluster: Cluster) -> None:
    first = cluster.run(ONLY_DB_1, selector="app=db")
    assert [r.pod for r in first.failed] == ["db-0"]
    again = cluster.run("echo $HOSTNAME", first.failed)
    assert _where(again) == [("conf", "db-0", "postgres")]
    assert again.stdout == b"db-0\n"


def test_results_keep_their_namespace_and_container(cluster: Cluster) -> None:
    containers = cluster.run("echo $CONTAINER", "multi", all_containers=True)
    assert _where(containers) == [("conf", "multi", "first"), ("conf", "multi", "second")]
    elsewhere = cluster.run("hostname", "elsewhere", namespace=OTHER)
    # The Cluster's namespace is conf: the results still run where they came from.
    mixed = cluster.run("echo $HOSTNAME:$CONTAINER", [*containers, *elsewhere, "solo"])
    assert [(r.namespace, r.pod, r.container, r.stdout) for r in mixed] == [
        ("conf", "multi", "first", b"multi:first\n"),
        ("conf", "multi", "second", b"multi:second\n"),
        ("conf", "solo", "main", b"solo:\n"),
        (OTHER, "elsewhere", "main", b"elsewhere:\n"),
    ]
    # One result alone is a target too, and container= overrides the results' own.
    assert _where(cluster.run("true", containers[0], container="second")) == [
        ("conf", "multi", "second")
    ]


def test_many_results_are_found_with_one_list_per_namespace(
    cluster: Cluster, other: Sandbox
) -> None:
    every = cluster.run("true", selector="app in (web, db, solo)")
    assert len(every) == 6
    other.clear_requests()
    found = cluster.select(every)  # finding the pods, as a run does before its execs
    assert [(t.namespace, t.pod, t.container) for t in found.run] == _where(every)
    assert [r.path_qs.partition("?")[0] for r in other.requests()] == [
        "/api/v1/namespaces/conf/pods"
    ]


def test_results_from_another_context_are_refused_in_one_line(
    cluster: Cluster, other: Sandbox
) -> None:
    foreign = PodResult(context="prod-eu", namespace="conf", pod="solo", status=ExecStatus.FAILED)
    before = _execs(other)
    with pytest.raises(SelectionError) as refused:
        cluster.run("true", [foreign])
    message = str(refused.value)
    assert 'the results come from context "prod-eu"' in message
    assert 'this run is in context "podmagic-sandbox"' in message
    assert "Cluster('prod-eu')" in message and "\n" not in message
    mine = cluster.run("true", "solo")
    with pytest.raises(SelectionError, match=r"come from 2 contexts \(podmagic-sandbox, prod-eu\)"):
        cluster.run("true", [*mine, foreign])
    assert _execs(other) == before + 1


def test_empty_results_as_the_target_never_mean_every_pod(cluster: Cluster, other: Sandbox) -> None:
    ok = cluster.run("true", "solo")
    before = _execs(other)
    with pytest.raises(SelectionError, match="the results given as the target are empty"):
        cluster.run("true", ok.failed)
    assert _execs(other) == before


def test_a_pod_gone_since_is_named_as_coming_from_the_results(cluster: Cluster) -> None:
    gone = PodResult(
        context=cluster.context, namespace="conf", pod="deleted-meanwhile", status="failed"
    )
    with pytest.raises(
        SelectionError, match="deleted-meanwhile.*not found \\(a pod of the results"
    ):
        cluster.run("true", [gone])


# -- rerun and merge -------------------------------------------------------------------------------


def test_rerun_repeats_the_command_env_and_stdin(cluster: Cluster) -> None:
    first = cluster.run(
        'printf "%s %s " "$GREETING_TO" "$(cat)"; hostname',
        ["solo", "db-0"],
        env={"GREETING_TO": "world"},
        stdin="from-stdin",
    )
    again = first.rerun()
    assert [r.stdout for r in again] == [r.stdout for r in first]
    assert [r.stdout for r in again] == [b"world from-stdin db-0\n", b"world from-stdin solo\n"]
    assert [r.command for r in again] == [r.command for r in first]


def test_rerun_failed_runs_only_the_failed_and_may_change_options(cluster: Cluster) -> None:
    first = cluster.run(f"{ONLY_DB_1} || exit 3", selector="app=db")
    assert [r.pod for r in first.failed] == ["db-0"]
    again = first.rerun(failed=True)
    assert _where(again) == [("conf", "db-0", "postgres")]
    assert again[0].exit_code == 3 and not again.ok
    accepted = first.rerun(failed=True, ok_exit="0,3", timeout=30)
    assert accepted.ok and accepted[0].exit_code == 3
    # The failed subset remembers the run too.
    assert _where(first.failed.rerun()) == [("conf", "db-0", "postgres")]
    # Nothing failed: nothing runs, and merging that changes nothing.
    nothing = accepted.rerun(failed=True)
    assert len(nothing) == 0 and accepted.merge(nothing) == accepted
    with pytest.raises(ValueError, match="do not remember a run"):
        PodResults(list(first)).rerun()


def test_rerun_applies_the_guards_again(other: Sandbox) -> None:
    with Cluster(kubeconfig=other.kubeconfig, protected_contexts=["podmagic-*"]) as guarded:
        first = guarded.run("true", "solo", namespace="conf", yes=True)
        before = _execs(other)
        with pytest.raises(RefusedError):
            first.rerun()
        assert _execs(other) == before
        assert first.rerun(yes=True).ok


def test_merge_keeps_the_latest_attempt_and_the_history(cluster: Cluster) -> None:
    first = cluster.run(f"{ONLY_DB_1} || exit 3", selector="app=db")
    merged = first.merge(first.rerun(failed=True, ok_exit=[0, 3]))
    assert merged.ok
    assert [(r.pod, r.attempt, r.status) for r in merged] == [
        ("db-0", 2, ExecStatus.OK),
        ("db-1", 1, ExecStatus.OK),
    ]
    latest = merged.to_dataframe()
    assert list(latest[["pod", "attempt", "status", "exit_code"]].itertuples(index=False)) == [
        ("db-0", 2, "ok", 3),
        ("db-1", 1, "ok", 0),
    ]
    history = merged.to_dataframe(history=True)
    assert list(history[["pod", "attempt", "status"]].itertuples(index=False)) == [
        ("db-0", 1, "failed"),
        ("db-0", 2, "ok"),
        ("db-1", 1, "ok"),
    ]
    # A third attempt counts on; the merged results re-run the latest command.
    third = merged.merge(merged[:1].rerun())
    assert [(r.pod, r.attempt) for r in third] == [("db-0", 3), ("db-1", 1)]
    assert len(third.to_dataframe(history=True)) == 4
    assert "attempt" not in first.to_dataframe().columns


# -- the magic -------------------------------------------------------------------------------------


def test_magic_takes_results_and_lists_of_names_as_targets(ip: InteractiveShell) -> None:
    ip.run_line_magic("pod", f"-l app=db -o first -- {ONLY_DB_1}")
    again = ip.run_line_magic("pod", "{{first.failed}} -- echo $HOSTNAME")
    assert _where(again) == [("conf", "db-0", "postgres")]
    named = ip.run_line_magic("pod", '{{["db-1", "solo"]}} -- hostname')
    assert [r.stdout for r in named] == [b"db-1\n", b"solo\n"]
    ip.user_ns["elsewhere"] = ip.run_line_magic("pod", f"elsewhere -n {OTHER} -- true")
    both = ip.run_line_magic("pod", "{{elsewhere}} {{first[0]}} -- hostname")
    assert [(r.namespace, r.stdout) for r in both] == [("conf", b"db-0\n"), (OTHER, b"elsewhere\n")]


def test_magic_target_values_are_data_never_words_or_options(
    ip: InteractiveShell, other: Sandbox
) -> None:
    before = _execs(other)
    ip.user_ns["sneaky"] = ["solo", "-n kube-system"]
    with pytest.raises(SelectionError, match='invalid pod name "-n kube-system"'):
        ip.run_line_magic("pod", "{{sneaky}} -- true")
    with pytest.raises(SelectionError, match='invalid pod name "solo; reboot"'):
        ip.run_line_magic("pod", "{{'solo; reboot'}} -- true")
    with pytest.raises(UsageError, match="holds int; a target list holds pod names"):
        ip.run_line_magic("pod", "{{[1, 2]}} -- true")
    ip.user_ns["nothing_failed"] = ip.run_line_magic("pod", "solo -- true").failed
    with pytest.raises(UsageError, match="is empty \\(no pod failed\\?\\): no target"):
        ip.run_line_magic("pod", "{{nothing_failed}} -- true")
    assert _execs(other) == before + 1


def test_magic_runs_results_in_their_own_context(ip: InteractiveShell) -> None:
    ip.user_ns["foreign"] = [
        PodResult(context="prod-eu", namespace="conf", pod="solo", status="failed")
    ]
    # Not in the current context: it goes where the results came from (unknown here).
    with pytest.raises(ConfigError, match='context "prod-eu" not found'):
        ip.run_line_magic("pod", "{{foreign}} -- true")
    with pytest.raises(SelectionError, match="run them there with --context prod-eu"):
        ip.run_line_magic("pod", "{{foreign}} --context podmagic-sandbox -- true")


def test_magic_rerun_repeats_the_run_with_the_values_of_then(ip: InteractiveShell) -> None:
    ip.user_ns["word"] = "before"
    ip.run_line_magic("pod", f"-l app=db -o first -- echo {{{{word}}}}; {ONLY_DB_1}")
    ip.user_ns["word"] = "after"
    ip.run_line_magic("pod", "--rerun first -o again")
    again = ip.user_ns["again"]
    assert [r.stdout for r in again] == [b"before\n", b"before\n"]
    assert [r.status for r in again] == [ExecStatus.FAILED, ExecStatus.OK]
    only_failed = ip.run_line_magic("pod", "--rerun first.failed --ok-exit 0,1")
    assert _where(only_failed) == [("conf", "db-0", "postgres")] and only_failed.ok
    merged = ip.user_ns["first"].merge(only_failed)
    assert merged.ok and [r.attempt for r in merged] == [2, 1]
    # Nothing failed now: nothing runs, and the cell does not fail (a runbook goes on).
    ip.user_ns["merged"] = merged
    assert ip.run_line_magic("pod", "--rerun merged.failed --check -o none") is None
    assert ip.user_ns["none"] == PodResults()


def test_magic_rerun_refuses_what_it_cannot_change(ip: InteractiveShell) -> None:
    ip.run_line_magic("pod", "solo -o first -- true")
    with pytest.raises(UsageError, match="leave out a target, -n, a command"):
        ip.run_line_magic("pod", "--rerun first solo -n conf -- hostname")
    with pytest.raises(UsageError, match="--rerun 5 is int; give the results of a %pod"):
        ip.run_line_magic("pod", "--rerun 5")
    ip.user_ns["handmade"] = PodResults(list(ip.user_ns["first"]))
    with pytest.raises(UsageError, match="PodResults that does not remember its run"):
        ip.run_line_magic("pod", "--rerun handmade")


def test_a_container_the_pod_no_longer_has_is_that_pods_error(cluster: Cluster) -> None:
    stale = PodResult(
        context=cluster.context, namespace="conf", pod="solo", container="gone", status="ok"
    )
    results = cluster.run("true", [stale, *cluster.run("true", "db-0")])
    assert [(r.pod, r.container, r.status) for r in results] == [
        ("db-0", "postgres", ExecStatus.OK),
        ("solo", "gone", ExecStatus.ERROR),
    ]
    assert results[1].error == 'container "gone" not found (containers: main)'


def test_results_of_a_run_still_pickle_and_copy(cluster: Cluster) -> None:
    results = cluster.run(f"{ONLY_DB_1} || exit 3", selector="app=db")
    merged = results.merge(results.rerun(failed=True))
    # The run's Cluster holds credentials: it stays behind, the data travels.
    unpickled = pickle.loads(pickle.dumps(merged))
    assert unpickled == merged
    assert len(unpickled.to_dataframe(history=True)) == 3
    with pytest.raises(ValueError, match="do not remember a run"):
        unpickled.rerun()
    error = pickle.loads(pickle.dumps(PodsFailedError(results)))
    assert error.results == results
    # A copy in the same process is the same run.
    assert _where(copy.deepcopy(results).rerun(failed=True)) == [("conf", "db-0", "postgres")]
    assert _where(copy.copy(results).failed.rerun()) == [("conf", "db-0", "postgres")]


def test_choices_that_do_not_go_with_results_are_refused(cluster: Cluster) -> None:
    results = cluster.run("true", selector="app=db")
    with pytest.raises(SelectionError, match=r"^one=True and pick=N pick among the pods found"):
        cluster.run("true", results, pick=1)
    with pytest.raises(SelectionError, match=r"give pods \(names or results\) or a selector"):
        cluster.run("true", results, selector="app=web")


def test_magic_rerun_in_the_background_and_as_a_dry_run(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("pod", f"-l app=db -o first -- {ONLY_DB_1}")
    handle = ip.run_line_magic("pod", "--rerun first.failed --bg -o later")
    again = handle.result(timeout=60)
    assert _where(again) == [("conf", "db-0", "postgres")]
    assert ip.user_ns["later"] is again
    capsys.readouterr()
    assert ip.run_line_magic("pod", "--rerun first --dry-run") is None
    assert "pods db-0, db-1 in namespace conf — 2 to run" in capsys.readouterr().out


def test_query_takes_names_only_and_says_where_results_go(cluster: Cluster) -> None:
    results = cluster.run("true", "solo")
    with pytest.raises(TypeError, match="results are targets of run\\(\\) and select\\(\\)"):
        cluster.query(results)  # type: ignore[arg-type]


def test_results_in_a_command_are_refused_with_the_way_to_their_names(
    ip: InteractiveShell, other: Sandbox
) -> None:
    ip.run_line_magic("pod", f"-l app=db -o first -- {ONLY_DB_1}")
    before = _execs(other)
    with pytest.raises(UsageError) as raised:
        ip.run_line_magic("pod", "solo -- echo {{first.failed}}")
    assert "is a PodResult (results of a run), not a word" in str(raised.value)
    assert "{{[r.pod for r in results]}}" in str(raised.value)
    assert _execs(other) == before
    names = ip.run_line_magic("pod", "solo -- echo {{[r.pod for r in first.failed]}}")
    assert names.stdout == b"db-0\n"


# -- re-runs after the pods were replaced ---------------------------------------------------------

ROLL = "rerun-roll"
_ROLL_MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: {namespace}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}, annotations: {{revision: "{revision}"}}}}
    spec:
      containers: [{{name: main, image: busybox}}]
"""


@pytest.fixture
def roll(sandbox: Sandbox) -> Iterator[Callable[[], list[str]]]:
    """A namespace ``rerun-roll`` with ``deploy/api`` (2 replicas); calling the fixture's value
    rolls it out again (a new pod template: new pods with new names) and returns them."""
    sandbox.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ROLL}}}\n")
    sandbox.apply(_ROLL_MANIFEST.format(namespace=ROLL, revision=1))
    revision = [1]

    def pods() -> list[str]:
        return sorted(sandbox.pods(ROLL))

    wait_until(lambda: len(pods()) == 2, what="deploy/api's two pods")

    def rollout() -> list[str]:
        before = set(pods())
        revision[0] += 1
        sandbox.apply(_ROLL_MANIFEST.format(namespace=ROLL, revision=revision[0]))

        def replaced() -> list[str] | None:
            now = pods()
            return now if len(now) == 2 and not before & set(now) else None

        new = wait_until(replaced, what="deploy/api's old pods replaced by two new ones")
        assert new is not None
        return new

    yield rollout
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.delete_namespace, ROLL)


def test_rerun_after_a_rollout_names_the_replaced_pods_as_errors_and_runs_none(
    sandbox: Sandbox, roll: Callable[[], list[str]]
) -> None:
    with Cluster(kubeconfig=sandbox.kubeconfig, namespace=ROLL) as cluster:
        first = cluster.run("hostname; exit 3", "deploy/api")
        assert len(first.failed) == 2
        roll()
        before = _execs(sandbox)
        for again in (first.rerun(), first.rerun(failed=True), first.failed.rerun()):
            assert _where(again) == _where(first)
            assert [r.status for r in again] == [ExecStatus.ERROR, ExecStatus.ERROR]
            assert again[0].error == (
                "pod no longer exists (deleted, or replaced by new pods since the run); "
                f"res.rerun(target=True) runs in the pods of deploy/api in namespace {ROLL} now"
            )
        assert _execs(sandbox) == before
        # Merged, the attempts that could not run say so and keep the first ones as history.
        merged = first.merge(first.rerun(failed=True))
        assert [(r.attempt, r.status) for r in merged] == [(2, ExecStatus.ERROR)] * 2


def test_rerun_runs_in_the_pods_still_there_and_reports_the_gone_one(
    sandbox: Sandbox, roll: Callable[[], list[str]]
) -> None:
    with Cluster(kubeconfig=sandbox.kubeconfig, namespace=ROLL) as cluster:
        first = cluster.run("hostname", "deploy/api")
        kept, deleted = first[0].pod, first[1].pod
        sandbox.delete_pod(deleted, namespace=ROLL)  # its ReplicaSet makes a new one
        again = first.rerun()
        assert [(r.pod, r.status) for r in again] == [
            (kept, ExecStatus.OK),
            (deleted, ExecStatus.ERROR),
        ]
        assert again[0].stdout == f"{kept}\n".encode()
        assert (again[1].error or "").startswith("pod no longer exists")


def test_rerun_target_true_finds_the_workloads_pods_again(
    sandbox: Sandbox, roll: Callable[[], list[str]]
) -> None:
    with Cluster(kubeconfig=sandbox.kubeconfig, namespace=ROLL) as cluster:
        first = cluster.run("hostname", "deploy/api")
        new_pods = roll()
        headers: list[str] = []

        def on_event(event: object) -> None:
            if isinstance(event, RunStarted):
                headers.append(event.selection.description)

        again = first.rerun(target=True, on_event=on_event)
        assert [r.pod for r in again] == new_pods
        assert [r.stdout for r in again] == [f"{pod}\n".encode() for pod in new_pods]
        assert headers == [f"deploy/api in namespace {ROLL} (found again for the re-run)"]
        # The new results remember the target too, and the command as it was.
        assert [r.pod for r in first.failed.rerun(target=True)] == []
        assert [r.pod for r in again.rerun(target=True)] == new_pods
        assert [r.command for r in again] == [r.command for r in first]
        with pytest.raises(ValueError, match="rerun\\(failed=True\\) runs again in the pods"):
            first.rerun(failed=True, target=True)
        # A run given its pods (earlier results) has no target to look for again.
        given = cluster.run("true", again)
        with pytest.raises(ValueError, match="this run was given its pods"):
            given.rerun(target=True)


def test_magic_rerun_retarget_after_a_rollout(
    ip: InteractiveShell, roll: Callable[[], list[str]]
) -> None:
    ip.run_line_magic("pod", f"deploy/api -n {ROLL} -o first -- hostname")
    new_pods = roll()
    stale = ip.run_line_magic("pod", "--rerun first")
    assert [r.status for r in stale] == [ExecStatus.ERROR, ExecStatus.ERROR]
    assert (stale[0].error or "").endswith(
        f"%pod --rerun RESULTS --retarget runs in the pods of deploy/api in namespace {ROLL} now"
    )
    again = ip.run_line_magic("pod", "--rerun first --retarget")
    assert [(r.pod, r.stdout) for r in again] == [(p, f"{p}\n".encode()) for p in new_pods]
    with pytest.raises(UsageError, match="--retarget goes with --rerun RESULTS"):
        ip.run_line_magic("pod", "solo --retarget -- true")

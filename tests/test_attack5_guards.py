"""The guards and ``--context`` where an outside attack found them wanting: ``%pod_cp`` under
``protected_contexts``/``confirm_above``, ``--rerun`` of a run across contexts (guards as set
now, a replaced pod per pod), an exact context name that looks like a glob, ``%pod_cp`` and
``%pod_logs`` given several contexts, and an empty ``--context``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _waiting import wait_until
from conftest import quiet_podmagic_shell
from IPython.core.error import UsageError

from podmagic import Cluster, RefusedError, SelectionError
from podmagic._many import match_contexts
from podmagic._safety import matches_protected
from podmagic.sandbox import Sandbox

A, B = "podmagic-sandbox", "podmagic-sandbox-2"
#: A context whose name holds glob characters, and one that name (as a glob) would match.
LITERAL, LOOKALIKE = "x[1]", "x1"


@pytest.fixture(scope="module")
def kubeconfig(
    podmagic_sandbox_contexts: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The two clusters' kubeconfig (namespace ``demo``), with ``x1`` (cluster A) and ``x[1]``
    (cluster B) more; once the web and db pods run in both."""
    sandbox = podmagic_sandbox_contexts
    assert sandbox.kubeconfig is not None and sandbox.contexts == (A, B)
    document = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    by_name = {entry["name"]: entry["context"] for entry in document["contexts"]}
    document["contexts"] += [
        {"name": LOOKALIKE, "context": dict(by_name[A])},
        {"name": LITERAL, "context": dict(by_name[B])},
    ]
    for entry in document["contexts"]:
        entry["context"]["namespace"] = "demo"
    path = tmp_path_factory.mktemp("attack5") / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    with Cluster.many([A, B], kubeconfig=path) as both:

        def every_pod_running() -> bool:
            try:
                found = both.select(["deploy/web", "sts/db"])
            except SelectionError:
                return False
            return not found.errors and len(found.run) == 10  # 3 web and 2 db pods each

        wait_until(every_pod_running, what="the web and db pods running in both clusters")
    return path


@pytest.fixture(scope="module")
def shell(kubeconfig: Path) -> Iterator[Any]:
    with quiet_podmagic_shell(kubeconfig, namespace="demo") as ip:
        yield ip


@pytest.fixture
def guards(shell: Any) -> Iterator[Any]:
    """Sets ``PodMagic.protected_contexts``/``confirm_above`` for one test, then the defaults."""

    def set_guards(protected: list[str] | None = None, above: int | None = None) -> None:
        if protected is not None:
            shell.run_line_magic("config", f"PodMagic.protected_contexts = {protected!r}")
        if above is not None:
            shell.run_line_magic("config", f"PodMagic.confirm_above = {above}")

    yield set_guards
    shell.run_line_magic("config", "PodMagic.protected_contexts = ['*prod*']")
    shell.run_line_magic("config", "PodMagic.confirm_above = 50")


# -- finding 1: %pod_cp and the guards --------------------------------------------------------


def test_pod_cp_to_a_protected_context_is_refused_until_yes(
    shell: Any, guards: Any, tmp_path: Path
) -> None:
    upload = tmp_path / "upl.txt"
    upload.write_text("hello\n")
    guards(protected=["*-2"])
    with pytest.raises(RefusedError) as caught:
        shell.run_line_magic("pod_cp", f"-q --context {B} {upload} db-0:/tmp/upl-guard.txt")
    assert f'context "{B}" is protected' in str(caught.value)
    assert "--yes" in str(caught.value) and "yes=True" not in str(caught.value)
    shell.run_line_magic("pod_cp", f"-q --yes --context {B} {upload} db-0:/tmp/upl-guard.txt -o c")
    assert shell.user_ns["c"].ok


def test_pod_cp_to_more_pods_than_confirm_above_is_refused_both_ways(
    shell: Any, guards: Any, tmp_path: Path
) -> None:
    upload = tmp_path / "upl.txt"
    upload.write_text("hello\n")
    guards(above=1)
    with pytest.raises(RefusedError) as caught:
        shell.run_line_magic("pod_cp", f"-q {upload} deploy/web:/tmp/upl-many.txt")
    assert "3 pods is more than the 1 allowed" in str(caught.value)
    assert "PodMagic.confirm_above" in str(caught.value)
    with pytest.raises(RefusedError):
        shell.run_line_magic("pod_cp", f"-q deploy/web:/etc/hostname {tmp_path / 'got'}")
    assert not (tmp_path / "got" / A).exists()


# -- finding 2: --rerun across contexts judged by the guards as set now ------------------------


def test_rerun_across_contexts_is_judged_by_the_guards_as_they_are_now(
    shell: Any, guards: Any
) -> None:
    shell.run_line_magic("pod", "db-0 --context 'podmagic-sandbox*' -q -o across -- hostname")
    assert {r.context for r in shell.user_ns["across"]} == {A, B}
    shell.user_ns.pop("again", None)  # the shell is shared: an earlier test's `again` is not ours
    guards(protected=["*-2"])
    with pytest.raises(RefusedError) as caught:
        shell.run_line_magic("pod", "--rerun across -q -o again")
    assert f'"{B}"' in str(caught.value) and "protected" in str(caught.value)
    assert "again" not in shell.user_ns
    guards(protected=["*prod*"], above=1)
    with pytest.raises(RefusedError) as caught:
        shell.run_line_magic("pod", "--rerun across -q -o again")
    assert "2 pods in 2 contexts is more than the 1 allowed" in str(caught.value)
    shell.run_line_magic("pod", "--rerun across -q --yes -o again")
    assert shell.user_ns["again"].ok


# -- finding 4: an exact context name wins over a glob ----------------------------------------


def test_an_exact_context_name_wins_over_the_glob_it_also_is(kubeconfig: Path) -> None:
    assert match_contexts([LITERAL], kubeconfig) == [LITERAL]
    assert match_contexts("x*", kubeconfig) == [LOOKALIKE, LITERAL]


def test_magic_context_that_is_a_name_runs_there_not_where_the_glob_points(shell: Any) -> None:
    shell.run_line_magic("pod", f"db-0 --context '{LITERAL}' -q -o there -- true")
    assert [r.context for r in shell.user_ns["there"]] == [LITERAL]


def test_a_protected_pattern_matches_its_own_literal_name(shell: Any, guards: Any) -> None:
    assert matches_protected(LITERAL, [LITERAL]) == LITERAL
    assert matches_protected(LOOKALIKE, [LITERAL]) == LITERAL  # still a glob too
    guards(protected=[LITERAL])
    with pytest.raises(RefusedError) as caught:
        shell.run_line_magic("pod", f"db-0 --context '{LITERAL}' -q -- true")
    assert f'context "{LITERAL}" is protected' in str(caught.value)


# -- finding 5: %pod_cp/%pod_logs run in one context, and say so ------------------------------


@pytest.mark.parametrize("magic", ["pod_cp", "pod_logs"])
@pytest.mark.parametrize(
    "contexts", [f"--context {A} --context {B}", "--context 'podmagic-sandbox*'"]
)
def test_pod_cp_and_pod_logs_refuse_several_contexts_in_one_line(
    shell: Any, magic: str, contexts: str, tmp_path: Path
) -> None:
    words = "db-0:/etc/hostname " + str(tmp_path) if magic == "pod_cp" else "db-0"
    with pytest.raises(UsageError) as caught:
        shell.run_line_magic(magic, f"-q {contexts} {words}")
    message = str(caught.value)
    assert "\n" not in message
    assert f"%{magic} reads one context" in message or f"%{magic} runs in one context" in message
    assert not any(tmp_path.iterdir())


# -- finding 8: --rerun across contexts after a pod was replaced -------------------------------


def test_rerun_across_contexts_after_a_pod_was_replaced_is_per_pod(
    podmagic_sandbox_contexts: Sandbox, shell: Any
) -> None:
    shell.run_line_magic("pod", f"deploy/web --context {A} --context {B} -q -o webs -- true")
    webs = shell.user_ns["webs"]
    assert len(webs) == 6 and webs.ok
    gone = next(r.pod for r in webs if r.context == B)
    podmagic_sandbox_contexts.in_context(B).delete_pod(gone, namespace="demo")
    shell.run_line_magic("pod", "--rerun webs -q -o again")
    again = shell.user_ns["again"]
    by_pod = {(r.context, r.pod): r for r in again}
    assert len(by_pod) == 6
    assert by_pod[B, gone].status.value == "error"
    assert (by_pod[B, gone].error or "").startswith("pod no longer exists")
    assert "--retarget" not in (by_pod[B, gone].error or "")
    assert all(r.ok for key, r in by_pod.items() if key != (B, gone))


def test_rerun_across_contexts_after_a_pod_was_recreated_under_its_name_is_per_pod(
    podmagic_sandbox_contexts: Sandbox, shell: Any, kubeconfig: Path
) -> None:
    shell.run_line_magic("pod", f"sts/db --context {A} --context {B} -q -o dbs -- true")
    dbs = shell.user_ns["dbs"]
    assert len(dbs) == 4 and dbs.ok
    with Cluster(B, kubeconfig=kubeconfig) as there:
        before = there.select("db-1").run[0].pod_uid
        podmagic_sandbox_contexts.in_context(B).delete_pod("db-1", namespace="demo")

        def recreated() -> bool:
            try:
                return there.select("db-1").run[0].pod_uid != before
            except SelectionError:
                return False

        wait_until(recreated, what="db-1 recreated by its StatefulSet in the second cluster")
    shell.run_line_magic("pod", "--rerun dbs -q -o again")
    by_pod = {(r.context, r.pod): r for r in shell.user_ns["again"]}
    assert len(by_pod) == 4
    assert (by_pod[B, "db-1"].error or "").startswith("pod no longer exists")
    assert all(r.ok for key, r in by_pod.items() if key != (B, "db-1"))


# -- finding 10: an empty --context ------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "pod db-0 --context '' -- true",
        "pod db-0 --context {{empty}} -- true",
        f"pod db-0 --context {B} --context '' -- true",
        "pod_logs db-0 --context ''",
        "pod_cp db-0:/etc/hostname /tmp --context ''",
        "pod_target db-0 --context ''",
    ],
)
def test_an_empty_context_is_one_clear_refusal(shell: Any, line: str) -> None:
    shell.user_ns["empty"] = ""
    magic, _, rest = line.partition(" ")
    with pytest.raises(UsageError) as caught:
        shell.run_line_magic(magic, rest)
    message = str(caught.value)
    assert "\n" not in message and "--context is empty" in message

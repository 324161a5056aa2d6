"""``%pod_target``: a default target for the cells that name none, shown in the run header,
against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from podmagic._results import PodResults
from podmagic.sandbox import Sandbox


@pytest.fixture
def ip(sandbox: Sandbox) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "podmagic")
    shell.run_line_magic("config", f"PodMagic.kubeconfig = {str(sandbox.kubeconfig)!r}")
    shell.run_line_magic("config", "PodMagic.namespace = 'default'")
    shell.run_line_magic("config", "PodMagic.quiet = True")
    yield shell
    shell.run_line_magic("pod_target", "--clear")
    shell.run_line_magic("config", "PodMagic.quiet = False")


def _pods(results: PodResults) -> list[str]:
    return [r.pod.split("-")[0] for r in results]


def test_a_cell_without_a_target_runs_in_the_default_one(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("pod_target", "deploy/web -n conf")
    assert "default target: deploy/web -n conf" in capsys.readouterr().out
    results = ip.run_cell_magic("pod", "", "echo $GREETING from $MY_POD\n")
    assert _pods(results) == ["web", "web", "web"]
    assert all(r.namespace == "conf" and r.stdout.startswith(b"hello from web-") for r in results)
    assert _pods(ip.run_line_magic("pod", "-- true")) == ["web", "web", "web"]
    ip.run_line_magic("pod_target", "")
    assert capsys.readouterr().out == "default target: deploy/web -n conf\n"


def test_the_run_header_says_the_default_target_chose_the_pods(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("pod_target", "solo -n conf")
    ip.run_line_magic("config", "PodMagic.quiet = False")  # the text view of a terminal shell
    capsys.readouterr()
    ip.run_cell_magic("pod", "", "echo hi\n")
    header = capsys.readouterr().out.splitlines()[0]
    assert "pod solo in namespace conf (default target)" in header
    ip.run_line_magic("pod", "--dry-run")
    assert "(default target)" in capsys.readouterr().out


def test_a_cell_that_names_a_target_or_options_wins_over_the_default(
    ip: InteractiveShell,
) -> None:
    ip.run_line_magic("pod_target", "deploy/web -n conf")
    assert _pods(ip.run_line_magic("pod", "-l app=db -n conf -- true")) == ["db", "db"]
    assert _pods(ip.run_line_magic("pod", "solo -n conf -- true")) == ["solo"]
    ip.run_line_magic("pod_target", "multi -n conf")
    # The cell's -c replaces the default pod's default container, the namespace stays.
    assert [r.stdout for r in ip.run_line_magic("pod", "-c second -- echo $CONTAINER")] == [
        b"second\n"
    ]


def test_results_can_be_the_default_target(ip: InteractiveShell) -> None:
    ip.user_ns["dbs"] = ip.run_line_magic("pod", "-l app=db -n conf -- true")
    ip.run_line_magic("pod_target", "{{dbs}}")
    assert _pods(ip.run_cell_magic("pod", "", "true\n")) == ["db", "db"]


def test_clear_forgets_it_and_a_cell_without_target_says_how_to_set_one(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("pod_target", "deploy/web -n conf")
    ip.run_line_magic("pod_target", "--clear")
    ip.run_line_magic("pod_target", "")
    assert "no default target; set one with %pod_target" in capsys.readouterr().out
    with pytest.raises(UsageError) as raised:
        ip.run_cell_magic("pod", "", "echo hi\n")
    message = str(raised.value)
    assert message.startswith("no target: name a pod (web-1)")
    assert "%pod_target deploy/web -n shop" in message


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("-n conf", "%pod_target needs a target or -l SELECTOR"),
        ("deploy/web -n Bad_NS", 'invalid namespace "Bad_NS"'),
        ("Web_1", 'invalid pod name "Web_1"'),
        ("-l 'app in (a'", "invalid label selector"),
        ("deploy/web --clear", "%pod_target --clear takes nothing else"),
    ],
)
def test_a_bad_default_is_one_line_when_set_and_keeps_the_old_one(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str], line: str, words: str
) -> None:
    ip.run_line_magic("pod_target", "solo -n conf")
    with pytest.raises(UsageError, match=words):
        ip.run_line_magic("pod_target", line)
    capsys.readouterr()
    ip.run_line_magic("pod_target", "")
    assert capsys.readouterr().out == "default target: solo -n conf\n"

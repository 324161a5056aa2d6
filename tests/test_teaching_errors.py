"""Errors that teach: the forgotten `` -- ``, a misspelt option, IPython's ``{var}`` in an
option, and "did you mean" only for names that are close. Through a real InteractiveShell and
``Cluster``, against the sandbox; nothing runs when the line is wrong."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from podmagic import Cluster
from podmagic._errors import ConfigError, SelectionError
from podmagic.sandbox import Sandbox


@pytest.fixture
def ip(sandbox: Sandbox) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "podmagic")
    shell.run_line_magic("config", f"PodMagic.kubeconfig = {str(sandbox.kubeconfig)!r}")
    shell.run_line_magic("config", "PodMagic.namespace = 'conf'")
    shell.run_line_magic("config", "PodMagic.quiet = True")
    yield shell
    shell.run_line_magic("pod_target", "--clear")
    shell.run_line_magic("config", "PodMagic.quiet = False")


def _usage(ip: InteractiveShell, line: str) -> str:
    with pytest.raises(UsageError) as raised:
        ip.run_line_magic("pod", line)
    message = str(raised.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("line", "suggested"),
    [
        ("solo hostname", "%pod solo -- hostname"),
        ("deploy/web cat /etc/os-release", "%pod deploy/web -- cat /etc/os-release"),
        ("solo ls -la /", "%pod solo -- ls -la /"),
        ("solo df -h", "%pod solo -- df -h"),
        ("solo -n conf uname -a", "%pod solo -n conf -- uname -a"),
        ("solo grep -r x --include '*.py' .", "%pod solo -- grep -r x --include '*.py' ."),
        ("solo echo {{ 'a b' }} end", "%pod solo -- echo {{ 'a b' }} end"),
    ],
)
def test_a_forgotten_separator_shows_the_line_with_it(
    ip: InteractiveShell, sandbox: Sandbox, line: str, suggested: str
) -> None:
    before = sandbox.exec_stats()["total"]
    message = _usage(ip, line)
    assert f"a ` -- ` missing before the command? did you mean `{suggested}`" in message
    assert sandbox.exec_stats()["total"] == before


def test_with_a_default_target_the_whole_line_is_the_command(ip: InteractiveShell) -> None:
    ip.run_line_magic("pod_target", "solo")
    message = _usage(ip, "df -h /")
    assert "did you mean `%pod -- df -h /` (the default target: solo)" in message


def test_a_line_that_is_fine_without_a_command_is_not_taught(ip: InteractiveShell) -> None:
    assert ip.run_line_magic("pod", "solo db-0 --dry-run") is None
    message = _usage(ip, "solo")
    assert message == (
        "no command: write %pod TARGET -- COMMAND, or use %%pod with the script as the cell"
    )


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("solo --timout 5 -- true", "unknown option --timout: did you mean --timeout?"),
        ("solo --dryrun", "unknown option --dryrun: did you mean --dry-run?"),
        ("solo -timeout 5 -- true", "unknown option -timeout: did you mean --timeout?"),
        ("solo --ok-exits 0,1 -- true", "unknown option --ok-exits: did you mean --ok-exit?"),
        (
            "solo --namspace=conf -- true",
            "unknown option --namspace=conf: did you mean --namespace?",
        ),
    ],
)
def test_a_misspelt_option_gets_did_you_mean(ip: InteractiveShell, line: str, words: str) -> None:
    assert _usage(ip, line) == words


def test_an_option_far_from_any_gets_no_guess(ip: InteractiveShell) -> None:
    message = _usage(ip, "solo --frobnicate -- true")
    assert "did you mean" not in message
    assert "--frobnicate" in message


def test_pod_target_options_are_taught_too(ip: InteractiveShell) -> None:
    with pytest.raises(
        UsageError, match=r"^unknown option --namspace: did you mean --namespace\?$"
    ):
        ip.run_line_magic("pod_target", "deploy/web --namspace shop")


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("-n {ns} solo -- true", SelectionError),
        ("{pod} -- true", SelectionError),
        ("-l app={app} -- true", SelectionError),
        ("solo --context {ctx} -- true", ConfigError),
    ],
)
def test_ipython_braces_in_options_say_to_write_double_braces(
    ip: InteractiveShell, line: str, error: type[Exception]
) -> None:
    name = line.split("{")[1].split("}")[0]
    with pytest.raises(error) as raised:
        ip.run_line_magic("pod", line)
    message = str(raised.value)
    hint = f"{{{name}}} is IPython's expansion, which %pod options do not do: write {{{{{name}}}}}"
    assert hint in message
    assert message.count("IPython's expansion") == 1


def test_braces_in_the_command_are_the_shells(ip: InteractiveShell) -> None:
    results = ip.run_line_magic("pod", "solo -- echo {a,b} {x}")
    assert results.stdout in (b"a b {x}\n", b"{a,b} {x}\n")  # brace expansion is bash's


def test_python_callers_are_told_of_the_f_string(sandbox: Sandbox) -> None:
    with Cluster(kubeconfig=sandbox.kubeconfig, namespace="conf") as cluster:
        with pytest.raises(SelectionError) as raised:
            cluster.run("true", selector="app={app}")
        assert str(raised.value).endswith(
            '{app} is text here; for the value of app, write an f-string: f"…{app}…"'
        )
        with pytest.raises(SelectionError, match="write an f-string"):
            cluster.run("true", ["solo", "{pod}"])


def test_not_found_suggests_only_close_names(ip: InteractiveShell) -> None:
    with pytest.raises(SelectionError, match="did you mean solo\\?"):
        ip.run_line_magic("pod", "soloo -- true")
    with pytest.raises(SelectionError) as far:
        ip.run_line_magic("pod", "xyzzy -- true")
    assert "did you mean" not in str(far.value)
    with pytest.raises(SelectionError, match="did you mean web\\?"):
        ip.run_line_magic("pod", "deploy/wbe -- true")
    with pytest.raises(SelectionError) as namespace:
        ip.run_line_magic("pod", "solo -n zzz -- true")
    assert "did you mean" not in str(namespace.value)


def test_a_misspelt_keyword_argument_names_the_one_meant(sandbox: Sandbox) -> None:
    with pytest.raises(TypeError, match=r"^Cluster\(\) got an unexpected keyword argument "):
        Cluster(kubeconfg=sandbox.kubeconfig)  # type: ignore[call-arg]
    with Cluster(kubeconfig=sandbox.kubeconfig, namespace="conf") as cluster:
        before = sandbox.exec_stats()["total"]
        with pytest.raises(TypeError) as raised:
            cluster.run("true", "solo", timout=3)  # type: ignore[call-arg]
        assert str(raised.value) == (
            "Cluster.run() got an unexpected keyword argument 'timout'; did you mean timeout=?"
        )
        with pytest.raises(TypeError, match=r"'selectr'; did you mean selector=\?"):
            cluster.select(selectr="app=db")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match=r"'frobnicate'; help\(Cluster.run\) lists them"):
            cluster.run("true", "solo", frobnicate=1)  # type: ignore[call-arg]
        assert sandbox.exec_stats()["total"] == before

"""The guards of %pod hold for the Python API too, and bad input is one clear line.

``Cluster`` refuses protected contexts and large fan-outs until ``yes=True``, and a run that
names no target and no selector until it says ``all_pods=True`` (or ``selector=""``); wrong
argument types are one ``TypeError`` naming the argument. ``%pod --stdin EXPR`` with an
expression that raises or has the wrong type is one ``UsageError`` line, and nothing runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from podmagic._client import Cluster
from podmagic._errors import RefusedError
from podmagic._magics import PodMagic
from podmagic._results import PodResults
from podmagic.sandbox import Sandbox

NS = "conf"


@pytest.fixture(scope="module")
def cluster(sandbox: Sandbox) -> Cluster:
    return Cluster(kubeconfig=sandbox.kubeconfig, namespace=NS)


@pytest.fixture(scope="module")
def prod_kubeconfig(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sandbox's kubeconfig with its context renamed ``prod-eu``."""
    config = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    for entry in config["contexts"]:
        entry["name"] = "prod-eu"
    config["current-context"] = "prod-eu"
    path = tmp_path_factory.mktemp("prod") / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def execs(sandbox: Sandbox) -> int:
    return sandbox.exec_stats()["total"]


def refused(sandbox: Sandbox, call: Callable[[], Any], match: str) -> RefusedError:
    """``call`` raises RefusedError matching ``match``, and no exec ran."""
    before = execs(sandbox)
    with pytest.raises(RefusedError, match=match) as caught:
        call()
    assert execs(sandbox) == before
    return caught.value


# -- protected contexts -------------------------------------------------------------------------


def test_cluster_in_a_protected_context_refuses_to_run(
    sandbox: Sandbox, prod_kubeconfig: Path
) -> None:
    prod = Cluster("prod-eu", kubeconfig=prod_kubeconfig, namespace=NS)
    error = refused(sandbox, lambda: prod.run("hostname", "solo"), 'context "prod-eu" is protected')
    assert "yes=True" in str(error)
    assert "--yes" not in str(error)  # the hint speaks of the Python argument


def test_protected_context_runs_with_yes(sandbox: Sandbox, prod_kubeconfig: Path) -> None:
    prod = Cluster("prod-eu", kubeconfig=prod_kubeconfig, namespace=NS)
    assert prod.run("hostname", "solo", yes=True).stdout == b"solo\n"


def test_protected_contexts_are_overridable(sandbox: Sandbox, prod_kubeconfig: Path) -> None:
    unprotected = Cluster(
        "prod-eu", kubeconfig=prod_kubeconfig, namespace=NS, protected_contexts=[]
    )
    assert unprotected.run("hostname", "solo").ok
    own = Cluster(kubeconfig=sandbox.kubeconfig, namespace=NS, protected_contexts=["*sandbox*"])
    refused(sandbox, lambda: own.run("hostname", "solo"), "matches '\\*sandbox\\*'")


def test_protected_context_is_refused_for_a_ready_selection(
    sandbox: Sandbox, prod_kubeconfig: Path
) -> None:
    prod = Cluster("prod-eu", kubeconfig=prod_kubeconfig, namespace=NS)
    selection = prod.select("solo")
    refused(sandbox, lambda: prod.run("hostname", selection=selection), "protected")


def test_guard_defaults_are_the_magics(cluster: Cluster) -> None:
    magic = PodMagic(shell=None)
    assert cluster.protected_contexts == tuple(magic.protected_contexts) == ("*prod*",)
    assert cluster.confirm_above == magic.confirm_above == 50


# -- how many pods --------------------------------------------------------------------------------


def test_more_pods_than_confirm_above_are_refused_until_yes(sandbox: Sandbox) -> None:
    small = Cluster(kubeconfig=sandbox.kubeconfig, namespace=NS, confirm_above=2)
    error = refused(
        sandbox, lambda: small.run("true", selector="app=web"), "3 pods is more than the 2 allowed"
    )
    assert "Cluster(confirm_above=...)" in str(error)
    assert len(small.run("true", selector="app=web", yes=True)) == 3
    unlimited = Cluster(kubeconfig=sandbox.kubeconfig, namespace=NS, confirm_above=None)
    assert len(unlimited.run("true", selector="app=web")) == 3


@pytest.mark.anyio
async def test_arun_is_guarded_too(sandbox: Sandbox) -> None:
    small = Cluster(kubeconfig=sandbox.kubeconfig, namespace=NS, confirm_above=2)
    before = execs(sandbox)
    with pytest.raises(RefusedError):
        await small.arun("true", selector="app=web")
    assert execs(sandbox) == before


# -- naming no target ---------------------------------------------------------------------------


def test_run_without_target_or_selector_is_refused(sandbox: Sandbox, cluster: Cluster) -> None:
    error = refused(
        sandbox,
        lambda: cluster.run("hostname", namespace=NS),
        "no target and no label selector: this would run in every pod",
    )
    assert "all_pods=True" in str(error)


def test_yes_does_not_stand_in_for_a_missing_target(sandbox: Sandbox, cluster: Cluster) -> None:
    refused(sandbox, lambda: cluster.run("hostname", yes=True), "no target and no label selector")


def test_all_pods_or_an_empty_selector_runs_in_every_pod(
    sandbox: Sandbox, cluster: Cluster
) -> None:
    everything = cluster.run("true", all_pods=True)
    assert {r.pod for r in everything} == set(sandbox.pods(NS))
    assert {r.pod for r in cluster.run("true", selector="")} == {r.pod for r in everything}


def test_all_pods_with_a_target_is_a_value_error(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="all_pods=True means every pod"):
        cluster.run("true", "solo", all_pods=True)
    with pytest.raises(ValueError, match="all_pods=True means every pod"):
        cluster.run("true", selector="app=web", all_pods=True)


def test_a_selector_or_a_target_needs_nothing_more(cluster: Cluster) -> None:
    assert cluster.run("true", selector="app=db").ok
    assert cluster.run("true", selector="app=db", field_selector="status.phase=Running").ok
    assert cluster.run("true", ["solo", "deploy/web"]).ok


@pytest.mark.parametrize("fields", ["", "status.phase=Running", "metadata.name=solo"])
def test_a_field_selector_alone_is_no_target_and_is_refused(
    sandbox: Sandbox, cluster: Cluster, fields: str
) -> None:
    error = refused(
        sandbox,
        lambda: cluster.run("true", field_selector=fields),
        "no target and no label selector",
    )
    assert "field selector alone" in str(error)


def test_all_pods_with_a_field_selector_runs_in_the_pods_it_matches(cluster: Cluster) -> None:
    results = cluster.run("true", field_selector="metadata.name=solo", all_pods=True)
    assert [r.pod for r in results] == ["solo"]


def test_a_selection_made_with_no_target_is_refused_like_the_call(
    sandbox: Sandbox, cluster: Cluster
) -> None:
    everything = cluster.select()
    assert everything.untargeted
    refused(
        sandbox,
        lambda: cluster.run("true", selection=everything),
        "no target and no label selector",
    )
    refused(
        sandbox,
        lambda: cluster.run("true", selection=everything, yes=True),
        "no target and no label selector",
    )
    by_field = cluster.select(field_selector="status.phase=Running")
    refused(sandbox, lambda: cluster.run("true", selection=by_field), "no target")
    ran = cluster.run("true", selection=everything, all_pods=True)
    assert {r.pod for r in ran} == {t.pod for t in (*everything.run, *everything.skipped)}


def test_a_selection_with_a_target_or_selector_runs_without_all_pods(cluster: Cluster) -> None:
    for selection in (
        cluster.select("solo"),
        cluster.select(selector="app=db"),
        cluster.select(selector=""),
    ):
        assert not selection.untargeted
        assert cluster.run("true", selection=selection).ok
    with pytest.raises(ValueError, match="all_pods=True means every pod"):
        cluster.run("true", selection=cluster.select("solo"), all_pods=True)


def test_magic_with_an_empty_selector_and_a_field_selector_needs_yes(
    sandbox: Sandbox, ip: InteractiveShell
) -> None:
    refused(
        sandbox,
        lambda: ip.run_line_magic("pod", "-l '' --field-selector status.phase=Running -- true"),
        "every pod",
    )


# -- argument types -------------------------------------------------------------------------------

BAD_RUN_ARGUMENTS: list[tuple[dict[str, Any], str]] = [
    ({"timeout": "5"}, "timeout must be a number of seconds or None, not str"),
    ({"deadline": "10"}, "deadline must be a number of seconds or None, not str"),
    ({"max_concurrency": "3"}, r"max_concurrency must be an int \(at least 1\) or None, not str"),
    ({"on_event": 5}, "on_event must be a callable taking one event, or None, not int"),
    ({"control": 5}, "control must be a RunControl or None, not int"),
    ({"control": "stop"}, "control must be a RunControl or None, not str"),
    ({"retries": 1.5}, "retries must be an int, not float"),
    ({"capture_limit": "1000"}, r"capture_limit must be an int \(bytes\) or None, not str"),
    ({"pick": "2"}, "pick must be an int or None, not str"),
    ({"selector": ["app=web"]}, "selector must be a label selector str"),
    ({"namespace": 7}, "namespace must be a str or None, not int"),
    ({"env": {"PORT": 8080}}, "env must be a mapping of str to str"),
    ({"stdin": 12345}, "stdin must be str, bytes or a file opened for reading, not int"),
    ({"tty": "yes"}, "tty must be True or False, not str"),
    ({"yes": 1}, "yes must be True or False, not int"),
]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    BAD_RUN_ARGUMENTS,
    ids=[next(iter(kwargs)) for kwargs, _ in BAD_RUN_ARGUMENTS],
)
def test_wrong_argument_types_are_one_clear_type_error(
    sandbox: Sandbox, cluster: Cluster, kwargs: dict[str, Any], message: str
) -> None:
    before = execs(sandbox)
    with pytest.raises(TypeError, match=f"^Cluster.run\\(\\): {message}"):
        cluster.run("true", "solo", **kwargs)
    assert execs(sandbox) == before


@pytest.mark.parametrize(("target", "command"), [(123, "true"), ("solo", 123), ("solo", b"true")])
def test_wrong_target_or_command_types_are_one_clear_type_error(
    cluster: Cluster, target: Any, command: Any
) -> None:
    with pytest.raises(TypeError, match=r"^Cluster.run\(\): (target|command) must be"):
        cluster.run(command, target)


def test_type_errors_never_show_env_values(cluster: Cluster) -> None:
    with pytest.raises(TypeError) as caught:
        cluster.run("true", "solo", env={"TOKEN": 31337424242})
    assert "31337424242" not in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protected_contexts": "prod"}, "protected_contexts must be a list of context patterns"),
        ({"confirm_above": "50"}, r"confirm_above must be an int \(pods\) or None, not str"),
        ({"timeout": "5"}, "timeout must be a number of seconds or None, not str"),
        (
            {"max_concurrency": 2.5},
            r"max_concurrency must be an int \(at least 1\) or None, not float",
        ),
    ],
)
def test_wrong_cluster_argument_types_are_one_clear_type_error(
    sandbox: Sandbox, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=f"^Cluster\\(\\): {message}"):
        Cluster(kubeconfig=sandbox.kubeconfig, **kwargs)


# -- %pod --stdin -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ip(sandbox: Sandbox) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "podmagic")
    magic = shell.magics_manager.registry["PodMagic"]
    saved = {name: getattr(magic, name) for name in ("kubeconfig", "namespace", "quiet", "context")}
    shell.run_line_magic("config", f"PodMagic.kubeconfig = {str(sandbox.kubeconfig)!r}")
    shell.run_line_magic("config", f"PodMagic.namespace = {NS!r}")
    shell.run_line_magic("config", "PodMagic.quiet = True")
    yield shell
    for name, value in saved.items():
        setattr(magic, name, value)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("1/0", r"^--stdin 1/0 raised ZeroDivisionError \(its message is left out"),
        ("12345", r"^--stdin 12345 is int; it must be str, bytes or a file opened for reading"),
        ("undefined_name_xyz", r"^--stdin undefined_name_xyz raised NameError"),
        ("'a' +", r"^--stdin 'a' \+: not a Python expression"),
        ("[b'x']", r"^--stdin \[b'x'\] is list; it must be str, bytes"),
    ],
)
def test_bad_stdin_is_one_usage_error_and_nothing_runs(
    ip: InteractiveShell, sandbox: Sandbox, expr: str, message: str
) -> None:
    before = execs(sandbox)
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("pod", f'solo --stdin "{expr}" -- cat')
    assert execs(sandbox) == before


def test_stdin_expression_does_not_leak_names_into_the_user_namespace(ip: InteractiveShell) -> None:
    ip.user_ns.pop("stdin_leak", None)
    results = ip.run_line_magic("pod", "solo --stdin \"(stdin_leak := 'data')\" -- cat")
    assert results.stdout == b"data"
    assert "stdin_leak" not in ip.user_ns


def test_stdin_takes_bytes_and_files(ip: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_bytes(b"from a file")
    assert ip.run_line_magic("pod", "solo --stdin \"b'raw'\" -- cat").stdout == b"raw"
    with open(tmp_path / "in.txt", "rb") as handle:
        ip.user_ns["in_file"] = handle
        assert ip.run_line_magic("pod", "solo --stdin in_file -- cat").stdout == b"from a file"


def test_magic_settings_decide_not_the_cluster_defaults(
    ip: InteractiveShell, prod_kubeconfig: Path
) -> None:
    # The magic applies its own guard settings once; the Cluster's defaults must not refuse
    # what PodMagic.protected_contexts allows.
    magic = ip.magics_manager.registry["PodMagic"]
    saved = magic.protected_contexts
    magic.protected_contexts = []
    try:
        results = ip.run_line_magic("pod", f"solo --kubeconfig {prod_kubeconfig} -- hostname")
    finally:
        magic.protected_contexts = saved
    assert isinstance(results, PodResults) and results.stdout == b"solo\n"
    with pytest.raises(RefusedError, match="protected"):
        ip.run_line_magic("pod", f"solo --kubeconfig {prod_kubeconfig} -- hostname")


# -- max_concurrency must be at least 1 everywhere -------------------------------------------------


def test_zero_max_concurrency_is_refused_by_run_and_cluster(
    sandbox: Sandbox, cluster: Cluster
) -> None:
    before = execs(sandbox)
    with pytest.raises(ValueError, match="max_concurrency must be at least 1, got 0"):
        cluster.run("true", "solo", max_concurrency=0)
    with pytest.raises(ValueError, match="max_concurrency must be at least 1, got 0"):
        Cluster(kubeconfig=sandbox.kubeconfig, max_concurrency=0)
    assert execs(sandbox) == before


def test_zero_max_concurrency_is_refused_by_the_magic_and_its_setting(
    sandbox: Sandbox, ip: InteractiveShell
) -> None:
    from traitlets import TraitError

    before = execs(sandbox)
    with pytest.raises(UsageError, match="^-P/--max-concurrency must be at least 1, got 0$"):
        ip.run_line_magic("pod", "solo -P 0 -- true")
    magic = ip.magics_manager.registry["PodMagic"]
    with pytest.raises(TraitError):
        magic.max_concurrency = 0
    assert magic.max_concurrency >= 1
    assert execs(sandbox) == before


# -- env values never in a repr ---------------------------------------------------------------------


def test_no_repr_or_str_shows_env_values(cluster: Cluster) -> None:
    from podmagic._transport import ExecSpec

    secret = "SEKRIT-31337"
    remote = cluster.command("echo hi", env={"A": secret}, stdin=b"user data")
    spec = ExecSpec(
        namespace=NS, pod="solo", container="c", command=remote.argv, stdin=remote.stdin
    )
    for obj in (remote, remote.stdin, spec):
        for text in (repr(obj), str(obj)):
            assert secret not in text and "user data" not in text, text
    assert "bytes>" in repr(remote) and "env_names=('A',)" in repr(remote)
    results = cluster.run("echo hi", "solo", env={"A": secret})
    assert secret not in repr(results) and secret not in str(results)
    assert all(secret not in repr(r) for r in results)


# -- env names and expression errors never echo a value ---------------------------------------------

SECRET = "hunter2"


@pytest.mark.parametrize(
    "item", ["PASSWORD:hunter2", "hunter2", "PASS WORD=hunter2", "PASSWORD:hunter2=x", "=hunter2"]
)
def test_a_bad_env_option_never_shows_its_value(
    ip: InteractiveShell, sandbox: Sandbox, item: str
) -> None:
    before = execs(sandbox)
    with pytest.raises(UsageError, match=r"^-e argument 2 is not NAME=VALUE") as caught:
        ip.run_line_magic("pod", f"solo -e A=1 -e '{item}' -- echo x")
    assert SECRET not in str(caught.value)
    assert execs(sandbox) == before


def test_a_bad_env_option_shows_its_leading_name(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match=r"it starts 'PASSWORD'; the rest is not shown"):
        ip.run_line_magic("pod", "solo -e PASSWORD:hunter2 -- echo x")


@pytest.mark.parametrize(
    "env",
    [
        {"PASSWORD:hunter2": "x"},
        {"PASSWORD:hunter2": 3},
        {b"hunter2": "x"},
    ],
)
def test_a_bad_env_key_in_python_never_shows_its_value(
    sandbox: Sandbox, cluster: Cluster, env: dict[Any, Any]
) -> None:
    before = execs(sandbox)
    for call in (
        lambda: cluster.run("echo x", "solo", env=env),
        lambda: cluster.command("echo x", env=env),
    ):
        with pytest.raises((TypeError, ValueError), match="env") as caught:
            call()
        assert SECRET not in str(caught.value), caught.value
    assert execs(sandbox) == before


def test_an_expression_that_raises_is_named_without_its_message(ip: InteractiveShell) -> None:
    ip.user_ns["secret"] = SECRET
    with pytest.raises(UsageError, match=r"^--stdin int\(secret\) raised ValueError") as caught:
        ip.run_line_magic("pod", 'solo --stdin "int(secret)" -- cat')
    assert SECRET not in str(caught.value)
    with pytest.raises(UsageError, match=r"\{\{int\(secret\)\}\} raised ValueError") as caught:
        ip.run_line_magic("pod", "solo -- echo {{int(secret)}}")
    assert SECRET not in str(caught.value)


# -- option errors in the caller's words ------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("-P 0", "-P/--max-concurrency must be at least 1, got 0"),
        ("--max-concurrency -2", "-P/--max-concurrency must be at least 1, got -2"),
        ("--timeout -5", "--timeout must be a positive number of seconds, got -5"),
        ("--timeout 0", "--timeout must be a positive number of seconds, got 0"),
        ("--deadline 0", "--deadline must be a positive number of seconds, got 0"),
        ("--deadline -0.5", "--deadline must be a positive number of seconds, got -0.5"),
        ("--retries -1", "--retries must be 0 or more, got -1"),
    ],
)
def test_the_magic_names_its_flag_and_the_value_typed(
    ip: InteractiveShell, sandbox: Sandbox, options: str, message: str
) -> None:
    before = execs(sandbox)
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("pod", f"solo {options} -- true")
    assert str(caught.value) == message
    assert execs(sandbox) == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": -5}, "timeout must be a positive number of seconds, got -5"),
        ({"deadline": 0}, "deadline must be a positive number of seconds, got 0"),
        ({"retries": -1}, "retries must be 0 or more, got -1"),
    ],
)
def test_python_names_the_keyword(cluster: Cluster, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        cluster.run("true", "solo", **kwargs)
    assert str(caught.value) == message


def test_a_negative_pick_reads_as_the_keyword_without_a_stray_space(cluster: Cluster) -> None:
    from podmagic._errors import SelectionError

    with pytest.raises(SelectionError) as caught:
        cluster.run("true", selector="app", pick=-1)
    assert str(caught.value).startswith("pick=-1: the sample must hold at least 1 pod")


def test_the_selector_example_is_quoted_whole_in_both_words(
    ip: InteractiveShell, cluster: Cluster
) -> None:
    from podmagic._errors import SelectionError

    with pytest.raises(SelectionError) as caught:
        ip.run_line_magic("pod", "-l 'app in (' -- true")
    assert str(caught.value).endswith("; e.g. -l 'app=web,tier in (a,b)'")
    with pytest.raises(SelectionError) as caught:
        cluster.run("true", selector="app in (")
    assert str(caught.value).endswith('; e.g. selector="app=web,tier in (a,b)"')


# -- where nothing matched, in the words of the call ------------------------------------------------


def test_no_match_in_a_namespace_names_it_and_the_kubectl_line_looks_there(
    ip: InteractiveShell, cluster: Cluster
) -> None:
    from podmagic._errors import SelectionError

    expected = (
        f"no pods match app=nosuch in namespace {NS}, nor in any other namespace; check the "
        f"labels with kubectl get pods -n {NS} --show-labels"
    )
    with pytest.raises(SelectionError) as caught:
        ip.run_line_magic("pod", f"-l app=nosuch -n {NS} -- true")
    assert str(caught.value) == expected
    with pytest.raises(SelectionError) as caught:
        cluster.run("true", selector="app=nosuch")
    assert str(caught.value) == expected  # the kubectl line keeps kubectl's own -n
    with pytest.raises(SelectionError) as caught:
        ip.run_line_magic("pod", "-l app=nosuch -A -- true")
    assert str(caught.value) == (
        "no pods match app=nosuch in any namespace; check the labels with "
        "kubectl get pods -A --show-labels"
    )


def test_an_untargeted_run_in_an_empty_namespace_suggests_a_call_that_is_allowed(
    sandbox: Sandbox,
) -> None:
    from podmagic._errors import SelectionError

    sandbox.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: guards-empty\n")
    try:
        empty = Cluster(kubeconfig=sandbox.kubeconfig, namespace="guards-empty")
        with pytest.raises(SelectionError) as caught:
            empty.run("true")
        assert "try all_namespaces=True, all_pods=True)" in str(caught.value)
        with pytest.raises(SelectionError) as caught:
            empty.run("true", selector="")  # selector="" already says every pod
        assert "try all_namespaces=True)" in str(caught.value)
    finally:
        assert sandbox.cluster is not None
        sandbox.call(sandbox.cluster.delete_namespace, "guards-empty")


def test_parse_takes_its_format_as_a_keyword_too(cluster: Cluster) -> None:
    results = cluster.run("echo n=1", "solo")
    frame = results.parse(fmt="regex", pattern=r"n=(?P<n>\d+)")
    assert list(frame["n"]) == [1]

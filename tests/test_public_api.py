"""The public API is what ``podmagic.__all__`` lists, each name documented and reachable.

``help(podmagic)`` and ``help(Cluster.run)`` teach the API: every argument of the running and
selecting methods is an explicit keyword with its own text; no exception is exported that
nothing raises; events carry a :class:`~podmagic.Stream`; ``Cluster`` errors speak Python
(``kubeconfig=``) and ``%pod`` errors speak options (``--kubeconfig``).
"""

from __future__ import annotations

import ast
import inspect
import pydoc
import re
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import podmagic
from podmagic import Cluster, ConfigError, PodOutput, Stream
from podmagic.sandbox import Sandbox

PACKAGE = Path(podmagic.__file__).parent
METHODS = ["run", "arun", "select", "aselect", "query"]


def public_objects() -> list[tuple[str, object]]:
    return [(name, getattr(podmagic, name)) for name in podmagic.__all__]


# -- the names ---------------------------------------------------------------------------------


def test_every_public_name_resolves() -> None:
    for name, value in public_objects():
        assert value is not None, name


def test_dir_is_the_public_names_and_dunders() -> None:
    Cluster  # noqa: B018 - a lazily imported name is loaded: its module must not show up
    listed = set(dir(podmagic))
    assert set(podmagic.__all__) <= listed
    assert {name for name in listed - set(podmagic.__all__) if not name.startswith("__")} == set()


def test_public_classes_and_functions_have_their_own_docstrings() -> None:
    for name, value in public_objects():
        if inspect.isclass(value):
            assert (vars(value).get("__doc__") or "").strip(), name
        elif inspect.isfunction(value):
            assert (value.__doc__ or "").strip(), name


def raised_names() -> set[str]:
    """Names of the classes that code outside ``_errors`` constructs (``X(...)``,
    ``X.from_status(...)``)."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                    names.add(func.value.id)
                elif isinstance(func, ast.Name):
                    names.add(func.id)
    return names


def test_every_exported_exception_is_raised_somewhere() -> None:
    exported = {
        name
        for name, value in public_objects()
        if inspect.isclass(value) and issubclass(value, BaseException)
    }
    # The base class is for catching, not raising.
    unraised = exported - raised_names() - {"PodmagicError"}
    assert unraised == set()
    assert "ExecTimeout" not in podmagic.__all__


def test_stream_is_the_channels_enum() -> None:
    from podmagic._channels import STDERR, STDOUT

    assert podmagic.Stream.STDOUT is STDOUT and podmagic.Stream.STDERR is STDERR
    assert Stream.STDERR == 2


def test_event_is_the_union_of_the_five_events() -> None:
    from podmagic._engine import _Fanout

    assert set(typing.get_args(podmagic.Event)) == {
        podmagic.RunStarted,
        podmagic.PodStarted,
        podmagic.PodOutput,
        podmagic.PodFinished,
        podmagic.RunFinished,
    }
    assert inspect.signature(_Fanout.emit).parameters["event"].annotation == "Event"
    from podmagic import _events

    assert PodOutput.__annotations__["stream"] == "Stream" and _events.Stream is Stream


def test_help_podmagic_teaches_the_api() -> None:
    text = pydoc.render_doc(podmagic, renderer=pydoc.plaintext)
    for name in ("Cluster", "arun", "select", "PodResults", "Event", "Stream", "PodmagicError"):
        assert name in text, name
    assert "%load_ext podmagic" in text


# -- Cluster's signatures ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_every_argument_is_an_explicit_keyword_with_its_own_text(method: str) -> None:
    function = getattr(Cluster, method)
    parameters = inspect.signature(function).parameters
    kinds = {p.kind for p in parameters.values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds
    assert inspect.Parameter.VAR_POSITIONAL not in kinds
    doc = inspect.getdoc(function) or ""
    documented = dict(
        line.strip().split(": ", 1)
        for line in doc.split("Args:", 1)[1].splitlines()
        if line.startswith("    ") and not line.startswith("     ")
    )
    assert [name for name in parameters if name != "self"] == list(documented)
    assert all(len(text) > 10 for text in documented.values())


def test_run_and_arun_take_the_same_arguments() -> None:
    assert inspect.signature(Cluster.run).parameters == inspect.signature(Cluster.arun).parameters


@pytest.mark.parametrize("method", METHODS)
def test_help_shows_readable_defaults(method: str) -> None:
    text = pydoc.render_doc(getattr(Cluster, method), renderer=pydoc.plaintext)
    assert "object at 0x" not in text
    if method != "query":
        assert "timeout: 'float | None' = <the Cluster's setting>" in text


@pytest.mark.parametrize("method", ["run", "arun", "select", "aselect"])
def test_clusters_methods_show_the_arguments_they_pass_on_to_each_cluster(method: str) -> None:
    from podmagic import Clusters

    parameters = inspect.signature(getattr(Clusters, method)).parameters
    assert inspect.Parameter.VAR_KEYWORD not in {p.kind for p in parameters.values()}
    assert list(parameters) == list(inspect.signature(getattr(Cluster, method)).parameters)


def names_in_signatures(value: object) -> set[str]:
    text = pydoc.render_doc(value, renderer=pydoc.plaintext)
    return set(re.findall(r"\b[A-Z][A-Za-z]+\b", " ".join(re.findall(r"'([^']*)'", text))))


def test_help_shows_no_private_type_alias_in_a_signature() -> None:
    for method in [*METHODS, "command", "__init__"]:
        shown = names_in_signatures(getattr(Cluster, method))
        assert not shown & {"StdinSource", "ClusterDefault", "ClusterCredentials"}, method
    assert "credentials" not in inspect.signature(Cluster).parameters


def test_the_ipython_handles_and_their_errors_are_public() -> None:
    from podmagic._background import BackgroundRun, BackgroundRunTimeout
    from podmagic._magics import RunInterrupted

    assert podmagic.BackgroundRun is BackgroundRun
    assert podmagic.BackgroundRunTimeout is BackgroundRunTimeout
    assert podmagic.RunInterrupted is RunInterrupted
    assert issubclass(podmagic.BackgroundRunTimeout, TimeoutError)
    assert "ExecOptions" not in podmagic.__all__ and "ExecOptions" not in dir(podmagic)


def test_public_docstrings_point_at_public_names_only() -> None:
    for name, value in public_objects():
        doc = inspect.getdoc(value) or ""
        assert "podmagic._" not in doc, name


def test_dir_of_the_sandbox_package_is_its_public_names() -> None:
    import podmagic.sandbox

    listed = {name for name in dir(podmagic.sandbox) if not name.startswith("__")}
    assert listed == set(podmagic.sandbox.__all__)
    assert {"Sandbox", "ManifestError", "demo_manifest"} <= listed


# -- events carry a Stream ------------------------------------------------------------------------------


def test_output_events_carry_a_stream(sandbox: Sandbox) -> None:
    events: list[podmagic.Event] = []
    cluster = Cluster(kubeconfig=sandbox.kubeconfig, namespace="conf")
    try:
        cluster.run("echo out; echo err >&2", "solo", on_event=events.append)
    finally:
        cluster.close()
    chunks = [event for event in events if isinstance(event, PodOutput)]
    assert {type(chunk.stream) for chunk in chunks} == {Stream}
    assert {chunk.stream for chunk in chunks} == {Stream.STDOUT, Stream.STDERR}
    out = b"".join(c.data for c in chunks if c.stream is Stream.STDOUT)
    assert out == b"out\n"


# -- configuration errors in the caller's words ---------------------------------------------------------


@pytest.fixture
def no_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No kubeconfig anywhere kubectl looks, and not inside a cluster."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    return tmp_path


@pytest.fixture
def ip(sandbox: Sandbox) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "podmagic")
    magic = shell.magics_manager.registry["PodMagic"]
    saved = {name: getattr(magic, name) for name in ("kubeconfig", "context", "quiet")}
    magic.kubeconfig, magic.context, magic.quiet = None, None, True
    yield shell
    for name, value in saved.items():
        setattr(magic, name, value)


def test_cluster_names_its_keyword_for_a_missing_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        Cluster(kubeconfig=tmp_path / "missing")
    message = str(caught.value)
    assert "kubeconfig=" in message and "--kubeconfig" not in message
    assert "sandbox" not in message  # a kubeconfig was named: no sandbox advice


def test_magic_names_its_option_for_a_missing_kubeconfig(
    ip: InteractiveShell, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        ip.run_line_magic("pod", f"solo --kubeconfig {tmp_path / 'missing'} -- true")
    assert "--kubeconfig" in str(caught.value) and "kubeconfig=" not in str(caught.value)


def test_cluster_without_any_kubeconfig_suggests_the_python_sandbox(
    no_kubeconfig: Path,
) -> None:
    with pytest.raises(ConfigError) as caught:
        Cluster()
    message = str(caught.value)
    assert "\n" not in message
    assert "podmagic.sandbox.Sandbox().start()" in message
    assert "kubeconfig=" in message
    assert "--kubeconfig" not in message and "%pod_sandbox" not in message


def test_magic_without_any_kubeconfig_suggests_pod_sandbox_start(
    ip: InteractiveShell, no_kubeconfig: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        ip.run_line_magic("pod", "solo -- true")
    message = str(caught.value)
    assert "%pod_sandbox start" in message and "--kubeconfig" in message
    assert "Sandbox()" not in message and "kubeconfig=" not in message


# -- every other error in the caller's words too --------------------------------------------------------


@pytest.fixture
def conf_cluster(sandbox: Sandbox) -> Iterator[Cluster]:
    cluster = Cluster(kubeconfig=sandbox.kubeconfig, namespace="conf")
    yield cluster
    cluster.close()


MAGIC_FLAGS = ("-A", "-n", "--pick", "--timeout", "(-l)", "--one", "-c ")


def assert_python_words(message: str, *expected: str) -> None:
    for part in expected:
        assert part in message, message
    shown = message.replace("kubectl get pods -A", "")  # kubectl's own command keeps its flags
    for flag in MAGIC_FLAGS:
        assert f" {flag}" not in shown and f"({flag}" not in shown, (flag, message)


def test_cluster_errors_name_python_arguments_not_the_magics_flags(
    conf_cluster: Cluster, sandbox: Sandbox
) -> None:
    with pytest.raises(podmagic.SelectionError) as caught:
        conf_cluster.run("true", "solo", pick=0)
    assert_python_words(str(caught.value), "pick=0:", "e.g. pick=3")
    with pytest.raises(podmagic.SelectionError) as caught:
        conf_cluster.select("solo", namespace="default")
    assert_python_words(str(caught.value), "all_namespaces=True")
    with pytest.raises(podmagic.SelectionError) as caught:
        conf_cluster.select("solo", namespace="nons")
    assert_python_words(str(caught.value), "namespace=")
    with pytest.raises(podmagic.SelectionError) as caught:
        conf_cluster.run("true", "solo", selector="app=db")
    assert_python_words(str(caught.value), "(selector=)")
    with pytest.raises(podmagic.SelectionError) as caught:
        conf_cluster.select("solo", one=True, pick=2)
    assert_python_words(str(caught.value), "one=True or pick=N")
    fresh = Cluster(kubeconfig=sandbox.kubeconfig, namespace="conf")
    try:  # a new Cluster: its first request opens a connection, which no 1 µs allows
        with pytest.raises(podmagic.RequestTimeoutError) as caught:
            fresh.select("solo", timeout=1e-6)
    finally:
        fresh.close()
    assert_python_words(str(caught.value), "allow more time with timeout=...")


def test_magic_errors_keep_naming_its_flags(ip: InteractiveShell, sandbox: Sandbox) -> None:
    where = f"--kubeconfig {sandbox.kubeconfig}"
    with pytest.raises(podmagic.SelectionError) as caught:
        ip.run_line_magic("pod", f"solo -n conf {where} --pick 0 -- true")
    assert "--pick 0:" in str(caught.value) and "e.g. --pick 3" in str(caught.value)
    with pytest.raises(podmagic.SelectionError) as caught:
        ip.run_line_magic("pod", f"solo -n default {where} -- true")
    assert "-A" in str(caught.value) and "all_namespaces" not in str(caught.value)
    with pytest.raises(podmagic.RequestTimeoutError) as caught:
        # Its own --context: a Cluster (and connection) of its own, which no 1 µs allows.
        ip.run_line_magic(
            "pod", f"solo -n conf {where} --context {sandbox.context} --timeout 0.000001 -- true"
        )
    assert "allow more time with --timeout," in str(caught.value)
    assert "timeout=" not in str(caught.value)


def test_run_with_a_selection_and_a_target_is_refused(conf_cluster: Cluster) -> None:
    selection = conf_cluster.select("solo")
    with pytest.raises(
        ValueError, match="selection= already holds the pods to run in; drop target"
    ):
        conf_cluster.run("true", "db-0", selection=selection)
    with pytest.raises(ValueError, match="drop selector, namespace, or pass them to select"):
        conf_cluster.run("true", selector="app=db", namespace="conf", selection=selection)
    assert conf_cluster.run("true", selection=selection).ok
    assert "giving ``target`` or a query argument with it is a ``ValueError``" in (
        Cluster.run.__doc__ or ""
    )


def test_env_of_the_wrong_type_names_the_key_and_its_type(conf_cluster: Cluster) -> None:
    with pytest.raises(TypeError) as caught:
        conf_cluster.run("true", "solo", env={"OK": "1", "S": 5})
    assert str(caught.value) == (
        "Cluster.run(): env must be a mapping of str to str, but env['S'] is int "
        "(convert numbers with str())"
    )
    with pytest.raises(TypeError, match="but a key is int"):
        conf_cluster.run("true", "solo", env={3: "x"})  # type: ignore[dict-item]


def test_run_in_every_pod_refusal_counts_pods_in_plain_words(conf_cluster: Cluster) -> None:
    with pytest.raises(podmagic.RefusedError) as caught:
        conf_cluster.run("true")
    message = str(caught.value)
    assert re.search(r"every pod \(\d+ pods in namespace conf\)", message), message

"""``Sandbox(contexts=N)``: several clusters in one kubeconfig, each seen as its own cluster by
kubectl, the official client and podmagic, all stopped by one ``stop()``.

Most tests share the ``podmagic_sandbox_contexts`` fixture of the pytest plugin (the demo
cluster in contexts ``podmagic-sandbox`` and ``podmagic-sandbox-2``); what they change they
change back.
"""

from __future__ import annotations

import base64
import fnmatch
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from conftest import KubectlRunner, kubectl_folder, missing_tool, quiet_podmagic_shell
from test_sandbox_cleanup import POD_SCRIPT, assert_cleaned_up
from test_sandbox_cli import Process, serving, wait_for_kubeconfig

from podmagic import Cluster
from podmagic.sandbox import Sandbox
from podmagic.sandbox._isolation import isolation_marker

T = TypeVar("T")
FIRST, SECOND = "podmagic-sandbox", "podmagic-sandbox-2"
SECOND_NODES = ["sandbox-2-node-1", "sandbox-2-node-2", "sandbox-2-node-3"]
FIRST_NODES = ["sandbox-node-1", "sandbox-node-2", "sandbox-node-3"]
ONLY_IN_SECOND = """
apiVersion: v1
kind: Pod
metadata: {name: only-in-second, namespace: default}
spec:
  containers: [{name: c, image: busybox}]
"""


@pytest.fixture(scope="module")
def two(podmagic_sandbox_contexts: Sandbox) -> Sandbox:
    """The plugin's two-context sandbox (the demo cluster in each)."""
    return podmagic_sandbox_contexts


def kubeconfig_document(sandbox: Sandbox) -> dict[str, Any]:
    assert sandbox.kubeconfig is not None
    document = yaml.safe_load(sandbox.kubeconfig.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def kubectl(two: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> KubectlRunner:
    """kubectl 1.33 with the two-context sandbox's kubeconfig."""
    folder = kubectl_folder()
    binary = folder / "kubectl.1.33" if folder else None
    if binary is None or not os.access(binary, os.X_OK):
        missing_tool("kubectl.1.33 not found beside `kubectl` on PATH")
    assert binary is not None
    cache = tmp_path_factory.mktemp("kubecache-contexts")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cache),
        "KUBECONFIG": str(two.kubeconfig),
        "KUBECACHEDIR": str(cache / "cache"),
    }

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(binary), *args], capture_output=True, env=env, timeout=60, check=False
        )

    return run


@pytest.fixture
def pod_only_in_second(two: Sandbox) -> Iterator[str]:
    """A pod the second cluster has and the first has not, deleted afterwards."""
    second = two.in_context(SECOND)
    second.apply(ONLY_IN_SECOND)
    yield "only-in-second"
    second.delete_pod("only-in-second")


# -- one kubeconfig, a context per cluster -------------------------------------------------------


def test_contexts_are_named_for_a_glob_and_the_first_stays_current(two: Sandbox) -> None:
    assert two.contexts == (FIRST, SECOND)
    assert two.context == FIRST
    assert fnmatch.filter(two.contexts, "podmagic-sandbox*") == [FIRST, SECOND]
    assert repr(two) == f"<Sandbox running {two.url} contexts=({FIRST!r}, {SECOND!r})>"
    document = kubeconfig_document(two)
    assert document["current-context"] == FIRST
    assert [entry["name"] for entry in document["contexts"]] == [FIRST, SECOND]
    assert [entry["name"] for entry in document["clusters"]] == [FIRST, SECOND]
    assert [entry["name"] for entry in document["users"]] == [FIRST, SECOND]
    for entry in document["contexts"]:
        name = entry["name"]
        assert entry["context"] == {"cluster": name, "user": name, "namespace": "default"}


def test_each_context_is_its_own_server_with_its_own_certificate_and_token(two: Sandbox) -> None:
    document = kubeconfig_document(two)
    clusters = {entry["name"]: entry["cluster"] for entry in document["clusters"]}
    users = {entry["name"]: entry["user"] for entry in document["users"]}
    second = two.in_context(SECOND)
    assert clusters[FIRST]["server"] == two.url and clusters[SECOND]["server"] == second.url
    assert two.url != second.url
    assert users[FIRST]["token"] == two.token and users[SECOND]["token"] == second.token
    assert two.token != second.token
    assert base64.b64decode(clusters[SECOND]["certificate-authority-data"]) == second.ca_pem
    assert two.ca_pem != second.ca_pem
    assert second.kubeconfig == two.kubeconfig and second.context == SECOND
    assert two.in_context(FIRST) is two


def test_an_unknown_context_is_one_line_naming_the_contexts(two: Sandbox) -> None:
    with pytest.raises(
        ValueError, match=r"^no context 'sandbox-9' in this sandbox; its contexts: "
    ):
        two.in_context("sandbox-9")


@pytest.mark.parametrize("contexts", [0, 17, -1, True, 2.0, "2"])
def test_contexts_out_of_range_is_one_line_and_creates_nothing(
    contexts: Any, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"^contexts: expected a whole number from 1 to 16, got "):
        Sandbox([], contexts=contexts, state_dir=tmp_path / "state")
    assert not (tmp_path / "state").exists()


# -- each cluster seen separately ------------------------------------------------------------------


def test_kubectl_sees_each_context_as_its_own_cluster(
    kubectl: KubectlRunner, pod_only_in_second: str
) -> None:
    nodes = {}
    for context in (FIRST, SECOND):
        done = kubectl("--context", context, "get", "nodes", "-o", "name")
        assert done.returncode == 0, done.stderr
        nodes[context] = done.stdout.decode().split()
    assert nodes[FIRST] == [f"node/{name}" for name in FIRST_NODES]
    assert nodes[SECOND] == [f"node/{name}" for name in SECOND_NODES]
    there = kubectl("--context", SECOND, "get", "pod", pod_only_in_second, "-o", "name")
    assert there.returncode == 0 and there.stdout == b"pod/only-in-second\n", there.stderr
    absent = kubectl("--context", FIRST, "get", "pod", pod_only_in_second)
    assert absent.returncode == 1
    assert b'pods "only-in-second" not found' in absent.stderr
    # Without --context: the current one, the first, as with a single cluster.
    current = kubectl("get", "nodes", "-o", "name")
    assert current.stdout.decode().split() == nodes[FIRST]


def test_a_token_of_one_cluster_is_refused_by_the_other(
    kubectl: KubectlRunner, two: Sandbox
) -> None:
    token = two.in_context(SECOND).issue_token(60)
    accepted = kubectl("--context", SECOND, "--token", token, "get", "namespaces", "-o", "name")
    assert accepted.returncode == 0, accepted.stderr
    refused = kubectl("--context", FIRST, "--token", token, "get", "namespaces")
    assert refused.returncode == 1
    assert b"Unauthorized" in refused.stderr or b"unauthorized" in refused.stderr


# The official client leaves its pooled sockets to the garbage collector (its own leak).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_official_client_new_client_from_config_reaches_each_context(
    two: Sandbox, pod_only_in_second: str
) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    seen = {}
    for context in (FIRST, SECOND):
        api_client = kubernetes.config.new_client_from_config(
            config_file=str(two.kubeconfig), context=context
        )
        with api_client:
            core = kubernetes.client.CoreV1Api(api_client)
            nodes = [node.metadata.name for node in core.list_node().items]
            pods = [pod.metadata.name for pod in core.list_namespaced_pod("default").items]
        seen[context] = (nodes, pod_only_in_second in pods)
    assert seen == {FIRST: (FIRST_NODES, False), SECOND: (SECOND_NODES, True)}


def test_podmagic_cluster_runs_in_each_context(two: Sandbox) -> None:
    answered = {}
    for context in two.contexts:
        with Cluster(context, kubeconfig=two.kubeconfig, namespace="demo") as cluster:
            results = cluster.run("echo $NODE_NAME", selector="app=web")
        assert results.ok
        answered[context] = sorted(r.stdout.decode().strip() for r in results)
    assert answered == {FIRST: FIRST_NODES, SECOND: SECOND_NODES}


def test_a_fault_set_in_one_context_stays_in_that_cluster(two: Sandbox) -> None:
    second = two.in_context(SECOND)
    second.set_fault("toolbox", "forbidden", namespace="demo")
    try:
        outcome = {}
        for context in two.contexts:
            with Cluster(context, kubeconfig=two.kubeconfig, namespace="demo") as cluster:
                results = cluster.run("true", "toolbox")
            outcome[context] = [r.ok for r in results]
        assert outcome == {FIRST: [True], SECOND: [False]}
    finally:
        second.set_fault("toolbox", None, namespace="demo")


# -- a manifest per context ----------------------------------------------------------------------


def one_pod(name: str) -> str:
    return ONLY_IN_SECOND.replace("only-in-second", name)


def test_manifests_give_each_context_its_own_objects(tmp_path: Path) -> None:
    staging = tmp_path / "staging.yaml"
    staging.write_text(one_pod("staging-pod"))
    with Sandbox(manifests=[staging, one_pod("prod-pod")], tls=False, auth=False) as sandbox:
        assert sandbox.contexts == (FIRST, SECOND)
        assert sandbox.pods("default") == ["staging-pod"]
        assert sandbox.in_context(SECOND).pods("default") == ["prod-pod"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"manifest": [], "manifests": [[], []]}, r"^pass manifest= .* or manifests= .*not both$"),
        ({"manifests": [[], []], "contexts": 3}, r"^contexts=3 but 2 manifests: pass one manifest"),
        ({"manifests": []}, r"^manifests: expected a manifest per context, got none$"),
        ({"manifests": "a.yaml"}, r"^manifests: expected a list with a manifest per context, "),
        ({"manifests": [{"kind": "Pod"}, []]}, r"^manifests\[0\]: one object, not a manifest; "),
        (
            {"contexts": 3, "port": 65534},
            r"^port 65534: 3 contexts take the ports 65534 to 65536, ",
        ),
    ],
)
def test_manifests_used_wrongly_is_one_line_and_creates_nothing(
    arguments: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        Sandbox(**arguments, state_dir=tmp_path / "state")
    assert not (tmp_path / "state").exists()


def test_every_context_of_an_unisolated_sandbox_is_marked_and_said_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("PODMAGIC_SANDBOX_ISOLATION", "processes")
    caplog.set_level(logging.WARNING, logger="podmagic.sandbox")
    with Sandbox([], contexts=2, state_dir=tmp_path / "state") as sandbox:
        marks = [isolation_marker(context) for context in sandbox.contexts]
        assert all("NOT isolated" in mark for mark in marks), marks
        assert isolation_marker("podmagic-sandbox-3") == ""
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("pods are NOT isolated" in text for text in warnings) == 1, warnings
    assert [isolation_marker(context) for context in (FIRST, SECOND)] == ["", ""]


# -- lifecycle: stop, failed start, a killed sandbox's file --------------------------------------


def refused(url: str) -> bool:
    """Whether nothing listens at the sandbox ``url`` any more."""
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def test_stop_stops_every_context_and_removes_every_file(tmp_path: Path) -> None:
    sandbox = Sandbox(ONLY_IN_SECOND, contexts=3, kubeconfig=tmp_path / "kubeconfig").start()
    each = [sandbox.in_context(name) for name in sandbox.contexts]
    assert [s.pods("default") for s in each] == [["only-in-second"]] * 3
    urls = [s.url for s in each]
    folders = [s.state_dir for s in each]
    assert len(set(urls)) == 3 and all(folder.is_dir() for folder in folders)
    sandbox.stop()
    assert not (tmp_path / "kubeconfig").exists()
    assert [s.running for s in each] == [False] * 3
    assert [folder.exists() for folder in folders] == [False] * 3
    assert [refused(url) for url in urls] == [True] * 3


def test_a_context_that_cannot_start_leaves_nothing_serving(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The second context takes the port after the first's: make that one busy.
        sandbox = Sandbox([], contexts=2, port=port - 1, kubeconfig=tmp_path / "kubeconfig")
        folders = [sandbox.in_context(name).state_dir for name in sandbox.contexts]
        with pytest.raises(OSError):
            sandbox.start()
    assert not sandbox.running and not sandbox.in_context(SECOND).running
    assert not (tmp_path / "kubeconfig").exists()
    assert [folder.exists() for folder in folders] == [False, False]


def test_a_killed_multi_context_sandboxs_kubeconfig_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    with Sandbox([], contexts=2, kubeconfig=path, tls=False, auth=False):
        text = path.read_text()
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    path.write_text(text.replace(f"pid {os.getpid()}:", f"pid {done.pid}:", 1))
    with Sandbox([], contexts=2, kubeconfig=path, tls=False, auth=False) as again:
        assert f"pid {os.getpid()}:" in path.read_text().splitlines()[0]
        assert again.contexts == (FIRST, SECOND)
    assert not path.exists()


#: A script that starts a two-context sandbox whose second cluster has a pod with a main
#: process (and a child of its own), prints the folders, the kubeconfig and those processes
#: (pid:start time), then ends without stopping the sandbox: by exiting, or by SIGTERM.
UNSTOPPED = """
import os, signal, sys, time
from pathlib import Path
from podmagic.sandbox import Sandbox

marks, how, command = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
container = {"name": "c", "image": "busybox", "command": ["sh", "-c", command]}
pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "busy"},
       "spec": {"containers": [container]}}
sandbox = Sandbox(manifests=[[], [pod]]).start()
deadline = time.monotonic() + 60
while not (marks / "background.pid").exists() and time.monotonic() < deadline:
    time.sleep(0.01)
pids = [int((marks / name).read_text()) for name in ("pod.pid", "background.pid")]
stats = [Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split() for pid in pids]
second = sandbox.in_context("podmagic-sandbox-2")
print(sandbox.state_dir, second.state_dir, sandbox.kubeconfig, flush=True)
print(*[f"{pid}:{fields[19]}" for pid, fields in zip(pids, stats)], flush=True)
if how == "sigterm":
    os.kill(os.getpid(), signal.SIGTERM)
"""


@pytest.mark.parametrize("how", ["exit", "sigterm"])
def test_a_script_that_ends_without_stop_leaves_no_context_behind(how: str, tmp_path: Path) -> None:
    # A container's command: $$ is how a manifest writes a shell's $ (the kubelet expands
    # $(VAR) references there, and reads $$ as a literal $).
    command = POD_SCRIPT.format(marks=tmp_path).replace("$", "$$")
    done = subprocess.run(
        [sys.executable, "-c", UNSTOPPED, str(tmp_path), how, command],
        capture_output=True,
        text=True,
        # Plain processes: the pod writes its host pids into a host folder.
        env={**os.environ, "HOME": str(tmp_path), "PODMAGIC_SANDBOX_ISOLATION": "processes"},
        timeout=120,
        check=False,
    )
    # SIGTERM still ends the script as SIGTERM does; a normal exit is still a success.
    assert done.returncode == (-signal.SIGTERM if how == "sigterm" else 0), done.stderr
    folders_line, processes_line = done.stdout.splitlines()
    first_dir, second_dir, kubeconfig = (Path(part) for part in folders_line.split())
    pods = [
        Process(int(pid), started)
        for pid, started in (p.split(":") for p in processes_line.split())
    ]
    assert len(pods) == 2
    assert_cleaned_up(second_dir, kubeconfig, pods)
    assert not first_dir.exists()


# -- the command line and the magic --------------------------------------------------------------


def serve_until_interrupted(
    tmp_path: Path, *args: str, while_serving: Callable[[Path], T]
) -> tuple[T, dict[str, Any], str]:
    """Run ``serve ARGS`` until its kubeconfig is there, call ``while_serving(kubeconfig)``,
    then interrupt it: what the call returned, the kubeconfig, and what serve printed."""
    kubeconfig = tmp_path / "kubeconfig"
    with serving(*args, "--kubeconfig", str(kubeconfig), home=tmp_path / "home") as process:
        config = wait_for_kubeconfig(kubeconfig, process)
        seen = while_serving(kubeconfig)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    out, err = process.communicate()
    assert code == 0, err
    assert not kubeconfig.exists()
    return seen, config, out


def test_serve_contexts_names_every_cluster_and_stops_them_all(tmp_path: Path) -> None:
    _, config, out = serve_until_interrupted(
        tmp_path, "--empty", "--contexts", "2", while_serving=lambda kubeconfig: None
    )
    servers = [entry["cluster"]["server"] for entry in config["clusters"]]
    assert [entry["name"] for entry in config["contexts"]] == [FIRST, SECOND]
    assert "serving 2 clusters" in out
    assert f"context {FIRST}: {servers[0]} with 0 pods" in out
    assert f"context {SECOND}: {servers[1]} with 0 pods" in out
    assert [refused(url) for url in servers] == [True, True]


def test_serve_a_manifest_per_context_loads_each_in_its_cluster(tmp_path: Path) -> None:
    manifests = []
    for name in ("staging-pod", "prod-pod"):
        manifests += ["--manifest", str(tmp_path / f"{name}.yaml")]
        (tmp_path / f"{name}.yaml").write_text(one_pod(name))

    def hostnames(kubeconfig: Path) -> dict[str, list[bytes]]:
        seen = {}
        for context in (FIRST, SECOND):
            with Cluster(context, kubeconfig=kubeconfig, namespace="default") as cluster:
                seen[context] = [r.stdout for r in cluster.run("hostname", selector="")]
        return seen

    seen, _, out = serve_until_interrupted(tmp_path, *manifests, while_serving=hostnames)
    assert seen == {FIRST: [b"staging-pod\n"], SECOND: [b"prod-pod\n"]}
    assert "serving 2 clusters" in out


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["--contexts", "0"], "error: --contexts 0: pass a number from 1 to 16\n"),
        (["--contexts", "17"], "error: --contexts 17: pass a number from 1 to 16\n"),
        (
            ["--contexts", "3", "--manifest", "a.yaml", "--manifest", "b.yaml"],
            (
                "error: --contexts 3 but 2 --manifest: pass one --manifest per context, "
                "or one for all\n"
            ),
        ),
    ],
)
def test_serve_contexts_used_wrongly_is_exit_2_with_one_line(
    tmp_path: Path, arguments: list[str], error: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "podmagic.sandbox", "serve", *arguments]
        + ["--kubeconfig", str(tmp_path / "kubeconfig")],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == error
    assert not (tmp_path / "kubeconfig").exists()


def test_pod_sandbox_start_contexts_serves_them_and_status_shows_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.core.error import UsageError

    with quiet_podmagic_shell(tmp_path / "unused-kubeconfig") as shell:
        with pytest.raises(UsageError, match=r"^--contexts: expected a whole number from 1 to 16"):
            shell.run_line_magic("pod_sandbox", "start --contexts 0")
        sandbox = shell.run_line_magic("pod_sandbox", "start --contexts 2")
        try:
            assert sandbox.contexts == (FIRST, SECOND)
            capsys.readouterr()
            shell.run_line_magic("pod_sandbox", "status")
            lines = capsys.readouterr().out.splitlines()
            second = sandbox.in_context(SECOND)
            assert lines[0].startswith(f"sandbox {sandbox.url} (context {FIRST}): ")
            assert lines[1].startswith(f"sandbox {second.url} (context {SECOND}): ")
        finally:
            shell.run_line_magic("pod_sandbox", "stop")
        assert not sandbox.running and not second.running


def test_the_plugin_fixture_serves_as_many_contexts_as_a_conftest_asks(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n"
        "@pytest.fixture(scope='session')\n"
        "def podmagic_sandbox_manifest():\n"
        "    return []\n\n"
        "@pytest.fixture(scope='session')\n"
        "def podmagic_sandbox_context_count():\n"
        "    return 3\n"
    )
    (tmp_path / "test_fleet.py").write_text(
        "def test_fleet(podmagic_sandbox_contexts):\n"
        "    sandbox = podmagic_sandbox_contexts\n"
        "    assert sandbox.contexts == "
        "('podmagic-sandbox', 'podmagic-sandbox-2', 'podmagic-sandbox-3')\n"
        "    assert [sandbox.in_context(c).pods() for c in sandbox.contexts] == [[], [], []]\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_fleet.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout

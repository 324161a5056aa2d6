"""Shared fixtures: one sandbox for the session, and the real clients that check it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from _waiting import wait_until

from podmagic import Cluster, SelectionError
from podmagic.sandbox import Sandbox

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

MANIFESTS = Path(__file__).parent / "manifests"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The session's sandbox, loaded with tests/manifests/cluster.yaml (namespace ``conf``)."""
    kubeconfig = tmp_path_factory.mktemp("sandbox") / "kubeconfig"
    with Sandbox(MANIFESTS / "cluster.yaml", kubeconfig=kubeconfig) as running:
        yield running


@pytest.fixture(scope="module")
def faults(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session's sandbox with the namespace ``faults`` (tests/manifests/faults.yaml) loaded
    for one test module, removed afterwards."""
    sandbox.apply((MANIFESTS / "faults.yaml").read_text())
    # Pods start as in a cluster (Pending, then Running) and the previous module's namespace
    # may still be going: begin once the StatefulSet's three pods are there and running.
    with Cluster(kubeconfig=sandbox.kubeconfig, namespace="faults") as cluster:

        def pool_running() -> bool:
            try:
                selection = cluster.select(selector="app=pool")
            except SelectionError:  # none there yet
                return False
            return [t.pod for t in selection.run] == ["pool-0", "pool-1", "pool-2"]

        wait_until(pool_running, what="the faults namespace's pool-0, pool-1 and pool-2 running")
    yield sandbox
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.delete_namespace, "faults")


@contextmanager
def quiet_podmagic_shell(
    kubeconfig: str | os.PathLike[str], namespace: str = "conf"
) -> Iterator[InteractiveShell]:
    """The IPython shell with podmagic loaded, pointed at ``kubeconfig`` and ``namespace``,
    quiet (no live view) while in use and loud again afterwards."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "podmagic")
    shell.run_line_magic("config", f"PodMagic.kubeconfig = {str(kubeconfig)!r}")
    shell.run_line_magic("config", f"PodMagic.namespace = {namespace!r}")
    shell.run_line_magic("config", "PodMagic.quiet = True")
    yield shell
    shell.run_line_magic("config", "PodMagic.quiet = False")


@pytest.fixture(scope="module")
def cluster(sandbox: Sandbox) -> Iterator[Cluster]:
    """A :class:`~podmagic.Cluster` on the session's sandbox, namespace ``conf``, for one test
    module."""
    with Cluster(kubeconfig=sandbox.kubeconfig, namespace="conf") as running:
        yield running


@pytest.fixture(scope="module")
def ip(sandbox: Sandbox) -> Iterator[InteractiveShell]:
    """The IPython shell with podmagic on the session's sandbox, namespace ``conf``, quiet,
    for one test module."""
    with quiet_podmagic_shell(sandbox.kubeconfig) as shell:
        yield shell


def missing_tool(message: str) -> None:
    """Fail under CI (a missing conformance client is a broken machine), skip elsewhere."""
    if IN_CI:
        pytest.fail(message + " (CI=true: conformance clients are required)")
    pytest.skip(message)


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """Python's own Ctrl-C handler (KeyboardInterrupt) for the test, as a terminal or a kernel
    has it. A process started in the background by a non-interactive shell (``cmd &``,
    ``nohup``, some CI runners) inherits SIGINT ignored, and Python then leaves it ignored:
    a test of Ctrl-C would wait for a KeyboardInterrupt that never comes."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def kubectl_folder() -> Path | None:
    """The folder holding the versioned ``kubectl.1.NN`` binaries (beside the dispatcher)."""
    found = shutil.which("kubectl")
    if found is None:
        return None
    return Path(os.path.realpath(found)).parent


KubectlRunner = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture(scope="session")
def kubectl_factory(
    sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], KubectlRunner]:
    """``kubectl_factory("1.33")`` → a function running that kubectl against the sandbox."""

    def factory(version: str) -> KubectlRunner:
        folder = kubectl_folder()
        binary = folder / f"kubectl.{version}" if folder else None
        if binary is None or not os.access(binary, os.X_OK):
            missing_tool(f"kubectl.{version} not found beside `kubectl` on PATH")
        assert binary is not None
        cache = tmp_path_factory.mktemp(f"kubecache-{version}")
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(cache),
            "KUBECONFIG": str(sandbox.kubeconfig),
            "KUBECACHEDIR": str(cache / "cache"),
        }

        def run(
            *args: str, input: bytes | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                [str(binary), *args],
                input=input,
                capture_output=True,
                env=env,
                timeout=timeout,
                check=False,
            )

        run.binary = str(binary)  # type: ignore[attr-defined]
        run.env = env  # type: ignore[attr-defined]
        return run

    return factory

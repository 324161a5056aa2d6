"""pytest fixtures for testing notebooks and code against a sandbox cluster.

Installed as the ``podmagic_sandbox`` pytest plugin (an entry point), so any project that
installs podmagic can write::

    def test_runbook(podmagic_sandbox):
        podmagic_sandbox.set_fault("web-0", "drop", namespace="demo")
        ...

Override ``podmagic_sandbox_manifest`` in a ``conftest.py`` to load your own cluster.

``podmagic_sandbox_contexts`` is a second sandbox serving two clusters (contexts
``podmagic-sandbox`` and ``podmagic-sandbox-2``, each loading that manifest) for runs across
clusters; override ``podmagic_sandbox_context_count`` for more.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._server import Sandbox  # imported here to keep plain pytest start-up light


@pytest.fixture(scope="session")
def podmagic_sandbox_manifest() -> Any:
    """The manifest the session's sandbox loads (default: the built-in demo cluster)."""
    return None


@pytest.fixture(scope="session")
def podmagic_sandbox(
    podmagic_sandbox_manifest: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sandbox]:
    """A sandbox cluster shared by the session; its kubeconfig is ``.kubeconfig``."""
    from ._server import Sandbox

    kubeconfig = tmp_path_factory.mktemp("podmagic-sandbox") / "kubeconfig"
    with Sandbox(podmagic_sandbox_manifest, kubeconfig=kubeconfig) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def podmagic_sandbox_context_count() -> int:
    """How many clusters ``podmagic_sandbox_contexts`` serves (default: 2)."""
    return 2


@pytest.fixture(scope="session")
def podmagic_sandbox_contexts(
    podmagic_sandbox_manifest: Any,
    podmagic_sandbox_context_count: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Sandbox]:
    """A sandbox serving several clusters, shared by the session: one kubeconfig
    (``.kubeconfig``) with a context each (``.contexts``: ``podmagic-sandbox``,
    ``podmagic-sandbox-2``…); ``.in_context(name)`` is the sandbox serving one."""
    from ._server import Sandbox

    kubeconfig = tmp_path_factory.mktemp("podmagic-sandbox-contexts") / "kubeconfig"
    with Sandbox(
        podmagic_sandbox_manifest, kubeconfig=kubeconfig, contexts=podmagic_sandbox_context_count
    ) as sandbox:
        yield sandbox

"""pytest fixtures for testing notebooks and code against a sandbox cluster.

Installed as the ``podmagic_sandbox`` pytest plugin (an entry point), so any project that
installs podmagic can write::

    def test_runbook(podmagic_sandbox):
        podmagic_sandbox.set_fault("web-0", "drop", namespace="demo")
        ...

Override ``podmagic_sandbox_manifest`` in a ``conftest.py`` to load your own cluster.
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

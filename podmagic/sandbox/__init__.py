"""A local Kubernetes API server for demos and tests: real clients talk to it, pods are processes.

``python -m podmagic.sandbox serve`` runs one in the foreground; :class:`Sandbox` runs one in a
background thread (also as the ``podmagic_sandbox`` pytest fixture). Sandbox-only behaviour —
phases, readiness, delays and faults — is set with ``sandbox.podmagic.io/*`` annotations
(see :mod:`podmagic.sandbox._behaviour`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._server import Sandbox, demo_manifest
    from ._state import ManifestError

__all__ = ["ANNOTATION_PREFIX", "CONTEXT_NAME", "ManifestError", "Sandbox", "demo_manifest"]

ANNOTATION_PREFIX = "sandbox.podmagic.io/"
CONTEXT_NAME = "podmagic-sandbox"


def __getattr__(name: str) -> Any:
    # The server pulls in aiohttp and cryptography; the pytest plugin imports this package on
    # every pytest start-up, so load them only when a sandbox is actually wanted.
    if name in ("Sandbox", "demo_manifest"):
        from . import _server as server

        return getattr(server, name)
    if name == "ManifestError":
        from ._state import ManifestError

        return ManifestError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

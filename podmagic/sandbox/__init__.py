"""A local Kubernetes API server for demos and tests: real clients talk to it, pods are processes.

``python -m podmagic.sandbox serve`` (or ``podmagic-sandbox serve``) runs one in the foreground;
:class:`Sandbox` runs one in a background thread (also as the ``podmagic_sandbox`` pytest
fixture). Sandbox-only behaviour — phases, readiness, delays and faults — is set with
``sandbox.podmagic.io/*`` annotations, listed with their values in the README's section "The
sandbox cluster"; a value the sandbox cannot act on raises :class:`BehaviourError`.

The server needs the ``[sandbox]`` extra (``pip install 'podmagic[sandbox]'``); without it,
importing :class:`Sandbox` raises :class:`MissingExtraError`, one line that says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._behaviour import BehaviourError
    from ._server import Sandbox, demo_manifest
    from ._state import ManifestError

__all__ = [
    "ANNOTATION_PREFIX",
    "CONTEXT_NAME",
    "BehaviourError",
    "ManifestError",
    "MissingExtraError",
    "Sandbox",
    "demo_manifest",
]

ANNOTATION_PREFIX = "sandbox.podmagic.io/"
CONTEXT_NAME = "podmagic-sandbox"
INSTALL_HINT = "pip install 'podmagic[sandbox]'"


class MissingExtraError(ModuleNotFoundError):
    """The sandbox's optional dependencies are not installed: ``pip install 'podmagic[sandbox]'``.

    Raised when :class:`Sandbox` is first imported (``from podmagic.sandbox import Sandbox``,
    ``%pod_sandbox start``, ``podmagic-sandbox``). A :class:`ModuleNotFoundError`, so code that
    copes with a missing module keeps working; its message is one line that says what to do.
    """

    def __init__(self, missing: str) -> None:
        super().__init__(
            f"the podmagic sandbox needs the {missing!r} package, which is not installed: "
            f"{INSTALL_HINT}",
            name=missing,
        )

    def _render_traceback_(self) -> list[str]:
        # IPython (and so Jupyter) shows an exception through this hook when it has one: the
        # one line says everything there is to do, a traceback into the import machinery
        # would only bury it.
        return [f"{type(self).__name__}: {self}"]


def __getattr__(name: str) -> Any:
    # The server pulls in aiohttp and cryptography; the pytest plugin imports this package on
    # every pytest start-up, so load them only when a sandbox is actually wanted.
    if name in ("Sandbox", "demo_manifest"):
        from . import _server as server

        return getattr(server, name)
    if name == "ManifestError":
        from ._state import ManifestError

        return ManifestError
    if name == "BehaviourError":  # a sandbox annotation value it cannot act on (a ValueError)
        from ._behaviour import BehaviourError

        return BehaviourError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # dir(podmagic.sandbox) and tab completion list the public names (the lazy ones included),
    # not this module's own imports and helpers, as dir(podmagic) does.
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})

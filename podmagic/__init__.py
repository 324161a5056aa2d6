"""podmagic: run shell commands across Kubernetes pods from IPython, Jupyter and Python.

``%load_ext podmagic`` registers the ``%pod`` / ``%%pod`` magics (and ``%pod_sandbox``);
:class:`Cluster` is the same engine for scripts and async code. ``podmagic.sandbox`` is a
local Kubernetes API server used as the embedded default for demos and tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .client import Cluster
    from .engine import ExecOptions, RunControl
    from .errors import (
        ApiError,
        ConfigError,
        ExecError,
        ExecTimeout,
        HandshakeError,
        ParseError,
        PodExecError,
        PodmagicError,
        PodsFailedError,
        RefusedError,
        SelectionError,
        StreamLostError,
    )
    from .results import ExecStatus, OutputGroup, PodResult, PodResults

__all__ = [
    "ApiError",
    "Cluster",
    "ConfigError",
    "ExecError",
    "ExecOptions",
    "ExecStatus",
    "ExecTimeout",
    "HandshakeError",
    "OutputGroup",
    "ParseError",
    "PodExecError",
    "PodResult",
    "PodResults",
    "PodmagicError",
    "PodsFailedError",
    "RefusedError",
    "RunControl",
    "SelectionError",
    "StreamLostError",
    "__version__",
    "load_ipython_extension",
]

_HOMES = {
    "Cluster": "client",
    "ExecOptions": "engine",
    "RunControl": "engine",
    "ExecStatus": "results",
    "OutputGroup": "results",
    "PodResult": "results",
    "PodResults": "results",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: the engine pulls in aiohttp, websockets and kubernetes, which
    # `import podmagic` alone (e.g. by the pytest plugin) should not pay for.
    import importlib

    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    if name in __all__ and name.endswith("Error") or name == "ExecTimeout":
        from . import errors

        return getattr(errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext podmagic``: register the magics, and safe display of ``--parse`` frames."""
    from .magics import PodMagic
    from .render import register_frame_formatters

    magics = PodMagic(shell=ipython)
    ipython.register_magics(magics)
    # --parse frames hold pod output: shown with control characters as text, data unchanged.
    register_frame_formatters(ipython)
    # %config only reaches configurables the shell knows about.
    ipython.configurables.append(magics)

"""podmagic: run shell commands across Kubernetes pods from IPython, Jupyter and Python.

In IPython or Jupyter, ``%load_ext podmagic`` registers ``%pod`` / ``%%pod`` and
``%pod_sandbox``. From Python, :class:`Cluster` is the same engine::

    from podmagic import Cluster

    results = Cluster().run("uname -r", "-l app=web")   # or await Cluster().arun(...)
    results.to_dataframe()

Results are :class:`PodResults` (one :class:`PodResult` per pod, grouped by identical output
into :class:`OutputGroup`). Every error podmagic raises is a :class:`PodmagicError`.
``podmagic.sandbox`` is a local Kubernetes API server, the embedded default for demos and tests.

The implementation lives in private modules (``podmagic._name``); the names listed in
``__all__`` are the public API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ._client import Cluster
    from ._engine import ExecOptions, RunControl
    from ._errors import (
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
        RequestTimeoutError,
        SelectionError,
        StreamLostError,
    )
    from ._events import (
        Event,
        EventCallback,
        PodFinished,
        PodOutput,
        PodStarted,
        RunFinished,
        RunStarted,
    )
    from ._results import (
        ExecStatus,
        OutputGroup,
        PodResult,
        PodResults,
        check_parsed,
        parse_problems,
    )

# Public name -> private module that defines it. Imported on first use: the engine pulls in
# aiohttp, websockets and kubernetes, which `import podmagic` alone (e.g. by the pytest
# plugin) should not pay for.
_HOMES: dict[str, str] = {
    "Cluster": "_client",
    "ExecOptions": "_engine",
    "RunControl": "_engine",
    "ApiError": "_errors",
    "ConfigError": "_errors",
    "ExecError": "_errors",
    "ExecTimeout": "_errors",
    "HandshakeError": "_errors",
    "ParseError": "_errors",
    "PodExecError": "_errors",
    "PodmagicError": "_errors",
    "PodsFailedError": "_errors",
    "RefusedError": "_errors",
    "RequestTimeoutError": "_errors",
    "SelectionError": "_errors",
    "StreamLostError": "_errors",
    "Event": "_events",
    "EventCallback": "_events",
    "PodFinished": "_events",
    "PodOutput": "_events",
    "PodStarted": "_events",
    "RunFinished": "_events",
    "RunStarted": "_events",
    "ExecStatus": "_results",
    "OutputGroup": "_results",
    "PodResult": "_results",
    "PodResults": "_results",
    "check_parsed": "_results",
    "parse_problems": "_results",
}

__all__ = [
    "ApiError",
    "Cluster",
    "ConfigError",
    "Event",
    "EventCallback",
    "ExecError",
    "ExecOptions",
    "ExecStatus",
    "ExecTimeout",
    "HandshakeError",
    "OutputGroup",
    "ParseError",
    "PodExecError",
    "PodFinished",
    "PodOutput",
    "PodResult",
    "PodResults",
    "PodStarted",
    "PodmagicError",
    "PodsFailedError",
    "RefusedError",
    "RequestTimeoutError",
    "RunControl",
    "RunFinished",
    "RunStarted",
    "SelectionError",
    "StreamLostError",
    "__version__",
    "check_parsed",
    "load_ipython_extension",
    "parse_problems",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    # dir(podmagic) and tab completion list the public API (lazily imported names included),
    # not the private modules or this module's own imports.
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext podmagic``: register ``%pod``, ``%%pod``, ``%pod_sandbox`` and frame display."""
    from ._magics import PodMagic
    from ._render import register_frame_formatters

    magics = PodMagic(shell=ipython)
    ipython.register_magics(magics)
    # --parse frames hold pod output: shown with control characters as text, data unchanged.
    register_frame_formatters(ipython)
    # %config only reaches configurables the shell knows about.
    ipython.configurables.append(magics)

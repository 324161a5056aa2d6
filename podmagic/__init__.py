"""podmagic: run shell commands across Kubernetes pods from IPython, Jupyter and Python.

In IPython or Jupyter, ``%load_ext podmagic`` registers ``%pod`` / ``%%pod``,
``%pod_logs``, ``%pod_cp`` and ``%pod_sandbox`` (``%pod?`` shows every option). From Python,
:class:`Cluster` is the same engine::

    from podmagic import Cluster

    cluster = Cluster(context="staging")        # resolved once and pinned
    results = cluster.run("uname -r", selector="app=web", namespace="shop", timeout=10)
    results.check()                             # PodsFailedError if any pod did not succeed
    results.to_dataframe()                      # one row per pod
    results.parse("kv")                         # every pod's output as one DataFrame

    results = await cluster.arun(["cat", "/etc/os-release"], "deploy/api")

Running (``help(Cluster.run)`` lists every argument):

* :class:`Cluster` — ``run`` / ``arun`` run a command; ``select`` / ``aselect`` only find the
  pods (a :class:`Selection`, which ``run(selection=...)`` reuses); ``query`` checks a
  target's syntax (a :class:`TargetQuery`). A run in a protected context, in more than
  ``confirm_above`` pods, or with no target at all is refused (:class:`RefusedError`) until
  it says ``yes=True`` / ``all_pods=True``.
* :class:`Clusters` — ``Cluster.many(["a", "b"])`` or ``Cluster.many("staging-*")``: the same
  ``run`` / ``arun`` / ``select`` across several contexts at once, one merged
  :class:`PodResults` (a ``context`` column in every table; a :class:`ClustersSelection`
  from ``select``); the live view's :class:`ClustersStarted` has a :class:`ClusterLine` per
  context.
* :class:`RunControl` — pass one as ``control=`` to cancel a run from another task.
* ``logs`` / ``alogs`` read the logs of every pod a target names at once: a :class:`PodLogs`
  of :class:`LogLine` sorted by time (``to_dataframe()``: one row per line), like stern.
* ``copy_to`` / ``copy_from`` copy a file or folder to or from every pod (tar through exec,
  as ``kubectl cp``): :class:`CopyResults` of :class:`CopyResult`, each file a
  :class:`CopiedFile` with its size and SHA-256.

Results are data:

* :class:`PodResults` — one :class:`PodResult` per pod and container, with ``ok``,
  ``failed``, ``check()``, ``parse(FORMAT)``, ``to_dataframe()`` and ``groups()`` (identical
  outputs together, as :class:`OutputGroup`), ``diff()`` (the minority outputs as unified
  diffs against the majority's: an :class:`OutputDiff` of :class:`GroupDiff`),
  ``to_parquet(path)`` and ``provenance`` (a :class:`Provenance`: which cluster, which pods,
  which command, when; :func:`read_provenance` reads it back from a Parquet file).
  :class:`ExecStatus` says how each exec ended. A ``python=True`` run (``%%pod --python``)
  gives each pod's value in ``PodResult.value`` (:data:`NO_VALUE` where there is none),
  ``PodResults.values`` and ``values_frame()``.
* :func:`parse_problems` and :func:`check_parsed` report pods that a parsed table lacks.
* :func:`python_literal` writes a value into a ``python=True`` program as ``{{expr}}`` does in
  a ``%%pod --python`` cell: a literal that can only be that value.

In IPython: ``%pod --bg`` returns a :class:`BackgroundRun` (``await h``, ``h.result()``,
``h.cancel()``; :class:`BackgroundRunTimeout` when ``result(timeout=...)`` runs out), and an
interrupted blocking ``%pod`` ends with :class:`RunInterrupted`, whose ``results`` hold the
partial results.

Live events (``on_event=``): :data:`Event` is one of :class:`RunStarted`,
:class:`PodStarted`, :class:`PodOutput` (``stream`` is a :class:`Stream`),
:class:`PodFinished` and :class:`RunFinished`; :data:`EventCallback` is the callback's type.

Errors: a wrong argument type or value is a ``TypeError`` / ``ValueError`` naming the
argument; every other exception podmagic raises is a :class:`PodmagicError` —
:class:`ConfigError` (kubeconfig, context, credentials), :class:`SelectionError` (the
target), :class:`ApiError` and :class:`RequestTimeoutError` (the API server),
:class:`RefusedError` (the guards), :class:`PodsFailedError` / :class:`PodExecError`
(``check()``), :class:`ParseError` (``parse()``). An exec that fails or times out in one pod
is not raised: it is that pod's :class:`PodResult` (``status`` and ``error``).

``podmagic.sandbox.Sandbox`` is a local Kubernetes API server that runs pods as local
processes: the embedded cluster for demos and tests (``%pod_sandbox start`` in IPython).

The implementation lives in private modules (``podmagic._name``); the names listed in
``__all__`` are the public API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ._background import BackgroundRun, BackgroundRunTimeout
    from ._channels import Stream
    from ._client import Cluster
    from ._copy import CopiedFile, CopyResult, CopyResults
    from ._diff import GroupDiff, OutputDiff
    from ._engine import RunControl
    from ._errors import (
        ApiError,
        ConfigError,
        ParseError,
        PodExecError,
        PodmagicError,
        PodsFailedError,
        RefusedError,
        RequestTimeoutError,
        SelectionError,
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
    from ._logs import LogLine, PodLogs
    from ._magics import RunInterrupted
    from ._many import ClusterLine, Clusters, ClustersSelection, ClustersStarted
    from ._provenance import PodProvenance, Provenance, read_provenance
    from ._python import python_literal
    from ._query import TargetQuery
    from ._resolve import Selection
    from ._results import (
        NO_VALUE,
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
    "ClusterLine": "_many",
    "Clusters": "_many",
    "ClustersSelection": "_many",
    "ClustersStarted": "_many",
    "RunControl": "_engine",
    "ApiError": "_errors",
    "ConfigError": "_errors",
    "ParseError": "_errors",
    "PodExecError": "_errors",
    "PodmagicError": "_errors",
    "PodsFailedError": "_errors",
    "RefusedError": "_errors",
    "RequestTimeoutError": "_errors",
    "SelectionError": "_errors",
    "Event": "_events",
    "EventCallback": "_events",
    "PodFinished": "_events",
    "PodOutput": "_events",
    "PodStarted": "_events",
    "RunFinished": "_events",
    "RunStarted": "_events",
    "Stream": "_channels",
    "ExecStatus": "_results",
    "NO_VALUE": "_results",
    "OutputGroup": "_results",
    "PodResult": "_results",
    "PodResults": "_results",
    "check_parsed": "_results",
    "parse_problems": "_results",
    "Selection": "_resolve",
    "TargetQuery": "_query",
    "BackgroundRun": "_background",
    "BackgroundRunTimeout": "_background",
    "RunInterrupted": "_magics",
    "LogLine": "_logs",
    "CopiedFile": "_copy",
    "CopyResult": "_copy",
    "CopyResults": "_copy",
    "PodLogs": "_logs",
    "GroupDiff": "_diff",
    "OutputDiff": "_diff",
    "PodProvenance": "_provenance",
    "Provenance": "_provenance",
    "read_provenance": "_provenance",
    "python_literal": "_python",
}

__all__ = [
    "NO_VALUE",
    "ApiError",
    "BackgroundRun",
    "BackgroundRunTimeout",
    "Cluster",
    "ClusterLine",
    "Clusters",
    "ClustersSelection",
    "ClustersStarted",
    "ConfigError",
    "CopiedFile",
    "CopyResult",
    "CopyResults",
    "Event",
    "EventCallback",
    "ExecStatus",
    "GroupDiff",
    "LogLine",
    "OutputDiff",
    "OutputGroup",
    "ParseError",
    "PodExecError",
    "PodFinished",
    "PodLogs",
    "PodOutput",
    "PodProvenance",
    "PodResult",
    "PodResults",
    "PodStarted",
    "PodmagicError",
    "PodsFailedError",
    "Provenance",
    "RefusedError",
    "RequestTimeoutError",
    "RunControl",
    "RunFinished",
    "RunInterrupted",
    "RunStarted",
    "Selection",
    "SelectionError",
    "Stream",
    "TargetQuery",
    "__version__",
    "check_parsed",
    "load_ipython_extension",
    "parse_problems",
    "python_literal",
    "read_provenance",
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

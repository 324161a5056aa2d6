"""Many clusters in one run: :class:`Clusters` runs a command across kubeconfig contexts at once.

::

    from podmagic import Cluster

    fleet = Cluster.many("staging-*")                 # a glob over the kubeconfig's contexts
    fleet = Cluster.many(["staging-a", "staging-b"])  # or names
    results = fleet.run("uname -r", "deploy/web", namespace="shop")
    results.to_dataframe()                            # a context column, one row per pod

What was chosen, and why:

* **Contexts.** A name is taken as it is; a name holding ``*``, ``?`` or ``[`` is a glob
  (:func:`fnmatch.fnmatchcase`: case-sensitive, as the names are) matched against the
  contexts of the kubeconfig, in the kubeconfig's order; a context named exactly so (``x[1]``)
  wins over the glob. A glob that matches nothing, or a name the kubeconfig lacks, is one :class:`~podmagic.ConfigError` line listing the
  contexts. Repeated names count once.
* **One run.** Every context finds its pods at the same time, then every context runs at the
  same time, each with its own concurrency cap (``max_concurrency`` is per cluster: a cluster's
  API server sees no more execs than a run of its own would send) and its own HTTP session.
  The results merge into one :class:`~podmagic.PodResults` (context, then namespace, then
  pod), whose tables all have a ``context`` column, and whose summary has a section per
  context.
* **Guards.** A run is refused (:class:`~podmagic.RefusedError`) before anything runs in any
  context when a context it would run in is protected (every one is named), or when the run
  as a whole goes past ``confirm_above`` pods; ``yes=True`` (``--yes``) confirms them all.
* **A context that fails** (unreachable, bad credentials, the target not there) does not sink
  the others: it becomes error results naming the reason — one per pod of earlier results,
  else one per target named (``deploy/web``; ``-l app=web`` for a selector) — and the rest
  run. Only when no context can run is the run an error (a
  :class:`~podmagic.SelectionError` naming each context's reason; a
  :class:`~podmagic.ConfigError` from ``Cluster.many`` itself when no context's credentials
  load). A wrong argument is one ``TypeError``/``ValueError``, as for one cluster.
* **Re-runs.** ``res.rerun()`` of merged results runs each pod again in its own context; a
  context that could not run the first time runs what was asked anew, and ``merge()`` puts
  its pods in place of the error results that stood in for them.
* **Provenance.** Each context records its own (``res.provenances``, the summary's section
  footers, the display's metadata); ``res.provenance`` is None for a run across contexts.

The live view names a pod ``context:namespace/pod`` while more than one context runs (kube-ps1
writes ``context:namespace`` too), and its header has one line per cluster: the context, its
API server and the pods matched there, or why the context could not run.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
import inspect
import os
import shlex
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import anyio

from ._client import Cluster, cancellable, in_callers_words
from ._credentials._kubeconfig import kubeconfig_candidates, read_kubeconfig
from ._engine import RunControl
from ._errors import ConfigError, PodmagicError, RefusedError, SelectionError
from ._events import (
    Event,
    EventCallback,
    PodFinished,
    PodOutput,
    PodStarted,
    RunFinished,
    RunStarted,
)
from ._natsort import natural_key
from ._portal import run_blocking
from ._provenance import public_server
from ._python import frame_or_values
from ._resolve import PodTarget, Selection
from ._results import AS_BEFORE, ExecStatus, PodResult, PodResults
from ._safety import (
    DEFAULT_CONFIRM_ABOVE,
    DEFAULT_PROTECTED_CONTEXTS,
    check_allowed,
    matches_protected,
)

if TYPE_CHECKING:
    from ._client import _RunOrigin
    from ._provenance import Provenance

__all__ = ["ClusterLine", "Clusters", "ClustersSelection", "ClustersStarted", "context_names"]

_GLOB_CHARACTERS = frozenset("*?[")

#: Keyword arguments of :meth:`Cluster.select` (finding pods) that :meth:`Clusters.run` takes.
_QUERY_ARGUMENTS = (
    "selector",
    "field_selector",
    "namespace",
    "all_namespaces",
    "include_unready",
    "one",
    "pick",
    "container",
    "all_containers",
    "seed",
)
#: Keyword arguments of :meth:`Cluster.run` (how the command runs) that it passes on.
_RUN_ARGUMENTS = (
    "env",
    "workdir",
    "shell",
    "stdin",
    "tty",
    "timeout",
    "deadline",
    "max_concurrency",
    "retries",
    "ok_exit",
    "capture_limit",
    "capture_budget",
    "python",
    "python_bin",
)
#: What ``rerun()`` may change, as for one cluster.
_RERUN_CHANGES = ("timeout", "deadline", "max_concurrency", "retries", "ok_exit")


def context_names(kubeconfig: str | os.PathLike[str] | None = None) -> list[str]:
    """The context names of the kubeconfig kubectl would read (``kubeconfig``, else the
    ``KUBECONFIG`` files, else ``~/.kube/config``), each once, in the files' order."""
    paths, _ = kubeconfig_candidates(kubeconfig)
    names: dict[str, None] = {}
    for path in paths:
        if not os.path.exists(path):
            continue
        document = read_kubeconfig(path) or {}
        for entry in document.get("contexts") or []:
            names.setdefault(entry["name"], None)
    return list(names)


def is_glob(name: str, known: Iterable[str] = ()) -> bool:
    """Whether a ``--context`` value is a glob (``staging-*``) rather than a name: a name
    in ``known`` (the kubeconfig's contexts) is that context, whatever it holds."""
    return any(char in _GLOB_CHARACTERS for char in name) and name not in known


def match_contexts(
    patterns: str | Iterable[str],
    kubeconfig: str | os.PathLike[str] | None = None,
    *,
    magic: bool = False,
) -> list[str]:
    """The contexts ``patterns`` name: each name as given, each glob expanded against the
    kubeconfig's contexts (case-sensitive), repeated ones once, in the order given. A
    context named exactly as given (``x[1]``) is that context, not a glob."""
    wanted = [patterns] if isinstance(patterns, str) else list(patterns)
    if not wanted:
        raise ValueError(
            "Cluster.many(): name at least one context (or a glob such as 'staging-*')"
        )
    for pattern in wanted:
        if not isinstance(pattern, str) or not pattern.strip():
            raise TypeError(
                "Cluster.many(): contexts must be context names or globs (str), not "
                f"{type(pattern).__name__ if not isinstance(pattern, str) else 'an empty str'}"
            )
    known = context_names(kubeconfig)
    flag = "--context" if magic else "context"
    listing = ", ".join(known) if known else "none"
    chosen: dict[str, None] = {}
    for pattern in wanted:
        if is_glob(pattern, known):
            found = [name for name in known if fnmatch.fnmatchcase(name, pattern)]
            if not found:
                raise ConfigError(
                    f"{flag} {pattern!r} matches no context of the kubeconfig (contexts: {listing})",
                    hint="context globs are case-sensitive, as context names are",
                )
        else:
            if known and pattern not in known:
                close = difflib.get_close_matches(pattern, known, n=1)
                raise ConfigError(
                    f"context {pattern!r} not found in the kubeconfig (contexts: {listing})"
                    + (f"; did you mean {close[0]!r}?" if close else ""),
                    hint=f"use {flag} with one of them, or a glob such as 'staging-*'",
                )
            found = [pattern]
        for name in found:
            chosen.setdefault(name, None)
    return list(chosen)


# -- what the live view is told --------------------------------------------------------------


@dataclass(frozen=True)
class ClusterLine:
    """One cluster of a run across contexts, as the run's header shows it: its API server and
    the execs found there, or why it could not run (``error``)."""

    context: str
    server: str = ""
    execs: int = 0
    pods: int = 0
    skipped: int = 0
    error: str | None = None

    def text(self) -> str:
        """``context staging-a (https://…): 3 pods`` or ``context b: error — reason``."""
        where = f"context {self.context}" + (f" ({self.server})" if self.server else "")
        if self.error is not None:
            return f"{where}: error — {self.error}"
        count = f"{self.pods} pod{'' if self.pods == 1 else 's'}"
        if self.execs != self.pods:
            count = f"{self.execs} containers in {count}"
        if self.skipped:
            count += f" ({self.skipped} skipped)"
        return f"{where}: {count}"


@dataclass(frozen=True)
class ClustersStarted(RunStarted):
    """:class:`~podmagic.RunStarted` of a run across contexts: ``clusters`` has one line
    per context. ``selection`` joins every context's pods; while more than one context runs,
    its targets (and those of the pod events) carry ``context:namespace`` as their namespace,
    so that the same pod name in two clusters stays two pods on screen."""

    clusters: tuple[ClusterLine, ...] = ()


def _shown_target(target: PodTarget, context: str) -> PodTarget:
    return replace(target, namespace=f"{context}:{target.namespace}")


def _shown_event(event: Event, context: str) -> Event:
    """``event`` of one context's run as the shared live view is told it (see
    :class:`ClustersStarted`): pods told apart by their context."""
    if isinstance(event, PodStarted):
        return PodStarted(_shown_target(event.target, context))
    if isinstance(event, PodOutput):
        return PodOutput(_shown_target(event.target, context), event.stream, event.data)
    if isinstance(event, PodFinished):
        result = event.result
        return PodFinished(replace(result, namespace=f"{context}:{result.namespace}"))
    return event


# -- selections across contexts ---------------------------------------------------------------


@dataclass(frozen=True)
class ClustersSelection:
    """The pods a run across contexts would use (:meth:`Clusters.select`): each context's
    :class:`~podmagic.Selection`, and the contexts that could not find theirs, with why.
    ``Clusters.run(selection=...)`` runs there without looking again."""

    selections: Mapping[str, Selection]
    errors: Mapping[str, str] = field(default_factory=dict)
    #: What each failed context's error results name (targets as typed, or pods of results).
    wanted: Mapping[str, tuple[tuple[str, str, str | None], ...]] = field(default_factory=dict)
    described: str = ""
    #: The contexts in the order the run named them.
    asked: tuple[str, ...] = ()
    #: Said after the description (``%pod``: `` (default target)``).
    note: str = ""

    @property
    def contexts(self) -> tuple[str, ...]:
        """Every context of the run, those that failed included, in the run's order."""
        return self.asked or tuple(dict.fromkeys([*self.selections, *self.errors]))

    @property
    def run(self) -> tuple[PodTarget, ...]:
        """Every context's (pod, container) targets, one after the other."""
        return tuple(t for selection in self.selections.values() for t in selection.run)

    @property
    def skipped(self) -> tuple[Any, ...]:
        """Every context's skipped pods, one after the other."""
        return tuple(p for selection in self.selections.values() for p in selection.skipped)

    @property
    def description(self) -> str:
        """``deploy/web in namespace shop in 2 contexts (a, b)``: where every context looked
        (as each says it, when they agree), and the contexts."""
        said = {selection.description for selection in self.selections.values()}
        where = next(iter(said)) if len(said) == 1 else self.described
        contexts = self.contexts
        return f"{where} in {len(contexts)} contexts ({', '.join(contexts)}){self.note}"

    @property
    def untargeted(self) -> bool:
        return any(selection.untargeted for selection in self.selections.values())


def _failed_results(
    context: str,
    wanted: Sequence[tuple[str, str, str | None]],
    reason: str,
    command: tuple[str, ...],
) -> list[PodResult]:
    """What a context that could not run leaves in the results: one error per pod or target."""
    return [
        PodResult(
            context=context,
            namespace=namespace,
            pod=pod,
            container=container,
            command=command,
            status=ExecStatus.ERROR,
            error=f"context {context} could not run: {reason}",
        )
        for namespace, pod, container in wanted
    ]


# -- the run ----------------------------------------------------------------------------------


@dataclass
class _Part:
    """One context's share of a run: how to start it, once its pods are found."""

    context: str
    launch: Callable[[EventCallback | None, RunControl], Awaitable[PodResults]]
    selection: Selection
    server: str


@dataclass(frozen=True)
class _Request:
    """What a run across contexts was asked, for a context that could not run then: a re-run
    runs it there anew (the other contexts repeat their own run)."""

    command: str | Sequence[str]
    names: str | list[str] | None
    query: Mapping[str, Any]
    run: Mapping[str, Any]
    all_pods: bool
    from_results: bool


class _ManyOrigin:
    """A run across contexts as :meth:`PodResults.rerun` repeats it: each context's own run
    (:class:`~podmagic._client._RunOrigin`), each context's provenance, and what was asked
    (for the contexts that could not run the first time)."""

    __slots__ = ("clusters", "origins", "provenances", "replaces", "request", "shown")

    def __init__(
        self,
        clusters: Clusters,
        origins: Mapping[str, _RunOrigin],
        provenances: Mapping[str, Provenance],
        shown: tuple[str, ...],
        request: _Request | None = None,
    ) -> None:
        self.clusters = clusters
        self.origins = dict(origins)
        self.provenances = dict(provenances)
        self.shown = shown
        self.request = request
        #: The error results (context, namespace, pod, container) that stood in for a
        #: context's target while it could not run, and that this run ran anew:
        #: :meth:`PodResults.merge` puts these results in their place.
        self.replaces: tuple[tuple[str, str, str, str | None], ...] = ()

    def __repr__(self) -> str:
        return f"<run of {' '.join(self.shown)[:60]!r} in contexts {', '.join(self.origins)}>"

    def judged_by(self, protected: Sequence[str], confirm_above: int | None) -> _ManyOrigin:
        """This run, its re-run judged by these guards (``%pod --rerun``: the magic's
        settings as they are now, not as they were when it first ran), in the magic's words
        (``--yes``). The contexts' Clusters and sessions are shared, not copied."""
        clusters = copy.copy(self.clusters)
        clusters.protected_contexts = tuple(protected)
        clusters.confirm_above = confirm_above
        clusters._magic_words = True
        judged = _ManyOrigin(clusters, self.origins, self.provenances, self.shown, self.request)
        judged.replaces = self.replaces
        return judged

    @property
    def options(self) -> Any:
        """The options of the run (the same in every context)."""
        return next(iter(self.origins.values())).options if self.origins else None

    async def arerun(
        self,
        targets: Sequence[PodResult],
        *,
        yes: bool = False,
        on_event: EventCallback | None = None,
        control: RunControl | None = None,
        **changes: Any,
    ) -> PodResults:
        """Run again in the pods of ``targets``, each in its own context. A context that
        could not run the first time (its results are errors) runs what was asked anew."""
        given = {name: value for name, value in changes.items() if value is not AS_BEFORE}
        if given.pop("target", False):
            raise ValueError(
                "rerun(target=True) looks for one run's target again; results from several "
                "contexts re-run in their own pods (leave target out), or run anew with "
                "Cluster.many(...).run(command, target)"
            )
        unknown = sorted(set(given) - set(_RERUN_CHANGES))
        if unknown:
            raise TypeError(f"rerun() got an unexpected keyword argument {unknown[0]!r}")
        by_context: dict[str, list[PodResult]] = {}
        for result in targets:
            by_context.setdefault(result.context, []).append(result)
        request = self.request
        lost = [context for context in by_context if context not in self.origins]
        if lost and request is None:
            raise ValueError(
                f"rerun(): context {', '.join(lost)} did not run the first time (see the "
                "results' error), so there is no run of it to repeat; run the command anew "
                "with Cluster.many(...).run(command, results)"
            )
        origins = {
            context: self.origins[context].with_options(**given)
            for context in by_context
            if context in self.origins
        }
        started = time.monotonic()
        fresh = {**(request.run if request is not None else {}), **given}

        async def select(context: str) -> Selection:
            origin = origins.get(context)
            if origin is not None:
                # A pod gone since is that pod's error, as in a one-context re-run (the
                # others run); no --retarget hint: several contexts re-run their pods only.
                return await origin.aselect(
                    list(by_context[context]), gone=origin.gone_reason(again=False)
                )
            # It could not run the first time: look for what was asked, anew.
            assert request is not None
            cluster = self.clusters.clusters.get(context)
            if cluster is None:
                raise ConfigError(self.clusters.failed.get(context, "no credentials"))
            limits: dict[str, Any] = {"deadline": fresh.get("deadline")}
            if "timeout" in fresh:
                limits["timeout"] = fresh["timeout"]
            if request.from_results:
                return await cluster.aselect(list(by_context[context]), **limits)
            return await cluster.aselect(request.names, **request.query, **limits)

        def part(context: str, selection: Selection) -> _Part:
            origin = origins.get(context)
            if origin is None:
                assert request is not None
                cluster = self.clusters.clusters[context]

                def anew(events: EventCallback | None, inner: RunControl) -> Awaitable[PodResults]:
                    return cluster.arun(
                        request.command,
                        selection=selection,
                        on_event=events,
                        control=inner,
                        yes=True,  # judged across the contexts, before anything ran
                        all_pods=request.all_pods and selection.untargeted,
                        started_at=started,
                        **fresh,
                    )

                return _Part(context, anew, selection, cluster.credentials.server)

            def launch(events: EventCallback | None, inner: RunControl) -> Awaitable[PodResults]:
                return origin.arerun(
                    (),
                    selection=selection,
                    on_event=events,
                    control=inner,
                    yes=True,  # judged across the contexts, before anything ran
                    started_at=started,
                )

            return _Part(context, launch, selection, origin.cluster.credentials.server)

        wanted = {
            context: tuple((r.namespace, r.pod, r.container) for r in results)
            for context, results in by_context.items()
        }
        again = await self.clusters._run_parts(
            list(by_context),
            select,
            part,
            wanted=wanted,
            described="the pods of the results",
            shown=self.shown,
            command=self.shown,
            yes=yes,
            everything=False,
            on_event=on_event,
            control=control,
            request=request,
        )
        origin = again._origin
        if isinstance(origin, _ManyOrigin):
            ran = {context for context in lost if context in origin.origins}
            origin.replaces = tuple(
                (r.context, r.namespace, r.pod, r.container)
                for context in ran
                for r in by_context[context]
            )
        return again

    def rerun(
        self,
        targets: Sequence[PodResult],
        *,
        control: RunControl | None = None,
        **options: Any,
    ) -> PodResults:
        """Blocking :meth:`arerun`; Ctrl-C cancels it and returns the partial results."""
        return cancellable(lambda run: self.arerun(targets, control=run, **options), control)


async def _relay_cancel(outer: RunControl, inner: Sequence[RunControl]) -> None:
    """Hand ``outer.cancel(reason)`` on to every context's own control, with its reason (each
    context's fan-out records its pods as cancelled or not started, as one run would)."""
    with anyio.CancelScope() as scope:
        outer._attach(scope)
        try:
            await anyio.sleep_forever()
        finally:
            outer._detach()
    # Reached only when ``outer`` cancelled the scope (the run's end cancels the task around).
    for control in inner:
        control.cancel(outer._reason or "cancelled")


class Clusters:
    """Several cluster contexts as one: :meth:`run` runs a command in the pods a target names
    in every context, concurrently; the results merge into one :class:`~podmagic.PodResults`.

    Made with :meth:`Cluster.many <podmagic.Cluster.many>` (``Cluster.many("staging-*")``,
    ``Cluster.many(["a", "b"])``), which takes the settings of ``Cluster(...)``: each context
    gets a :class:`~podmagic.Cluster` of its own (``clusters``), and ``max_concurrency`` caps
    the execs of each cluster. A context whose credentials cannot be loaded is kept, as a
    context that fails (``failed``): its results say why, the others run.
    """

    #: Errors in the magic's flags (``--yes``) instead of keyword arguments (``yes=True``).
    _magic_words: bool = False

    def __init__(
        self,
        contexts: str | Iterable[str],
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        _magic: bool = False,
        _make: Callable[[str], Cluster] | None = None,
        **settings: Any,
    ) -> None:
        self._magic_words = _magic
        self.contexts: tuple[str, ...] = tuple(match_contexts(contexts, kubeconfig, magic=_magic))
        self.kubeconfig = kubeconfig
        make = _make or (lambda context: Cluster(context, kubeconfig=kubeconfig, **settings))
        #: Each context's Cluster (those whose credentials loaded).
        self.clusters: dict[str, Cluster] = {}
        #: Contexts whose credentials could not be loaded, and why.
        self.failed: dict[str, str] = {}
        for context in self.contexts:
            try:
                self.clusters[context] = make(context)
            except ConfigError as error:
                self.failed[context] = str(in_callers_words(error, kubeconfig, magic=_magic))
        if not self.clusters:
            # Nothing could run anywhere: one error now, not a run that fails in every context.
            reasons = "; ".join(f"{context}: {why}" for context, why in self.failed.items())
            raise ConfigError(f"no context could be used: {reasons}")
        first = next(iter(self.clusters.values()), None)
        self.protected_contexts: tuple[str, ...] = (
            first.protected_contexts
            if first is not None
            else tuple(settings.get("protected_contexts", DEFAULT_PROTECTED_CONTEXTS))
        )
        self.confirm_above: int | None = (
            first.confirm_above
            if first is not None
            else settings.get("confirm_above", DEFAULT_CONFIRM_ABOVE)
        )

    def __repr__(self) -> str:
        return f"<Clusters contexts={list(self.contexts)!r}>"

    # -- arguments ------------------------------------------------------------------------

    def _split(
        self, options: Mapping[str, Any], where: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``options`` as (query, run) keyword arguments; a misspelt one is a ``TypeError``
        naming the one meant, as :class:`Cluster` says it."""
        known = (*_QUERY_ARGUMENTS, *_RUN_ARGUMENTS)
        for key in options:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
                raise TypeError(
                    f"{where} got an unexpected keyword argument {key!r}"
                    + (
                        f"; did you mean {close[0]}=?"
                        if close
                        else "; help(Cluster.run) lists them"
                    )
                )
        query = {k: v for k, v in options.items() if k in _QUERY_ARGUMENTS}
        run = {k: v for k, v in options.items() if k in _RUN_ARGUMENTS}
        return query, run

    def _targets_by_context(
        self, target: Any
    ) -> tuple[list[str] | str | None, dict[str, list[PodResult]]]:
        """Names (for every context) and earlier results (each for its own context)."""
        if target is None or isinstance(target, str):
            return target, {}
        items = [target] if isinstance(target, PodResult) else list(target)
        if not items and isinstance(target, PodResults):
            raise SelectionError(
                "the results given as the target are empty (no pod failed?): nothing to run in"
            )
        names = [item for item in items if isinstance(item, str)]
        results: dict[str, list[PodResult]] = {}
        for item in items:
            if isinstance(item, PodResult):
                results.setdefault(item.context, []).append(item)
            elif not isinstance(item, str):
                raise TypeError(
                    "Clusters.run(): target must be names, results (PodResults, PodResult) or a "
                    f"list of them, not a list holding {type(item).__name__}"
                )
        others = [context for context in results if context not in self.contexts]
        if others:
            raise SelectionError(
                f"the results come from context {', '.join(others)}, which this run does not "
                f"include ({', '.join(self.contexts)}); add it, or run them with "
                "results.rerun(), which runs where they came from"
            )
        return names or None, results

    # -- finding pods ---------------------------------------------------------------------

    async def aselect(
        self,
        target: Any = None,
        *,
        deadline: float | None = None,
        timeout: Any = None,
        **query: Any,
    ) -> ClustersSelection:
        """Find the pods in every context at once, and run nothing: a
        :class:`ClustersSelection`. Takes :meth:`Cluster.select`'s arguments. A context that
        cannot find them keeps its reason in ``errors``; when none can, the
        :class:`~podmagic.SelectionError` names each one's."""
        query, _ = self._split(query, "Clusters.select()")
        names, results = self._targets_by_context(target)
        contexts = list(results) if results and names is None else list(self.contexts)
        settings: dict[str, Any] = {"deadline": deadline}
        if timeout is not None:
            settings["timeout"] = timeout

        async def select(context: str) -> Selection:
            cluster = self.clusters[context]
            wanted: list[str | PodResult] = list([names] if isinstance(names, str) else names or [])
            wanted += results.get(context, [])
            return await cluster.aselect(wanted or None, **query, **settings)

        return await self._select_all(
            contexts,
            select,
            self._wanted(names, results, query),
            self._described(names, results, query),
        )

    def select(self, target: Any = None, **options: Any) -> ClustersSelection:
        """Blocking :meth:`aselect`."""
        return run_blocking(lambda: self.aselect(target, **options))

    def _wanted(
        self, names: Any, results: Mapping[str, Sequence[PodResult]], query: Mapping[str, Any]
    ) -> dict[str, tuple[tuple[str, str, str | None], ...]]:
        """What each context's error results name, should it fail."""
        namespace = query.get("namespace") or ("*" if query.get("all_namespaces") else "")
        typed: list[str] = [names] if isinstance(names, str) else list(names or [])
        if not typed and not results:
            selector = query.get("selector")
            typed = [f"-l {selector}" if selector else "(every pod)"]
        wanted = {}
        for context in self.contexts:
            default = namespace or getattr(self.clusters.get(context), "namespace", "") or "default"
            wanted[context] = tuple(
                [(default, name, query.get("container")) for name in typed]
                + [(r.namespace, r.pod, r.container) for r in results.get(context, [])]
            )
        return wanted

    @staticmethod
    def _described(names: Any, results: Mapping[str, Any], query: Mapping[str, Any]) -> str:
        """The target in words, for a context that could not say where it looked."""
        typed = [names] if isinstance(names, str) else list(names or [])
        if typed:
            return ", ".join(typed)
        if query.get("selector"):
            return str(query["selector"])
        return "the pods of the results" if results else "every pod"

    async def _select_all(
        self,
        contexts: Sequence[str],
        select: Callable[[str], Awaitable[Selection]],
        wanted: Mapping[str, tuple[tuple[str, str, str | None], ...]],
        described: str,
    ) -> ClustersSelection:
        selections: dict[str, Selection] = {}
        errors: dict[str, str] = {
            context: self.failed[context] for context in contexts if context in self.failed
        }

        mistakes: list[Exception] = []

        async def one(context: str) -> None:
            try:
                selections[context] = await select(context)
            except PodmagicError as error:
                errors[context] = str(error)
            except Exception as error:  # noqa: BLE001 - raised below, once, not as a group
                mistakes.append(error)

        async with anyio.create_task_group() as group:
            for context in contexts:
                if context not in errors:
                    group.start_soon(one, context)
        if mistakes:
            # A wrong argument is wrong in every context: one TypeError/ValueError, as for
            # one cluster (a task group would raise an ExceptionGroup of them).
            raise mistakes[0]
        if not selections:
            reasons = "; ".join(f"{context}: {errors[context]}" for context in contexts)
            raise SelectionError(f"no context could run: {reasons}")
        order = {context: index for index, context in enumerate(contexts)}
        return ClustersSelection(
            selections={c: selections[c] for c in sorted(selections, key=order.__getitem__)},
            errors={c: errors[c] for c in sorted(errors, key=order.__getitem__)},
            wanted={c: wanted.get(c, ()) for c in contexts},
            described=described,
            asked=tuple(contexts),
        )

    # -- guards ---------------------------------------------------------------------------

    def check(self, selection: ClustersSelection, *, yes: bool, everything: bool) -> None:
        """The guards across the contexts, before anything runs: every protected context the
        run would reach is named; ``confirm_above`` counts the pods of every context."""
        joined = Selection(run=selection.run, skipped=(), description=selection.description)
        check_allowed(
            joined,
            context="",
            protected=(),
            confirm_above=None,
            everything=everything,
            confirmed=yes,
            api=not self._magic_words,
        )
        if yes:
            return
        confirm = "add --yes" if self._magic_words else "pass yes=True"
        protected = [
            (context, pattern, len(part.run))
            for context, part in selection.selections.items()
            if (pattern := matches_protected(context, self.protected_contexts)) is not None
            and part.run
        ]
        if protected:
            names = ", ".join(
                f'"{context}" (matches {pattern!r}; {count} pod{"" if count == 1 else "s"})'
                for context, pattern, count in protected
            )
            word = "context" if len(protected) == 1 else "contexts"
            raise RefusedError(
                f"{word} {names} {'is' if len(protected) == 1 else 'are'} protected",
                hint=f"{confirm} to run in {'it' if len(protected) == 1 else 'them'} anyway",
            )
        count = len(joined.run)
        if self.confirm_above is not None and count > self.confirm_above:
            limit = (
                "PodMagic.confirm_above" if self._magic_words else "Cluster.many(confirm_above=...)"
            )
            raise RefusedError(
                f"{count} pods in {len(selection.selections)} contexts is more than the "
                f"{self.confirm_above} allowed without confirmation",
                hint=f"{confirm} to run anyway (or raise {limit})",
            )

    # -- running --------------------------------------------------------------------------

    async def arun(
        self,
        command: str | Sequence[str],
        target: Any = None,
        *,
        on_event: EventCallback | None = None,
        control: RunControl | None = None,
        selection: ClustersSelection | None = None,
        yes: bool = False,
        all_pods: bool = False,
        started_at: float | None = None,
        **options: Any,
    ) -> PodResults:
        """Run ``command`` in the pods ``target`` names, in every context at once; one
        :class:`~podmagic.PodResults` of them all (context, then namespace, then pod).

        Takes :meth:`Cluster.run`'s arguments; ``max_concurrency`` caps each cluster's
        execs. Earlier results as the target run each pod in its own context. Refused before
        anything runs (:class:`~podmagic.RefusedError`) when a context it would run in is
        protected, or when it would run in more than ``confirm_above`` pods in all, until
        ``yes=True``. A context that cannot run gives error results saying why.
        """
        query, run = self._split(options, "Clusters.run()")
        started = time.monotonic() if started_at is None else started_at
        if selection is None:
            names, results = self._targets_by_context(target)
            named = bool(names) or query.get("selector") is not None or bool(results)
            if all_pods and named:
                raise ValueError(
                    "Clusters.run(): all_pods=True means every pod of the namespace; "
                    "drop it, or drop the target and selector"
                )
            selection = await self.aselect(
                target,
                deadline=run.get("deadline"),
                timeout=run.get("timeout"),
                **query,
            )
            everything = not named and not all_pods
        else:
            if target is not None or query:
                raise ValueError(
                    "Clusters.run(): selection= already holds the pods to run in; drop the "
                    "target and the query arguments"
                )
            everything = selection.untargeted and not all_pods
        shown = (
            (run.get("shell") or "/bin/sh", "-c", command)
            if isinstance(command, str)
            else tuple(command)
        )
        chosen = selection

        async def select(context: str) -> Selection:
            return chosen.selections[context]

        def part(context: str, found: Selection) -> _Part:
            cluster = self.clusters[context]

            def launch(events: EventCallback | None, inner: RunControl) -> Awaitable[PodResults]:
                return cluster.arun(
                    command,
                    selection=found,
                    on_event=events,
                    control=inner,
                    yes=True,  # judged across the contexts, before anything ran
                    all_pods=all_pods and found.untargeted,
                    started_at=started,
                    **run,
                )

            return _Part(context, launch, found, cluster.credentials.server)

        names, results = self._targets_by_context(target)
        request = _Request(
            command=command,
            names=names,
            query=query,
            run=run,
            all_pods=all_pods,
            from_results=bool(results) and not names and query.get("selector") is None,
        )
        return await self._run_parts(
            list(selection.selections),
            select,
            part,
            wanted=selection.wanted,
            described=selection.described,
            shown=shown,
            command=shown,
            yes=yes,
            everything=everything,
            on_event=on_event,
            control=control,
            found=selection,
            request=request,
        )

    def run(
        self,
        command: str | Sequence[str],
        target: Any = None,
        *,
        control: RunControl | None = None,
        **options: Any,
    ) -> PodResults:
        """Blocking :meth:`arun`: works inside Jupyter's running loop too; Ctrl-C cancels
        the run in every context and returns the partial results."""
        return cancellable(lambda run: self.arun(command, target, control=run, **options), control)

    async def _run_parts(
        self,
        contexts: list[str],
        select: Callable[[str], Awaitable[Selection]],
        part: Callable[[str, Selection], _Part],
        *,
        wanted: Mapping[str, tuple[tuple[str, str, str | None], ...]],
        described: str,
        shown: tuple[str, ...],
        command: tuple[str, ...],
        yes: bool,
        everything: bool,
        on_event: EventCallback | None,
        control: RunControl | None,
        found: ClustersSelection | None = None,
        request: _Request | None = None,
    ) -> PodResults:
        """Find the pods in every context (unless ``found``), apply the guards, run every
        context at once under one live view; the merged results."""
        if found is None:
            found = await self._select_all(contexts, select, wanted, described)
        self.check(found, yes=yes, everything=everything)
        errors = dict(found.errors)
        parts = [part(context, selection) for context, selection in found.selections.items()]
        many = len(found.contexts) > 1
        lines = [
            ClusterLine(
                context=p.context,
                server=public_server(p.server),
                execs=len(p.selection.run),
                pods=len({(t.namespace, t.pod) for t in p.selection.run}),
                skipped=len(p.selection.skipped),
            )
            for p in parts
        ] + [ClusterLine(context=context, error=reason) for context, reason in errors.items()]
        order = {context: index for index, context in enumerate(found.contexts)}
        lines.sort(key=lambda line: order[line.context])

        def shown_in(context: str) -> EventCallback | None:
            if on_event is None:
                return None
            forward = on_event

            def handle(event: Event) -> None:
                if isinstance(event, (RunStarted, RunFinished)):
                    return  # the run across contexts starts and finishes once
                forward(_shown_event(event, context) if many else event)

            return handle

        if on_event is not None:
            # What the header shows of the command: the script, or the argv as typed.
            display = shown[-1] if len(shown) == 3 and shown[1] == "-c" else shlex.join(shown)
            joined = Selection(
                run=tuple(
                    _shown_target(t, p.context) if many else t
                    for p in parts
                    for t in p.selection.run
                ),
                skipped=tuple(s for p in parts for s in p.selection.skipped),
                description=found.description if many else parts[0].selection.description,
            )
            on_event(
                ClustersStarted(
                    context=", ".join(found.contexts),
                    selection=joined,
                    command=display,
                    clusters=tuple(lines),
                )
            )
        outer = control or RunControl()
        inner = {p.context: RunControl() for p in parts}
        done: dict[str, PodResults] = {}

        mistakes: list[Exception] = []

        async def one(p: _Part) -> None:
            try:
                done[p.context] = await p.launch(shown_in(p.context), inner[p.context])
            except PodmagicError as error:
                errors[p.context] = str(error)
            except Exception as error:  # noqa: BLE001 - raised below, once, not as a group
                mistakes.append(error)

        async with anyio.create_task_group() as relay:
            relay.start_soon(_relay_cancel, outer, list(inner.values()))
            async with anyio.create_task_group() as group:
                for p in parts:
                    group.start_soon(one, p)
            relay.cancel_scope.cancel()
        if mistakes:
            raise mistakes[0]

        items: list[PodResult] = []
        for context in found.contexts:
            if context in done:
                items.extend(done[context])
            elif context in errors:
                items.extend(
                    _failed_results(context, wanted.get(context, ()), errors[context], command)
                )
        items.sort(
            key=lambda r: (order[r.context], r.namespace, natural_key(r.pod), r.container or "")
        )
        merged = PodResults(items)
        origins = {c: r._origin for c, r in done.items() if r._origin is not None}
        merged._origin = _ManyOrigin(
            self,
            origins,  # type: ignore[arg-type]
            {c: r.provenance for c, r in done.items() if r.provenance is not None},
            shown,
            request,
        )
        if len(found.contexts) == 1 and done:
            merged._provenance = next(iter(done.values())).provenance
        if any(r.frame is not None for r in done.values()):
            # python=True values as a table: one frame of every context's, as one context has.
            table = frame_or_values(merged)
            merged._frame = None if isinstance(table, dict) else table
        if on_event is not None:
            on_event(RunFinished(merged))
        return merged

    # -- the session ----------------------------------------------------------------------

    def close(self) -> None:
        """Close every context's HTTP connections (a later run opens new ones)."""
        for cluster in self.clusters.values():
            cluster.close()

    async def aclose(self) -> None:
        for cluster in self.clusters.values():
            await cluster.aclose()

    def __enter__(self) -> Clusters:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _show_clusters_arguments() -> None:
    """``help(Clusters.run)`` and ``inspect.signature`` show the arguments each method passes
    on to :class:`Cluster`'s (it takes them as ``**options``), not a bare ``**options``."""
    for name in ("run", "arun", "select", "aselect"):
        method = getattr(Clusters, name)
        signature = inspect.signature(getattr(Cluster, name))
        parameters = [
            p.replace(annotation="ClustersSelection | None") if p.name == "selection" else p
            for p in signature.parameters.values()
        ]
        returns = "ClustersSelection" if name.endswith("select") else signature.return_annotation
        method.__signature__ = signature.replace(parameters=parameters, return_annotation=returns)


_show_clusters_arguments()

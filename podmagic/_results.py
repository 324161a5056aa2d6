"""The data users keep: one ``PodResult`` per pod × container, gathered in ``PodResults``.

``PodResult`` mirrors ``subprocess.CompletedProcess`` (``args``, ``returncode``, ``stdout``,
``stderr``, ``check_returncode()``); its bytes are exact and its ``*_text`` views are for
display. ``PodResults`` is an immutable list of them that answers the questions asked of a
fan-out: did everything succeed, which failed, what did each say (grouped when identical),
and what is all of it as one DataFrame.

This module holds data only: what a person sees of it (``str()``, the notebook display, the
reprs) is written by the render room, ``podmagic._render._summary``, from one view rendered as
HTML or as text, so the two always agree. pandas is imported only by the methods that return
DataFrames.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Awaitable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Protocol, overload

from ._errors import ParseError, PodExecError, PodsFailedError
from ._natsort import natural_key

if TYPE_CHECKING:
    import pandas as pd

    from ._diff import OutputDiff
    from ._provenance import Provenance

__all__ = [
    "FRAME_MARK",
    "NO_VALUE",
    "ExecStatus",
    "OutputGroup",
    "PodResult",
    "PodResults",
    "check_parsed",
    "parse_problems",
]

#: ``frame.attrs`` key marking a DataFrame made from pod output (see :meth:`PodResults.parse`).
FRAME_MARK = "podmagic"

#: How many pod names :attr:`OutputGroup.label` lists before "and N more".
MAX_LABEL_NAMES = 6


class ExecStatus(str, Enum):
    """How one exec ended."""

    OK = "ok"
    """The command ran and exited 0, or with a code the run accepted (``ok_exit``)."""
    FAILED = "failed"
    """The command ran and exited with a code the run did not accept (non-zero by default)."""
    ERROR = "error"
    """The exec could not be run or completed (handshake refused, connection lost, ...)."""
    TIMEOUT = "timeout"
    """The per-pod timeout passed before the command's exit status arrived."""
    CANCELLED = "cancelled"
    """The run was interrupted while this exec was running."""
    SKIPPED = "skipped"
    """The pod matched but was not run (not ready, ...); ``error`` says why."""
    NOT_STARTED = "not started"
    """The run ended (deadline, interrupt, earlier failure) before this exec started."""

    def __str__(self) -> str:
        return self.value


#: Statuses whose stdout is complete, so parsing it is meaningful.
_COMPLETE = frozenset({ExecStatus.OK, ExecStatus.FAILED})


class _NoValue(Enum):
    """What :attr:`PodResult.value` holds when no ``--python`` program gave a value."""

    NO_VALUE = "no value"

    def __repr__(self) -> str:
        return "<no value>"


#: :attr:`PodResult.value` of a shell command, or of a ``--python`` program that gave none
#: (it failed, timed out, was skipped, ...).
NO_VALUE: Final = _NoValue.NO_VALUE


def _outcome(status: ExecStatus, exit_code: int | None) -> str:
    if status in (ExecStatus.OK, ExecStatus.FAILED) and exit_code is not None:
        return f"exit {exit_code}"
    return status.value


@dataclass(kw_only=True, repr=False)
class PodResult:
    """What one command did in one container of one pod.

    ``stdout`` and ``stderr`` are the exact bytes received, up to the capture cap: the
    *first* bytes of each stream are kept. ``stdout_dropped``/``stderr_dropped`` count the bytes
    after those that the cap did not keep, and ``stdout_dropped_digest``/``stderr_dropped_digest``
    are the SHA-256 digest of those dropped bytes (None when nothing was dropped, or when the
    result was built without one), so that outputs can be compared past the cap.
    ``started_at`` is a timezone-aware time, ``duration`` is in seconds, ``error`` explains any
    status other than ok and failed (for skipped: why).
    """

    context: str
    namespace: str
    pod: str
    container: str | None = None
    node: str | None = None
    command: tuple[str, ...] = ()
    status: ExecStatus
    exit_code: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    started_at: datetime | None = None
    duration: float | None = None
    error: str | None = None
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    stdout_dropped_digest: bytes | None = None
    stderr_dropped_digest: bytes | None = None
    attempt: int = 1
    """Which attempt at this pod this is: 1 for a run, 2 and on once
    :meth:`PodResults.merge` put a re-run's result in place of an earlier one."""
    value: Any = NO_VALUE
    """What a ``--python`` program (``python=True``) gave back, decoded from JSON: its
    ``result`` variable, else its last expression's value, else None. :data:`NO_VALUE` for a
    shell command, and for a program that raised, timed out or did not run."""
    _ran_at: tuple[str, str | None] | None = field(default=None, compare=False)
    """Where the run that gave this result ran: the API server (as the run's provenance
    records it) and the pod's uid; None for a result made by hand. Results given as
    targets run only there: the same cluster, the same pod (not one recreated since)."""

    def __post_init__(self) -> None:
        self.status = ExecStatus(self.status)
        self.command = tuple(self.command)
        for name in ("stdout", "stderr"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"PodResult.{name} must be bytes, not str")
            if not isinstance(value, bytes):
                setattr(self, name, bytes(value))

    @property
    def args(self) -> tuple[str, ...]:
        """The command, as ``subprocess.CompletedProcess.args``."""
        return self.command

    @property
    def returncode(self) -> int | None:
        """The exit code, as ``subprocess.CompletedProcess.returncode``; None if unknown."""
        return self.exit_code

    @property
    def ok(self) -> bool:
        """True when the command ran and exited 0 (or with a code ``ok_exit`` accepted)."""
        return self.status is ExecStatus.OK

    @property
    def outcome(self) -> str:
        """A few words on how it ended: ``exit 0``, ``exit 1``, ``timeout``, ``skipped``..."""
        return _outcome(self.status, self.exit_code)

    @property
    def stdout_text(self) -> str:
        """stdout decoded as UTF-8, invalid bytes shown as U+FFFD. For display only."""
        return self.stdout.decode("utf-8", "replace")

    @property
    def stderr_text(self) -> str:
        """stderr decoded as UTF-8, invalid bytes shown as U+FFFD. For display only."""
        return self.stderr.decode("utf-8", "replace")

    @property
    def truncated(self) -> bool:
        """True when the capture cap dropped part of stdout or stderr."""
        return bool(self.stdout_dropped or self.stderr_dropped)

    def check_returncode(self) -> None:
        """Raise :class:`~podmagic.PodExecError` unless the result is ok (exit 0, or a code
        ``ok_exit`` accepted)."""
        if not self.ok:
            raise PodExecError(self)

    def __repr__(self) -> str:
        from ._render._summary import pod_result_repr

        return pod_result_repr(self)

    def _repr_html_(self) -> str:
        from ._render._summary import summary_html

        return summary_html(PodResults([self]))


def _bytes(count: int) -> str:
    return f"{count:,} byte{'' if count == 1 else 's'}"


def _not_kept(stdout_dropped: int, stderr_dropped: int) -> str:
    """``40,000 bytes of stdout not kept``; empty when nothing was dropped."""
    parts = [
        f"{_bytes(count)} of {name}"
        for name, count in (("stdout", stdout_dropped), ("stderr", stderr_dropped))
        if count
    ]
    return f"{' and '.join(parts)} not kept" if parts else ""


@dataclass(frozen=True, repr=False)
class OutputGroup:
    """Results whose outputs, exit code and status are all identical.

    Identical means: the same kept bytes (the first bytes of each stream, up to the capture
    cap), the same number of bytes dropped after them, and, where bytes were dropped, the same
    SHA-256 digest of the dropped bytes. ``dropped_compared`` is False when some member was
    built without a digest: its dropped bytes were then compared by count only.
    """

    stdout: bytes
    stderr: bytes
    exit_code: int | None
    status: ExecStatus
    results: PodResults
    pods: tuple[str, ...]
    """The members' names, qualified with namespace and container where the collection they
    came from needs it to tell them apart."""
    stdout_dropped: int = 0
    """Bytes of each member's stdout that the capture cap did not keep (after ``stdout``)."""
    stderr_dropped: int = 0
    """Bytes of each member's stderr that the capture cap did not keep (after ``stderr``)."""
    dropped_compared: bool = True
    """Whether the dropped bytes were compared by digest (always True when none were)."""

    @property
    def truncated(self) -> bool:
        """True when the capture cap dropped part of this output."""
        return bool(self.stdout_dropped or self.stderr_dropped)

    @property
    def truncation_note(self) -> str:
        """What was kept and what was not, in words; empty when nothing was dropped.

        ``stdout: first 65,536 bytes kept, 40,000 bytes not kept; the 3 pods' dropped bytes
        are identical (SHA-256)``.
        """
        if not self.truncated:
            return ""
        parts = [
            f"{name}: first {_bytes(len(kept))} kept, {_bytes(dropped)} not kept"
            for name, kept, dropped in (
                ("stdout", self.stdout, self.stdout_dropped),
                ("stderr", self.stderr, self.stderr_dropped),
            )
            if dropped
        ]
        note = "; ".join(parts)
        if len(self.pods) > 1:
            unit = _unit(self.results)
            if self.dropped_compared:
                note += f"; the {len(self.pods)} {unit}' dropped bytes are identical (SHA-256)"
            else:
                note += (
                    f"; the {len(self.pods)} {unit}' dropped bytes were not compared "
                    "(same count only)"
                )
        return note

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    @property
    def label(self) -> str:
        """``web-1, web-2, web-4 — 3 pods, exit 0``."""
        names = ", ".join(self.pods[:MAX_LABEL_NAMES])
        if len(self.pods) > MAX_LABEL_NAMES:
            names += f" and {len(self.pods) - MAX_LABEL_NAMES} more"
        unit = _unit(self.results)
        count = f"1 {unit[:-1]}" if len(self.pods) == 1 else f"{len(self.pods)} {unit}"
        label = f"{names} — {count}, {_outcome(self.status, self.exit_code)}"
        not_kept = _not_kept(self.stdout_dropped, self.stderr_dropped)
        return f"{label}; {not_kept}" if not_kept else label

    def __repr__(self) -> str:
        from ._render._summary import output_group_repr

        return output_group_repr(self)


class _Same(Enum):
    """A re-run option left out: the value the first run had."""

    AS_BEFORE = "as the run had it"

    def __repr__(self) -> str:
        return "<as the run had it>"


#: The default of :meth:`PodResults.rerun`'s options: what the run being repeated had.
AS_BEFORE: Final = _Same.AS_BEFORE


class RunOrigin(Protocol):
    """How the results were made, so that they can be made again: the Cluster, the command
    and the options of the run (``podmagic._client`` writes it; the results only call it)."""

    def arerun(self, targets: PodResults, **options: Any) -> Awaitable[PodResults]: ...

    def rerun(self, targets: PodResults, **options: Any) -> PodResults: ...


def _key(result: PodResult) -> tuple[str, str, str, str | None]:
    """What makes two results attempts at the same thing: context, namespace, pod, container."""
    return (result.context, result.namespace, result.pod, result.container)


def _unit(results: Iterable[PodResult]) -> str:
    items = list(results)
    # The context too: web-1 of two clusters is two pods, not two containers of one.
    pods = {(r.context, r.namespace, r.pod) for r in items}
    return "containers" if len(pods) < len(items) else "pods"


class PodResults(Sequence[PodResult]):
    """The results of one run: an immutable list of :class:`PodResult`.

    Indexing gives a ``PodResult``, slicing and ``+`` give ``PodResults``. ``str()`` and the
    notebook display show a summary table and the outputs grouped when identical.

    Results from ``Cluster.run`` or ``%pod`` remember their run (the Cluster, the command,
    its options): :meth:`rerun` runs it again in their pods, and so do ``.failed``,
    ``.skipped`` and slices of them. :meth:`merge` puts a re-run's results in place of the
    earlier ones, keeping those as history. A ``PodResults``, a ``PodResult`` or a list of
    them is also a target: ``Cluster.run(cmd, res.failed)``, ``%pod {{res.failed}} -- cmd``.
    """

    __slots__ = ("_frame", "_history", "_items", "_origin", "_provenance")

    def __init__(self, results: Iterable[PodResult] = ()) -> None:
        items = tuple(results)
        for item in items:
            if not isinstance(item, PodResult):
                raise TypeError(f"PodResults holds PodResult objects, not {type(item).__name__}")
        self._items = items
        # A copy of another PodResults (a display, the magic's cell value) keeps its run and
        # history: re-running and merging must not depend on which copy the user holds.
        self._origin: RunOrigin | None = getattr(results, "_origin", None)
        self._history: tuple[PodResult, ...] = getattr(results, "_history", ())
        self._provenance: Provenance | None = getattr(results, "_provenance", None)
        self._frame: pd.DataFrame | None = getattr(results, "_frame", None)

    def __reduce__(self) -> tuple[Any, ...]:
        # The run (its Cluster holds credentials and connections) stays in this process: the
        # results pickle as data, and cannot be re-run where they are unpickled. Provenance
        # is data (names, never secrets) and travels with them.
        return (_unpickled, (self._items, self._history, self._provenance, self._frame))

    def __copy__(self) -> PodResults:
        return PodResults(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> PodResults:
        import copy

        duplicate = PodResults(copy.deepcopy(self._items, memo))
        duplicate._origin = self._origin  # the same run, in the same process
        duplicate._history = copy.deepcopy(self._history, memo)
        duplicate._provenance = self._provenance  # frozen
        duplicate._frame = None if self._frame is None else self._frame.copy()
        return duplicate

    def _derived(self, items: Iterable[PodResult]) -> PodResults:
        """A subset of these results, with the same run and the history of its own pods."""
        derived = PodResults(items)
        derived._origin = self._origin
        keys = {_key(r) for r in derived._items}
        derived._history = tuple(r for r in self._history if _key(r) in keys)
        derived._provenance = self._provenance  # the run these results are part of
        return derived

    # -- list behaviour -------------------------------------------------------------------

    @overload
    def __getitem__(self, index: int) -> PodResult: ...

    @overload
    def __getitem__(self, index: slice) -> PodResults: ...

    def __getitem__(self, index: int | slice) -> PodResult | PodResults:
        if isinstance(index, slice):
            return self._derived(self._items[index])
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[PodResult]:
        return iter(self._items)

    def __add__(self, other: Iterable[PodResult]) -> PodResults:
        if not isinstance(other, (PodResults, list, tuple)):
            return NotImplemented
        joined = PodResults((*self._items, *other))
        if getattr(other, "_origin", None) is self._origin:  # one run's parts stay re-runnable
            joined._origin = self._origin
        return joined

    def __radd__(self, other: Iterable[PodResult]) -> PodResults:
        if not isinstance(other, (list, tuple)):
            return NotImplemented
        return PodResults((*other, *self._items))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PodResults):
            return NotImplemented
        return self._items == other._items

    __hash__ = None  # type: ignore[assignment]

    # -- outcome ---------------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        """True when at least one exec ran and every one that was not skipped was ok (exit 0,
        or a code ``ok_exit`` accepted)."""
        ran = [r for r in self._items if r.status is not ExecStatus.SKIPPED]
        return bool(ran) and all(r.ok for r in ran)

    @property
    def failed(self) -> PodResults:
        """The results that were not skipped and were not ok."""
        return self._derived(
            r for r in self._items if r.status is not ExecStatus.SKIPPED and not r.ok
        )

    @property
    def ok_exit(self) -> frozenset[int] | None:
        """The exit codes the run counted as ok (``frozenset({0})`` unless ``ok_exit`` /
        ``--ok-exit`` said otherwise); None for results that remember no run."""
        options = getattr(self._origin, "options", None)
        return getattr(options, "ok_exit", None)

    @property
    def skipped(self) -> PodResults:
        """The pods that matched but were not run."""
        return self._derived(r for r in self._items if r.status is ExecStatus.SKIPPED)

    @property
    def worst_exit_code(self) -> int | None:
        """The largest exit code received, or None if none was.

        0 means that every exec that was to run exited 0: when one gave no exit code (an
        error, such as a context that could not run, a timeout, not started...) and every
        code received was 0, this is None, not 0, since the worst is unknown. Skipped pods
        do not count. Use ``ok`` to decide whether everything succeeded; as a process's exit
        status: ``0 if results.ok else (results.worst_exit_code or 1)``.
        """
        codes = [r.exit_code for r in self._items if r.exit_code is not None]
        worst = max(codes) if codes else None
        if worst == 0 and any(
            r.exit_code is None and r.status is not ExecStatus.SKIPPED for r in self._items
        ):
            return None  # an exec without an exit code may have been worse than 0
        return worst

    def _single(self, what: str) -> PodResult:
        if len(self._items) != 1:
            raise ValueError(
                f"PodResults.{what} needs exactly one result and there are "
                f"{len(self._items)}; index one (results[0]), or use .ok, .failed, "
                ".groups() or .to_dataframe()"
            )
        return self._items[0]

    @property
    def exit_code(self) -> int | None:
        """The exit code of the only result; ``ValueError`` unless there is exactly one."""
        return self._single("exit_code").exit_code

    @property
    def stdout(self) -> bytes:
        """stdout of the only result; ``ValueError`` unless there is exactly one."""
        return self._single("stdout").stdout

    @property
    def stderr(self) -> bytes:
        """stderr of the only result; ``ValueError`` unless there is exactly one."""
        return self._single("stderr").stderr

    @property
    def stdout_text(self) -> str:
        """Decoded stdout of the only result; ``ValueError`` unless there is exactly one."""
        return self._single("stdout_text").stdout_text

    @property
    def stderr_text(self) -> str:
        """Decoded stderr of the only result; ``ValueError`` unless there is exactly one."""
        return self._single("stderr_text").stderr_text

    def check(self) -> PodResults:
        """Return ``self`` if ``ok``; raise :class:`~podmagic.PodsFailedError`
        (holding every result) otherwise."""
        if not self.ok:
            raise PodsFailedError(self)
        return self

    def summary(self) -> dict[str, int]:
        """How many results ended in each status, e.g. ``{"ok": 38, "timeout": 2}``."""
        counts = Counter(r.status for r in self._items)
        return {status.value: counts[status] for status in ExecStatus if counts[status]}

    # -- values of --python runs -------------------------------------------------------------

    @property
    def values(self) -> dict[str, Any]:
        """What each pod's ``--python`` program (``python=True``) gave back: display name
        (as :attr:`labels`) → value, for the results that have one (not the failed, skipped
        or timed-out ones, nor shell commands)."""
        return {
            label: r.value for r, label in zip(self._items, self.labels) if r.value is not NO_VALUE
        }

    def values_frame(self) -> pd.DataFrame:
        """The :attr:`values` as one DataFrame, when they are dicts or lists of dicts: a row
        per dict, led by ``pod`` (``namespace``, ``container``, ``context`` too where they
        differ); a pod that gave no value has a row whose ``error`` says why. A ``--python``
        run whose values are all such keeps this frame as :attr:`frame`. ``ValueError`` for
        values of other kinds."""
        from ._python import values_frame

        return values_frame(self)

    # -- provenance, parsed frame, files ----------------------------------------------------

    @property
    def provenance(self) -> Provenance | None:
        """Where these results came from (a frozen :class:`~podmagic.Provenance`): context,
        server, kubeconfig user name, namespaces, target and selector as written, the pods
        with their uids, the command, the options, start and end time, podmagic version.
        None for results made by hand. Never holds a token, certificate or env value."""
        return self._provenance

    @property
    def provenances(self) -> dict[str, Provenance]:
        """Each context's :attr:`provenance`, by context name: one entry for a run in one
        context, one per context that ran for a run across contexts (``Cluster.many``,
        ``--context a --context b``), whose :attr:`provenance` is None."""
        many: dict[str, Provenance] | None = getattr(self._origin, "provenances", None)
        if many is not None and len(many) != 1:
            contexts = {r.context for r in self._items}
            return {context: p for context, p in many.items() if context in contexts}
        if self._provenance is not None:
            return {self._provenance.context: self._provenance}
        return dict(many or {})

    @property
    def frame(self) -> pd.DataFrame | None:
        """The DataFrame ``%pod -o NAME --parse FMT`` (or :meth:`with_frame`) parsed from
        these results' output; None when they were not parsed."""
        return self._frame

    def with_frame(self, frame: pd.DataFrame) -> PodResults:
        """These results with ``frame`` (from :meth:`parse`) reachable as :attr:`frame`."""
        kept = PodResults(self)
        kept._frame = frame
        return kept

    def to_parquet(self, path: Any, *, parsed: bool | None = None) -> None:
        """Write a DataFrame of these results to a Parquet file, with the run's provenance
        in the file's metadata (key ``b"podmagic.provenance"``, JSON: read it back with
        ``pyarrow.parquet.read_schema(path).metadata`` or :func:`~podmagic.read_provenance`;
        a run across contexts keeps each context's, by name, under
        ``b"podmagic.provenances"``: ``read_provenance(path, context=...)``).

        Writes :attr:`frame` (the parsed table) when there is one, else
        :meth:`to_dataframe`; ``parsed=False`` writes :meth:`to_dataframe` anyway,
        ``parsed=True`` insists on the parsed frame. Needs pyarrow:
        ``pip install 'podmagic[parquet]'``.
        """
        from ._provenance import write_parquet

        if parsed and self._frame is None:
            raise ValueError(
                "to_parquet(parsed=True): these results hold no parsed frame; parse them "
                "with %pod -o NAME --parse FMT, or results.with_frame(results.parse(FMT))"
            )
        use_frame = self._frame is not None and parsed is not False
        frame = self._frame if use_frame else self.to_dataframe()
        assert frame is not None
        write_parquet(frame, path, self.provenances)

    def diff(self, stream: str = "stdout", *, context: int = 3) -> OutputDiff:
        """How the outputs differ: each minority group as a unified diff against the
        majority's output (the largest group), line-numbered, naming the pods on each side.

        ``stream`` is ``"stdout"`` (the default) or ``"stderr"``: the results are grouped by
        that stream's exact bytes alone (exit codes aside). ``context`` lines around each
        change, as ``diff -U``. A group whose output the capture cap cut is not diffed as
        if whole: it says so. ``str()`` is terminal-safe text, the notebook shows HTML.
        """
        from ._diff import diff_results

        return diff_results(self, stream, context=context)

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        # The display's metadata holds the provenance, so a saved notebook keeps it beside
        # the summary; the text and HTML come from the formatters as ever.
        if self._provenance is None:
            # A run across contexts: each context's, by context name.
            each = self.provenances
            if not each:
                return {}, {}
            return {}, {"podmagic": {"provenances": {c: p.as_dict() for c, p in each.items()}}}
        return {}, {"podmagic": {"provenance": self._provenance.as_dict()}}

    # -- running again ---------------------------------------------------------------------

    def _rerun_targets(self, failed: bool, target: bool) -> tuple[RunOrigin, PodResults]:
        if self._origin is None:
            raise ValueError(
                "these results do not remember a run to repeat (made by hand, or joined from "
                "different runs); run the command again with Cluster.run(command, results) "
                "or %pod {{results}} -- COMMAND"
            )
        if failed and target:
            raise ValueError(
                "rerun(failed=True) runs again in the pods that failed, rerun(target=True) in "
                "the pods the run's target names now: choose one"
            )
        return self._origin, self.failed if failed else self

    def rerun(
        self,
        failed: bool = False,
        *,
        target: bool = False,
        yes: bool = False,
        timeout: Any = AS_BEFORE,
        deadline: Any = AS_BEFORE,
        max_concurrency: Any = AS_BEFORE,
        retries: Any = AS_BEFORE,
        ok_exit: Any = AS_BEFORE,
        on_event: Any = None,
        control: Any = None,
    ) -> PodResults:
        """Run the same command, with the same options, again in these results' pods (only
        in :attr:`failed` ones with ``failed=True``); the new results.

        The pods are looked up again by name, each in its own namespace and container, in
        the run's own Cluster: one not ready now comes back skipped, and one that no longer
        exists (deleted, or replaced: a Deployment's new pods have new names) is that pod's
        error, saying so, while the others run. ``target=True`` looks for the run's target
        again instead (``deploy/web``, a selector, the names as given) and runs in the pods
        it names now, the run's header saying "found again for the re-run"; a run that was
        given its pods (earlier results) has no target to look for (``ValueError``), and
        it does not go with ``failed=True``. The command is exactly the one that ran: its
        ``{{expr}}`` values as they were then, its env, working directory and stdin.
        ``timeout``, ``deadline``, ``max_concurrency``, ``retries`` and ``ok_exit`` may be
        changed for this run. The guards apply as to any run: a protected context or more
        pods than ``confirm_above`` need ``yes=True`` again. ``res.merge(res.rerun(failed=
        True))`` gives one set of results, the latest attempt per pod.

        With nothing to re-run (``failed=True`` and no pod failed) nothing runs, and the
        result is empty, so ``res.merge(res.rerun(failed=True))`` is ``res`` again. Raises
        ``ValueError`` when the results do not come from a run (made by hand, or joined from
        two runs).
        """
        origin, targets = self._rerun_targets(failed, target)
        if not targets:  # nothing failed: nothing runs (never "every pod")
            return targets
        return origin.rerun(
            targets,
            target=target,
            yes=yes,
            timeout=timeout,
            deadline=deadline,
            max_concurrency=max_concurrency,
            retries=retries,
            ok_exit=ok_exit,
            on_event=on_event,
            control=control,
        )

    async def arerun(
        self,
        failed: bool = False,
        *,
        target: bool = False,
        yes: bool = False,
        timeout: Any = AS_BEFORE,
        deadline: Any = AS_BEFORE,
        max_concurrency: Any = AS_BEFORE,
        retries: Any = AS_BEFORE,
        ok_exit: Any = AS_BEFORE,
        on_event: Any = None,
        control: Any = None,
    ) -> PodResults:
        """:meth:`rerun` for async code (on the caller's event loop)."""
        origin, targets = self._rerun_targets(failed, target)
        if not targets:  # nothing failed: nothing runs (never "every pod")
            return targets
        return await origin.arerun(
            targets,
            target=target,
            yes=yes,
            timeout=timeout,
            deadline=deadline,
            max_concurrency=max_concurrency,
            retries=retries,
            ok_exit=ok_exit,
            on_event=on_event,
            control=control,
        )

    def merge(self, newer: Iterable[PodResult]) -> PodResults:
        """These results with ``newer`` ones in place of theirs: the latest attempt per pod
        wins.

        A pod (context, namespace, pod, container) in both gets ``newer``'s result, its
        ``attempt`` one more than the one it replaces, which is kept as history
        (``to_dataframe(history=True)`` shows every attempt); pods only in ``newer`` are
        added. The merged results re-run ``newer``'s command when it remembers one.
        ``res = res.merge(res.rerun(failed=True))`` is the loop of a runbook.
        """
        if isinstance(newer, PodResult) or not isinstance(newer, Iterable):
            raise TypeError(
                f"merge() takes PodResults (or a list of PodResult), not {type(newer).__name__}"
            )
        incoming = PodResults(newer)
        current = {_key(r): r for r in self._items}
        history = [*self._history, *incoming._history]
        placed: dict[tuple[str, str, str, str | None], PodResult] = dict(current)
        # A re-run across contexts that ran anew in a context which could not run before:
        # the error results standing in for its target give way to the pods found there now.
        contexts = {r.context for r in incoming}
        stood_in: dict[str, int] = {}
        for key in getattr(incoming._origin, "replaces", ()):
            stand_in = placed.pop(key, None) if key[0] in contexts else None
            if stand_in is not None:
                history.append(stand_in)
                stood_in[key[0]] = max(stood_in.get(key[0], 0), stand_in.attempt)
        for result in incoming:
            key = _key(result)
            earlier = current.get(key)
            if earlier is not None:
                history.append(earlier)
                result = replace(result, attempt=max(result.attempt, earlier.attempt + 1))
            elif result.context in stood_in:
                result = replace(result, attempt=max(result.attempt, stood_in[result.context] + 1))
            placed[key] = result
        merged = PodResults(
            sorted(
                placed.values(),
                key=lambda r: (r.context, r.namespace, natural_key(r.pod), r.container or ""),
            )
        )
        merged._origin = incoming._origin or self._origin
        merged._history = tuple(history)
        # The latest run's provenance: the one that made the newest attempts.
        merged._provenance = incoming._provenance or self._provenance
        return merged

    # -- naming and grouping ---------------------------------------------------------------

    @property
    def labels(self) -> list[str]:
        """Each result's display name: the pod name, prefixed ``namespace/`` when the
        results span namespaces and followed by `` [container]`` when a pod appears more
        than once (``prod/web-1 [app]``): the names the live views and the summary show.
        Results from several contexts are named ``context:namespace/pod``."""
        from ._render._labels import pod_labels

        if len({r.context for r in self._items}) > 1:
            # Results of a run across contexts: ``context:namespace/pod`` (as kube-ps1 writes
            # ``context:namespace``), so that web-1 of two clusters stays two pods.
            return pod_labels(
                (f"{r.context}:{r.namespace}", r.pod, r.container) for r in self._items
            )
        return pod_labels((r.namespace, r.pod, r.container) for r in self._items)

    def groups(self) -> list[OutputGroup]:
        """Results with identical outputs, exit code and status, grouped.

        Outputs are identical when their kept bytes are, and so is what the capture cap
        dropped after them: the same count and the same SHA-256 digest (see
        :class:`OutputGroup`). Largest group first; equal sizes in natural order of their
        first pod's name.
        """
        labels = self.labels
        buckets: dict[tuple[Any, ...], list[int]] = {}
        for index, r in enumerate(self._items):
            key = (
                r.stdout, r.stdout_dropped, r.stdout_dropped_digest,
                r.stderr, r.stderr_dropped, r.stderr_dropped_digest,
                r.exit_code, r.status,
            )  # fmt: skip
            buckets.setdefault(key, []).append(index)
        groups = []
        for members in buckets.values():
            first = self._items[members[0]]
            digests = (
                (first.stdout_dropped_digest, first.stdout_dropped),
                (first.stderr_dropped_digest, first.stderr_dropped),
            )
            groups.append(
                OutputGroup(
                    stdout=first.stdout,
                    stderr=first.stderr,
                    exit_code=first.exit_code,
                    status=first.status,
                    results=PodResults(self._items[i] for i in members),
                    pods=tuple(labels[i] for i in members),
                    stdout_dropped=first.stdout_dropped,
                    stderr_dropped=first.stderr_dropped,
                    dropped_compared=all(digest is not None or not n for digest, n in digests),
                )
            )
        groups.sort(key=lambda g: (-len(g.pods), natural_key(g.results[0].pod), g.pods[0]))
        return groups

    # -- DataFrames ------------------------------------------------------------------------

    def to_dataframe(self, *, history: bool = False) -> pd.DataFrame:
        """One row per result.

        Columns: context, namespace, pod, container, node (text), status (categorical over
        every status), exit_code (nullable Int64: the real code, also where ``ok_exit``
        made it ok), duration (float seconds), started_at (UTC datetime), stdout, stderr
        (decoded text: the kept part), stdout_dropped, stderr_dropped (int64: bytes the
        capture cap did not keep), error (text).

        Results that :meth:`merge` made have an ``attempt`` column (int64, after
        container): which attempt each row is. They hold the latest attempt per pod, one row
        each; ``history=True`` adds the earlier attempts it replaced (sorted by pod, then
        attempt), so a status that changed from one attempt to the next stays visible.
        """
        import pandas as pd

        text = _text_dtype()
        items: Sequence[PodResult] = self._items
        if history and self._history:
            items = sorted(
                (*self._history, *self._items),
                key=lambda r: (
                    r.context, r.namespace, natural_key(r.pod), r.container or "", r.attempt
                ),
            )  # fmt: skip

        def column(values: list[Any]) -> pd.Series:
            return pd.Series(values, dtype=text)

        started = pd.to_datetime([r.started_at for r in items], utc=True)
        return pd.DataFrame(
            {
                "context": column([r.context for r in items]),
                "namespace": column([r.namespace for r in items]),
                "pod": column([r.pod for r in items]),
                "container": column([r.container for r in items]),
                **(
                    {"attempt": pd.Series([r.attempt for r in items], dtype="int64")}
                    if self._history or any(r.attempt != 1 for r in items)
                    else {}
                ),
                "node": column([r.node for r in items]),
                "status": pd.Categorical(
                    [r.status.value for r in items],
                    categories=[status.value for status in ExecStatus],
                ),
                "exit_code": pd.array([r.exit_code for r in items], dtype="Int64"),
                "duration": pd.Series([r.duration for r in items], dtype="float64"),
                "started_at": pd.Series(started, dtype="datetime64[us, UTC]"),
                "stdout": column([r.stdout_text for r in items]),
                "stderr": column([r.stderr_text for r in items]),
                "stdout_dropped": pd.Series([r.stdout_dropped for r in items], dtype="int64"),
                "stderr_dropped": pd.Series([r.stderr_dropped for r in items], dtype="int64"),
                "error": column([r.error for r in items]),
            }
        )

    def parse(
        self,
        fmt: str,
        *,
        strict: bool = False,
        infer: bool = True,
        raw: bool = False,
        **options: Any,
    ) -> pd.DataFrame:
        """Parse every pod's stdout in format ``fmt`` into one DataFrame.

        The leading columns say where each row came from: ``pod``, and ``context`` /
        ``namespace`` / ``container`` when those differ between results; then the parsed
        columns. A parsed
        column named like a leading one or ``error`` gets a ``_`` suffix. Formats and their
        ``options``: ``json``; ``jsonl``; ``csv`` (``header=True``, ``columns=``,
        ``delimiter=","``); ``tsv`` (``header=``, ``columns=``); ``lines``
        (``skip_blank=False``); ``table`` (whitespace-aligned, as ``df -h`` or ``kubectl get``
        print); ``kv`` (``sep=``, ``unquote=True``); ``regex`` (``pattern=``, named groups
        become columns; ``flags=``). An option the format does not take, or cannot use, is a
        ``ValueError`` / ``TypeError`` before any output is parsed.

        A pod whose output is not parsed does not stop the others, and is never left out
        silently: it gets one row with an ``error`` column saying why (the column is there
        whenever some pod was not parsed; the parsed rows have NaN in it). That covers output
        that does not parse (``line 3: not valid JSON ...``), output the capture cap truncated
        (``output truncated: 40,000 bytes not kept``: a prefix is never parsed as if it were
        the whole), and execs that did not complete or never started (timeout, error,
        cancelled, not started). The same reasons are in ``frame.attrs["errors"]`` (display
        name → reason). Skipped pods (not ready, not chosen, ...) ran nothing and get no row:
        they are in ``frame.attrs["skipped"]`` (display name → why). A pod whose output was
        read but held no records (``lines``, ``jsonl``, ``kv``, ``regex`` of empty output; a
        csv header alone) is not an error, yet has no row either: its display name is in
        ``frame.attrs["empty"]``. A pod whose command failed (a non-zero exit) yet whose
        output parsed keeps its rows, and is a problem all the same, whatever the format: it
        is in ``frame.attrs["failed"]`` (display name → ``exit 3``, or ``exit 127, no rows``),
        not in ``empty``; a failed pod whose output did not parse has an error row saying
        ``exit 3; ...``. :func:`parse_problems` puts all of these in words, and
        :func:`check_parsed` raises when a pod was not parsed or its command failed.

        ``frame.attrs["podmagic"]`` marks the frame as holding pod output, so that after
        ``%load_ext podmagic`` IPython shows its control characters as text (the frame keeps
        the exact data).

        With ``strict=True`` the first pod that is not parsed raises
        :class:`~podmagic.ParseError` instead.

        With ``infer=True`` (the default) a text column becomes numbers when every
        non-empty value in it reads as one kind: plain numbers; percentages (``"26%"`` →
        ``26.0``, the number shown); sizes in bytes (``"252G"`` → ``270582939648``;
        ``K``/``M``/``G``… and ``Ki``/``Mi``… are powers of 1024, ``kB``/``MB``… powers of
        1000); durations in seconds (``"1h2m"`` → ``3720.0``, ``"3d"``, ``"45s"``). Mixed
        columns, and columns with a value that reads as none of these (``-``), stay text.
        ``frame.attrs["units"]`` names each converted column's unit (``percent``, ``bytes``,
        ``seconds``). ``raw=True`` keeps each converted column's text too, as ``NAME_raw``
        right after it. ``infer=False`` keeps every value as the text it was.
        """
        import pandas as pd

        from . import _parsing as parsing

        parse_one = parsing.parser_for(fmt, **options)
        name = parsing.get_format(fmt).name

        table = _Rows(self._items)
        errors: dict[str, str] = {}
        skipped: dict[str, str] = {}
        empty: list[str] = []
        failed: dict[str, str] = {}

        for r, label in zip(self._items, self.labels):
            if r.status is ExecStatus.SKIPPED:
                skipped[label] = r.error or "skipped"
                continue
            reason: str | None = None
            reason_hint = "see the result's .status and .error"
            cause: ParseError | None = None
            rows: list[dict[str, Any]] = []
            if r.status is ExecStatus.NOT_STARTED:
                reason = r.error or "not started"
                if not reason.startswith("not started"):
                    reason = f"not started: {reason}"
            elif r.status not in _COMPLETE:
                reason = f"{r.outcome}: the output is incomplete, not parsed"
            elif r.stdout_dropped:
                reason = f"output truncated: {_bytes(r.stdout_dropped)} not kept"
                if r.status is ExecStatus.FAILED:
                    reason = f"{r.outcome}; {reason}"
                reason_hint = (
                    "raise the capture limit (capture_limit, PodMagic.capture_limit), "
                    "or make the output smaller"
                )
            else:
                try:
                    rows = parse_one(r.stdout_text)
                except ParseError as exc:
                    cause = exc
                    reason = exc.detail
                    if r.status is ExecStatus.FAILED:
                        reason = f"{r.outcome}; {reason}"
                    reason_hint = "look at its raw output (.stdout_text), or choose another format"
            if reason is not None:
                if strict:
                    raise ParseError(
                        reason,
                        fmt=name,
                        pod=r.pod,
                        namespace=r.namespace,
                        container=r.container,
                        hint=reason_hint,
                    ) from cause
                errors[label] = reason
            if reason is not None:
                table.error(r, reason)
                continue
            if r.status is ExecStatus.FAILED:
                # Its output parsed, but the command failed: rows from a failed command are
                # not to be taken for a good answer in silence.
                failed[label] = r.outcome if rows else f"{r.outcome}, no rows"
            elif not rows:
                empty.append(label)
            table.add(r, rows)

        parsed_columns = table.columns[len(table.lead) :]
        frame = table.frame()
        if errors:
            frame["error"] = frame["error"].astype(_text_dtype())
        units: dict[str, str] = {}
        if infer:
            for column_name in parsed_columns:
                values = [v for v in frame[column_name] if not _missing(v)]
                if not values or not all(isinstance(v, str) for v in values):
                    continue
                if not any(v.strip() for v in values):
                    continue
                text_values = frame[column_name]
                try:
                    converted = pd.to_numeric(text_values)
                except (ValueError, TypeError):
                    typed = parsing.typed_column(str(column_name), list(text_values))
                    if typed is None:
                        continue
                    kind, numbers = typed
                    units[str(column_name)] = kind
                    whole = all(n is None or float(n).is_integer() for n in numbers)
                    converted = pd.Series(
                        [pd.NA if n is None else (int(n) if whole else n) for n in numbers]
                        if kind == "bytes" and whole
                        else [math.nan if n is None else n for n in numbers],
                        index=frame.index,
                        dtype="Int64" if kind == "bytes" and whole else "float64",
                    )
                frame[column_name] = converted
                if raw:
                    at = frame.columns.get_loc(column_name) + 1
                    frame.insert(at, f"{column_name}_raw", text_values.astype(_text_dtype()))
        frame.attrs["units"] = units
        frame.attrs["format"] = name
        frame.attrs["errors"] = errors
        frame.attrs["skipped"] = skipped
        frame.attrs["empty"] = empty
        frame.attrs["failed"] = failed
        frame.attrs[FRAME_MARK] = True
        return frame

    # -- display ---------------------------------------------------------------------------

    # The words and markup are the render room's (podmagic._render._summary); imported when
    # first shown, as podmagic._render imports this module.

    def __repr__(self) -> str:
        from ._render._summary import pod_results_repr

        return pod_results_repr(self)

    def __str__(self) -> str:
        from ._render._summary import summary_text

        return summary_text(self)

    def _repr_html_(self) -> str:
        from ._render._summary import summary_html

        return summary_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self) if cycle else str(self))


class _Rows:
    """The records of one DataFrame of rows from pods (:meth:`PodResults.parse`, and
    :meth:`PodResults.values_frame`): each row led by the columns that say where it came from
    (``pod``; ``context``, ``namespace``, ``container`` where the results differ in them),
    then its own columns in order of first appearance (one named like a leading column or
    ``error`` gets a ``_`` suffix); a pod with no rows may have one with an ``error``."""

    def __init__(self, items: Sequence[PodResult]) -> None:
        # context first: a run across contexts (Cluster.many, --context a --context b).
        self.lead = [n for n in ("context", "namespace") if len({getattr(r, n) for r in items}) > 1]
        self.lead.append("pod")
        if len({r.container for r in items}) > 1:
            self.lead.append("container")
        self.columns = list(self.lead)
        self._known = set(self.columns)
        self._reserved = {*self.lead, "error"}
        self._records: list[dict[str, Any]] = []
        self._errors = False

    def _where(self, result: PodResult) -> dict[str, Any]:
        return {key: getattr(result, key) for key in self.lead}

    def error(self, result: PodResult, reason: str) -> None:
        """The one row of a pod that gave none, saying why."""
        self._records.append({**self._where(result), "error": reason})
        self._errors = True

    def add(self, result: PodResult, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            record = self._where(result)
            for key, value in row.items():
                column = f"{key}_" if key in self._reserved else key
                if column not in self._known:
                    self._known.add(column)
                    self.columns.append(column)
                record[column] = value
            self._records.append(record)

    def frame(self) -> pd.DataFrame:
        """The DataFrame: the columns in order, ``error`` last when a pod has one."""
        import pandas as pd

        columns = self.columns + (["error"] if self._errors else [])
        return pd.DataFrame(self._records, columns=columns)


def note_where_ran(results: Iterable[PodResult], provenance: Provenance) -> None:
    """Mark each of a run's results with where it ran (the API server, the pod's uid), so
    that given as targets later they run there only."""
    uids = {(p.namespace, p.pod): p.uid for p in provenance.pods}
    for result in results:
        result._ran_at = (provenance.server, uids.get((result.namespace, result.pod)))


def _unpickled(
    items: tuple[PodResult, ...],
    history: tuple[PodResult, ...],
    provenance: Provenance | None = None,
    frame: pd.DataFrame | None = None,
) -> PodResults:
    results = PodResults(items)
    results._history = history
    results._provenance = provenance
    results._frame = frame
    return results


#: How many pods :func:`parse_problems` and :func:`check_parsed` name before "and N more".
MAX_PARSE_PROBLEMS = 10


def _listing(items: dict[str, str], limit: int, sep: str) -> list[str]:
    shown = [f"{label}{sep}{reason}" for label, reason in list(items.items())[:limit]]
    if len(items) > limit:
        shown.append(f"and {len(items) - limit} more")
    return shown


def parse_problems(frame: pd.DataFrame) -> str | None:
    """The pods a :meth:`PodResults.parse` frame has no parsed rows for, or whose command
    failed, in words.

    Lines like ``--parse json: 2 pods not parsed (their rows have an error):`` followed by one
    line per pod with the reason; the pods whose command exited non-zero (``web-1: exit 3``)
    and the skipped pods likewise; None when every pod that was to run succeeded and was
    parsed. ``%pod --parse`` shows this next to the DataFrame.
    """
    errors: dict[str, str] = frame.attrs.get("errors") or {}
    skipped: dict[str, str] = frame.attrs.get("skipped") or {}
    empty: list[str] = frame.attrs.get("empty") or []
    failed: dict[str, str] = frame.attrs.get("failed") or {}
    if not errors and not skipped and not empty and not failed:
        return None
    fmt = frame.attrs.get("format", "?")
    lines = []
    if errors:
        lines.append(
            f"--parse {fmt}: {len(errors)} {'pod' if len(errors) == 1 else 'pods'} not parsed "
            "(their rows have an error):"
        )
        lines += [f"  {line}" for line in _listing(errors, MAX_PARSE_PROBLEMS, ": ")]
    if failed:
        lines.append(
            f"--parse {fmt}: {len(failed)} {'pod' if len(failed) == 1 else 'pods'} failed "
            "(the command exited non-zero; what its output gave is kept):"
        )
        lines += [f"  {line}" for line in _listing(failed, MAX_PARSE_PROBLEMS, ": ")]
    if skipped:
        lines.append(
            f"--parse {fmt}: {len(skipped)} {'pod' if len(skipped) == 1 else 'pods'} skipped, "
            "no rows:"
        )
        lines += [f"  {line}" for line in _listing(skipped, MAX_PARSE_PROBLEMS, ": ")]
    if empty:
        shown = ", ".join(empty[:MAX_PARSE_PROBLEMS])
        if len(empty) > MAX_PARSE_PROBLEMS:
            shown += f" and {len(empty) - MAX_PARSE_PROBLEMS} more"
        lines.append(
            f"--parse {fmt}: {len(empty)} {'pod' if len(empty) == 1 else 'pods'} gave no rows "
            f"(no records in the output): {shown}"
        )
    return "\n".join(lines)


def check_parsed(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` if every pod that ran succeeded and was parsed; raise
    :class:`~podmagic.ParseError` naming those that were not parsed or whose command failed
    (a non-zero exit, even when its output parsed), otherwise.

    ``frame`` comes from :meth:`PodResults.parse`. Skipped pods do not count: they ran
    nothing (``PodResults.check()`` is what fails a run where none ran).
    """
    errors: dict[str, str] = frame.attrs.get("errors") or {}
    failed: dict[str, str] = frame.attrs.get("failed") or {}
    if not errors and not failed:
        return frame
    parts = []
    hints = []
    for what, items in (("not parsed", errors), ("failed", failed)):
        if not items:
            continue
        named = [f"{label} ({reason})" for label, reason in items.items()]
        if len(named) > MAX_PARSE_PROBLEMS:
            named[MAX_PARSE_PROBLEMS:] = [f"and {len(named) - MAX_PARSE_PROBLEMS} more"]
        parts.append(
            f"{len(items)} {'pod' if len(items) == 1 else 'pods'} {what}: " + "; ".join(named)
        )
    if errors:
        hints.append("the frame's error column (and .attrs['errors']) says why for each pod")
    if failed:
        hints.append("their rows are kept; .attrs['failed'] names how each command ended")
    raise ParseError(" — ".join(parts), fmt=frame.attrs.get("format"), hint="; ".join(hints))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text_dtype() -> Any:
    """The text dtype pandas itself would infer (``str`` on pandas 3), NaN for missing."""
    import numpy as np
    import pandas as pd

    try:
        return pd.StringDtype(na_value=np.nan)
    except TypeError:  # pandas < 2.3
        return object

"""The terminal view: every output line printed as ``web-1 | text`` as it arrives.

Everything this view prints that podmagic did not write itself (pod output, error messages,
names, the summary) goes through :func:`~podmagic._safe_text.visible_controls`: a pod's escape
sequences show as ``^[`` text and never act on the terminal; only podmagic's own colours do.

Events arrive on the engine's loop thread and ``close()`` may come from another; one lock
keeps their writes whole and in order. Nothing is buffered beyond partial lines and each
pod's tail, so memory stays bounded whatever the pods print.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, TextIO

from .._channels import STDERR, STDOUT
from .._events import PodFinished, PodOutput, PodStarted, RunFinished, RunStarted
from .._safe_text import visible_controls
from ._base import (
    ANSI_ERROR,
    ANSI_RESET,
    DEFAULT_LIMITS,
    ErrorLog,
    Labeller,
    Line,
    LineSplitter,
    PodLog,
    RenderLimits,
    RunFacts,
    ansi_colour,
    early_end_note,
    hidden_marker,
    key_of,
    partial_results,
)
from ._labels import PodKey

if TYPE_CHECKING:
    from .._events import Event
    from .._results import PodResult, PodResults

__all__ = ["TextRenderer"]


def _end_detail(result: PodResult) -> str:
    """``exit 1``, or ``timeout: after 5s``; an error that already starts with the outcome
    (``exit 127: command not found …``) is not prefixed with it twice."""
    outcome = result.outcome
    error = result.error
    if not error:
        return outcome
    if error == outcome or error.startswith(f"{outcome}:"):
        return error
    return f"{outcome}: {error}"


def _wants_colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


class _Pod:
    __slots__ = ("log", "splitters")

    def __init__(self, limits: RenderLimits) -> None:
        self.log = PodLog(limits, keep_head=False)
        # overwrite=False: a lone \r is shown (as ^M), so no line can hide what came before it.
        self.splitters = {
            STDOUT: LineSplitter(limits.max_line_length, overwrite=False),
            STDERR: LineSplitter(limits.max_line_length, overwrite=False),
        }


class TextRenderer:
    """Prefixed text for terminal IPython and plain Python.

    Prints a header when the run starts, then each complete line as ``web-1 | text`` (stderr
    as ``web-1 ! text``), the pod names padded to the longest. After a pod's first
    ``head_lines`` lines, its lines are only counted and its last ``tail_lines`` kept; they
    are printed when the pod finishes, after ``… N lines hidden …``. When the run ends, the
    results' summary is printed.

    ``colour=None`` colours pod names when ``stream`` is a terminal (``NO_COLOR`` and
    ``FORCE_COLOR`` are honoured).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        limits: RenderLimits = DEFAULT_LIMITS,
        colour: bool | None = None,
        show_header: bool = True,
        show_summary: bool = True,
    ) -> None:
        self.limits = limits
        self._stream: TextIO = stream if stream is not None else sys.stdout
        self.colour = _wants_colour(self._stream) if colour is None else colour
        self.show_header = show_header
        self.show_summary = show_summary
        self._lock = threading.Lock()
        self._labeller = Labeller()
        self._pods: dict[PodKey, _Pod] = {}
        self._finished: dict[PodKey, PodResult] = {}
        self._facts: RunFacts | None = None
        self._results: PodResults | None = None
        self._closed = False
        self._errors = ErrorLog()
        self.lines_received = 0
        self.bytes_received = 0

    # -- the Renderer protocol ------------------------------------------------------------

    def handle_event(self, event: Event) -> None:
        """Print what ``event`` completes. Never raises: failures are logged."""
        try:
            with self._lock:
                if self._closed:
                    return
                out: list[str] = []
                if isinstance(event, PodOutput):
                    self._on_output(event, out)
                elif isinstance(event, PodStarted):
                    self._on_started(event, out)
                elif isinstance(event, PodFinished):
                    self._on_finished(event.result, out)
                elif isinstance(event, RunStarted):
                    self._on_run_started(event, out)
                elif isinstance(event, RunFinished):
                    self._on_run_finished(event.results, out)
                else:
                    raise TypeError(f"not a podmagic event: {type(event).__name__}")
                self._write(out)
        except Exception:  # noqa: BLE001 - an exception here would break the engine's run
            self._errors.report(f"handling {type(event).__name__}")

    def close(self) -> None:
        """Print the partial lines and tails still held, and a summary if the run did not
        report its results. Idempotent."""
        try:
            with self._lock:
                if self._closed:
                    return
                self._closed = True
                out: list[str] = []
                self._finish_all(out)
                if self._results is None and self._finished and self.show_summary:
                    total = self._facts.execs if self._facts else None
                    out.append("")
                    out.append(early_end_note(len(self._finished), total))
                    out.append(visible_controls(str(partial_results(self._finished.values()))))
                self._write(out)
        except Exception:  # noqa: BLE001 - closing a view must not hide the run's outcome
            self._errors.report("close")

    # -- events ---------------------------------------------------------------------------

    def _on_run_started(self, event: RunStarted, out: list[str]) -> None:
        self._facts = RunFacts.from_event(event)
        self._labeller.configure(self._facts.keys)
        if self.show_header:
            out.append(visible_controls(self._facts.text()))

    def _pod(self, key: PodKey) -> _Pod:
        pod = self._pods.get(key)
        if pod is None:
            pod = self._pods[key] = _Pod(self.limits)
        return pod

    def _on_started(self, event: PodStarted, out: list[str]) -> None:
        key = key_of(event.target)
        if self._finished.pop(key, None) is not None:
            # The engine retries: the same exec starts again after a failed attempt.
            self._finish_pod(key, out)
            out.append(f"{self._prefix(key, '↻')}retrying")
        self._pod(key)

    def _on_output(self, event: PodOutput, out: list[str]) -> None:
        data = event.data
        stream = STDERR if event.stream == STDERR else STDOUT
        self.bytes_received += len(data)
        key = key_of(event.target)
        pod = self._pod(key)
        lines = pod.splitters[stream].feed(data)
        self._add_lines(key, pod, stream, lines, out)

    def _add_lines(
        self, key: PodKey, pod: _Pod, stream: int, lines: list[str], out: list[str]
    ) -> None:
        self.lines_received += len(lines)
        for text in lines:
            if pod.log.add(Line(stream, text)):
                out.append(self._format(key, stream, text))

    def _on_finished(self, result: PodResult, out: list[str]) -> None:
        key = key_of(result)
        self._finish_pod(key, out)
        self._finished[key] = result
        if not result.ok:
            out.append(
                f"{self._prefix(key, '✗', error=True)}{visible_controls(_end_detail(result))}"
            )

    def _on_run_finished(self, results: PodResults, out: list[str]) -> None:
        self._results = results
        self._finish_all(out)
        if self.show_summary:
            out.append("")
            out.append(visible_controls(str(results)))

    def _finish_all(self, out: list[str]) -> None:
        for key in list(self._pods):
            self._finish_pod(key, out)

    def _finish_pod(self, key: PodKey, out: list[str]) -> None:
        pod = self._pods.pop(key, None)
        if pod is None:
            return
        for stream in (STDOUT, STDERR):
            self._add_lines(key, pod, stream, pod.splitters[stream].finish(), out)
        hidden, tail = pod.log.take_tail()
        if hidden:
            out.append(f"{self._prefix(key, '|')}{hidden_marker(hidden)}")
        for line in tail:
            out.append(self._format(key, line.stream, line.text))

    # -- formatting -----------------------------------------------------------------------

    def _prefix(self, key: PodKey, marker: str, *, error: bool = False) -> str:
        label = visible_controls(self._labeller.label(key)).ljust(self._labeller.width)
        if not self.colour:
            return f"{label} {marker} "
        if error:
            marker = f"{ANSI_ERROR}{marker}{ANSI_RESET}"
        return f"{ansi_colour(key[1])}{label}{ANSI_RESET} {marker} "

    def _format(self, key: PodKey, stream: int, text: str) -> str:
        marker = self._prefix(key, "!", error=True) if stream == STDERR else self._prefix(key, "|")
        return marker + visible_controls(text)

    def _write(self, out: list[str]) -> None:
        if not out:
            return
        self._stream.write("\n".join(out) + "\n")
        self._stream.flush()

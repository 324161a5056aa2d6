"""The ipywidgets-only Jupyter view, used when anywidget is missing (``choose_renderer``
prefers the front-end view of ``_live``, which sends only new lines; its docstring lists the
``data-podmagic`` selectors browser tests use): one display slot with a header, a progress
line, the combined live stream and one view per pod, replaced by the static summary when the
run ends.

Threads, and why it is safe:

* ``handle_event`` runs on the engine's event-loop thread. It only decodes, caps and appends
  to plain Python buffers under ``_lock`` (held for microseconds) and arms a timer. It never
  touches a widget, so the loop is never slowed by comm traffic.
* Widgets are written only by ``_flush``, which runs on a short-lived ``threading.Timer``
  thread (or on the thread calling ``close()``), serialised by ``_flush_lock``. A flush runs at
  most ``max_updates_per_second`` times a second, and less often when a flush was large (see
  ``_MAX_BYTES_PER_SECOND``), so the browser's load does not grow with the output rate.
  Widget state messages are comm messages on the kernel's IOPub socket, which ipykernel lets
  any thread send; nothing here uses ``with output:``, whose routing depends on the thread
  and on which cell is running.
* The view is one display slot created by ``display(..., display_id=True)`` while the cell
  that starts the run is executing. Every later change either updates widget state or
  updates that slot by its display id, so output of a background run can never land in the
  cell that happens to be running when it arrives.
* The per-pod picker switches views in the browser (``jslink``): a kernel busy running a
  blocking cell does not process widget messages, and the picker must work while it runs.
"""

from __future__ import annotations

import html
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._channels import STDERR, STDOUT, Stream
from .._events import PodOutput, PodStarted, RunStarted
from .._results import ExecStatus
from .._safe_text import visible_controls
from ._base import (
    DEFAULT_LIMITS,
    ERROR_COLOUR,
    ErrorLog,
    Labeller,
    Line,
    LineSplitter,
    PodLog,
    RenderLimits,
    RunFacts,
    early_end_note,
    hidden_marker,
    key_of,
    partial_results,
    pod_colour,
    strip_ansi,
    summary_bundle,
)
from ._flush import FlushTimer, TimedView
from ._labels import PodKey

if TYPE_CHECKING:
    from collections.abc import Mapping

    from IPython.display import DisplayHandle

    from .._results import PodResult, PodResults

__all__ = ["WidgetRenderer"]

#: Past this many bytes of widget state a second, flushes are spaced further apart.
_MAX_BYTES_PER_SECOND = 2_000_000
#: While a run is going, the elapsed time is refreshed this often even without output.
_TICK_SECONDS = 1.0

_BOX_STYLE = (
    "max-height: 24em; overflow: auto; display: flex; flex-direction: column-reverse; "
    "border: 1px solid rgba(128, 128, 128, 0.3); padding: 2px 4px"
)


def _scroll_box(body: str) -> str:
    # column-reverse keeps the box scrolled to its bottom, where new lines appear.
    return f'<div style="{_BOX_STYLE}"><pre style="margin: 0">{body}</pre></div>'


def _escape_line(text: str) -> str:
    # A pod's colours are dropped; its other control characters are shown (^G), not hidden.
    return html.escape(visible_controls(strip_ansi(text)), quote=False)


def _note(text: str) -> str:
    return f'<span style="opacity: 0.6">{html.escape(text)}</span>'


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


class _Pod:
    """One exec's buffers. Guarded by the renderer's ``_lock``."""

    __slots__ = ("label", "log", "prefixes", "result", "splitters", "started", "version")

    def __init__(self, label: str, colour: str, width: int, limits: RenderLimits) -> None:
        self.label = label
        self.log = PodLog(limits)
        self.splitters = {
            STDOUT: LineSplitter(limits.max_line_length),
            STDERR: LineSplitter(limits.max_line_length),
        }
        name = html.escape(label.ljust(width))
        coloured = f'<span style="color: {colour}">{name}</span>'
        self.prefixes = {
            STDOUT: f"{coloured} | ",
            STDERR: f'{coloured} <span style="color: {ERROR_COLOUR}">!</span> ',
        }
        self.result: PodResult | None = None
        self.started = False
        self.version = 0


@dataclass
class _PodSnapshot:
    key: PodKey
    label: str
    version: int
    head: list[Line]
    hidden: int
    tail: list[Line]
    total: int
    status: str
    failed: bool


@dataclass
class _Snapshot:
    header: str | None = None
    progress: tuple[int, int, int, str, str] = (0, 0, 0, "", "")
    combined: list[str] | None = None
    combined_dropped: int = 0
    new_pods: list[tuple[PodKey, str]] = field(default_factory=list)
    pods: list[_PodSnapshot] = field(default_factory=list)


class WidgetRenderer(TimedView):
    """A live ipywidgets view of a run, throttled and capped; a static summary at the end.

    Construct it on the kernel's main thread while the cell that starts the run executes:
    with ``display=True`` it shows itself there at once (one display slot). Pass its
    ``handle_event`` to the engine as ``on_event``. When ``RunFinished`` arrives the slot is
    replaced by the results' summary (``text/plain`` and ``text/html``), so a saved notebook
    shows it without widget state; ``close()`` does the same if the run ends without results,
    and is safe to call in any case (idempotent). ``show_summary=False`` empties the slot
    instead, for a caller that displays the results itself.

    With ``display=False`` nothing is displayed or replaced: show ``widget`` yourself.

    For tests and diagnostics: ``updates_sent`` counts flushes that changed a widget,
    ``lines_received`` and ``bytes_received`` the output taken in.
    """

    def __init__(
        self,
        *,
        limits: RenderLimits = DEFAULT_LIMITS,
        display: bool = True,
        show_summary: bool = True,
    ) -> None:
        import ipywidgets as widgets

        self.limits = limits
        self.show_summary = show_summary
        self.updates_sent = 0
        self.lines_received = 0
        self.bytes_received = 0
        self._errors = ErrorLog()

        # -- data, written by handle_event (loop thread) under _lock -------------------------
        self._lock = threading.Lock()
        self._labeller = Labeller()
        self._facts: RunFacts | None = None
        self._facts_version = 0
        self._pods: dict[PodKey, _Pod] = {}
        self._order: list[PodKey] = []
        self._combined: deque[str] = deque(maxlen=limits.max_total_lines)
        self._combined_total = 0
        self._combined_version = 0
        self._finished: dict[PodKey, PodResult] = {}
        self._results: PodResults | None = None
        self._run_clock: float | None = None
        self._end_clock: float | None = None
        self._closed = False
        # Flush scheduling, also under _lock.
        self._min_interval = 1.0 / limits.max_updates_per_second
        self._interval = self._min_interval
        self._last_flush = -math.inf
        self._timer = FlushTimer(self._on_timer)

        # -- what the widgets show, written only under _flush_lock --------------------------
        self._flush_lock = threading.Lock()
        self._finalized = False
        self._shown_facts = -1
        self._shown_combined = -1
        self._shown_pods: dict[PodKey, int] = {}
        self._shown_progress: tuple[int, int, int, str, str] | None = None
        self._pod_views: dict[PodKey, Any] = {}
        self._view_labels: dict[PodKey, str] = {}

        self._header = widgets.HTML(value=_note("podmagic: starting…"))
        self._bar = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="40%"))
        self._progress = widgets.HTML(value="")
        self._stream_view = widgets.HTML(value=_scroll_box(_note("waiting for output…")))
        self._picker = widgets.Dropdown(options=[], description="pod")
        self._stack = widgets.Stack(children=[])
        self._link = widgets.jslink((self._picker, "index"), (self._stack, "selected_index"))
        self._tabs = widgets.Tab(
            children=[self._stream_view, widgets.VBox([self._picker, self._stack])],
            titles=("all pods", "one pod"),
        )
        self.widget = widgets.VBox(
            [self._header, widgets.HBox([self._bar, self._progress]), self._tabs]
        )
        """The root widget of the live view."""

        self.display_handle: DisplayHandle | None = None
        if display:
            from IPython import display as ipython_display

            show: Any = ipython_display.display  # untyped in IPython
            # The widget's text/plain fallback ("VBox(children=...)") would be all that a saved
            # notebook without widget state shows; an empty one shows nothing. It also keeps
            # the output identical before and after the slot is emptied (nbval compares it).
            bundle = dict(self.widget._repr_mimebundle_() or {})
            bundle["text/plain"] = ""
            self.display_handle = show(bundle, raw=True, display_id=True)

    @property
    def pod_views(self) -> Mapping[str, Any]:
        """Each exec's own view (an ``ipywidgets.HTML``), by its label (``web-1``)."""
        with self._flush_lock:
            return {self._view_labels[key]: view for key, view in self._pod_views.items()}

    # -- the Renderer protocol ------------------------------------------------------------

    def _on_run_finished(self, results: PodResults, now: float) -> None:
        self._results = results
        self._end_clock = now
        for key in list(self._pods):
            self._finish_pod(key)

    def _on_close_locked(self) -> None:
        if self._end_clock is None:
            self._end_clock = time.monotonic()

    def _next_flush_locked(self, now: float) -> float:
        return max(now, self._last_flush + self._interval)

    # -- events (under _lock, on the loop thread) ----------------------------------------

    def _on_run_started(self, event: RunStarted, now: float) -> None:
        facts = RunFacts.from_event(event)
        self._facts = facts
        self._facts_version += 1
        self._run_clock = now
        self._labeller.configure(facts.keys)
        for key in facts.keys:
            self._pod(key)

    def _pod(self, key: PodKey) -> _Pod:
        pod = self._pods.get(key)
        if pod is None:
            label = self._labeller.label(key)
            pod = _Pod(label, pod_colour(key[1]), self._labeller.width, self.limits)
            self._pods[key] = pod
            self._order.append(key)
        return pod

    def _on_started(self, event: PodStarted) -> None:
        key = key_of(event.target)
        pod = self._pod(key)
        if self._finished.pop(key, None) is not None:
            # The engine retries: the same exec starts again after a failed attempt.
            self._finish_pod(key)
            pod.result = None
            self._add_line(pod, STDERR, "↻ retrying")
        pod.started = True
        pod.version += 1

    def _on_output(self, event: PodOutput) -> bool:
        data = event.data
        self.bytes_received += len(data)
        stream = STDERR if event.stream == STDERR else STDOUT
        pod = self._pod(key_of(event.target))
        lines = pod.splitters[stream].feed(data)
        for text in lines:
            self._add_line(pod, stream, text)
        self.lines_received += len(lines)
        return bool(lines)

    def _add_line(self, pod: _Pod, stream: Stream, text: str) -> None:
        escaped = _escape_line(text)
        if stream == STDERR:
            escaped = f'<span style="color: {ERROR_COLOUR}">{escaped}</span>'
        pod.log.add(Line(stream, escaped))
        pod.version += 1
        self._combined.append(pod.prefixes[stream] + escaped)
        self._combined_total += 1
        self._combined_version += 1

    def _finish_pod(self, key: PodKey) -> None:
        pod = self._pods[key]
        for stream in (STDOUT, STDERR):
            lines = pod.splitters[stream].finish()
            for text in lines:
                self._add_line(pod, stream, text)
            self.lines_received += len(lines)

    def _on_finished(self, result: PodResult) -> None:
        key = key_of(result)
        pod = self._pod(key)
        self._finish_pod(key)
        pod.result = result
        pod.version += 1
        self._finished[key] = result

    # -- scheduling (under _lock) -------------------------------------------------------------

    def _running_locked(self) -> bool:
        return self._run_clock is not None and self._end_clock is None and not self._closed

    def _next_tick_locked(self) -> float | None:
        # While a run is going the elapsed time is refreshed even without output.
        return self._last_flush + _TICK_SECONDS if self._running_locked() else None

    # -- flushing (widgets are written only here) ---------------------------------------------

    def _snapshot_locked(self) -> _Snapshot:
        snap = _Snapshot()
        facts = self._facts
        if facts is not None and self._facts_version != self._shown_facts:
            snap.header = facts.html()
            self._shown_facts = self._facts_version

        results = self._results
        if results is not None:
            ran = [r for r in results if r.status is not ExecStatus.SKIPPED]
            done = total = len(ran)
            failed = len(results.failed)
        else:
            done = len(self._finished)
            failed = sum(1 for r in self._finished.values() if not r.ok)
            total = facts.execs if facts is not None else len(self._pods)
            total = max(total, len(self._pods))
        if self._run_clock is None:
            elapsed = ""
        else:
            end = self._end_clock if self._end_clock is not None else time.monotonic()
            elapsed = _seconds(end - self._run_clock)
        style = "danger" if failed else ("success" if results is not None else "")
        snap.progress = (done, total, failed, elapsed, style)

        if self._combined_version != self._shown_combined:
            snap.combined = list(self._combined)
            snap.combined_dropped = self._combined_total - len(self._combined)
            self._shown_combined = self._combined_version

        for key in self._order:
            if key not in self._shown_pods:
                snap.new_pods.append((key, self._pods[key].label))
            pod = self._pods[key]
            if self._shown_pods.get(key) == pod.version:
                continue
            self._shown_pods[key] = pod.version
            if pod.result is not None:
                result = pod.result
                status = result.outcome
                if result.duration is not None:
                    status += f" in {_seconds(result.duration)}"
                if result.error:
                    # "exit 127: command not found": the outcome is already said above.
                    status += f" — {result.error.removeprefix(result.outcome + ': ')}"
                failed_pod = not result.ok
            else:
                status = "running" if pod.started else "waiting"
                failed_pod = False
            snap.pods.append(
                _PodSnapshot(
                    key=key,
                    label=pod.label,
                    version=pod.version,
                    head=list(pod.log.head),
                    hidden=pod.log.hidden,
                    tail=list(pod.log.tail),
                    total=pod.log.total,
                    status=status,
                    failed=failed_pod,
                )
            )
        return snap

    def _flush(self) -> None:
        with self._flush_lock:
            if not self._finalized:
                self._flush_locked()

    def _flush_locked(self) -> None:
        with self._lock:
            self._last_flush = time.monotonic()
            snap = self._snapshot_locked()
        changed, payload = self._apply(snap)
        if changed:
            self.updates_sent += 1
        with self._lock:
            # A big redraw spaces the next one out: bytes per second stay bounded.
            self._interval = max(self._min_interval, payload / _MAX_BYTES_PER_SECOND)

    def _apply(self, snap: _Snapshot) -> tuple[bool, int]:
        """Write the snapshot into the widgets; returns (anything changed, bytes sent)."""
        import ipywidgets as widgets

        changed = False
        payload = 0

        def put(widget: Any, value: str) -> None:
            nonlocal changed, payload
            if widget.value != value:
                widget.value = value
                changed = True
                payload += len(value)

        if snap.header is not None:
            put(self._header, snap.header)

        if snap.progress != self._shown_progress:
            self._shown_progress = snap.progress
            done, total, failed, elapsed, style = snap.progress
            with self._bar.hold_sync():
                self._bar.max = total
                self._bar.value = min(done, total)
                self._bar.bar_style = style
            text = f"{done} / {total} done"
            if failed:
                text += f' · <span style="color: {ERROR_COLOUR}">{failed} failed</span>'
            if elapsed:
                text += f" · {elapsed}"
            put(self._progress, text)
            changed = True

        if snap.combined is not None:
            body = "\n".join(snap.combined)
            if snap.combined_dropped:
                note = _note(
                    f"… {snap.combined_dropped} earlier lines not shown here; "
                    "each pod's first and last lines are under “one pod” …"
                )
                body = f"{note}\n{body}"
            put(self._stream_view, _scroll_box(body or _note("waiting for output…")))

        if snap.new_pods:
            for key, label in snap.new_pods:
                self._pod_views[key] = widgets.HTML(value="")
                self._view_labels[key] = label
            index = self._picker.index if self._picker.options else 0
            self._stack.children = list(self._pod_views.values())
            self._picker.options = list(self._view_labels.values())
            self._picker.index = index
            self._stack.selected_index = index
            changed = True

        for pod in snap.pods:
            put(self._pod_views[pod.key], self._render_pod(pod))

        return changed, payload

    @staticmethod
    def _render_pod(pod: _PodSnapshot) -> str:
        colour = ERROR_COLOUR if pod.failed else pod_colour(pod.key[1])
        lines = [line.text for line in pod.head]
        if pod.hidden:
            lines.append(_note(hidden_marker(pod.hidden)))
        lines.extend(line.text for line in pod.tail)
        count = f"{pod.total} line{'' if pod.total == 1 else 's'}"
        title = (
            f'<b style="color: {pod_colour(pod.key[1])}">{html.escape(pod.label)}</b>'
            f' · <span style="color: {colour}">{html.escape(pod.status)}</span> · {count}'
        )
        body = "\n".join(lines) if lines else _note("no output yet")
        return f"<div>{title}</div>{_scroll_box(body)}"

    # -- the end ------------------------------------------------------------------------------

    def _finalize(self) -> None:
        with self._lock:
            # No event is taken and no timer armed from here on.
            self._closed = True
            self._timer.cancel()
            if self._end_clock is None:
                self._end_clock = time.monotonic()
            if self._results is None:
                for key in list(self._pods):
                    self._finish_pod(key)
        with self._flush_lock:
            if self._finalized:
                return
            self._flush_locked()
            self._finalized = True
            handle = self.display_handle
            if handle is None:
                return  # the caller displays the widget and owns what happens next
            with self._lock:
                results, finished = self._results, list(self._finished.values())
                total = self._facts.execs if self._facts is not None else None
            if not self.show_summary:
                bundle = {"text/plain": ""}
            elif results is not None:
                bundle = summary_bundle(results)
            else:
                bundle = summary_bundle(
                    partial_results(finished), early_end_note(len(finished), total)
                )
            update: Any = handle.update  # untyped in IPython
            update(bundle, raw=True)
            self._close_widgets()

    def _close_widgets(self) -> None:
        """Free the widgets' comms: the slot shows the static summary now."""
        for view in self._pod_views.values():
            view.close()
        self._link.close()
        for widget in (
            self._header,
            self._bar,
            self._progress,
            self._stream_view,
            self._picker,
            self._stack,
            self._tabs.children[1],
            self._tabs,
            self.widget.children[1],
            self.widget,
        ):
            widget.close()

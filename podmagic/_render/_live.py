"""The Jupyter live view as a front-end widget: the kernel sends only what is new.

The view is an `anywidget <https://anywidget.dev>`_ widget with its own small JavaScript
front end (``static/live.js``, plain ES module, no build step; ``static/live.css``). It works
wherever ipywidgets 8 does (JupyterLab, Notebook 7, VS Code, Colab).

What goes over the wire:

* **Traitlets** (widget state) hold what changes rarely: the run header, each pod's status
  chip, the progress counts, the run's state, start and end times (the browser ticks the
  elapsed time itself from those) and the colour palettes. Their values at the view's first
  showing travel in the ``comm_open`` that creates the model, beside the view's code (sent
  once a run, with its comments and indentation left out).
* **One custom message per flush** carries everything new since the previous one: the lines
  that arrived and the state that changed. Every Jupyter message costs about 600 bytes of
  envelope (header, parent header, comm id), so a flush sends one message, never an
  ``update`` beside it: ``{"k": "batch", "s": index of the first line, "g": [pod, stream,
  count, ...], "st": {changed traitlets}}`` with the lines' texts, joined by newlines, as one
  UTF-8 binary buffer (no JSON escaping; ``g`` counts the lines of each run of one pod and
  stream). The front end applies ``st`` to its model itself; the kernel's traitlets take the
  same values without an ``update`` message of their own, so a view that connects later gets
  them with the model. A batch holds at most ``max_total_lines`` lines (the view would drop
  older ones anyway); ``s`` tells the view how many were skipped.
* Flushes come at most ``RenderLimits.max_updates_per_second`` times a second, and fewer
  when output is slow: a batch is sent once it holds ``BATCH_BYTES`` of text, or once its
  first change has waited ``BATCH_WAIT`` seconds (half a second: still live), so short
  lines travel in a few large batches rather than many small ones. The run's end is sent at
  once.
* While the run goes on, a flush due only for the snapshot (every ``snapshot_every``
  seconds, ``beat_every`` in the model) that has nothing new to send sends ``{"k": "beat"}``:
  the view knows its kernel is there during a quiet run.
* Every model, once its code listens, sends ``{"k": "hello"}``: batches sent before then
  (right after the ``comm_open``, while the browser loads the view's code, or before a page
  was reloaded) never reached it. The kernel answers ``{"k": "snapshot", "s": ..., "g": ...,
  "now": kernel clock, "st": the state sent so far}`` with the newest ``max_total_lines``
  lines (which it keeps) in the same encoding.

In the browser the view keeps the newest ``max_total_lines`` lines (older ones are dropped
behind a "… N earlier lines dropped" marker), follows the tail until scrolled up, filters by
pod and by stream without asking the kernel, stops its clock and says so when its kernel is
gone while the run is running (``data-state="lost"``, the status reads "kernel restarted or
gone: run not finished"; the chips and progress keep their last state, dimmed): when the
widget manager marks the model's comm dead (a kernel restart in JupyterLab and Notebook 7),
when the model is closed, or after no message (beats included) for three beats (at least
15 s; "no word from the kernel for N s: ...", undone by the next message: a busy kernel
only). A person then sees that the run did not finish, never a clock ticking for a run that
no longer exists. The view colours pods by their order in the run from
a palette made for the theme's background (light or dark). It draws lines once per
animation frame, however many batches arrived since the last one; while it follows the tail
with no filter, only the newest 500 are in the DOM (a page that draws every line of fast
output falls seconds behind it: 20 pods × 5,000 lines did, by 19 s); scrolling up or
filtering draws the earlier ones kept above them, in place.

A run that ends within ``show_after`` seconds (``SHOW_AFTER``: 0.25) never builds the widget and displays
nothing but its summary: a fast ``%pod`` saves exactly one output. ``show_after=math.inf``
(what ``choose_renderer`` picks for nbconvert, papermill and nbval, where nobody watches)
never shows the widget: every run outputs only its summary, however long it takes.

Display slots: the view's slot and, after it, a snapshot slot. A run that ends with its cell
(a blocking ``%pod``) displays them when the view first shows, from the flush thread, in the
context of the cell that started it. A run that outlives its cell (``--bg``,
``outlives_cell=True``) must reserve them in that cell at once (empty): output displayed
after a cell has finished goes to whichever cell runs then, while updates by display id
reach a slot wherever it is. While the widget shows, the snapshot slot holds a
``text/plain`` + ``text/html`` picture of the run (header, counts, the newest lines),
refreshed a second after it first shows, then every ``snapshot_every`` seconds, so a notebook
saved mid-run (also in its first seconds) and reopened without
the kernel shows the latest state (nbconvert, GitHub, nbviewer, and JupyterLab, which never
falls back from a widget view to the bundle's other types). In the page the live view's CSS
hides the snapshot beside it, and the snapshot's own CSS hides the "model not found" of the
dead widget beside it. The snapshot lives in a slot of its own so that refreshing it never
re-renders the widget (JupyterLab builds a new view on every update of a widget's output).
At the end the view's slot shows the summary and the snapshot slot is emptied (the one empty
output a run that showed its view leaves; a display slot cannot be removed). The widget model
is closed then and the run's buffers are dropped: a finished view keeps no comm and no lines.
An interrupted run's model is closed when the next cell starts instead: a kernel restart
interrupts the run first, and a ``comm_close`` sent then reaches a page that has dropped its
comms ("Comm not found" in its console).
The model has no ``layout`` (``DOMWidget``'s default opens a second model and comm per view;
the front end skips a missing layout).

Selectors for browser tests (stable; every element of the view has one):

========================================  =====================================================
``[data-podmagic="live"]``                the view's root; ``data-state`` = running | done |
                                          failed | ended | lost (the kernel is gone),
                                          ``data-theme`` = light | dark
``[data-podmagic="header"]``              holds ``[data-podmagic="command"]`` (``$ uptime``)
                                          and ``[data-podmagic="where"]`` (context, target)
``[data-podmagic="status"]``              the run's state in words (running, done, failed)
``[data-podmagic="progress"]``            a ``<progress>``; ``[data-podmagic="progress-text"]``
                                          reads ``2 / 3 done · 1 failed``
``[data-podmagic="elapsed"]``             elapsed time, ``12.3 s``, ticking in the browser
``[data-podmagic="chips"]``               the row of chips:
``[data-podmagic="chip"]``                one per pod (``data-pod`` = label, ``data-index`` =
                                          order, ``data-status`` = queued | running | ok |
                                          failed | error | timeout | cancelled | skipped);
                                          clicking it filters to that pod (again: all pods).
                                          Past 24 pods, counts instead, until expanded:
``[data-podmagic="chip-count"]``          how many pods have one status (``data-status``),
                                          reads ``20 running``
``[data-podmagic="chips-toggle"]``        button: ``all 60 pods ▾`` shows every pod's chip
                                          (in a strip of bounded height), ``fewer ▴`` the
                                          counts again
``[data-podmagic="filter-pod"]``          ``<select>``: ``""`` (all pods) or a pod's index
``[data-podmagic="filter-stream"]``       ``<select>``: ``""`` (both), ``"1"`` stdout,
                                          ``"2"`` stderr
``[data-podmagic="follow"]``              button; ``aria-pressed="true"`` while following
``[data-podmagic="lines"]``               the scrolling box of lines
``[data-podmagic="line"]``                one line (``data-pod`` = index, ``data-stream`` =
                                          1 or 2; hidden by a filter: ``hidden`` attribute):
                                          label, `` | `` (stderr: `` ! ``), text
``[data-podmagic="line-pod"]``            in a line: the pod's label, in its colour
``[data-podmagic="line-text"]``           in a line: the text
``[data-podmagic="dropped"]``             the "… N earlier lines dropped" marker (while
                                          following: "… N earlier lines", the ones not drawn)
========================================  =====================================================
"""

from __future__ import annotations

import contextvars
import html
import math
import re
import threading
import time
import uuid
from collections import deque
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from .._channels import STDERR, STDOUT
from .._events import PodOutput, PodStarted, RunStarted
from .._safe_text import visible_controls
from ._base import (
    DEFAULT_LIMITS,
    ErrorLog,
    Labeller,
    LineSplitter,
    RenderLimits,
    RunFacts,
    early_end_note,
    key_of,
    partial_results,
    strip_ansi,
    summary_bundle,
)
from ._flush import FlushTimer, TimedView
from ._labels import PodKey

if TYPE_CHECKING:
    from IPython.display import DisplayHandle

    from .._results import PodResult, PodResults

__all__ = ["LIVE_PALETTES", "LiveRenderer"]

#: Pod colours of the live view, by the theme's background. Assigned by a pod's order in the
#: run (cycling only past twelve pods). Each colour has at least 4.5:1 contrast on its
#: theme's backgrounds (JupyterLab light: white and #f5f5f5; dark: #111 and #212121), they
#: differ pairwise in hue or lightness, none is the red of errors, and the first few are the
#: most distinct from one another (small runs are the common case). tests/test_live_view.py
#: computes all of this.
LIVE_PALETTES: dict[str, tuple[str, ...]] = {
    "light": (
        "#3971a3",
        "#bd02d4",
        "#b15204",
        "#105203",
        "#0305e8",
        "#712803",
        "#76258c",
        "#184669",
        "#058106",
        "#c51778",
        "#6d2ae4",
        "#726231",
    ),
    "dark": (
        "#0b96fa",
        "#91f553",
        "#fd6907",
        "#fc05fe",
        "#a1ecfd",
        "#f0a6d1",
        "#1fbd01",
        "#fdc758",
        "#fc3b93",
        "#27beb8",
        "#a29542",
        "#b57cfc",
    ),
}
#: Colour of stderr marks and failed chips, by theme (4.5:1 on the same backgrounds).
LIVE_ERROR_COLOURS: dict[str, str] = {"light": "#c62828", "dark": "#ff7b7b"}
#: The JupyterLab backgrounds the palettes are checked against.
THEME_BACKGROUNDS: dict[str, tuple[str, ...]] = {
    "light": ("#ffffff", "#f5f5f5"),
    "dark": ("#111111", "#212121"),
}

#: Lines the text/html snapshot of a running view shows (the newest ones).
_SNAPSHOT_LINES = 40

# A run shorter than this shows only its summary: a widget that flashes for 0.1 s and is
# replaced by the summary is noise, and a fast %pod should save exactly one output.
SHOW_AFTER = 0.25
#: The traitlets a batch's ``st`` may carry (what ``_state_locked`` makes).
_STATE_NAMES = ("header", "pods", "progress", "state", "started", "ended")
#: A batch of this much line text (bytes, about) goes out at the next allowed flush ...
BATCH_BYTES = 16_000
#: ... a smaller one once its first change has waited this long (seconds): about 600 bytes
#: of envelope per message weigh little on a batch of either size.
BATCH_WAIT = 0.5


def _clean(text: str) -> str:
    # Escape sequences dropped, other control characters shown (^G): the browser sets the
    # text with textContent, so no HTML escaping here.
    return visible_controls(strip_ansi(text))


def _compact_js(source: str) -> str:
    """``live.js`` without its comment lines, blank lines and indentation: every run's
    ``comm_open`` carries it. (Safe for that file: it has no multi-line string.)"""
    lines = (line.strip() for line in source.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//"))


def _compact_css(source: str) -> str:
    """``live.css`` without its comments, blank lines and indentation."""
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.DOTALL)
    return "\n".join(line.strip() for line in source.splitlines() if line.strip())


@cache
def _widget_class() -> type[Any]:
    """The anywidget class, built on first use (anywidget is imported only in a kernel)."""
    import anywidget
    import traitlets
    from ipywidgets import Layout, widget_serialization

    static = resources.files(__package__).joinpath("static")

    class PodmagicLiveView(anywidget.AnyWidget):
        """The live view's front-end model (see the module docstring)."""

        _esm = _compact_js(static.joinpath("live.js").read_text(encoding="utf-8"))
        _css = _compact_css(static.joinpath("live.css").read_text(encoding="utf-8"))
        run_id = traitlets.Unicode("").tag(sync=True)
        header = traitlets.Dict().tag(sync=True)
        pods: traitlets.List[list[str]] = traitlets.List().tag(sync=True)
        progress = traitlets.Dict().tag(sync=True)
        state = traitlets.Unicode("running").tag(sync=True)
        started = traitlets.Float(0.0).tag(sync=True)
        ended = traitlets.Float(0.0).tag(sync=True)
        max_lines = traitlets.Int(5000).tag(sync=True)
        # Seconds between the kernel's beats while the run goes on (see _flush): a view that
        # hears nothing for several of them takes the kernel for gone.
        beat_every = traitlets.Float(5.0).tag(sync=True)
        palette = traitlets.Dict().tag(sync=True)
        # No Layout model: the view styles itself (live.css), and DOMWidget's default layout
        # would open a second model and comm for every run.
        layout = traitlets.Instance(Layout, allow_none=True).tag(sync=True, **widget_serialization)

    return PodmagicLiveView


def _close_before_next_cell(widget: Any) -> None:
    """Close an interrupted run's widget when the next cell starts, not now.

    Restarting a kernel interrupts it first (SIGINT), then asks it to shut down: a model
    closed as the run ends would send its ``comm_close`` to a page that has already dropped
    its comms for the restart (JupyterLab logs "Comm not found"). After a plain interrupt the
    next cell closes it; a kernel that shuts down sends nothing. Outside IPython: now.
    """
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        widget.close()
        return

    def close(*_info: object) -> None:
        shell.events.unregister("pre_run_cell", close)
        widget.close()

    shell.events.register("pre_run_cell", close)


def _encode(lines: list[tuple[int, int, str]]) -> tuple[list[int], bytes]:
    """Lines as the view receives them: ``[pod, stream, count, ...]`` for each run of
    consecutive lines of one pod and stream, and all their texts joined by newlines as one
    UTF-8 buffer (a line never holds a newline: the splitters cut there)."""
    index: list[int] = []
    for pod, stream, _text in lines:
        if index and index[-3] == pod and index[-2] == stream:
            index[-1] += 1
        else:
            index += [pod, stream, 1]
    text = "\n".join(line[2] for line in lines)
    return index, text.encode("utf-8", "replace")


def _set_quietly(widget: Any, changes: dict[str, Any]) -> None:
    """Set the widget's traitlets to ``changes`` without the ``update`` message ipywidgets
    would send: the batch that carries them tells the front end. ``_lock_property`` is how
    ipywidgets takes state from the front end without echoing it back (values in their JSON
    form, which these are)."""
    with widget._lock_property(**changes):
        for name, value in changes.items():
            setattr(widget, name, value)


class _Pod:
    """One exec: its place in the run, its status, its line splitters. Under ``_lock``."""

    __slots__ = ("detail", "index", "label", "splitters", "status")

    def __init__(self, index: int, label: str, limits: RenderLimits) -> None:
        self.index = index
        self.label = label
        self.status = "queued"
        self.detail = ""
        self.splitters = {
            STDOUT: LineSplitter(limits.max_line_length),
            STDERR: LineSplitter(limits.max_line_length),
        }


class LiveRenderer(TimedView):
    """The live view of a run as a front-end widget; the summary replaces it at the end.

    Construct it on the kernel's main thread while the cell that starts the run executes:
    with ``display=True`` the widget and its snapshot are displayed in that cell once the run
    has lasted ``show_after`` seconds; a shorter run displays only its summary. With
    ``outlives_cell=True`` (a run that goes on after its cell has finished) the two slots are
    reserved, empty, in that cell at once. When the run ends the view's slot shows the
    results' summary (``text/plain`` and ``text/html``), or nothing with
    ``show_summary=False``: a caller that displays the results itself passes them to
    :meth:`replace_view` after ``close()``. ``close()`` is idempotent and safe from any thread.

    With ``display=False`` nothing is displayed: the widget (``widget``, ``None`` until the
    run has lasted ``show_after``) is yours to show.

    For tests and diagnostics: ``batches_sent`` counts the batch messages, ``bytes_sent``
    the custom messages' content (JSON) and buffers, ``lines_received`` and
    ``bytes_received`` the output taken in.
    """

    def __init__(
        self,
        *,
        limits: RenderLimits = DEFAULT_LIMITS,
        display: bool = True,
        show_summary: bool = True,
        show_after: float | None = None,
        snapshot_every: float = 5.0,
        outlives_cell: bool = False,
    ) -> None:
        self.limits = limits
        self.show_summary = show_summary
        self.show_after = SHOW_AFTER if show_after is None else show_after
        self.snapshot_every = snapshot_every
        self.batches_sent = 0
        self.bytes_sent = 0
        self.lines_received = 0
        self.bytes_received = 0
        self.widget: Any = None
        """The front-end widget, once the run has lasted ``show_after`` seconds."""
        self._errors = ErrorLog()
        self._run_id = uuid.uuid4().hex

        # -- data, written by handle_event (loop thread) under _lock ------------------------
        self._lock = threading.Lock()
        self._labeller = Labeller()
        self._facts: RunFacts | None = None
        self._pods: dict[PodKey, _Pod] = {}
        self._skipped: list[tuple[str, str]] = []
        self._tail: deque[tuple[int, int, str]] = deque(maxlen=limits.max_total_lines)
        self._pending: list[tuple[int, int, str]] = []
        self._lines_total = 0  # index of the next line
        self._pending_start = 0  # index of _pending[0]
        self._pending_bytes = 0  # text in _pending, about
        self._waiting_since: float | None = None  # the first change not sent yet
        self._finished: dict[PodKey, PodResult] = {}
        self._results: PodResults | None = None
        self._wall_start = 0.0
        self._wall_end = 0.0
        self._clock_start: float | None = None
        self._clock_end: float | None = None
        self._state_version = 0
        self._closed = False
        self._interval = 1.0 / limits.max_updates_per_second
        self._last_flush = -math.inf
        self._last_snapshot = -math.inf
        self._snapshots = 0  # shown so far
        self._timer = FlushTimer(self._on_timer)

        # -- what the browser has, written under _send_lock ----------------------------------
        self._send_lock = threading.Lock()
        self._shown_version = -1
        self._finalized = False

        self.display_handle: DisplayHandle | None = None
        """The view's display slot: the widget while it runs, then the summary."""
        self.snapshot_handle: DisplayHandle | None = None
        """The snapshot's display slot, after the view's: shown only where the widget is not."""
        self._snapshot_shown = False
        self._display = display
        # The starting cell's context: ipykernel 7 keeps the cell an output belongs to in a
        # context variable, which a flush thread would not see.
        self._context = contextvars.copy_context()
        if display and outlives_cell:
            # Reserved now, in the cell that starts the run: later updates find them by their
            # ids from any thread, even after the cell has finished.
            self.display_handle = self._display_new({"text/plain": ""})
            if math.isfinite(self.show_after):  # else the widget never shows: no snapshot either
                self.snapshot_handle = self._display_new({"text/plain": ""})

    # -- the Renderer protocol ------------------------------------------------------------

    def _on_run_finished(self, results: PodResults, now: float) -> None:
        self._results = results
        self._end_locked(now)

    # -- events (under _lock, on the loop thread) ----------------------------------------

    def _on_run_started(self, event: RunStarted, now: float) -> None:
        facts = RunFacts.from_event(event)
        self._facts = facts
        self._clock_start = now
        self._wall_start = time.time()
        self._labeller.configure(facts.keys)
        for key in facts.keys:
            self._pod(key)
        for skipped in getattr(event.selection, "skipped", ()):
            self._skipped.append((str(skipped.pod), str(getattr(skipped, "reason", ""))))
        self._state_version += 1

    def _pod(self, key: PodKey) -> _Pod:
        pod = self._pods.get(key)
        if pod is None:
            pod = _Pod(len(self._pods), self._labeller.label(key), self.limits)
            self._pods[key] = pod
            self._state_version += 1
        return pod

    def _on_started(self, event: PodStarted) -> None:
        key = key_of(event.target)
        pod = self._pod(key)
        if self._finished.pop(key, None) is not None:
            # The engine retries: the same exec starts again after a failed attempt.
            self._finish_lines(pod)
            self._add_line(pod, STDERR, "↻ retrying")
        pod.status, pod.detail = "running", ""
        self._state_version += 1

    def _on_output(self, event: PodOutput) -> bool:
        data = event.data
        self.bytes_received += len(data)
        stream = STDERR if event.stream == STDERR else STDOUT
        pod = self._pod(key_of(event.target))
        lines = pod.splitters[stream].feed(data)
        for text in lines:
            self._add_line(pod, stream, text)
        return bool(lines)

    def _add_line(self, pod: _Pod, stream: int, text: str) -> None:
        line = (pod.index, stream, _clean(text))
        self._tail.append(line)
        if not self._pending:
            self._pending_start = self._lines_total
        self._pending.append(line)
        self._pending_bytes += len(line[2]) + 1
        self._lines_total += 1
        self.lines_received += 1
        cap = self.limits.max_total_lines
        if len(self._pending) > 2 * cap:
            # The browser keeps only the newest `cap` lines: never queue much more than that.
            del self._pending[:-cap]
            self._pending_start = self._lines_total - len(self._pending)

    def _finish_lines(self, pod: _Pod) -> None:
        # No splitters left once the view has dropped its buffers (a second close()).
        for stream, splitter in pod.splitters.items():
            for text in splitter.finish():
                self._add_line(pod, stream, text)

    def _on_finished(self, result: PodResult) -> None:
        key = key_of(result)
        pod = self._pod(key)
        self._finish_lines(pod)
        pod.status = str(getattr(result.status, "value", result.status))
        detail = result.outcome
        if result.duration is not None:
            detail += f" in {result.duration:.1f} s"
        if result.error:
            detail += f" — {result.error.removeprefix(result.outcome + ': ')}"
        pod.detail = detail
        self._finished[key] = result
        self._state_version += 1

    def _end_locked(self, now: float) -> None:
        if self._clock_end is None:
            self._clock_end = now
            self._wall_end = time.time()
        for pod in self._pods.values():
            self._finish_lines(pod)
        self._state_version += 1

    # -- scheduling (under _lock) -------------------------------------------------------------

    def _next_flush_locked(self, now: float) -> float:
        if self._waiting_since is None:
            self._waiting_since = now
        due = max(now, self._last_flush + self._interval)
        if self._pending_bytes < BATCH_BYTES:
            # A small batch waits for more (or BATCH_WAIT): fewer envelopes on short lines.
            due = max(due, self._waiting_since + BATCH_WAIT)
        if self.widget is None and self._clock_start is not None:
            due = max(due, self._clock_start + self.show_after)  # inf: never (no live view)
        return due

    def _next_tick_locked(self) -> float | None:
        # The fallback snapshot is refreshed even while no output arrives.
        if self.widget is None or self._closed:
            return None
        return self._last_snapshot + self._snapshot_interval_locked()

    def _snapshot_interval_locked(self) -> float:
        # The first refresh comes a second after the view shows: a notebook saved in a run's
        # first seconds then holds its first lines, not only the header of its start.
        return min(1.0, self.snapshot_every) if self._snapshots == 1 else self.snapshot_every

    # -- sending (the widget is written only here, under _send_lock) --------------------------

    def _flush(self, *, final: bool = False) -> None:
        with self._send_lock:
            if self._finalized:
                return
            with self._lock:
                now = time.monotonic()
                self._last_flush = now
                started = self._clock_start
                if self.widget is None and (
                    final or started is None or now - started < self.show_after
                ):
                    return  # a short run goes straight to its summary
                batch, start = self._pending, self._pending_start
                self._pending = []
                self._pending_bytes = 0
                self._waiting_since = None
                cap = self.limits.max_total_lines
                if len(batch) > cap:
                    # Older ones would be dropped by the view at once: not sent at all.
                    start += len(batch) - cap
                    batch = batch[-cap:]
                state = self._state_locked() if self._state_version != self._shown_version else None
                self._shown_version = self._state_version
                snapshot_due = now - self._last_snapshot >= self._snapshot_interval_locked()
                if snapshot_due:
                    self._last_snapshot = now
                    self._snapshots += 1
            created = False
            if self.widget is None:
                # The state so far travels in the comm_open, not in a message after it.
                self.widget = _widget_class()(
                    run_id=self._run_id,
                    max_lines=self.limits.max_total_lines,
                    beat_every=self.snapshot_every,
                    palette={
                        "pods": {k: list(v) for k, v in LIVE_PALETTES.items()},
                        "error": LIVE_ERROR_COLOURS,
                    },
                    **(state or {}),
                )
                self.widget.on_msg(self._on_message)
                created = True
                state = None
            changed = {
                name: value
                for name, value in (state or {}).items()
                if getattr(self.widget, name) != value
            }
            if batch or changed:
                message: dict[str, Any] = {"k": "batch"}
                buffers: list[bytes] = []
                if batch:
                    index, text = _encode(batch)
                    message.update(s=start, g=index)
                    buffers.append(text)
                if changed:
                    message["st"] = changed
                    _set_quietly(self.widget, changed)
                self._send(message, buffers)
            elif snapshot_due and not created:
                # Nothing new, but the view hears the kernel is there (a quiet run).
                self._send({"k": "beat"}, [])
            if created:
                self._show_widget()
            if created or snapshot_due:
                self._show_snapshot()

    def _send(self, message: dict[str, Any], buffers: list[bytes]) -> None:
        import json

        self.widget.send(message, buffers)
        self.batches_sent += message["k"] == "batch"
        self.bytes_sent += len(json.dumps(message, ensure_ascii=False).encode("utf-8"))
        self.bytes_sent += sum(len(buffer) for buffer in buffers)

    def _state_locked(self) -> dict[str, Any]:
        facts = self._facts
        header: dict[str, str] = {}
        if facts is not None:
            # A run across contexts: several lines, one per cluster (shown pre-line).
            header = {"command": f"$ {facts.command_line}", "where": facts.where}
        pods: list[list[str]] = [[pod.label, pod.status, pod.detail] for pod in self._pods.values()]
        pods += [[label, "skipped", reason] for label, reason in self._skipped]
        done = len(self._finished)
        failed = sum(1 for r in self._finished.values() if not r.ok)
        total = max(facts.execs if facts is not None else 0, len(self._pods))
        if self._results is not None:
            state = "failed" if failed else "done"
        elif self._clock_end is not None:
            state = "ended"
        else:
            state = "running"
        return {
            "header": header,
            "pods": pods,
            "progress": {"done": done, "total": total, "failed": failed},
            "state": state,
            "started": self._wall_start,
            "ended": self._wall_end,
        }

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """A view asks for the current state (it connected late: a reloaded page)."""
        try:
            if not isinstance(content, dict) or content.get("k") != "hello":
                return
            with self._send_lock:
                if self._finalized or self.widget is None:
                    return
                with self._lock:
                    tail = list(self._tail)
                    start = self._lines_total - len(tail)
                index, text = _encode(tail)
                state = {name: getattr(self.widget, name) for name in _STATE_NAMES}
                message = {"k": "snapshot", "s": start, "g": index, "now": time.time(), "st": state}
                self._send(message, [text])
        except Exception:  # noqa: BLE001 - runs in the kernel's message handler
            self._errors.report("answering a view")

    # -- the display slots --------------------------------------------------------------------

    def _display_new(self, bundle: dict[str, Any]) -> DisplayHandle:
        """Display ``bundle`` in a new slot of the cell that started the run."""
        from IPython import display as ipython_display

        show: Any = ipython_display.display  # untyped in IPython
        handle: DisplayHandle = self._context.run(show, bundle, raw=True, display_id=True)
        return handle

    def _show_widget(self) -> None:
        """Put the widget in the view's slot (once: every update re-renders it)."""
        if not self._display:
            return
        shown = self.widget._repr_mimebundle_()  # anywidget: (data, metadata)
        bundle = dict((shown[0] if isinstance(shown, tuple) else shown) or {})
        # Not the widget's repr ("PodmagicLiveView(...)"): the snapshot slot says what to say.
        bundle["text/plain"] = ""
        if self.display_handle is None:
            self.display_handle = self._display_new(bundle)
            return
        update: Any = self.display_handle.update  # untyped in IPython
        update(bundle, raw=True)

    def _show_snapshot(self) -> None:
        """Show or refresh the snapshot slot (what a notebook saved now shows)."""
        if not self._display:
            return
        with self._lock:
            bundle = self._snapshot_bundle_locked()
        if self.snapshot_handle is None:
            self.snapshot_handle = self._display_new(bundle)
        else:
            update: Any = self.snapshot_handle.update  # untyped in IPython
            update(bundle, raw=True)
        self._snapshot_shown = True

    def replace_view(self, obj: object) -> bool:
        """After ``close()``: show ``obj`` in the view's slot, formatted as ``display(obj)``
        would. False when no view was displayed (a short run): display ``obj`` yourself.

        Call it on the kernel's main thread, in the cell that started the run.
        """
        with self._send_lock:
            if self.display_handle is None:
                return False
            update: Any = self.display_handle.update  # untyped in IPython
            update(obj)
            return True

    def _snapshot_bundle_locked(self) -> dict[str, str]:
        state = self._state_locked()
        labels = [pod.label for pod in self._pods.values()]
        width = max((len(label) for label in labels), default=0)
        progress = state["progress"]
        counts = f"{progress['done']} / {progress['total']} done"
        if progress["failed"]:
            counts += f" · {progress['failed']} failed"
        end = self._clock_end if self._clock_end is not None else time.monotonic()
        elapsed = end - self._clock_start if self._clock_start is not None else 0.0
        # Saved, this is read long after the run (often after its kernel is gone): it says
        # when it was taken and that the run had not ended then, never "running" as if live.
        taken = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        going = "still going" if state["state"] == "running" else "ending"
        status = (
            f"podmagic snapshot taken {taken}, {elapsed:.1f} s into a run {going} then"
            f" (not live; it may not have finished): {counts}"
        )
        header = state["header"]
        lines = list(self._tail)[-_SNAPSHOT_LINES:]
        hidden = self._lines_total - len(lines)
        text_lines = [header.get("command", ""), header.get("where", ""), status]
        rows = [
            f"{labels[pod].ljust(width)} {'|' if stream == STDOUT else '!'} {text}"
            for pod, stream, text in lines
        ]
        if hidden:
            rows.insert(0, f"… {hidden} earlier lines …")
        text = "\n".join([*text_lines, *rows])
        esc = html.escape
        markup = (
            # The widget output before this one (the view's slot) shows "Loading widget..."
            # or "Error displaying widget: model not found" once its kernel is gone: the
            # whole output is hidden until the live view renders in it, this snapshot stands
            # for it.
            "<style>.jp-OutputArea-child:has(+ .jp-OutputArea-child .podmagic-snapshot)"
            ':not(:has([data-podmagic="live"])) { display: none; }</style>'
            '<div class="podmagic-snapshot">'
            f"<div><code>{esc(header.get('command', ''))}</code></div>"
            f'<div style="white-space: pre-line">{esc(header.get("where", ""))}</div>'
            f'<div style="font-style: italic; opacity: 0.8">{esc(status)}</div>'
            '<pre style="font-family: monospace; max-height: 24em; overflow: auto">'
            f"{esc(chr(10).join(rows))}</pre></div>"
        )
        return {"text/plain": text, "text/html": markup}

    # -- the end ------------------------------------------------------------------------------

    def _finalize(self) -> None:
        with self._lock:
            # No event is taken and no timer armed from here on.
            self._closed = True
            self._timer.cancel()
            self._end_locked(time.monotonic())
        self._flush(final=True)
        with self._send_lock:
            if self._finalized:
                return
            self._finalized = True
            handle = self.display_handle
            with self._lock:
                results, finished = self._results, list(self._finished.values())
                total = self._facts.execs if self._facts is not None else None
            if self._display and (handle is not None or self.show_summary):
                if not self.show_summary:
                    bundle = {"text/plain": ""}
                elif results is not None:
                    bundle = summary_bundle(results)
                else:
                    bundle = summary_bundle(
                        partial_results(finished), early_end_note(len(finished), total)
                    )
                if handle is None:
                    # A short run: its summary is all it displays.
                    self.display_handle = self._display_new(bundle)
                else:
                    update: Any = handle.update  # untyped in IPython
                    update(bundle, raw=True)
            if self.snapshot_handle is not None and self._snapshot_shown:
                empty: Any = self.snapshot_handle.update  # untyped in IPython
                empty({"text/plain": ""}, raw=True)
            if self._display and self.widget is not None:
                # The slot shows the static summary now: free the widget's comm.
                if results is not None and not any(str(r.status) == "cancelled" for r in results):
                    self.widget.close()
                else:
                    _close_before_next_cell(self.widget)
            self._drop_buffers()

    def _drop_buffers(self) -> None:
        """The run is over and shown: keep no lines, splitters or results (a ``--bg``
        handle keeps this view alive as long as the user keeps the handle)."""
        with self._lock:
            self._tail.clear()
            self._pending = []
            self._finished.clear()
            self._results = None
            for pod in self._pods.values():
                pod.splitters.clear()

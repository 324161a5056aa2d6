"""Pieces every renderer shares: limits, pod colours, line splitting, per-pod caps, labels.

Nothing here touches IPython or ipywidgets. The classes are not thread-safe on their own: each
renderer guards them with its lock (events arrive on the engine's loop thread, ``close()`` and
widget callbacks on others).
"""

from __future__ import annotations

import codecs
import html
import logging
import re
import sys
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from ._labels import LabelStyle, PodKey

if TYPE_CHECKING:
    from .._events import Event, RunStarted
    from .._resolve import PodTarget
    from .._results import PodResult, PodResults

__all__ = [
    "PALETTE",
    "NullRenderer",
    "RenderLimits",
    "Renderer",
    "ansi_colour",
    "pod_colour",
    "summary_bundle",
]

log = logging.getLogger("podmagic.render")

#: Colour of stderr markers and of failure in every view.
ERROR_COLOUR = "#c62828"


@dataclass(frozen=True)
class RenderLimits:
    """How much a live view shows, so that no amount of output freezes a browser or terminal.

    Per pod, the first ``head_lines`` lines are kept, then only the last ``tail_lines``; the
    lines in between are counted and shown as ``… N lines hidden …``. Lines longer than
    ``max_line_length`` characters are cut, with a marker saying how much was cut. The combined
    live stream (all pods interleaved) keeps the newest ``max_total_lines`` lines. A widget
    view is redrawn at most ``max_updates_per_second`` times a second.

    These limits apply to what is *shown*; the results keep the exact bytes (up to the
    engine's own capture limit).
    """

    max_updates_per_second: float = 10.0
    head_lines: int = 200
    tail_lines: int = 200
    max_line_length: int = 2000
    max_total_lines: int = 5000

    def __post_init__(self) -> None:
        if not self.max_updates_per_second > 0:
            raise ValueError(
                f"max_updates_per_second must be positive, got {self.max_updates_per_second}"
            )
        for name in ("head_lines", "tail_lines", "max_total_lines"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"{name} must be 0 or more, got {value}")
        if self.max_line_length < 1:
            raise ValueError(f"max_line_length must be at least 1, got {self.max_line_length}")


DEFAULT_LIMITS = RenderLimits()


@runtime_checkable
class Renderer(Protocol):
    """What the magic wires to the engine: ``engine(on_event=renderer.handle_event)``."""

    def handle_event(self, event: Event) -> None:
        """Take one engine event. Called on the engine's loop thread: quick, never raises."""

    def close(self) -> None:
        """Show what is still buffered and the final state. Idempotent; safe from any thread."""


class NullRenderer:
    """Quiet mode (``-q``): shows nothing, live or at the end."""

    def handle_event(self, event: Event) -> None:
        """Ignore the event."""

    def close(self) -> None:
        """Nothing to flush."""


# -- colours ----------------------------------------------------------------------------------

#: Twelve colours readable on light and dark backgrounds, none of them the red of errors.
#: Every one lies on the xterm 256-colour cube, so a terminal shows exactly the colour a
#: notebook does, without needing 24-bit colour support.
PALETTE: tuple[str, ...] = (
    "#0087d7",
    "#d75f00",
    "#5faf00",
    "#875fd7",
    "#00afaf",
    "#d75faf",
    "#af8700",
    "#5f87af",
    "#af5f00",
    "#00af5f",
    "#af5fd7",
    "#d7875f",
)
_CUBE_LEVELS = (0x00, 0x5F, 0x87, 0xAF, 0xD7, 0xFF)


def _xterm_index(colour: str) -> int:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 16 + 36 * _CUBE_LEVELS.index(r) + 6 * _CUBE_LEVELS.index(g) + _CUBE_LEVELS.index(b)


_ANSI_PALETTE = tuple(f"\x1b[38;5;{_xterm_index(colour)}m" for colour in PALETTE)


def _palette_index(pod: str) -> int:
    # crc32, not hash(): str hashes change with every interpreter (PYTHONHASHSEED).
    return zlib.crc32(pod.encode("utf-8", "replace")) % len(PALETTE)


def pod_colour(pod: str) -> str:
    """The pod's colour as ``#rrggbb``: the same for the same name, in every run and process."""
    return PALETTE[_palette_index(pod)]


def ansi_colour(pod: str) -> str:
    """The escape sequence that sets the terminal foreground to ``pod_colour(pod)``."""
    return _ANSI_PALETTE[_palette_index(pod)]


ANSI_RESET = "\x1b[0m"
ANSI_ERROR = "\x1b[1;31m"

# CSI sequences (colours, cursor moves), OSC sequences (titles, links) and two-byte escapes.
_ANSI_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (which a browser would show as garbage)."""
    return _ANSI_SEQUENCE.sub("", text) if "\x1b" in text else text


# -- lines ----------------------------------------------------------------------------------------


class Line(NamedTuple):
    """One complete output line: ``stream`` is 1 (stdout) or 2 (stderr)."""

    stream: int
    text: str


def _finish_line(text: str, cut: int, limit: int, overwrite: bool = True) -> str:
    text = text.removesuffix("\r")  # CRLF (a tty sends those)
    if overwrite and "\r" in text:
        # A carriage return rewrites the line in a terminal (progress bars): keep what a
        # terminal would end up showing, roughly: the last non-empty segment.
        segments = [segment for segment in text.split("\r") if segment]
        text = segments[-1] if segments else ""
    if len(text) > limit:
        cut += len(text) - limit
        text = text[:limit]
    if cut:
        text += cut_marker(cut)
    return text


def cut_marker(cut: int) -> str:
    """What follows a line cut short: how much was cut (the live views and the summary)."""
    return f" … [{cut} more characters cut]"


def cut_line(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and a marker saying how many were cut."""
    return text if len(text) <= limit else text[:limit] + cut_marker(len(text) - limit)


class LineSplitter:
    """Turns one stream's byte chunks into complete, length-capped lines.

    UTF-8 is decoded incrementally (invalid bytes become U+FFFD), so a character split
    across two chunks survives. A partial line is held until its newline arrives or
    :meth:`finish` is called; only its first ``max_line_length`` characters are held, the
    rest is counted, so a stream that never sends a newline still uses bounded memory.

    With ``overwrite=True`` a carriage return inside a line keeps only what follows it, as a
    terminal would show it (progress bars); ``False`` keeps the whole line, for views that
    show the ``\r`` itself. A ``\r\n`` line end is a plain line end either way.
    """

    __slots__ = ("_cut", "_decoder", "_limit", "_overwrite", "_partial", "_partial_len")

    def __init__(self, max_line_length: int, *, overwrite: bool = True) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._limit = max_line_length
        self._overwrite = overwrite
        self._partial: list[str] = []
        self._partial_len = 0
        self._cut = 0

    def feed(self, data: bytes) -> list[str]:
        """The lines ``data`` completes (without their newlines)."""
        return self._split(self._decoder.decode(data))

    def finish(self) -> list[str]:
        """The stream has ended: the lines still held, including an unterminated last one."""
        lines = self._split(self._decoder.decode(b"", final=True))
        if self._partial or self._cut:
            lines.append(self._take())
        return lines

    @property
    def pending(self) -> bool:
        """Whether a partial line is held."""
        return bool(self._partial or self._cut)

    def _split(self, text: str) -> list[str]:
        if "\n" not in text:
            self._add(text)
            return []
        parts = text.split("\n")
        self._add(parts[0])
        lines = [self._take()]
        limit = self._limit
        for part in parts[1:-1]:
            lines.append(_finish_line(part, 0, limit, self._overwrite))
        self._add(parts[-1])
        return lines

    def _add(self, text: str) -> None:
        if not text:
            return
        room = self._limit - self._partial_len
        if len(text) <= room:
            self._partial.append(text)
            self._partial_len += len(text)
            return
        if room > 0:
            self._partial.append(text[:room])
            self._partial_len += room
        self._cut += len(text) - max(room, 0)

    def _take(self) -> str:
        text = "".join(self._partial)
        cut = self._cut
        self._partial = []
        self._partial_len = 0
        self._cut = 0
        return _finish_line(text, cut, self._limit, self._overwrite)


class PodLog:
    """One pod's lines, capped: the first ``head_lines``, a count, the last ``tail_lines``.

    With ``keep_head=False`` the head lines are only counted (a terminal has printed them
    already and needs only the tail).
    """

    __slots__ = ("_head_limit", "_keep_head", "head", "head_count", "hidden", "tail", "total")

    def __init__(self, limits: RenderLimits, *, keep_head: bool = True) -> None:
        self.head: list[Line] = []
        self.head_count = 0
        self.tail: deque[Line] = deque(maxlen=limits.tail_lines)
        self.hidden = 0
        self.total = 0
        self._head_limit = limits.head_lines
        self._keep_head = keep_head

    def add(self, line: Line) -> bool:
        """Keep ``line``; True when it belongs to the head (to be shown at once)."""
        self.total += 1
        if self.head_count < self._head_limit:
            self.head_count += 1
            if self._keep_head:
                self.head.append(line)
            return True
        if len(self.tail) == self.tail.maxlen:
            self.hidden += 1
        self.tail.append(line)
        return False

    def take_tail(self) -> tuple[int, list[Line]]:
        """The hidden count and the tail lines, emptying the tail (for a finished pod)."""
        hidden, lines = self.hidden, list(self.tail)
        self.hidden = 0
        self.tail.clear()
        return hidden, lines


def hidden_marker(count: int) -> str:
    return f"… {count} line{'' if count == 1 else 's'} hidden …"


# -- naming pods ----------------------------------------------------------------------------------


def key_of(target: PodTarget | PodResult) -> PodKey:
    """The key of a ``PodTarget`` or ``PodResult`` (both have namespace, pod, container)."""
    return (str(target.namespace), str(target.pod), target.container)


class Labeller:
    """Display names (:mod:`._labels`: ``web-1``, ``prod/web-1``, ``web-1 [app]``), decided
    from all the execs of the run; ``width`` is the longest one so far."""

    __slots__ = ("_cache", "style", "width")

    def __init__(self) -> None:
        self.style = LabelStyle()
        self.width = 0
        self._cache: dict[PodKey, str] = {}

    def configure(self, keys: Iterable[PodKey]) -> None:
        """Decide the naming from all the execs of the run, and pad to the longest name."""
        keys = list(keys)
        self.style = LabelStyle.for_keys(keys)
        self._cache.clear()
        self.width = max((len(self.label(key)) for key in keys), default=0)

    def label(self, key: PodKey) -> str:
        label = self._cache.get(key)
        if label is None:
            label = self._cache[key] = self.style.label(key)
            self.width = max(self.width, len(label))
        return label


# -- what a run is --------------------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _sandbox_marker(context: str) -> str:
    """A note after the context name when it is a sandbox of this process whose pods are
    plain host processes (the render room never imports the sandbox: only if it is loaded)."""
    isolation = sys.modules.get("podmagic.sandbox._isolation")
    marker = getattr(isolation, "isolation_marker", None)
    return str(marker(context)) if marker is not None else ""


@dataclass(frozen=True)
class RunFacts:
    """What the header shows, taken from ``RunStarted``."""

    context: str
    description: str
    command: str
    pods: int
    execs: int
    skipped: int
    keys: tuple[PodKey, ...]
    clusters: tuple[str, ...] = ()
    """A run across contexts: one line per cluster (context, server, pods matched, or why
    it could not run), from ``ClustersStarted.clusters``."""

    @classmethod
    def from_event(cls, event: RunStarted) -> RunFacts:
        selection = event.selection
        keys = tuple(key_of(target) for target in selection.run)
        clusters = tuple(
            line.text() + _sandbox_marker(str(line.context))
            for line in getattr(event, "clusters", ())
        )
        context = str(event.context)
        return cls(
            context=context + ("" if len(clusters) > 1 else _sandbox_marker(context)),
            description=str(getattr(selection, "description", "") or ""),
            command=str(event.command),
            pods=len({(ns, pod) for ns, pod, _ in keys}),
            execs=len(keys),
            skipped=len(getattr(selection, "skipped", ())),
            keys=keys,
            clusters=clusters if len(clusters) > 1 else (),
        )

    @property
    def where(self) -> str:
        """``context a · deploy/web in namespace shop · 3 pods``; a run across contexts has
        its description and count, then one line per cluster."""
        if self.clusters:
            head = " · ".join(filter(None, [self.description, self.count_text]))
            return "\n".join([head, *self.clusters])
        parts = [f"context {self.context}"]
        if self.description:
            parts.append(self.description)
        parts.append(self.count_text)
        return " · ".join(parts)

    @property
    def count_text(self) -> str:
        """``12 pods (2 skipped)``, or ``24 containers in 12 pods`` with several per pod."""
        text = _plural(self.pods, "pod")
        if self.execs != self.pods:
            text = f"{_plural(self.execs, 'container')} in {text}"
        if self.skipped:
            text += f" ({self.skipped} skipped)"
        return text

    @property
    def command_line(self) -> str:
        """The command's first line; a script's other lines are counted."""
        lines = self.command.strip("\n").splitlines() or [""]
        text = lines[0]
        if len(lines) > 1:
            text += f" … (+{len(lines) - 1} lines)"
        return text

    def text(self) -> str:
        if self.clusters:
            lines = self.where.split("\n")
            return "\n".join(
                [f"{lines[0]} · $ {self.command_line}", *(f"  {x}" for x in lines[1:])]
            )
        return f"{self.where} · $ {self.command_line}"

    def html(self) -> str:
        esc = html.escape
        if self.clusters:
            where = "<br>".join(esc(line) for line in self.where.split("\n"))
        else:
            where = f"context <b>{esc(self.context)}</b>"
            if self.description:
                where += f" · {esc(self.description)}"
            where += f" · {esc(self.count_text)}"
        return (
            '<div class="podmagic-header">'
            f"<code>$ {esc(self.command_line)}</code><br>"
            f'<span style="opacity: 0.8">{where}</span></div>'
        )


# -- the final summary -----------------------------------------------------------------------------


def partial_results(finished: Iterable[PodResult]) -> PodResults:
    from .._results import PodResults

    return PodResults(finished)


def summary_bundle(results: PodResults, note: str | None = None) -> dict[str, str]:
    """The summary as a display bundle: ``text/plain`` (``str``) and ``text/html``.

    Both come from the results' one summary helper, so they agree. ``note`` is a line shown
    above the summary (e.g. that the run ended without its final results).
    """
    text = str(results)
    markup = results._repr_html_()
    if note:
        text = f"{note}\n{text}"
        markup = f"<p><em>{html.escape(note)}</em></p>\n{markup}"
    return {"text/plain": text, "text/html": markup}


def early_end_note(finished: int, total: int | None) -> str:
    done = f"{finished} of {total}" if total is not None else str(finished)
    return f"The run ended without its final results; {done} execs had finished."


class ErrorLog:
    """Logs a renderer's own failures without flooding the log: the first few in full."""

    __slots__ = ("_limit", "count")

    def __init__(self, limit: int = 3) -> None:
        self.count = 0
        self._limit = limit

    def report(self, what: str) -> None:
        """Call from an ``except`` block."""
        self.count += 1
        if self.count <= self._limit:
            log.exception("podmagic renderer: %s failed; the run itself is not affected", what)
        elif self.count == self._limit + 1:
            log.error("podmagic renderer: further rendering errors are not logged")

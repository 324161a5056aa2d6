"""Which pods' output differs, and how: each minority group as a unified diff against the
majority's output.

``PodResults.diff()`` groups the results by one stream's exact bytes (``stdout`` or
``stderr``; exit codes aside, so that two pods that printed the same thing are one side), takes
the largest group as the reference and diffs every other group against it with difflib's
unified format: hunks carry the line numbers (``@@ -3,4 +3,5 @@``), the ``---`` / ``+++``
lines name the pods of each side.

The comparison is of bytes; only what is shown is made safe: invalid UTF-8 shows as ``\\xff``
escapes (so two outputs that differ only there still read differently, where U+FFFD would hide
it), control characters as the summary shows them (``^[``, ``<U+202E>``: shown, never obeyed).
A group whose stream the capture cap cut is not diffed as if its prefix were the whole: it is
listed with what was kept and what was not. Display limits: :data:`MAX_DIFF_GROUPS` groups,
:data:`MAX_DIFF_LINES` lines each (every line is kept in :attr:`GroupDiff.lines`).
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

from ._natsort import natural_key
from ._results import _bytes
from ._safe_text import visible_controls

if TYPE_CHECKING:
    from ._results import PodResult, PodResults

__all__ = ["GroupDiff", "OutputDiff", "diff_results"]

#: Groups a diff shows (the rest are counted); lines shown of each group's diff.
MAX_DIFF_GROUPS = 10
MAX_DIFF_LINES = 200
#: Pod names on a ``---`` / ``+++`` line before "and N more".
MAX_SIDE_NAMES = 6

_STREAMS = ("stdout", "stderr")
_LINE = re.compile(rb"[^\n]*\n|[^\n]+\Z")
_NO_NEWLINE = "\\ No newline at end of file"


def _shown(data: bytes) -> str:
    """Bytes as safe text: invalid UTF-8 as ``\\xNN``, controls visible."""
    return visible_controls(data.decode("utf-8", "backslashreplace"))


def _side(pods: Sequence[str], note: str) -> str:
    names = ", ".join(pods[:MAX_SIDE_NAMES])
    if len(pods) > MAX_SIDE_NAMES:
        names += f" and {len(pods) - MAX_SIDE_NAMES} more"
    count = "1 pod" if len(pods) == 1 else f"{len(pods)} pods"
    return f"{names} ({count}{', ' + note if note else ''})"


@dataclass(frozen=True)
class GroupDiff:
    """One minority group against the reference (majority) output.

    ``lines`` is the unified diff (``---``, ``+++``, ``@@ -a,b +c,d @@`` hunks, then `` ``,
    ``-``, ``+`` lines), display-safe. Empty with a ``note`` when it could not be diffed
    (a side was truncated by the capture cap)."""

    pods: tuple[str, ...]
    reference: tuple[str, ...]
    outcomes: tuple[str, ...]
    lines: tuple[str, ...]
    note: str = ""

    @property
    def label(self) -> str:
        """``web-3 (1 pod, exit 1)``."""
        return _side(self.pods, ", ".join(self.outcomes))


@dataclass(frozen=True)
class OutputDiff(Sequence[GroupDiff]):
    """The minority groups of one stream as unified diffs against the majority's output.

    A sequence of :class:`GroupDiff`; ``reference`` names the pods of the reference group,
    ``majority`` says whether more pods said it than any other thing (else it is only the
    largest group, first in natural order). ``str()`` is terminal-safe text; the notebook shows
    HTML."""

    stream: str
    reference: tuple[str, ...]
    majority: bool
    groups: tuple[GroupDiff, ...]
    total: int
    """Results compared (skipped and not started ones have no output and are left out)."""

    @overload
    def __getitem__(self, index: int) -> GroupDiff: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[GroupDiff]: ...

    def __getitem__(self, index: int | slice) -> GroupDiff | Sequence[GroupDiff]:
        return self.groups[index]

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[GroupDiff]:
        return iter(self.groups)

    @property
    def title(self) -> str:
        if not self.total:
            return f"{self.stream}: nothing to compare (no pod ran)"
        if not self.groups:
            count = "the only pod" if self.total == 1 else f"all {self.total} pods"
            return f"{self.stream}: {count} said the same"
        kind = "majority" if self.majority else "largest group, no majority"
        return (
            f"{self.stream}: {len(self.groups)} "
            f"{'group differs' if len(self.groups) == 1 else 'groups differ'} from the "
            f"{kind} ({len(self.reference)} of {self.total} pods)"
        )

    def _shown_groups(self) -> tuple[list[GroupDiff], int]:
        return list(self.groups[:MAX_DIFF_GROUPS]), max(0, len(self.groups) - MAX_DIFF_GROUPS)

    def __str__(self) -> str:
        out = [self.title]
        shown, omitted = self._shown_groups()
        for group in shown:
            out.append("")
            if group.note:
                out.append(f"{visible_controls(group.label)}: {group.note}")
                continue
            out.extend(group.lines[:MAX_DIFF_LINES])
            if len(group.lines) > MAX_DIFF_LINES:
                out.append(f"… {len(group.lines) - MAX_DIFF_LINES} more diff lines")
        if omitted:
            out.append("")
            out.append(f"… {omitted} more differing groups; see list(results.diff())")
        return "\n".join(out)

    def __repr__(self) -> str:
        return f"<OutputDiff {self.title}>"

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        printer.text(repr(self) if cycle else str(self))  # type: ignore[attr-defined]

    def _repr_html_(self) -> str:
        def esc(text: str) -> str:
            return html.escape(text, quote=True)

        pre = (
            "font-family: var(--jp-code-font-family, ui-monospace, monospace), monospace; "
            "margin: 0.2em 0 0.4em 1em"
        )
        out = [
            '<div class="podmagic-diff">',
            f'<p style="margin: 0 0 0.3em 0"><strong>{esc(self.title)}</strong></p>',
        ]
        shown, omitted = self._shown_groups()
        for group in shown:
            if group.note:
                out.append(f"<p>{esc(group.label)}: <em>{esc(group.note)}</em></p>")
                continue
            lines = []
            for line in group.lines[:MAX_DIFF_LINES]:
                style = _LINE_STYLES.get(line[:1], "")
                if line.startswith(("---", "+++")):
                    style = "font-weight: bold"
                lines.append(f'<span style="{style}">{esc(line)}</span>' if style else esc(line))
            if len(group.lines) > MAX_DIFF_LINES:
                lines.append(esc(f"… {len(group.lines) - MAX_DIFF_LINES} more diff lines"))
            out.append(f'<pre style="{pre}">' + "\n".join(lines) + "</pre>")
        if omitted:
            out.append(f"<p>… {omitted} more differing groups</p>")
        out.append("</div>")
        return "\n".join(out)


# (text, background) pairs, readable on light and dark pages alike.
_LINE_STYLES = {
    "-": "color: #b71c1c; background-color: #fdecea",
    "+": "color: #1b5e20; background-color: #e8f5e9",
    "@": "color: #0d47a1; background-color: #e3f2fd",
}


def _unified(old: bytes, new: bytes, before: str, after: str, context: int) -> list[str]:
    old_lines = _LINE.findall(old)
    new_lines = _LINE.findall(new)
    raw = difflib.diff_bytes(
        difflib.unified_diff,
        old_lines,
        new_lines,
        fromfile=before.encode("utf-8", "backslashreplace"),
        tofile=after.encode("utf-8", "backslashreplace"),
        n=context,
        lineterm=b"",
    )
    lines: list[str] = []
    for index, line in enumerate(raw):
        if index < 2:  # the ---/+++ lines: names, already made safe
            lines.append(line.decode("utf-8", "backslashreplace"))
            continue
        if line.startswith(b"@@"):
            lines.append(line.decode("ascii").rstrip("\n"))
            continue
        ended = line.endswith(b"\n")
        lines.append(_shown(line[:-1] if ended else line))
        if not ended:
            lines.append(_NO_NEWLINE)
    return lines


def diff_results(results: PodResults, stream: str = "stdout", *, context: int = 3) -> OutputDiff:
    """:meth:`PodResults.diff`."""
    from ._results import ExecStatus

    if stream not in _STREAMS:
        raise ValueError(f"diff(): stream must be 'stdout' or 'stderr', not {stream!r}")
    if not isinstance(context, int) or isinstance(context, bool) or context < 0:
        raise ValueError(f"diff(): context must be a number of lines (0 or more), not {context!r}")
    labels = results.labels
    buckets: dict[tuple[object, ...], list[tuple[PodResult, str]]] = {}
    for result, label in zip(results, labels):
        if result.status in (ExecStatus.SKIPPED, ExecStatus.NOT_STARTED):
            continue
        key = (
            getattr(result, stream),
            getattr(result, f"{stream}_dropped"),
            getattr(result, f"{stream}_dropped_digest"),
        )
        buckets.setdefault(key, []).append((result, label))
    groups = sorted(buckets.values(), key=lambda g: (-len(g), natural_key(g[0][0].pod), g[0][1]))
    total = sum(len(g) for g in groups)
    if not groups:
        return OutputDiff(stream, (), False, (), 0)
    reference = groups[0]
    ref_pods = tuple(label for _, label in reference)
    majority = len(groups) == 1 or len(reference) > len(groups[1])
    ref_result = reference[0][0]
    ref_dropped = getattr(ref_result, f"{stream}_dropped")
    ref_note = "majority" if majority else "largest group"
    diffs = []
    for members in groups[1:]:
        first = members[0][0]
        pods = tuple(label for _, label in members)
        outcomes = tuple(dict.fromkeys(r.outcome for r, _ in members))
        dropped = getattr(first, f"{stream}_dropped")
        cut = [
            f"{side}'s {stream} was cut by the capture cap (first "
            f"{_bytes(len(getattr(r, stream)))} kept, {_bytes(n)} not kept)"
            for side, r, n in (
                ("this group", first, dropped),
                ("the reference", ref_result, ref_dropped),
            )
            if n
        ]
        if cut:
            note = (
                "; ".join(cut) + ": not diffed, a prefix is not the whole output "
                "(raise capture_limit to compare)"
            )
            diffs.append(GroupDiff(pods, ref_pods, outcomes, (), note))
            continue
        before = _side(ref_pods, ref_note)
        after = _side(pods, ", ".join(outcomes))
        lines = _unified(
            getattr(ref_result, stream),
            getattr(first, stream),
            f"{visible_controls(before)}",
            f"{visible_controls(after)}",
            context,
        )
        diffs.append(GroupDiff(pods, ref_pods, outcomes, tuple(lines)))
    return OutputDiff(stream, ref_pods, majority, tuple(diffs), total)

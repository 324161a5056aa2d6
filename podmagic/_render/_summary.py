"""The summary of a run's results, as text and as HTML, from one view; and the results' reprs.

:class:`~podmagic.PodResults` and :class:`~podmagic.PodResult` hold data; everything they show a
person (``str()``, the notebook display, ``repr()``) is written here. :func:`summary_view` decides
what the summary says — title, table, grouped outputs, notes, within fixed limits — and
:func:`render_text` / :func:`render_html` only lay it out, so the terminal and the notebook always
agree.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._results import ExecStatus, _bytes, _unit
from .._safe_text import visible_controls
from ._base import cut_line, hidden_marker

if TYPE_CHECKING:
    from .._results import OutputGroup, PodResult, PodResults

__all__ = [
    "count_unit",
    "outcome_listing",
    "output_group_repr",
    "pod_result_repr",
    "pod_results_repr",
    "render_html",
    "render_text",
    "summary_html",
    "summary_text",
    "summary_view",
]

#: ``repr(group)`` names this many pods, and shows this many characters of each stream.
MAX_REPR_NAMES = 3
MAX_REPR_CHARS = 40

#: Display limits: the summary never grows with the size of the output or the fan-out.
MAX_TABLE_ROWS = 50
MAX_GROUPS = 10
#: Groups shown open in the HTML summary (the largest first); the others are closed
#: ``<details>`` with their status and pods on one line, so the summary fits on a screen.
OPEN_GROUPS = 3
#: Each group shows its first and its last lines — a command's errors are usually at its end —
#: and counts the lines between them; few enough that nine outputs fit on a screen.
PREVIEW_HEAD_LINES = 5
PREVIEW_TAIL_LINES = 5
MAX_PREVIEW_LINE_CHARS = 200


def _short_bytes(data: bytes, limit: int = 60) -> str:
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r}...({len(data)} bytes)"


def _format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


# -- reprs -------------------------------------------------------------------------------------


def pod_result_repr(result: PodResult) -> str:
    """``PodResult(context=..., pod=..., status='ok', exit_code=0, stdout=b'...', ...)``."""
    parts = [
        f"context={result.context!r}",
        f"namespace={result.namespace!r}",
        f"pod={result.pod!r}",
    ]
    if result.container is not None:
        parts.append(f"container={result.container!r}")
    parts += [
        f"status={result.status.value!r}",
        f"exit_code={result.exit_code!r}",
        f"stdout={_short_bytes(result.stdout)}",
        f"stderr={_short_bytes(result.stderr)}",
    ]
    for name in ("stdout_dropped", "stderr_dropped"):
        if getattr(result, name):
            parts.append(f"{name}={getattr(result, name)}")
    if result.error is not None:
        parts.append(f"error={result.error!r}")
    if result.duration is not None:
        parts.append(f"duration={result.duration:.3f}")
    return f"PodResult({', '.join(parts)})"


def pod_results_repr(results: PodResults) -> str:
    """``<PodResults: 3 pods: 2 ok, 1 failed>``."""
    counts = ", ".join(f"{n} {status}" for status, n in results.summary().items())
    return f"<PodResults: {len(results)} {_unit(results)}{': ' if counts else ''}{counts}>"


def _short_text(data: bytes) -> str:
    # repr() of the decoded text: a pod's control characters show as escapes (\x1b, \r,
    # \u202e), never act, and the line ends stay visible.
    text = data.decode("utf-8", "replace")
    if len(text) <= MAX_REPR_CHARS:
        return repr(text)
    return f"{text[:MAX_REPR_CHARS]!r}…({len(data):,} bytes)"


def output_group_repr(group: OutputGroup) -> str:
    """``<OutputGroup 3 pods (web-0, web-1, web-2): exit 0, stdout 'ok\\n'>``: who, how it
    ended, and the start of what they said, on one short line."""
    count = len(group.pods)
    unit = _unit(group.results)
    names = ", ".join(visible_controls(name) for name in group.pods[:MAX_REPR_NAMES])
    if count > MAX_REPR_NAMES:
        names += f" and {count - MAX_REPR_NAMES} more"
    parts = [group.results[0].outcome]
    for name, data in (("stdout", group.stdout), ("stderr", group.stderr)):
        if data:
            parts.append(f"{name} {_short_text(data)}")
    if not group.stdout and not group.stderr:
        parts.append("no output")
    if group.truncated:
        parts.append("truncated")
    what = f"1 {unit[:-1]}" if count == 1 else f"{count} {unit}"
    return f"<OutputGroup {what} ({names}): {', '.join(parts)}>"


def count_unit(results: PodResults) -> str:
    """``pods``, or ``containers`` when some pod appears more than once."""
    return _unit(results)


def outcome_listing(results: PodResults, members: PodResults, limit: int) -> str:
    """``web-3 (exit 1), web-7 (timeout) and 3 more``: ``members`` (some of ``results``),
    named as the whole of ``results`` needs, with how each ended (for error messages)."""
    chosen = {id(r) for r in members}
    items = [(r, label) for r, label in zip(results, results.labels) if id(r) in chosen]
    shown = ", ".join(f"{label} ({r.outcome})" for r, label in items[:limit])
    if len(items) > limit:
        shown += f" and {len(items) - limit} more"
    return shown


def summary_text(results: PodResults) -> str:
    """The summary as text (``str(results)``)."""
    return render_text(summary_view(results))


def summary_html(results: PodResults) -> str:
    """The summary as HTML (the notebook display)."""
    return render_html(summary_view(results))


# -- the one summary, rendered as text or HTML ------------------------------------------------


@dataclass
class _GroupView:
    label: str
    status: ExecStatus
    stdout: list[str]
    stderr: list[str]
    note: str = ""


@dataclass
class _SummaryView:
    title: str
    notes: list[str]
    columns: list[str]
    numeric: set[str]
    rows: list[tuple[list[str], ExecStatus]]
    rows_omitted: int
    groups: list[_GroupView]
    groups_omitted: int
    footer: str = ""
    """The run's provenance in one line (``PodResults.provenance``); empty without one."""
    sections: list[_SummaryView] = field(default_factory=list)
    """Results from several contexts: one summary per context, under the run's title."""


def _preview(text: str) -> list[str]:
    lines = text.splitlines()
    hidden = len(lines) - PREVIEW_HEAD_LINES - PREVIEW_TAIL_LINES
    if hidden == 1:
        hidden = 0  # the marker would take that line's place
    shown = [
        cut_line(line, MAX_PREVIEW_LINE_CHARS)
        for line in (
            lines if hidden <= 0 else lines[:PREVIEW_HEAD_LINES] + lines[-PREVIEW_TAIL_LINES:]
        )
    ]
    if hidden > 0:
        # The live views' words for the same thing.
        shown.insert(PREVIEW_HEAD_LINES, hidden_marker(hidden))
    return shown


def _code_ranges(codes: frozenset[int]) -> str:
    """``0, 1`` or ``0-2, 127``: exit codes as ``--ok-exit`` takes them."""
    runs: list[list[int]] = []
    for code in sorted(codes):
        if runs and code == runs[-1][1] + 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return ", ".join(
        str(low) if low == high else f"{low}, {high}" if high == low + 1 else f"{low}-{high}"
        for low, high in runs
    )


def _sections_view(results: PodResults, contexts: list[str]) -> _SummaryView:
    """Results from several contexts: the run's title and counts, then each context's own
    summary (its table, its outputs, its provenance), in the run's order."""
    items = list(results)
    unit = _unit(items)
    title = f"{len(items)} {unit[:-1] if len(items) == 1 else unit} in {len(contexts)} contexts"
    counts = ", ".join(f"{n} {status}" for status, n in results.summary().items())
    if counts:
        title += f": {counts}"
    provenances = results.provenances
    sections = []
    for context in contexts:
        part = results._derived(r for r in items if r.context == context)
        section = summary_view(part)
        section.footer = provenances[context].footer() if context in provenances else ""
        sections.append(section)
    return _SummaryView(
        title=title,
        notes=[],
        columns=[],
        numeric=set(),
        rows=[],
        rows_omitted=0,
        groups=[],
        groups_omitted=0,
        sections=sections,
    )


def summary_view(results: PodResults) -> _SummaryView:
    items = list(results)
    in_order = list(dict.fromkeys(r.context for r in items))
    if len(in_order) > 1:
        return _sections_view(results, in_order)
    unit = _unit(items)
    title = f"{len(items)} {unit[:-1] if len(items) == 1 else unit}"
    contexts = {r.context for r in items}
    namespaces = {r.namespace for r in items}
    if len(contexts) == 1:
        title += f" in context {next(iter(contexts))}"
    if len(namespaces) == 1:
        title += f", namespace {next(iter(namespaces))}"
    counts = ", ".join(f"{n} {status}" for status, n in results.summary().items())
    if counts:
        title += f": {counts}"
    accepted = results.ok_exit
    if accepted and accepted != {0}:  # --ok-exit: say why an "exit 1" row is ok
        title += f" (exit {_code_ranges(accepted)} counted as ok)"

    notes = []
    truncated = [r for r in items if r.truncated]
    if truncated:
        total = sum(r.stdout_dropped + r.stderr_dropped for r in truncated)
        count = f"{len(truncated)} {unit[:-1] if len(truncated) == 1 else unit}"
        notes.append(
            f"Output truncated in {count}: {_bytes(total)} not kept (the first bytes of each "
            "stream are kept; raise capture_limit to keep more)"
        )

    columns = ["pod", "container", "exit", "status", "duration", "node"]
    if truncated:
        columns.append("not kept")
    with_error = any(r.error for r in items)
    if with_error:
        columns.append("error")

    # Past the row limit, the rows that did not succeed are the ones worth showing.
    order = sorted(range(len(items)), key=lambda i: items[i].ok)[:MAX_TABLE_ROWS]
    labels = results.labels
    rows = []
    for index in sorted(order):
        r = items[index]
        cells = [
            labels[index],
            r.container or "-",
            "-" if r.exit_code is None else str(r.exit_code),
            r.status.value,
            _format_duration(r.duration),
            r.node or "-",
        ]
        if truncated:
            dropped = r.stdout_dropped + r.stderr_dropped
            cells.append(_bytes(dropped) if dropped else "-")
        if with_error:
            cells.append(r.error or "")
        rows.append((cells, r.status))

    # Pods that never ran have no output to compare: the table already says why.
    groups = [
        g
        for g in results.groups()
        if g.status not in (ExecStatus.SKIPPED, ExecStatus.NOT_STARTED) or g.stdout or g.stderr
    ]
    # Likewise past the group limit: outputs that did not succeed first. Shown: the largest
    # group (what most pods said, if more said it than any other thing), then those that did
    # not succeed, then the rest, each in the groups' order (largest first), so the open ones
    # are the ones to read.
    chosen = sorted(range(len(groups)), key=lambda i: groups[i].status is ExecStatus.OK)
    lead = 0 if len(groups) < 2 or len(groups[0].pods) > len(groups[1].pods) else -1
    shown = sorted(
        chosen[:MAX_GROUPS], key=lambda i: (i != lead, groups[i].status is ExecStatus.OK, i)
    )
    group_views = [
        _GroupView(
            label=groups[i].label,
            status=groups[i].status,
            # Control characters shown, not obeyed (and a lone \r is no line break here).
            stdout=_preview(visible_controls(groups[i].stdout_text)),
            stderr=_preview(visible_controls(groups[i].stderr_text)),
            note=groups[i].truncation_note,
        )
        for i in shown
    ]
    return _SummaryView(
        title=title,
        notes=notes,
        columns=columns,
        numeric={"exit", "duration", "not kept"},
        rows=rows,
        rows_omitted=len(items) - len(rows),
        groups=group_views,
        groups_omitted=max(0, len(groups) - MAX_GROUPS),
        footer=results.provenance.footer() if results.provenance is not None else "",
    )


def render_text(view: _SummaryView) -> str:
    # Names and error messages come from the cluster: never let them act on a terminal.
    out = [visible_controls(view.title)]
    if view.rows:
        table = [view.columns] + [
            [visible_controls(cell) for cell in cells] for cells, _ in view.rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(view.columns))]
        for row in table:
            cells = [
                cell.rjust(width) if name in view.numeric else cell.ljust(width)
                for cell, width, name in zip(row, widths, view.columns)
            ]
            out.append("  ".join(cells).rstrip())
    if view.rows_omitted:
        out.append(f"… {view.rows_omitted} more rows; see .to_dataframe()")
    out.extend(view.notes)
    for group in view.groups:
        out.append("")
        out.append(visible_controls(group.label))
        if not group.stdout and not group.stderr:
            out.append("  (no output)")
        out.extend(f"  {line}" for line in group.stdout)
        if group.stderr:
            out.append("  stderr:")
            out.extend(f"    {line}" for line in group.stderr)
        if group.note:
            out.append(f"  [{group.note}]")
    if view.groups_omitted:
        out.append("")
        out.append(f"… {view.groups_omitted} more distinct outputs; see .groups()")
    for section in view.sections:
        out.append("")
        out.append(render_text(section))
    if view.footer:
        out.append("")
        out.append(visible_controls(view.footer))
    return "\n".join(out)


# Colours come in pairs, text on its own background: the same HTML is shown on light pages
# (JupyterLab, nbconvert) and dark ones (JupyterLab's dark theme, VS Code), and no single text
# colour reaches 4.5:1 (WCAG AA) against both white and a dark grey. A pair's contrast does not
# depend on the page (tests/test_summary.py computes it).
_WHITE = "#ffffff"

#: Status -> background of a status badge (white text on it).
_STATUS_BACKGROUNDS = {
    ExecStatus.OK: "#2e7d32",
    ExecStatus.FAILED: "#c62828",
    ExecStatus.ERROR: "#c62828",
    ExecStatus.TIMEOUT: "#c62828",
    ExecStatus.CANCELLED: "#b54708",
    ExecStatus.NOT_STARTED: "#b54708",
    ExecStatus.SKIPPED: "#616161",
}

#: (text, background) of stderr: red, readable on any page.
STDERR_COLOURS = ("#b71c1c", "#fdecea")

#: (text, background) of truncation notes: to be noticed, though nothing failed.
WARNING_COLOURS = ("#8f3a00", "#fff4e5")


def _badge(status: ExecStatus) -> str:
    return (
        f"color: {_WHITE}; background-color: {_STATUS_BACKGROUNDS[status]}; "
        "padding: 0 0.3em; border-radius: 3px"
    )


def _pair(colours: tuple[str, str]) -> str:
    return f"color: {colours[0]}; background-color: {colours[1]}"


# Pod output is columns and ASCII art: the whole summary in a monospace font (the theme's code
# font where there is one), set again where a page's stylesheet sets its own (nbconvert's HTML
# gives <pre> and tables a proportional one). Inline styles only: GitHub's renderer drops
# <style> elements.
_MONOSPACE = (
    "font-family: var(--jp-code-font-family, ui-monospace, SFMono-Regular, Menlo, Consolas, "
    "'Liberation Mono', monospace), monospace"
)
# Lines and rules take the theme's colours (JupyterLab's variables, also in nbconvert's HTML)
# with a grey that reads on light and dark pages elsewhere. Text keeps the page's colour; the
# status and stderr colours are pairs above, readable on any page.
_RULE = "var(--jp-border-color1, #9e9e9e)"
_CELL_PADDING = "padding: 0.1em 0.9em 0.1em 0"


def _cell_style(name: str, numeric: set[str]) -> str:
    # JupyterLab right-aligns every table cell; only numbers read better that way.
    align = "text-align: right" if name in numeric else "text-align: left"
    return f"{align}; {_CELL_PADDING}"  # the font: the table's


def render_html(view: _SummaryView) -> str:
    def esc(text: str) -> str:
        return html.escape(text, quote=True)

    out = [
        f'<div class="podmagic-results" style="{_MONOSPACE}">',
        f'<p style="margin: 0 0 0.3em 0"><strong>{esc(view.title)}</strong></p>',
    ]
    if view.rows:
        out.append(
            '<table class="podmagic-summary" style="border-collapse: collapse; '
            f'margin: 0 0 0.4em 0; font-size: inherit; {_MONOSPACE}">'
        )
        out.append(
            "<thead><tr>"
            + "".join(
                f'<th style="{_cell_style(name, view.numeric)}; '
                f'border-bottom: 1px solid {_RULE}">{esc(name)}</th>'
                for name in view.columns
            )
            + "</tr></thead>"
        )
        out.append("<tbody>")
        for cells, status in view.rows:
            tds = []
            for name, cell in zip(view.columns, cells):
                style = _cell_style(name, view.numeric)
                if name == "status":
                    cell_html = f'<span style="{_badge(status)}">{esc(cell)}</span>'
                else:
                    cell_html = esc(cell)
                tds.append(f'<td style="{style}">{cell_html}</td>')
            out.append("<tr>" + "".join(tds) + "</tr>")
        out.append("</tbody></table>")
    if view.rows_omitted:
        out.append(f"<p>… {view.rows_omitted} more rows; see <code>.to_dataframe()</code></p>")
    out.extend(
        f'<p><span style="{_pair(WARNING_COLOURS)}">{esc(note)}</span></p>' for note in view.notes
    )
    pre = f"{_MONOSPACE}; margin: 0.2em 0 0.4em 1em; padding: 0 0 0 0.6em"
    for index, group in enumerate(view.groups):
        # The largest groups open (the majority's output first), the rest one line each.
        opened = " open" if index < OPEN_GROUPS else ""
        out.append(
            f'<details{opened} style="margin: 0.1em 0"><summary style="cursor: pointer">'
            f'<span style="{_badge(group.status)}">{esc(group.label)}</span></summary>'
        )
        if not group.stdout and not group.stderr:
            out.append("<p><em>(no output)</em></p>")
        if group.stdout:
            out.append(
                f'<pre style="{pre}; border-left: 2px solid {_RULE}">'
                f"{esc(chr(10).join(group.stdout))}</pre>"
            )
        if group.stderr:
            out.append(
                f'<pre style="{pre}; {_pair(STDERR_COLOURS)}">'
                f"{esc(chr(10).join(group.stderr))}</pre>"
            )
        if group.note:
            out.append(f'<p><em style="{_pair(WARNING_COLOURS)}">{esc(group.note)}</em></p>')
        out.append("</details>")
    if view.groups_omitted:
        out.append(
            f"<p>… {view.groups_omitted} more distinct outputs; see <code>.groups()</code></p>"
        )
    for section in view.sections:
        # One context's summary, set apart by a rule in the theme's colour.
        out.append(
            f'<div class="podmagic-context" style="margin: 0.5em 0 0 0; padding: 0 0 0 0.6em; '
            f'border-left: 2px solid {_RULE}">'
        )
        out.append(render_html(section))
        out.append("</div>")
    if view.footer:
        out.append(
            f'<p class="podmagic-provenance" style="margin: 0.4em 0 0 0; font-size: 0.85em">'
            f"{esc(view.footer)}</p>"
        )
    out.append("</div>")
    return "\n".join(out)

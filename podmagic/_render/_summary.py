"""The summary of a run's results, as text and as HTML, from one view; and the results' reprs.

:class:`~podmagic.PodResults` and :class:`~podmagic.PodResult` hold data; everything they show a
person (``str()``, the notebook display, ``repr()``) is written here. :func:`summary_view` decides
what the summary says — title, table, grouped outputs, notes, within fixed limits — and
:func:`render_text` / :func:`render_html` only lay it out, so the terminal and the notebook always
agree.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._results import ExecStatus, _bytes, _unit
from .._safe_text import visible_controls

if TYPE_CHECKING:
    from .._results import PodResult, PodResults

__all__ = [
    "pod_result_repr",
    "pod_results_repr",
    "render_html",
    "render_text",
    "summary_html",
    "summary_text",
    "summary_view",
]

#: Display limits: the summary never grows with the size of the output or the fan-out.
MAX_TABLE_ROWS = 50
MAX_GROUPS = 10
MAX_PREVIEW_LINES = 20
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


def _preview(text: str) -> list[str]:
    lines = text.splitlines()
    shown = [
        line if len(line) <= MAX_PREVIEW_LINE_CHARS else line[:MAX_PREVIEW_LINE_CHARS] + "…"
        for line in lines[:MAX_PREVIEW_LINES]
    ]
    if len(lines) > MAX_PREVIEW_LINES:
        shown.append(f"… {len(lines) - MAX_PREVIEW_LINES} more lines")
    return shown


def summary_view(results: PodResults) -> _SummaryView:
    items = list(results)
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
    # Likewise past the group limit: outputs that did not succeed first.
    shown = sorted(
        sorted(range(len(groups)), key=lambda i: groups[i].status is ExecStatus.OK)[:MAX_GROUPS]
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
    return "\n".join(out)


_STATUS_COLOURS = {
    ExecStatus.OK: "#2e7d32",
    ExecStatus.FAILED: "#c62828",
    ExecStatus.ERROR: "#c62828",
    ExecStatus.TIMEOUT: "#c62828",
    ExecStatus.CANCELLED: "#ef6c00",
    ExecStatus.NOT_STARTED: "#ef6c00",
    ExecStatus.SKIPPED: "#757575",
}


#: Truncation notes: to be noticed, though nothing failed.
_WARNING_COLOUR = "#ef6c00"


def render_html(view: _SummaryView) -> str:
    def esc(text: str) -> str:
        return html.escape(text, quote=True)

    out = ['<div class="podmagic-results">', f"<p><strong>{esc(view.title)}</strong></p>"]
    if view.rows:
        out.append('<table class="podmagic-summary">')
        out.append(
            "<thead><tr>"
            + "".join(f"<th>{esc(name)}</th>" for name in view.columns)
            + "</tr></thead>"
        )
        out.append("<tbody>")
        for cells, status in view.rows:
            tds = []
            for name, cell in zip(view.columns, cells):
                style = ""
                if name == "status":
                    style = f' style="color: {_STATUS_COLOURS[status]}"'
                elif name in view.numeric:
                    style = ' style="text-align: right"'
                tds.append(f"<td{style}>{esc(cell)}</td>")
            out.append("<tr>" + "".join(tds) + "</tr>")
        out.append("</tbody></table>")
    if view.rows_omitted:
        out.append(f"<p>… {view.rows_omitted} more rows; see <code>.to_dataframe()</code></p>")
    out.extend(f'<p style="color: {_WARNING_COLOUR}">{esc(note)}</p>' for note in view.notes)
    for group in view.groups:
        colour = _STATUS_COLOURS[group.status]
        out.append(f'<details open><summary style="color: {colour}">{esc(group.label)}</summary>')
        if not group.stdout and not group.stderr:
            out.append("<p><em>(no output)</em></p>")
        if group.stdout:
            out.append(f"<pre>{esc(chr(10).join(group.stdout))}</pre>")
        if group.stderr:
            out.append(f'<pre style="color: #c62828">{esc(chr(10).join(group.stderr))}</pre>')
        if group.note:
            out.append(f'<p style="color: {_WARNING_COLOUR}"><em>{esc(group.note)}</em></p>')
        out.append("</details>")
    if view.groups_omitted:
        out.append(
            f"<p>… {view.groups_omitted} more distinct outputs; see <code>.groups()</code></p>"
        )
    out.append("</div>")
    return "\n".join(out)

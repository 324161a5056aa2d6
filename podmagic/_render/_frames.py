"""IPython display of the DataFrames ``--parse`` makes: pod text shown, never obeyed.

A parsed frame holds pod output as it was sent, escape sequences included, which is right for
the data but not for a terminal: pandas' ``repr`` (IPython's ``Out[n]``) would print them raw,
and its HTML escapes ``<`` and ``&`` but passes control characters through. On
``%load_ext podmagic``, :func:`register_frame_formatters` adds IPython formatters for
``pandas.DataFrame`` that show a copy with :func:`~podmagic._safe_text.visible_controls` applied
to its text cells and labels — only for frames marked as podmagic's (``frame.attrs`` holds
:data:`~podmagic._results.FRAME_MARK`); every other DataFrame is displayed as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._results import FRAME_MARK
from .._safe_text import visible_controls

__all__ = ["register_frame_formatters", "shown_frame"]


def _shown(value: Any) -> Any:
    return visible_controls(value) if isinstance(value, str) else value


def _shown_labels(index: Any) -> Any:
    import pandas as pd

    if isinstance(index, pd.MultiIndex):
        return pd.MultiIndex.from_tuples(
            [tuple(_shown(part) for part in label) for label in index],
            names=[_shown(name) for name in index.names],
        )
    return pd.Index([_shown(label) for label in index], name=_shown(index.name))


def shown_frame(frame: Any) -> Any:
    """A copy of ``frame`` for display: every text cell and label through ``visible_controls``.

    Only columns that can hold text are mapped; numeric ones are shared, not copied.
    """
    shown = frame.copy(deep=False)
    for position in range(shown.shape[1]):
        column = shown.iloc[:, position]
        if column.dtype.kind not in "biufcmM":
            shown.isetitem(position, column.map(_shown))
    shown.columns = _shown_labels(shown.columns)
    shown.index = _shown_labels(shown.index)
    return shown


def _is_ours(obj: Any) -> bool:
    attrs = getattr(obj, "attrs", None)
    return isinstance(attrs, dict) and bool(attrs.get(FRAME_MARK))


def register_frame_formatters(shell: Any) -> None:
    """Show podmagic's DataFrames safely in ``shell``'s text and HTML output (idempotent).

    Other DataFrames go to whatever printer was registered before, else pandas' own repr.
    """
    formatters = shell.display_formatter.formatters
    plain, html = formatters["text/plain"], formatters["text/html"]
    # By class, not by name: the class's module differs between pandas versions, and a
    # printer IPython has already looked up by name would not be replaced by a second one.
    import pandas as pd

    frame_type = pd.DataFrame

    previous_plain = _previous(plain.for_type(frame_type))
    previous_html = _previous(html.for_type(frame_type))

    def plain_printer(obj: Any, printer: Any, cycle: bool) -> None:
        from IPython.lib.pretty import _repr_pprint

        if _is_ours(obj):
            obj = shown_frame(obj)
        elif previous_plain is not None:
            previous_plain(obj, printer, cycle)
            return
        _repr_pprint(obj, printer, cycle)  # type: ignore[no-untyped-call]

    def html_printer(obj: Any) -> Any:
        if _is_ours(obj):
            return shown_frame(obj)._repr_html_()
        if previous_html is not None:
            return previous_html(obj)
        return obj._repr_html_()

    plain_printer.podmagic_previous = previous_plain  # type: ignore[attr-defined]
    html_printer.podmagic_previous = previous_html  # type: ignore[attr-defined]
    plain.for_type(frame_type, plain_printer)
    html.for_type(frame_type, html_printer)


def _previous(printer: Callable[..., Any] | None) -> Callable[..., Any] | None:
    """The printer registered before podmagic's (a second ``%load_ext`` must not chain ours)."""
    if printer is not None and hasattr(printer, "podmagic_previous"):
        return printer.podmagic_previous  # type: ignore[no-any-return]
    return printer

"""Picking the view that fits where the code runs."""

from __future__ import annotations

import math
from typing import Any

from ._base import Renderer, log
from ._text import TextRenderer

__all__ = ["choose_renderer", "in_widget_kernel", "unattended"]

_COMMON = frozenset({"limits"})
_TEXT_ONLY = frozenset({"stream", "colour", "show_header"})
_BOTH = frozenset({"show_summary"})
_WIDGET_ONLY = frozenset({"display"})
_LIVE_ONLY = frozenset({"outlives_cell"})


def in_widget_kernel() -> bool:
    """True inside a Jupyter kernel (``ZMQInteractiveShell``) where ipywidgets imports."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    if not any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__):
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def unattended() -> bool:
    """True while a kernel runs a cell for a client that cannot answer ``input()``:
    nbconvert, papermill, nbclient, nbval execute that way (``allow_stdin`` false); a
    person's notebook (JupyterLab, Notebook 7, VS Code) does not."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    kernel = getattr(get_ipython(), "kernel", None)
    # ipykernel keeps the current request's allow_stdin there (no public accessor).
    return kernel is not None and getattr(kernel, "_allow_stdin", True) is False


def _anywidget_available() -> bool:
    try:
        import anywidget  # noqa: F401
    except ImportError:
        return False
    return True


def choose_renderer(**kwargs: Any) -> Renderer:
    """In a Jupyter kernel with ipywidgets, the front-end :class:`LiveRenderer` (or, when
    anywidget is missing, the ipywidgets-only :class:`WidgetRenderer`); else a
    :class:`TextRenderer`.

    Keyword arguments go to the chosen class: ``limits`` and ``show_summary`` to either,
    ``display`` only to the widget views, ``outlives_cell`` (a ``--bg`` run) only to
    :class:`LiveRenderer` (the ipywidgets view always displays itself at once), ``stream``,
    ``colour`` and ``show_header`` only to the text view (each is dropped when another view
    is chosen). Call it on the kernel's main thread, in the cell that starts the run: the
    widget view displays itself there. Executed :func:`unattended`, nobody watches: the front-end
    view never shows the widget and a run outputs only its summary, whatever its duration
    (a saved notebook's outputs do not depend on timing, as nbval needs).
    """
    unknown = set(kwargs) - _COMMON - _TEXT_ONLY - _BOTH - _WIDGET_ONLY - _LIVE_ONLY
    if unknown:
        raise TypeError(f"choose_renderer() got unexpected arguments: {', '.join(sorted(unknown))}")
    if in_widget_kernel():
        from ._live import LiveRenderer
        from ._widget import WidgetRenderer

        widget_kwargs = {k: v for k, v in kwargs.items() if k not in _TEXT_ONLY | _LIVE_ONLY}
        try:
            if _anywidget_available():
                live_kwargs = {k: v for k, v in kwargs.items() if k not in _TEXT_ONLY}
                if unattended():
                    live_kwargs["show_after"] = math.inf
                return LiveRenderer(**live_kwargs)
            return WidgetRenderer(**widget_kwargs)
        except Exception:  # noqa: BLE001 - any widget trouble falls back to text
            log.exception("podmagic: the widget view could not be created; showing text instead")
    text_kwargs = {k: v for k, v in kwargs.items() if k not in _WIDGET_ONLY | _LIVE_ONLY}
    return TextRenderer(**text_kwargs)

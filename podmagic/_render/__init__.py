"""Everything a person sees of a run: the live views fed by the engine's events, and the
summary and reprs of its results (``_summary``: text and HTML from one view, colours), with pods
named one way everywhere (``_labels``: ``web-1``, ``prod/web-1``, ``web-1 [app]``).

Nothing in the engine imports this package: the caller picks a renderer and passes its
``handle_event`` as the engine's ``on_event``, then calls ``close()`` when the run is over::

    renderer = choose_renderer()
    try:
        results = run(..., on_event=renderer.handle_event)
    finally:
        renderer.close()

* :class:`LiveRenderer` — Jupyter: a front-end widget (anywidget, ``static/live.js``) fed
  only new lines, in batches; replaced by the static summary at the end (``_live``).
* :class:`WidgetRenderer` — Jupyter without anywidget: header, progress line, the combined
  live stream and a view per pod in ipywidgets HTML, throttled; the same summary at the end.
* :class:`TextRenderer` — terminal IPython and plain Python: ``web-1 | line`` text.
* :class:`NullRenderer` — quiet mode.

Every view caps what it keeps (:class:`RenderLimits`) and never lets an exception escape
``handle_event`` (failures are logged to the ``podmagic._render`` logger). ipywidgets and
IPython are imported only when a widget view is created.
"""

from __future__ import annotations

from ._base import (
    PALETTE,
    NullRenderer,
    Renderer,
    RenderLimits,
    ansi_colour,
    pod_colour,
    summary_bundle,
)
from ._choose import choose_renderer, in_widget_kernel
from ._frames import register_frame_formatters, shown_frame
from ._live import LiveRenderer
from ._text import TextRenderer
from ._widget import WidgetRenderer

__all__ = [
    "PALETTE",
    "LiveRenderer",
    "NullRenderer",
    "RenderLimits",
    "Renderer",
    "TextRenderer",
    "WidgetRenderer",
    "ansi_colour",
    "choose_renderer",
    "in_widget_kernel",
    "pod_colour",
    "register_frame_formatters",
    "shown_frame",
    "summary_bundle",
]

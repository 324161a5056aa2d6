"""A ``--bg`` handle shown as a cell's output (``h`` as the cell's last line): in a Jupyter
kernel that output is refreshed when the run ends, so a saved notebook never holds a stale
"running"; elsewhere (terminal IPython) IPython prints the plain repr."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from test_render import FakeDisplay, fake_display

from podmagic._background import BackgroundRun
from podmagic._engine import RunControl

#: test_render's fixture, used here by name.
FIXTURES = (fake_display,)


def started_run() -> tuple[BackgroundRun, Future[Any]]:
    run = BackgroundRun("app=x in namespace atk", RunControl())
    future: Future[Any] = Future()
    run._attach(future, lambda _done: None)
    run.total = 2
    return run, future


def test_a_bg_handle_shown_in_a_cell_is_refreshed_when_the_run_ends(
    monkeypatch: pytest.MonkeyPatch, fake_display: FakeDisplay
) -> None:
    monkeypatch.setattr("podmagic._background.in_widget_kernel", lambda: True)
    run, future = started_run()
    run._ipython_display_()
    (shown, kwargs), handle = fake_display.calls[0], fake_display.handles[0]
    assert kwargs == {"raw": True, "display_id": True}
    assert ": running, 0/2 done" in shown["text/plain"]

    run.done_count = run.failed_count = 2
    future.set_result(None)
    (final, update_kwargs) = handle.updates[-1]
    assert update_kwargs == {"raw": True}
    assert ": done, 2/2 done, 2 failed" in final["text/plain"]
    assert "running" not in final["text/plain"]
    # Shown after its end: IPython's own repr (final already), no output left to refresh.
    with pytest.raises(NotImplementedError):
        run._ipython_display_()


def test_a_bg_handle_outside_a_kernel_is_shown_by_its_plain_repr(
    fake_display: FakeDisplay,
) -> None:
    run, future = started_run()
    with pytest.raises(NotImplementedError):  # terminal IPython: Out[n]: <BackgroundRun ...>
        run._ipython_display_()
    assert fake_display.calls == []
    future.set_result(None)

"""What a person sees of a %pod run in JupyterLab 4 and Notebook 7, in headless Chromium: the
live view while it runs, the summary when it ends, the stop button, the dark theme."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from .browser_harness import ConsoleLog, JupyterServer, NotebookPage
from .colour_checks import low_contrast_text

OpenNotebook = Callable[..., tuple[NotebookPage, ConsoleLog]]
Servers = Callable[..., JupyterServer]

#: About 2 s of output from each of deploy/web's three pods.
THREE_POD_RUN = (
    "%pod deploy/web -n demo -- sh -c 'for i in $(seq 1 40); do echo line $i; sleep 0.05; done'"
)


@pytest.mark.parametrize("kind", ["lab", "notebook"])
def test_live_view_then_summary_for_three_pods(
    kind: str, servers: Servers, open_notebook: OpenNotebook
) -> None:
    notebook, console = open_notebook(servers(kind), [THREE_POD_RUN])
    notebook.run_all()

    # While the cell runs, its output shows the pods' lines as they come.
    live = notebook.wait_output(1, r"\| line \d+", limit=60)
    assert not notebook.cell_done(1), "the run ended before its live view was seen"
    assert "3 pods" in live
    notebook.screenshot("live")
    notebook.screenshot("live-cell", notebook.cell(1))

    notebook.wait_cell_done(1, limit=60)
    summary = notebook.wait_output(1, r"3 pods in context podmagic-sandbox", limit=30)
    assert "namespace demo: 3 ok" in summary
    assert "line 1\n" in summary and "line 40" in summary  # the first and the last lines
    assert "| line" not in summary, "the live view stayed after the run ended"
    notebook.screenshot("summary")
    notebook.screenshot("summary-cell", notebook.cell(1))
    assert console.unexpected() == []


def test_interrupt_button_stops_a_long_run_with_partial_results(
    servers: Servers, open_notebook: OpenNotebook
) -> None:
    # 60 s of output if nothing stops it.
    notebook, console = open_notebook(
        servers("lab"),
        [
            "%pod deploy/web -n demo -- sh -c 'for i in $(seq 1 600); do echo line $i; sleep 0.1; done'"
        ],
    )
    notebook.run_all()
    notebook.wait_output(1, r"\| line 5\b", limit=60)
    notebook.screenshot("before-interrupt")

    clicked = time.monotonic()
    notebook.interrupt()
    notebook.wait_cell_done(1, limit=5)
    stopped = time.monotonic() - clicked
    print(f"interrupt: cell done {stopped:.2f} s after the click")
    output = notebook.wait_output(1, r"3 pods in context podmagic-sandbox", limit=10)
    notebook.screenshot("interrupted")
    assert "cancelled" in output or "interrupted" in output.lower(), output[:2000]
    assert "line 5" in output, "the partial output is not shown"
    assert console.unexpected() == []


def test_dark_theme_summary_status_colours_are_readable(
    servers: Servers, open_notebook: OpenNotebook
) -> None:
    # db-0 succeeds, db-1 fails; both write to stderr, so every status colour is on the page.
    notebook, console = open_notebook(
        servers("lab", theme="JupyterLab Dark"),
        [
            (
                "%%pod sts/db -n demo\n"
                "for i in $(seq 1 20); do echo line $i; sleep 0.05; done\n"
                "echo 'something went wrong' >&2\n"
                '[ "$(hostname)" = db-0 ]'
            )
        ],
    )
    notebook.run_all()
    notebook.wait_output(1, r"\| line \d+", limit=60)
    notebook.screenshot("dark-live")
    notebook.wait_cell_done(1, limit=60)
    summary = notebook.wait_output(1, r"2 pods in context podmagic-sandbox", limit=30)
    assert "1 ok" in summary and "1 failed" in summary, summary[:2000]
    notebook.screenshot("dark-summary")
    low = low_contrast_text(notebook.output(1))
    assert low == [], "text below 4.5:1 on the dark theme:\n" + "\n".join(low)
    assert console.unexpected() == []

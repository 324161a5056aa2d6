"""A notebook saved while a run streams, whose kernel then restarts, reads well when reopened
(in JupyterLab 4 and Notebook 7):
the saved snapshot stands for the dead widget (no "model not found", no "Loading widget…"),
and the page logs no error (no ``comm_close`` of the interrupted run's model reaches a page
that has dropped its comms for the restart)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from .browser_harness import ConsoleLog, JupyterServer, NotebookPage, wait_until
from .test_browser_live_view import LIVE, wait_live

OpenNotebook = Callable[..., tuple[NotebookPage, ConsoleLog]]
Servers = Callable[..., JupyterServer]

MODEL_NOT_FOUND = "console.error: Error: widget model not found\n"


@pytest.mark.parametrize("kind", ["lab", "notebook"])
def test_saved_mid_run_then_kernel_restart_and_reload_shows_the_snapshot(
    kind: str, servers: Servers, open_notebook: OpenNotebook
) -> None:
    server = servers(kind)
    notebook, console = open_notebook(
        server,
        ["%%pod deploy/web -n demo\nfor i in $(seq 1 300); do echo line $i; sleep 0.1; done"],
    )
    notebook.page.on("dialog", lambda dialog: dialog.accept())  # "leave the page?" on reload
    notebook.run_all()
    wait_live(notebook, 1)
    notebook.wait_output(1, r"line 2\d\b", limit=60)
    notebook.save()
    saved = json.loads((server.root / notebook.name).read_text())
    bundles = [output.get("data", {}) for output in saved["cells"][1]["outputs"]]
    # The pods' lines, not only the command (which says "echo line $i").
    assert any(re.search(r"\| line \d+", "".join(b.get("text/html", ""))) for b in bundles), bundles

    notebook.restart_kernel()
    notebook.wait_kernel_idle(60)
    assert console.unexpected() == []  # no "Comm not found" from the interrupted run
    # The view still on the page says its run did not finish, and its clock has stopped.
    live = notebook.output(1).locator(LIVE)
    notebook.expect_visible(live.locator('[data-podmagic="status"]'), "the view's status")
    wait_until(
        lambda: live.get_attribute("data-state") == "lost",
        limit=30,
        what="the live view notices its kernel restarted",
    )
    status = live.locator('[data-podmagic="status"]').inner_text()
    assert "run not finished" in status, status
    elapsed = live.locator('[data-podmagic="elapsed"]')
    before = elapsed.inner_text()
    notebook.page.wait_for_timeout(1500)  # the browser's clock ticks every 200 ms when running
    assert elapsed.inner_text() == before
    notebook.screenshot("after-restart")
    notebook.reload()
    output = notebook.wait_output(1, r"\| line \d+", limit=30)
    notebook.screenshot("reopened")
    assert "model not found" not in output, output[:2000]
    assert "Loading widget" not in output, output[:2000]  # the dead widget's slot is hidden
    assert "deploy/web" in output
    # A snapshot, and it says so: not a live-looking "running".
    assert re.search(r"podmagic snapshot taken \S+ \S+.* into a run still going then", output), (
        output
    )
    assert "podmagic: running" not in output
    errors = console.unexpected()
    if kind == "notebook":
        # Notebook 7's widget manager logs, for any saved widget output whose kernel is
        # gone, that it found no model (the output itself is hidden: the snapshot shows).
        errors = [e for e in errors if not e.startswith(MODEL_NOT_FOUND)]
    assert errors == []

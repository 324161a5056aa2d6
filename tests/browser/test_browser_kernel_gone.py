"""A live view whose kernel dies mid-run (killed: out of memory, a crash) does not go on
showing a running run: it says the run did not finish and its clock stops, also for a quiet run
that sends no output."""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator

from .browser_harness import ConsoleLog, JupyterServer, NotebookPage, wait_until
from .test_browser_live_view import LIVE, wait_live

OpenNotebook = Callable[..., tuple[NotebookPage, ConsoleLog]]
Servers = Callable[..., JupyterServer]


def test_a_quiet_run_whose_kernel_is_killed_stops_saying_running(
    servers: Servers, open_notebook: OpenNotebook
) -> None:
    server = servers("lab")
    notebook, _console = open_notebook(
        server,
        [
            "import os\nopen('kernel.pid', 'w').write(str(os.getpid()))",
            "%%pod deploy/web -n demo\nsleep 60",
        ],
    )
    notebook.run_all()
    wait_live(notebook, 2)
    live = notebook.output(2).locator(LIVE)
    assert live.get_attribute("data-state") == "running"
    # A killed kernel cannot remove its sandbox's folder: the test does (the sandbox cell
    # names it); its pods' processes end with their `sleep`.
    kubeconfig = re.search(r"kubeconfig (\S+/kubeconfig)", notebook.output(0).inner_text())
    assert kubeconfig is not None
    folder = Path(kubeconfig.group(1)).parent
    assert folder.name.startswith("podmagic-sandbox-"), folder
    os.kill(int((server.root / "kernel.pid").read_text()), signal.SIGKILL)
    try:
        check_the_view_says_the_run_did_not_finish(notebook, live)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_the_view_says_the_run_did_not_finish(notebook: NotebookPage, live: Locator) -> None:
    wait_until(
        lambda: live.get_attribute("data-state") == "lost",
        limit=60,
        what="the live view notices its kernel is gone",
    )
    status = live.locator('[data-podmagic="status"]').inner_text()
    assert "kernel" in status and "running" != status, status
    elapsed = live.locator('[data-podmagic="elapsed"]')
    before = elapsed.inner_text()
    notebook.page.wait_for_timeout(1500)  # the browser's clock ticks every 200 ms when running
    assert elapsed.inner_text() == before
    dialog = notebook.page.locator(".jp-Dialog .jp-mod-accept")  # "the kernel has died"
    if dialog.count():
        dialog.click()
    notebook.screenshot("kernel-gone")


def test_a_kernel_that_stops_answering_is_reported_and_its_return_undoes_it(
    servers: Servers, open_notebook: OpenNotebook
) -> None:
    # A frozen kernel (SIGSTOP: as a kernel stuck or a machine swapping) sends no beats: the
    # view says it has no word from the kernel; once it goes on, the next beat undoes that.
    server = servers("lab")
    notebook, _console = open_notebook(
        server,
        [
            "import os\nopen('kernel.pid', 'w').write(str(os.getpid()))",
            "%%pod deploy/web -n demo\nsleep 60",
        ],
    )
    notebook.run_all()
    wait_live(notebook, 2)
    live = notebook.output(2).locator(LIVE)
    pid = int((server.root / "kernel.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(
            lambda: live.get_attribute("data-state") == "lost",
            limit=60,
            what="the live view notices its kernel is silent",
        )
        status = live.locator('[data-podmagic="status"]').inner_text()
        assert status.startswith("no word from the kernel for "), status
        notebook.screenshot("kernel-silent")
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(
        lambda: live.get_attribute("data-state") == "running",
        limit=60,
        what="the live view running again once the kernel speaks",
    )

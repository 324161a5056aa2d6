"""What the browser suite drives: a Jupyter server (JupyterLab 4 or Notebook 7) on 127.0.0.1
with a token and a fresh root folder, and a notebook page in Debian's Chromium through
Playwright, worked the way a person works it (menus, toolbar buttons, the keyboard).

Every wait here has a limit and says what it waited for when the limit passes. Nothing secret
leaves this module: the server's token is in the URLs the page opens, and is replaced by
``<token>`` in every message and in the server log kept with the test's files.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from playwright.sync_api import ConsoleMessage, Error, Locator, Page

REPO = Path(__file__).resolve().parents[2]
#: Screenshots of every scenario land here (gitignored); CI keeps the folder as an artifact.
ARTIFACTS = Path(os.environ.get("PODMAGIC_BROWSER_ARTIFACTS", REPO / "artifacts" / "browser"))
CHROMIUM = os.environ.get("PODMAGIC_CHROMIUM", "/usr/bin/chromium")
#: Debian's Chromium, headless, with nothing that reaches beyond 127.0.0.1. Playwright gives
#: every launch a fresh temporary profile (its own --user-data-dir). Running as root needs
#: --no-sandbox.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

Kind = Literal["lab", "notebook"]

#: Server start-up, page load and kernel start: generous, since the machine is shared.
START_LIMIT = 90.0
#: What JupyterLab writes in an execution prompt while the cell runs or waits to run.
_BUSY_PROMPTS = {"[*]:", "[ ]:", "[*]", "[ ]", ""}


class WaitTimeout(AssertionError):
    """A bounded wait ran out; the message says what was awaited."""


def wait_until(check: Callable[[], Any], *, limit: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy (returned), at most ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"waited {limit:.0f} s for {what}")
        time.sleep(interval)


# -- the Jupyter server ---------------------------------------------------------------------


@dataclass
class JupyterServer:
    """A running ``jupyter lab`` or ``jupyter notebook`` serving ``root``."""

    kind: Kind
    root: Path
    base_url: str
    token: str
    log: Path
    process: subprocess.Popen[bytes]

    def url(self, path: str) -> str:
        """``path`` on this server, with the token (for ``page.goto`` only; never print it)."""
        return f"{self.base_url}{path}?token={self.token}"

    def notebook_url(self, name: str) -> str:
        """Where this server's front end opens the notebook ``name`` (relative to root)."""
        if self.kind == "notebook":
            return self.url(f"notebooks/{name}")
        # A workspace of its own: JupyterLab would otherwise reopen the notebooks of the
        # pages before (and start their kernels again).
        workspace = re.sub(r"\W+", "-", name)
        return self.url(f"lab/workspaces/{workspace}/tree/{name}")

    def hide_token(self, text: str) -> str:
        return text.replace(self.token, "<token>")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return self.hide_token("\n".join(text.splitlines()[-lines:]))

    def shutdown_notebook(self, name: str) -> None:
        """Shut down the kernel of notebook ``name`` (its session), as closing it does."""
        for session in self.api("GET", "api/sessions"):
            if session.get("path") == name:
                self.api("DELETE", f"api/sessions/{session['id']}")

    def kernel_state(self, name: str) -> str | None:
        """The execution state of the kernel of notebook ``name``'s session, if it has one."""
        for session in self.api("GET", "api/sessions"):
            if session.get("path") == name and session.get("kernel"):
                return str(session["kernel"].get("execution_state"))
        return None

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
        return json.loads(body) if body else None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 20 s) and take the token out of its log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        if self.log.exists():
            self.log.write_text(self.hide_token(self.log.read_text(errors="replace")))


def _settings(folder: Path, theme: str, *, news: bool) -> None:
    """User settings for a fresh front end: the theme, and (``news``: JupyterLab, whose
    notices would cover the page, with no network to ask) no news or update checks. Notebook
    7 has no news and fails on a settings file for it (a page error)."""
    files: dict[str, dict[str, Any]] = {
        "@jupyterlab/apputils-extension/themes.jupyterlab-settings": {"theme": theme},
    }
    if news:
        files["@jupyterlab/apputils-extension/notification.jupyterlab-settings"] = {
            "fetchNews": "false",
            "checkForUpdates": False,
        }
    for name, value in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


def start_server(kind: Kind, work: Path, *, theme: str = "JupyterLab Light") -> JupyterServer:
    """Start ``jupyter lab`` / ``jupyter notebook`` on 127.0.0.1 (a port the OS picks), with a
    random token, serving the fresh folder ``work/root``; its configuration, runtime files,
    settings and workspaces in ``work`` too, so nothing of the user's own setup takes part."""
    root = work / "root"
    for sub in ("root", "runtime", "config", "data", "settings", "workspaces"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    _settings(work / "settings", theme, news=kind == "lab")
    token = secrets.token_hex(24)
    env = dict(os.environ)
    env.update(
        JUPYTER_RUNTIME_DIR=str(work / "runtime"),
        JUPYTER_CONFIG_DIR=str(work / "config"),
        JUPYTER_DATA_DIR=str(work / "data"),
        JUPYTERLAB_SETTINGS_DIR=str(work / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(work / "workspaces"),
        JUPYTER_TOKEN=token,  # read by the server; never on its command line (ps shows that)
        PYTHONUNBUFFERED="1",
    )
    log = work / f"jupyter-{kind}.log"
    command = [
        sys.executable,
        "-m",
        "jupyter",
        kind,
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
    ]
    if os.geteuid() == 0:  # containers and CI often run as root
        command.append("--allow-root")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    info_file = work / "runtime" / f"jpserver-{process.pid}.json"

    def ready() -> dict[str, Any] | None:
        if process.poll() is not None:
            text = log.read_text(errors="replace").replace(token, "<token>")
            raise AssertionError(
                f"jupyter {kind} exited with {process.returncode} while starting:\n"
                + "\n".join(text.splitlines()[-30:])
            )
        if not info_file.exists():
            return None
        try:
            info: dict[str, Any] = json.loads(info_file.read_text())
        except ValueError:
            return None  # being written
        return info

    try:
        info = wait_until(
            ready, limit=START_LIMIT, what=f"jupyter {kind} to write {info_file.name}"
        )
    except BaseException:
        process.kill()
        process.wait(timeout=20)
        raise
    return JupyterServer(
        kind=kind,
        root=root,
        base_url=f"http://127.0.0.1:{info['port']}{info.get('base_url', '/')}",
        token=token,
        log=log,
        process=process,
    )


# -- notebooks ------------------------------------------------------------------------------


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook of code cells ``cells`` on the python3 kernel (no outputs)."""
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"cell-{index}",
                "metadata": {},
                "outputs": [],
                "source": source,
            }
            for index, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook, indent=1))
    return path


#: The first cell of every scenario: the extension and the embedded cluster (its demo
#: cluster has ``deploy/web`` with three pods in namespace ``demo``).
SANDBOX_CELL = "%load_ext podmagic\nsandbox = %pod_sandbox start"


# -- the page -------------------------------------------------------------------------------


#: Errors the front ends raise by themselves, in a page where podmagic has not run, with why
#: each is not podmagic's. Matched exactly; anything else is a failure.
KNOWN_FRONT_END_ERRORS = {
    # Notebook 7.6's keyboard-shortcuts plugin reads the schema of a plugin missing from its
    # settings registry as it loads the settings; also with every lab extension disabled.
    "pageerror: Cannot read properties of undefined (reading 'schema')": "notebook",
}


@dataclass
class ConsoleLog:
    """Console errors and uncaught page errors, as a person with the dev tools open sees them."""

    kind: Kind
    errors: list[str] = field(default_factory=list)

    def unexpected(self) -> list[str]:
        """The errors, less those the front end raises by itself (KNOWN_FRONT_END_ERRORS)."""
        return [error for error in self.errors if KNOWN_FRONT_END_ERRORS.get(error) != self.kind]

    def attach(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console.error: {message.text}")


class NotebookPage:
    """One notebook opened in JupyterLab or Notebook 7, driven through its UI."""

    def __init__(self, page: Page, server: JupyterServer, name: str, shots: Path) -> None:
        self.page = page
        self.server = server
        self.name = name
        self.shots = shots

    # -- opening ------------------------------------------------------------------------

    def open(self) -> NotebookPage:
        self.page.goto(self.server.notebook_url(self.name), timeout=START_LIMIT * 1000)
        self.wait_loaded()
        return self

    def focus(self) -> None:
        """Click the first cell's prompt, as a person does before using the menus: the
        notebook becomes the current one, whose commands the menus run."""
        self.cell(0).locator(".jp-InputPrompt").first.click()

    def wait_loaded(self) -> None:
        """The notebook's cells are shown, its kernel has started and the page shows it idle.

        The toolbar shows idle before the page has even asked for a kernel, so the server is
        asked too: a session for this notebook whose kernel is idle."""
        self.expect_visible(
            self.page.locator(".jp-Notebook .jp-Cell").first, "the notebook's cells"
        )
        wait_until(
            lambda: self.server.kernel_state(self.name) == "idle",
            limit=START_LIMIT,
            what=f"the server to have an idle kernel for {self.name}",
            interval=0.2,
        )
        self.wait_kernel_idle(START_LIMIT)

    def wait_kernel_idle(self, limit: float) -> None:
        indicator = self.page.locator(".jp-Notebook-ExecutionIndicator").first
        wait_until(
            lambda: indicator.get_attribute("data-status") == "idle",
            limit=limit,
            what="the kernel to be idle (the toolbar's execution indicator)",
            interval=0.2,
        )

    def expect_visible(self, locator: Locator, what: str, limit: float = START_LIMIT) -> None:
        try:
            locator.wait_for(state="visible", timeout=limit * 1000)
        except Error as error:
            raise WaitTimeout(f"waited {limit:.0f} s for {what} to show: {error.message}") from None

    # -- the UI ---------------------------------------------------------------------------

    def menu(self, *path: str) -> None:
        """Click through the menu bar: ``menu("Run", "Run All Cells")``. Waits for each entry
        to be enabled (commands are disabled until the notebook and its kernel are ready)."""
        top, *items = path
        self.page.keyboard.press("Escape")  # a menu left open by an earlier click
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
        for item in items:
            entry = self.page.locator(
                ".lm-Menu-content > .lm-Menu-item:not(.lm-mod-disabled):visible",
                has=self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{item}$")),
            ).first
            try:
                entry.wait_for(state="visible", timeout=START_LIMIT * 1000)
            except Error:
                raise WaitTimeout(
                    f"waited {START_LIMIT:.0f} s for the menu entry {' > '.join(path)} to be enabled"
                ) from None
            entry.click()

    def run_all(self) -> None:
        """Run > Run All Cells; returns once the first cell has started (or run).

        A click in the moment the kernel connection is made can be lost (the notebook shows
        idle before its kernel is fully attached): when the first cell shows no sign of
        running 5 s after a click, nothing ran, and the click is repeated."""
        deadline = time.monotonic() + START_LIMIT
        while True:
            self.focus()
            self.menu("Run", "Run All Cells")
            try:
                wait_until(
                    lambda: self.prompt(0) not in {"[ ]:", "[ ]", ""},
                    limit=5,
                    what="the first cell to start after Run All Cells",
                )
                return
            except WaitTimeout:
                if time.monotonic() > deadline:
                    raise

    def interrupt(self) -> None:
        """The toolbar's stop button (interrupt the kernel)."""
        self.page.locator('[data-command="notebook:interrupt-kernel"]').first.click()

    def save(self) -> None:
        """Ctrl+S, then wait until the file on disk is newer and whole (the server writes
        it in place: a read as it writes finds it empty or cut short)."""
        path = self.server.root / self.name
        before = path.stat().st_mtime_ns

        def saved() -> bool:
            if path.stat().st_mtime_ns == before:
                return False
            try:
                json.loads(path.read_text())
            except ValueError:
                return False
            return True

        self.page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
        self.page.keyboard.press("Control+s")
        wait_until(saved, limit=30, what=f"{self.name} to be saved")

    def restart_kernel(self) -> None:
        self.menu("Kernel", "Restart Kernel…")
        self.page.locator(".jp-Dialog .jp-mod-accept").click()

    def shutdown_kernel(self) -> None:
        self.server.shutdown_notebook(self.name)

    def reload(self) -> None:
        self.page.reload(timeout=START_LIMIT * 1000)
        self.wait_loaded()

    # -- reading the page -----------------------------------------------------------------

    def cell(self, index: int) -> Locator:
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def output(self, index: int) -> Locator:
        return self.cell(index).locator(".jp-OutputArea").first

    def prompt(self, index: int) -> str:
        text = self.cell(index).locator(".jp-InputPrompt").first.inner_text()
        return text.strip()

    def cell_done(self, index: int) -> bool:
        """The cell's prompt shows an execution count (``[3]:``), so it ran and finished."""
        return bool(re.fullmatch(r"\[\d+\]:?", self.prompt(index)))

    def wait_cell_done(self, index: int, limit: float) -> None:
        wait_until(
            lambda: self.cell_done(index),
            limit=limit,
            what=f"cell {index} to finish (its prompt shows a number)",
            interval=0.1,
        )

    def wait_output(self, index: int, pattern: str, limit: float) -> str:
        """Wait until cell ``index``'s output text matches ``pattern``; the text."""
        regex = re.compile(pattern)
        output = self.output(index)
        seen = [""]

        def matched() -> str | None:
            seen[0] = text = output.inner_text() if output.count() else ""
            return text if regex.search(text) else None

        try:
            return str(wait_until(matched, limit=limit, what=f"cell {index}'s output"))
        except WaitTimeout as error:
            raise WaitTimeout(
                f"{error} to match {pattern!r}; its prompt is {self.prompt(index)!r} and its "
                f"output ends: {seen[0][-400:]!r}"
            ) from None

    def screenshot(self, name: str, locator: Locator | None = None) -> Path:
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        if locator is None:
            self.page.screenshot(path=str(path))
        else:
            locator.screenshot(path=str(path))
        return path

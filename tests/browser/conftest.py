"""Fixtures of the browser suite: JupyterLab 4 and Notebook 7 servers on 127.0.0.1, Debian's
Chromium through Playwright, and a notebook page per test with its console errors collected.

The suite runs only when asked for by path (``scripts/test-browser`` or
``pytest tests/browser``): ``scripts/test`` (the main suite) leaves it out, since it needs
Chromium, JupyterLab and Notebook 7 (the ``[browser]`` extra) and a few minutes.
Under ``CI=true`` a missing piece fails the run; elsewhere it fails too, with the one command
that installs it, since asking for this suite means wanting it to run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _asked_for(config: pytest.Config) -> bool:
    """Whether the command line names this folder or something in it."""
    for arg in config.invocation_params.args:
        if arg.startswith("-"):
            continue
        path = Path(config.invocation_params.dir, arg.split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # Called for the files in this folder: leave them out unless the run named the folder.
    if HERE in collection_path.parents and not _asked_for(config):
        return True
    return None


try:
    from playwright.sync_api import Browser, sync_playwright

    from .browser_harness import (
        ARTIFACTS,
        CHROMIUM,
        CHROMIUM_ARGS,
        SANDBOX_CELL,
        ConsoleLog,
        JupyterServer,
        Kind,
        NotebookPage,
        start_server,
        write_notebook,
    )
except ImportError as error:  # pragma: no cover - reported by the fixture below
    _IMPORT_ERROR: ImportError | None = error
else:
    _IMPORT_ERROR = None

_INSTALL = "scripts/browser-setup (Debian's chromium; pip install -e '.[browser]')"


def _require() -> None:
    if _IMPORT_ERROR is not None:
        pytest.fail(f"the browser suite needs playwright: {_IMPORT_ERROR}; run {_INSTALL}")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"the browser suite needs Chromium at {CHROMIUM}; run {_INSTALL}")
    for module in ("jupyterlab", "notebook"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"the browser suite needs {module}; run {_INSTALL}")


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Remember a failed test body, so its pages are photographed before they close.
    report = yield
    if call.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, launched by Playwright (no browser download)."""
    _require()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=60_000
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., JupyterServer]]:
    """``servers("lab")`` / ``servers("notebook", theme=...)``: one server per kind and theme
    for the session, each with a fresh root folder."""
    _require()
    started: dict[tuple[str, str], JupyterServer] = {}

    def get(kind: Kind, theme: str = "JupyterLab Light") -> JupyterServer:
        key = (kind, theme)
        if key not in started:
            slug = re.sub(r"\W+", "-", f"{kind}-{theme}").lower()
            started[key] = start_server(kind, tmp_path_factory.mktemp(slug), theme=theme)
        return started[key]

    try:
        yield get
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture
def open_notebook(
    browser: Browser, request: pytest.FixtureRequest
) -> Iterator[Callable[..., tuple[NotebookPage, ConsoleLog]]]:
    """``open_notebook(server, [cell, ...])`` writes a notebook (the sandbox cell first) into
    the server's root, opens it in a new browser context and returns the page and its console
    log. Screenshots go to ``artifacts/browser/<test name>/``. Pages are closed after the test,
    which also shuts their kernels down through the server."""
    contexts = []
    pages: list[NotebookPage] = []
    test = re.sub(r"\W+", "-", request.node.name).strip("-")
    shutil.rmtree(ARTIFACTS / test, ignore_errors=True)  # no pictures of an earlier run

    def open_(
        server: JupyterServer, cells: list[str], *, sandbox: bool = True
    ) -> tuple[NotebookPage, ConsoleLog]:
        name = f"{test}-{len(pages)}.ipynb"
        write_notebook(server.root / name, ([SANDBOX_CELL] if sandbox else []) + cells)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        console = ConsoleLog(server.kind)
        console.attach(page)
        notebook = NotebookPage(page, server, name, ARTIFACTS / test)
        pages.append(notebook)
        notebook.open()
        return notebook, console

    try:
        yield open_
    finally:
        for notebook in pages:
            if request.node.stash.get(_FAILED, False):
                notebook.screenshot(f"failed-{notebook.name.removesuffix('.ipynb')}")
            notebook.shutdown_kernel()
        for context in contexts:
            context.close()

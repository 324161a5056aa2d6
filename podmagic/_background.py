"""``--bg`` runs: a handle that is awaitable, blocking-waitable and cancellable.

The run itself lives on the loop thread (:mod:`.portal`); the handle only watches its future.

Unattended notebooks (nbconvert, papermill, nbclient): such a client saves a cell's output
only until the kernel reports the cell done, and shuts the kernel down after the last cell,
so a ``--bg`` run still going then would never show its summary. :func:`wait_unattended`,
a ``post_run_cell`` hook, makes each cell wait (at most ``UNATTENDED_WAIT`` seconds) for the
``--bg`` runs still going when the client cannot answer ``input()``, which is how such a
client executes (``allow_stdin`` false); a person's notebook (JupyterLab, Notebook 7,
VS Code) is not affected.
"""

from __future__ import annotations

import asyncio
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Generator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from ._engine import RunControl
from ._events import Event, PodFinished, PodStarted, RunStarted
from ._render._base import log
from ._render._choose import in_widget_kernel, unattended
from ._results import ExecStatus, PodResults

__all__ = ["BackgroundRun", "BackgroundRunTimeout", "wait_unattended"]

#: How long a cell of an unattended notebook waits for the ``--bg`` runs still going.
UNATTENDED_WAIT = 600.0

#: The runs not yet settled (ended, and their view closed).
_going: weakref.WeakSet[BackgroundRun] = weakref.WeakSet()
_going_lock = threading.Lock()


class BackgroundRunTimeout(FutureTimeout):
    """``BackgroundRun.result(timeout=...)``: the run was still going when the time was up.

    A ``TimeoutError`` (``concurrent.futures.TimeoutError`` too); the run goes on.
    """

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        super().__init__(
            f"the background run is still going after {timeout:g} s; "
            "call result() again to wait longer, or cancel() to stop it"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.timeout,))

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class BackgroundRun:
    """A run that keeps going while the notebook moves on.

    ``await run`` or ``run.result()`` give the :class:`PodResults`; ``run.cancel()`` stops
    it (partial results are kept); ``repr(run)`` tells its state. Shown as a cell's output
    in a Jupyter kernel (``h`` as a cell's last line), that output is refreshed when the run
    ends, as its summary is: a saved notebook never holds a "running" that went stale.
    """

    def __init__(self, description: str, control: RunControl) -> None:
        self.description = description
        self._control = control
        self._future: Future[Any] | None = None
        self._started = time.monotonic()
        self._finished_at: float | None = None
        self.total = 0
        self.started_count = 0
        self.done_count = 0
        #: Pods whose command failed, errored or timed out (cancelled ones are counted apart,
        #: as the summary counts them).
        self.failed_count = 0
        self.cancelled_count = 0
        self.not_started_count = 0
        #: What ``--parse`` could not parse, in words (None: every pod that ran was parsed).
        self.problems: str | None = None
        self._settled = threading.Event()
        # The cell outputs that show this run's repr while it goes on (see _ipython_display_).
        self._shown_lock = threading.Lock()
        self._shown: list[Any] | None = []  # None once the run has ended

    def _attach(self, future: Future[Any], on_done: Callable[[Future[Any]], None]) -> None:
        self._future = future
        with _going_lock:
            _going.add(self)

        def finished(done: Future[Any]) -> None:
            self._finished_at = time.monotonic()
            try:
                on_done(done)
            finally:
                self._refresh_shown()
                # Settled once its view is closed: the summary has been sent.
                with _going_lock:
                    _going.discard(self)
                self._settled.set()

        future.add_done_callback(finished)

    def observe(self, event: Event) -> None:
        """Keep counts for the repr (called on the loop thread with every event)."""
        if isinstance(event, RunStarted):
            self.total = len(event.selection.run)
        elif isinstance(event, PodStarted):
            self.started_count += 1
        elif isinstance(event, PodFinished) and event.result.status is not ExecStatus.SKIPPED:
            self.done_count += 1
            status = event.result.status
            if status is ExecStatus.CANCELLED:
                self.cancelled_count += 1
            elif status is ExecStatus.NOT_STARTED:
                self.not_started_count += 1
            elif not event.result.ok:
                self.failed_count += 1

    def note(self, problems: str) -> None:
        """Keep the pods ``--parse`` has no rows for: the cell that started the run has
        moved on, so they are shown by the repr instead."""
        self.problems = problems

    @property
    def state(self) -> str:
        """``running``, ``done``, ``cancelled`` or ``error``."""
        future = self._future
        if future is None or not future.done():
            return "running"
        if future.cancelled() or self._control.cancel_requested:
            return "cancelled"
        return "error" if future.exception() is not None else "done"

    def done(self) -> bool:
        """True once the run has ended (done, cancelled or failed)."""
        return self._future is not None and self._future.done()

    def cancel(self) -> bool:
        """Stop the run; running execs end as cancelled, queued ones as not started.

        True if the run was still going and is now being stopped; False once it has ended
        (then nothing changes: a finished run stays ``done``), as ``Future.cancel`` does,
        and False when it is already being stopped by an earlier call.
        """
        if self.done() or self._control.cancel_requested:
            return False
        self._control.cancel("cancelled")
        return True

    def result(self, timeout: float | None = None) -> PodResults:
        """Wait for the results (raises what the run raised, e.g. ``PodsFailedError`` for --check).

        With ``timeout`` (seconds), a run still going then raises :class:`BackgroundRunTimeout`
        (a ``TimeoutError``); the run goes on.
        """
        assert self._future is not None
        try:
            return self._future.result(timeout)  # type: ignore[no-any-return]
        except FutureTimeout:
            if self._future.done():  # the run itself raised a TimeoutError
                raise
            raise BackgroundRunTimeout(timeout) from None

    def __await__(self) -> Generator[Any, None, PodResults]:
        assert self._future is not None
        return asyncio.wrap_future(self._future).__await__()

    def _ipython_display_(self) -> None:
        """In a Jupyter kernel, show the repr in an output the run's end refreshes.

        Elsewhere (terminal IPython), and for a run that has ended, IPython shows the plain
        repr (NotImplementedError tells it to).
        """
        with self._shown_lock:
            going = self._shown is not None
        if not going or not in_widget_kernel():
            raise NotImplementedError
        from IPython import display as ipython_display

        show: Any = ipython_display.display  # untyped in IPython
        handle = show({"text/plain": repr(self)}, raw=True, display_id=True)
        with self._shown_lock:
            if self._shown is not None:
                self._shown.append(handle)
                return
        # The run ended while it was being shown.
        handle.update({"text/plain": repr(self)}, raw=True)

    def _refresh_shown(self) -> None:
        """The run has ended: its outputs show the final repr (called once, from its end)."""
        with self._shown_lock:
            shown, self._shown = self._shown or [], None
        for handle in shown:
            try:
                handle.update({"text/plain": repr(self)}, raw=True)
            except Exception:  # noqa: BLE001 - a display problem must not stop the run's end
                log.exception("podmagic: the --bg run's shown state could not be refreshed")

    def __repr__(self) -> str:
        end = self._finished_at or time.monotonic()
        counts = f"{self.done_count}/{self.total} done"
        for count, what in (
            (self.failed_count, "failed"),
            (self.cancelled_count, "cancelled"),
            (self.not_started_count, "not started"),
        ):
            if count:
                counts += f", {count} {what}"
        if self.problems:
            counts += f", {_problems_in_brief(self.problems)} (see .problems)"
        return f"<BackgroundRun {self.description}: {self.state}, {counts}, {end - self._started:.1f}s>"


# The headings of parse_problems(): "--parse json: 1 pod failed (the command exited ...):".
_PROBLEM_HEADING = re.compile(r"--parse \S+: (\d+ pods? [^(:,]*?)(?: \(|:|,)")


def _problems_in_brief(problems: str) -> str:
    """``1 pod failed, 2 pods not parsed``: what the lines of ``.problems`` count."""
    found = [m.group(1) for m in map(_PROBLEM_HEADING.match, problems.splitlines()) if m]
    return ", ".join(found) or "parse problems"


def wait_unattended(*_args: Any, timeout: float | None = None) -> None:
    """``post_run_cell`` hook: in an unattended notebook, wait for the ``--bg`` runs still
    going, so that their summaries are saved in their cells (see the module docstring)."""
    with _going_lock:
        going = list(_going)
    if not going or not unattended():
        return
    limit = UNATTENDED_WAIT if timeout is None else timeout
    deadline = time.monotonic() + limit
    for run in going:
        run._settled.wait(max(0.0, deadline - time.monotonic()))
    still = [run for run in going if not run._settled.is_set()]
    if still:
        names = "; ".join(run.description for run in still)
        print(
            f"podmagic: --bg run still going after waiting {limit:g} s ({names}): its summary "
            "will not be saved; wait for it with h.result() in a later cell",
            file=sys.stderr,
        )

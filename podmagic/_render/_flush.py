"""What both widget views share: events taken on the engine's loop thread, flushes run on a
short-lived timer thread.

The loop thread must never wait for comm traffic: an event only updates plain buffers under
the view's lock and arms a :class:`FlushTimer`; the flush runs on the timer's own thread. The
view's lock guards every ``FlushTimer`` method; :func:`join` and the callback run without it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._events import PodFinished, PodOutput, PodStarted, RunFinished, RunStarted
from ._base import ErrorLog

if TYPE_CHECKING:
    from .._events import Event
    from .._results import PodResult, PodResults

__all__ = ["FlushTimer", "TimedView"]

#: The flush threads' name (tests check that none outlives its view).
THREAD_NAME = "podmagic-render-flush"


class FlushTimer:
    """At most one armed flush, re-armed only to run earlier; cancelled and joined at close.

    The callback starts with ``if not timer.claim(): return`` under the owner's lock (a
    timer replaced by an earlier one, or cancelled as it fired, does nothing) and ends with
    :meth:`done` in a ``finally``.
    """

    __slots__ = ("_callback", "_threads", "_timer", "due")

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._timer: threading.Timer | None = None
        self._threads: set[threading.Thread] = set()
        self.due = math.inf
        """When the armed flush runs (``time.monotonic()``), ``inf`` when none is armed."""

    @property
    def armed(self) -> bool:
        """Whether a flush is armed."""
        return self._timer is not None

    def schedule(self, due: float) -> None:
        """Arm a flush at ``due`` (``time.monotonic()``), unless one is armed as soon
        (``inf``: none)."""
        if due == math.inf:
            return
        if self._timer is not None:
            if self.due <= due:
                return  # a flush is already armed, soon enough
            self._timer.cancel()
        timer = threading.Timer(max(0.0, due - time.monotonic()), self._callback)
        timer.name = THREAD_NAME
        timer.daemon = True  # a kernel exiting mid-run must not wait for a redraw
        self._timer, self.due = timer, due
        # Cancelled timers never reach done() to remove themselves: prune them here.
        self._threads = {thread for thread in self._threads if thread.is_alive()}
        self._threads.add(timer)
        timer.start()

    def cancel(self) -> None:
        """Disarm the pending flush, if any."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self.due = None, math.inf

    def claim(self) -> bool:
        """In the callback: True if the calling thread is the armed timer (now disarmed)."""
        if self._timer is not threading.current_thread():
            return False
        self._timer, self.due = None, math.inf
        return True

    def done(self) -> None:
        """In the callback's ``finally``: the calling thread is finished."""
        self._threads.discard(threading.current_thread())

    def threads(self) -> list[threading.Thread]:
        """The timer threads that may still run (take under the owner's lock, then join)."""
        current = threading.current_thread()
        return [thread for thread in self._threads if thread is not current]


def join(threads: list[threading.Thread], timeout: float = 10.0) -> None:
    """Wait for flush threads taken by :meth:`FlushTimer.threads` (outside the lock)."""
    for thread in threads:
        thread.join(timeout=timeout)


class TimedView:
    """The event intake of a widget view: ``handle_event`` and ``close`` of the
    :class:`~._base.Renderer` protocol, written once. A subclass sets ``_lock``, ``_closed``,
    ``_errors``, ``_results`` and ``_timer`` (``FlushTimer(self._on_timer)``) and supplies the
    ``_on_*`` hooks and ``_next_*_locked`` (called under ``_lock``), ``_flush`` and
    ``_finalize``.
    """

    _lock: threading.Lock
    _closed: bool
    _errors: ErrorLog
    _timer: FlushTimer
    _results: PodResults | None

    def handle_event(self, event: Event) -> None:
        """Buffer ``event`` and arm a flush. Never touches a widget, never raises."""
        try:
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                if isinstance(event, PodOutput):
                    if not self._on_output(event):
                        return
                elif isinstance(event, PodStarted):
                    self._on_started(event)
                elif isinstance(event, PodFinished):
                    self._on_finished(event.result)
                elif isinstance(event, RunStarted):
                    self._on_run_started(event, now)
                elif isinstance(event, RunFinished):
                    self._on_run_finished(event.results, now)
                    self._schedule_locked(now)  # the summary goes up at once
                    return
                else:
                    raise TypeError(f"not a podmagic event: {type(event).__name__}")
                self._schedule_locked(self._next_flush_locked(now))
        except Exception:  # noqa: BLE001 - an exception here would break the engine's run
            self._errors.report(f"handling {type(event).__name__}")

    def close(self) -> None:
        """Show what is still buffered and the final state, if that has not happened yet.

        Idempotent, callable from any thread; waits for a flush in progress and leaves no
        timer thread behind.
        """
        try:
            with self._lock:
                self._closed = True
                self._on_close_locked()
                self._timer.cancel()
                threads = self._timer.threads()
            join(threads)
            self._finalize()
        except Exception:  # noqa: BLE001 - closing a view must not hide the run's outcome
            self._errors.report("close")

    def _schedule_locked(self, due: float) -> None:
        if not self._closed:
            self._timer.schedule(due)

    def _on_timer(self) -> None:
        try:
            with self._lock:
                if not self._timer.claim():
                    return  # replaced by an earlier one, or cancelled as it fired
                finished = self._results is not None
            if finished:
                self._finalize()
                return
            self._flush()
            with self._lock:
                tick = self._next_tick_locked()
                if tick is not None and not self._timer.armed:
                    self._schedule_locked(tick)
        except Exception:  # noqa: BLE001 - a timer thread has nobody to raise to
            self._errors.report("flush")
        finally:
            with self._lock:
                self._timer.done()

    # -- the hooks ----------------------------------------------------------------------------

    def _on_output(self, event: PodOutput) -> bool:
        """Take output; True when it completed a line (something to show)."""
        raise NotImplementedError

    def _on_started(self, event: PodStarted) -> None:
        raise NotImplementedError

    def _on_finished(self, result: PodResult) -> None:
        raise NotImplementedError

    def _on_run_started(self, event: RunStarted, now: float) -> None:
        raise NotImplementedError

    def _on_run_finished(self, results: PodResults, now: float) -> None:
        raise NotImplementedError

    def _on_close_locked(self) -> None:
        """``close()`` was called (before the final flush)."""

    def _next_flush_locked(self, now: float) -> float:
        """When to flush after an event that changed something."""
        raise NotImplementedError

    def _next_tick_locked(self) -> float | None:
        """When to flush again with no new event (``None``: not until one arrives)."""
        raise NotImplementedError

    def _flush(self) -> None:
        raise NotImplementedError

    def _finalize(self) -> None:
        raise NotImplementedError
